"""The dashboard's "Planning the next study" section: Kaplan–Meier curves, the pooled forest plot with its
prediction interval, the Firth predictor table with adjusted p-values, and the sample sizes with their inputs.
Reads only the metrics schema; says so plainly when a table has not been built. Small cells follow the privacy
rule of the rest of the dashboard (config/privacy.yaml, k): a site's curve and median are shown only for a site
with at least k patients, counts from 1 to k − 1 are written "< k", and the forest plot's site rows are the
suppressed rows of metrics.registry_metrics."""

from __future__ import annotations

from typing import Any

import duckdb
from markupsafe import Markup

from ketreg.privacy.settings import load_privacy_settings
from ketreg.privacy.shared_metrics import suppressed_metrics
from ketreg.quality import svg, svg_planning
from ketreg.quality.templating import PLANNING
from ketreg.warehouse.connection import scalar

AT_RISK_DAYS = (0, 7, 14, 21, 28, 42, 56, 84, 168)
ENDPOINT_NAMES = {
    "relief_duration": "Duration of relief per infusion",
    "time_on_treatment": "Time on treatment",
    "discontinuation_cumulative_incidence": "Discontinuation (cumulative incidence)",
}


def _rows(con: duckdb.DuckDBPyConnection, query: str) -> list[dict[str, Any]]:
    result = con.execute(query)
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def _has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(scalar(con, "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                            "AND schema_name = 'metrics' AND table_name = $t", {"t": table}))


# Cells are plain text: the templates (templates/planning.html.j2) escape them.
def _count(value: int | None, k: int) -> str:
    """A count of people, written "< k" when it is a small cell (1 to k − 1)."""
    if value is None:
        return "–"
    return f"< {k}" if 1 <= value < k else f"{value:,}"


def _num(value: Any, pattern: str = "{:.3g}") -> str:
    return "–" if value is None else pattern.format(value)


def _curves(points: list[dict[str, Any]], endpoint: str) -> list[svg_planning.Curve]:
    curves = []
    strata = sorted({(p["stratum_type"] != "overall", p["stratum"]) for p in points if p["endpoint"] == endpoint})
    for not_overall, stratum in strata:
        mine = [p for p in points if p["endpoint"] == endpoint and p["stratum"] == stratum
                and (p["stratum_type"] != "overall") == not_overall]
        curves.append(svg_planning.Curve(
            "all sites" if not not_overall else stratum,
            [(p["time_days"], p["survival"], p["ci_low"], p["ci_high"], p["at_risk"]) for p in mine],
            mine[0]["at_risk"] if mine else 0,
        ))
    return curves


def _at_risk(curve: svg_planning.Curve, k: int) -> list[str]:
    cells = []
    for day in AT_RISK_DAYS:
        later = [p for p in curve.points if p[0] >= day]
        cells.append(_count(later[0][4], k) if later else "0")
    return cells


def _time_to_event(con: duckdb.DuckDBPyConnection, k: int) -> Markup:
    if not _has(con, "time_to_event"):
        return PLANNING.empty("time-to-event metrics not built (metrics.time_to_event)")
    points = _rows(con, "SELECT * FROM metrics.time_to_event ORDER BY endpoint, stratum_type, stratum, time_days")
    summary = _rows(con, "SELECT * FROM metrics.time_to_event_summary "
                         "ORDER BY endpoint, stratum_type <> 'overall', stratum_type, stratum")
    small_sites = {(s["endpoint"], s["stratum"]) for s in summary if s["stratum_type"] == "site" and s["patients"] < k}
    points = [p for p in points if (p["endpoint"], p["stratum"]) not in small_sites or p["stratum_type"] != "site"]
    plots = []
    for endpoint in ("relief_duration", "time_on_treatment"):
        curves = _curves(points, endpoint)
        if not curves:
            continue
        plot = svg_planning.km_plot(curves, f"Kaplan–Meier: {ENDPOINT_NAMES[endpoint]} (shaded: 95 % CI)")
        plots.append((ENDPOINT_NAMES[endpoint], Markup(plot), [[c.label, *_at_risk(c, k)] for c in curves]))
    rows = []
    for s in summary:
        name = [ENDPOINT_NAMES.get(s["endpoint"], s["endpoint"]), s["stratum"]]
        if (s["endpoint"], s["stratum"]) in small_sites and s["stratum_type"] == "site":
            rows.append([*name, _count(s["patients"], k), f"suppressed (fewer than {k} patients)", "", ""])
            continue
        rows.append([*name, _count(s["patients"], k), _count(s["events"], k), _num(s["median_days"], "{:g}"),
                     f"{_num(s['ci_low'], '{:g}')} – {_num(s['ci_high'], '{:g}')}"])
    return PLANNING.time_to_event(plots, ["number at risk", *(f"day {d}" for d in AT_RISK_DAYS)], rows)


def _heterogeneity(con: duckdb.DuckDBPyConnection, k: int) -> Markup:
    if not _has(con, "site_heterogeneity"):
        return PLANNING.empty("site heterogeneity not built (metrics.site_heterogeneity)")
    pooled_rows = _rows(con, "SELECT * FROM metrics.site_heterogeneity ORDER BY metric DESC, method")
    forest_plot = Markup("")
    dl = [r for r in pooled_rows if r["method"] == "DL" and r["pooled_estimate"] is not None]
    sites = sorted((r for r in suppressed_metrics(con, k) if r["metric"] == "responder_rate"
                    and r["stratum_type"] == "site"), key=lambda r: r["stratum"]) \
        if _has(con, "registry_metrics") else []
    study = next((r for r in dl if r["metric"] == "responder_rate"), None)
    if study and sites:
        forest = [svg.ForestRow(s["stratum"], s["estimate"], s["ci_low"], s["ci_high"],
                                f"suppressed (a count below {k})" if s["suppressed"]
                                else f"{s['numerator']}/{s['denominator']}") for s in sites]
        pooled = svg_planning.Pooled("pooled (DL)", study["pooled_estimate"], study["ci_low"], study["ci_high"],
                                     study["pi_low"], study["pi_high"])
        title = "Responder rate by site, random-effects pooled"
        forest_plot = Markup(svg_planning.pooled_forest(forest, pooled, title))
    rows = [[r["metric"], r["method"], _num(r["sites"], "{}"), _num(r["pooled_estimate"], "{:.1%}"),
             f"{_num(r['ci_low'], '{:.1%}')} – {_num(r['ci_high'], '{:.1%}')}", _num(r["tau2"]),
             _num(r["i2"], "{:.0%}"), _num(r["q"], "{:.2f}"),
             f"{_num(r['pi_low'], '{:.1%}')} – {_num(r['pi_high'], '{:.1%}')}"] for r in pooled_rows]
    icc_shown = None
    if _has(con, "study_planning"):
        icc = _rows(con, "SELECT DISTINCT site_icc, site_icc_ci_low, site_icc_ci_high FROM metrics.study_planning")
        if icc and "site_icc" in icc[0]:
            i = icc[0]
            icc_shown = (_num(i["site_icc"]), _num(i["site_icc_ci_low"]), _num(i["site_icc_ci_high"]))
    return PLANNING.heterogeneity(forest_plot, icc_shown, rows)


def _predictors(con: duckdb.DuckDBPyConnection, k: int) -> Markup:
    if not _has(con, "response_predictors"):
        return PLANNING.empty("predictors not built (metrics.response_predictors)")
    columns = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE "
                                         "table_schema = 'metrics' AND table_name = 'response_predictors'").fetchall()}
    if "method" not in columns:
        return PLANNING.empty("no Firth fits in metrics.response_predictors")
    fits = _rows(con, "SELECT * FROM metrics.response_predictors WHERE method = 'firth' "
                      "ORDER BY model DESC, factor, level NULLS LAST")
    rows = [[f["model"], f["factor"], f["level"] or "(not recorded)",
             f["reference_level"] or "", _count(f["patients"], k), _num(f["odds_ratio"], "{:.2f}"),
             f"{_num(f['ci_low'], '{:.2f}')} – {_num(f['ci_high'], '{:.2f}')}", _num(f["p_value"]),
             _num(f["p_holm"]), _num(f["p_bh"]),
             "" if (f["note"] or "").startswith("profile penalised") else f["note"] or ""]
            for f in fits if f["factor"] != "sample_size_adequacy" and f["level"] != f["reference_level"]]
    adequacy = [f["note"] for f in fits if f["factor"] == "sample_size_adequacy"]
    return PLANNING.predictors(rows, adequacy)


def _planning(con: duckdb.DuckDBPyConnection) -> Markup:
    if not _has(con, "study_planning"):
        return PLANNING.empty("study planning not built (metrics.study_planning)")
    plans = _rows(con, "SELECT * FROM metrics.study_planning ORDER BY power, design, clustering")
    if plans and "inputs" not in plans[0]:
        return PLANNING.empty("metrics.study_planning has no inputs column (an older build)")
    rows = [[p["design"], p["clustering"], _num(p["power"], "{:g}"), _num(p["effect_size"]),
             _num(p["n_per_arm"], "{}"), _num(p["n_per_arm_after_dropout"], "{}"), _num(p["design_effect"]),
             _num(p["n_per_arm_planned"], "{}"), _num(p["total_patients"], "{}"),
             _num(p["total_patients_icc_upper"], "{}"),
             PLANNING.inputs_cell(p["inputs"] or "", p["note"] or "")]
            for p in plans]
    estimand = plans[0]["estimand"] if plans else ""
    return PLANNING.sample_sizes(estimand, rows)


def planning_section(con: duckdb.DuckDBPyConnection, small_cell_count: int | None = None) -> str:
    """The HTML fragment of the planning section (one <section id="planning">), small cells suppressed
    (config/privacy.yaml unless given)."""
    k = load_privacy_settings().small_cell_count if small_cell_count is None else small_cell_count
    return str(PLANNING.section(_time_to_event(con, k), _heterogeneity(con, k), _predictors(con, k), _planning(con)))
