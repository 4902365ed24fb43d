"""Dagster's standard metadata for a DuckDB table (`dagster/row_count`, `dagster/column_schema`), so the UI shows
row counts and columns the same way for every layer."""

from __future__ import annotations

import dagster as dg
import duckdb

from ketreg.warehouse.connection import scalar

# The values a materialization's metadata takes here. Dagster's own alias (RawMetadataValue) is not exported; this
# is the part of it the assets use, so the type checker sees what MaterializeResult accepts.
MetadataEntry = dg.MetadataValue | dg.TableSchema | str | int | float | None
AssetMetadata = dict[str, MetadataEntry]


def table_metadata(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> AssetMetadata:
    """Row count and column schema (names and DuckDB types) of `schema.table` in the working database."""
    columns = con.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_schema = $schema AND table_name = $table "
        "ORDER BY ordinal_position",
        {"schema": schema, "table": table},
    ).fetchall()
    return {
        "dagster/row_count": scalar(con, f"SELECT count(*) FROM {schema}.{table}"),
        "dagster/column_schema": dg.TableSchema(columns=[
            dg.TableColumn(name, data_type, constraints=dg.TableColumnConstraints(nullable=nullable == "YES"))
            for name, data_type, nullable in columns
        ]),
        "dagster/table_name": f"{schema}.{table}",
    }
