"""registry.export_changes: for each site, what its newest export changed against the previous one
(rows added, removed and changed per file, and which columns changed), so a data manager sees at a glance
when a site's export suddenly loses half its rows. Column lists come from the contract."""

from __future__ import annotations

import duckdb

from ketreg.warehouse.connection import scalar, sql_text
from schemas.tables import TABLES, TableContract

_TEMPLATE = "registry/export_changes_for_table.sql"


def _record_id(table: TableContract) -> str:
    if table.record_id:
        return f"t.{table.record_id}"
    # A disposition has no id of its own: the patient, the date and the status identify it.
    return "concat_ws('/', t.patient_id, t.event_date, t.status)"


def table_changes_sql(table: TableContract) -> str:
    """The SELECT that summarises one file's changes between each site's two newest accepted exports."""
    compared = [c for c in table.columns if c != table.record_id]
    changed = ", ".join(f"CASE WHEN cur.{c} IS DISTINCT FROM prev.{c} THEN '{c}' END" for c in compared)
    return (
        sql_text(_TEMPLATE)
        .replace("{table}", table.name)
        .replace("{record_id}", _record_id(table))
        .replace("{changed_columns}", changed)
    )


def build_export_changes(con: duckdb.DuckDBPyConnection) -> int:
    """(Re)build registry.export_changes in one transaction; returns its row count."""
    union = "\nUNION ALL\n".join(f"({table_changes_sql(table)})" for table in TABLES)
    con.begin()
    try:
        con.execute(f"CREATE OR REPLACE TABLE registry.export_changes AS SELECT * FROM ({union}) ORDER BY ALL")
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return scalar(con, "SELECT count(*) FROM registry.export_changes")
