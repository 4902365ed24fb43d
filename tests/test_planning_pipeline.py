"""The planning metrics from a real pipeline run (the session's synthetic three-site registry): the published
shapes analysts query, the Kaplan–Meier medians against statsmodels on the run's own event times, identical
tables when the assets run again on the same data, and the dashboard's planning section in headless Chromium
with the network cut off."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pytest
from statsmodels.duration.survfunc import SurvfuncRight
from support import RegistryRun

from ketreg.metrics.time_to_event import relief_episodes, treatment_courses

PUBLISHED_SHAPES = {
    "site_heterogeneity": [
        ("metric", "VARCHAR"), ("method", "VARCHAR"), ("sites", "BIGINT"), ("pooled_estimate", "DOUBLE"),
        ("ci_low", "DOUBLE"), ("ci_high", "DOUBLE"), ("tau2", "DOUBLE"), ("i2", "DOUBLE"), ("q", "DOUBLE"),
        ("pi_low", "DOUBLE"), ("pi_high", "DOUBLE"),
    ],
    "time_to_event": [
        ("endpoint", "VARCHAR"), ("stratum_type", "VARCHAR"), ("stratum", "VARCHAR"), ("time_days", "DOUBLE"),
        ("at_risk", "BIGINT"), ("events", "BIGINT"), ("censored", "BIGINT"), ("survival", "DOUBLE"),
        ("ci_low", "DOUBLE"), ("ci_high", "DOUBLE"),
    ],
    "time_to_event_summary": [
        ("endpoint", "VARCHAR"), ("stratum_type", "VARCHAR"), ("stratum", "VARCHAR"), ("patients", "BIGINT"),
        ("events", "BIGINT"), ("median_days", "DOUBLE"), ("ci_low", "DOUBLE"), ("ci_high", "DOUBLE"),
    ],
}
METRIC_TABLES = ("patient_outcomes", "registry_metrics", "response_predictors", "study_planning",
                 "site_heterogeneity", "time_to_event", "time_to_event_summary")


@pytest.mark.parametrize("table", sorted(PUBLISHED_SHAPES))
def test_published_tables_have_exactly_the_agreed_columns(faulty_registry: RegistryRun, table: str):
    assert faulty_registry.success
    columns = faulty_registry.query(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'metrics' "
        "AND table_name = ? ORDER BY ordinal_position", [table])
    assert columns == PUBLISHED_SHAPES[table]
    assert faulty_registry.query(f"SELECT count(*) FROM metrics.{table}")[0][0] > 0


def test_response_predictors_carry_method_and_adjusted_p_values(faulty_registry: RegistryRun):
    rows = faulty_registry.query(
        "SELECT method, count(*), count(p_value), count(p_holm), count(p_bh), "
        "bool_and(p_holm IS NULL OR p_holm >= p_value), bool_and(p_bh IS NULL OR p_bh >= p_value) "
        "FROM metrics.response_predictors GROUP BY method ORDER BY method")
    assert [r[0] for r in rows] == ["firth", "ml"]
    for _, _, p, holm, bh, holm_above, bh_above in rows:
        assert p == holm == bh and holm_above and bh_above
    firth_p = {r[0]: r[2] for r in rows}["firth"]
    assert firth_p > 0


def test_site_heterogeneity_pools_every_site_with_a_prediction_interval(faulty_registry: RegistryRun):
    rows = faulty_registry.query("SELECT method, sites, pooled_estimate, ci_low, ci_high, pi_low, pi_high, tau2 "
                                 "FROM metrics.site_heterogeneity WHERE metric = 'responder_rate' ORDER BY method")
    sites = faulty_registry.query("SELECT count(DISTINCT site_id) FROM metrics.patient_outcomes "
                                  "WHERE infusion_count > 0")[0][0]
    assert [r[0] for r in rows] == ["DL", "REML"]
    for _, k, pooled, low, high, pi_low, pi_high, tau2 in rows:
        assert k == sites == 3 and tau2 >= 0
        assert pi_low <= low < pooled < high <= pi_high


def test_published_kaplan_meier_medians_match_statsmodels_on_the_runs_event_times(faulty_registry: RegistryRun):
    con = duckdb.connect(str(faulty_registry.work_db), read_only=True)
    try:
        episodes = relief_episodes(con).drop_nulls("time_days")
        courses = treatment_courses(con)
    finally:
        con.close()
    summary = {endpoint: (median, low, high) for endpoint, median, low, high in faulty_registry.query(
        "SELECT endpoint, median_days, ci_low, ci_high FROM metrics.time_to_event_summary "
        "WHERE stratum_type = 'overall'")}
    for endpoint, frame, event in (("relief_duration", episodes, "relief_ended"),
                                   ("time_on_treatment", courses, "discontinued")):
        reference = SurvfuncRight(frame["time_days"].to_numpy().astype(float), frame[event].to_numpy().astype(int))
        median = reference.quantile(0.5)
        low, high = reference.quantile_ci(0.5, method="cloglog")
        expected = tuple(None if not np.isfinite(v) else float(v) for v in (median, low, high))
        assert summary[endpoint] == expected, endpoint


def test_running_the_metrics_again_on_the_same_data_gives_identical_tables(faulty_registry: RegistryRun,
                                                                           tmp_path: Path):
    from pipelines.assets.metrics import metrics_assets
    from pipelines.assets.planning import planning_assets
    from pipelines.connections import WorkingStore
    from pipelines.resources import RegistrySettings

    copy = tmp_path / "registry_work.duckdb"
    shutil.copyfile(faulty_registry.work_db, copy)
    settings = RegistrySettings(landing_dir=str(faulty_registry.landing), analyst_db=str(tmp_path / "r.duckdb"))
    result = dg.materialize([*metrics_assets, *planning_assets],
                            resources={"settings": settings, "working_store": WorkingStore(path=str(copy))},
                            instance=dg.DagsterInstance.ephemeral(),
                            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    assert result.success
    for table in METRIC_TABLES:
        query = f"SELECT * FROM metrics.{table} ORDER BY ALL"
        again = duckdb.connect(str(copy), read_only=True)
        first = duckdb.connect(str(faulty_registry.work_db), read_only=True)
        try:
            # Python floats compare bit for bit; repr keeps NaN and −0.0 apart too.
            assert repr(again.execute(query).fetchall()) == repr(first.execute(query).fetchall()), table
        finally:
            again.close()
            first.close()


LOCAL = ("file://", "data:", "about:")


def test_dashboard_shows_the_planning_section_offline(faulty_registry: RegistryRun):
    from playwright.sync_api import Route, sync_playwright

    dashboards = sorted(faulty_registry.analyst_db.parent.rglob("index.html"))
    dashboard = next(p for p in dashboards if p.parent.name == "reports")
    blocked: list[str] = []

    def route(request_route: Route) -> None:
        if request_route.request.url.startswith(LOCAL):
            request_route.continue_()
        else:
            blocked.append(request_route.request.url)
            request_route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page()
            page.route("**/*", route)
            page.goto(dashboard.as_uri())
            section = page.locator("section#planning")
            assert section.is_visible()
            curves = section.locator("svg[data-chart='km'] polyline.km")
            labels = {curves.nth(i).get_attribute("data-label") for i in range(curves.count())}
            assert {"all sites", "site_01", "site_02", "site_03"} <= labels
            assert section.locator("svg[data-chart='pooled-forest'] polygon.diamond").count() == 1
            assert section.locator("svg[data-chart='pooled-forest'] line.prediction-interval").count() == 1
            assert section.locator("svg[data-chart='pooled-forest'] rect.point").count() == 3
            headers = section.locator("table.data th").all_inner_texts()
            assert {"p Holm", "p BH", "95 % CI (profile)", "inputs and source tables", "number at risk"} <= set(
                headers)
            assert "Riley et al. 2020" in section.locator("p.adequacy").inner_text()
            section.locator("details summary").first.click()
            assert "config/protocol.yaml" in section.locator("details").first.inner_text()
        finally:
            browser.close()
    assert blocked == []


def test_the_run_summary_reports_the_kaplan_meier_median_relief(faulty_registry: RegistryRun):
    from ketreg_app.summary import run_summary

    ((median, events),) = faulty_registry.query(
        "SELECT median_days, events FROM metrics.time_to_event_summary "
        "WHERE endpoint = 'relief_duration' AND stratum_type = 'overall'")
    line = next(line for line in run_summary(faulty_registry.analyst_db).splitlines() if "median relief" in line)
    assert f"{median:g} days" in line and f"{events} relief endings seen" in line


def test_planning_section_suppresses_small_cells_like_the_rest_of_the_dashboard(faulty_registry: RegistryRun):
    from ketreg.quality.planning_section import planning_section

    con = duckdb.connect(str(faulty_registry.work_db), read_only=True)
    try:
        open_html = planning_section(con, small_cell_count=1)
        k = 1 + max(n for (n,) in con.execute(
            "SELECT patients FROM metrics.time_to_event_summary WHERE stratum_type = 'site'").fetchall())
        hidden = planning_section(con, small_cell_count=k)
    finally:
        con.close()
    assert 'data-label="site_01"' in open_html and "&lt;" not in open_html
    # Every site is smaller than k: no site curve, no site median, no site count in the forest plot.
    assert 'data-label="site_' not in hidden and 'data-label="all sites"' in hidden
    assert hidden.count(f"suppressed (fewer than {k} patients)") == 6  # 3 sites × 2 Kaplan–Meier endpoints
    assert f"suppressed (a count below {k})" in hidden and f"&lt; {k}" in hidden
