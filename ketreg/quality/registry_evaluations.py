"""The registry checks' outcomes as the check step evaluated them (`quality.registry_check_evaluations`), so
the quality history records what the checks saw in this run without running their SQL again."""

from __future__ import annotations

from typing import NamedTuple

import duckdb

from ketreg.warehouse.connection import run_sql_file
from ketreg.warehouse.transaction import transaction


class EvaluationRow(NamedTuple):
    table_name: str
    check_name: str
    numerator: int
    denominator: int
    violations_sql: str


def record_evaluations(con: duckdb.DuckDBPyConnection, run_id: str, rows: list[EvaluationRow]) -> None:
    """Replace the evaluations of these checks with this run's (one transaction)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS quality")
    with transaction(con):
        run_sql_file(con, "quality/registry_check_evaluations.sql")
        con.executemany(
            "INSERT OR REPLACE INTO quality.registry_check_evaluations VALUES (?, ?, ?, ?, ?, ?)",
            [[run_id, *row] for row in rows],
        )


def run_evaluations(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[tuple[str, str], EvaluationRow]:
    """The checks evaluated in run `run_id`, by (table, check name); empty when it ran none."""
    try:
        found = con.execute(
            "SELECT table_name, check_name, numerator, denominator, violations_sql "
            "FROM quality.registry_check_evaluations WHERE run_id = ?",
            [run_id],
        ).fetchall()
    except duckdb.CatalogException:
        return {}
    return {(row[0], row[1]): EvaluationRow(*row) for row in found}
