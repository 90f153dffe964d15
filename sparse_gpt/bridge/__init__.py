"""Bridges (docs/method.md section 10, docs/bridges.md): a weight-sparse model trained
next to a frozen dense one, joined at every residual site by an encoder (dense -> sparse,
linear then AbsTopK) and a decoder (sparse -> dense, linear).

Modules: `params` (the bridges and their two directions), `loss` (the bridge terms),
`dense` (loading and checking the dense run), `training` (the bridged train step and its
summary), `intervene` (a sparse circuit's nodes as interventions on the dense model).
"""
