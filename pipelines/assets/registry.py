"""Registry layer: the harmonised, pseudonymised tables analysts query, one asset per SQL file."""

import dagster as dg
import duckdb

from ketreg.incremental.ledger import shared_digest
from ketreg.registry.build import (
    PER_SITE_TABLES,
    REGISTRY_TABLES,
    build_table,
    build_table_for_changed_sites,
    prepare,
)
from ketreg.registry.export_changes import build_export_changes_for_changed_sites
from ketreg.warehouse.sql_docs import sql_header
from pipelines.connections import WorkingStore
from pipelines.metadata import AssetMetadata, table_metadata
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


_EXPORT_CHANGES = "export_changes"
_EXPORT_CHANGES_DEPS = [["registry", "exports"], *[["staging", t.name] for t in TABLES]]


def _spec(name: str) -> dg.AssetSpec:
    if name == _EXPORT_CHANGES:
        return dg.AssetSpec(
            ["registry", name], deps=_EXPORT_CHANGES_DEPS, group_name="registry", kinds={"duckdb", "sql"},
            description="registry.export_changes: per site and file, rows added, removed and changed by the "
            "newest export against the previous one, and which columns changed "
            "(sql/registry/export_changes_for_table.sql)",
        )
    return dg.AssetSpec(
        ["registry", name], deps=_UPSTREAM[name], group_name="registry", kinds={"duckdb", "sql"},
        description=f"{sql_header(f'registry/{name}.sql')} (sql/registry/{name}.sql)",
    )


def _export_changes_metadata(con: duckdb.DuckDBPyConnection) -> AssetMetadata:
    metadata: AssetMetadata = table_metadata(con, "registry", _EXPORT_CHANGES)
    largest_removal = con.execute(
        "SELECT site_id || ' ' || file_name, rows_removed FROM registry.export_changes "
        "ORDER BY rows_removed DESC LIMIT 1"
    ).fetchall()
    if largest_removal:
        metadata["largest_removal"] = f"{largest_removal[0][0]}: {largest_removal[0][1]} rows"
    return metadata


# One step builds the selected registry tables, in dependency order, on one connection: a step per table
# cost ~0.2 s of Dagster bookkeeping and a working-store connection each. Every table is still its own asset
# (description, row count, schema, checks), and a subset can be materialized alone (can_subset). The
# counts-only quarantine reads site_private.quarantine, which reads registry.exports: Dagster runs the
# selection as two steps around the site_private step.
@dg.multi_asset(
    specs=[_spec(name) for name in (*REGISTRY_TABLES, _EXPORT_CHANGES)],
    can_subset=True,
    name="registry_tables",
)
@skippable
def registry_tables(
    context: dg.AssetExecutionContext, settings: RegistrySettings, working_store: WorkingStore,
    pseudonym_key: PseudonymKey,
):
    """The harmonised, pseudonymised registry tables (sql/registry/), each site's patient-level rows rebuilt
    only when its staged rows changed (`sites_rebuilt`), and registry.export_changes."""
    selected = {key.path[-1] for key in context.selected_asset_keys}
    with working_store.connect() as con:
        protocol = settings.protocol()
        if selected - {_EXPORT_CHANGES}:
            prepare(con, pseudonym_key.secret(), protocol, rekey=pseudonym_key.rekey,
                    replaces=pseudonym_key.replaces_fingerprint or None)
        for name in (*REGISTRY_TABLES, _EXPORT_CHANGES):
            if name not in selected:
                continue
            run_id = context.run.run_id
            if name == _EXPORT_CHANGES:
                sites = build_export_changes_for_changed_sites(con, shared_digest(con, run_id), run_id)
                metadata = _export_changes_metadata(con)
                metadata["sites_rebuilt"] = dg.MetadataValue.json(sites if sites is not None else "all")
                yield dg.MaterializeResult(asset_key=["registry", name], metadata=metadata)
                continue
            if name in PER_SITE_TABLES:
                sites = build_table_for_changed_sites(con, name, protocol, shared_digest(con, run_id), run_id)
            else:
                build_table(con, name, protocol)
                sites = None
            metadata = table_metadata(con, "registry", name)
            # Which sites' rows this run rebuilt: "all" for a whole rebuild.
            metadata["sites_rebuilt"] = dg.MetadataValue.json(sites if sites is not None else "all")
            yield dg.MaterializeResult(asset_key=["registry", name], metadata=metadata)


registry_assets = [registry_tables]
