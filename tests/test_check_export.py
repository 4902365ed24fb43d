"""`ketreg check-export`: the pre-flight a site runs before sending. Exit codes, and what the report says
for a clean export, one with rows that would be quarantined, and an unusable one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support import Rows
from test_mapping import SITE, canonical_mapping, write_site

from ketreg_app.cli import main


def _check(folder: Path, sites: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["check-export", str(folder), "--site", SITE, "--sites-dir", str(sites), *extra])
    return code, capsys.readouterr().out


def test_clean_export_exits_0_and_counts_every_file(tmp_path: Path, rows: Rows, capsys) -> None:
    folder, sites = write_site(tmp_path, rows, None)
    code, out = _check(folder, sites, capsys)
    assert code == 0
    assert "Read as the canonical contract (no mapping file)" in out
    assert re.search(r"^infusions\.csv +infusions\.csv +3 +3 +0$", out, re.MULTILINE)
    assert out.rstrip().endswith("CLEAN: every row would be accepted.")


def test_clean_export_as_json(tmp_path: Path, rows: Rows, capsys) -> None:
    folder, sites = write_site(tmp_path, rows, None)
    code, out = _check(folder, sites, capsys, "--format", "json")
    report = json.loads(out)
    assert code == 0 and report["status"] == "clean" and report["exit_code"] == 0
    assert {f["file_name"]: (f["rows_read"], f["rows_quarantined"]) for f in report["files"]} == {
        "patients.csv": (2, 0), "infusions.csv": (3, 0), "assessments.csv": (4, 0), "adverse_events.csv": (2, 0),
        "dispositions.csv": (2, 0),
    }


def test_export_with_bad_rows_exits_1_and_names_reasons_and_lines(tmp_path: Path, rows: Rows, capsys) -> None:
    rows["patients"][1]["sex"] = "W"  # line 3 of patients.csv
    rows["infusions"][1]["max_rate_mg_h"] = "400"  # line 3 of infusions.csv
    folder, sites = write_site(tmp_path, rows, None)
    code, out = _check(folder, sites, capsys)
    assert code == 1
    assert "patients.csv (from patients.csv): 1 row(s) would be quarantined" in out
    assert "  code on sex: 1 row(s)\n    line 3 PT-0002: sex must be one of: F, M, X, U (got 'W')" in out
    assert "rate_within_plausibility_limit on max_rate_mg_h: 1 row(s)\n    line 3 INF-0002:" in out
    # PT-0002's infusion follows its patient into the quarantine, and the report says why.
    assert ("parent_quarantined on patient_id: 1 row(s)\n"
            "    line 4 INF-0003: patient_id 'PT-0002' was quarantined") in out
    report = json.loads(_check(folder, sites, capsys, "--format", "json")[1])
    assert report["status"] == "rows_would_be_quarantined"
    patients = next(f for f in report["files"] if f["table"] == "patients")
    assert patients["reasons"] == [{
        "rule": "code", "column": "sex", "rows": 1,
        "examples": [{"source_line": 3, "record_id": "PT-0002", "message": "sex must be one of: F, M, X, U (got 'W')"}],
    }]


def test_mapped_export_with_a_weightless_per_kg_rate_reports_the_conversion(tmp_path: Path, rows: Rows,
                                                                           capsys) -> None:
    rows["infusions"][2]["initial_rate_mg_h"], rows["infusions"][2]["max_rate_mg_h"] = "0.1", "0.2"
    mapping = canonical_mapping(infusions={
        "initial_rate_mg_h": {"from": "initial_rate_mg_h", "unit": "mg/kg/h"},
        "max_rate_mg_h": {"from": "max_rate_mg_h", "unit": "mg/kg/h"},
    })
    for infusion in rows["infusions"][:2]:
        infusion["initial_rate_mg_h"], infusion["max_rate_mg_h"] = "0.1", "0.3"
    folder, sites = write_site(tmp_path, rows, mapping)
    code, out = _check(folder, sites, capsys)
    assert code == 1
    assert "Read with sites/site_m.yaml" in out
    assert ("unit_conversion on initial_rate_mg_h: 1 row(s)\n    line 4 INF-0003: initial_rate_mg_h was sent in "
            "mg/kg/h ('0.1') but patient 'PT-0002' has no readable weight_kg in this export") in out


def test_unusable_export_exits_2_and_lists_every_problem(tmp_path: Path, rows: Rows, capsys) -> None:
    for row in rows["patients"]:
        del row["birth_year"]
    del rows["adverse_events"]
    folder, sites = write_site(tmp_path, rows, None)
    code, out = _check(folder, sites, capsys)
    assert code == 2
    assert "UNUSABLE: the registry would reject the whole export:" in out
    assert "  - site_m/2026-11-01: adverse_events.csv is missing; every export needs it" in out
    assert "  - site_m/2026-11-01/patients.csv: required column 'birth_year' is missing from the header" in out
    assert json.loads(_check(folder, sites, capsys, "--format", "json")[1])["status"] == "unusable"


def test_unusable_mapped_export_names_the_mapping_problem(tmp_path: Path, rows: Rows, capsys) -> None:
    folder, sites = write_site(tmp_path, rows, canonical_mapping(patients={"weight_kg": "Gewicht"}))
    code, out = _check(folder, sites, capsys)
    assert code == 2
    assert ("site_m/2026-11-01/patients.csv: column 'Gewicht' named by sites/site_m.yaml "
            "(tables.patients.columns.weight_kg) is not in the file") in out


def test_check_export_touches_no_registry(tmp_path: Path, rows: Rows, capsys, monkeypatch) -> None:
    folder, sites = write_site(tmp_path, rows, None)
    monkeypatch.chdir(tmp_path)
    before = sorted(p for p in tmp_path.rglob("*"))
    assert _check(folder, sites, capsys)[0] == 0
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_a_folder_that_does_not_exist_exits_2(tmp_path: Path, capsys) -> None:
    code = main(["check-export", str(tmp_path / "nowhere"), "--site", SITE])
    assert code == 2 and "is not an export folder" in capsys.readouterr().err


def test_the_same_folder_in_the_landing_area_is_staged_as_checked(tmp_path: Path, rows: Rows, capsys) -> None:
    # check-export and staging share their functions: what the check counts is what staging counts.
    rows["assessments"][0]["nprs"] = "11"
    folder, sites = write_site(tmp_path, rows, None)
    report = json.loads(_check(folder, sites, capsys, "--format", "json")[1])
    from test_mapping import stage_folder

    staged = stage_folder(folder, sites)
    # Both share validate_tables, so comparing them alone would prove nothing: each must find exactly the one
    # row this test broke (a baseline assessment, which no other row refers to).
    expected = {table: int(table == "assessments") for table in rows}
    assert {f["table"]: f["rows_quarantined"] for f in report["files"]} == expected
    assert {name: result.quarantined.height for name, result in staged.items()} == expected


def test_protocol_deviations_are_reported_but_keep_the_export_clean(tmp_path: Path, rows: Rows, capsys) -> None:
    rows["infusions"][1]["max_rate_mg_h"] = "80"  # above the protocol's 70 mg/h, below its 150 mg/h limit
    folder, sites = write_site(tmp_path, rows, None)
    code, out = _check(folder, sites, capsys)
    assert code == 0
    assert ("Protocol deviations (valid rows, kept and recorded by the registry):\n"
            "  rate_above_protocol_maximum: 1 infusion(s)\n"
            "    line 3: max_rate_mg_h 80 (protocol limit 70)") in out
    report = json.loads(_check(folder, sites, capsys, "--format", "json")[1])
    assert report["deviations"] == [{
        "deviation": "rate_above_protocol_maximum", "infusions": 1,
        "examples": [{"source_line": 3, "measure": "max_rate_mg_h", "observed": 80.0, "protocol_limit": 70.0}],
    }]
