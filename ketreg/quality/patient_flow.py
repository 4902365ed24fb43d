"""The patient flow of the dashboard: a CONSORT-style diagram (inline SVG, nothing fetched) of metrics.patient_flow
for all sites, and the same counts per site in a table, small cells suppressed like the dashboard's metrics
(`config/privacy.yaml`). Its one entry point, `patient_flow_section`, returns an HTML fragment that the dashboard
places after the metrics."""

from __future__ import annotations

from html import escape
from typing import Any

import duckdb

from ketreg.privacy.flow_suppression import suppress_flow
from ketreg.privacy.settings import load_privacy_settings
from ketreg.quality import svg

# The diagram's main column (each step flows into the next) and, beside each, what leaves the flow there.
_MAIN_STEPS = ("received", "registered", "analysed", "completed_induction", "entered_maintenance")
_SIDE_STEPS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "received": (("quarantined", ()),),
    "registered": (("excluded", ("reason",)),),
    "analysed": (("primary_endpoint", ("status",)),),
    "completed_induction": (),
    # Discontinuations and losses happen in either phase: shown once, at the end of the flow, split both ways.
    "entered_maintenance": (("discontinued", ("phase", "reason")), ("lost_to_follow_up", ("phase",))),
}
_LABELS = {
    "received": "Patient records received", "quarantined": "Quarantined (failed the contract)",
    "registered": "Registered", "excluded": "Excluded", "analysed": "Analysed (induction-based endpoints)",
    "primary_endpoint": "Primary endpoint", "completed_induction": "Completed induction",
    "entered_maintenance": "Entered maintenance", "discontinued": "Discontinued (of the analysed)",
    "lost_to_follow_up": "Lost to follow-up (of the analysed)",
}
_BOX_W, _BOX_H, _SIDE_W, _GAP = 300, 46, 390, 34


def _flow_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    result = con.execute("SELECT * FROM metrics.patient_flow ORDER BY ALL")
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def _count(patients: int | None) -> str:
    return "suppressed" if patients is None else f"{patients:,}"


def _box(x: int, y: int, width: int, height: int, step: str, patients: int | None, lines: list[str]) -> str:
    weights = [' font-weight="600"', *[""] * (len(lines) - 1)]  # the step's name in bold
    text = "".join(
        f'<text x="{x + 10}" y="{y + 18 + 15 * i}"{weight}>{escape(line)}</text>'
        for i, (line, weight) in enumerate(zip(lines, weights, strict=True))
    )
    shown = "" if patients is None else patients  # a suppressed count leaves the attribute empty
    return (
        f'<rect class="flow-box" data-step="{escape(step)}" data-patients="{shown}" x="{x}" y="{y}" '
        f'width="{width}" height="{height}" rx="4" fill="#f7fafc" stroke="#2b6cb0"/>{text}'
    )


def flow_diagram(rows: list[dict[str, Any]], site_id: str = "all") -> str:
    """The flow of one site (or of all, `site_id = 'all'`) as an inline SVG chart."""
    mine = [r for r in rows if r["site_id"] == site_id]
    total = {r["step"]: r["patients"] for r in mine if r["breakdown"] == "total"}
    parts: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for r in mine:
        if r["breakdown"] != "total":
            parts.setdefault((r["step"], r["breakdown"]), []).append((r["category"], r["patients"]))
    body: list[str] = []
    y = 10
    for index, step in enumerate(_MAIN_STEPS):
        patients = total.get(step, 0)
        body.append(_box(10, y, _BOX_W, _BOX_H, step, patients, [_LABELS[step], f"n = {_count(patients)}"]))
        side_y = y
        for side_step, breakdowns in _SIDE_STEPS[step]:
            split = [(b, parts.get((side_step, b), [])) for b in breakdowns]
            if side_step in total:
                count = total[side_step]
            else:  # a step without a total row (primary endpoint): the sum of its parts, unless one is blanked
                shown = [n for _, n in split[0][1]] if split else []
                count = None if None in shown else sum(shown)
            lines = [f"{_LABELS[side_step]}: n = {_count(count)}"]
            # Say what a line splits by only where a box is split two ways.
            lines += [f"  {breakdown + ' ' if len(split) > 1 else ''}{category.replace('_', ' ')}: {_count(n)}"
                      for breakdown, details in split for category, n in details]
            height = 14 + 15 * len(lines)
            body.append(
                f'<line x1="{10 + _BOX_W}" y1="{y + _BOX_H // 2}" x2="{40 + _BOX_W}" y2="{side_y + 12}" '
                'stroke="#4a5568" marker-end="url(#flow-arrow)"/>'
            )
            body.append(_box(40 + _BOX_W, side_y, _SIDE_W, height, side_step, count, lines))
            side_y += height + 8
        next_y = max(y + _BOX_H + _GAP, side_y + 8)
        if index < len(_MAIN_STEPS) - 1:
            middle = 10 + _BOX_W // 2
            body.append(
                f'<line x1="{middle}" y1="{y + _BOX_H}" x2="{middle}" y2="{next_y - 2}" stroke="#4a5568" '
                'marker-end="url(#flow-arrow)"/>'
            )
        y = next_y
    arrow = (
        '<defs><marker id="flow-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#4a5568"/></marker></defs>'
    )
    title = "Patient flow, all sites" if site_id == "all" else f"Patient flow, site {site_id}"
    width = 60 + _BOX_W + _SIDE_W
    # The same frame as the dashboard's other charts (class "chart", a <title>, data-chart for the browser test).
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="patient-flow" role="img" '
        f'viewBox="0 0 {width} {y}" width="{width}" height="{y}" {svg.FONT}>'
        f"<title>{escape(title)}</title>{arrow}{''.join(body)}</svg>"
    )


def _site_table(rows: list[dict[str, Any]]) -> str:
    sites = sorted({r["site_id"] for r in rows if r["site_id"] != "all"})
    places = sorted({(r["step_order"], r["step"], r["breakdown"], r["category"]) for r in rows})
    counts = {(r["step"], r["breakdown"], r["category"], r["site_id"]): r["patients"] for r in rows}
    head = "".join(f"<th>{escape(h)}</th>" for h in ("step", "category", *sites, "all sites"))
    body = "".join(
        "<tr><td>" + escape(_LABELS.get(step, step)) + "</td><td>"
        + ("" if breakdown == "total" else escape(f"{breakdown}: {category}")) + "</td>"
        + "".join(f'<td class="num">{_count(counts.get((step, breakdown, category, s), 0))}</td>'
                  for s in (*sites, "all"))
        + "</tr>"
        for _, step, breakdown, category in places
    )
    return f'<table class="data" id="flow-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def patient_flow_section(con: duckdb.DuckDBPyConnection, small_cell_count: int | None = None) -> str:
    """The dashboard's patient-flow section (an HTML fragment), small cells suppressed (config/privacy.yaml unless
    given), or a note when metrics.patient_flow is not built."""
    built = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'metrics' AND table_name = 'patient_flow'"
    ).fetchall()[0][0]
    if not built:
        return (
            '<section id="patient-flow"><h2>Patient flow</h2><p class="empty">not available: the metrics layer '
            "(metrics.patient_flow) has not been built in this registry.</p></section>"
        )
    k = load_privacy_settings().small_cell_count if small_cell_count is None else small_cell_count
    rows = suppress_flow(_flow_rows(con), k)
    return (
        '<section id="patient-flow"><h2>Patient flow</h2>'
        "<p>From the patient records the sites sent to the patients in the induction-based endpoints (CONSORT / "
        "RECORD style). Every count comes from <code>metrics.patient_flow</code>; each box's count is the sum of the "
        f"boxes it splits into. Counts from 1 to {k - 1}, and counts that would give one back by subtraction, show "
        "as <em>suppressed</em>.</p>"
        + flow_diagram(rows)
        + "<h3>By site</h3>"
        + _site_table(rows)
        + "</section>"
    )
