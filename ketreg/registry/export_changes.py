"""registry.export_changes: for each site, what its newest export changed against the previous one
(rows added, removed and changed per file, and which columns changed), so a data manager sees at a glance
when a site's export suddenly loses half its rows. Column lists come from the contract."""

from __future__ import annotations

import duckdb

from ketreg.warehouse.connection import scalar
from ketreg.warehouse.sql_files import identifier, render_sql, sql_text, text_literal
from ketreg.warehouse.transaction import transaction
from schemas.tables import TABLES, TABLES_BY_NAME, TableContract

_TEMPLATE = "registry/export_changes_for_table.sql"


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


def build_export_changes(con: duckdb.DuckDBPyConnection) -> int:
    """(Re)build registry.export_changes in one transaction; returns its row count."""
    union = "\nUNION ALL\n".join(f"({table_changes_sql(table)})" for table in TABLES)
    with transaction(con):
        con.execute(f"CREATE OR REPLACE TABLE registry.export_changes AS SELECT * FROM ({union}) ORDER BY ALL")
    return scalar(con, "SELECT count(*) FROM registry.export_changes")
