"""Small line and point plots as inline SVG, so a page needs no plotting library."""

import html
import math

_W, _H = 560, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 110, 14, 40
COLOURS = ("#1f6fb4", "#d9791b", "#2a9d57", "#8e44ad")


def _ticks(low: float, high: float, n: int = 5) -> list[float]:
  if high <= low:
    high = low + 1.0
  step = 10 ** math.floor(math.log10((high - low) / n))
  for factor in (1, 2, 5, 10):
    if (high - low) / (step * factor) <= n:
      step *= factor
      break
  first = math.ceil(low / step) * step
  return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _label(x: float) -> str:
  return f"{x:.4g}"


def line_plot(series: list[tuple[str, list[float], list[float]]], x_label: str,
              y_label: str, hlines: tuple[tuple[str, float], ...] = (),
              points: bool = False, log_x: bool = False) -> str:
  """An SVG of (name, xs, ys) series, with dashed horizontal reference lines."""
  tx = (lambda x: math.log10(x)) if log_x else (lambda x: x)
  xs = [tx(x) for _, sx, _ in series for x in sx]
  ys = [y for _, _, sy in series for y in sy] + [y for _, y in hlines]
  if not xs:
    return ""
  x0, x1 = min(xs), max(xs)
  y0, y1 = min(0.0, min(ys)), max(ys) * 1.05 or 1.0
  if x1 == x0:
    x0, x1 = x0 - 1, x1 + 1
  px = lambda x: _LEFT + (tx(x) - x0) / (x1 - x0) * (_W - _LEFT - _RIGHT)
  py = lambda y: _H - _BOTTOM - (y - y0) / (y1 - y0) * (_H - _TOP - _BOTTOM)
  out = [f'<svg class="plot" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" '
         'xmlns="http://www.w3.org/2000/svg">',
         f'<rect x="{_LEFT}" y="{_TOP}" width="{_W - _LEFT - _RIGHT}" '
         f'height="{_H - _TOP - _BOTTOM}" class="frame"/>']
  for y in _ticks(y0, y1):
    out.append(f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{py(y):.1f}" '
               f'y2="{py(y):.1f}"/><text class="tick" x="{_LEFT - 4}" y="{py(y) + 3:.1f}" '
               f'text-anchor="end">{_label(y)}</text>')
  x_ticks = ([10 ** e for e in range(math.floor(x0), math.ceil(x1) + 1)
              if x0 <= e <= x1] if log_x else _ticks(x0, x1))
  for x in x_ticks:
    out.append(f'<text class="tick" x="{px(x):.1f}" y="{_H - _BOTTOM + 14}" '
               f'text-anchor="middle">{_label(x)}</text>')
  out.append(f'<text class="axis" x="{(_LEFT + _W - _RIGHT) / 2}" y="{_H - 6}" '
             f'text-anchor="middle">{html.escape(x_label)}</text>')
  out.append(f'<text class="axis" transform="translate(13 {(_TOP + _H - _BOTTOM) / 2}) '
             f'rotate(-90)" text-anchor="middle">{html.escape(y_label)}</text>')
  legend_y = _TOP + 10
  for name, y in hlines:
    out.append(f'<line class="ref" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{py(y):.1f}" '
               f'y2="{py(y):.1f}"/><text class="tick" x="{_W - _RIGHT + 4}" '
               f'y="{py(y) + 3:.1f}">{html.escape(name)}</text>')
  for i, (name, sx, sy) in enumerate(series):
    colour = COLOURS[i % len(COLOURS)]
    coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(sx, sy))
    out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" '
               f'points="{coords}"/>')
    if points or len(sx) == 1:
      out += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{colour}">'
              f'<title>{html.escape(name)}: {_label(x)}, {_label(y)}</title></circle>'
              for x, y in zip(sx, sy)]
    out.append(f'<rect x="{_W - _RIGHT + 6}" y="{legend_y + 18 * i + 20}" width="10" '
               f'height="3" fill="{colour}"/><text class="tick" x="{_W - _RIGHT + 20}" '
               f'y="{legend_y + 18 * i + 25}">{html.escape(name)}</text>')
  out.append("</svg>")
  return "".join(out)
