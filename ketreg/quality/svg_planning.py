"""Charts of the planning section as inline SVG: Kaplan–Meier step curves with their intervals, and a forest
plot of site responder rates with the random-effects pooled diamond and its prediction interval. Like
svg.py: no scripts or fonts to fetch, a <title> on every chart, data-* attributes for the browser test, and
each site's counts kept on its marks (so a small-cell rule can hide them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from ketreg.quality.svg import PALETTE, ForestRow, _svg


@dataclass(frozen=True)
class Curve:
    """One Kaplan–Meier curve: (time_days, survival, ci_low, ci_high, at_risk) from time 0, in time order."""

    label: str
    points: Sequence[tuple[float, float, float | None, float | None, int]]
    patients: int


def km_plot(curves: Sequence[Curve], title: str, x_label: str = "days") -> str:
    """Step curves on a 0–1 axis; the first curve gets its 95 % band shaded."""
    left, top, plot_w, plot_h, width = 50, 14, 560, 200, 760
    t_max = max((p[0] for c in curves for p in c.points), default=1) or 1
    x = lambda t: left + plot_w * t / t_max  # noqa: E731 - a scale, read inline
    y = lambda s: top + plot_h * (1 - s)  # noqa: E731
    body = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#a0aec0"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#a0aec0"/>',
        *(f'<text x="{left - 6}" y="{y(s) + 4:.1f}" text-anchor="end">{s:.0%}</text>' for s in (0, 0.5, 1)),
        f'<line x1="{left}" y1="{y(0.5):.1f}" x2="{left + plot_w}" y2="{y(0.5):.1f}" stroke="#e2e8f0" '
        'stroke-dasharray="3 3"/>',
        f'<text x="{left + plot_w}" y="{top + plot_h + 16}" text-anchor="end">{t_max:g} {escape(x_label)}</text>',
        f'<text x="{left}" y="{top + plot_h + 16}" text-anchor="middle">0</text>',
    ]
    for k, curve in enumerate(curves):
        colour = PALETTE[k % len(PALETTE)]
        steps, band_top, band_bottom = [], [], []
        previous = None
        for time, survival, low, high, _ in curve.points:
            if previous is not None:
                steps.append(f"{x(time):.1f},{y(previous):.1f}")
            steps.append(f"{x(time):.1f},{y(survival):.1f}")
            previous = survival
            if k == 0 and low is not None and high is not None:
                band_top.append(f"{x(time):.1f},{y(high):.1f}")
                band_bottom.append(f"{x(time):.1f},{y(low):.1f}")
        if band_top:
            polygon = " ".join(band_top + list(reversed(band_bottom)))
            body.append(f'<polygon class="band" points="{polygon}" fill="{colour}" fill-opacity="0.15"/>')
        body.append(
            f'<polyline class="km" data-label="{escape(curve.label)}" data-patients="{curve.patients}" '
            f'points="{" ".join(steps)}" fill="none" stroke="{colour}" stroke-width="{2.5 if k == 0 else 1.5}">'
            f"<title>{escape(curve.label)} ({curve.patients} patients)</title></polyline>"
        )
        body.append(f'<text x="{left + plot_w + 10}" y="{top + 14 + 16 * k}" fill="{colour}">■ '
                    f"{escape(curve.label)}</text>")
    return _svg(width, top + plot_h + 26, title, "".join(body), "km")


@dataclass(frozen=True)
class Pooled:
    """The random-effects pooled estimate, its 95 % CI and 95 % prediction interval (proportions)."""

    label: str
    estimate: float
    low: float
    high: float
    pi_low: float | None
    pi_high: float | None


def pooled_forest(rows: Sequence[ForestRow], pooled: Pooled, title: str) -> str:
    """Sites' rates with intervals, then the pooled diamond (CI) with its prediction interval as a line."""
    row, top, left, plot, width = 22, 30, 190, 420, 880
    x = lambda v: left + plot * v  # noqa: E731
    body = [
        f'<line x1="{x(0)}" y1="{top - 6}" x2="{x(1)}" y2="{top - 6}" stroke="#a0aec0"/>',
        *(
            f'<line x1="{x(t)}" y1="{top - 10}" x2="{x(t)}" y2="{top - 6}" stroke="#a0aec0"/>'
            f'<text x="{x(t)}" y="{top - 14}" text-anchor="middle" fill="#4a5568">{t:.0%}</text>'
            for t in (0, 0.25, 0.5, 0.75, 1)
        ),
    ]
    for i, r in enumerate(rows):
        y = top + i * row + 11
        body.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{escape(r.label)}</text>')
        if r.estimate is not None and r.low is not None and r.high is not None:
            body.append(
                f'<line class="interval" x1="{x(r.low):.1f}" y1="{y}" x2="{x(r.high):.1f}" y2="{y}" '
                f'stroke="#2b6cb0" stroke-width="2"/>'
                f'<rect class="point" data-detail="{escape(r.detail)}" x="{x(r.estimate) - 4:.1f}" y="{y - 4}" '
                f'width="8" height="8" fill="#2b6cb0"><title>{escape(r.label)}: {r.estimate:.1%} '
                f"(95 % CI {r.low:.1%}–{r.high:.1%}; {escape(r.detail)})</title></rect>"
            )
            text = f"{r.estimate:.0%} ({r.low:.0%}–{r.high:.0%})  {r.detail}"
        else:
            text = f"not estimable  {r.detail}"
        body.append(f'<text x="{left + plot + 10}" y="{y + 4}">{escape(text)}</text>')
    y = top + len(rows) * row + 14
    if pooled.pi_low is not None and pooled.pi_high is not None:
        body.append(
            f'<line class="prediction-interval" x1="{x(pooled.pi_low):.1f}" y1="{y}" x2="{x(pooled.pi_high):.1f}" '
            f'y2="{y}" stroke="#c05621" stroke-width="2" stroke-dasharray="5 3">'
            f"<title>95 % prediction interval for a new site: {pooled.pi_low:.1%}–{pooled.pi_high:.1%}</title></line>"
        )
    diamond = (f"{x(pooled.low):.1f},{y} {x(pooled.estimate):.1f},{y - 7} {x(pooled.high):.1f},{y} "
               f"{x(pooled.estimate):.1f},{y + 7}")
    body.append(
        f'<polygon class="diamond" points="{diamond}" fill="#1a365d"><title>{escape(pooled.label)}: '
        f"{pooled.estimate:.1%} (95 % CI {pooled.low:.1%}–{pooled.high:.1%})</title></polygon>"
        f'<text x="{left - 8}" y="{y + 4}" text-anchor="end" font-weight="bold">{escape(pooled.label)}</text>'
    )
    pi = (f"; PI {pooled.pi_low:.0%}–{pooled.pi_high:.0%}" if pooled.pi_low is not None else "; PI needs ≥ 3 sites")
    body.append(f'<text x="{left + plot + 10}" y="{y + 4}">{pooled.estimate:.0%} '
                f"({pooled.low:.0%}–{pooled.high:.0%}){escape(pi)}</text>")
    return _svg(width, y + 16, title, "".join(body), "pooled-forest")
