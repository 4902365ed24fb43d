"""`ketreg check-export` refuses an export that carries identifier-like columns (names, MRNs, dates of birth):
a site script that sends on exit 0 must never send them. The same rule as the pipeline's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import Rows
from test_mapping import SITE, canonical_mapping, write_site

from ketreg_app.cli import main


def _check(folder: Path, sites: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["check-export", str(folder), "--site", SITE, "--sites-dir", str(sites), *extra])
    return code, capsys.readouterr().out


def test_identifier_columns_in_an_otherwise_clean_export_exit_1_and_say_remove_them(
    tmp_path: Path, rows: Rows, capsys: pytest.CaptureFixture[str]
) -> None:
    for index, row in enumerate(rows["patients"]):
        row["patient_name"], row["MRN"] = f"Test Patient {index}", f"MRN-{index:05d}"
    rows["assessments"][0]["date_of_birth"] = "1960-01-01"
    folder, sites = write_site(tmp_path, rows, None)

    code, out = _check(folder, sites, capsys)
    assert code == 1
    assert "REMOVE THESE COLUMNS BEFORE SENDING" in out
    assert "  - patients.csv: patient_name, MRN" in out
    assert "  - assessments.csv: date_of_birth" in out
    assert out.rstrip().endswith("DO NOT SEND: remove these columns before sending (listed above), then check again.")
    assert "CLEAN" not in out
    # The values themselves are never echoed.
    assert "Test Patient" not in out and "MRN-0000" not in out

    report = json.loads(_check(folder, sites, capsys, "--format", "json")[1])
    assert report["exit_code"] == 1 and report["status"] == "identifier_columns_present"
    assert report["identifier_columns"] == [
        {"file": "assessments.csv", "columns": ["date_of_birth"]},
        {"file": "patients.csv", "columns": ["patient_name", "MRN"]},
    ]
    # Every row is still valid: the refusal comes from the columns alone.
    assert all(f["rows_quarantined"] == 0 for f in report["files"])


def test_identifier_columns_of_a_mapped_site_are_refused_too(
    tmp_path: Path, rows: Rows, capsys: pytest.CaptureFixture[str]
) -> None:
    for row in rows["patients"]:
        row["surname"] = "Muster"
    mapping = canonical_mapping(patients={"weight_kg": "weight_kg"})
    mapping["tables"]["patients"]["ignore"] = ["surname"]  # ignoring a column does not launder an identifier
    folder, sites = write_site(tmp_path, rows, mapping)
    code, out = _check(folder, sites, capsys)
    assert code == 1
    assert "  - patients.csv: surname" in out.split("REMOVE THESE COLUMNS BEFORE SENDING")[1]
