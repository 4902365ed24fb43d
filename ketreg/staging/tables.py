"""DuckDB tables of the staging layer. Column types come from the contract's Pandera models."""

from __future__ import annotations

import duckdb
import polars as pl

from ketreg.warehouse.sql_files import run_sql_file
from schemas.tables import TABLES

_DUCKDB_TYPES = {
    pl.String: "VARCHAR",
    pl.Int64: "BIGINT",
    pl.Float64: "DOUBLE",
    pl.Boolean: "BOOLEAN",
    pl.Date: "DATE",
    pl.Datetime: "TIMESTAMP",
}

LINEAGE_DDL = "site_id VARCHAR NOT NULL, export_id VARCHAR NOT NULL, source_line BIGINT NOT NULL"

def duckdb_type(dtype: pl.DataType) -> str:
    base = dtype.base_type()
    return _DUCKDB_TYPES[base]


def ensure_staging_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the staging schema once; its row tables mirror the contract's typed columns."""
    run_sql_file(con, "staging/bookkeeping.sql")  # the schema, and the tables that are not the contract's
    for table in TABLES:
        columns = ", ".join(f"{c} {duckdb_type(table.polars_type(c))}" for c in table.columns)
        con.execute(f"CREATE TABLE IF NOT EXISTS staging.{table.name} ({LINEAGE_DDL}, {columns})")


STAGED_TABLES = (*tuple(table.name for table in TABLES), "quarantine", "file_counts", "exports")
