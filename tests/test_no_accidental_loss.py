"""The published registry is never lost by accident: an empty or missing landing folder is a usage error,
a site that vanishes (or all data) stops publishing unless the site is retired on purpose, and a sudden drop
in a site's rows blocks. Real `ketreg run`, real Dagster sensor, real DuckDB files."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from support import canonical_rows, query_db, write_export

from ketreg_app.cli import main as ketreg_main
from pipelines.resources import RegistrySettings
from pipelines.sensors import landing_sensor


def _second_site_rows() -> dict[str, list[dict[str, str]]]:
    rows = canonical_rows()
    for table_rows in rows.values():
        for row in table_rows:
            for column in ("patient_id", "infusion_id", "assessment_id", "ae_id"):
                if row.get(column):
                    row[column] = f"{row[column]}-B"
    return rows


def _run(landing: Path, db: Path, *extra: str) -> int:
    return ketreg_main(["run", "--landing", str(landing), "--db", str(db), *extra])


def _sites(db: Path) -> list[str]:
    return [site for (site,) in query_db(db, "SELECT DISTINCT site_id FROM exports WHERE is_current ORDER BY 1")]


def test_an_empty_or_missing_landing_folder_exits_2_and_keeps_the_published_file(
    tmp_path: Path, pseudonym_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "out" / "registry.duckdb"
    db.parent.mkdir()
    db.write_bytes(b"stands for the registry published before")
    empty = tmp_path / "landing"
    empty.mkdir()
    (empty / ".DS_Store").write_bytes(b"")  # hidden entries are not exports

    assert _run(empty, db) == 2
    err = capsys.readouterr().err
    assert "is empty" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert _run(tmp_path / "unmounted", db) == 2
    assert db.read_bytes() == b"stands for the registry published before"


def test_the_sensor_skips_an_empty_landing_folder_and_a_tombstone_requests_a_run(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    resources = {"settings": RegistrySettings(landing_dir=str(landing), analyst_db=str(tmp_path / "r.duckdb"),
                                              landing_settle_seconds=0)}
    empty = landing_sensor(dg.build_sensor_context(resources=resources))
    assert not empty.run_requests and "empty" in empty.skip_reason.skip_message

    write_export(landing, "site_a")
    first = landing_sensor(dg.build_sensor_context(resources=resources))
    assert len(first.run_requests) == 1
    (landing / "site_a" / "RETIRED").write_text("closed the ketamine service\n", encoding="utf-8")
    retired = landing_sensor(dg.build_sensor_context(cursor=first.cursor, resources=resources))
    assert len(retired.run_requests) == 1
    assert retired.run_requests[0].tags["ketreg/changed_exports"] == "site_a/RETIRED"


@pytest.mark.slow
def test_a_vanished_site_is_refused_then_retired_on_purpose(
    tmp_path: Path, pseudonym_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    landing, db = tmp_path / "landing", tmp_path / "out" / "registry.duckdb"
    write_export(landing, "site_a")
    write_export(landing, "site_b", rows=_second_site_rows())
    assert _run(landing, db) == 0
    assert _sites(db) == ["site_a", "site_b"]
    published = db.stat().st_mtime_ns
    capsys.readouterr()

    # site_b's folder deleted by mistake: the run refuses, names the site and the way to retire it.
    shutil.rmtree(landing / "site_b")
    assert _run(landing, db) == 1
    err = capsys.readouterr().err
    assert "no_site_vanished" in err and "site_b" in err and "--retire-site" in err
    assert db.stat().st_mtime_ns == published
    assert _sites(db) == ["site_a", "site_b"]

    # Retired for this run on the command line: published without it.
    assert _run(landing, db, "--retire-site", "site_b") == 0
    assert _sites(db) == ["site_a"]
    assert query_db(db, "SELECT count(*) FROM patients") == [(2,)]


@pytest.mark.slow
def test_a_tombstone_retires_a_site_whose_exports_are_still_in_the_landing_folder(
    tmp_path: Path, pseudonym_key: str
) -> None:
    landing, db = tmp_path / "landing", tmp_path / "out" / "registry.duckdb"
    write_export(landing, "site_a")
    write_export(landing, "site_b", rows=_second_site_rows())
    assert _run(landing, db) == 0
    (landing / "site_b" / "RETIRED").write_text("withdrew from the registry 2026-11-30\n", encoding="utf-8")
    assert _run(landing, db) == 0
    assert _sites(db) == ["site_a"]
    assert query_db(db, "SELECT count(*) FROM patients WHERE site_id = 'site_b'") == [(0,)]


@pytest.mark.slow
def test_a_landing_folder_holding_only_a_stray_file_cannot_empty_the_registry(
    tmp_path: Path, pseudonym_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    landing, db = tmp_path / "landing", tmp_path / "out" / "registry.duckdb"
    write_export(landing, "site_a")
    assert _run(landing, db) == 0
    published = db.stat().st_mtime_ns
    shutil.rmtree(landing / "site_a")
    (landing / "notes.txt").write_text("moved the exports to the new share", encoding="utf-8")  # not empty
    capsys.readouterr()

    assert _run(landing, db) == 1
    assert "site_a" in capsys.readouterr().err
    assert db.stat().st_mtime_ns == published
    assert query_db(db, "SELECT count(*) FROM patients") == [(2,)]


@pytest.mark.slow
def test_a_sudden_row_drop_blocks_publishing_and_names_the_site(
    tmp_path: Path, pseudonym_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    landing, db = tmp_path / "landing", tmp_path / "out" / "registry.duckdb"
    write_export(landing, "site_a", export_id="2026-10-01")
    assert _run(landing, db) == 0
    published = db.stat().st_mtime_ns
    rows = canonical_rows()
    rows["assessments"] = rows["assessments"][:1]  # three of four assessments lost (75 % > 20 %)
    write_export(landing, "site_a", export_id="2026-11-01", rows=rows)
    capsys.readouterr()

    assert _run(landing, db) == 1
    err = capsys.readouterr().err
    assert "no_sudden_row_drop" in err and "site_a" in err
    assert db.stat().st_mtime_ns == published
    assert query_db(db, "SELECT DISTINCT export_id FROM patients") == [("2026-10-01",)]


def test_the_row_drop_and_vanished_site_checks_are_blocking() -> None:
    from pipelines.checks import CHECKS

    blocking = {check.name: check.blocking for check in CHECKS}
    assert blocking["no_sudden_row_drop"] and blocking["no_site_vanished"]

