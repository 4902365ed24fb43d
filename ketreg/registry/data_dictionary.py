"""The column docs (schemas/columns/) written into what analysts receive: `COMMENT ON TABLE/COLUMN` in the
published DuckDB file, and a Frictionless Data Package (`datapackage.json`, Table Schema per table) beside the
published file and in every release. Types come from the file itself, constraints from the contract and the
protocol the registry was built with (its `protocol` table), so the dictionary describes the data it sits by."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb

from schemas.column_docs import TableDoc, column_comment, load_table_docs, table_comment
from schemas.protocol import Protocol, load_protocol

DATA_PACKAGE_FILE = "datapackage.json"
DATA_PACKAGE_PROFILE = "https://datapackage.org/profiles/2.0/datapackage.json"
TABLE_SCHEMA_PROFILE = "https://datapackage.org/profiles/2.0/tableschema.json"
# DuckDB type → Table Schema field type (https://datapackage.org/standard/table-schema/#field-types).
_FIELD_TYPES = {
    "VARCHAR": "string", "BOOLEAN": "boolean", "DATE": "date", "TIME": "time",
    "TIMESTAMP": "datetime", "TIMESTAMP WITH TIME ZONE": "datetime",
    "TINYINT": "integer", "SMALLINT": "integer", "INTEGER": "integer", "BIGINT": "integer", "HUGEINT": "integer",
    "UTINYINT": "integer", "USMALLINT": "integer", "UINTEGER": "integer", "UBIGINT": "integer",
    "FLOAT": "number", "DOUBLE": "number",
}


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def field_type(duckdb_type: str) -> str:
    """The Table Schema type of a DuckDB column type (lists are arrays; unknown types `any`)."""
    if duckdb_type.endswith("[]"):
        return "array"
    if duckdb_type.startswith("DECIMAL"):
        return "number"
    return _FIELD_TYPES.get(duckdb_type, "any")


def protocol_of(con: duckdb.DuckDBPyConnection, table: str) -> Protocol:
    """The protocol a registry was built with, from its one-row protocol table (the default protocol file
    when the table is absent or empty)."""
    try:
        frame = con.execute(f"SELECT * FROM {table}").fetchall()
        names = [column[0] for column in con.description]
    except duckdb.CatalogException:
        return load_protocol()
    return Protocol(**dict(zip(names, frame[0], strict=True))) if frame else load_protocol()


def _docs_for(schema: str, table: str) -> TableDoc | None:
    return load_table_docs().get(f"{schema}.{table}")


def comment_published_tables(con: duckdb.DuckDBPyConnection, catalog: str,
                             tables: list[tuple[str, str, str]], protocol: Protocol) -> None:
    """`COMMENT ON` every documented table and column of `catalog`; `tables` holds (working schema, table,
    published schema). An undocumented column keeps no comment (tests/test_column_docs.py fails on it)."""
    for schema, table, target in tables:
        doc = _docs_for(schema, table)
        if doc is None:
            continue
        con.execute(f"COMMENT ON TABLE {catalog}.{target}.{table} IS {_quoted(table_comment(doc))}")
        present = {row[0] for row in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND schema_name = ? AND table_name = ?",
            [catalog, target, table],
        ).fetchall()}
        for column in doc.columns:
            if column in present:
                text = column_comment(doc, column, protocol)
                con.execute(f"COMMENT ON COLUMN {catalog}.{target}.{table}.{column} IS {_quoted(text)}")


def table_schema(doc: TableDoc | None, columns: list[tuple[str, str]], protocol: Protocol) -> dict[str, object]:
    """The Frictionless Table Schema of one table: `columns` are (name, DuckDB type) in file order."""
    fields: list[dict[str, object]] = []
    for name, duckdb_type in columns:
        field: dict[str, object] = {"name": name, "type": field_type(duckdb_type)}
        if doc is not None and name in doc.columns:
            column = doc.columns[name]
            field["description"] = column.description
            if column.unit:
                field["unit"] = column.unit  # not in the standard; Table Schema allows extra properties
            constraints = doc.constraints(name, protocol)
            if constraints:
                field["constraints"] = constraints
        fields.append(field)
    schema: dict[str, object] = {"$schema": TABLE_SCHEMA_PROFILE, "fields": fields}
    if doc is not None and doc.primary_key:
        schema["primaryKey"] = list(doc.primary_key)
    return schema


def data_package(database: Path, name: str = "ketreg-registry", path: str | None = None) -> dict[str, object]:
    """The Data Package describing every table of the analysts' DuckDB file `database` (read-only); its
    resources point at `path` (the file's name by default), relative to where the descriptor is written."""
    path = path or database.name
    con = duckdb.connect(str(database), read_only=True)
    try:
        protocol = protocol_of(con, "main.protocol")
        rows = con.execute(
            "SELECT schema_name, table_name, list((column_name, data_type) ORDER BY column_index) "
            "FROM duckdb_columns() WHERE database_name = current_database() AND NOT internal "
            "GROUP BY schema_name, table_name ORDER BY schema_name <> 'main', schema_name, table_name"
        ).fetchall()
    finally:
        con.close()
    resources: list[dict[str, object]] = []
    for schema, table, columns in rows:
        doc = _docs_for("registry" if schema == "main" else schema, table)
        qualified = table if schema == "main" else f"{schema}.{table}"
        resource: dict[str, object] = {
            "name": qualified, "type": "table", "path": path, "format": "duckdb",
            "mediatype": "application/vnd.duckdb", "dialect": {"table": qualified},
        }
        if doc is not None:
            resource["description"] = doc.description
        resource["schema"] = table_schema(doc, [(c[0], c[1]) for c in columns], protocol)
        resources.append(resource)
    return {
        "$schema": DATA_PACKAGE_PROFILE,
        "name": name,
        "title": "ketreg registry: harmonised, validated and pseudonymised ketamine infusion outcomes",
        "description": f"Data dictionary of {path}, generated from schemas/columns/ and the contract "
                       f"with protocol {protocol.name} version {protocol.version}.",
        "resources": resources,
    }


def write_data_package(database: Path, target: Path, name: str = "ketreg-registry", path: str | None = None) -> Path:
    """Write `database`'s Data Package to `target` by rename, so a reader never sees half of it."""
    text = json.dumps(data_package(database, name, path), indent=2, ensure_ascii=False, default=str) + "\n"
    partial = target.with_name(f".{target.name}.writing")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)
    return target
