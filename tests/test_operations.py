"""Running the registry unattended: the landing sensor and nightly schedule, blocking checks, the snapshot
analysts read while a run writes, export-to-export changes, and frozen releases. Real Dagster, real DuckDB."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from check_support import evaluate_checks
from support import canonical_rows, query_db, run_registry, write_export

from ketreg_app.cli import main as ketreg_main
from pipelines.checks import registry_checks
from pipelines.definitions import build_definitions
from pipelines.resources import RegistrySettings, registry_resources
from pipelines.schedules import nightly_rebuild
from pipelines.sensors import landing_sensor


@pytest.fixture(autouse=True)
def _key_in_environment(pseudonym_key: str) -> None:
    """The resource reads the key from the environment when a step needs it, never from config."""


def _resources(landing: Path, out: Path) -> dict[str, dg.ConfigurableResource]:
    return registry_resources(
        RegistrySettings(landing_dir=str(landing), analyst_db=str(out / "registry.duckdb"), landing_settle_seconds=0)
    )


def _second_patient_rows() -> dict[str, list[dict[str, str]]]:
    rows = canonical_rows()
    for table_rows in rows.values():
        for row in table_rows:
            for column in ("patient_id", "infusion_id", "assessment_id", "ae_id"):
                if row.get(column):
                    row[column] = f"{row[column]}-B"
    return rows


# A reader that opens the analysts' file read-only, counts patients, then waits for a line on stdin and
# counts again on the same connection; it prints one JSON line per count (or the error it met).
READER = textwrap.dedent(
    """
    import json, sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    def count():
        try:
            return {"patients": con.execute("SELECT count(*) FROM patients").fetchall()[0][0]}
        except Exception as exc:
            return {"error": repr(exc)}
    print(json.dumps(count()), flush=True)
    sys.stdin.readline()
    print(json.dumps(count()), flush=True)
    """
)


@pytest.mark.slow
def test_sensor_picks_up_a_new_export_while_an_open_reader_keeps_the_old_snapshot(tmp_path: Path) -> None:
    landing, out = tmp_path / "landing", tmp_path / "out"
    write_export(landing, "site_a")
    resources = _resources(landing, out)
    defs = build_definitions(resources)
    instance = dg.DagsterInstance.ephemeral()

    first = landing_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert len(first.run_requests) == 1
    assert first.run_requests[0].tags["ketreg/changed_exports"] == "site_a/2026-11-01"
    assert defs.resolve_job_def("registry_job").execute_in_process(instance=instance).success

    unchanged = landing_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=resources))
    assert not unchanged.run_requests and unchanged.skip_reason

    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(out / "registry.duckdb")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        before = json.loads(reader.stdout.readline())
        assert before == {"patients": 2}

        write_export(landing, "site_b", rows=_second_patient_rows())
        second = landing_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=resources))
        assert len(second.run_requests) == 1
        assert second.run_requests[0].tags["ketreg/changed_exports"] == "site_b/2026-11-01"
        assert second.run_requests[0].run_key != first.run_requests[0].run_key
        result = defs.resolve_job_def("registry_job").execute_in_process(
            instance=instance, run_config=second.run_requests[0].run_config, tags=second.run_requests[0].tags
        )
        assert result.success

        reader.stdin.write("again\n")
        reader.stdin.flush()
        during = json.loads(reader.stdout.readline())
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)
    # The open session neither failed nor saw the new rows; a new session sees them.
    assert during == {"patients": 2}
    assert query_db(out / "registry.duckdb", "SELECT count(*) FROM patients") == [(4,)]
    assert query_db(out / "registry.duckdb", "SELECT count(DISTINCT site_id) FROM patients") == [(2,)]


def test_a_changed_export_gets_a_new_run_key_and_a_removed_one_is_noticed(tmp_path: Path) -> None:
    landing, out = tmp_path / "landing", tmp_path / "out"
    folder = write_export(landing, "site_a")
    resources = _resources(landing, out)
    first = landing_sensor(dg.build_sensor_context(resources=resources))
    rows = canonical_rows()
    rows["patients"][0]["weight_kg"] = "71"
    write_export(landing, "site_a", rows=rows)
    changed = landing_sensor(dg.build_sensor_context(cursor=first.cursor, resources=resources))
    assert changed.run_requests[0].run_key != first.run_requests[0].run_key
    shutil.rmtree(folder)
    removed = landing_sensor(dg.build_sensor_context(cursor=changed.cursor, resources=resources))
    assert removed.run_requests[0].tags["ketreg/removed_exports"] == "site_a/2026-11-01"


def test_the_sensor_requests_no_run_when_nothing_changed_nor_while_a_seen_export_is_copied_again(
    tmp_path: Path,
) -> None:
    landing, out = tmp_path / "landing", tmp_path / "out"
    folder = write_export(landing, "site_a")
    write_export(landing, "site_b")
    settled = _resources(landing, out)
    first = landing_sensor(dg.build_sensor_context(resources=settled))
    assert len(first.run_requests) == 1

    again = landing_sensor(dg.build_sensor_context(cursor=first.cursor, resources=settled))
    assert not again.run_requests and again.skip_reason

    # site_a's export is being copied again (its files are newer than the settle time): not "removed", no run.
    (folder / "patients.csv").touch()
    copying = {**settled, "settings": RegistrySettings(
        landing_dir=str(landing), analyst_db=str(out / "registry.duckdb"), landing_settle_seconds=3600)}
    during = landing_sensor(dg.build_sensor_context(cursor=first.cursor, resources=copying))
    assert not during.run_requests and during.skip_reason


def test_an_export_still_being_copied_waits_for_the_next_look(tmp_path: Path) -> None:
    landing, out = tmp_path / "landing", tmp_path / "out"
    write_export(landing, "site_a")
    resources = {**_resources(landing, out)}
    resources["settings"] = RegistrySettings(
        landing_dir=str(landing), analyst_db=str(out / "registry.duckdb"), landing_settle_seconds=3600
    )
    result = landing_sensor(dg.build_sensor_context(resources=resources))
    assert not result.run_requests


def test_nightly_schedule_requests_the_registry_job() -> None:
    context = dg.build_schedule_context(scheduled_execution_time=__import__("datetime").datetime(2026, 11, 27, 2, 30))
    data = nightly_rebuild.evaluate_tick(context)
    assert len(data.run_requests) == 1
    assert nightly_rebuild.job_name == "registry_job"
    assert nightly_rebuild.cron_schedule == "30 2 * * *"


@pytest.mark.slow
def test_a_blocking_check_failure_stops_publishing_and_names_the_check(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write_export(landing, "site_a")
    run = run_registry(landing, tmp_path / "out")
    assert run.success
    published_before = run.analyst_db.stat().st_mtime_ns
    # Corrupt the working store behind the pipeline's back: a patient row staged twice.
    con = duckdb.connect(str(run.work_db))
    con.execute("INSERT INTO staging.patients SELECT * FROM staging.patients LIMIT 1")
    con.close()

    again = run_registry(landing, tmp_path / "out")

    assert not again.success
    assert any("patient_key_unique_not_null" in failure for failure in again.failures)
    assert run.analyst_db.stat().st_mtime_ns == published_before


@pytest.mark.slow
def test_export_changes_show_what_a_site_lost_and_the_drop_check_reports_it(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write_export(landing, "site_a", export_id="2026-10-01")
    rows = canonical_rows()
    rows["assessments"] = rows["assessments"][:1]  # the newer export lost three of four assessments
    rows["patients"][0]["weight_kg"] = "72"
    write_export(landing, "site_a", export_id="2026-11-01", rows=rows)
    run = run_registry(landing, tmp_path / "out")
    # One file of the current export's five shrank by more than the allowed share. Whether that stops the run
    # is the check's definition (blocking or a warning), not this test's.
    spec = next(spec for check in registry_checks for spec in check.check_specs if spec.name == "no_sudden_row_drop")
    assert run.success is not spec.blocking
    reported = [m for m in (run.failures if spec.blocking else run.warnings) if "no_sudden_row_drop" in m]
    assert any("site_a" in m for m in reported), reported
    assert run.analyst_db.exists() is not spec.blocking  # a blocking drop publishes nothing
    outcome = evaluate_checks(run.work_db)["registry/file_counts:no_sudden_row_drop"]
    assert (outcome.passed, outcome.numerator, outcome.denominator) == (False, 1, 5)
    other_failures = [m for m in run.failures if "no_sudden_row_drop" not in m]
    assert other_failures == []
    # The working store still shows the data manager what changed.
    changes = dict(
        (file_name, (added, removed, changed, columns))
        for file_name, added, removed, changed, columns in query_db(
            run.work_db,
            "SELECT file_name, rows_added, rows_removed, rows_changed, columns_changed FROM registry.export_changes",
        )
    )
    assert changes["assessments.csv"][:3] == (0, 3, 0)
    assert changes["patients.csv"][2:] == (1, ["weight_kg"])


def test_release_freezes_verifies_refuses_to_overwrite_and_catches_tampering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    landing = tmp_path / "landing"
    write_export(landing, "site_a")
    run = run_registry(landing, tmp_path / "out")
    releases = tmp_path / "releases"
    args = ["--db", str(run.analyst_db), "--releases-dir", str(releases)]

    assert ketreg_main(["release", "r1", *args]) == 0
    manifest = json.loads((releases / "r1" / "manifest.json").read_text())
    assert manifest["tables"]["patients"]["rows"] == 2
    assert {(e["site_id"], e["export_id"]) for e in manifest["exports"]} == {("site_a", "2026-11-01")}
    assert manifest["protocol"]["plausible_max_rate_mg_h"] == 150
    assert ketreg_main(["release", "r1", "--verify", *args]) == 0
    assert ketreg_main(["release", "r1", *args]) == 2
    assert "never overwritten" in capsys.readouterr().err

    frozen = releases / "r1" / "registry.duckdb"
    frozen.chmod(0o644)
    con = duckdb.connect(str(frozen))
    con.execute("UPDATE patients SET weight_kg = 99 WHERE weight_kg = 70")
    con.close()
    assert ketreg_main(["release", "r1", "--verify", *args]) == 1
    err = capsys.readouterr().err
    assert "table patients" in err and "registry.duckdb" in err
