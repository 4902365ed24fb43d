"""Staging as per-export work units, fanned out by Dagster (dynamic outputs, one per export) and run in parallel
by the multiprocess executor. Each unit validates one export into Parquet under the working area and touches no
database; the one `load_staging_units` step then writes the working DuckDB file. Running `registry_job` after it
finds every export already staged (same fingerprint) and goes straight on to the registry.

Two processes by default (the machines here have 2 cores); `max_concurrent` in the run config's
`execution: config:` raises it."""

import re
from pathlib import Path

import dagster as dg

from ketreg.landing.discovery import LandingExport, scan_landing
from ketreg.staging.stage import validation_fingerprint
from ketreg.staging.tables import ensure_staging_tables
from ketreg.staging.units import UNITS_FOLDER, load_units, stage_unit
from pipelines.resources import RegistrySettings

PARALLEL_PROCESSES = 2


def units_dir(settings: RegistrySettings) -> Path:
    """Units live beside the working store: derived from the landing folder, safe to delete."""
    return settings.work_db_path.parent / UNITS_FOLDER


@dg.op(out=dg.DynamicOut(LandingExport))
def landing_export_units(context: dg.OpExecutionContext, settings: RegistrySettings):
    """One dynamic output per `<site>/<export>/` folder (hashed and header-checked, as the landing asset does)."""
    scan = scan_landing(settings.landing_path)
    context.log.info(f"{len(scan.exports)} exports in {settings.landing_dir}")
    for index, export in enumerate(scan.exports):
        yield dg.DynamicOutput(export, mapping_key=f"{index:05d}_{re.sub(r'[^A-Za-z0-9_]', '_', export.label)}")


@dg.op
def stage_export_unit(settings: RegistrySettings, export: LandingExport) -> tuple[LandingExport, str]:
    """Read and validate one export into its content-addressed unit (reused when it exists)."""
    protocol = settings.protocol()
    unit = stage_unit(export, protocol, units_dir(settings), validation_fingerprint(protocol))
    return export, str(unit)


@dg.op
def load_staging_units(
    context: dg.OpExecutionContext, settings: RegistrySettings, units: list[tuple[LandingExport, str]]
) -> None:
    """The only writer of the working store in this job: staging replaced from the units in one transaction."""
    ordered = sorted(units, key=lambda pair: pair[0].label)
    with settings.working_db() as con:
        ensure_staging_tables(con)
        report = load_units(con, [(export, Path(unit)) for export, unit in ordered], settings.protocol())
    for label, reason in report.rejected.items():
        context.log.warning(f"export {label} rejected: {reason}")
    context.log.info(
        f"staged {len(report.staged)}, unchanged {len(report.unchanged)}, removed {len(report.removed)} exports"
    )


@dg.job(
    executor_def=dg.multiprocess_executor.configured({"max_concurrent": PARALLEL_PROCESSES}),
    description="Staging only, each export its own step in parallel processes; then registry_job builds on it.",
)
def staging_fanout_job():
    load_staging_units(landing_export_units().map(stage_export_unit).collect())


def staging_fanout_job_from_environment() -> dg.JobDefinition:
    """The job bound to the environment's resources (KETREG_LANDING, KETREG_DB): what `dg.reconstructable`
    loads in each executor process."""
    from pipelines.definitions import defs

    return defs.resolve_job_def("staging_fanout_job")
