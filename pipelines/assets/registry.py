"""Registry layer: the harmonised, pseudonymised tables analysts query, one asset per SQL file."""

import dagster as dg

from ketreg.incremental.ledger import shared_digest
from ketreg.registry.build import (
    PER_SITE_TABLES,
    REGISTRY_TABLES,
    build_table,
    build_table_for_changed_sites,
    prepare,
)
from ketreg.registry.export_changes import build_export_changes
from ketreg.warehouse.sql_docs import sql_header
from pipelines.metadata import table_metadata
from pipelines.resources import PseudonymKey, RegistrySettings
from pipelines.skipping import skippable
from schemas.tables import TABLES

# What each registry table is built from (besides its own staged table).
_UPSTREAM = {
    "exports": [["staging", "exports"]],
    "patients": [["registry", "exports"], ["staging", "patients"]],
    "infusions": [["registry", "patients"], ["staging", "infusions"]],
    "assessments": [["registry", "infusions"], ["staging", "assessments"]],
    "adverse_events": [["registry", "infusions"], ["staging", "adverse_events"]],
    "dispositions": [["registry", "patients"], ["staging", "dispositions"]],
    "protocol_deviations": [["registry", "infusions"]],
    # Counts only, from the detailed quarantine kept in the working store.
    "quarantine": [["site_private", "quarantine"]],
    # The conservation ledger is built last: it compares what was accepted with what reached the registry.
    "file_counts": [
        ["staging", "file_counts"],
        ["registry", "quarantine"],  # so the check that compares the two sees this run's quarantine
        *[["registry", t] for t in ("patients", "infusions", "assessments", "adverse_events", "dispositions")],
    ],
}


def _registry_asset(name: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["registry", name],
        deps=_UPSTREAM[name],
        group_name="registry",
        kinds={"duckdb", "sql"},
        description=f"{sql_header(f'registry/{name}.sql')} (sql/registry/{name}.sql)",
    )
    @skippable
    def _build(settings: RegistrySettings, pseudonym_key: PseudonymKey) -> dg.MaterializeResult:
        with settings.working_db() as con:
            protocol = settings.protocol()
            prepare(con, pseudonym_key.secret(), protocol, rekey=pseudonym_key.rekey,
                    replaces=pseudonym_key.replaces_fingerprint or None)
            if name in PER_SITE_TABLES:
                run_id = dg.AssetExecutionContext.get().run.run_id
                sites = build_table_for_changed_sites(con, name, protocol, shared_digest(con, run_id), run_id)
            else:
                build_table(con, name, protocol)
                sites = None
            metadata = table_metadata(con, "registry", name)
        # Which sites' rows this run rebuilt: "all" for a whole rebuild.
        metadata["sites_rebuilt"] = dg.MetadataValue.json(sites if sites is not None else "all")
        return dg.MaterializeResult(metadata=metadata)

    _build.__name__ = f"registry_{name}"
    return _build




@dg.asset(
    key=["registry", "export_changes"],
    deps=[["registry", "exports"], *[["staging", t.name] for t in TABLES]],
    group_name="registry",
    kinds={"duckdb", "sql"},
)
@skippable
def registry_export_changes(settings: RegistrySettings) -> dg.MaterializeResult:
    """registry.export_changes: per site and file, rows added, removed and changed by the newest export
    against the previous one, and which columns changed (sql/registry/export_changes_for_table.sql)."""
    with settings.working_db() as con:
        build_export_changes(con)
        metadata: dict[str, object] = table_metadata(con, "registry", "export_changes")
        largest_removal = con.execute(
            "SELECT site_id || ' ' || file_name, rows_removed FROM registry.export_changes "
            "ORDER BY rows_removed DESC LIMIT 1"
        ).fetchall()
    if largest_removal:
        metadata["largest_removal"] = f"{largest_removal[0][0]}: {largest_removal[0][1]} rows"
    return dg.MaterializeResult(metadata=metadata)


registry_assets = [*(_registry_asset(name) for name in REGISTRY_TABLES), registry_export_changes]
