"""Inline SVG charts for the HTML report: an x-y plot (points and/or lines), and heat-map colours.

Our own few lines rather than a JavaScript plotting library, so that the report is one small file
that renders offline in any browser. Hover shows a point's name through an SVG ``<title>`` child.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

# Tableau 10: distinguishable, colour-blind-friendlier than the CSS named colours.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")


@dataclass
class Point:
    x: float
    y: float
    tip: str = ""        # hover text: the cell's name and its numbers
    cell: str = ""       # the cell id, written as data-cell so tests and scripts can find it


@dataclass
class Series:
    name: str            # legend entry; series sharing a name share one entry
    points: list[Point] = field(default_factory=list)
    color: str = "#333333"
    line: bool = False   # join the points in x order
    marker: bool = True
    dashed: bool = False
    ring: bool = False   # a hollow ring around each point: marks a subset (the Pareto front) of another series


def _nice_step(span: float, count: int, min_step: float = 0.0) -> float:
    raw = max(span / max(count, 1), min_step)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def linear_ticks(lo: float, hi: float, count: int = 6, min_step: float = 0.0) -> list[float]:
    step = _nice_step(hi - lo, count, min_step)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def log2_ticks(lo: float, hi: float) -> list[float]:
    """Powers of two within [lo, hi]: compression ratios and sizes halve and double."""
    return [2.0 ** k for k in range(math.ceil(math.log2(lo) - 1e-9), math.floor(math.log2(hi) + 1e-9) + 1)]


def _domain(values: list[float], log: bool) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if log:
        lo, hi = math.log2(lo), math.log2(hi)
    pad = (hi - lo) * 0.06 or 0.5
    lo, hi = lo - pad, hi + pad
    return (2 ** lo, 2 ** hi) if log else (lo, hi)


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.3g}"


def xy_plot(series: list[Series], *, x_title: str, y_title: str, x_log: bool = False, x_whole: bool = False,
            label: str = "", width: int = 1000, height: int = 360) -> str:
    """One chart: axes with ticks and titles, grid lines, each series' line and point marks, a legend.
    ``x_whole``: x counts something (epochs), so ticks fall on whole numbers only."""
    def drawable(p: Point) -> bool:
        return math.isfinite(p.x) and math.isfinite(p.y) and (p.x > 0 or not x_log)

    points = [p for s in series for p in s.points if drawable(p)]
    if not points:
        return f'<p class="note">No data to plot for {escape(label or y_title)}.</p>'
    left, right, top, bottom = 64, 270, 12, 46     # right: the legend's column
    plot_w, plot_h = width - left - right, height - top - bottom
    x_lo, x_hi = _domain([p.x for p in points], x_log)
    y_lo, y_hi = _domain([p.y for p in points], False)

    def sx(x: float) -> float:
        t = (math.log2(x) - math.log2(x_lo)) / (math.log2(x_hi) - math.log2(x_lo)) if x_log \
            else (x - x_lo) / (x_hi - x_lo)
        return round(left + t * plot_w, 1)

    def sy(y: float) -> float:
        return round(top + (1 - (y - y_lo) / (y_hi - y_lo)) * plot_h, 1)

    # Inline SVG in HTML needs no xmlns: the page names no URL at all.
    out = [f'<svg class="chart" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">',
           f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#999"/>']
    x_ticks = log2_ticks(x_lo, x_hi) if x_log else linear_ticks(x_lo, x_hi, min_step=1.0 if x_whole else 0.0)
    if x_log and len(x_ticks) < 2:     # a range within one doubling: linear ticks read better
        x_ticks = linear_ticks(x_lo, x_hi, 4)
    for x in x_ticks:
        out.append(f'<line x1="{sx(x)}" y1="{top}" x2="{sx(x)}" y2="{top + plot_h}" class="grid"/>'
                   f'<text x="{sx(x)}" y="{top + plot_h + 16}" text-anchor="middle">{_label(x)}</text>')
    for y in linear_ticks(y_lo, y_hi, 5):
        out.append(f'<line x1="{left}" y1="{sy(y)}" x2="{left + plot_w}" y2="{sy(y)}" class="grid"/>'
                   f'<text x="{left - 6}" y="{sy(y) + 4}" text-anchor="end">{_label(y)}</text>')
    out.append(f'<text class="axis-title" x="{left + plot_w / 2}" y="{height - 6}" '
               f'text-anchor="middle">{escape(x_title)}</text>')
    out.append(f'<text class="axis-title" transform="translate(16 {top + plot_h / 2}) rotate(-90)" '
               f'text-anchor="middle">{escape(y_title)}</text>')
    for s in series:
        shown = sorted(filter(drawable, s.points), key=lambda p: p.x)
        if s.line and len(shown) > 1:
            path = " ".join(f"{'M' if i == 0 else 'L'}{sx(p.x)},{sy(p.y)}" for i, p in enumerate(shown))
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            out.append(f'<path class="line" d="{path}" fill="none" stroke="{s.color}" stroke-width="2"{dash}>'
                       f'<title>{escape(s.name)}</title></path>')
        if s.ring:
            out += [f'<circle class="ring" cx="{sx(p.x)}" cy="{sy(p.y)}" r="8" fill="none" stroke="{s.color}" '
                    f'stroke-width="1.5" pointer-events="none"/>' for p in shown]
        if s.marker:
            for p in shown:
                out.append(f'<circle class="mark" data-cell="{escape(p.cell)}" cx="{sx(p.x)}" cy="{sy(p.y)}" '
                           f'r="4.5" fill="{s.color}"><title>{escape(p.tip or p.cell)}</title></circle>')
    out += _legend(series, left + plot_w + 14, top + 6)
    out.append("</svg>")
    return "".join(out)


def _legend(series: list[Series], x: float, y: float) -> list[str]:
    out, seen = [], set()
    for s in series:
        if s.name in seen or not s.points:
            continue
        seen.add(s.name)
        row_y = y + 18 * len(seen)
        if s.marker:
            out.append(f'<circle cx="{x + 9}" cy="{row_y - 4}" r="4.5" fill="{s.color}"/>')
        if s.ring:
            out.append(f'<circle cx="{x + 9}" cy="{row_y - 4}" r="7" fill="none" stroke="{s.color}"/>')
        if s.line:
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            out.append(f'<line x1="{x}" y1="{row_y - 4}" x2="{x + 18}" y2="{row_y - 4}" stroke="{s.color}" '
                       f'stroke-width="2"{dash}/>')
        out.append(f'<text x="{x + 24}" y="{row_y}">{escape(s.name)}</text>')
    return out


def diverging_color(value: float, scale: float) -> str:
    """White at 0, red for a loss, blue for a gain; intensity grows with log(1 + |value|) so that a
    0.5-BLEU loss is visible next to an 80-BLEU collapse (the legend says so)."""
    if not math.isfinite(value) or scale <= 0:
        return "#eeeeee"
    t = min(1.0, math.log1p(abs(value)) / math.log1p(scale))
    end = (214, 39, 40) if value < 0 else (31, 119, 180)
    r, g, b = (round(255 + (c - 255) * t) for c in end)
    return f"#{r:02x}{g:02x}{b:02x}"


def heat_style(value: float, scale: float) -> str:
    """A heat-map cell's CSS: its diverging colour, and black or white text, whichever reads on it."""
    background = diverging_color(value, scale)
    r, g, b = (int(background[i:i + 2], 16) for i in (1, 3, 5))
    return f"background:{background};color:{'#000' if 0.299 * r + 0.587 * g + 0.114 * b > 150 else '#fff'}"
