"""Per-export work units: the Dagster fan-out (one step per export, multiprocess executor, 2 processes) stages
exactly what the serial path stages (equal table digests), its units are immutable and reused, and only the one
load step writes the working DuckDB file."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ketreg.landing.discovery import scan_landing
from ketreg.registry.release import table_fingerprints
from ketreg.staging.stage import stage_landing
from ketreg.staging.tables import ensure_staging_tables
from ketreg.staging.units import UNITS_FOLDER, read_unit, stage_unit
from ketreg.synthetic import generate_landing
from pipelines.staging_fanout import PARALLEL_PROCESSES, staging_fanout_job_from_environment
from schemas.protocol import load_protocol


def _instance(root: Path) -> dg.DagsterInstance:
    root.mkdir()
    return dg.DagsterInstance.local_temp(str(root))


def _staging_digests(path: Path) -> dict[str, dict[str, object]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {name: value for name, value in table_fingerprints(con).items() if name.startswith("staging.")}
    finally:
        con.close()


def _run_fanout(landing: Path, out: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch):
    # Each executor process loads the job from the environment, as a deployed code location does.
    monkeypatch.setenv("KETREG_LANDING", str(landing))
    monkeypatch.setenv("KETREG_DB", str(out / "registry.duckdb"))
    monkeypatch.setenv("KETREG_PSEUDONYM_KEY", "unused-by-staging")
    return dg.execute_job(dg.reconstructable(staging_fanout_job_from_environment), instance=instance)


def test_parallel_units_stage_what_the_serial_path_stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    landing = tmp_path / "landing"
    generate_landing(landing, sites=2, patients_per_site=12, seed=5, error_rate=0.05,
                     shapes=("canonical", "redcap"))
    serial_db = tmp_path / "serial" / "registry_work.duckdb"
    serial_db.parent.mkdir()
    with duckdb.connect(str(serial_db)) as con:
        ensure_staging_tables(con)
        stage_landing(con, scan_landing(landing).exports, load_protocol())

    with _instance(tmp_path / "dagster") as instance:
        result = _run_fanout(landing, tmp_path / "parallel", instance, monkeypatch)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        step_starts = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_START)
    unit_steps = [e for e in step_starts if e.step_key.startswith("stage_export_unit")]
    exports = scan_landing(landing).exports
    assert len(unit_steps) == len(exports) == 4
    # The multiprocess executor, 2 at a time: every step in a process of its own.
    assert run.run_config == {} and PARALLEL_PROCESSES == 2
    assert len({e.dagster_event.pid for e in unit_steps}) == len(unit_steps)

    parallel = _staging_digests(tmp_path / "parallel" / "registry_work.duckdb")
    serial = _staging_digests(serial_db)
    assert parallel == serial
    assert serial["staging.quarantine"]["rows"] > 0 and serial["staging.patients"]["rows"] > 0
    units = tmp_path / "parallel" / UNITS_FOLDER
    assert len([p for p in units.iterdir() if not p.name.startswith(".")]) == len(exports)
    # The units are Parquet; the working store is the only DuckDB file.
    assert sorted(p.name for p in (tmp_path / "parallel").glob("*.duckdb*")) == ["registry_work.duckdb"]
    assert not list(units.rglob("*.duckdb"))


def test_units_are_immutable_and_reused(tmp_path: Path):
    landing = tmp_path / "landing"
    generate_landing(landing, sites=1, patients_per_site=8, seed=9, error_rate=0.05)
    export = next(e for e in scan_landing(landing).exports if e.rejection is None)
    protocol = load_protocol()
    unit = stage_unit(export, protocol, tmp_path / "units")
    written = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in unit.iterdir()}
    assert {"patients.parquet", "quarantine.parquet", "file_counts.parquet", "exports.parquet"} <= set(written)
    assert stage_unit(export, protocol, tmp_path / "units") == unit
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in unit.iterdir()} == written
    # A changed file is another unit; the first stays as it was.
    patients = export.path / "patients.csv"
    patients.write_text(patients.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    changed = stage_unit(
        next(e for e in scan_landing(landing).exports if e.label == export.label), protocol, tmp_path / "units"
    )
    assert changed != unit and unit.is_dir()
    staged, report = read_unit(unit)
    assert report.staged == [export.label]
    assert staged.accepted["patients"].height + report.rows_quarantined["patients"] == report.rows_read["patients"] > 0
