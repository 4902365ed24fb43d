"""Publish layer: the analysts' database, replaced atomically at the end of a successful run."""

import dagster as dg

from ketreg.registry.publish import publish_changes
from pipelines.assets.metrics import metrics_assets
from pipelines.assets.planning import planning_assets
from pipelines.assets.registry import registry_assets
from pipelines.connections import WorkingStore
from pipelines.resources import RegistrySettings
from pipelines.skipping import skippable


@dg.asset(
    key=["publish", "analyst_registry"],
    deps=[key for asset in (*registry_assets, *metrics_assets, *planning_assets) for key in asset.keys],
    group_name="publish",
    kinds={"duckdb"},
)
@skippable(publishes=True)
def analyst_registry(settings: RegistrySettings, working_store: WorkingStore) -> dg.MaterializeResult:
    """The registry tables copied into a DuckDB file beside the analysts' file that replaces it in one rename:
    a fresh file, or after some sites' new exports a copy of the last one with only their rows replaced."""
    with working_store.connect() as con:
        published = publish_changes(con, settings.analyst_db_path)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(settings.analyst_db_path.resolve())),
            **{f"rows_{table}": rows for table, rows in published.counts.items()},
            # Whose rows this run replaced in a copy of the last published file: "all" for a fresh file.
            "sites_replaced": dg.MetadataValue.json(
                published.sites_replaced if published.sites_replaced is not None else "all"
            ),
        }
    )
