"""The history of check results (`quality.check_results`) and the comparison of the newest run with the one
before it (`quality.check_changes`)."""

from __future__ import annotations

import datetime as dt

import duckdb

from ketreg.quality.results import RESULT_COLUMNS, CheckResult, results_frame
from ketreg.warehouse.connection import run_sql_file
from ketreg.warehouse.transaction import transaction


def record_run(con: duckdb.DuckDBPyConnection, run_id: str, run_at: dt.datetime, results: list[CheckResult]) -> int:
    """Add this run's results to the history (replacing them if the run is recorded again), then rebuild the
    run-over-run comparison; one transaction. Returns the number of results recorded."""
    frame = results_frame(results)
    con.execute("CREATE SCHEMA IF NOT EXISTS quality")
    with transaction(con):
        run_sql_file(con, "quality/check_results.sql")
        con.execute("DELETE FROM quality.check_results WHERE run_id = ?", [run_id])
        con.register("_results", frame)
        try:
            columns = ", ".join(RESULT_COLUMNS)
            values = ", ".join(f"coalesce({c}, $run_id)" if c == "origin_run_id" else c for c in RESULT_COLUMNS)
            con.execute(
                f"INSERT INTO quality.check_results (run_id, run_at, {columns}) "
                f"SELECT $run_id, $run_at, {values} FROM _results",
                {"run_id": run_id, "run_at": run_at},
            )
        finally:
            con.unregister("_results")
        run_sql_file(con, "quality/check_changes.sql")
    return len(results)
