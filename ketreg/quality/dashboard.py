"""The registry quality dashboard: one self-contained HTML file (inline CSS, inline SVG charts, a few lines of
inline script for filtering and copying SQL), written beside the Data Docs in the reports folder. It opens from
the file system or any web server and fetches nothing."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
from markupsafe import Markup

from ketreg.privacy.settings import load_privacy_settings
from ketreg.privacy.shared_metrics import suppressed_metrics
from ketreg.quality import svg
from ketreg.quality.landing_section import landing_section
from ketreg.quality.patient_flow import patient_flow_section
from ketreg.quality.planning_section import planning_section
from ketreg.quality.rules import KAHN_CATEGORIES
from ketreg.quality.site_pages import site_pages_section
from ketreg.quality.templating import SECTIONS as _SECTIONS
from ketreg.quality.templating import TEMPLATES as _TEMPLATES
from ketreg.quality.templating import n as _n
from ketreg.staging.fix_list import CASCADE_RULE
from ketreg.warehouse.connection import scalar, sql_text

DASHBOARD_FILE = "index.html"
_TOP_REASONS = 15
OUTCOME_MEASURES = (
    ("assessments", "nprs"), ("assessments", "function_score"), ("assessments", "satisfaction"),
    ("assessments", "daily_mme"), ("infusions", "relief_duration_days"),
)
# Headline metrics shown with their intervals, in this order (those the metrics layer has).
HEADLINE_METRICS = (
    "cohort_patients", "cohort_infusions", "responder_rate", "substantial_responder_rate", "durable_relief",
    "ae_rate_per_infusion", "serious_ae_rate", "discontinuation_rate", "outcome_completeness",
)


def _rows(con: duckdb.DuckDBPyConnection, query: str, parameters: Any = None) -> list[dict[str, Any]]:
    result = con.execute(query, parameters or [])
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def _has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(scalar(
        con,
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = $schema AND table_name = $table",
        {"schema": schema, "table": table},
    ))


def _intake(con: duckdb.DuckDBPyConnection) -> str:
    exports = _rows(con, sql_text("quality/intake_by_export.sql"))
    bars = [
        svg.StackedBar(
            f"{e['site_id']} {e['export_id']}" + (" (current)" if e["is_current"] else ""),
            (("accepted", e["rows_accepted"], svg.ACCEPTED), ("quarantined", e["rows_quarantined"], svg.QUARANTINED)),
            "export rejected" if e["status"] == "rejected" else f"{e['rows_quarantined']:,} quarantined",
        )
        for e in exports
    ]
    return str(_SECTIONS.intake(
        exports,
        Markup(svg.stacked_bars(bars, "Rows per site and export: accepted and quarantined", label_width=210)),
        Markup(svg.legend([("accepted", svg.ACCEPTED), ("quarantined", svg.QUARANTINED)])),
    ))


def _quarantine(con: duckdb.DuckDBPyConnection) -> str:
    reasons = _rows(con, sql_text("quality/quarantine_reasons.sql"))
    by_rule: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    sites = sorted({r["site_id"] for r in reasons})
    for r in reasons:
        by_rule[f"{r['file_name'].removesuffix('.csv')}: {r['rule']}"][r["site_id"]] += r["quarantined_rows"]
    colours = {site: svg.PALETTE[i % len(svg.PALETTE)] for i, site in enumerate(sites)}
    # Root causes first: a cascade (parent_quarantined) follows from rows already counted above it.
    ordered = sorted(by_rule.items(), key=lambda item: (item[0].endswith(CASCADE_RULE), -sum(item[1].values())))
    ordered = ordered[:_TOP_REASONS]
    bars = [
        svg.StackedBar(rule, tuple((site, counts.get(site, 0), colours[site]) for site in sites))
        for rule, counts in ordered
    ]
    chart = (
        svg.stacked_bars(bars, f"The {_TOP_REASONS} most frequent quarantine reasons, by site", label_width=300)
        if bars else ""
    )
    return str(_SECTIONS.quarantine(reasons, _TOP_REASONS, Markup(chart), Markup(svg.legend(list(colours.items())))))


def _deviations(con: duckdb.DuckDBPyConnection) -> str:
    deviations = _rows(con, sql_text("quality/deviations_by_site.sql"))
    kinds = sorted({d["deviation"] for d in deviations})
    per_site: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for d in deviations:
        per_site[(d["site_id"], d["export_id"])][d["deviation"]] = d["infusions"]
    return str(_SECTIONS.deviations(kinds, sorted(per_site.items())))


def _completeness(checks: list[dict[str, Any]]) -> str:
    cells: dict[tuple[str, str], tuple[float, float | None]] = {}
    sites: set[str] = set()
    wanted = {f"{column}_recorded": f"{table}.{column}" for table, column in OUTCOME_MEASURES}
    for c in checks:
        if (
            c["source"] == "great_expectations" and c["site_id"] != "all"
            and c["check_name"] in wanted and c["denominator"]
        ):
            share = 1 - c["numerator"] / c["denominator"]
            cells[(c["site_id"], wanted[c["check_name"]])] = (share, 1 - c["threshold"])
            sites.add(c["site_id"])
    columns = [f"{t}.{c}" for t, c in OUTCOME_MEASURES]
    heatmap = svg.heatmap(sorted(sites), columns, cells, "Outcome measure completeness by site") if cells else ""
    return str(_SECTIONS.completeness(Markup(heatmap)))


def _checks_context(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """What templates/checks_section.html.j2 needs: the checks failed first, then by Kahn category."""
    order = {c: i for i, c in enumerate(KAHN_CATEGORIES)}
    return {
        "checks": sorted(checks, key=lambda c: (c["passed"], order.get(c["category"], 9), c["site_id"],
                                                c["check_id"])),
        "check_sites": sorted({c["site_id"] for c in checks}),
        "categories": KAHN_CATEGORIES,
        "check_headings": ("category", "site", "table", "check", "violating rows (numerator)",
                           "rows checked (denominator)", "share", "threshold", "result", "since last run",
                           "links", "violating rows"),
    }


def _changes(con: duckdb.DuckDBPyConnection, check_rows: list[dict[str, Any]]) -> str:
    changes = _rows(con, "SELECT * FROM quality.check_changes WHERE change <> 'passing' ORDER BY change, site_id")
    runs = scalar(con, "SELECT count(DISTINCT run_id) FROM quality.check_results")
    counts = {k: sum(c["change"] == k for c in changes) for k in ("new", "persisting", "resolved")}
    trend = _rows(con, sql_text("quality/site_trend.sql"))
    run_ids: list[str] = []
    labels: list[str] = []
    for t in trend:
        if t["run_id"] not in run_ids:
            run_ids.append(t["run_id"])
            labels.append(t["run_at"].strftime("%m-%d %H:%M"))
    series: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(run_ids))
    for t in trend:
        name = "registry-wide" if t["site_id"] == "all" else t["site_id"]
        series[name][run_ids.index(t["run_id"])] = float(t["failed_checks"])
    chart = svg.trend_lines(labels, dict(sorted(series.items())), "Failed checks per site over runs", "failed checks")
    return str(_SECTIONS.changes(changes, runs, counts, Markup(chart)))


def _fmt_metric(unit: str, value: float | None) -> str:
    if value is None:
        return "–"
    if unit == "proportion":
        return f"{value:.1%}"
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:.3f}"


def metrics_section(con: duckdb.DuckDBPyConnection, small_cell_count: int | None = None) -> str:
    """The metric table and forest plot, small cells suppressed (config/privacy.yaml unless given); the
    release's aggregates reuse it."""
    if not _has_table(con, "metrics", "registry_metrics"):
        return str(_SECTIONS.metrics(False))
    k = load_privacy_settings().small_cell_count if small_cell_count is None else small_cell_count
    shared = suppressed_metrics(con, k)
    overall = {r["metric"]: r for r in shared if r["stratum_type"] == "overall"}
    rows = []
    for name in HEADLINE_METRICS:
        if name not in overall:
            continue
        m = overall[name]
        interval = (
            f"{_fmt_metric(m['unit'], m['ci_low'])} – {_fmt_metric(m['unit'], m['ci_high'])}"
            if m["ci_low"] is not None else ""
        )
        estimate = "suppressed" if m["suppressed"] else _fmt_metric(m["unit"], m["estimate"])
        rows.append([name.replace("_", " "), estimate, interval, _n(m["numerator"]), _n(m["denominator"])])
    strata = sorted(
        (r for r in shared if r["metric"] == "responder_rate" and r["stratum_type"] in ("site", "etiology")),
        key=lambda r: (r["stratum_type"] != "site", r["stratum"]),
    )
    forest = [
        svg.ForestRow(s["stratum"], s["estimate"], s["ci_low"], s["ci_high"],
                      f"suppressed (a count below {k})" if s["suppressed"] else f"{s['numerator']}/{s['denominator']}",
                      "by site" if s["stratum_type"] == "site" else "by etiology")
        for s in strata
    ]
    reference = overall.get("responder_rate", {}).get("estimate")
    title = "Responder rate with 95 % intervals by site and etiology"
    chart = svg.forest_plot(forest, title, reference) if forest else ""
    return str(_SECTIONS.metrics(True, rows, Markup(chart), k))


def render_dashboard(con: duckdb.DuckDBPyConnection, reports_dir: Path, dagster_url: str) -> Path:
    """Write `reports_dir/index.html` from the registry, the newest quality run and (if built) the metrics."""
    checks = _rows(
        con,
        "SELECT * FROM quality.check_results WHERE run_id = "
        "(SELECT arg_max(run_id, run_at) FROM quality.check_results)",
    )
    changes = dict(con.execute("SELECT check_id, change FROM quality.check_changes").fetchall())
    run_id = checks[0]["run_id"] if checks else ""
    failed = [c for c in checks if not c["passed"]]
    sites = sorted({c["site_id"] for c in checks if c["site_id"] != "all"})
    counts = {k: sum(v == k for v in changes.values()) for k in ("new", "persisting", "resolved")}
    cards = (
        ("sites", len(sites)), ("checks", len(checks)), ("failed checks", len(failed)),
        *((f"failed: {c}", sum(f["category"] == c for f in failed)) for c in KAHN_CATEGORIES),
        ("new failures", counts["new"]), ("persisting", counts["persisting"]), ("resolved", counts["resolved"]),
    )
    html = _TEMPLATES.get_template("dashboard.html.j2").render(
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        run_id=run_id,
        dagster_url=dagster_url,
        cards=cards,
        changes=changes,
        sections_before_checks=Markup(
            site_pages_section(con) + _intake(con) + landing_section(con) + _quarantine(con) + _deviations(con)
            + _completeness(checks) + _changes(con, checks)
        ),
        sections_after_checks=Markup(metrics_section(con) + patient_flow_section(con) + planning_section(con)),
        **_checks_context(checks),
    )
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / DASHBOARD_FILE
    tmp = path.with_name(f".{path.name}.writing")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
