"""The working store's private schema `site_private`: what only the site that sent it may see again (its
quarantined rows with their ids and raw values, the messages about its exports, the names of the columns that
were not read). Built by `sql/site_private/`; `publish` never copies this schema to the analysts' file."""

from __future__ import annotations

import duckdb

from ketreg.warehouse.connection import run_sql_file, scalar
from ketreg.warehouse.transaction import transaction

SCHEMA = "site_private"
# Built after registry.exports (they carry its is_current flag), each by sql/site_private/<name>.sql.
SITE_PRIVATE_TABLES = ("exports", "file_columns", "quarantine")


def build_site_private_table(con: duckdb.DuckDBPyConnection, name: str) -> int:
    """(Re)build `site_private.<name>` inside one transaction; returns its row count."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    with transaction(con):
        run_sql_file(con, f"{SCHEMA}/{name}.sql")
    return scalar(con, f"SELECT count(*) FROM {SCHEMA}.{name}")
