"""Every rule of the canonical site-export contract (v1, issue 2), each with a row that breaks it and a row
that keeps it, through `validate_table` (no Dagster): the canonical export is valid, a test changes one cell
and checks that exactly that row is quarantined, with that rule, in words that name the column and value."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from support import (
    EXPORT_ID,
    Rows,
    canonical_rows,
    quarantine_reasons,
    raw_frame,
    row_by_id,
    validate_rows,
)

from schemas.enums import (
    AE_ACTIONS,
    AE_CATEGORIES,
    AE_OUTCOMES,
    AE_TERM_CATEGORY,
    AE_TERMS,
    CANCER_TYPES,
    CNP_ETIOLOGIES,
    DISPOSITION_REASONS,
    DISPOSITION_STATUSES,
    SEX,
    STOP_REASONS,
    TIMEPOINTS,
)
from schemas.protocol import DEFAULT_PROTOCOL_FILE, load_protocol
from schemas.tables import TABLES_BY_NAME
from schemas.validation import validate_table

TODAY = dt.date.today()
THIS_YEAR = TODAY.year

# The row of each table a single-cell case changes (index into the canonical rows; line = index + 2).
FIRST_ROW = 0


def _case(table: str, column: str, value: str, rule: str, row: int = FIRST_ROW):
    return pytest.param(table, row, column, value, rule, id=f"{table}.{column}={value!r}->{rule}")


def _ok(table: str, column: str, value: str, row: int = FIRST_ROW, **also: str):
    label = f"{table}.{column}={value!r}" + "".join(f",{k}={v!r}" for k, v in also.items())
    return pytest.param(table, row, column, value, also, id=label)


# A cell that breaks the contract and the rule the quarantine must name.
INVALID_CELLS = [
    # patients
    _case("patients", "patient_id", "", "required"),
    _case("patients", "sex", "female", "code"),
    _case("patients", "sex", "f", "code"),
    _case("patients", "birth_year", "19x0", "type"),
    _case("patients", "birth_year", "1960.5", "type"),
    _case("patients", "birth_year", "", "required"),
    _case("patients", "birth_year", "1899", "range"),
    _case("patients", "birth_year", str(THIS_YEAR + 1), "birth_year_not_in_future"),
    _case("patients", "weight_kg", "seventy", "type"),
    _case("patients", "weight_kg", "24.9", "range"),
    _case("patients", "weight_kg", "300.1", "range"),
    _case("patients", "cancer_type", "brain", "code"),
    _case("patients", "cancer_type", "", "required"),
    _case("patients", "metastatic", "yes", "type"),
    _case("patients", "cnp_etiology", "diabetes", "code"),
    _case("patients", "cnp_etiology", "", "required"),
    _case("patients", "prior_neuropathy", "", "required"),
    _case("patients", "prior_neuropathy", "maybe", "type"),
    _case("patients", "cnp_diagnosis_date", (TODAY + dt.timedelta(days=1)).isoformat(), "date_not_in_future"),
    _case("patients", "cnp_diagnosis_date", "10/01/2024", "type"),
    _case("patients", "cnp_diagnosis_date", "2024-02-30", "type"),
    # infusions
    _case("infusions", "infusion_id", "", "required"),
    _case("infusions", "patient_id", "", "required"),
    _case("infusions", "start_time", "", "required"),
    _case("infusions", "start_time", "2025-01-06", "type"),
    _case("infusions", "start_time", "06/01/2025 09:00", "type"),
    _case("infusions", "end_time", "2025-01-06T25:00", "type"),
    _case("infusions", "initial_rate_mg_h", "", "required"),
    _case("infusions", "initial_rate_mg_h", "ten", "type"),
    _case("infusions", "initial_rate_mg_h", "0", "range"),
    _case("infusions", "initial_rate_mg_h", "-5", "range"),
    _case("infusions", "max_rate_mg_h", "", "required"),
    _case("infusions", "max_rate_mg_h", "0", "range"),
    _case("infusions", "max_rate_mg_h", "150.01", "rate_within_plausibility_limit"),
    _case("infusions", "initial_rate_mg_h", "151", "rate_within_plausibility_limit"),
    _case("infusions", "total_dose_mg", "-1", "range"),
    _case("infusions", "total_dose_mg", "lots", "type"),
    _case("infusions", "completed", "", "required"),
    _case("infusions", "completed", "yes", "type"),
    _case("infusions", "stop_reason", "bored", "code"),
    _case("infusions", "relief_duration_days", "-1", "range"),
    _case("infusions", "relief_duration_days", "2.5", "type"),
    # assessments
    _case("assessments", "assessment_id", "", "required"),
    _case("assessments", "patient_id", "", "required"),
    _case("assessments", "assessed_at", "", "required"),
    _case("assessments", "assessed_at", "yesterday", "type"),
    _case("assessments", "timepoint", "during", "code"),
    _case("assessments", "timepoint", "", "required"),
    _case("assessments", "nprs", "11", "range"),
    _case("assessments", "nprs", "-1", "range"),
    _case("assessments", "nprs", "7.5", "type"),
    _case("assessments", "function_score", "11", "range"),
    _case("assessments", "function_score", "-1", "range"),
    _case("assessments", "satisfaction", "11", "range", row=2),
    _case("assessments", "satisfaction", "-1", "range", row=2),
    _case("assessments", "daily_mme", "-0.5", "range"),
    _case("assessments", "daily_mme", "2000.5", "range"),
    _case("assessments", "daily_mme", "n/a", "type"),
    _case("assessments", "subjective_improvement", "y", "type"),
    # adverse events
    _case("adverse_events", "ae_id", "", "required"),
    _case("adverse_events", "patient_id", "", "required"),
    _case("adverse_events", "infusion_id", "", "required"),
    _case("adverse_events", "onset_time", "soon", "type"),
    _case("adverse_events", "term", "fever", "code"),
    _case("adverse_events", "term", "", "required"),
    _case("adverse_events", "category", "renal", "code"),
    _case("adverse_events", "grade", "0", "range"),
    _case("adverse_events", "grade", "6", "range"),
    _case("adverse_events", "grade", "2.0", "type"),
    _case("adverse_events", "grade", "", "required"),
    _case("adverse_events", "serious", "", "required"),
    _case("adverse_events", "serious", "no", "type"),
    _case("adverse_events", "action_taken", "dose_doubled", "code"),
    _case("adverse_events", "action_taken", "", "required"),
    _case("adverse_events", "outcome", "gone", "code"),
    _case("adverse_events", "outcome", "", "required"),
    # dispositions
    _case("dispositions", "patient_id", "", "required"),
    _case("dispositions", "event_date", "", "required"),
    _case("dispositions", "event_date", "2025-02-31", "type"),
    _case("dispositions", "status", "paused", "code"),
    _case("dispositions", "status", "", "required"),
    _case("dispositions", "reason", "bored", "code", row=1),
]

# A cell at the edge of (or simply within) the contract: the whole export stays valid. `also` changes other
# cells of the same row where the value needs them (e.g. a term of 'other' for any category).
VALID_CELLS = [
    # patients
    *[_ok("patients", "sex", code) for code in SEX],
    _ok("patients", "birth_year", "1900"),
    _ok("patients", "birth_year", str(THIS_YEAR)),
    _ok("patients", "weight_kg", "25"),
    _ok("patients", "weight_kg", "300"),
    _ok("patients", "weight_kg", "82.5"),
    _ok("patients", "weight_kg", ""),
    *[_ok("patients", "cancer_type", code) for code in CANCER_TYPES],
    _ok("patients", "metastatic", ""),
    _ok("patients", "metastatic", "true"),
    *[_ok("patients", "cnp_etiology", code) for code in CNP_ETIOLOGIES],
    _ok("patients", "prior_neuropathy", "true"),
    _ok("patients", "cnp_diagnosis_date", TODAY.isoformat()),
    _ok("patients", "cnp_diagnosis_date", ""),
    # infusions
    _ok("infusions", "start_time", "2025-01-06T09:00:00"),
    _ok("infusions", "end_time", "2025-01-06T12:59:59"),
    _ok("infusions", "initial_rate_mg_h", "0.5"),
    _ok("infusions", "initial_rate_mg_h", "25"),
    _ok("infusions", "max_rate_mg_h", "150", total_dose_mg=""),
    _ok("infusions", "total_dose_mg", "0"),
    _ok("infusions", "total_dose_mg", ""),
    _ok("infusions", "completed", "false"),
    *[_ok("infusions", "stop_reason", code) for code in STOP_REASONS],
    _ok("infusions", "stop_reason", ""),
    _ok("infusions", "relief_duration_days", "0"),
    _ok("infusions", "relief_duration_days", ""),
    # assessments
    _ok("assessments", "infusion_id", ""),
    *[_ok("assessments", "timepoint", code) for code in TIMEPOINTS],
    _ok("assessments", "nprs", "0"),
    _ok("assessments", "nprs", "10"),
    _ok("assessments", "nprs", ""),
    _ok("assessments", "function_score", "0"),
    _ok("assessments", "function_score", "10"),
    _ok("assessments", "function_score", ""),
    _ok("assessments", "satisfaction", "0", row=2),
    _ok("assessments", "satisfaction", "10", row=2),
    _ok("assessments", "daily_mme", "0"),
    _ok("assessments", "daily_mme", "2000"),
    _ok("assessments", "daily_mme", ""),
    _ok("assessments", "subjective_improvement", "false"),
    _ok("assessments", "subjective_improvement", "true"),
    _ok("assessments", "subjective_improvement", ""),
    # adverse events
    _ok("adverse_events", "onset_time", ""),
    *[_ok("adverse_events", "term", term, category="") for term in AE_TERMS],
    *[_ok("adverse_events", "term", term, category=category) for term, category in AE_TERM_CATEGORY.items()],
    *[_ok("adverse_events", "category", category, term="other") for category in AE_CATEGORIES],
    *[_ok("adverse_events", "grade", str(grade)) for grade in range(1, 6)],
    _ok("adverse_events", "serious", "true"),
    *[_ok("adverse_events", "action_taken", code) for code in AE_ACTIONS],
    *[_ok("adverse_events", "outcome", code) for code in AE_OUTCOMES],
    # dispositions
    *[_ok("dispositions", "status", code) for code in DISPOSITION_STATUSES],
    *[_ok("dispositions", "reason", code) for code in DISPOSITION_REASONS],
    _ok("dispositions", "reason", ""),
]


def _reason_columns(reason: dict[str, str]) -> list[str]:
    return reason["column"].split(",")


def _all_accepted(results: dict) -> dict[str, int]:
    """Quarantined row counts by table; {} when every row of the export was accepted."""
    return {name: result.quarantined.height for name, result in results.items() if result.quarantined.height}


# --------------------------------------------------------------------------------------------------------
# Single cells: types, required values, codes, ranges, dates.


def test_canonical_export_is_valid_in_every_file():
    results = validate_rows(canonical_rows())

    assert _all_accepted(results) == {}
    assert {name: result.accepted.height for name, result in results.items()} == {
        "patients": 2, "infusions": 3, "assessments": 4, "adverse_events": 2, "dispositions": 2,
    }


@pytest.mark.parametrize(("table", "row", "column", "value", "rule"), INVALID_CELLS)
def test_cell_breaking_the_contract_quarantines_its_row_with_that_rule(
    rows: Rows, table: str, row: int, column: str, value: str, rule: str
):
    rows[table][row][column] = value

    result = validate_rows(rows, upto=table)[table]

    reasons = quarantine_reasons(result, source_line=row + 2)
    assert any(r["rule"] == rule and column in _reason_columns(r) for r in reasons), reasons
    # Only the changed row is quarantined; the rest of its file is accepted.
    assert result.quarantined["source_line"].to_list() == [row + 2]
    assert result.accepted.height == len(rows[table]) - 1
    # The data manager reads which column failed and, when there was one, the value as received.
    message = next(r["message"] for r in reasons if r["rule"] == rule and column in _reason_columns(r))
    assert column in message
    if value:
        assert f"'{value}'" in message


@pytest.mark.parametrize(("table", "row", "column", "value", "also"), VALID_CELLS)
def test_cell_within_the_contract_is_accepted(
    rows: Rows, table: str, row: int, column: str, value: str, also: dict[str, str]
):
    rows[table][row][column] = value
    rows[table][row].update(also)

    results = validate_rows(rows, upto=table)

    assert _all_accepted(results) == {}


def test_missing_sex_is_accepted_as_unknown(rows: Rows):
    rows["patients"][0]["sex"] = ""
    rows["patients"][1]["sex"] = "  "

    result = validate_rows(rows, upto="patients")["patients"]

    assert result.quarantined.height == 0
    assert result.accepted["sex"].to_list() == ["U", "U"]


def test_file_without_a_sex_column_reads_every_patient_as_unknown(rows: Rows):
    # What the reader hands over for a file without the column: the column, all empty.
    raw = raw_frame("patients", rows["patients"]).with_columns(pl.lit(None, pl.String).alias("sex"))

    result = validate_table(raw, TABLES_BY_NAME["patients"], load_protocol())

    assert result.quarantined.height == 0
    assert result.accepted["sex"].to_list() == ["U", "U"]


def test_accepted_rows_carry_typed_values_and_their_lineage(rows: Rows):
    results = validate_rows(rows, upto="infusions")

    patient = results["patients"].accepted.row(0, named=True)
    infusion = results["infusions"].accepted.row(0, named=True)
    assert (patient["site_id"], patient["export_id"], patient["source_line"]) == ("site_a", EXPORT_ID, 2)
    assert patient["birth_year"] == 1960
    assert patient["weight_kg"] == 70.0
    assert patient["prior_neuropathy"] is False
    assert patient["cnp_diagnosis_date"] == dt.date(2024, 1, 10)
    assert infusion["start_time"] == dt.datetime(2025, 1, 6, 9, 0)
    assert infusion["completed"] is True


# --------------------------------------------------------------------------------------------------------
# Uniqueness within one export's file.

RECORD_IDS = {
    "patients": "PT-0001", "infusions": "INF-0001", "assessments": "ASM-0001", "adverse_events": "AE-0001",
}


@pytest.mark.parametrize("table", list(RECORD_IDS))
def test_id_repeated_within_one_file_quarantines_every_copy(rows: Rows, table: str):
    id_column = TABLES_BY_NAME[table].record_id
    duplicate = dict(rows[table][1])
    duplicate[id_column] = RECORD_IDS[table]
    rows[table].append(duplicate)

    result = validate_rows(rows, upto=table)[table]

    assert sorted(result.quarantined["record_id"].to_list()) == [RECORD_IDS[table]] * 2
    for reasons in result.quarantined["reasons"].to_list():
        assert [r["rule"] for r in reasons if r["rule"] == f"{id_column}_unique_in_file"] == [
            f"{id_column}_unique_in_file"
        ]
        message = next(r["message"] for r in reasons if r["rule"] == f"{id_column}_unique_in_file")
        assert id_column in message and RECORD_IDS[table] in message


@pytest.mark.parametrize("table", list(RECORD_IDS))
def test_same_id_in_two_exports_is_accepted(table: str):
    first, second = canonical_rows(), canonical_rows()
    frames = {
        name: pl.concat([
            raw_frame(name, first[name], export_id="2026-10-01"),
            raw_frame(name, second[name], export_id="2026-11-01"),
        ])
        for name in first
    }

    results = validate_rows(first, frames=frames, upto=table)

    assert results[table].quarantined.height == 0
    assert results[table].accepted.height == 2 * len(first[table])


def test_same_patient_id_at_two_sites_is_accepted():
    rows = canonical_rows()["patients"]
    raw = pl.concat([raw_frame("patients", rows, site_id=site) for site in ("site_a", "site_b")])

    result = validate_table(raw, TABLES_BY_NAME["patients"], load_protocol())

    assert result.quarantined.height == 0


# --------------------------------------------------------------------------------------------------------
# Infusions: times, rates and doses across columns.


def _infusion_reasons(rows: Rows, infusion_id: str = "INF-0001") -> list[dict[str, str]]:
    result = validate_rows(rows, upto="infusions")["infusions"]
    return quarantine_reasons(result, record_id=infusion_id)


@pytest.mark.parametrize("end_time", ["2025-01-06T09:00", "2025-01-06T08:59"], ids=["equal", "before"])
def test_infusion_ending_at_or_before_its_start_is_quarantined(rows: Rows, end_time: str):
    row_by_id(rows, "infusions", "INF-0001").update(end_time=end_time, total_dose_mg="")

    reasons = _infusion_reasons(rows)

    assert [r["rule"] for r in reasons] == ["end_after_start"]
    assert "start_time" in reasons[0]["message"] and "end_time" in reasons[0]["message"]
    assert end_time in reasons[0]["message"]


def test_infusion_ending_a_minute_after_its_start_is_accepted(rows: Rows):
    row_by_id(rows, "infusions", "INF-0001").update(end_time="2025-01-06T09:01", total_dose_mg="")

    assert _infusion_reasons(rows) == []


def test_session_of_exactly_12_hours_is_accepted(rows: Rows):
    row_by_id(rows, "infusions", "INF-0001")["end_time"] = "2025-01-06T21:00"

    assert _infusion_reasons(rows) == []


def test_session_longer_than_12_hours_is_quarantined(rows: Rows):
    row_by_id(rows, "infusions", "INF-0001")["end_time"] = "2025-01-06T21:01"

    reasons = _infusion_reasons(rows)

    assert [r["rule"] for r in reasons] == ["duration_at_most_12_h"]
    assert "12 h" in reasons[0]["message"]


def test_max_rate_below_initial_rate_is_quarantined(rows: Rows):
    row_by_id(rows, "infusions", "INF-0001").update(initial_rate_mg_h="30", max_rate_mg_h="25")

    reasons = _infusion_reasons(rows)

    assert [r["rule"] for r in reasons] == ["max_rate_at_least_initial"]
    assert "'30'" in reasons[0]["message"] and "'25'" in reasons[0]["message"]


def test_max_rate_equal_to_initial_rate_is_accepted(rows: Rows):
    row_by_id(rows, "infusions", "INF-0001").update(initial_rate_mg_h="25", max_rate_mg_h="25")

    assert _infusion_reasons(rows) == []


@pytest.mark.parametrize("column", ["initial_rate_mg_h", "max_rate_mg_h"])
def test_rate_above_plausibility_limit_is_invalid_and_the_message_suggests_a_unit_error(
    rows: Rows, column: str
):
    row_by_id(rows, "infusions", "INF-0001").update(
        initial_rate_mg_h="160", max_rate_mg_h="160", total_dose_mg=""
    )

    reasons = [r for r in _infusion_reasons(rows) if column in _reason_columns(r)]

    assert [r["rule"] for r in reasons] == ["rate_within_plausibility_limit"]
    assert "150" in reasons[0]["message"] and "'160'" in reasons[0]["message"]
    assert "unit" in reasons[0]["message"]


def test_rate_at_plausibility_limit_is_valid_even_above_the_protocol_maximum(rows: Rows):
    # 150 mg/h is far above the 70 mg/h protocol maximum: a deviation, recorded later, not invalid data.
    row_by_id(rows, "infusions", "INF-0002").update(initial_rate_mg_h="150", max_rate_mg_h="150")

    assert _infusion_reasons(rows, "INF-0002") == []


def _protocol_file(tmp_path: Path, plausible_max_rate_mg_h: float) -> Path:
    settings = yaml.safe_load(DEFAULT_PROTOCOL_FILE.read_text(encoding="utf-8"))
    settings["plausibility"]["max_rate_mg_h"] = plausible_max_rate_mg_h
    path = tmp_path / "protocol.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def test_protocol_file_with_a_higher_plausibility_limit_accepts_what_the_default_rejects(
    rows: Rows, tmp_path: Path
):
    row_by_id(rows, "infusions", "INF-0002").update(max_rate_mg_h="180", total_dose_mg="")
    higher = load_protocol(_protocol_file(tmp_path, 200))

    default_result = validate_rows(rows, upto="infusions")["infusions"]
    higher_result = validate_rows(rows, protocol=higher, upto="infusions")["infusions"]

    assert default_result.quarantined["record_id"].to_list() == ["INF-0002"]
    assert higher_result.quarantined.height == 0


def test_protocol_file_with_a_lower_plausibility_limit_rejects_what_the_default_accepts(
    rows: Rows, tmp_path: Path
):
    row_by_id(rows, "infusions", "INF-0002").update(max_rate_mg_h="120", total_dose_mg="")
    lower = load_protocol(_protocol_file(tmp_path, 100))

    default_result = validate_rows(rows, upto="infusions")["infusions"]
    lower_result = validate_rows(rows, protocol=lower, upto="infusions")["infusions"]

    assert default_result.quarantined.height == 0
    reasons = quarantine_reasons(lower_result, record_id="INF-0002")
    assert [r["rule"] for r in reasons] == ["rate_within_plausibility_limit"]
    assert "100 mg/h" in reasons[0]["message"]


@pytest.mark.parametrize(
    ("max_rate", "start", "end", "dose"),
    [("25", "09:00", "13:00", "100"), ("40", "09:00", "13:00", "160"), ("30", "09:00", "12:30", "105"),
     ("0.1", "09:00", "12:00", "0.3")],
    ids=["25mg/h*4h=100", "40mg/h*4h=160", "30mg/h*3.5h=105", "0.1mg/h*3h=0.3"],
)
def test_total_dose_equal_to_max_rate_times_duration_is_accepted(
    rows: Rows, max_rate: str, start: str, end: str, dose: str
):
    row_by_id(rows, "infusions", "INF-0002").update(
        initial_rate_mg_h=max_rate, max_rate_mg_h=max_rate, start_time=f"2025-01-13T{start}",
        end_time=f"2025-01-13T{end}", total_dose_mg=dose,
    )

    assert _infusion_reasons(rows, "INF-0002") == []


@pytest.mark.parametrize("dose", ["100.01", "101", "1000"])
def test_total_dose_above_max_rate_times_duration_is_quarantined(rows: Rows, dose: str):
    row_by_id(rows, "infusions", "INF-0001")["total_dose_mg"] = dose  # 25 mg/h × 4 h = 100 mg at most

    reasons = _infusion_reasons(rows)

    assert [r["rule"] for r in reasons] == ["total_dose_within_max_rate_times_duration"]
    assert f"'{dose}'" in reasons[0]["message"] and "max_rate_mg_h" in reasons[0]["message"]


# --------------------------------------------------------------------------------------------------------
# References between the files of one export.


@pytest.mark.parametrize("table", ["infusions", "assessments", "adverse_events", "dispositions"])
def test_row_of_a_patient_missing_from_patients_is_quarantined(rows: Rows, table: str):
    rows[table][0]["patient_id"] = "PT-9999"

    result = validate_rows(rows, upto=table)[table]

    reasons = quarantine_reasons(result, source_line=2)
    assert "patient_exists" in [r["rule"] for r in reasons]
    message = next(r["message"] for r in reasons if r["rule"] == "patient_exists")
    assert "patient_id" in message and "PT-9999" in message
    assert result.quarantined.height == 1


@pytest.mark.parametrize("table", ["assessments", "adverse_events"])
def test_row_naming_an_infusion_missing_from_infusions_is_quarantined(rows: Rows, table: str):
    line = 3 if table == "assessments" else 2  # rows that name INF-0001
    rows[table][line - 2]["infusion_id"] = "INF-9999"

    result = validate_rows(rows, upto=table)[table]

    reasons = quarantine_reasons(result, source_line=line)
    assert [r["rule"] for r in reasons] == ["infusion_exists"]
    assert "infusion_id" in reasons[0]["message"] and "INF-9999" in reasons[0]["message"]


@pytest.mark.parametrize("table", ["assessments", "adverse_events"])
def test_row_naming_an_infusion_of_another_patient_is_quarantined(rows: Rows, table: str):
    line = 3 if table == "assessments" else 2  # rows of PT-0001 at INF-0001
    rows[table][line - 2]["infusion_id"] = "INF-0003"  # PT-0002's infusion

    result = validate_rows(rows, upto=table)[table]

    reasons = quarantine_reasons(result, source_line=line)
    assert [r["rule"] for r in reasons] == ["infusion_belongs_to_patient"]
    assert "another patient" in reasons[0]["message"] and "INF-0003" in reasons[0]["message"]
    assert result.quarantined.height == 1


def test_assessment_without_an_infusion_is_accepted_for_baseline_and_follow_up(rows: Rows):
    rows["assessments"].append(
        {"assessment_id": "ASM-0005", "patient_id": "PT-0001", "infusion_id": "",
         "assessed_at": "2025-03-01T10:00", "timepoint": "follow_up", "nprs": "4", "function_score": "",
         "satisfaction": "", "daily_mme": "", "subjective_improvement": ""}
    )

    assert _all_accepted(validate_rows(rows)) == {}


def test_rows_of_a_quarantined_patient_are_quarantined_as_parent_quarantined(rows: Rows):
    row_by_id(rows, "patients", "PT-0002")["birth_year"] = "1890"

    results = validate_rows(rows)

    assert results["patients"].quarantined["record_id"].to_list() == ["PT-0002"]
    expected_children = {
        "infusions": ["INF-0003"], "assessments": ["ASM-0004"], "adverse_events": ["AE-0002"],
        "dispositions": [None],
    }
    for table, record_ids in expected_children.items():
        quarantined = results[table].quarantined
        assert quarantined["record_id"].to_list() == record_ids, table
        reasons = quarantined["reasons"].to_list()[0]
        assert "parent_quarantined" in [r["rule"] for r in reasons], (table, reasons)
        assert all(r["rule"] in {"parent_quarantined"} for r in reasons), (table, reasons)
    # PT-0001 and everything of theirs stays.
    assert results["infusions"].accepted["infusion_id"].to_list() == ["INF-0001", "INF-0002"]


def test_parent_quarantined_message_names_the_parent_file_and_id(rows: Rows):
    row_by_id(rows, "patients", "PT-0002")["birth_year"] = "1890"

    result = validate_rows(rows, upto="infusions")["infusions"]

    (reason,) = quarantine_reasons(result, record_id="INF-0003")
    assert reason["column"] == "patient_id"
    assert "PT-0002" in reason["message"] and "patients.csv" in reason["message"]


def test_rows_of_a_quarantined_infusion_are_quarantined_as_parent_quarantined(rows: Rows):
    row_by_id(rows, "infusions", "INF-0001")["max_rate_mg_h"] = "5"  # below its initial rate

    results = validate_rows(rows)

    assert results["infusions"].quarantined["record_id"].to_list() == ["INF-0001"]
    for table, record_ids in {"assessments": ["ASM-0002", "ASM-0003"], "adverse_events": ["AE-0001"]}.items():
        quarantined = results[table].quarantined
        assert quarantined["record_id"].to_list() == record_ids
        for reasons in quarantined["reasons"].to_list():
            assert [(r["column"], r["rule"]) for r in reasons] == [("infusion_id", "parent_quarantined")]
    # The patient's baseline assessment names no infusion and stays; so does the patient.
    assert "ASM-0001" in results["assessments"].accepted["assessment_id"].to_list()
    assert results["patients"].quarantined.height == 0


def test_rows_of_a_duplicated_patient_id_are_quarantined_as_parent_quarantined(rows: Rows):
    duplicate = dict(rows["patients"][1])
    duplicate["patient_id"] = "PT-0001"
    rows["patients"].append(duplicate)

    results = validate_rows(rows, upto="infusions")

    quarantined = results["infusions"].quarantined
    assert sorted(quarantined["record_id"].to_list()) == ["INF-0001", "INF-0002"]
    rules = {r["rule"] for reasons in quarantined["reasons"].to_list() for r in reasons}
    assert rules == {"parent_quarantined"}


# --------------------------------------------------------------------------------------------------------
# Adverse events: the category must agree with the term's body system.


def test_ae_category_contradicting_the_term_is_quarantined(rows: Rows):
    row_by_id(rows, "adverse_events", "AE-0001")["category"] = "cardiovascular"  # term: nausea

    result = validate_rows(rows, upto="adverse_events")["adverse_events"]

    reasons = quarantine_reasons(result, record_id="AE-0001")
    assert [r["rule"] for r in reasons] == ["category_matches_term"]
    assert "'nausea'" in reasons[0]["message"] and "'cardiovascular'" in reasons[0]["message"]


def test_ae_category_matching_the_term_or_empty_is_accepted(rows: Rows):
    row_by_id(rows, "adverse_events", "AE-0001")["category"] = "gastrointestinal"
    row_by_id(rows, "adverse_events", "AE-0002")["category"] = ""

    assert _all_accepted(validate_rows(rows)) == {}


# --------------------------------------------------------------------------------------------------------
# What the quarantine says.


def test_every_failure_of_a_row_is_reported_not_just_the_first(rows: Rows):
    row_by_id(rows, "infusions", "INF-0001").update(
        end_time="2025-01-06T08:00",  # before the start
        initial_rate_mg_h="0",  # not above 0
        completed="maybe",  # not a boolean
        stop_reason="bored",  # not a code
        relief_duration_days="-3",  # below 0
    )

    reasons = _infusion_reasons(rows)

    rules_by_column = {(r["column"], r["rule"]) for r in reasons}
    assert {
        ("start_time,end_time", "end_after_start"),
        ("initial_rate_mg_h", "range"),
        ("completed", "type"),
        ("stop_reason", "code"),
        ("relief_duration_days", "range"),
    } <= rules_by_column
    for reason in reasons:
        assert any(column in reason["message"] for column in _reason_columns(reason)), reason


def test_unreadable_cell_is_reported_as_a_type_error_once_not_also_as_missing(rows: Rows):
    row_by_id(rows, "patients", "PT-0001")["birth_year"] = "sixty"

    result = validate_rows(rows, upto="patients")["patients"]

    assert quarantine_reasons(result, record_id="PT-0001") == [
        {"column": "birth_year", "rule": "type", "message": "birth_year must be a whole number (got 'sixty')"}
    ]


def test_code_message_lists_the_allowed_codes(rows: Rows):
    row_by_id(rows, "patients", "PT-0001")["sex"] = "W"

    result = validate_rows(rows, upto="patients")["patients"]

    (reason,) = quarantine_reasons(result, record_id="PT-0001")
    assert all(code in reason["message"] for code in SEX)
    assert "'W'" in reason["message"]


def test_quarantined_row_keeps_its_lineage_and_the_raw_values_as_received(rows: Rows):
    bad = row_by_id(rows, "patients", "PT-0002")
    bad.update(weight_kg=" 20 ", birth_year="1955")

    result = validate_rows(rows, upto="patients")["patients"]

    (quarantined,) = result.quarantined.iter_rows(named=True)
    assert quarantined["site_id"] == "site_a"
    assert quarantined["export_id"] == EXPORT_ID
    assert quarantined["file_name"] == "patients.csv"
    assert quarantined["source_line"] == 3
    assert quarantined["record_id"] == "PT-0002"
    assert json.loads(quarantined["raw_values"]) == bad
    assert quarantined["reasons"][0]["message"] == "weight_kg must be at least 25 (got ' 20 ')"


def test_every_row_is_either_accepted_or_quarantined(rows: Rows):
    row_by_id(rows, "patients", "PT-0002")["sex"] = "?"
    row_by_id(rows, "infusions", "INF-0002")["completed"] = ""
    row_by_id(rows, "adverse_events", "AE-0001")["grade"] = "9"

    results = validate_rows(rows)

    for table, result in results.items():
        assert result.accepted.height + result.quarantined.height == len(rows[table]), table
        accepted_lines = set(result.accepted["source_line"].to_list())
        quarantined_lines = set(result.quarantined["source_line"].to_list())
        assert accepted_lines.isdisjoint(quarantined_lines), table


def test_unreadable_cells_in_several_exports_validated_together_are_each_quarantined():
    # Staging validates a batch of exports in one call, their frames stacked chunk by chunk; a type error in
    # several of them once crashed polars while the messages were built.
    frames = []
    for index in range(4):
        patients = canonical_rows()["patients"]
        if index in (0, 2, 3):
            patients[0]["birth_year"] = "19x0"
            patients[1]["cnp_diagnosis_date"] = "31/02/2024"
        frames.append(raw_frame("patients", patients, export_id=f"2026-0{index + 1}-01"))
    raw = pl.concat(frames, rechunk=False)

    result = validate_table(raw, TABLES_BY_NAME["patients"], load_protocol())

    assert result.quarantined.height == 6
    assert result.accepted["export_id"].to_list() == ["2026-02-01", "2026-02-01"]
    messages = {r["message"] for reasons in result.quarantined["reasons"].to_list() for r in reasons}
    assert messages == {
        "birth_year must be a whole number (got '19x0')",
        "cnp_diagnosis_date must be an ISO date YYYY-MM-DD (got '31/02/2024')",
    }


def test_each_failed_cell_is_quoted_from_its_own_row_when_many_fail_together(rows: Rows):
    # Messages are written per kind of failure for all its cells at once (schemas/validation.py): each must
    # still quote the value of its own row, for checks on one cell and for row rules over a repeated id.
    template = rows["assessments"][0]
    assessments = []
    for index in range(60):
        row = {**template, "assessment_id": f"ASM-{index:04d}"}
        if index % 3 == 0:
            row["nprs"] = str(11 + index)
        if index % 5 == 0:
            row["timepoint"] = f"week{index}"
        if index % 7 == 0:
            row["assessment_id"] = "ASM-REPEATED"
        assessments.append(row)
    rows["assessments"] = assessments

    result = validate_rows(rows, upto="assessments")["assessments"]

    for index in range(60):
        expected = set()
        if index % 3 == 0:
            expected.add(f"nprs must be at most 10 (got '{11 + index}')")
        if index % 5 == 0:
            expected.add(f"timepoint must be one of: {', '.join(TIMEPOINTS)} (got 'week{index}')")
        if index % 7 == 0:
            expected.add("assessment_id appears more than once in the file (assessment_id 'ASM-REPEATED')")
        got = {reason["message"] for reason in quarantine_reasons(result, source_line=index + 2)}
        assert got == expected, index
