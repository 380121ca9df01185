"""Charts drawn on the server as inline SVG: the appliance has no Internet, and the dashboard no JavaScript.

Each chart is an image for screen readers (`role="img"`, a `<title>` and a `<desc>` listing every value)
and prints as it shows. Every label is escaped: category and profile names come from lists and files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import count

from markupsafe import Markup, escape

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
BAR = "#1f5fa8"
INK = "#1c232b"
SOFT = "#5b6672"
LINE = "#d9dee4"
_serial = count(1)


def _ident(title: str) -> str:
    """A document-unique id for the chart's title and description."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40] or "chart"
    return f"chart-{slug}-{next(_serial)}"


def _short(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _svg(ident: str, title: str, desc: str, width: int, height: int, body: list[str]) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}" role="img" aria-labelledby="{ident}-t {ident}-d"'
        f' font-family="{escape(FONT)}" font-size="12" fill="{INK}">'
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(desc)}</desc>'
    )
    return Markup(head + "".join(body) + "</svg>")


def _desc(names: Sequence[str], values: Sequence[int], empty: str) -> str:
    if not names:
        return empty
    return "; ".join(f"{n}: {v}" for n, v in zip(names, values, strict=True)) + "."


def bar_chart(
    title: str,
    items: Sequence[tuple[str, int]],
    *,
    width: int = 640,
    label_width: int = 200,
    colour: str = BAR,
    empty: str = "Nothing in this period.",
) -> Markup:
    """Horizontal bars, one per (label, value), labels on the left and values at the bars' ends."""
    ident = _ident(title)
    names = [label for label, _ in items]
    values = [max(int(v), 0) for _, v in items]
    row = 24
    height = max(len(items), 1) * row + 8
    body: list[str] = []
    if not items:
        body.append(f'<text x="8" y="20" fill="{SOFT}">{escape(empty)}</text>')
    top = max(values, default=0) or 1
    room = width - label_width - 56
    chars = max(label_width // 7, 4)
    for i, (name, value) in enumerate(zip(names, values, strict=True)):
        y = 4 + i * row
        length = round(room * value / top)
        body.append(
            f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end">{escape(_short(name, chars))}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{max(length, 1 if value else 0)}" height="{row - 8}"'
            f' fill="{escape(colour)}"><title>{escape(name)}: {value}</title></rect>'
            f'<text x="{label_width + length + 6}" y="{y + 15}">{value}</text>'
        )
    return _svg(ident, title, _desc(names, values, empty), width, height, body)


def column_chart(
    title: str,
    items: Sequence[tuple[str, int]],
    *,
    names: Sequence[str] | None = None,
    width: int = 720,
    height: int = 220,
    colour: str = BAR,
    empty: str = "Nothing in this period.",
) -> Markup:
    """Vertical columns over time, one per (short axis label, value); `names` are the long names
    (`3 November 2026`) read out and shown on hover, when the axis labels are short (`3`)."""
    ident = _ident(title)
    labels = [label for label, _ in items]
    long_names = list(names) if names is not None and len(names) == len(items) else labels
    values = [max(int(v), 0) for _, v in items]
    left, bottom, top_margin = 8, 22, 18
    plot = height - bottom - top_margin
    body = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 8}" y2="{height - bottom}" stroke="{LINE}"/>'
    ]
    if not items:
        body.append(f'<text x="{left}" y="{height // 2}" fill="{SOFT}">{escape(empty)}</text>')
    step = (width - left - 8) / max(len(items), 1)
    top = max(values, default=0) or 1
    for i, (label, name, value) in enumerate(zip(labels, long_names, values, strict=True)):
        x = left + i * step
        middle = x + step / 2
        tall = round(plot * value / top)
        body.append(
            f'<rect x="{x + step * 0.15:.1f}" y="{height - bottom - tall}" width="{step * 0.7:.1f}"'
            f' height="{tall}" fill="{escape(colour)}"><title>{escape(name)}: {value}</title></rect>'
            f'<text x="{middle:.1f}" y="{height - 6}" text-anchor="middle" font-size="10"'
            f' fill="{SOFT}">{escape(label)}</text>'
        )
        if value:
            body.append(
                f'<text x="{middle:.1f}" y="{height - bottom - tall - 4}" text-anchor="middle"'
                f' font-size="10">{value}</text>'
            )
    return _svg(ident, title, _desc(long_names, values, empty), width, height, body)


def grid_table(
    caption: str,
    rows: Sequence[str],
    columns: Sequence[str],
    cells: Mapping[tuple[str, str], int],
) -> Markup:
    """The three-Cs grid as an HTML table (areas down, risks across), each cell shaded by its count."""
    top = max(cells.values(), default=0) or 1
    out = [
        f'<table class="three-cs"><caption>{escape(caption)}</caption><thead><tr>',
        '<th scope="col"><span class="sr-only">Area</span></th>',
        *(f'<th scope="col" class="num">{escape(c)}</th>' for c in columns),
        "</tr></thead><tbody>",
    ]
    for r in rows:
        out.append(f'<tr><th scope="row">{escape(r)}</th>')
        for c in columns:
            n = cells.get((r, c), 0)
            shade = f' style="background:rgba(179,38,30,{0.08 + 0.5 * n / top:.2f})"' if n else ""
            out.append(f'<td class="num"{shade}>{n}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return Markup("".join(out))
