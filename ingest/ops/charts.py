"""Bar charts as inline SVG: the status page draws its own, with no script and nothing fetched."""

from __future__ import annotations

import math
from collections.abc import Callable
from html import escape

# Drawing area and margins, in SVG user units (the chart scales to its container).
WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 12, 28
BAR_COLOUR = "#2f6fb0"
GRID_COLOUR = "#d8dde3"
# At most this many x-axis labels, so they never overlap.
MAX_LABELS = 12


def bar_chart(bars: list[tuple[str, float]], *, title: str, value: Callable[[float], str] = lambda v: f"{v:g}",
              name: str = "chart") -> str:
    """An SVG bar per (label, value); each bar's tooltip (and data-value) gives its exact value."""
    top = max((v for _, v in bars), default=0.0)
    scale_top = _nice(top)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(bars), 1)
    every = max(1, -(-len(bars) // MAX_LABELS))
    parts = [
        f'<svg class="chart" data-chart="{escape(name)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID_COLOUR}"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
                     f"{escape(value(scale_top * fraction))}</text>")
    for index, (label, amount) in enumerate(bars):
        height = plot_h * (amount / scale_top) if scale_top else 0
        x = LEFT + index * step
        parts.append(
            f'<rect x="{x + step * 0.12:.1f}" y="{TOP + plot_h - height:.1f}" width="{step * 0.76:.1f}" '
            f'height="{height:.1f}" fill="{BAR_COLOUR}" data-label="{escape(label)}" data-value="{amount:g}">'
            f"<title>{escape(label)}: {escape(value(amount))}</title></rect>"
        )
        if index % every == 0:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11">'
                         f"{escape(label)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _nice(top: float) -> float:
    """The axis maximum: `top` rounded up to 1, 2 or 5 times a power of ten (1 when empty)."""
    if top <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(top))
    for multiple in (1, 2, 5, 10):
        if top <= multiple * magnitude:
            return float(multiple * magnitude)
    return float(10 * magnitude)
