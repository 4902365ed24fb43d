"""The working store's private tables (`site_private.*`): what only the sending site may see again. They feed
the registry's counts-only quarantine and each site's data-manager folder; they are never published."""

import dagster as dg

from ketreg.registry.site_private import SITE_PRIVATE_TABLES, build_site_private_table
from pipelines.connections import WorkingStore
from pipelines.resources import RegistrySettings
from pipelines.skipping import skippable

_UPSTREAM = {
    "exports": [["registry", "exports"], ["staging", "exports"]],
    "file_columns": [["registry", "exports"], ["staging", "file_counts"]],
    "quarantine": [["registry", "exports"], ["staging", "quarantine"]],
}


# One step for the three tables (each its own asset), as for the registry tables (pipelines/assets/registry.py).
@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["site_private", name],
            deps=_UPSTREAM[name],
            # Its own group: the registry layer's private half, never published.
            group_name="site_private",
            kinds={"duckdb", "sql"},
            description=f"site_private.{name} (working store only), built by sql/site_private/{name}.sql",
        )
        for name in SITE_PRIVATE_TABLES
    ],
    can_subset=True,
    name="site_private_tables",
)
@skippable
def site_private_tables(context: dg.AssetExecutionContext, settings: RegistrySettings, working_store: WorkingStore):
    """The selected site_private tables, one transaction each."""
    selected = {key.path[-1] for key in context.selected_asset_keys}
    with working_store.connect() as con:
        for name in SITE_PRIVATE_TABLES:
            if name in selected:
                rows = build_site_private_table(con, name)
                yield dg.MaterializeResult(asset_key=["site_private", name], metadata={"rows": rows})


site_private_assets = [site_private_tables]
