"""The quality layer: Great Expectations suites derived from the contract, the check-results history and its
run-over-run comparison, offline Data Docs, and the static dashboard. Two real pipeline runs are shared by
every test here (`quality_runs`): faulty synthetic exports, then the same after site_02 fixed its newest export."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from quality_support import FIXED_SITE, QualityRuns, shared_quality_runs

from ketreg.quality.dashboard import render_dashboard
from ketreg.quality.rules import KAHN_CATEGORIES, registry_rules, table_rules
from ketreg.quality.settings import load_quality_settings
from pipelines.definitions import build_definitions
from schemas.protocol import load_protocol
from schemas.tables import TABLES_BY_NAME

ROW_FAULT_FILES_ONLY = {"identifier_column", "missing_required_column"}  # whole-file faults, not quarantined rows


@pytest.fixture(scope="module")
def quality_runs(tmp_path_factory: pytest.TempPathFactory) -> QualityRuns:
    return shared_quality_runs(tmp_path_factory)


def _registry_columns(runs: QualityRuns) -> dict[str, list[str]]:
    return {
        t: [r[0] for r in runs.work(f"DESCRIBE registry.{t}")]
        for t in ("patients", "infusions", "assessments", "adverse_events", "dispositions")
    }


def test_suite_ranges_and_codes_are_read_from_the_pandera_schemas(quality_runs: QualityRuns) -> None:
    rules = {r.name: r for r in table_rules(
        TABLES_BY_NAME["assessments"], _registry_columns(quality_runs)["assessments"], load_protocol(),
        load_quality_settings(),
    )}
    # Independent expectations, not the schema the rules were read from: the NPRS is a 0–10 scale by definition,
    # and the metrics read these timepoints. That GX catches values outside each limit (and passes those at it)
    # is proven by breaking the registry in tests/test_quality_rules.py.
    nprs = rules["nprs_within_range"].kwargs
    assert (nprs["min_value"], nprs["max_value"], nprs["strict_min"], nprs["strict_max"]) == (0, 10, False, False)
    assert {"baseline", "pre", "post", "follow_up"} <= set(rules["timepoint_in_codes"].kwargs["value_set"])
    assert {r.category for r in rules.values()} <= set(KAHN_CATEGORIES)


def test_protocol_plausibility_limit_flows_into_the_rate_expectation(quality_runs: QualityRuns) -> None:
    columns = _registry_columns(quality_runs)["infusions"]
    stricter = dataclasses.replace(load_protocol(), plausible_max_rate_mg_h=90.0)
    for protocol in (load_protocol(), stricter):
        rule = next(r for r in table_rules(TABLES_BY_NAME["infusions"], columns, protocol, load_quality_settings())
                    if r.name == "max_rate_mg_h_within_range")
        assert rule.kwargs["max_value"] == protocol.plausible_max_rate_mg_h
        # The limit is one bound of the rule's condition: a rate above it is listed, one at it is not.
        con = duckdb.connect()
        try:
            limit = protocol.plausible_max_rate_mg_h
            for rate, violating_rows in ((limit + 1, 1), (limit, 0)):
                row = f"SELECT {rate}::DOUBLE AS max_rate_mg_h"
                assert con.execute(f"SELECT count(*) FROM ({row}) WHERE {rule.predicate}").fetchall() == [
                    (violating_rows,)
                ]
        finally:
            con.close()


def test_every_contract_table_gets_a_suite(quality_runs: QualityRuns) -> None:
    rules = registry_rules(_registry_columns(quality_runs), load_protocol(), load_quality_settings())
    assert set(rules) == {"patients", "infusions", "assessments", "adverse_events", "dispositions"}
    assert all(rules.values())


def test_history_holds_one_row_per_check_and_site_per_run(quality_runs: QualityRuns) -> None:
    runs = dict(quality_runs.work("SELECT run_id, count(*) FROM quality.check_results GROUP BY run_id"))
    assert set(runs) == {quality_runs.first_run_id, quality_runs.second_run_id}
    duplicates = quality_runs.work(
        "SELECT run_id, check_id FROM quality.check_results GROUP BY ALL HAVING count(*) > 1"
    )
    assert duplicates == []
    categories = {c for (c,) in quality_runs.work("SELECT DISTINCT category FROM quality.check_results")}
    assert categories == set(KAHN_CATEGORIES)
    sources = {s for (s,) in quality_runs.work("SELECT DISTINCT source FROM quality.check_results")}
    assert sources == {"great_expectations", "site_export", "registry_check"}


def test_every_recorded_check_is_a_catalogue_check_with_its_category(quality_runs: QualityRuns) -> None:
    from ketreg.quality.catalogue import registry_checks, site_export_checks

    rules = registry_rules(_registry_columns(quality_runs), load_protocol(), load_quality_settings())
    catalogue = {
        **{("registry_check", c.table, c.name): c.category for c in registry_checks()},
        **{("site_export", c.table, c.name): c.category for c in site_export_checks()},
        **{("great_expectations", r.table, r.name): r.category for table in rules.values() for r in table},
    }
    recorded = quality_runs.work(
        "SELECT DISTINCT source, table_name, check_name, category FROM quality.check_results"
    )
    assert {(source, table, name): category for source, table, name, category in recorded}.items() \
        <= catalogue.items()
    assert {source for source, *_ in recorded} == {source for source, *_ in catalogue}


def test_pass_or_fail_follows_numerator_denominator_and_threshold(quality_runs: QualityRuns) -> None:
    rows = quality_runs.work(
        "SELECT check_id, numerator, denominator, threshold, passed FROM quality.check_results WHERE run_id = ?",
        [quality_runs.second_run_id],
    )
    for check_id, numerator, denominator, threshold, passed in rows:
        assert 0 <= numerator <= max(denominator, numerator), check_id
        share = numerator / denominator if denominator else 0.0
        assert passed == (share <= threshold + 1e-9), (check_id, numerator, denominator, threshold, passed)


def test_each_check_sql_lists_exactly_its_violating_rows(quality_runs: QualityRuns) -> None:
    rows = quality_runs.work(
        "SELECT check_id, numerator, violations_sql FROM quality.check_results WHERE run_id = ?",
        [quality_runs.second_run_id],
    )
    con = duckdb.connect(str(quality_runs.second.work_db), read_only=True)
    try:
        for check_id, numerator, sql in rows:
            listed = con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0]
            if check_id.endswith("_unique/" + check_id.rsplit("/", 1)[1]) or check_id.startswith("registry_check"):
                # duplicates list every copy; registry checks count what their SQL lists
                assert (listed == 0) == (numerator == 0), check_id
            else:
                assert listed == numerator, (check_id, listed, numerator, sql)
    finally:
        con.close()


def test_injected_row_faults_fail_that_sites_export_checks(quality_runs: QualityRuns) -> None:
    newest = {
        site: export for site, export in quality_runs.work(
            "SELECT site_id, max(export_id) FROM registry.exports WHERE status = 'accepted' GROUP BY ALL"
        )
    }
    faulty_files = {
        (f["site_id"], f["file"].removesuffix(".csv"))
        for f in quality_runs.manifest
        if f["kind"] not in ROW_FAULT_FILES_ONLY and newest.get(f["site_id"]) == f["export_id"]
    }
    assert faulty_files
    failing = {
        (site, table) for site, table in quality_runs.work(
            "SELECT site_id, table_name FROM quality.check_results WHERE run_id = ? AND source = 'site_export' "
            "AND NOT passed", [quality_runs.first_run_id],
        )
    }
    # A faulty row may also quarantine its children (another file), so failures can exceed the faulty files.
    assert faulty_files <= failing


def test_fixed_site_failures_are_resolved_and_others_persist(quality_runs: QualityRuns) -> None:
    changes = quality_runs.work(
        "SELECT site_id, source, change FROM quality.check_changes WHERE change <> 'passing'"
    )
    fixed = [(source, change) for site, source, change in changes if site == FIXED_SITE and source == "site_export"]
    assert fixed and all(change == "resolved" for _, change in fixed)
    others = [change for site, source, change in changes if site != FIXED_SITE and source == "site_export"]
    assert others and set(others) == {"persisting"}
    previous, current = quality_runs.work(
        "SELECT DISTINCT previous_run_id, current_run_id FROM quality.check_changes"
    )[0]
    assert (previous, current) == (quality_runs.first_run_id, quality_runs.second_run_id)


def test_data_docs_load_nothing_from_the_network(quality_runs: QualityRuns) -> None:
    docs = quality_runs.reports / "data_docs"
    pages = list(docs.rglob("*.html"))
    assert len(pages) > 5
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert not re.search(r"<(script|img)[^>]*\ssrc=\"https?://|<link[^>]*\shref=\"https?://", html), page
        for ref in re.findall(r"<(?:script|link|img)[^>]*\s(?:src|href)=\"([^\"#?]+)", html):
            assert (page.parent / ref).resolve().is_file(), (page, ref)


def test_dashboard_shows_sites_faults_checks_and_metrics(quality_runs: QualityRuns) -> None:
    html = (quality_runs.reports / "index.html").read_text(encoding="utf-8")
    sites = [s for (s,) in quality_runs.work("SELECT DISTINCT site_id FROM registry.exports ORDER BY 1")]
    assert all(site in html for site in sites)
    rejected = quality_runs.work("SELECT site_id, export_id FROM registry.exports WHERE status = 'rejected'")
    assert rejected and all(export in html for _, export in rejected)
    checks = quality_runs.work("SELECT count(*) FROM quality.check_results WHERE run_id = ?",
                               [quality_runs.second_run_id])[0][0]
    assert html.count('<details class="sql">') == checks
    for chart in ("stacked-bars", "heatmap", "trend", "forest"):
        assert f'data-chart="{chart}"' in html
    assert "resolved" in html and 'href="data_docs/index.html"' in html
    assert not re.search(r"<(script|img|link)[^>]*\s(src|href)=\"https?://", html)


def test_dashboard_says_metrics_not_available_without_the_metrics_layer(
    quality_runs: QualityRuns, tmp_path: Path
) -> None:
    work = tmp_path / "work.duckdb"
    shutil.copy(quality_runs.second.work_db, work)
    con = duckdb.connect(str(work))
    try:
        con.execute("DROP SCHEMA metrics CASCADE")
        path = render_dashboard(con, tmp_path / "reports", "http://localhost:3000")
    finally:
        con.close()
    html = path.read_text(encoding="utf-8")
    assert "metrics not available" in html and 'data-chart="forest"' not in html


def test_quality_assets_run_in_the_registry_job_after_registry_and_metrics() -> None:
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    results = graph.get(dg.AssetKey(["quality", "check_results"]))
    assert results.group_name == "quality"
    parents = {key.to_user_string() for key in results.parent_keys}
    assert {"registry/file_counts", "registry/quarantine", "metrics/registry_metrics"} <= parents
    job_assets = defs.resolve_job_def("registry_job").asset_layer.executable_asset_keys
    assert {a.to_user_string() for a in job_assets} >= {"quality/check_results", "quality/dashboard"}


def test_quality_run_succeeds(quality_runs: QualityRuns) -> None:
    assert quality_runs.first.success, quality_runs.first.failures
    assert quality_runs.second.success, quality_runs.second.failures


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_completeness_threshold_outside_zero_to_one_is_refused(share: float, tmp_path: Path) -> None:
    from ketreg.quality.settings import QualitySettingsError

    config = tmp_path / "quality.yaml"
    config.write_text(f"outcome_completeness:\n  assessments:\n    nprs: {share}\n", encoding="utf-8")
    with pytest.raises(QualitySettingsError, match=r"assessments\.nprs"):
        load_quality_settings(config)


def test_a_page_still_loading_from_a_cdn_is_refused(tmp_path: Path) -> None:
    from ketreg.quality.offline_docs import OfflineDocsError, make_offline

    (tmp_path / "index.html").write_text(
        '<html><head><link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>'
        '<script src="https://cdn.example.org/new-library.js"></script></head><body></body></html>',
        encoding="utf-8",
    )
    with pytest.raises(OfflineDocsError, match=r"new-library\.js"):
        make_offline(tmp_path)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert 'href="vendor/bootstrap/bootstrap.min.css"' in html
