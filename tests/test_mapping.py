"""Site mappings: unit conversions, date formats, time zones, missing-data codes and value maps with
hand-computed expectations, and the errors a broken mapping or an unmapped value gives.

The helpers at the top (write a site, read it as staging does) are shared with the other mapping tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from support import EXPORT_ID, Rows, write_export

from ketreg.landing.apply_mapping import read_mapped_export
from ketreg.landing.discovery import scan_export, scan_landing
from ketreg.landing.exports import read_export
from ketreg.landing.mapping import ColumnSpec, SiteMapping
from ketreg.landing.reader import UnreadableFile
from ketreg.staging.stage import validate_tables
from schemas.protocol import load_protocol
from schemas.tables import TABLES_BY_NAME
from schemas.validation import TableValidation

SITE = "site_m"


def canonical_mapping(**columns: dict[str, Any]) -> dict[str, Any]:
    """A mapping for canonical files (`<table>.csv`), with per-table column entries, e.g.
    `infusions={"initial_rate_mg_h": {"from": "initial_rate_mg_h", "unit": "mg/kg/h"}}`."""
    tables = {t: {"file": f"{t}.csv"} for t in ("patients", "infusions", "assessments", "adverse_events",
                                                  "dispositions")}
    for table, spec in columns.items():
        tables[table]["columns"] = spec
    return {"format": "canonical", "tables": tables}


def write_site(tmp_path: Path, rows: Rows, mapping: dict[str, Any] | str | None) -> tuple[Path, Path]:
    """Write the export folder and (unless None) `sites/site_m.yaml`; return (export folder, sites dir)."""
    folder = write_export(tmp_path / "landing", SITE, EXPORT_ID, rows)
    sites = tmp_path / "sites"
    sites.mkdir(exist_ok=True)
    if mapping is not None:
        text = mapping if isinstance(mapping, str) else yaml.safe_dump(mapping, allow_unicode=True, sort_keys=False)
        (sites / f"{SITE}.yaml").write_text(text, encoding="utf-8")
    return folder, sites


def stage_folder(folder: Path, sites: Path, site: str = SITE) -> dict[str, TableValidation]:
    """Read and validate one export folder exactly as staging does; raises if the export is unusable."""
    export = scan_export(site, folder, sites)
    assert export.rejection is None, export.rejection
    read = read_export(export)
    raw = {name: [frame] for name, frame in read.frames.items()}
    extra = {name: [failures] for name, failures in read.failures.items()}
    return {table.name: result for table, _, result in validate_tables(raw, extra, load_protocol(None))}


def accepted_value(results: dict[str, TableValidation], table: str, record_id: str, column: str) -> Any:
    contract_id = {"patients": "patient_id", "infusions": "infusion_id", "assessments": "assessment_id",
                   "adverse_events": "ae_id"}[table]
    frame = results[table].accepted.filter(results[table].accepted[contract_id] == record_id)
    assert frame.height == 1, f"{table} {record_id} is not accepted: {results[table].quarantined.to_dicts()}"
    return frame[column][0]


def reasons_of(results: dict[str, TableValidation], table: str, record_id: str) -> list[dict[str, str]]:
    quarantined = results[table].quarantined.filter(results[table].quarantined["record_id"] == record_id)
    assert quarantined.height == 1, f"{table} {record_id} is not quarantined"
    return quarantined["reasons"][0].to_list()


# --- unit conversions -------------------------------------------------------------------------------------


def test_rate_in_mg_per_kg_per_hour_is_multiplied_by_the_patients_weight(tmp_path: Path, rows: Rows) -> None:
    # PT-0001 weighs 70 kg: 0.15 mg/kg/h × 70 kg = 10.5 mg/h, 0.35 mg/kg/h × 70 kg = 24.5 mg/h.
    infusion = rows["infusions"][0]
    infusion["initial_rate_mg_h"], infusion["max_rate_mg_h"] = "0.15", "0.35"
    rows["infusions"] = [infusion]
    rows["assessments"] = [r for r in rows["assessments"] if r["infusion_id"] in ("", "INF-0001")]
    rows["adverse_events"] = rows["adverse_events"][:1]
    per_kg = {"unit": "mg/kg/h", "round": 1}
    mapping = canonical_mapping(infusions={
        "initial_rate_mg_h": {"from": "initial_rate_mg_h", **per_kg},
        "max_rate_mg_h": {"from": "max_rate_mg_h", **per_kg},
    })
    results = stage_folder(*write_site(tmp_path, rows, mapping))
    assert accepted_value(results, "infusions", "INF-0001", "initial_rate_mg_h") == 10.5
    assert accepted_value(results, "infusions", "INF-0001", "max_rate_mg_h") == 24.5


def test_rate_in_micrograms_per_kg_per_minute_becomes_mg_per_hour(tmp_path: Path, rows: Rows) -> None:
    # 2.5 µg/kg/min × 70 kg × 60 min/h ÷ 1000 µg/mg = 10.5 mg/h; 7.5 µg/kg/min → 31.5 mg/h.
    rows["infusions"][0]["initial_rate_mg_h"], rows["infusions"][0]["max_rate_mg_h"] = "2.5", "5"
    rows["infusions"][1]["initial_rate_mg_h"], rows["infusions"][1]["max_rate_mg_h"] = "2.5", "7.5"
    rows["infusions"], rows["assessments"] = rows["infusions"][:2], rows["assessments"][:3]
    rows["adverse_events"] = rows["adverse_events"][:1]
    unit = {"unit": "ug/kg/min", "round": 1}
    mapping = canonical_mapping(infusions={
        "initial_rate_mg_h": {"from": "initial_rate_mg_h", **unit},
        "max_rate_mg_h": {"from": "max_rate_mg_h", **unit},
    })
    results = stage_folder(*write_site(tmp_path, rows, mapping))
    assert accepted_value(results, "infusions", "INF-0002", "initial_rate_mg_h") == 10.5
    assert accepted_value(results, "infusions", "INF-0002", "max_rate_mg_h") == 31.5
    assert accepted_value(results, "infusions", "INF-0001", "max_rate_mg_h") == 21.0


def test_rate_per_kg_for_a_patient_without_weight_is_quarantined_with_a_clear_reason(
    tmp_path: Path, rows: Rows
) -> None:
    # PT-0002 has no weight: its rate cannot be converted, and is not guessed.
    per_kg = {"unit": "mg/kg/h", "round": 1}
    for infusion in rows["infusions"]:
        infusion["initial_rate_mg_h"], infusion["max_rate_mg_h"] = "0.1", "0.3"
    mapping = canonical_mapping(infusions={
        "initial_rate_mg_h": {"from": "initial_rate_mg_h", **per_kg},
        "max_rate_mg_h": {"from": "max_rate_mg_h", **per_kg},
    })
    results = stage_folder(*write_site(tmp_path, rows, mapping))
    assert accepted_value(results, "infusions", "INF-0001", "initial_rate_mg_h") == 7.0
    reasons = reasons_of(results, "infusions", "INF-0003")
    assert {(r["column"], r["rule"]) for r in reasons} == {
        ("initial_rate_mg_h", "unit_conversion"), ("max_rate_mg_h", "unit_conversion"),
    }
    assert all("patient 'PT-0002' has no readable weight_kg" in r["message"] for r in reasons)
    assert "'0.1'" in reasons[0]["message"] and "mg/kg/h" in reasons[0]["message"]
    # The infusion's assessment and adverse event follow it into the quarantine.
    assert reasons_of(results, "assessments", "ASM-0004")[0]["rule"] == "parent_quarantined"
    assert reasons_of(results, "adverse_events", "AE-0002")[0]["rule"] == "parent_quarantined"


def test_weight_in_pounds_becomes_kilograms(tmp_path: Path, rows: Rows) -> None:
    # 154.3 lb × 0.45359237 kg/lb = 69.989… kg → 70.0 with one decimal; 220.5 lb → 100.017… → 100.0.
    rows["patients"][0]["weight_kg"], rows["patients"][1]["weight_kg"] = "154.3", "220.5"
    mapping = canonical_mapping(patients={"weight_kg": {"from": "weight_kg", "unit": "lb", "round": 1}})
    results = stage_folder(*write_site(tmp_path, rows, mapping))
    assert accepted_value(results, "patients", "PT-0001", "weight_kg") == 70.0
    assert accepted_value(results, "patients", "PT-0002", "weight_kg") == 100.0


@pytest.mark.parametrize(("vas_mm", "nprs"), [("0", 0), ("4", 0), ("5", 1), ("44", 4), ("45", 5), ("96", 10),
                                               ("100", 10)])
def test_vas_in_mm_becomes_nprs_with_halves_rounded_up(tmp_path: Path, rows: Rows, vas_mm: str, nprs: int) -> None:
    rows["assessments"][0]["nprs"] = vas_mm
    mapping = canonical_mapping(assessments={"nprs": {"from": "nprs", "unit": "vas_0_100"}})
    results = stage_folder(*write_site(tmp_path, rows, mapping))
    assert accepted_value(results, "assessments", "ASM-0001", "nprs") == nprs


def test_opioid_use_already_in_mme_is_taken_as_it_is(tmp_path: Path, rows: Rows) -> None:
    mapping = canonical_mapping(assessments={"daily_mme": {"from": "daily_mme", "unit": "mme"}})
    results = stage_folder(*write_site(tmp_path, rows, mapping))
    assert accepted_value(results, "assessments", "ASM-0004", "daily_mme") == 120.5


# --- dates, times, decimal commas, missing-data codes ------------------------------------------------------


@pytest.mark.parametrize(
    ("date_format", "written", "expected"),
    [
        ("%d.%m.%Y", "10.01.2024", dt.date(2024, 1, 10)),
        ("%d/%m/%Y", "10/01/2024", dt.date(2024, 1, 10)),
        ("%m/%d/%Y", "01/10/2024", dt.date(2024, 1, 10)),
        ("excel_serial", "45301", dt.date(2024, 1, 10)),  # 45292 is 2024-01-01 in Excel's day count
        ("%d.%m.%Y", "2024-01-10", dt.date(2024, 1, 10)),  # ISO is always read too
    ],
)
def test_dates_in_the_sites_format(tmp_path: Path, rows: Rows, date_format: str, written: str,
                                   expected: dt.date) -> None:
    rows["patients"][0]["cnp_diagnosis_date"] = written
    mapping = {**canonical_mapping(), "date_format": date_format}
    results = stage_folder(*write_site(tmp_path, rows, mapping))
    assert accepted_value(results, "patients", "PT-0001", "cnp_diagnosis_date") == expected


@pytest.mark.parametrize(
    ("datetime_format", "written", "expected"),
    [
        ("%d.%m.%Y %H:%M", "06.01.2025 09:00", dt.datetime(2025, 1, 6, 9, 0)),
        ("%m/%d/%Y %H:%M", "01/06/2025 09:00", dt.datetime(2025, 1, 6, 9, 0)),
        ("excel_serial", "45663.375", dt.datetime(2025, 1, 6, 9, 0)),  # 45658 = 2025-01-01; .375 day = 09:00
    ],
)
def test_date_times_in_the_sites_format(tmp_path: Path, rows: Rows, datetime_format: str, written: str,
                                        expected: dt.datetime) -> None:
    rows["infusions"][0]["start_time"] = written
    mapping = {**canonical_mapping(), "datetime_format": datetime_format}
    results = stage_folder(*write_site(tmp_path, rows, mapping))
    assert accepted_value(results, "infusions", "INF-0001", "start_time") == expected


def test_times_written_in_utc_become_the_sites_local_time(tmp_path: Path, rows: Rows) -> None:
    # Berlin is UTC+1 in January and UTC+2 in July (summer time).
    rows["infusions"][0]["start_time"], rows["infusions"][0]["end_time"] = "2025-01-06T08:00", "2025-01-06T12:00"
    rows["adverse_events"][0]["onset_time"] = "2025-07-01T07:30"
    mapping = {**canonical_mapping(), "timezone": "Europe/Berlin", "source_timezone": "UTC"}
    results = stage_folder(*write_site(tmp_path, rows, mapping))
    assert accepted_value(results, "infusions", "INF-0001", "start_time") == dt.datetime(2025, 1, 6, 9, 0)
    assert accepted_value(results, "infusions", "INF-0001", "end_time") == dt.datetime(2025, 1, 6, 13, 0)
    assert accepted_value(results, "adverse_events", "AE-0001", "onset_time") == dt.datetime(2025, 7, 1, 9, 30)


def test_a_date_not_in_the_sites_format_is_quarantined_naming_the_format(tmp_path: Path, rows: Rows) -> None:
    rows["infusions"][1]["start_time"] = "30.02.2025 09:00"  # no 30 February
    mapping = {**canonical_mapping(), "datetime_format": "%d.%m.%Y %H:%M"}
    results = stage_folder(*write_site(tmp_path, rows, mapping))
    [reason] = reasons_of(results, "infusions", "INF-0002")
    assert reason["rule"] == "type" and reason["column"] == "start_time"
    assert reason["message"] == "start_time must be a date-time written dd.mm.yyyy HH:MM (got '30.02.2025 09:00')"
    raw = results["infusions"].quarantined.filter(pl.col("record_id") == "INF-0002")["raw_values"][0]
    assert '"start_time":"30.02.2025 09:00"' in raw  # the quarantine keeps what the site wrote


def test_decimal_commas_are_read_as_decimal_points(tmp_path: Path, rows: Rows) -> None:
    rows["patients"][0]["weight_kg"] = "70,5"
    rows["assessments"][3]["daily_mme"] = "120,5"
    results = stage_folder(*write_site(tmp_path, rows, {**canonical_mapping(), "decimal_comma": True}))
    assert accepted_value(results, "patients", "PT-0001", "weight_kg") == 70.5
    assert accepted_value(results, "assessments", "ASM-0004", "daily_mme") == 120.5


def test_missing_data_codes_mean_not_recorded_not_invalid(tmp_path: Path, rows: Rows) -> None:
    rows["patients"][0]["weight_kg"] = "-99"  # optional: simply missing
    rows["assessments"][0]["daily_mme"] = "UNK"
    rows["patients"][1]["birth_year"] = "NASK"  # required: reported as required, not as unreadable
    mapping = {**canonical_mapping(), "missing_codes": ["UNK", "NASK", "-99"]}
    results = stage_folder(*write_site(tmp_path, rows, mapping))
    assert accepted_value(results, "patients", "PT-0001", "weight_kg") is None
    assert accepted_value(results, "assessments", "ASM-0001", "daily_mme") is None
    [reason] = reasons_of(results, "patients", "PT-0002")
    assert (reason["column"], reason["rule"]) == ("birth_year", "required")


# --- value maps, columns, and a broken mapping -------------------------------------------------------------


def test_value_maps_turn_site_codes_into_contract_codes(tmp_path: Path, rows: Rows) -> None:
    rows["patients"][0]["sex"], rows["patients"][0]["metastatic"] = "w", "J"
    rows["patients"][1]["sex"], rows["patients"][1]["metastatic"] = "m", "N"
    rows["adverse_events"][0]["term"] = "Übelkeit"
    mapping = canonical_mapping(
        patients={"sex": {"from": "sex", "values": {"w": "F", "m": "M"}},
                  "metastatic": {"from": "metastatic", "values": {"J": "true", "N": "false"}}},
        adverse_events={"term": {"from": "term", "values": {"Übelkeit": "nausea", "Schwindel": "dizziness"},
                                 "unmapped": "keep"}},
    )
    results = stage_folder(*write_site(tmp_path, rows, mapping))
    assert accepted_value(results, "patients", "PT-0001", "sex") == "F"
    assert accepted_value(results, "patients", "PT-0002", "metastatic") is False
    assert accepted_value(results, "adverse_events", "AE-0001", "term") == "nausea"
    # `unmapped: keep` passes the contract's own code through.
    assert accepted_value(results, "adverse_events", "AE-0002", "term") == "dizziness"


def test_a_value_no_map_covers_rejects_the_export_naming_site_file_column_and_line_not_the_value(
    tmp_path: Path, rows: Rows
) -> None:
    rows["patients"][0]["sex"], rows["patients"][1]["sex"] = "w", "divers"
    mapping = canonical_mapping(patients={"sex": {"from": "sex", "values": {"w": "F", "m": "M"}}})
    folder, sites = write_site(tmp_path, rows, mapping)
    with pytest.raises(UnreadableFile) as error:
        read_export(scan_export(SITE, folder, sites))
    # The registry's message never carries the site's value (free text may name a patient) …
    assert str(error.value) == (
        "site_m/2026-11-01/patients.csv: column 'sex' (→ patients.sex) has 1 value(s) the mapping does not cover, "
        "in 1 row(s) (first on lines 3) — run `ketreg check-export` at the site to see them and add them under "
        "tables.patients.columns.sex.values in sites/site_m.yaml"
    )
    # … the site's own pre-flight shows it.
    assert error.value.site_detail == (
        "patients.csv: column 'sex' values not covered by sites/site_m.yaml: 'divers' (1 row, first on line 3)"
    )


def test_a_column_neither_used_nor_ignored_is_reported_and_ignore_silences_it(tmp_path: Path, rows: Rows) -> None:
    for row in rows["patients"]:
        row["ward"], row["remark"] = "Onko 3", "call back"
    folder, sites = write_site(tmp_path, rows, canonical_mapping())
    read = read_export(scan_export(SITE, folder, sites))
    assert any("patients.csv: column(s) ward, remark are neither mapped nor ignored" in n for n in read.notices)
    mapping = canonical_mapping()
    mapping["tables"]["patients"]["ignore"] = ["ward", "rem*"]
    folder, sites = write_site(tmp_path, rows, mapping)
    assert not any("neither mapped" in n for n in read_export(scan_export(SITE, folder, sites)).notices)


def test_a_column_the_mapping_names_but_the_file_lacks_rejects_the_export(tmp_path: Path, rows: Rows) -> None:
    mapping = canonical_mapping(patients={"weight_kg": "Gewicht"})
    folder, sites = write_site(tmp_path, rows, mapping)
    with pytest.raises(UnreadableFile, match=r"site_m/2026-11-01/patients.csv: column 'Gewicht' named by "
                                             r"sites/site_m.yaml \(tables.patients.columns.weight_kg\) is not in "
                                             r"the file"):
        read_export(scan_export(SITE, folder, sites))


def test_a_broken_mapping_rejects_that_sites_exports_only(tmp_path: Path, rows: Rows) -> None:
    mapping = canonical_mapping(patients={"weight_kg": {"from": "weight_kg", "unit": "stone"}})
    mapping["delimter"] = ";"
    write_site(tmp_path, rows, mapping)
    write_export(tmp_path / "landing", "site_ok", EXPORT_ID, rows)
    exports = {e.site_id: e for e in scan_landing(tmp_path / "landing", tmp_path / "sites").exports}
    assert exports["site_ok"].rejection is None and exports["site_ok"].mapping is None
    message = exports[SITE].rejection
    assert message is not None and message.startswith("site_m/2026-11-01: the site's mapping cannot be used: "
                                                      "sites/site_m.yaml: ")
    assert "unknown key 'delimter'" in message
    assert "tables.patients.columns.weight_kg.unit: 'stone' is not a unit of patients.weight_kg" in message


def test_a_site_without_a_mapping_file_is_read_as_canonical(tmp_path: Path, rows: Rows) -> None:
    folder, sites = write_site(tmp_path, rows, None)
    export = scan_export(SITE, folder, sites)
    assert export.mapping is None and export.rejection is None
    results = stage_folder(folder, sites)
    assert sum(r.quarantined.height for r in results.values()) == 0


def test_redcap_checkbox_rows_and_missing_codes(tmp_path: Path) -> None:
    folder = tmp_path / "landing" / SITE / EXPORT_ID
    folder.mkdir(parents=True)
    (folder / "export.csv").write_text(
        "record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,birth_year,weight,"
        "demographics_complete,ae_sae___1,ae_sae___2\n"
        "P1,baseline_arm_1,,,1960,UNK,2,,\n"
        "P1,treatment_arm_1,adverse_event,1,,,,0,1\n"
        "P1,treatment_arm_1,adverse_event,2,,,,0,0\n"
        "P1,treatment_arm_1,adverse_event,3,,,,,\n",
        encoding="utf-8",
    )
    sites = tmp_path / "sites"
    sites.mkdir()
    (sites / f"{SITE}.yaml").write_text(yaml.safe_dump({
        "format": "redcap", "file": "export.csv", "missing_codes": ["UNK"], "ignore": ["*_complete"],
        "tables": {
            "patients": {"rows": {"event": "baseline_arm_1", "instrument": ""},
                         "columns": {"patient_id": "record_id", "birth_year": "birth_year", "weight_kg": "weight"}},
            "infusions": {"rows": {"instrument": "infusion"}},
            "assessments": {"rows": {"instrument": "pain_assessment"}},
            "adverse_events": {"rows": {"instrument": "adverse_event"}, "columns": {
                "patient_id": "record_id", "ae_id": {"template": "{record_id}-E{redcap_repeat_instance}"},
                "serious": {"any_checked": "ae_sae"}}},
        },
    }), encoding="utf-8")
    export = scan_export(SITE, folder, sites)
    with pytest.raises(UnreadableFile, match=r"nothing in sites/site_m\.yaml gives the required column"):
        read_export(export)  # the test's mapping is partial on purpose: required columns have no source
    mapped = read_mapped_export(folder, SITE, EXPORT_ID, _partial(export.mapping))
    patients, events = mapped.frames["patients"], mapped.frames["adverse_events"]
    assert patients.select("source_line", "patient_id", "birth_year", "weight_kg").rows() == [(2, "P1", "1960", None)]
    assert events.select("source_line", "ae_id", "serious").rows() == [
        (3, "P1-E1", "true"), (4, "P1-E2", "false"), (5, "P1-E3", None),
    ]
    assert not any("neither mapped" in n for n in mapped.notices)


def _partial(mapping: SiteMapping | None) -> SiteMapping:
    """The mapping with a constant for every required column it leaves out, so the test can read it."""
    assert mapping is not None
    tables = {}
    for name, parts in mapping.tables.items():
        contract = TABLES_BY_NAME[name]
        filled = []
        for part in parts:
            columns = dict(part.columns)
            for column in contract.required_columns:
                columns.setdefault(column, ColumnSpec(column, constant="x"))
            filled.append(replace(part, columns=columns))
        tables[name] = tuple(filled)
    return replace(mapping, tables=tables)


def test_a_changed_mapping_changes_the_exports_fingerprint_and_signature(tmp_path: Path, rows: Rows) -> None:
    from ketreg.landing.signature import export_signatures

    folder, sites = write_site(tmp_path, rows, canonical_mapping())
    before = (scan_export(SITE, folder, sites).content_sha256, export_signatures(tmp_path / "landing", 0, sites))
    (sites / f"{SITE}.yaml").write_text(
        yaml.safe_dump({**canonical_mapping(), "missing_codes": ["UNK"]}), encoding="utf-8"
    )
    after = (scan_export(SITE, folder, sites).content_sha256, export_signatures(tmp_path / "landing", 0, sites))
    assert before[0] != after[0]
    assert before[1][f"{SITE}/{EXPORT_ID}"] != after[1][f"{SITE}/{EXPORT_ID}"]


def test_a_row_with_fewer_cells_than_the_header_rejects_the_export_without_quoting_it(tmp_path: Path,
                                                                                       rows: Rows) -> None:
    folder, sites = write_site(tmp_path, rows, {**canonical_mapping(), "delimiter": ";"})
    for table in ("patients", "infusions", "assessments", "adverse_events", "dispositions"):
        path = folder / f"{table}.csv"
        path.write_text(path.read_text(encoding="utf-8").replace(",", ";"), encoding="utf-8")
    path = folder / "patients.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([*lines[:2], "PT-0009;F;1970", *lines[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(UnreadableFile) as error:
        read_export(scan_export(SITE, folder, sites))
    assert str(error.value) == ("site_m/2026-11-01/patients.csv: line 3 has 3 cell(s) but the header has 9; every "
                                "row needs one cell per column, empty cells included")
