"""The mapping file's pydantic models (ketreg/landing/mapping_file.py): built from the contract, and their
errors worded for a data manager — the key path as written in the file, its line, what to write instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketreg.landing.mapping import MappingError, load_mapping
from ketreg.landing.mapping_file import MOST_PROBLEMS_SHOWN, UNITS, Tables, table_part_model
from schemas.tables import TABLES_BY_NAME

SITE = "site_m"


def _problems(tmp_path: Path, text: str, site_id: str = SITE) -> list[str]:
    path = tmp_path / f"{site_id}.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MappingError) as error:
        load_mapping(path, site_id)
    message = str(error.value)
    assert message.startswith(f"sites/{site_id}.yaml: ")
    assert message.endswith("(see docs/site-mappings.md)")
    return message


def test_models_accept_exactly_the_contract_tables_and_columns() -> None:
    # The contract is the one source: a column added to schemas/tables.py is mappable, a removed one is not.
    assert {field.alias or name for name, field in Tables.model_fields.items()} == set(TABLES_BY_NAME)
    for name, contract in TABLES_BY_NAME.items():
        columns = table_part_model(name).model_fields["columns"].annotation
        assert {field.alias for field in columns.model_fields.values()} == set(contract.columns)
        assert Tables.model_fields[name].is_required() == contract.required_in_export


def test_every_problem_of_every_key_is_named_with_its_line(tmp_path: Path) -> None:
    message = _problems(tmp_path, """\
format: excel
delimter: ";"
encoding: ebcdic
file: ../book.xlsx
tables:
  patients:
    sheet: Patients
    columns:
      weight_kg: {from: Gewicht, unit: stone, round: 9}
      sex: {from: s, constant: M}
      shoe_size: Schuh
  infusions:
    - {sheet: Inf, columns: {infusion_id: {from: id, unmapped: maybe}}}
    - [1, 2]
  adverse_events: {sheet: AE}
  vitals: {}
""")
    expected = [
        "line 2: unknown key 'delimter' (known: ",
        "line 3: encoding: 'ebcdic' is not one of utf-8, latin-1, windows-1252",
        "line 4: file: '../book.xlsx' must be the name of a file in the export folder",
        "line 9: tables.patients.columns.weight_kg.unit: 'stone' is not a unit of patients.weight_kg "
        "(allowed: kg, lb)",
        "line 9: tables.patients.columns.weight_kg.round: expected a number of decimals 0 … 6 (got '9')",
        "line 10: tables.patients.columns.sex: give exactly one of from, constant, template, any_checked",
        "line 11: tables.patients.columns: 'shoe_size' is not a column of patients.csv (its columns: patient_id,",
        "line 13: tables.infusions[0].columns.infusion_id.unmapped: expected reject or keep (got 'maybe')",
        "line 14: tables.infusions[1]: expected keys columns, file, ignore, not_recorded, rows, sheet",
        "line 5: tables: assessments is missing; every export needs it",
        "line 16: tables: 'vitals' is not a contract table (tables: patients, infusions, assessments,",
    ]
    for problem in expected:
        assert problem in message
    assert "more (see" not in message  # eleven problems, all shown


def test_a_file_of_many_wrong_keys_gives_a_readable_message(tmp_path: Path) -> None:
    junk = "".join(f"junk_{'x' * 200}_{i}: 1\n" for i in range(3000))  # 640 kB, under the size limit
    message = _problems(tmp_path, f"format: delimited\n{junk}tables: {{}}\n")
    # The first problems with their lines (each key cut to a readable length), then how many more there are.
    assert "line 2: unknown key 'junk_xxx" in message
    assert f"and {3000 + 4 - MOST_PROBLEMS_SHOWN:,} more (see docs/site-mappings.md)" in message  # + 4 tables missing
    assert len(message) < 3000


def test_rules_across_keys_name_the_key_they_are_about(tmp_path: Path) -> None:
    message = _problems(tmp_path, """\
site: site_x
tables:
  patients:
    rows: {event: baseline, skip_if_empty: [shoe_size]}
    columns: {patient_id: pid}
    not_recorded: [birth_year]
  infusions: {file: i.csv, columns: {infusion_id: id}, not_recorded: [total_dose_mg]}
  assessments: {file: a.csv, rows: {skip_if_empty: true}, columns: {assessment_id: id, patient_id: pid}}
  adverse_events: {file: ae.csv}
""")
    for problem in [
        f"line 1: site: 'site_x' does not match the file name's site id '{SITE}'",
        "line 3: tables.patients: name the file that holds patients (file: …)",
        "line 4: tables.patients.rows: event and instrument select REDCap rows; this mapping's format is delimited",
        "line 4: tables.patients.rows.skip_if_empty: 'shoe_size' is not a column of patients.csv",
        "line 6: tables.patients.not_recorded: birth_year is required by the contract",
        "line 8: tables.assessments.rows.skip_if_empty: no mapped column besides the ids to test",
    ]:
        assert problem in message
    assert "tables.infusions" not in message  # total_dose_mg is optional: the site may say it does not record it


def test_a_valid_file_gives_the_checked_mapping(tmp_path: Path) -> None:
    path = tmp_path / f"{SITE}.yaml"
    path.write_text("""\
format: delimited
encoding: Latin-1
delimiter: ";"
tables:
  patients:
    file: p.csv
    columns:
      patient_id: PID
      sex: {from: Geschlecht, values: {M: M, W: F, N: null}, unmapped: keep}
      weight_kg: {from: Gewicht, unit: lb, round: 1}
      metastatic: {from: meta, values: {yes: "true", no: "false"}}
  infusions: {file: i.csv, columns: {infusion_id: ID}, not_recorded: total_dose_mg}
  assessments: [{file: a1.csv, rows: {skip_if_empty: [nprs]}}, {file: a2.csv}]
  adverse_events: {file: ae.csv}
""", encoding="utf-8")
    mapping = load_mapping(path, SITE)
    assert (mapping.format, mapping.encoding, mapping.delimiter) == ("delimited", "latin-1", ";")
    patients = mapping.tables["patients"][0]
    assert patients.where == "tables.patients" and patients.file == "p.csv"
    assert patients.columns["patient_id"].source == "PID"
    sex = patients.columns["sex"]
    assert sex.values == {"M": "M", "W": "F", "N": None} and sex.keep_unmapped
    # PyYAML reads yes/no unquoted as booleans: the keys come back as text.
    assert patients.columns["metastatic"].values == {"true": "true", "false": "false"}
    assert (patients.columns["weight_kg"].unit, patients.columns["weight_kg"].round) == ("lb", 1)
    assert mapping.tables["infusions"][0].not_recorded == ("total_dose_mg",)
    assessments = mapping.tables["assessments"]
    assert [part.where for part in assessments] == ["tables.assessments[0]", "tables.assessments[1]"]
    assert assessments[0].skip_if_empty == ("nprs",) and assessments[1].skip_if_empty == ()
    assert "dispositions" not in mapping.tables
    assert mapping.source_files() == ["a1.csv", "a2.csv", "ae.csv", "i.csv", "p.csv"]


@pytest.mark.parametrize("column", sorted(UNITS))
def test_each_column_takes_only_its_own_units(tmp_path: Path, column: str) -> None:
    table = next(name for name, contract in TABLES_BY_NAME.items() if column in contract.columns)
    model = table_part_model(table)
    for unit in UNITS[column]:
        model.model_validate({"file": "x.csv", "columns": {column: {"from": "x", "unit": unit}}})
    foreign = next(u for units in UNITS.values() for u in units if u not in UNITS[column])
    with pytest.raises(ValueError, match=f"'{foreign}' is not a unit of {table}.{column}"):
        model.model_validate({"file": "x.csv", "columns": {column: {"from": "x", "unit": foreign}}})
