"""The working store's record of what each run built from which inputs (`incremental.*`), and the rule that
lets a run skip a step: the inputs fingerprint equals the one of the run that published the analysts' file,
that file is still the one it published (its SHA-256), and the step's last result was made from the same
inputs. A skipped step's outputs are carried forward with the run that made them (their run of origin)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ketreg.landing.discovery import file_sha256
from ketreg.warehouse.sql_files import run_sql_file

SCHEMA = "incremental"  # also named in sql/incremental/*.sql, which create its tables


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    inputs_fingerprint: str
    # The run whose published registry this run leaves as it is, or None when something changed.
    unchanged_since: str | None


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[Sequence[object]]) -> None:
    """Insert `rows` (each with every column of `table`, in order) in one statement: DuckDB's `executemany`
    runs one statement per row, ~3 ms each (measured), which at 100 sites made the per-site records of a
    one-site run cost seconds."""
    if not rows:
        return
    columns = {f"column_{i}": list(values) for i, values in enumerate(zip(*rows, strict=True))}
    con.execute(f"INSERT INTO {table} SELECT {', '.join(f'unnest(${name})' for name in columns)}", columns)


def _ensure(con: duckdb.DuckDBPyConnection) -> None:
    run_sql_file(con, "incremental/ledger.sql")


def run_plan(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    fingerprint: Callable[[], tuple[str, dict[str, str]]],
    analyst_db: Path,
    force: bool = False,
) -> RunPlan:
    """This run's plan, made once (by its first step that asks) and kept in `incremental.run_plans`.
    `fingerprint` computes the inputs fingerprint and its parts; `force` (a re-keying run) plans a rebuild."""
    _ensure(con)
    found = con.execute(
        f"SELECT inputs_fingerprint, unchanged_since FROM {SCHEMA}.run_plans WHERE run_id = ?", [run_id]
    ).fetchall()
    if found:
        return RunPlan(run_id, found[0][0], found[0][1])
    inputs, parts = fingerprint()
    last = con.execute(
        f"SELECT run_id, inputs_fingerprint, file_sha256 FROM {SCHEMA}.publications "
        "ORDER BY published_at DESC LIMIT 1"
    ).fetchall()
    unchanged_since = None
    if last and not force and last[0][1] == inputs and analyst_db.is_file() and file_sha256(analyst_db) == last[0][2]:
        unchanged_since = last[0][0]
    con.execute(
        f"INSERT INTO {SCHEMA}.run_plans VALUES (?, ?, ?, ?, ?)",
        [run_id, inputs, json.dumps(parts, sort_keys=True), unchanged_since, dt.datetime.now(dt.UTC)],
    )
    return RunPlan(run_id, inputs, unchanged_since)


# Parts of the inputs fingerprint that every registry row depends on, whatever its site (the rest are the
# exports, per site, and what only the checks, reports or publish read).
SHARED_PARTS = ("code", "protocol_file", "limits", "site_mappings", "pseudonym_key")


def shared_digest(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    """Digest of this run's SHARED_PARTS (its plan must exist): a change rebuilds registry tables whole."""
    (parts,) = con.execute(f"SELECT input_parts FROM {SCHEMA}.run_plans WHERE run_id = ?", [run_id]).fetchall()[0]
    loaded = json.loads(parts)
    return ":".join(loaded.get(name, "") for name in SHARED_PARTS)


def carried_from(con: duckdb.DuckDBPyConnection, plan: RunPlan, asset_key: str) -> str | None:
    """The run of origin of `asset_key`'s current result when this run may skip it, else None."""
    if plan.unchanged_since is None:
        return None
    last = con.execute(
        f"SELECT inputs_fingerprint, origin_run_id FROM {SCHEMA}.asset_runs "
        "WHERE asset_key = ? AND run_id <> ? ORDER BY recorded_at DESC LIMIT 1",
        [asset_key, plan.run_id],
    ).fetchall()
    return last[0][1] if last and last[0][0] == plan.inputs_fingerprint else None


def record_asset_run(
    con: duckdb.DuckDBPyConnection, plan: RunPlan, asset_key: str, origin_run_id: str | None = None
) -> None:
    """Note that this run built `asset_key` (origin None) or carried it forward from `origin_run_id`."""
    _ensure(con)
    con.execute(
        f"INSERT INTO {SCHEMA}.asset_runs VALUES (?, ?, ?, ?, ?, ?)",
        [plan.run_id, asset_key, plan.inputs_fingerprint, origin_run_id is not None,
         origin_run_id or plan.run_id, dt.datetime.now(dt.UTC)],
    )


def record_publication(con: duckdb.DuckDBPyConnection, plan: RunPlan, analyst_db: Path) -> None:
    """Note the analysts' file this run published (its SHA-256), made from this run's inputs."""
    _ensure(con)
    con.execute(
        f"INSERT INTO {SCHEMA}.publications VALUES (?, ?, ?, ?)",
        [plan.run_id, plan.inputs_fingerprint, file_sha256(analyst_db), dt.datetime.now(dt.UTC)],
    )


def origin_run(con: duckdb.DuckDBPyConnection, run_id: str, asset_key: str) -> str:
    """The run whose result of `asset_key` stands in run `run_id`: `run_id` itself unless it carried the
    result forward from an earlier run."""
    try:
        found = con.execute(
            f"SELECT origin_run_id FROM {SCHEMA}.asset_runs WHERE run_id = ? AND asset_key = ? "
            "ORDER BY recorded_at DESC LIMIT 1",
            [run_id, asset_key],
        ).fetchall()
    except duckdb.CatalogException:
        return run_id
    return found[0][0] if found else run_id


def unchanged_since(work_db: Path, run_id: str) -> str | None:
    """For a finished run: the run whose registry it left as published, or None (read-only)."""
    if not work_db.is_file():
        return None
    con = duckdb.connect(str(work_db), read_only=True)
    try:
        found = con.execute(f"SELECT unchanged_since FROM {SCHEMA}.run_plans WHERE run_id = ?", [run_id]).fetchall()
    except duckdb.CatalogException:
        return None
    finally:
        con.close()
    return found[0][0] if found else None
