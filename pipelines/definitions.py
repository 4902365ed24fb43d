"""The registry's one Dagster code location (loaded by `dagster dev -w workspace.yaml` and `ketreg run`)."""

import dagster as dg

from pipelines.assets.landing import landing_exports
from pipelines.assets.publish import analyst_registry
from pipelines.assets.registry import registry_assets
from pipelines.assets.staging import stage_exports
from pipelines.checks import registry_checks
from pipelines.resources import default_resources

ALL_ASSETS = [landing_exports, stage_exports, *registry_assets, analyst_registry]

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=registry_checks,
    resources=default_resources(),
    # Every step opens the same DuckDB file, which admits one writer: run steps one after another in-process.
    executor=dg.in_process_executor,
)
