"""Publish the analysts' database: built aside, then renamed into place, so a reader never sees a
half-written registry and a run never waits on an analyst's open session."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from ketreg.registry.build import REGISTRY_TABLES

PUBLISHED_TABLES = (*REGISTRY_TABLES, "ae_term_categories", "protocol")
ANALYST_STORAGE_VERSION = "v1.4.0"


def publish(con: duckdb.DuckDBPyConnection, analyst_db: Path) -> dict[str, int]:
    """Copy the registry schema of the working database into a fresh file and atomically replace
    `analyst_db` with it. Returns the row count of each published table."""
    analyst_db.parent.mkdir(parents=True, exist_ok=True)
    staging_file = analyst_db.with_name(f".{analyst_db.name}.publishing")
    for leftover in (staging_file, staging_file.with_name(staging_file.name + ".wal")):
        leftover.unlink(missing_ok=True)
    # Written in the 1.4 storage format so analysts' tools still on DuckDB 1.4 (R, DBeaver) can open it.
    con.execute(f"ATTACH '{staging_file}' AS snapshot (STORAGE_VERSION '{ANALYST_STORAGE_VERSION}')")
    counts: dict[str, int] = {}
    try:
        for table in PUBLISHED_TABLES:
            con.execute(f"CREATE TABLE snapshot.main.{table} AS SELECT * FROM registry.{table}")
            counts[table] = con.execute(f"SELECT count(*) FROM snapshot.main.{table}").fetchone()[0]
        con.execute("CHECKPOINT snapshot")
    finally:
        con.execute("DETACH snapshot")
    os.replace(staging_file, analyst_db)
    return counts
