"""Every Dagster asset check of the registry (pipelines/checks.py), broken on purpose: each test builds in a copy
of a real working DuckDB the exact corrupted state the check exists to catch (a row neither accepted nor
quarantined, accepted rows lost before the registry, a duplicate or missing key, a dangling reference, a value
one step outside a contract or protocol limit, a site's file shrunk between exports) and evaluates every check
through a real Dagster run. The broken check must fail with the right numerator, denominator and severity, every
other check must pass, and the clean state must pass. Expected counts come from the rows the tests wrote, not
from the checks' SQL."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from check_support import (
    REGISTRY_KEYS,
    SITES,
    bound_cases,
    check_specs,
    clean_two_site_run,
    column_types,
    corrupt,
    evaluate_checks,
    expected_severity,
    failing,
    limit_cases,
    place_cases,
    rows_of,
    violating_rows,
)
from support import CANONICAL_ROWS, EXPORT_ID, RegistryRun, canonical_rows, run_registry, write_export

from ketreg.registry.build import REGISTRY_TABLES
from ketreg.staging.tables import STAGED_TABLES
from pipelines.resources import RegistrySettings
from schemas.protocol import load_protocol
from schemas.tables import TABLES

# Each test here corrupts or reads real pipeline runs (seconds each).
pytestmark = pytest.mark.slow

FILES = len(CANONICAL_ROWS)  # one file per contract table in each export


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> RegistryRun:
    return clean_two_site_run(tmp_path_factory)


@pytest.fixture
def work_db(clean_run: RegistryRun, tmp_path: Path) -> Path:
    """A private copy of the clean working database, for one test to corrupt, beside a copy of the registry
    that run published (the check for vanished sites compares the two)."""
    copy = tmp_path / "registry_work.duckdb"
    shutil.copy(clean_run.work_db, copy)
    shutil.copy(clean_run.analyst_db, tmp_path / "registry.duckdb")
    return copy


def assert_only_failure(outcomes: dict, name: str, numerator: int, denominator: int) -> None:
    assert failing(outcomes) == {name: (numerator, denominator)}
    assert outcomes[name].severity == expected_severity(name)


def test_every_check_passes_on_the_clean_registry_and_counts_the_rows_it_checked(work_db: Path) -> None:
    outcomes = evaluate_checks(work_db)
    assert failing(outcomes) == {}
    current_files = FILES * len(SITES)
    for name, outcome in outcomes.items():
        asset = name.split(":")[0]
        table = asset.removeprefix("registry/")
        expected = current_files if table == "file_counts" else rows_of(table)
        if name == "registry/file_counts:no_site_vanished":
            expected = len(SITES)  # it checks the sites of the published registry
        assert (outcome.numerator, outcome.denominator) == (0, expected), name


def test_every_check_of_the_definitions_is_exercised_here() -> None:
    # A check added to pipelines/checks.py without a test that breaks it fails this list.
    broken_here = {
        "registry/file_counts:rows_conserved",
        "registry/file_counts:accepted_rows_reach_registry",
        "registry/file_counts:no_sudden_row_drop",
        "registry/file_counts:no_site_vanished",
        "registry/file_counts:quarantine_counts_match_file_counts",
        *(f"registry/{t}:{k}_unique_not_null" for t, k in REGISTRY_KEYS.items() if t != "dispositions"),
        *(f"registry/{child}:{key}_references_{parent}" for child, key, parent in (
            ("infusions", "patient_key", "patients"), ("assessments", "patient_key", "patients"),
            ("assessments", "infusion_key", "infusions"), ("adverse_events", "infusion_key", "infusions"),
            ("dispositions", "patient_key", "patients"))),
        *(f"registry/{t.name}:values_within_contract_ranges" for t in TABLES),
    }
    assert set(check_specs()) == broken_here


def test_a_row_read_but_neither_accepted_nor_quarantined_fails_conservation(work_db: Path) -> None:
    # Staging counted one more row of site_a's infusions.csv than it accepted or quarantined: a row lost.
    corrupt(work_db, "UPDATE staging.file_counts SET rows_read = rows_read + 1 "
                     "WHERE site_id = 'site_a' AND file_name = 'infusions.csv'")
    outcomes = evaluate_checks(work_db, rebuild=["file_counts"])
    assert_only_failure(outcomes, "registry/file_counts:rows_conserved", 1, FILES * len(SITES))
    assert violating_rows(work_db, outcomes["registry/file_counts:rows_conserved"], "site_id || '/' || file_name") \
        == ["site_a/infusions.csv"]


def test_a_row_counted_twice_fails_conservation(work_db: Path) -> None:
    # The other direction: more rows accounted for than were read (a row both accepted and quarantined).
    corrupt(work_db, "UPDATE staging.file_counts SET rows_quarantined = rows_quarantined + 1, "
                     "rows_read = rows_read - 1 WHERE site_id = 'site_b' AND file_name = 'patients.csv'")
    outcomes = evaluate_checks(work_db, rebuild=["file_counts"])
    # The analysts' quarantine counts name no line for the extra quarantined row: that check fails too.
    assert failing(outcomes) == {
        "registry/file_counts:rows_conserved": (1, FILES * len(SITES)),
        "registry/file_counts:quarantine_counts_match_file_counts": (1, FILES * len(SITES)),
    }


def test_quarantine_counts_naming_a_line_the_ledger_did_not_quarantine_fail_their_check(work_db: Path) -> None:
    corrupt(work_db, "INSERT INTO registry.quarantine BY NAME SELECT 'site_a' AS site_id, "
                     f"'{EXPORT_ID}' AS export_id, 'patients.csv' AS file_name, 'range' AS rule, "
                     "'weight_kg' AS column_name, 1 AS quarantined_rows, [2] AS source_lines, "
                     "true AS is_current_export")
    outcomes = evaluate_checks(work_db)
    name = "registry/file_counts:quarantine_counts_match_file_counts"
    assert_only_failure(outcomes, name, 1, FILES * len(SITES))
    assert violating_rows(work_db, outcomes[name], "site_id || '/' || file_name") == ["site_a/patients.csv"]


def _remove_site_from_staging(work_db: Path, site: str) -> None:
    corrupt(work_db, *(f"DELETE FROM staging.{table} WHERE site_id = '{site}'" for table in STAGED_TABLES))


def test_a_published_site_whose_rows_all_vanish_fails_the_vanished_site_check(work_db: Path) -> None:
    # site_b's only export is gone from the landing folder: every registry table is rebuilt without it.
    _remove_site_from_staging(work_db, "site_b")
    outcomes = evaluate_checks(work_db, rebuild=REGISTRY_TABLES)
    name = "registry/file_counts:no_site_vanished"
    assert_only_failure(outcomes, name, 1, len(SITES))
    assert violating_rows(work_db, outcomes[name], "site_id") == ["site_b"]


def test_a_site_retired_on_purpose_may_vanish(work_db: Path) -> None:
    _remove_site_from_staging(work_db, "site_b")
    tombstone = work_db.parent / "landing" / "site_b" / "RETIRED"
    tombstone.parent.mkdir(parents=True)
    tombstone.write_text("left the registry\n", encoding="utf-8")
    outcomes = evaluate_checks(work_db, rebuild=REGISTRY_TABLES)
    assert failing(outcomes) == {}


def test_accepted_rows_lost_before_the_registry_fail_the_reach_check(work_db: Path) -> None:
    # A disposition (a row no other table refers to) accepted by staging never reached the registry table.
    corrupt(work_db, "DELETE FROM registry.dispositions WHERE rowid = (SELECT min(rowid) FROM registry.dispositions "
                     "WHERE site_id = 'site_b')")
    outcomes = evaluate_checks(work_db, rebuild=["file_counts"])
    name = "registry/file_counts:accepted_rows_reach_registry"
    assert_only_failure(outcomes, name, 1, FILES * len(SITES))
    assert violating_rows(work_db, outcomes[name], "site_id || '/' || file_name") == ["site_b/dispositions.csv"]


def test_a_row_in_the_registry_that_staging_never_accepted_fails_the_reach_check(work_db: Path) -> None:
    corrupt(work_db, "INSERT INTO registry.dispositions SELECT * FROM registry.dispositions "
                     "WHERE site_id = 'site_a' LIMIT 1")
    outcomes = evaluate_checks(work_db, rebuild=["file_counts"])
    assert_only_failure(outcomes, "registry/file_counts:accepted_rows_reach_registry", 1, FILES * len(SITES))


KEYED_TABLES = [t for t in REGISTRY_KEYS if t != "dispositions"]
REFERENCES = [
    ("infusions", "patient_key", "patients"),
    ("assessments", "patient_key", "patients"),
    ("assessments", "infusion_key", "infusions"),
    ("adverse_events", "infusion_key", "infusions"),
    ("dispositions", "patient_key", "patients"),
]

# Each corruption below touches one table's key or one reference only, so several can share one database and
# one Dagster run (a run costs seconds); each check's numerator still counts only its own table's damage.


def test_a_duplicated_key_fails_that_tables_key_check(work_db: Path) -> None:
    corrupt(work_db, *(f"INSERT INTO registry.{t} SELECT * FROM registry.{t} LIMIT 1" for t in KEYED_TABLES))
    outcomes = evaluate_checks(work_db)
    # Both copies of the key are violations; the table now holds one row more than the export sent.
    assert failing(outcomes) == {
        f"registry/{t}:{REGISTRY_KEYS[t]}_unique_not_null": (2, rows_of(t) + 1) for t in KEYED_TABLES
    }
    for name in failing(outcomes):
        assert outcomes[name].severity == expected_severity(name)


def test_a_missing_key_fails_that_tables_key_check(work_db: Path) -> None:
    corrupt(work_db, *(
        statement
        for t in KEYED_TABLES
        for statement in (
            f"CREATE TABLE spare_{t} AS SELECT * REPLACE (NULL AS {REGISTRY_KEYS[t]}) FROM registry.{t} LIMIT 1",
            f"INSERT INTO registry.{t} SELECT * FROM spare_{t}",
        )
    ))
    outcomes = evaluate_checks(work_db)
    assert failing(outcomes) == {
        f"registry/{t}:{REGISTRY_KEYS[t]}_unique_not_null": (1, rows_of(t) + 1) for t in KEYED_TABLES
    }


def test_a_dangling_reference_fails_that_reference_check(work_db: Path) -> None:
    corrupt(work_db, *(
        f"UPDATE registry.{child} SET {key} = 'no-such-{parent}' "
        f"WHERE rowid = (SELECT min(rowid) FROM registry.{child} WHERE {key} IS NOT NULL)"
        for child, key, parent in REFERENCES
    ))
    outcomes = evaluate_checks(work_db)
    # One assessment carries both dangling references: it counts once in each check.
    assert failing(outcomes) == {
        f"registry/{child}:{key}_references_{parent}": (1, rows_of(child)) for child, key, parent in REFERENCES
    }
    for name in failing(outcomes):
        assert outcomes[name].severity == expected_severity(name)


def test_an_assessment_without_an_infusion_is_not_a_dangling_reference(work_db: Path) -> None:
    # Baseline assessments have no infusion: a missing reference is allowed where the contract allows it.
    corrupt(work_db, "UPDATE registry.assessments SET infusion_key = NULL")
    assert failing(evaluate_checks(work_db)) == {}


def test_values_exactly_at_or_one_step_inside_every_limit_pass_the_range_check(work_db: Path) -> None:
    cases = limit_cases(work_db, inside=True)
    for table, table_cases in cases.items():
        place_cases(work_db, table, table_cases)
    outcomes = evaluate_checks(work_db)
    assert failing(outcomes) == {}, [c.label for table_cases in cases.values() for c in table_cases]
    for table, table_cases in cases.items():
        name = f"registry/{table}:values_within_contract_ranges"
        assert outcomes[name].denominator == rows_of(table) + len(table_cases)


def test_a_value_one_step_outside_any_limit_fails_the_range_check(work_db: Path) -> None:
    cases = limit_cases(work_db, inside=False)
    keys = {table: place_cases(work_db, table, table_cases) for table, table_cases in cases.items()}
    outcomes = evaluate_checks(work_db)
    # Every case sits on its own row, so a limit that misses its case lowers that table's numerator.
    assert failing(outcomes) == {
        f"registry/{table}:values_within_contract_ranges": (len(table_cases), rows_of(table) + len(table_cases))
        for table, table_cases in cases.items()
    }
    for table in cases:
        name = f"registry/{table}:values_within_contract_ranges"
        assert outcomes[name].severity == expected_severity(name)
        if table != "dispositions":  # dispositions have no key of their own
            assert violating_rows(work_db, outcomes[name], REGISTRY_KEYS[table]) == keys[table]


def test_the_protocol_plausibility_limit_is_among_the_infusion_limits(work_db: Path) -> None:
    # The registry's range check must carry the protocol's rate limit, not only the contract's positivity.
    protocol = load_protocol()
    cases = bound_cases("infusions", protocol, column_types(work_db, "infusions"))
    outside = {(c.column, c.value) for c in cases if not c.inside and c.rule == "rate_within_plausibility_limit"}
    step = 0.01
    assert outside == {(column, round(protocol.plausible_max_rate_mg_h + step, 6))
                       for column in ("initial_rate_mg_h", "max_rate_mg_h")}


# ---------------------------------------------------------------------------------------------------------
# A sudden drop between a site's exports: three sites whose newer export keeps exactly the allowed share of
# the previous patients.csv, one row less than that, and half of it.

PREVIOUS_PATIENTS = 10


def _patients_rows(count: int) -> dict[str, list[dict[str, str]]]:
    rows = canonical_rows()
    template = rows["patients"][0]
    extra = [dict(template, patient_id=f"PT-{index:04d}") for index in range(3, count + 1)]
    rows["patients"] = rows["patients"] + extra
    assert len(rows["patients"]) == count
    return rows


@pytest.fixture(scope="module")
def drop_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RegistryRun, dict[str, int]]:
    share = RegistrySettings(landing_dir="", analyst_db="").max_row_drop_share
    # The fewest rows a newer export may keep: (1 − share) × previous, rounded up to a whole row.
    allowed = math.ceil(round((1 - share) * PREVIOUS_PATIENTS, 9))
    current = {"drop_at_limit": allowed, "drop_one_past_limit": allowed - 1, "drop_halved": PREVIOUS_PATIENTS // 2,
               "drop_none": PREVIOUS_PATIENTS}
    root = tmp_path_factory.mktemp("drops")
    for site, count in current.items():
        write_export(root / "landing", site, "2026-10-01", _patients_rows(PREVIOUS_PATIENTS))
        write_export(root / "landing", site, "2026-11-01", _patients_rows(count))
    return run_registry(root / "landing", root / "out"), current


def test_a_file_shrunk_past_the_allowed_share_fails_the_row_drop_check(
    drop_run: tuple[RegistryRun, dict[str, int]], tmp_path: Path
) -> None:
    run, current = drop_run
    assert current["drop_at_limit"] < PREVIOUS_PATIENTS, "the limit must allow some loss for this test to mean much"
    work_db = tmp_path / "registry_work.duckdb"
    shutil.copy(run.work_db, work_db)
    outcomes = evaluate_checks(work_db)
    name = "registry/file_counts:no_sudden_row_drop"
    # Two sites dropped too far; the denominator is every file of every site's current export.
    assert failing(outcomes) == {name: (2, FILES * len(current))}
    assert outcomes[name].severity == expected_severity(name)
    assert violating_rows(work_db, outcomes[name], "site_id || '/' || file_name") == [
        "drop_halved/patients.csv", "drop_one_past_limit/patients.csv"]
    # The pipeline's own run reports it the same way: a failure when the check blocks, a warning otherwise.
    blocking = check_specs()[name].blocking
    assert run.success is not blocking
    reported = [m for m in (run.failures if blocking else run.warnings) if "no_sudden_row_drop" in m]
    assert reported, (run.failures, run.warnings)
    assert not [m for m in run.failures if "no_sudden_row_drop" not in m]
