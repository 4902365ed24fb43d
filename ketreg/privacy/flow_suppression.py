"""Small-cell suppression of metrics.patient_flow before it is shown beyond the registry team (the cross-site
dashboard), by the rule of `ketreg.privacy.suppression`: a count from 1 to k − 1 is blanked, and so is a
complementary one wherever a blanked count could be recovered by subtraction.

The flow's counts are tied by equations (sql/metrics/patient_flow.sql): per site, received = quarantined +
registered, registered = Σ excluded by reason + analysed, analysed = Σ primary endpoint by status, discontinued = Σ
by reason = Σ by phase, lost to follow-up = Σ by phase; and every place's `all` count = Σ over the sites. Whenever
an equation has exactly one blanked count, the smallest other non-zero count in it is blanked too, until no
equation has a lone blank (so none can be solved for it)."""

from __future__ import annotations

from typing import Any

Cell = tuple[str, str, str, str]  # step, breakdown, category, site_id


def _equations(cells: dict[Cell, int]) -> list[list[Cell]]:
    sites = sorted({site for (*_, site) in cells})
    equations: list[list[Cell]] = []
    for site in sites:
        def parts(step: str, breakdown: str, site: str = site) -> list[Cell]:
            return sorted(c for c in cells if c[0] == step and c[1] == breakdown and c[3] == site)

        total = {step: (step, "total", "all", site) for step in
                 ("received", "quarantined", "registered", "analysed", "discontinued", "lost_to_follow_up")}
        equations += [
            [total["received"], total["quarantined"], total["registered"]],
            [total["registered"], total["analysed"], *parts("excluded", "reason")],
            [total["analysed"], *parts("primary_endpoint", "status")],
            [total["discontinued"], *parts("discontinued", "reason")],
            [total["discontinued"], *parts("discontinued", "phase")],
            [total["lost_to_follow_up"], *parts("lost_to_follow_up", "phase")],
        ]
    for place in sorted({cell[:3] for cell in cells}):
        equations.append([(*place, site) for site in sites])
    return [[cell for cell in equation if cell in cells] for equation in equations]


def suppress_flow(rows: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The rows of metrics.patient_flow with `patients` blanked (None) where a count is small or would give a
    small one back, and `suppressed` set; k = 1 blanks nothing."""
    if k < 1:
        raise ValueError(f"the small-cell count must be at least 1, got {k}")
    cells = {(r["step"], r["breakdown"], r["category"], r["site_id"]): r["patients"] for r in rows}
    blanked = {cell for cell, n in cells.items() if 1 <= n <= k - 1}
    equations = _equations(cells)
    changed = True
    while changed:
        changed = False
        for equation in equations:
            hidden = [cell for cell in equation if cell in blanked]
            if len(hidden) != 1:
                continue
            # The smallest non-zero count beside it (blanking a zero hides nothing), ties by name.
            others = sorted((cells[c], c) for c in equation if c not in blanked and cells[c] > 0)
            if others:
                blanked.add(others[0][1])
                changed = True
    return [
        {**r, "patients": None if cell in blanked else r["patients"], "suppressed": cell in blanked}
        for r in rows
        for cell in [(r["step"], r["breakdown"], r["category"], r["site_id"])]
    ]
