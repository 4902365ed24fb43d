"""DuckDB tables of the staging layer. Column types come from the contract's Pandera models."""

from __future__ import annotations

import duckdb
import polars as pl

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

BOOKKEEPING_DDL = (
    # Which exports are staged, from which content, and whether they were usable.
    """CREATE TABLE IF NOT EXISTS staging.exports (
        site_id VARCHAR NOT NULL, export_id VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL,
        status VARCHAR NOT NULL, rejection_reason VARCHAR, notices VARCHAR[],
        PRIMARY KEY (site_id, export_id))""",
    # Conservation per file: every row read is accepted or quarantined.
    """CREATE TABLE IF NOT EXISTS staging.file_counts (
        site_id VARCHAR NOT NULL, export_id VARCHAR NOT NULL, file_name VARCHAR NOT NULL, file_sha256 VARCHAR,
        rows_read BIGINT NOT NULL, rows_accepted BIGINT NOT NULL, rows_quarantined BIGINT NOT NULL,
        identifier_columns_dropped VARCHAR[], ignored_columns VARCHAR[])""",
    """CREATE TABLE IF NOT EXISTS staging.quarantine (
        site_id VARCHAR NOT NULL, export_id VARCHAR NOT NULL, file_name VARCHAR NOT NULL,
        source_line BIGINT NOT NULL, record_id VARCHAR, raw_values VARCHAR,
        reasons STRUCT("column" VARCHAR, rule VARCHAR, message VARCHAR)[])""",
)


def duckdb_type(dtype: pl.DataType) -> str:
    base = dtype.base_type() if hasattr(dtype, "base_type") else dtype
    return _DUCKDB_TYPES[base]


def ensure_staging_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the staging schema once; its row tables mirror the contract's typed columns."""
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    for table in TABLES:
        columns = ", ".join(f"{c} {duckdb_type(table.polars_type(c))}" for c in table.columns)
        con.execute(f"CREATE TABLE IF NOT EXISTS staging.{table.name} ({LINEAGE_DDL}, {columns})")
    for ddl in BOOKKEEPING_DDL:
        con.execute(ddl)


STAGED_TABLES = (*tuple(table.name for table in TABLES), "quarantine", "file_counts", "exports")
