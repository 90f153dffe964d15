"""The circuit viewer (docs/viewer.md): `site.write` turns a run's circuit files into
static, offline HTML pages; `data` computes what they show, `page` writes them, `plots`
draws their SVG plots."""
