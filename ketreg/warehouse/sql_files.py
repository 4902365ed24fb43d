"""The SQL files of `sql/` (package data): read them, run them with bound parameters, and name a varying table
safely.

One parameter style: values are DuckDB parameters (`$name`), bound by the driver. Identifiers cannot be
parameters in SQL; where a file's table or column must vary, `{name}` marks the place and `render_sql` fills it
with an identifier (or a name as text) from a whitelist (the contract's own names), quoted — never with text from
data or config."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import duckdb

from ketreg.package_data import SQL_PACKAGE, package_folder

SQL_DIR: Path = package_folder(SQL_PACKAGE)
_PLAIN_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
_SLOT = re.compile(r"\{(\w+)\}")


def sql_path(relative: str) -> Path:
    """`sql/<relative>` as a file path (for code references in the Dagster UI)."""
    return SQL_DIR / relative


def sql_text(relative: str) -> str:
    """The text of `sql/<relative>`."""
    return sql_path(relative).read_text(encoding="utf-8")


def run_sql_file(
    con: duckdb.DuckDBPyConnection, relative: str, parameters: Mapping[str, Any] | None = None
) -> None:
    """Execute one SQL file; `$name` placeholders are bound from `parameters` (only those it uses)."""
    text = sql_text(relative)
    used = {name: value for name, value in (parameters or {}).items() if f"${name}" in text}
    con.execute(text, used) if used else con.execute(text)


def identifier(name: str, allowed: Collection[str]) -> str:
    """`name` as a quoted SQL identifier, if it is one of `allowed` (e.g. the contract's table names) and a plain
    lower-case name; anything else is a programming error, never something to quote around."""
    if name not in allowed or not _PLAIN_IDENTIFIER.fullmatch(name):
        raise ValueError(f"{name!r} is not an allowed SQL identifier (allowed: {', '.join(sorted(allowed))})")
    return f'"{name}"'


def text_literal(value: str, allowed: Collection[str]) -> str:
    """`value` as a SQL string literal, if it is one of `allowed` (a contract's file or column names)."""
    if value not in allowed or "'" in value:
        raise ValueError(f"{value!r} is not an allowed SQL text (allowed: {', '.join(sorted(allowed))})")
    return f"'{value}'"


def render_sql(text: str, fragments: Mapping[str, str]) -> str:
    """Fill the `{slot}`s of a SQL template with `fragments` built from `identifier(...)`. Every slot must be
    filled and every fragment used, so a typo in either fails here, not as odd SQL."""
    slots = set(_SLOT.findall(text))
    if slots != set(fragments):
        raise ValueError(f"SQL template slots {sorted(slots)} do not match the fragments given {sorted(fragments)}")
    return _SLOT.sub(lambda match: fragments[match.group(1)], text)
