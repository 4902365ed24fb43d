"""deploy/dagster.yaml against the live PostgreSQL server: run, event-log and schedule storage shared by every
host. The registry job runs, the landing sensor ticks and the nightly schedule is evaluated (as the daemon
does it) against an instance loaded from that file, and a second instance (another host) sees it all."""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import shutil
import signal
import time
import zlib
from pathlib import Path

import dagster as dg
import duckdb
import psycopg
import pytest
from postgres_support import FreshDatabase, fresh_database
from support import TEST_KEY, write_export

from pipelines.connections import WorkingStore
from pipelines.definitions import build_definitions
from pipelines.resources import RegistrySettings, registry_resources

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def pg_database() -> FreshDatabase:
    yield from fresh_database()


@pytest.fixture
def pg_instance(pg_database: FreshDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dg.DagsterInstance:
    """DAGSTER_HOME holding deploy/dagster.yaml as shipped, its connection given by the environment."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    for name, value in {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": pg_database.host,
        "DAGSTER_PG_PORT": str(pg_database.port),
        "DAGSTER_PG_USER": pg_database.user,
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_PG_DB": pg_database.name,
        "DAGSTER_COMPUTE_LOG_DIR": str(tmp_path / "compute_logs"),
        "KETREG_PSEUDONYM_KEY": TEST_KEY,
    }.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.get() as instance:
        yield instance


def _landing(root: Path) -> Path:
    landing = root / "landing"
    write_export(landing, "site_a")
    write_export(landing, "site_b")
    # Files older than the sensor's settle time, as an export that has finished copying.
    old = time.time() - 3600
    for path in landing.rglob("*"):
        os.utime(path, (old, old))
    return landing


def test_instance_storage_is_the_postgres_database(pg_instance: dg.DagsterInstance, pg_database: FreshDatabase):
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    assert isinstance(pg_instance.run_storage, PostgresRunStorage)
    assert isinstance(pg_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(pg_instance.schedule_storage, PostgresScheduleStorage)
    with psycopg.connect(pg_database.url) as con:
        tables = {row[0] for row in con.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"runs", "event_logs", "jobs", "job_ticks"} <= tables


def test_registry_job_runs_on_postgres_instance(
    pg_instance: dg.DagsterInstance, pg_database: FreshDatabase, tmp_path: Path
):
    landing = _landing(tmp_path)
    resources = registry_resources(
        RegistrySettings(landing_dir=str(landing), analyst_db=str(tmp_path / "out" / "registry.duckdb"))
    )
    result = build_definitions(resources).resolve_job_def("registry_job").execute_in_process(
        instance=pg_instance, raise_on_error=False
    )
    assert result.success, [e.message for e in result.get_step_failure_events()]
    # The run and its events are rows of the PostgreSQL database, readable by any other host's instance.
    with psycopg.connect(pg_database.url) as con:
        status = con.execute("SELECT status FROM runs WHERE run_id = %s", [result.run_id]).fetchone()
        materializations = con.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            [result.run_id],
        ).fetchone()[0]
        snapshots = [bytes(body) for (body,) in con.execute("SELECT snapshot_body FROM snapshots").fetchall()]
    # Dagster stores job snapshots zlib-compressed.
    snapshot_text = "".join(zlib.decompress(body).decode() for body in snapshots)
    assert "registry_job" in snapshot_text
    assert status == ("SUCCESS",)
    assert materializations >= len(build_definitions(resources).resolve_all_asset_specs())
    with dg.DagsterInstance.get() as other_host:
        assert other_host.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
        assert other_host.get_latest_materialization_event(dg.AssetKey(["publish", "analyst_registry"])) is not None
    # The key is read from the environment inside the steps: it is in no snapshot stored in PostgreSQL.
    assert TEST_KEY not in snapshot_text


def _workspace(instance: dg.DagsterInstance):
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.workspace.load_target import ModuleTarget

    target = ModuleTarget(
        module_name="pipelines.definitions", attribute=None, working_directory=str(REPO), location_name="ketreg"
    )
    return create_test_daemon_workspace_context(target, instance)


def _remote_repository(context):
    entry = next(iter(context.create_request_context().get_code_location_entries().values()))
    assert entry.code_location, entry.load_error
    return entry.code_location.get_repository("__repository__")


def test_landing_sensor_ticks_and_schedule_is_evaluated_on_postgres_instance(
    pg_instance: dg.DagsterInstance, pg_database: FreshDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from dagster._core.scheduler.instigation import TickStatus
    from dagster._daemon.sensor import execute_sensor_iteration
    from dagster._scheduler.scheduler import launch_scheduled_runs

    # The code location loads its resources from the environment, as on a deployed host.
    monkeypatch.setenv("KETREG_LANDING", str(_landing(tmp_path)))
    monkeypatch.setenv("KETREG_DB", str(tmp_path / "out" / "registry.duckdb"))
    logger = logging.getLogger("test_daemon")
    with _workspace(pg_instance) as context:
        repository = _remote_repository(context)
        sensor = repository.get_sensor("landing_sensor")
        schedule = repository.get_schedule("nightly_rebuild")
        pg_instance.start_sensor(sensor)
        pg_instance.start_schedule(schedule)

        list(execute_sensor_iteration(context, logger, None, None))
        now = datetime.datetime.now(datetime.UTC)
        # Evaluate the schedule as the daemon would one day later: exactly one 02:30 UTC tick falls due.
        list(launch_scheduled_runs(context, logger, now + datetime.timedelta(days=1), {}))

        sensor_ticks = pg_instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id)
        schedule_ticks = pg_instance.get_ticks(schedule.get_remote_origin_id(), schedule.selector_id)

    assert [tick.status for tick in sensor_ticks] == [TickStatus.SUCCESS]
    assert len(sensor_ticks[0].run_ids) == 1
    assert [tick.status for tick in schedule_ticks] == [TickStatus.SUCCESS]
    assert len(schedule_ticks[0].run_ids) == 1
    # The queued run coordinator of deploy/dagster.yaml holds both runs for the daemon's run queue.
    with dg.DagsterInstance.get() as other_host:
        sensor_run = other_host.get_run_by_id(sensor_ticks[0].run_ids[0])
        schedule_run = other_host.get_run_by_id(schedule_ticks[0].run_ids[0])
    assert sensor_run.job_name == schedule_run.job_name == "registry_job"
    assert sensor_run.status == schedule_run.status == dg.DagsterRunStatus.QUEUED
    assert sensor_run.tags["ketreg/changed_exports"] == "site_a/2026-11-01,site_b/2026-11-01"
    assert schedule_run.tags["dagster/schedule_name"] == "nightly_rebuild"
    with psycopg.connect(pg_database.url) as con:
        stored_ticks = con.execute("SELECT count(*) FROM job_ticks").fetchone()[0]
    assert stored_ticks == 2


def test_parallel_staging_runs_on_postgres_instance_and_equals_serial(
    pg_instance: dg.DagsterInstance, pg_database: FreshDatabase, tmp_path: Path
):
    from ketreg.landing.discovery import scan_landing
    from ketreg.registry.release import table_fingerprints
    from ketreg.staging.stage import stage_landing
    from ketreg.staging.tables import ensure_staging_tables
    from pipelines.staging_fanout import JOB_NAME, stage_in_parallel
    from schemas.protocol import load_protocol
    from synthetic import generate_landing

    landing = tmp_path / "landing"
    generate_landing(landing, sites=3, patients_per_site=10, seed=8, error_rate=0.05)
    serial_db = tmp_path / "serial" / "registry_work.duckdb"
    serial_db.parent.mkdir()
    with duckdb.connect(str(serial_db)) as con:
        ensure_staging_tables(con)
        stage_landing(con, scan_landing(landing).exports, load_protocol())
    settings = RegistrySettings(landing_dir=str(landing), analyst_db=str(tmp_path / "parallel" / "registry.duckdb"),
                                staging_workers=2)
    parallel = stage_in_parallel(settings, WorkingStore.beside(settings.analyst_db), pg_instance, tags={})

    # Every step process wrote its events to the PostgreSQL database; another host's instance sees the run.
    with psycopg.connect(pg_database.url) as con:
        steps = con.execute(
            "SELECT step_key FROM event_logs WHERE run_id = %s AND dagster_event_type = 'STEP_SUCCESS' ORDER BY 1",
            [parallel.run_id],
        ).fetchall()
    assert [key for (key,) in steps] == [
        "load_staging_units", "plan_staging_shares", "stage_staging_share[share_0]", "stage_staging_share[share_1]"
    ]
    with dg.DagsterInstance.get() as other_host:
        run = other_host.get_run_by_id(parallel.run_id)
        workers = other_host.all_logs(parallel.run_id, of_type=dg.DagsterEventType.STEP_WORKER_STARTED)
    assert run.job_name == JOB_NAME and run.status == dg.DagsterRunStatus.SUCCESS
    assert len({event.dagster_event.event_specific_data.metadata["pid"].text for event in workers}) == 4

    def staging_digests(path: Path) -> dict:
        with duckdb.connect(str(path), read_only=True) as con:
            return {k: v for k, v in table_fingerprints(con).items() if k.startswith("staging.")}

    assert staging_digests(tmp_path / "parallel" / "registry_work.duckdb") == staging_digests(serial_db)


def _code_servers_started_here() -> list[int]:
    """Pids of the `dagster api grpc` code servers this test process started (the daemon workspace's)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError, IndexError):  # ended meanwhile
            continue
        if ppid == os.getpid() and b"dagster api grpc" in command:
            pids.append(int(stat.parent.name))
    return pids


def _end_code_servers(pids: list[int]) -> None:
    """A code server that launched a run checks the instance when the run's process has ended; if the fixture
    drops the database first, it retries for ever and never exits (seen here with and without parallel staging).
    Give it its 20 s heartbeat timeout to exit, then end it."""
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


@pytest.mark.slow
def test_daemon_launches_the_sensors_run_which_stages_in_parallel_and_publishes(
    pg_instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The whole deployed path on one host: the sensor queues a run, the run queue daemon dequeues it, the
    DefaultRunLauncher starts it in a run worker process through the code server, and the run — with
    KETREG_STAGING_WORKERS=2, its staging fanned out to a run of its own — publishes."""
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
    from dagster._daemon.sensor import execute_sensor_iteration

    from pipelines.staging_fanout import JOB_NAME

    analyst_db = tmp_path / "out" / "registry.duckdb"
    monkeypatch.setenv("KETREG_LANDING", str(_landing(tmp_path)))
    monkeypatch.setenv("KETREG_DB", str(analyst_db))
    monkeypatch.setenv("KETREG_STAGING_WORKERS", "2")
    logger = logging.getLogger("test_daemon")
    with _workspace(pg_instance) as context:
        sensor = _remote_repository(context).get_sensor("landing_sensor")
        pg_instance.start_sensor(sensor)
        list(execute_sensor_iteration(context, logger, None, None))
        (run_id,) = pg_instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id)[0].run_ids
        list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(context))
        deadline = time.monotonic() + 900
        while not pg_instance.get_run_by_id(run_id).is_finished and time.monotonic() < deadline:
            time.sleep(2)
        code_servers = _code_servers_started_here()
    _end_code_servers(code_servers)
    run = pg_instance.get_run_by_id(run_id)
    assert run.status == dg.DagsterRunStatus.SUCCESS, [
        e.message for e in pg_instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    ]
    fanout = pg_instance.get_runs(dg.RunsFilter(job_name=JOB_NAME))
    assert [(r.tags["ketreg/registry_run"], r.status) for r in fanout] == [(run_id, dg.DagsterRunStatus.SUCCESS)]
    with duckdb.connect(str(analyst_db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM patients").fetchone()[0] > 0
