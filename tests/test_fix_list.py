"""The data manager's list: `ketreg check-export --all` lists every quarantined row, root causes first with
the rows they took along grouped beneath; JSON `rejection` and `notices` are lists of objects; the dashboard's
reasons put cascades after their causes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import Rows
from test_mapping import SITE, write_site

from ketreg.staging.fix_list import fix_list
from ketreg_app.cli import main


def _check(folder: Path, sites: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["check-export", str(folder), "--site", SITE, "--sites-dir", str(sites), *extra])
    return code, capsys.readouterr().out


@pytest.fixture
def cascading(tmp_path: Path, rows: Rows) -> tuple[Path, Path]:
    """PT-0002's birth year is unreadable (a root cause on line 3 of patients.csv): its infusion INF-0003, that
    infusion's pre assessment and adverse event, and its disposition follow it into the quarantine. Separately,
    ASM-0003's NPRS is 11 (a root cause of its own, in a later file)."""
    rows["patients"][1]["birth_year"] = "nineteen fifty-five"
    rows["assessments"][2]["nprs"] = "11"
    return write_site(tmp_path, rows, None)


def test_all_lists_root_causes_first_with_their_cascade_indented_beneath(
    cascading: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _check(*cascading, capsys, "--all")
    assert code == 1
    listing = out.split("Every quarantined row, root causes first")[1].split("\n\n")[0].splitlines()[1:]
    assert [line.split(":")[0] for line in listing] == [
        "  patients.csv line 3 PT-0002",
        "    infusions.csv line 4 INF-0003",
        "      assessments.csv line 5 ASM-0004",
        "      adverse_events.csv line 3 AE-0002",
        "    dispositions.csv line 3",
        "  assessments.csv line 4 ASM-0003",
    ]
    assert "infusion_id 'INF-0003' was quarantined in infusions.csv" in listing[2]


def test_without_all_the_cascade_reason_comes_after_the_fault_that_caused_it(
    cascading: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    report = json.loads(_check(*cascading, capsys, "--format", "json")[1])
    assessments = next(f for f in report["files"] if f["table"] == "assessments")
    # One row each: by count alone a cascade could come first; the fault always does.
    assert [r["rule"] for r in assessments["reasons"]] == ["range", "parent_quarantined", "parent_quarantined"]
    assert "quarantined_rows" not in report


def test_all_as_json_nests_the_rows_each_fault_caused(
    cascading: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    report = json.loads(_check(*cascading, capsys, "--all", "--format", "json")[1])
    roots = report["quarantined_rows"]
    assert [(r["file_name"], r["source_line"]) for r in roots] == [("patients.csv", 3), ("assessments.csv", 4)]
    patient = roots[0]
    assert patient["reasons"][0]["column"] == "birth_year"
    assert [(c["file_name"], c["record_id"]) for c in patient["caused"]] == [
        ("infusions.csv", "INF-0003"), ("dispositions.csv", None)
    ]
    assert [c["record_id"] for c in patient["caused"][0]["caused"]] == ["ASM-0004", "AE-0002"]
    # Every quarantined row appears exactly once.
    def count(items: list[dict]) -> int:
        return sum(1 + count(item["caused"]) for item in items)
    assert count(roots) == sum(f["rows_quarantined"] for f in report["files"]) == 6


def test_rejection_and_notices_are_lists_of_objects(tmp_path: Path, rows: Rows,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    for row in rows["patients"]:
        del row["birth_year"]
        row["ward"] = "B"
    del rows["adverse_events"]
    folder, sites = write_site(tmp_path, rows, None)
    report = json.loads(_check(folder, sites, capsys, "--format", "json")[1])
    assert report["status"] == "unusable"
    assert {"where": f"{SITE}/2026-11-01", "file": None,
            "message": "adverse_events.csv is missing; every export needs it (docs/site-export-contract.md)"} \
        in report["rejection"]
    assert any(p["file"] == "patients.csv" and "'birth_year' is missing" in p["message"] for p in report["rejection"])
    assert any(n["file"] == "patients.csv" and "ward" in n["message"] for n in report["notices"])

    clean_folder, clean_sites = write_site(tmp_path / "clean", canonical_rows_without_notices(), None)
    clean = json.loads(_check(clean_folder, clean_sites, capsys, "--format", "json")[1])
    assert clean["rejection"] == [] and clean["notices"] == []


def canonical_rows_without_notices() -> Rows:
    from support import canonical_rows

    return canonical_rows()


def test_a_cascaded_row_whose_parent_is_elsewhere_stays_listed_after_the_root_causes() -> None:
    rows = [
        {"file_name": "infusions.csv", "source_line": 2, "record_id": "INF-9",
         "reasons": [{"rule": "parent_quarantined", "column": "patient_id",
                      "message": "patient_id 'PT-9' was quarantined in patients.csv"}]},
        {"file_name": "assessments.csv", "source_line": 7, "record_id": "ASM-1",
         "reasons": [{"rule": "range", "column": "nprs", "message": "nprs must be 0 to 10 (got '11')"}]},
    ]
    assert [(item.file_name, item.is_root_cause) for item in fix_list(rows)] == [
        ("assessments.csv", True), ("infusions.csv", False)
    ]


def test_the_dashboards_reasons_list_a_files_faults_before_the_cascades_they_caused() -> None:
    import duckdb

    from ketreg.warehouse.connection import sql_text

    con = duckdb.connect(":memory:")
    con.execute("CREATE SCHEMA registry")
    # The analysts' counts-only quarantine: per file, rule and column, the lines.
    con.execute("""CREATE TABLE registry.quarantine (site_id VARCHAR, export_id VARCHAR, file_name VARCHAR,
                   rule VARCHAR, column_name VARCHAR, quarantined_rows BIGINT, source_lines BIGINT[])""")
    con.execute("""INSERT INTO registry.quarantine VALUES
        ('s', 'e', 'infusions.csv', 'parent_quarantined', 'patient_id', 2, [2, 3]),
        ('s', 'e', 'assessments.csv', 'parent_quarantined', 'patient_id', 1, [2]),
        ('s', 'e', 'patients.csv', 'code', 'sex', 1, [3])""")
    ordered = con.execute(sql_text("quality/quarantine_reasons.sql")).fetchall()
    assert [(file_name, rule) for _, _, file_name, rule, _ in ordered] == [
        ("patients.csv", "code"), ("infusions.csv", "parent_quarantined"), ("assessments.csv", "parent_quarantined"),
    ]


def test_the_sites_fix_list_from_the_working_store_puts_the_patient_before_what_followed_it(
    scenario_registry,
) -> None:
    import duckdb

    from ketreg.staging.fix_list import flatten, staged_fix_list

    con = duckdb.connect(str(scenario_registry.work_db), read_only=True)
    try:
        items = staged_fix_list(con, "faulty")
        assert staged_fix_list(con, "steady") == []
    finally:
        con.close()
    (patient,) = items  # one root cause: PT-0002's unreadable birth year
    assert (patient.file_name, patient.record_id, patient.reasons[0]["column"]) == ("patients.csv", "PT-0002",
                                                                                    "birth_year")
    lines = [(depth, item.file_name, item.record_id) for depth, item in flatten(items)]
    assert lines[1] == (1, "infusions.csv", "INF-0003")
    assert {line[1] for line in lines[1:]} == {"infusions.csv", "assessments.csv", "adverse_events.csv",
                                               "dispositions.csv"}
    assert all(depth >= 1 for depth, _, _ in lines[1:])


def test_the_run_summary_names_root_cause_reasons_before_cascades(scenario_registry) -> None:
    from ketreg_app.summary import run_summary

    line = next(x for x in run_summary(scenario_registry.analyst_db).splitlines()
                if "most frequent quarantine reasons" in x)
    reasons = line.split(": ", 1)[1].split(", ")
    cascades = [i for i, reason in enumerate(reasons) if "parent_quarantined" in reason]
    assert cascades and reasons[0].split()[1] != "parent_quarantined"
    assert cascades == list(range(cascades[0], len(reasons)))  # every cascade after every root cause


def test_the_sites_own_folder_lists_the_patient_before_the_rows_that_followed_it(scenario_registry) -> None:
    import csv

    quarantine = scenario_registry.analyst_db.parent / "reports" / "sites" / "faulty" / "quarantine.csv"
    with quarantine.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert (rows[0]["file_name"], rows[0]["record_id"], rows[0]["column"]) == ("patients.csv", "PT-0002",
                                                                               "birth_year")
    assert rows[0]["rule"] != "parent_quarantined"
    assert {row["rule"] for row in rows[1:]} == {"parent_quarantined"}
    assert rows[1]["file_name"] == "infusions.csv"  # the infusion, then what hangs on it
