"""registry.export_changes: for each site, what its newest export changed against the previous one
(rows added, removed and changed per file, and which columns changed), so a data manager sees at a glance
when a site's export suddenly loses half its rows. Column lists come from the contract.

A site's rows are made from that site's exports alone, so after some sites' new exports only their rows are
rebuilt (ketreg/incremental/sites.py), as for the per-site registry tables: comparing every site's two
exports again was the largest part of a one-new-export run's registry step (3.6 of 9.0 s at 20 sites)."""

from __future__ import annotations

import duckdb

from ketreg.incremental.sites import record_sites, run_site_scoped, sites_to_rebuild
from ketreg.warehouse.sql_files import identifier, render_sql, sql_text, text_literal
from ketreg.warehouse.transaction import transaction
from schemas.tables import TABLES, TABLES_BY_NAME, TableContract

_TEMPLATE = "registry/export_changes_for_table.sql"
TABLE = "registry.export_changes"


def _record_id(table: TableContract) -> str:
    columns = set(table.columns)
    if table.record_id:
        return f"t.{identifier(table.record_id, columns)}"
    # A disposition has no id of its own: the patient, the date and the status identify it.
    parts = ", ".join(f"t.{identifier(c, columns)}" for c in ("patient_id", "event_date", "status"))
    return f"concat_ws('/', {parts})"


def table_changes_sql(table: TableContract) -> str:
    """The SELECT that summarises one file's changes between each site's two newest accepted exports."""
    columns = set(table.columns)
    compared = [c for c in table.columns if c != table.record_id]
    changed = ", ".join(
        f"CASE WHEN cur.{identifier(c, columns)} IS DISTINCT FROM prev.{identifier(c, columns)} "
        f"THEN {text_literal(c, columns)} END"
        for c in compared
    )
    return render_sql(sql_text(_TEMPLATE), {
        "table": identifier(table.name, TABLES_BY_NAME),
        "file_name": text_literal(table.file_name, {t.file_name for t in TABLES}),
        "record_id": _record_id(table),
        "changed_columns": changed,
    })


def export_changes_sql() -> str:
    """The statement that (re)builds registry.export_changes whole, every contract file's part in one table."""
    union = "\nUNION ALL\n".join(f"({table_changes_sql(table)})" for table in TABLES)
    return f"CREATE OR REPLACE TABLE {TABLE} AS SELECT * FROM ({union}) ORDER BY ALL"


def build_export_changes_for_changed_sites(
    con: duckdb.DuckDBPyConnection, shared_digest: str, run_id: str
) -> list[str] | None:
    """Rebuild the rows of registry.export_changes of the sites whose staged rows changed since it was last
    built, in one transaction with its record in `incremental.table_sites`. Returns those sites, or None when
    the table was rebuilt whole (first build, or code, protocol, key or mappings changed)."""
    sites = sites_to_rebuild(con, TABLE, shared_digest, run_id)
    with transaction(con):
        if sites is None:
            con.execute(export_changes_sql())
        elif sites:
            run_site_scoped(con, export_changes_sql(), {}, sites)
        record_sites(con, TABLE, shared_digest, run_id)
    return sites
