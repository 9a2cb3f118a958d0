"""Small SVG bar charts drawn on the server: no script, no style attribute (the strict CSP
holds), readable without JavaScript; each comes with a table of its figures for screen
readers and for copying."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT, GAP = 600, 160, 2


@dataclass(frozen=True)
class Bar:
    label: str  # what the bar counts (a day, a reason)
    value: int


def bar_chart(title: str, bars: Sequence[Bar]) -> Markup:
    """An ``<svg>`` of ``bars``: each bar's label and value in its ``<title>``, the chart's
    title as its accessible name. Every text in it is escaped here; numbers are numbers."""
    top = max((bar.value for bar in bars), default=0) or 1
    width = WIDTH / max(len(bars), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for index, bar in enumerate(bars):
        height = round(bar.value / top * (HEIGHT - 10), 1)
        x = round(index * width, 1)
        parts.append(
            f'<rect x="{x}" y="{HEIGHT - height}" width="{max(width - GAP, 1):.1f}" '
            f'height="{height}"><title>{escape(bar.label)}: {bar.value}</title></rect>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (built above from escaped text and numbers)
