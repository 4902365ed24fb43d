"""The site-export checks (ketreg/quality/site_checks.py) broken on purpose: one export with exactly one row
failing each of Kahn's categories in infusions.csv (an unreadable rate: conformance; a missing start time:
completeness; a rate above the protocol's plausibility limit: plausibility), the children of those infusions
quarantined with them, and a site whose newest export is unusable. The counts below are the rows this test
broke, read from the run's own quality.check_results (a real pipeline run)."""

from __future__ import annotations

import pytest
from support import RegistryRun, canonical_rows, query_db, row_by_id, run_registry, write_export

from schemas.protocol import load_protocol

# Each test here corrupts or reads real pipeline runs (seconds each).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site_run(tmp_path_factory: pytest.TempPathFactory) -> RegistryRun:
    root = tmp_path_factory.mktemp("site-checks")
    rows = canonical_rows()
    row_by_id(rows, "infusions", "INF-0001")["initial_rate_mg_h"] = "ten"
    row_by_id(rows, "infusions", "INF-0002")["start_time"] = ""
    row_by_id(rows, "infusions", "INF-0003").update(
        max_rate_mg_h=str(load_protocol().plausible_max_rate_mg_h + 1), total_dose_mg="")
    write_export(root / "landing", "site_a", rows=rows)
    write_export(root / "landing", "site_b", "2026-10-01")
    broken = canonical_rows()
    del broken["adverse_events"]  # the newest export lacks a required file: rejected whole
    write_export(root / "landing", "site_b", "2026-11-01", broken)
    return run_registry(root / "landing", root / "out")


def _results(run: RegistryRun) -> dict[tuple[str, str], tuple[int, int, bool]]:
    rows = query_db(
        run.work_db,
        "SELECT site_id, check_name, numerator, denominator, passed FROM quality.check_results "
        "WHERE source = 'site_export' AND run_id = (SELECT arg_max(run_id, run_at) FROM quality.check_results)",
    )
    return {(site, check): (numerator, denominator, passed) for site, check, numerator, denominator, passed in rows}


def test_each_category_counts_the_rows_broken_for_it(site_run: RegistryRun) -> None:
    results = _results(site_run)
    infusions = len(canonical_rows()["infusions"])
    for category in ("conformance", "completeness", "plausibility"):
        assert results[("site_a", f"infusions_rows_pass_{category}_rules")] == (1, infusions, False), category


def test_children_of_quarantined_infusions_fail_conformance_of_their_own_files(site_run: RegistryRun) -> None:
    results = _results(site_run)
    rows = canonical_rows()
    quarantined_infusions = {"INF-0001", "INF-0002", "INF-0003"}
    for table in ("assessments", "adverse_events"):
        children = sum(1 for r in rows[table] if r["infusion_id"] in quarantined_infusions)
        assert results[("site_a", f"{table}_rows_pass_conformance_rules")] == (children, len(rows[table]), False)
        assert results[("site_a", f"{table}_rows_pass_plausibility_rules")] == (0, len(rows[table]), True)
    assert results[("site_a", "patients_rows_pass_conformance_rules")] == (0, len(rows["patients"]), True)


def test_a_rejected_newest_export_fails_its_sites_check_and_a_good_one_passes(site_run: RegistryRun) -> None:
    results = _results(site_run)
    assert results[("site_b", "newest_export_accepted")] == (1, 1, False)
    assert results[("site_a", "newest_export_accepted")] == (0, 1, True)
    # site_b's current export is still the earlier, valid one: its files pass.
    assert results[("site_b", "infusions_rows_pass_plausibility_rules")] == (0, len(canonical_rows()["infusions"]),
                                                                            True)

