"""The working store's private tables (`site_private.*`): what only the sending site may see again. They feed
the registry's counts-only quarantine and each site's data-manager folder; they are never published."""

import dagster as dg

from ketreg.registry.site_private import SITE_PRIVATE_TABLES, build_site_private_table
from pipelines.resources import RegistrySettings
from pipelines.skipping import skippable

_UPSTREAM = {
    "exports": [["registry", "exports"], ["staging", "exports"]],
    "file_columns": [["registry", "exports"], ["staging", "file_counts"]],
    "quarantine": [["registry", "exports"], ["staging", "quarantine"]],
}


def _site_private_asset(name: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["site_private", name],
        deps=_UPSTREAM[name],
        # Its own group: the registry layer's private half, never published.
        group_name="site_private",
        kinds={"duckdb", "sql"},
        description=f"site_private.{name} (working store only), built by sql/site_private/{name}.sql",
    )
    @skippable
    def _build(settings: RegistrySettings) -> dg.MaterializeResult:
        with settings.working_db() as con:
            rows = build_site_private_table(con, name)
        return dg.MaterializeResult(metadata={"rows": rows})

    _build.__name__ = f"site_private_{name}"
    return _build


site_private_assets = [_site_private_asset(name) for name in SITE_PRIVATE_TABLES]
