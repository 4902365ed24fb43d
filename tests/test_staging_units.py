"""Staging in parallel work units: the fan-out on Dagster's multiprocess executor (2 processes, one share of the
exports each) stages exactly what the serial path stages (equal table digests), its units are immutable and
reused, only the one load step writes the working DuckDB file, and `ketreg run --workers 2` builds the same
registry as the serial run."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ketreg.landing.discovery import scan_landing
from ketreg.registry.release import table_fingerprints
from ketreg.staging.stage import export_bytes, stage_landing
from ketreg.staging.tables import ensure_staging_tables
from ketreg.staging.units import UNITS_FOLDER, plan_shares, read_unit, stage_unit
from ketreg_app.run import run_pipeline
from pipelines.connections import WorkingStore
from pipelines.resources import RegistrySettings
from pipelines.staging_fanout import JOB_NAME, stage_in_parallel
from schemas.protocol import load_protocol
from synthetic import generate_landing


def _digests(path: Path, prefix: str = "staging.") -> dict[str, dict[str, object]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {name: value for name, value in table_fingerprints(con).items() if name.startswith(prefix)}
    finally:
        con.close()


def _serial_staging(landing: Path, work_db: Path) -> None:
    work_db.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(work_db)) as con:
        ensure_staging_tables(con)
        stage_landing(con, scan_landing(landing).exports, load_protocol())


def _settings(landing: Path, out: Path, workers: int = 2) -> RegistrySettings:
    return RegistrySettings(landing_dir=str(landing), analyst_db=str(out / "registry.duckdb"),
                            staging_workers=workers)


def _instance(tmp_path: Path) -> dg.DagsterInstance:
    (tmp_path / "dagster").mkdir()
    return dg.DagsterInstance.local_temp(str(tmp_path / "dagster"), overrides={"telemetry": {"enabled": False}})


def test_plan_shares_balances_file_bytes_and_is_stable(tmp_path: Path):
    landing = tmp_path / "landing"
    generate_landing(landing, sites=5, patients_per_site=10, seed=2, error_rate=0.0)
    exports = scan_landing(landing).exports
    shares = plan_shares(exports, 2)
    assert len(shares) == 2
    assert sorted(e.label for share in shares for e in share) == sorted(e.label for e in exports)
    loads = [sum(export_bytes(e) for e in share) for share in shares]
    assert max(loads) - min(loads) <= max(export_bytes(e) for e in exports)
    assert [[e.label for e in s] for s in plan_shares(list(reversed(exports)), 2)] == [
        [e.label for e in s] for s in shares
    ]
    assert len(plan_shares(exports[:1], 4)) == 1 and plan_shares([], 2) == []


def test_parallel_staging_stages_what_the_serial_path_stages(tmp_path: Path):
    landing = tmp_path / "landing"
    generate_landing(landing, sites=3, patients_per_site=12, seed=5, error_rate=0.05,
                     shapes=("canonical", "redcap"))
    _serial_staging(landing, tmp_path / "serial" / "registry_work.duckdb")

    settings = _settings(landing, tmp_path / "parallel")
    with _instance(tmp_path) as instance:
        parallel = stage_in_parallel(settings, WorkingStore.beside(settings.analyst_db), instance, tags={})
        run = instance.get_run_by_id(parallel.run_id)
        started = instance.all_logs(parallel.run_id, of_type=dg.DagsterEventType.STEP_WORKER_STARTED)
    assert run.job_name == JOB_NAME
    # The multiprocess executor, 2 at a time, forked from a forkserver: one step per share, each its own process.
    executor = run.run_config["execution"]["config"]
    preloaded = executor["start_method"]["forkserver"]["preload_modules"]
    assert executor["max_concurrent"] == 2 and preloaded[0] == "pipelines.staging_fanout"
    assert not any(module.startswith("pipelines.") for module in preloaded[1:])  # not the whole code location
    share_steps = [e for e in started if e.step_key.startswith("stage_staging_share")]
    assert len(share_steps) == 2
    assert len({e.dagster_event.event_specific_data.metadata["pid"].text for e in started}) == len(started) == 4

    assert _digests(tmp_path / "parallel" / "registry_work.duckdb") == _digests(
        tmp_path / "serial" / "registry_work.duckdb")
    exports = scan_landing(landing).exports
    assert sorted([*parallel.report.staged, *parallel.report.rejected]) == sorted(e.label for e in exports)
    assert parallel.report.rejected  # the generator's broken export, rejected as the serial path rejects it
    # Units are Parquet; the working store is the only DuckDB file.
    assert sorted(p.name for p in (tmp_path / "parallel").glob("*.duckdb*")) == ["registry_work.duckdb"]
    assert not list((tmp_path / "parallel" / UNITS_FOLDER).rglob("*.duckdb"))


def test_parallel_staging_follows_the_landing_like_the_serial_path(tmp_path: Path):
    landing = tmp_path / "landing"
    generate_landing(landing, sites=3, patients_per_site=8, seed=11, error_rate=0.02)
    settings = _settings(landing, tmp_path / "parallel")
    units = tmp_path / "parallel" / UNITS_FOLDER
    with _instance(tmp_path) as instance:
        first = stage_in_parallel(settings, WorkingStore.beside(settings.analyst_db), instance, tags={})
        # Once loaded, the units are gone: the working area keeps no second copy of staging.
        assert first.report.staged and units.is_dir() and not list(units.iterdir())
        # Nothing changed: nothing validated again.
        again = stage_in_parallel(settings, WorkingStore.beside(settings.analyst_db), instance, tags={})
        assert again.report.staged == [] and len(again.report.unchanged) == len(scan_landing(landing).exports)
        # One export gone, one changed: the same staging as the serial path on the new landing.
        exports = scan_landing(landing).exports
        shutil.rmtree(exports[0].path)
        patients = exports[-1].path / "patients.csv"
        patients.write_text(patients.read_text(encoding="utf-8") + "\n", encoding="utf-8")
        changed = stage_in_parallel(settings, WorkingStore.beside(settings.analyst_db), instance, tags={})
    assert changed.report.removed == [exports[0].label] and changed.report.staged == [exports[-1].label]
    _serial_staging(landing, tmp_path / "serial" / "registry_work.duckdb")
    assert _digests(tmp_path / "parallel" / "registry_work.duckdb") == _digests(
        tmp_path / "serial" / "registry_work.duckdb")


def test_units_are_immutable_and_reused(tmp_path: Path):
    landing = tmp_path / "landing"
    generate_landing(landing, sites=1, patients_per_site=8, seed=9, error_rate=0.05)
    export = next(e for e in scan_landing(landing).exports if e.rejection is None)
    protocol = load_protocol()
    unit = stage_unit([export], protocol, tmp_path / "units")
    written = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in unit.iterdir()}
    assert {"patients.parquet", "quarantine.parquet", "file_counts.parquet", "exports.parquet"} <= set(written)
    # Staged rows hold the sites' own patient ids: private to the account, as the working store is.
    assert [oct(p.stat().st_mode & 0o777) for p in (unit, *unit.iterdir())] == ["0o700"] + ["0o600"] * len(written)
    assert stage_unit([export], protocol, tmp_path / "units") == unit
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in unit.iterdir()} == written
    # A changed file is another unit; the first stays as it was.
    patients = export.path / "patients.csv"
    patients.write_text(patients.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    changed = stage_unit(
        [next(e for e in scan_landing(landing).exports if e.label == export.label)], protocol, tmp_path / "units"
    )
    assert changed != unit and unit.is_dir()
    staged, report = read_unit(unit)
    assert report.staged == [export.label]
    assert staged.accepted["patients"].height + report.rows_quarantined["patients"] == report.rows_read["patients"] > 0


@pytest.mark.slow
def test_run_with_two_workers_builds_the_registry_the_serial_run_builds(
    tmp_path: Path, pseudonym_key: str, monkeypatch: pytest.MonkeyPatch
):
    landing = tmp_path / "landing"
    generate_landing(landing, sites=2, patients_per_site=15, seed=4, error_rate=0.03)
    serial = run_pipeline(landing, tmp_path / "serial" / "registry.duckdb")
    assert serial.success, serial.failures
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    parallel = run_pipeline(landing, tmp_path / "parallel" / "registry.duckdb", staging_workers=2)
    assert parallel.success, parallel.failures

    work = {name: _digests(tmp_path / name / "registry_work.duckdb", "") for name in ("serial", "parallel")}
    staging = {name: {k: v for k, v in digests.items() if k.startswith("staging.")} for name, digests in work.items()}
    assert staging["parallel"] == staging["serial"] and staging["serial"]["staging.patients"]["rows"] > 0
    # The analysts' file: every table (registry, metrics, quarantine, pseudonym key fingerprint) the same.
    published = {name: _digests(tmp_path / name / "registry.duckdb", "") for name in ("serial", "parallel")}
    assert published["parallel"] == published["serial"] and published["serial"]["patients"]["rows"] > 0

    # The registry run's staging step launched the fan-out run, on the same instance, and says so.
    with dg.DagsterInstance.get() as instance:
        fanout_runs = instance.get_runs(dg.RunsFilter(job_name=JOB_NAME))
        materialization = instance.get_latest_materialization_event(dg.AssetKey(["staging", "patients"]))
    assert [r.tags.get("ketreg/registry_run") for r in fanout_runs] == [parallel.run_id]
    metadata = materialization.asset_materialization.metadata
    assert metadata["parallel_staging_run"].value == fanout_runs[0].run_id
    assert metadata["staging_workers"].value == 2
    assert metadata["exports_staged"].value + len(metadata["exports_rejected"].value) == len(
        scan_landing(landing).exports) and metadata["exports_unchanged"].value == 0
