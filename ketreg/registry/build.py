"""Build the registry tables from staging with the SQL files of `sql/`, in dependency order."""

from __future__ import annotations

import duckdb
import polars as pl

from ketreg.incremental.sites import record_sites, run_site_scoped, sites_to_rebuild
from ketreg.registry.key_fingerprint import record_key
from ketreg.registry.pseudonym import install_pseudonym_macro
from ketreg.warehouse.connection import run_sql_file, scalar, sql_text
from ketreg.warehouse.transaction import transaction
from schemas.enums import AE_TERM_CATEGORY
from schemas.protocol import Protocol

# Published to analysts, in the order they are built. Each name is an asset and a table of the registry.
REGISTRY_TABLES = (
    "exports",
    "patients",
    "infusions",
    "assessments",
    "adverse_events",
    "dispositions",
    "protocol_deviations",
    "quarantine",
    "file_counts",
)
# Tables rebuilt per site when only some sites' exports changed (ketreg/incremental/sites.py); the others are
# one row per export or file and are rebuilt whole.
PER_SITE_TABLES = (
    "patients", "infusions", "assessments", "adverse_events", "dispositions", "protocol_deviations", "quarantine",
)
# Private lookup tables (site ids → pseudonymous keys), built before the tables that need them.
KEY_TABLES = {"patients": ("patient_keys",), "infusions": ("infusion_positions", "infusion_keys")}


def prepare(con: duckdb.DuckDBPyConnection, key: str, protocol: Protocol, rekey: bool = False,
            replaces: str | None = None) -> None:
    """Schemas, the pseudonym macro, the key's fingerprint (a registry built with another key is refused
    unless `rekey`), and the reference tables: AE terms from the contract, and the protocol whose limits this
    registry was validated against (so every published file says which one)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS registry")
    con.execute("CREATE SCHEMA IF NOT EXISTS keys")
    record_key(con, key, rekey, replaces)
    install_pseudonym_macro(con, key)
    con.register("_protocol", pl.DataFrame([protocol.as_sql_parameters()]))
    try:
        con.execute("CREATE OR REPLACE TABLE registry.protocol AS SELECT * FROM _protocol")
    finally:
        con.unregister("_protocol")
    terms = pl.DataFrame({"term": list(AE_TERM_CATEGORY), "category": list(AE_TERM_CATEGORY.values())})
    con.register("_terms", terms)
    try:
        con.execute("CREATE OR REPLACE TABLE registry.ae_term_categories AS SELECT * FROM _terms ORDER BY term")
    finally:
        con.unregister("_terms")


def build_table(con: duckdb.DuckDBPyConnection, name: str, protocol: Protocol) -> int:
    """(Re)build one registry table, inside one transaction; returns its row count."""
    with transaction(con):
        for key_table in KEY_TABLES.get(name, ()):
            run_sql_file(con, f"keys/{key_table}.sql")
        run_sql_file(con, f"registry/{name}.sql", protocol.as_sql_parameters())
    return scalar(con, f"SELECT count(*) FROM registry.{name}")


def build_table_for_changed_sites(
    con: duckdb.DuckDBPyConnection, name: str, protocol: Protocol, shared_digest: str, run_id: str
) -> list[str] | None:
    """Like `build_table`, but for a PER_SITE_TABLES table rebuild only the rows of sites whose exports
    changed since it was last built (and its key tables' rows of those sites), in one transaction. Returns
    the sites rebuilt, or None when the table was rebuilt whole (first build, or code, protocol, key or
    mappings changed)."""
    sites = sites_to_rebuild(con, f"registry.{name}", shared_digest, run_id) if name in PER_SITE_TABLES else None
    with transaction(con):
        parameters = protocol.as_sql_parameters()
        for relative in [*(f"keys/{key_table}.sql" for key_table in KEY_TABLES.get(name, ())), f"registry/{name}.sql"]:
            if sites is None:
                run_sql_file(con, relative, parameters)
            elif sites:
                run_site_scoped(con, sql_text(relative), parameters, sites)
        if name in PER_SITE_TABLES:
            record_sites(con, f"registry.{name}", shared_digest, run_id)
    return sites
