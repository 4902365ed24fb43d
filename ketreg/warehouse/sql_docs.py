"""The header comment of a SQL file: what the table means in the clinic, written once beside the SQL and shown
wherever the table is described (Dagster asset descriptions)."""

from __future__ import annotations

from ketreg.warehouse.sql_files import sql_text


def sql_header(relative: str) -> str:
    """The leading `--` comment lines of `sql/<relative>`, line breaks and indentation kept ("" when it has
    none): a header with a list of definitions reads as its author wrote it."""
    lines = []
    for line in sql_text(relative).splitlines():
        if not line.startswith("--"):
            break
        lines.append(line.removeprefix("--").removeprefix(" ").rstrip())
    return "\n".join(lines).strip()
