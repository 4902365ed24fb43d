"""The nightly rebuild: even without new exports, the registry and its metrics are rebuilt every night
(a protocol or code change re-validates what it must; unchanged exports are skipped)."""

import dagster as dg

from pipelines.jobs import registry_job

nightly_rebuild = dg.ScheduleDefinition(
    name="nightly_rebuild",
    job=registry_job,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Rebuild the registry and metrics at 02:30 UTC.",
)
