"""The whole registry pipeline, run for real through Dagster (`run_pipeline`, `ketreg` via `cli.main`) on landing
folders in tmp, into real DuckDB files: conservation on faulty data, rejected exports, supersession,
idempotence, pseudonymisation, identifier-like columns, protocol deviations, the CLI and the Dagster code location.

Runs are expensive (a few seconds each), so tests that only read share the session's runs (`scenario_registry`,
`faulty_registry`, see conftest.py); tests that need a run of their own are marked slow.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
import yaml
from support import (
    CANONICAL_ROWS,
    DEVIATING_INFUSIONS_CSV,
    OTHER_KEY,
    SCENARIO_IDENTIFIERS,
    TEST_KEY,
    RegistryRun,
    query_db,
    run_registry,
    table_contents,
    table_names,
    text_cells,
)

from ketreg.registry.pseudonym import MissingPseudonymKey, install_pseudonym_macro
from ketreg_app import cli
from ketreg_app.run import run_pipeline
from ketreg_app.summary import run_summary
from schemas.identifiers import looks_like_identifier
from schemas.protocol import DEFAULT_PROTOCOL_FILE
from schemas.tables import TABLES
from synthetic import cli as synthetic_cli

ExportWriter = Callable[..., Path]
REPO_ROOT = Path(__file__).resolve().parent.parent
DAGSTER = Path(sys.executable).parent / "dagster"

PUBLISHED_TABLES = {
    "exports", "patients", "infusions", "assessments", "adverse_events", "dispositions", "protocol_deviations",
    "quarantine", "file_counts", "ae_term_categories",
}
ROW_TABLES = ("patients", "infusions", "assessments", "adverse_events", "dispositions")


def pseudonym(key: str, site_id: str, patient_id: str) -> str:
    """The registry's patient key, computed independently: HMAC-SHA256(key, site_id/patient_id), hex."""
    return hmac.new(key.encode(), f"{site_id}/{patient_id}".encode(), hashlib.sha256).hexdigest()


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def export_row(run: RegistryRun, site_id: str, export_id: str) -> dict:
    # Why an export was rejected is the site's own text: in the working store, not the analysts' file.
    ((status, reason, is_current),) = run.query_work(
        "SELECT status, rejection_reason, is_current FROM site_private.exports WHERE site_id = ? AND export_id = ?",
        [site_id, export_id],
    )
    return {"status": status, "rejection_reason": reason, "is_current": is_current}


@pytest.fixture(scope="module")
def scenario(scenario_registry: RegistryRun) -> RegistryRun:
    assert scenario_registry.success, "the scenario run failed:\n" + "\n".join(scenario_registry.failures)
    return scenario_registry


@pytest.fixture(scope="module")
def faulty(faulty_registry: RegistryRun) -> RegistryRun:
    assert faulty_registry.success, "the faulty-data run failed:\n" + "\n".join(faulty_registry.failures)
    return faulty_registry


# --------------------------------------------------------------------------------------------------------
# The published database.


def test_run_publishes_every_registry_table_to_the_analysts_database(scenario: RegistryRun):
    published = {table for schema, table in table_names(scenario.analyst_db) if schema == "main"}
    assert published >= PUBLISHED_TABLES


def test_analysts_database_holds_neither_staging_nor_the_private_key_tables(scenario: RegistryRun):
    tables = table_names(scenario.analyst_db)

    assert {schema for schema, _ in tables}.isdisjoint({"staging", "keys", "site_private"})
    assert {table for _, table in tables}.isdisjoint({"patient_keys", "infusion_keys"})


def test_every_registry_row_carries_its_lineage(scenario: RegistryRun):
    for table in ROW_TABLES:
        missing = scenario.query(
            f"SELECT count(*) FROM {table} WHERE site_id IS NULL OR export_id IS NULL OR source_line IS NULL "
            f"OR source_file IS DISTINCT FROM '{table}.csv'"
        )
        assert missing == [(0,)], table


# --------------------------------------------------------------------------------------------------------
# Conservation on faulty generated data.


@pytest.mark.slow
def test_run_on_faulty_generated_data_succeeds(faulty_registry: RegistryRun):
    assert faulty_registry.success, faulty_registry.failures


@pytest.mark.slow
def test_every_file_conserves_rows_read_as_accepted_plus_quarantined(faulty: RegistryRun):
    counts = faulty.query(
        "SELECT site_id, export_id, file_name, export_status, rows_read, rows_accepted, rows_quarantined "
        "FROM file_counts"
    )
    assert counts
    for site_id, export_id, file_name, status, read, accepted, quarantined in counts:
        where = f"{site_id}/{export_id}/{file_name}"
        assert read == accepted + quarantined, where
        # Rows read are the data lines of the file as the site sent it (none for a rejected export).
        on_disk = len(csv_rows(faulty.landing / site_id / export_id / file_name))
        assert read == (on_disk if status == "accepted" else 0), where
        ((in_quarantine,),) = faulty.query_work(
            "SELECT count(*) FROM site_private.quarantine WHERE site_id = ? AND export_id = ? AND file_name = ?",
            [site_id, export_id, file_name],
        )
        assert in_quarantine == quarantined, where
        # The analysts' counts-only quarantine names the same lines.
        ((lines_counted,),) = faulty.query(
            "SELECT count(DISTINCT line) FROM quarantine, unnest(source_lines) AS u (line) "
            "WHERE site_id = ? AND export_id = ? AND file_name = ?",
            [site_id, export_id, file_name],
        )
        assert lines_counted == quarantined, where


@pytest.mark.slow
def test_every_injected_faulty_row_is_in_the_quarantine_of_its_site_export_and_file(faulty: RegistryRun):
    row_faults = [f for f in faulty.manifest if f["source_line"] > 1]  # line 1 faults are whole-file ones
    assert len(row_faults) > 20
    assert len({f["kind"] for f in row_faults}) >= 10  # faults of many kinds, not one
    quarantined = set(faulty.query(
        "SELECT DISTINCT site_id, export_id, file_name, unnest(source_lines) FROM quarantine"
    ))

    missing = [f for f in row_faults if (f["site_id"], f["export_id"], f["file"], f["source_line"]) not in quarantined]

    assert missing == []


@pytest.mark.slow
def test_quarantine_names_the_column_of_each_injected_fault(faulty: RegistryRun):
    reasons_by_line = {
        (site, export, file_name, line): reasons
        for site, export, file_name, line, reasons in faulty.query_work(
            "SELECT site_id, export_id, file_name, source_line, reasons FROM site_private.quarantine"
        )
    }
    unexplained = []
    for fault in (f for f in faulty.manifest if f["source_line"] > 1):
        reasons = reasons_by_line.get((fault["site_id"], fault["export_id"], fault["file"], fault["source_line"]))
        columns = {column for reason in reasons or [] for column in reason["column"].split(",")}
        if fault["column"] not in columns:
            unexplained.append((fault, reasons))
    assert unexplained == []


@pytest.mark.slow
def test_export_missing_a_required_column_is_rejected_naming_it(faulty: RegistryRun):
    whole_file = [f for f in faulty.manifest if f["kind"] == "missing_required_column"]
    assert whole_file
    for fault in whole_file:
        export = export_row(faulty, fault["site_id"], fault["export_id"])
        assert export["status"] == "rejected"
        assert fault["file"] in export["rejection_reason"] and fault["column"] in export["rejection_reason"]


@pytest.mark.slow
def test_accepted_rows_of_current_exports_are_exactly_the_registry_rows(faulty: RegistryRun):
    for table in ROW_TABLES:
        file_name = f"{table}.csv"
        current = faulty.query(
            "SELECT site_id, export_id FROM exports WHERE is_current ORDER BY ALL"
        )
        expected = set()
        for site_id, export_id in current:
            lines = range(2, len(csv_rows(faulty.landing / site_id / export_id / file_name)) + 2)
            quarantined = {
                line for (line,) in faulty.query(
                    "SELECT DISTINCT unnest(source_lines) FROM quarantine "
                    "WHERE site_id = ? AND export_id = ? AND file_name = ?",
                    [site_id, export_id, file_name],
                )
            }
            expected |= {(site_id, export_id, line) for line in lines if line not in quarantined}
        registered = faulty.query(f"SELECT site_id, export_id, source_line FROM {table}")
        assert len(registered) == len(set(registered)), table
        assert set(registered) == expected, table
        ((mismatched,),) = faulty.query(
            "SELECT count(*) FROM file_counts WHERE is_current_export AND file_name = ? "
            "AND rows_in_registry <> rows_accepted",
            [file_name],
        )
        assert mismatched == 0, table


# --------------------------------------------------------------------------------------------------------
# Rejected exports.

REJECTIONS = [
    pytest.param("broken-missing-file", "2026-11-01", "adverse_events.csv", None, id="missing-file"),
    pytest.param("broken-missing-column", "2026-11-01", "patients.csv", "prior_neuropathy", id="missing-column"),
    pytest.param("broken-empty-file", "2026-11-01", "infusions.csv", None, id="empty-file"),
    pytest.param("broken-encoding", "2026-11-01", "assessments.csv", None, id="not-utf8"),
    pytest.param("broken-ragged-long", "2026-11-01", "adverse_events.csv", None, id="row-with-extra-cell"),
    pytest.param("broken-ragged-short", "2026-11-01", "dispositions.csv", None, id="row-missing-a-cell"),
    pytest.param("stalled", "2026-11-01", "infusions.csv", "max_rate_mg_h", id="newest-missing-column"),
]


@pytest.mark.parametrize(("site_id", "export_id", "file_name", "column"), REJECTIONS)
def test_unusable_export_is_rejected_with_a_message_naming_site_export_file_and_column(
    scenario: RegistryRun, site_id: str, export_id: str, file_name: str, column: str | None
):
    export = export_row(scenario, site_id, export_id)

    assert export["status"] == "rejected"
    assert export["is_current"] is False
    reason = export["rejection_reason"]
    assert site_id in reason and export_id in reason and file_name in reason
    if column:
        assert column in reason


@pytest.mark.parametrize(("site_id", "export_id", "file_name", "column"), REJECTIONS)
def test_rejected_export_has_no_rows_in_the_registry(
    scenario: RegistryRun, site_id: str, export_id: str, file_name: str, column: str | None
):
    for table in ROW_TABLES:
        rows = scenario.query(
            f"SELECT count(*) FROM {table} WHERE site_id = ? AND export_id = ?", [site_id, export_id]
        )
        assert rows == [(0,)], table
    assert scenario.query(
        "SELECT coalesce(sum(rows_read), 0) FROM file_counts WHERE site_id = ? AND export_id = ?",
        [site_id, export_id],
    ) == [(0,)]


def test_good_export_beside_rejected_ones_reaches_the_registry(scenario: RegistryRun):
    assert export_row(scenario, "steady", "2026-11-01") == {
        "status": "accepted", "rejection_reason": None, "is_current": True,
    }
    for table in ROW_TABLES:
        ((count,),) = scenario.query(f"SELECT count(*) FROM {table} WHERE site_id = 'steady'")
        assert count == len(CANONICAL_ROWS[table]), table


def test_files_as_spreadsheets_write_them_are_read_like_canonical_ones(scenario: RegistryRun):
    # A byte-order mark, CRLF line ends, blanks around header names and quoted cells are all still UTF-8 CSV.
    assert export_row(scenario, "tolerant", "2026-11-01")["status"] == "accepted"
    for table in ROW_TABLES:
        ((count,),) = scenario.query(f"SELECT count(*) FROM {table} WHERE site_id = 'tolerant'")
        assert count == len(CANONICAL_ROWS[table]), table
    assert scenario.query("SELECT count(*) FROM quarantine WHERE site_id = 'tolerant'") == [(0,)]
    assert {key for (key,) in scenario.query("SELECT patient_key FROM patients WHERE site_id = 'tolerant'")} == {
        pseudonym(TEST_KEY, "tolerant", "PT-0001"), pseudonym(TEST_KEY, "tolerant", "PT-0002"),
    }


def test_run_summary_reports_each_rejected_export(scenario: RegistryRun):
    summary = run_summary(scenario.analyst_db)
    # The operator's summary gives the site's own words, from the working store.
    with_reasons = run_summary(scenario.analyst_db, scenario.work_db)

    for site_id, export_id in scenario.query("SELECT site_id, export_id FROM exports WHERE status = 'rejected'"):
        assert f"REJECTED {site_id}/{export_id}: why: see the site’s data-manager folder" in summary
        reason = export_row(scenario, site_id, export_id)["rejection_reason"]
        assert f"REJECTED {site_id}/{export_id}: {reason}" in with_reasons


def test_non_utf8_bytes_in_a_data_row_are_not_blamed_on_the_header(scenario: RegistryRun):
    reason = export_row(scenario, "broken-encoding", "2026-11-01")["rejection_reason"]

    assert "header" not in reason


# --------------------------------------------------------------------------------------------------------
# Supersession: each site's newest accepted export is the registry's view of that site.


def test_newest_export_of_a_site_supersedes_the_earlier_one(scenario: RegistryRun):
    assert export_row(scenario, "renewed", "2026-11-01")["is_current"] is True
    assert export_row(scenario, "renewed", "2026-10-01") == {
        "status": "accepted", "rejection_reason": None, "is_current": False,
    }
    patients = scenario.query("SELECT patient_key, export_id, weight_kg FROM patients WHERE site_id = 'renewed'")
    assert {key for key, _, _ in patients} == {
        pseudonym(TEST_KEY, "renewed", "PT-0001"), pseudonym(TEST_KEY, "renewed", "PT-0003"),
    }
    assert {export for _, export, _ in patients} == {"2026-11-01"}
    assert dict((key, weight) for key, _, weight in patients)[pseudonym(TEST_KEY, "renewed", "PT-0001")] == 72
    for table in ROW_TABLES:
        stale = scenario.query(f"SELECT count(*) FROM {table} WHERE site_id = 'renewed' AND export_id <> '2026-11-01'")
        assert stale == [(0,)], table


def test_superseded_export_stays_on_record_in_file_counts(scenario: RegistryRun):
    counts = scenario.query(
        "SELECT file_name, rows_read, rows_accepted, is_current_export FROM file_counts "
        "WHERE site_id = 'renewed' AND export_id = '2026-10-01' ORDER BY file_name"
    )
    assert [(f, read, accepted, current) for f, read, accepted, current in counts] == [
        (f"{t}.csv", len(CANONICAL_ROWS[t]), len(CANONICAL_ROWS[t]), False) for t in sorted(ROW_TABLES)
    ]


def test_rejected_newest_export_leaves_the_previous_export_current(scenario: RegistryRun):
    assert export_row(scenario, "stalled", "2026-10-01")["is_current"] is True
    assert export_row(scenario, "stalled", "2026-11-01")["is_current"] is False
    for table in ROW_TABLES:
        rows = scenario.query(f"SELECT export_id, count(*) FROM {table} WHERE site_id = 'stalled' GROUP BY ALL")
        assert rows == [("2026-10-01", len(CANONICAL_ROWS[table]))], table


@pytest.mark.slow
def test_export_sent_again_corrected_replaces_its_rows_and_quarantine(
    tmp_path: Path, export_writer: ExportWriter
):
    landing = tmp_path / "landing"
    faulty = {table: [dict(row) for row in rows] for table, rows in CANONICAL_ROWS.items()}
    faulty["patients"][1]["birth_year"] = "19SS"
    export_writer(landing, "resent", rows=faulty)
    first = run_registry(landing, tmp_path / "out")
    assert first.success, first.failures
    assert first.query_work("SELECT count(*) FROM site_private.quarantine") == [(5,)]  # PT-0002 and 4 dependents
    assert first.query(
        "SELECT count(DISTINCT (file_name, line)) FROM quarantine, unnest(source_lines) AS u (line)"
    ) == [(5,)]

    export_writer(landing, "resent")  # the same export id, corrected
    second = run_registry(landing, tmp_path / "out")

    assert second.success, second.failures
    assert second.query("SELECT count(*) FROM quarantine") == [(0,)]
    assert second.query_work("SELECT count(*) FROM site_private.quarantine") == [(0,)]
    for table in ROW_TABLES:
        assert second.query(f"SELECT count(*) FROM {table}") == [(len(CANONICAL_ROWS[table]),)], table
    assert second.query(
        "SELECT sum(rows_read), sum(rows_accepted), sum(rows_quarantined) FROM file_counts"
    ) == [(13, 13, 0)]


@pytest.mark.slow
def test_export_removed_from_the_landing_folder_hands_currency_back_to_the_earlier_one(
    tmp_path: Path, export_writer: ExportWriter
):
    landing = tmp_path / "landing"
    export_writer(landing, "renewed", "2026-10-01")
    newer = export_writer(landing, "renewed", "2026-11-01")
    first = run_registry(landing, tmp_path / "out")
    assert first.success, first.failures
    assert first.query("SELECT export_id FROM exports WHERE is_current") == [("2026-11-01",)]

    for path in newer.iterdir():
        path.unlink()
    newer.rmdir()
    second = run_registry(landing, tmp_path / "out")

    assert second.success, second.failures
    assert second.query("SELECT export_id, is_current FROM exports") == [("2026-10-01", True)]
    assert second.query("SELECT DISTINCT export_id FROM patients") == [("2026-10-01",)]
    assert second.query("SELECT DISTINCT export_id FROM file_counts") == [("2026-10-01",)]


# --------------------------------------------------------------------------------------------------------
# Harmonised tables.


def _infusions_by_line(run: RegistryRun, site_id: str) -> dict[int, dict]:
    columns = ["source_line", "infusion_number", "phase", "duration_h", "max_rate_mg_h", "max_rate_mg_kg_h"]
    rows = run.query(f"SELECT {', '.join(columns)} FROM infusions WHERE site_id = ?", [site_id])
    return {row[0]: dict(zip(columns, row, strict=True)) for row in rows}


def test_infusions_are_numbered_per_patient_by_start_time_with_their_phase(scenario: RegistryRun):
    infusions = _infusions_by_line(scenario, "deviating")

    # Lines 2…6: INF-0005 (PT-0001's 4th), INF-0001, INF-0002, INF-0003 (PT-0002's 1st), INF-0004 (PT-0001's 3rd).
    assert {line: (i["infusion_number"], i["phase"]) for line, i in infusions.items()} == {
        2: (4, "maintenance"), 3: (1, "induction"), 4: (2, "induction"), 5: (1, "induction"), 6: (3, "induction"),
    }


def test_infusions_carry_duration_in_hours_and_rate_per_kilogram_where_weight_is_known(scenario: RegistryRun):
    infusions = _infusions_by_line(scenario, "steady")

    assert infusions[2]["duration_h"] == 4.0
    assert infusions[2]["max_rate_mg_kg_h"] == pytest.approx(25 / 70, abs=1e-4)  # PT-0001 weighs 70 kg
    assert infusions[4]["max_rate_mg_kg_h"] is None  # PT-0002's weight is unknown


def test_adverse_event_category_is_derived_from_the_term_when_empty(scenario: RegistryRun):
    events = scenario.query(
        "SELECT source_line, term, category, category_derived FROM adverse_events WHERE site_id = 'steady' "
        "ORDER BY source_line"
    )
    assert events == [(2, "nausea", "gastrointestinal", True), (3, "dizziness", "neurological", False)]


def test_patient_with_prior_neuropathy_stays_but_is_outside_the_analysis_cohort(scenario: RegistryRun):
    patients = scenario.query(
        "SELECT patient_key, prior_neuropathy, in_analysis_cohort FROM patients WHERE site_id = 'steady'"
    )
    assert sorted(patients) == sorted([
        (pseudonym(TEST_KEY, "steady", "PT-0001"), False, True),
        (pseudonym(TEST_KEY, "steady", "PT-0002"), True, False),
    ])


def test_quarantined_patient_takes_their_dependent_rows_into_the_quarantine(scenario: RegistryRun):
    quarantined = scenario.query_work(
        "SELECT file_name, source_line, record_id, list_transform(reasons, lambda r: r.rule) "
        "FROM site_private.quarantine "
        "WHERE site_id = 'faulty' ORDER BY file_name"
    )
    assert quarantined == [
        ("adverse_events.csv", 3, "AE-0002", ["parent_quarantined", "parent_quarantined"]),
        ("assessments.csv", 5, "ASM-0004", ["parent_quarantined", "parent_quarantined"]),
        ("dispositions.csv", 3, None, ["parent_quarantined"]),
        ("infusions.csv", 4, "INF-0003", ["parent_quarantined"]),
        ("patients.csv", 3, "PT-0002", ["type"]),
    ]
    for table in ROW_TABLES:
        ((count,),) = scenario.query(f"SELECT count(*) FROM {table} WHERE site_id = 'faulty'")
        assert count == len(CANONICAL_ROWS[table]) - 1, table


# --------------------------------------------------------------------------------------------------------
# Protocol deviations: valid data, kept, and recorded on the side.


def _deviations(run: RegistryRun, site_id: str = "deviating") -> set[tuple]:
    return set(run.query(
        "SELECT source_line, infusion_number, deviation, observed, protocol_limit FROM protocol_deviations "
        "WHERE site_id = ?",
        [site_id],
    ))


def test_first_infusion_above_the_titration_cap_is_a_deviation_and_stays_in_the_registry(
    scenario: RegistryRun
):
    assert (3, 1, "first_infusion_rate_above_titration_cap", 30.0, 25.0) in _deviations(scenario)
    assert _infusions_by_line(scenario, "deviating")[3]["max_rate_mg_h"] == 30.0


def test_two_hour_session_is_a_deviation_and_stays_in_the_registry(scenario: RegistryRun):
    assert (4, 2, "session_shorter_than_planned", 2.0, 3.0) in _deviations(scenario)
    assert _infusions_by_line(scenario, "deviating")[4]["duration_h"] == 2.0


def test_rate_above_protocol_maximum_and_long_session_are_deviations(scenario: RegistryRun):
    deviations = _deviations(scenario)

    assert (6, 3, "rate_above_protocol_maximum", 100.0, 70.0) in deviations
    assert (6, 3, "session_longer_than_planned", 6.5, 5.0) in deviations


def test_deviating_infusions_are_not_quarantined(scenario: RegistryRun):
    assert scenario.query("SELECT count(*) FROM quarantine WHERE site_id = 'deviating'") == [(0,)]
    assert len(_infusions_by_line(scenario, "deviating")) == 5
    assert {line for line, *_ in _deviations(scenario)} == {3, 4, 6}  # the conforming infusions have none


def test_export_following_the_protocol_has_no_deviations(scenario: RegistryRun):
    assert _deviations(scenario, "steady") == set()


@pytest.mark.slow
def test_protocol_file_sets_plausibility_and_deviation_limits_and_a_change_revalidates(
    tmp_path: Path, export_writer: ExportWriter
):
    landing, out = tmp_path / "landing", tmp_path / "out"
    rows = {table: [dict(row) for row in table_rows] for table, table_rows in CANONICAL_ROWS.items()}
    rows["infusions"] = list(csv.DictReader(DEVIATING_INFUSIONS_CSV.strip().splitlines()))
    rows["infusions"][4].update(max_rate_mg_h="180", total_dose_mg="")  # line 6: INF-0004 at 180 mg/h
    export_writer(landing, "deviating", rows=rows)
    settings = yaml.safe_load(DEFAULT_PROTOCOL_FILE.read_text(encoding="utf-8"))
    settings["plausibility"]["max_rate_mg_h"] = 200
    settings["titration"]["first_infusion_max_rate_mg_h"] = 30
    settings["titration"]["max_rate_mg_h"] = 100
    protocol_file = tmp_path / "protocol.yaml"
    protocol_file.write_text(yaml.safe_dump(settings), encoding="utf-8")

    default = run_registry(landing, out)
    assert default.success, default.failures
    assert default.query("SELECT source_lines FROM quarantine WHERE file_name = 'infusions.csv'") == [([6],)]
    assert "first_infusion_rate_above_titration_cap" in {d for _, _, d, _, _ in _deviations(default)}

    # The same landing folder and databases, another protocol: the export is validated again under its limits.
    other = run_registry(landing, out, protocol_file=protocol_file)

    assert other.success, other.failures
    assert other.query("SELECT count(*) FROM quarantine") == [(0,)]
    assert {(line, d, limit) for line, _, d, _, limit in _deviations(other)} == {
        (4, "session_shorter_than_planned", 3.0),
        (6, "rate_above_protocol_maximum", 100.0),
        (6, "session_longer_than_planned", 5.0),
    }


# --------------------------------------------------------------------------------------------------------
# Idempotence.


def _published(path: Path) -> dict[str, list[tuple]]:
    """Every table of the analysts' database (not only those this file knows of), rows in a stable order."""
    return {f"{schema}.{table}": table_contents(path, schema, table) for schema, table in table_names(path)}


@pytest.mark.slow
def test_running_twice_on_the_same_landing_folder_gives_identical_tables(
    scenario: RegistryRun, scenario_landing: Path, tmp_path: Path
):
    first = run_registry(scenario_landing, tmp_path)
    assert first.success, first.failures
    after_first = _published(first.analyst_db)

    second = run_registry(scenario_landing, tmp_path)
    assert second.success, second.failures
    after_second = _published(second.analyst_db)

    assert after_second == after_first
    # A fresh run elsewhere (the session's) agrees too: nothing depends on where or when it ran.
    assert _published(scenario.analyst_db) == after_first
    assert all(after_first[f"main.{table}"] for table in ROW_TABLES)


# --------------------------------------------------------------------------------------------------------
# Pseudonymisation.


def _site_patient_ids(landing: Path) -> set[str]:
    return {
        row["patient_id"].strip()
        for path in landing.glob("*/*/*.csv")
        for row in _readable_rows(path)
        if row.get("patient_id", "").strip()
    }


def _readable_rows(path: Path) -> list[dict[str, str]]:
    try:
        return csv_rows(path)
    except (UnicodeDecodeError, csv.Error):
        return []


def _cells_mentioning(path: Path, ids: set[str], skip: set[str]) -> list[tuple[str, str]]:
    pattern = re.compile("|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True)))
    found = []
    for schema, table in table_names(path):
        if table in skip:
            continue
        found += [(f"{schema}.{table}", cell) for cell in text_cells(path, schema, table) if pattern.search(cell)]
    return found


def test_no_site_patient_id_appears_anywhere_in_the_analysts_database(scenario: RegistryRun):
    ids = _site_patient_ids(scenario.landing)
    assert {"PT-0001", "PT-0002", "PT-0003"} <= ids

    assert _cells_mentioning(scenario.analyst_db, ids, skip=set()) == []


def test_working_store_keeps_the_site_ids_the_site_needs_to_fix_its_data(scenario: RegistryRun):
    assert scenario.query_work(
        "SELECT record_id FROM site_private.quarantine WHERE site_id = 'faulty' AND file_name = 'patients.csv'"
    ) == [("PT-0002",)]


@pytest.mark.slow
def test_no_generated_patient_id_appears_anywhere_in_the_analysts_database(faulty: RegistryRun):
    ids = _site_patient_ids(faulty.landing)
    assert len(ids) > 20

    assert _cells_mentioning(faulty.analyst_db, ids, skip=set()) == []


def test_patient_key_is_the_keyed_hmac_of_site_and_patient_id(scenario: RegistryRun):
    for site_id, export_id in scenario.query("SELECT site_id, export_id FROM exports WHERE is_current"):
        patients = csv_rows(scenario.landing / site_id / export_id / "patients.csv")
        quarantined = {
            record_id for (record_id,) in scenario.query_work(
                "SELECT record_id FROM site_private.quarantine "
                "WHERE site_id = ? AND export_id = ? AND file_name = 'patients.csv'",
                [site_id, export_id],
            )
        }
        expected = {pseudonym(TEST_KEY, site_id, p["patient_id"]) for p in patients} - {
            pseudonym(TEST_KEY, site_id, q) for q in quarantined
        }
        keys = {key for (key,) in scenario.query("SELECT patient_key FROM patients WHERE site_id = ?", [site_id])}
        assert keys == expected, site_id


def test_child_tables_use_the_same_patient_key_as_patients(scenario: RegistryRun):
    for table in ("infusions", "assessments", "adverse_events", "dispositions"):
        orphans = scenario.query(
            f"SELECT count(*) FROM {table} WHERE patient_key NOT IN (SELECT patient_key FROM patients)"
        )
        assert orphans == [(0,)], table


@pytest.mark.slow
def test_another_key_gives_other_patient_keys(scenario: RegistryRun, scenario_landing: Path, tmp_path: Path):
    other = run_registry(scenario_landing, tmp_path, key=OTHER_KEY)
    assert other.success, other.failures

    keys = {key for (key,) in scenario.query("SELECT patient_key FROM patients")}
    other_keys = {key for (key,) in other.query("SELECT patient_key FROM patients")}
    assert len(other_keys) == len(keys) > 0
    assert keys.isdisjoint(other_keys)
    assert pseudonym(OTHER_KEY, "steady", "PT-0001") in other_keys


def test_run_refuses_to_start_without_a_key(
    tmp_path: Path, export_writer: ExportWriter, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.delenv("KETREG_PSEUDONYM_KEY", raising=False)
    export_writer(tmp_path / "landing", "steady")

    code = cli.main(["run", "--landing", str(tmp_path / "landing"), "--db", str(tmp_path / "out" / "r.duckdb")])

    assert code == 2
    assert "KETREG_PSEUDONYM_KEY" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_run_refuses_a_key_shorter_than_16_characters(
    tmp_path: Path, export_writer: ExportWriter, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.setenv("KETREG_PSEUDONYM_KEY", "short-key")
    export_writer(tmp_path / "landing", "steady")

    code = cli.main(["run", "--landing", str(tmp_path / "landing"), "--db", str(tmp_path / "out" / "r.duckdb")])

    assert code == 2
    assert "too short" in capsys.readouterr().err


def test_run_pipeline_raises_without_a_key(
    tmp_path: Path, export_writer: ExportWriter, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("KETREG_PSEUDONYM_KEY", raising=False)
    export_writer(tmp_path / "landing", "steady")

    with pytest.raises(MissingPseudonymKey):
        run_pipeline(tmp_path / "landing", tmp_path / "out" / "r.duckdb")


@pytest.mark.parametrize(
    "key",
    ["0123456789abcdef", "k" * 64, "k" * 65, "x" * 200, "ключ-для-псевдонимов-1234"],
    ids=["16-chars", "64-bytes", "65-bytes-hashed-first", "200-bytes", "non-ascii"],
)
def test_pseudonym_macro_computes_hmac_sha256_inside_duckdb(key: str):
    con = duckdb.connect()
    install_pseudonym_macro(con, key)

    for message in ("site_a/PT-0001", "site_b/Ünïcode-Ïd", ""):
        assert con.execute("SELECT pseudonym(?)", [message]).fetchone()[0] == hmac.new(
            key.encode(), message.encode(), hashlib.sha256
        ).hexdigest()


# --------------------------------------------------------------------------------------------------------
# Identifier-like columns are never written anywhere; the run names them.


def _identifier_values() -> set[str]:
    return {value for columns in SCENARIO_IDENTIFIERS.values() for values in columns.values() for value in values}


def _identifier_columns() -> set[str]:
    return {column for columns in SCENARIO_IDENTIFIERS.values() for column in columns}


@pytest.mark.parametrize("column", [
    "patient_name", "Patient Name", "first_name", "surname", "initials", "MRN", "medical_record_number",
    "nhs_number", "address", "home_address", "postcode", "zip_code", "phone", "phone_number", "telephone",
    "mobile", "email", "E-Mail", "Email Address", "dob", "date_of_birth", "Date of Birth", "birthdate",
    "address_line_1",
    "phone_no",
])
def test_header_that_looks_like_a_direct_identifier_is_recognised(column: str):
    assert looks_like_identifier(column)


@pytest.mark.parametrize("column", sorted({c for table in TABLES for c in table.columns}))
def test_no_contract_column_is_taken_for_an_identifier(column: str):
    assert not looks_like_identifier(column)


@pytest.mark.parametrize("database", ["analyst_db", "work_db"])
def test_identifier_like_column_values_are_never_written(scenario: RegistryRun, database: str):
    path = getattr(scenario, database)

    assert _cells_mentioning(path, _identifier_values(), skip=set()) == []


@pytest.mark.parametrize("database", ["analyst_db", "work_db"])
def test_no_table_has_an_identifier_like_column(scenario: RegistryRun, database: str):
    path = getattr(scenario, database)
    columns = {
        name for (name,) in query_db(
            path, "SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database()"
        )
    }

    assert columns & _identifier_columns() == set()


def test_identifier_like_columns_are_named_in_the_working_store_and_counted_for_analysts(scenario: RegistryRun):
    dropped = scenario.query_work(
        "SELECT file_name, identifier_columns_dropped FROM site_private.file_columns WHERE site_id = 'identified' "
        "AND len(identifier_columns_dropped) > 0 ORDER BY file_name"
    )
    assert dropped == [(file_name, list(columns)) for file_name, columns in sorted(SCENARIO_IDENTIFIERS.items())]
    counted = scenario.query(
        "SELECT file_name, identifier_columns_dropped_count FROM file_counts WHERE site_id = 'identified' "
        "AND identifier_columns_dropped_count > 0 ORDER BY file_name"
    )
    assert counted == [(file_name, len(columns)) for file_name, columns in sorted(SCENARIO_IDENTIFIERS.items())]


def test_run_summary_names_the_identifier_like_columns(scenario: RegistryRun):
    summary = run_summary(scenario.analyst_db, scenario.work_db)

    assert "identified/2026-11-01/patients.csv: patient_name, mrn" in summary


def test_rows_sent_with_identifier_like_columns_are_otherwise_processed(scenario: RegistryRun):
    assert scenario.query("SELECT count(*) FROM patients WHERE site_id = 'identified'") == [(1,)]
    # The quarantined row keeps the contract's raw values only, not the identifier-like ones.
    ((raw_values,),) = scenario.query_work(
        "SELECT raw_values FROM site_private.quarantine WHERE site_id = 'identified' AND file_name = 'patients.csv'"
    )
    assert "PT-0002" in raw_values and "Alan Turing" not in raw_values and "mrn" not in raw_values


# --------------------------------------------------------------------------------------------------------
# The command line.


@pytest.mark.slow
def test_cli_generate_then_run_publishes_the_registry_and_prints_a_summary(
    tmp_path: Path, pseudonym_key: str, capsys, monkeypatch: pytest.MonkeyPatch
):
    # Relative paths, as `make demo` passes them (Great Expectations once refused a relative Data Docs folder).
    monkeypatch.chdir(tmp_path)
    landing, db = Path("landing"), Path("out") / "registry.duckdb"

    assert synthetic_cli.main(["generate", "--out", str(landing), "--sites", "2", "--patients-per-site", "8",
                     "--seed", "5"]) == 0
    generated = capsys.readouterr().out
    assert cli.main(["run", "--landing", str(landing), "--db", str(db)]) == 0
    summary = capsys.readouterr().out

    assert "exports" in generated
    assert f"Registry {db}: 2 sites" in summary
    assert "protocol deviations" in summary
    assert db.is_file() and (tmp_path / "out" / "registry_work.duckdb").is_file()
    current = query_db(db, "SELECT site_id, export_id FROM exports WHERE is_current ORDER BY ALL")
    assert len(current) == 2
    expected_patients = sum(len(csv_rows(landing / s / e / "patients.csv")) for s, e in current)
    assert query_db(db, "SELECT count(*) FROM patients") == [(expected_patients,)]
    assert query_db(db, "SELECT count(*) FROM quarantine") == [(0,)]  # no faults asked for
    assert (tmp_path / "out" / "reports" / "index.html").is_file()
    assert (tmp_path / "out" / "reports" / "data_docs" / "index.html").is_file()
    # Where each privacy tier's output is.
    assert "Privacy tiers" in summary and "out/reports/sites/<site_id>/" in summary
    for site_id, _ in current:
        assert (tmp_path / "out" / "reports" / "sites" / site_id / "index.html").is_file()


def test_cli_run_on_a_missing_landing_folder_exits_2(tmp_path: Path, pseudonym_key: str, capsys):
    code = cli.main(["run", "--landing", str(tmp_path / "nowhere"), "--db", str(tmp_path / "r.duckdb")])

    assert code == 2
    assert "nowhere" in capsys.readouterr().err


def test_cli_run_with_an_impossible_protocol_file_exits_2(
    tmp_path: Path, export_writer: ExportWriter, pseudonym_key: str, capsys
):
    export_writer(tmp_path / "landing", "steady")
    settings = yaml.safe_load(DEFAULT_PROTOCOL_FILE.read_text(encoding="utf-8"))
    settings["plausibility"]["max_rate_mg_h"] = 50  # below the protocol maximum of 70 mg/h
    (tmp_path / "protocol.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")

    code = cli.main(["run", "--landing", str(tmp_path / "landing"), "--db", str(tmp_path / "r.duckdb"),
                     "--protocol", str(tmp_path / "protocol.yaml")])

    assert code == 2
    assert "protocol.yaml" in capsys.readouterr().err


def test_cli_run_with_a_db_where_no_file_can_be_made_exits_2_before_running(
    tmp_path: Path, export_writer: ExportWriter, pseudonym_key: str, capsys
):
    # A failed run (exit 1) is covered in test_no_accidental_loss.py; a path that cannot hold the database
    # is the operator's to fix and is caught before any step runs.
    export_writer(tmp_path / "landing", "steady")
    (tmp_path / "not-a-folder").write_text("a file where the databases' folder should be", encoding="utf-8")
    db = tmp_path / "not-a-folder" / "registry.duckdb"

    code = cli.main(["run", "--landing", str(tmp_path / "landing"), "--db", str(db)])

    assert code == 2
    assert "cannot be created" in capsys.readouterr().err
    assert not db.exists()


# --------------------------------------------------------------------------------------------------------
# The Dagster code location.


def test_dagster_definitions_load_and_every_asset_has_a_layer_group():
    from pipelines.definitions import defs

    specs = list(defs.resolve_all_asset_specs())
    groups = {spec.key.to_user_string(): spec.group_name for spec in specs}

    assert {f"registry/{t}" for t in PUBLISHED_TABLES - {"ae_term_categories"}} <= set(groups)
    assert "publish/analyst_registry" in groups
    assert all(group and group != "default" for group in groups.values()), groups
    assert {"landing", "staging", "registry", "publish"} <= set(groups.values())
    for key, group in groups.items():
        assert key.split("/")[0] == group, key  # the key's first part is its layer


def test_dagster_definitions_carry_the_registry_checks():
    from pipelines.definitions import defs

    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}

    assert {"rows_conserved", "accepted_rows_reach_registry", "patient_key_unique_not_null"} <= checks


@pytest.mark.slow
def test_dagster_definitions_validate_for_the_workspace():
    env = {**os.environ, "KETREG_PSEUDONYM_KEY": TEST_KEY}
    env.pop("DAGSTER_HOME", None)

    result = subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
