"""Staging in parallel processes: Dagster's multiprocess executor runs one step per worker, each validating a
share of the new or changed exports (about equal file bytes) into Parquet units under the working area
(ketreg/staging/units.py); the one `load_staging_units` step then writes the working DuckDB file.

`stage_exports` runs this job when the `staging_workers` setting is above 1 (`ketreg run --workers N`), then
finds every export staged and goes on to the registry. The steps are forked from a forkserver that has
imported this module only — not the registry's code location (`pipelines.definitions`, with metrics, Great
Expectations and reports) — so a step starts in milliseconds instead of seconds."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import forkserver
from pathlib import Path

import dagster as dg
import duckdb

from ketreg.landing.discovery import LandingExport, scan_landing
from ketreg.landing.retired import landing_is_empty
from ketreg.staging.stage import StagingReport, staged_fingerprints, validation_fingerprint
from ketreg.staging.tables import ensure_staging_tables
from ketreg.staging.units import (
    UNITS_FOLDER,
    exports_to_stage,
    load_units,
    plan_shares,
    remove_loaded_units,
    stage_share,
)
from pipelines.connections import WorkingStore
from pipelines.resources import RegistrySettings, default_resources

JOB_NAME = "staging_fanout_job"


def units_dir(working_store: WorkingStore) -> Path:
    """Units live beside the working store: derived from the landing folder, safe to delete."""
    return working_store.file.parent / UNITS_FOLDER


def _staged_now(work_db: Path) -> dict[tuple[str, str], str]:
    """What the working store holds, read-only (no step writes it while this job plans)."""
    if not work_db.exists():
        return {}
    con = duckdb.connect(str(work_db), read_only=True)
    try:
        return staged_fingerprints(con)
    except duckdb.CatalogException:  # a store without staging tables yet
        return {}
    finally:
        con.close()


@dg.op(out={"landing": dg.Out(list), "shares": dg.DynamicOut(list)})
def plan_staging_shares(context: dg.OpExecutionContext, settings: RegistrySettings, working_store: WorkingStore):
    """Scan the landing folder as the landing asset does, and split the new or changed exports into one share
    per worker (`staging_workers`), balanced by file bytes."""
    if settings.landing_path.is_dir() and landing_is_empty(settings.landing_path):
        raise dg.Failure(description=f"landing folder {settings.landing_path.resolve()} is empty; nothing staged")
    scan = scan_landing(settings.landing_path, settings.sites_path, settings.limits(),
                        retired=settings.retired_sites)
    rules = validation_fingerprint(settings.protocol())
    shares = plan_shares(exports_to_stage(scan.exports, _staged_now(working_store.file), rules),
                         settings.staging_workers)
    context.log.info(f"{len(scan.exports)} exports; {sum(map(len, shares))} to stage in {len(shares)} shares")
    yield dg.Output(scan.exports, output_name="landing")
    # An empty share when nothing changed: the load step still runs and drops exports that left the landing.
    for index, share in enumerate(shares or [[]]):
        yield dg.DynamicOutput(share, output_name="shares", mapping_key=f"share_{index}")


@dg.op
def stage_staging_share(settings: RegistrySettings, working_store: WorkingStore, share: list[LandingExport]
                        ) -> list[str]:
    """Read and validate one share into content-addressed units (reused when they exist); no database."""
    protocol = settings.protocol()
    units = stage_share(share, protocol, units_dir(working_store), validation_fingerprint(protocol))
    return [str(unit) for unit in units]


@dg.op
def load_staging_units(
    context: dg.OpExecutionContext, working_store: WorkingStore, landing: list[LandingExport],
    units: list[list[str]],
) -> dict:
    """The only writer of the working store in this job: staging replaced from the units in one transaction."""
    paths = [Path(unit) for share in units for unit in share]
    with working_store.connect() as con:
        ensure_staging_tables(con)
        report = load_units(con, landing, paths)
    remove_loaded_units(units_dir(working_store))
    context.log.info(
        f"staged {len(report.staged)}, unchanged {len(report.unchanged)}, removed {len(report.removed)} exports"
    )
    return report.__dict__


@dg.job(
    name=JOB_NAME,
    executor_def=dg.multiprocess_executor,
    description="Staging only, in parallel processes (one per share of the exports); registry_job's "
    "stage_exports runs it when staging_workers > 1.",
)
def staging_fanout_job():
    landing, shares = plan_staging_shares()
    load_staging_units(landing, shares.map(stage_staging_share).collect())


def fanout_job_for(settings: dict, working_store: dict) -> dg.JobDefinition:
    """The job bound to these settings and working store (their fields): what each executor process
    reconstructs. Paths and numbers only; the pseudonym key is not needed to stage and never passed."""
    resources = {"settings": RegistrySettings(**settings), "working_store": WorkingStore(**working_store)}
    return dg.Definitions(jobs=[staging_fanout_job], resources=resources).resolve_job_def(JOB_NAME)


def staging_fanout_job_from_environment() -> dg.JobDefinition:
    """The job bound to the environment's resources (KETREG_LANDING, KETREG_DB, KETREG_STAGING_WORKERS)."""
    return dg.Definitions(jobs=[staging_fanout_job], resources=default_resources()).resolve_job_def(JOB_NAME)


# What a step process imports to open the instance (DagsterInstance.from_ref), beside the instance's own
# storage classes: preloaded too, else every step pays seconds of imports (sqlalchemy, alembic) before its work.
_INSTANCE_MODULES = ("dagster._core.instance.factory", "dagster._core.storage.sqlite_storage",
                     "dagster._core.secrets.loader", "dagster._core.storage.migration.utils")


def run_config(workers: int, instance: dg.DagsterInstance) -> dict:
    """`workers` step processes, forked from a server that imported this module and the instance's storage
    once (not the whole code location). Named, since for a job made by `build_reconstructable_job` Dagster
    preloads only `dagster`."""
    components = (instance.run_storage, instance.event_log_storage, instance.schedule_storage,
                  instance.compute_log_manager, instance.run_launcher)
    preload = [__name__, *_INSTANCE_MODULES, *sorted({type(component).__module__ for component in components})]
    return {"execution": {"config": {
        "max_concurrent": workers, "start_method": {"forkserver": {"preload_modules": preload}},
    }}}


@contextmanager
def _fresh_forkserver() -> Iterator[None]:
    """Python keeps one forkserver per process, with the environment and preloads of its first start: stop it
    after the run, so a later fan-out in this process (another instance, changed environment) gets its own, and
    none outlives the run. `_stop` is the standard library's own shutdown (no public one in Python 3.11)."""
    try:
        yield
    finally:
        forkserver._forkserver._stop()  # type: ignore[attr-defined]  # private, so not in typeshed


@dataclass
class ParallelStaging:
    run_id: str
    report: StagingReport


def stage_in_parallel(settings: RegistrySettings, working_store: WorkingStore, instance: dg.DagsterInstance,
                      tags: dict[str, str]) -> ParallelStaging:
    """Run the fan-out job for these settings and working store on `instance` (a temporary one if it is
    ephemeral: the multiprocess executor needs storage its processes share); raises dg.Failure naming the failed
    steps."""
    fields = {
        "settings": {name: getattr(settings, name) for name in RegistrySettings.model_fields},
        "working_store": {name: getattr(working_store, name) for name in WorkingStore.model_fields},
    }
    job = dg.build_reconstructable_job(__name__, fanout_job_for.__name__, reconstructable_kwargs=fields)
    with tempfile.TemporaryDirectory(prefix="ketreg-fanout-") as temporary:
        run_instance = instance
        if instance.is_ephemeral:
            run_instance = dg.DagsterInstance.local_temp(temporary, overrides={"telemetry": {"enabled": False}})
        with _fresh_forkserver(), dg.execute_job(
            job, instance=run_instance, run_config=run_config(settings.staging_workers, run_instance), tags=tags,
            raise_on_error=False,
        ) as result:
            if not result.success:
                failed = [
                    f"{event.step_key}: {event.step_failure_data.error.message.strip()[:500]}"
                    for event in result.get_step_failure_events() if event.step_failure_data.error
                ]
                raise dg.Failure(description=f"parallel staging run {result.run_id} failed: {'; '.join(failed)}")
            report = StagingReport(**result.output_for_node("load_staging_units"))
        return ParallelStaging(run_id=result.run_id, report=report)
