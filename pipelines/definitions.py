"""The registry's one Dagster code location (loaded by `dagster dev -w workspace.yaml` and `ketreg run`)."""

import dagster as dg

from pipelines.assets.landing import landing_exports
from pipelines.assets.metrics import metrics_assets
from pipelines.assets.planning import planning_assets
from pipelines.assets.publish import analyst_registry
from pipelines.assets.publish_postgres import postgres_registry
from pipelines.assets.quality import quality_assets
from pipelines.assets.registry import registry_assets
from pipelines.assets.reports import reports_assets
from pipelines.assets.site_private import site_private_assets
from pipelines.assets.staging import stage_exports
from pipelines.checks import registry_checks
from pipelines.conventions import with_conventions
from pipelines.jobs import registry_job
from pipelines.quality_checks import great_expectations_checks
from pipelines.resources import default_resources
from pipelines.schedules import nightly_rebuild
from pipelines.sensors import landing_sensor
from pipelines.staging_fanout import staging_fanout_job

ALL_ASSETS = [
    landing_exports, stage_exports, *registry_assets, *site_private_assets, *metrics_assets, *planning_assets,
    analyst_registry, postgres_registry, *quality_assets, *reports_assets,
]


def build_definitions(resources: dict[str, dg.ConfigurableResource] | None = None) -> dg.Definitions:
    """The Definitions with the given resources (the environment's defaults when None): `ketreg run` and
    the tests bind their own paths and key this way."""
    return dg.Definitions(
        assets=with_conventions(ALL_ASSETS),
        asset_checks=[*registry_checks, great_expectations_checks],
        jobs=[registry_job, staging_fanout_job],
        sensors=[landing_sensor],
        schedules=[nightly_rebuild],
        resources=resources if resources is not None else default_resources(),
        # Every step opens the same DuckDB file, which admits one writer: run steps one after another.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
