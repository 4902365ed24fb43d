"""Charts as inline SVG strings: no scripts, no fonts or files to fetch, so the dashboard renders offline and
prints. Every chart has a <title> for screen readers and carries data-* attributes the browser test reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#2c7a7b", "#975a16", "#4a5568")
ACCEPTED, QUARANTINED, REJECTED = "#2f855a", "#c05621", "#9b2c2c"
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def text_width(text: str) -> int:
    """Pixels a label of 12 px system-ui takes, generously (7.5 px a character): labels are never clipped, so a
    site is always named in full (`site_02_semicolon 2026-11-01 (current)`)."""
    return int(len(text) * 7.5) + 4


def _svg(width: int, height: int, title: str, body: str, kind: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{kind}" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" {FONT}>'
        f"<title>{escape(title)}</title>{body}</svg>"
    )


@dataclass(frozen=True)
class StackedBar:
    label: str
    parts: tuple[tuple[str, float, str], ...]  # (name, value, colour)
    note: str = ""


def stacked_bars(bars: Sequence[StackedBar], title: str, label_width: int = 170, width: int = 760) -> str:
    """Horizontal stacked bars on one scale, with the parts' values written in them when they fit."""
    row, top = 24, 8
    label_width = max(label_width, max((text_width(b.label) + 10 for b in bars), default=0))
    width = max(width, label_width + 520)
    total_max = max((sum(v for _, v, _ in b.parts) for b in bars), default=0) or 1
    plot = width - label_width - 120
    body: list[str] = []
    for i, bar in enumerate(bars):
        y = top + i * row
        body.append(f'<text x="{label_width - 6}" y="{y + 15}" text-anchor="end">{escape(bar.label)}</text>')
        x = float(label_width)
        for name, value, colour in bar.parts:
            w = plot * value / total_max
            if w > 0:
                body.append(
                    f'<rect class="bar" x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="{colour}">'
                    f"<title>{escape(bar.label)}: {escape(name)} {value:,.0f}</title></rect>"
                )
                if w > 34:
                    body.append(f'<text x="{x + 4:.1f}" y="{y + 15}" fill="#fff">{value:,.0f}</text>')
            x += w
        if bar.note:
            body.append(f'<text x="{x + 6:.1f}" y="{y + 15}" fill="{REJECTED}">{escape(bar.note)}</text>')
    height = top * 2 + row * max(len(bars), 1)
    return _svg(width, height, title, "".join(body), "stacked-bars")


def legend(items: Sequence[tuple[str, str]]) -> str:
    return '<p class="legend">' + " ".join(
        f'<span><i style="background:{c}"></i>{escape(n)}</span>' for n, c in items
    ) + "</p>"


def _heat_colour(share: float) -> str:
    # white (0 %) → deep blue (100 %)
    shade = int(255 - 200 * max(0.0, min(1.0, share)))
    return f"rgb({shade},{shade + int((255 - shade) * 0.25)},255)"


def heatmap(
    rows: Sequence[str], columns: Sequence[str], cells: dict[tuple[str, str], tuple[float, float | None]], title: str
) -> str:
    """Rows × columns of shares (0–1) with the share written in each cell; a cell below its threshold (the
    second value) gets a red border and a "!" so the failure does not depend on colour alone."""
    cell_w, cell_h, top = 150, 30, 44
    left = max(110, max((text_width(name) + 12 for name in rows), default=0))
    body: list[str] = []
    for j, column in enumerate(columns):
        # "table.column" on two lines, so long names do not run into each other
        lines = column.split(".", 1)
        for k, line in enumerate(lines):
            y = top - 8 - 14 * (len(lines) - 1 - k)
            body.append(
                f'<text x="{left + j * cell_w + cell_w / 2}" y="{y}" text-anchor="middle">{escape(line)}</text>'
            )
    for i, row_name in enumerate(rows):
        y = top + i * cell_h
        body.append(f'<text x="{left - 8}" y="{y + cell_h / 2 + 4}" text-anchor="end">{escape(row_name)}</text>')
        for j, column in enumerate(columns):
            x = left + j * cell_w
            if (row_name, column) not in cells:
                body.append(f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" fill="#edf2f7"/>')
                continue
            share, threshold = cells[(row_name, column)]
            below = threshold is not None and share < threshold
            stroke = ' stroke="#c53030" stroke-width="3"' if below else ""
            text_fill = "#fff" if share > 0.6 else "#1a202c"
            tip = f"{row_name} {column}: {share:.0%} recorded" + (f" (expected ≥ {threshold:.0%})" if threshold else "")
            body.append(
                f'<rect class="cell" x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                f'fill="{_heat_colour(share)}"{stroke}><title>{escape(tip)}</title></rect>'
                f'<text x="{x + cell_w / 2 - 1}" y="{y + cell_h / 2 + 4}" text-anchor="middle" fill="{text_fill}">'
                f'{share:.0%}{" !" if below else ""}</text>'
            )
    width = left + cell_w * max(len(columns), 1) + 10
    height = top + cell_h * max(len(rows), 1) + 8
    return _svg(width, height, title, "".join(body), "heatmap")


@dataclass(frozen=True)
class ForestRow:
    label: str
    estimate: float | None
    low: float | None
    high: float | None
    detail: str  # e.g. "41/55"
    group: str = ""


def forest_plot(rows: Sequence[ForestRow], title: str, reference: float | None = None) -> str:
    """Point estimates with their 95 % intervals on a 0–100 % axis; the dashed line is the overall estimate."""
    row, top, plot = 22, 30, 420
    left = max(190, max((text_width(r.label) + 12 for r in rows), default=0))
    width = left + plot + 150
    x = lambda v: left + plot * v  # noqa: E731 - a scale, read inline
    body = [
        f'<line x1="{x(0)}" y1="{top - 6}" x2="{x(1)}" y2="{top - 6}" stroke="#a0aec0"/>',
        *(
            f'<line x1="{x(t)}" y1="{top - 10}" x2="{x(t)}" y2="{top - 6}" stroke="#a0aec0"/>'
            f'<text x="{x(t)}" y="{top - 14}" text-anchor="middle" fill="#4a5568">{t:.0%}</text>'
            for t in (0, 0.25, 0.5, 0.75, 1)
        ),
    ]
    group = None
    i = 0
    for r in rows:
        if r.group != group:
            group = r.group
            body.append(f'<text x="4" y="{top + i * row + 15}" font-weight="bold">{escape(group)}</text>')
            i += 1
        y = top + i * row + 11
        body.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{escape(r.label)}</text>')
        if r.estimate is not None and r.low is not None and r.high is not None:
            body.append(
                f'<line class="interval" x1="{x(r.low):.1f}" y1="{y}" x2="{x(r.high):.1f}" y2="{y}" '
                f'stroke="#2b6cb0" stroke-width="2"/>'
                f'<rect class="point" x="{x(r.estimate) - 4:.1f}" y="{y - 4}" width="8" height="8" fill="#2b6cb0">'
                f"<title>{escape(r.label)}: {r.estimate:.1%} (95 % CI {r.low:.1%}–{r.high:.1%}; {escape(r.detail)})"
                f"</title></rect>"
            )
            text = f"{r.estimate:.0%} ({r.low:.0%}–{r.high:.0%})  {r.detail}"
        else:
            text = f"not estimable  {r.detail}"
        body.append(f'<text x="{left + plot + 10}" y="{y + 4}">{escape(text)}</text>')
        width = max(width, left + plot + 10 + text_width(text) + 6)  # the figures at the right, never cut
        i += 1
    if reference is not None:
        body.append(
            f'<line x1="{x(reference):.1f}" y1="{top}" x2="{x(reference):.1f}" y2="{top + i * row}" '
            f'stroke="#718096" stroke-dasharray="4 3"/>'
        )
    return _svg(width, top + i * row + 8, title, "".join(body), "forest")


def trend_lines(runs: Sequence[str], series: dict[str, Sequence[float]], title: str, y_label: str) -> str:
    """One line per series over the runs (oldest left), with a point and value at every run."""
    left, top, plot_w, plot_h, width = 50, 16, 560, 170, 760
    top_value = max((v for values in series.values() for v in values), default=0) or 1
    n = max(len(runs), 1)
    x = lambda i: left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)  # noqa: E731
    y = lambda v: top + plot_h - plot_h * v / top_value  # noqa: E731
    body = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#a0aec0"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#a0aec0"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{top_value:g}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>',
        f'<text x="12" y="{top + plot_h / 2}" transform="rotate(-90 12 {top + plot_h / 2})" '
        f'text-anchor="middle">{escape(y_label)}</text>',
    ]
    for i, run in enumerate(runs):
        body.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{escape(run)}</text>')
    for k, (name, values) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        body.append(f'<polyline class="series" points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for i, v in enumerate(values):
            body.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(name)}, {escape(runs[i])}: {v:g}</title></circle>"
            )
        body.append(
            f'<text x="{left + plot_w + 12}" y="{top + 14 + 16 * k}" fill="{colour}">■ {escape(name)}</text>'
        )
    return _svg(width, top + plot_h + 26, title, "".join(body), "trend")
