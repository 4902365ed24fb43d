"""Publish the analysts' database: built aside, then renamed into place, so a reader never sees a
half-written registry and a run never waits on an analyst's open session."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from ketreg.registry.data_dictionary import comment_published_tables, protocol_of, write_data_package
from ketreg.warehouse.connection import scalar
from ketreg.warehouse.file_modes import share

# Working-database schema → schema of the analysts' file. Registry tables sit in the analysts' main schema
# (`FROM patients`); everything derived from them keeps its own schema (`FROM metrics.registry_metrics`).
PUBLISHED_SCHEMAS = {"registry": "main", "metrics": "metrics"}
# Written in the 1.4 storage format so analysts' tools still on DuckDB 1.4 (R, DBeaver) can open it.
ANALYST_STORAGE_VERSION = "v1.4.0"


def published_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(schema, table) of every working-database table that analysts get."""
    return con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name IN (SELECT unnest($schemas)) ORDER BY ALL",
        {"schemas": list(PUBLISHED_SCHEMAS)},
    ).fetchall()


def data_package_path(analyst_db: Path) -> Path:
    """Where the published file's data dictionary sits: `registry.duckdb` → `registry.datapackage.json`."""
    return analyst_db.with_name(f"{analyst_db.stem}.datapackage.json")


def publish(con: duckdb.DuckDBPyConnection, analyst_db: Path) -> dict[str, int]:
    """Copy the published schemas of the working database into a fresh file, with the column docs as
    comments, and atomically replace `analyst_db` with it; its data dictionary (Frictionless Data Package)
    follows beside it. Returns the row count of each published table (`metrics.x` outside main)."""
    analyst_db.parent.mkdir(parents=True, exist_ok=True)
    staging_file = analyst_db.with_name(f".{analyst_db.name}.publishing")
    for leftover in (staging_file, *(staging_file.with_name(staging_file.name + end) for end in (".wal", ".json"))):
        leftover.unlink(missing_ok=True)
    tables = published_tables(con)
    con.execute(f"ATTACH '{staging_file}' AS snapshot (STORAGE_VERSION '{ANALYST_STORAGE_VERSION}')")
    counts: dict[str, int] = {}
    try:
        for schema, table in tables:
            target = PUBLISHED_SCHEMAS[schema]
            con.execute(f"CREATE SCHEMA IF NOT EXISTS snapshot.{target}")
            con.execute(f"CREATE TABLE snapshot.{target}.{table} AS SELECT * FROM {schema}.{table}")
            name = table if target == "main" else f"{target}.{table}"
            counts[name] = scalar(con, f"SELECT count(*) FROM snapshot.{target}.{table}")
        comment_published_tables(
            con, "snapshot", [(schema, table, PUBLISHED_SCHEMAS[schema]) for schema, table in tables],
            protocol_of(con, "registry.protocol"),
        )
        con.execute("CHECKPOINT snapshot")
    finally:
        con.execute("DETACH snapshot")
    share(staging_file)  # written under the working store's private umask; analysts must read it
    package = write_data_package(staging_file, staging_file.with_name(f"{staging_file.name}.json"),
                                 path=analyst_db.name)
    share(package)
    os.replace(staging_file, analyst_db)
    os.replace(package, data_package_path(analyst_db))
    return counts
