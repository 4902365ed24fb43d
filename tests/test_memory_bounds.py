"""The pipeline's memory budget: DuckDB's memory limit and threads come from the working store resource (or
the environment), and Great Expectations is handed bounded parts of a table, never the whole of it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from ketreg.quality import expectations
from ketreg.warehouse.connection import DEFAULT_MEMORY_LIMIT
from pipelines.connections import WorkingStore


def _setting(con: duckdb.DuckDBPyConnection, name: str) -> str:
    return str(con.execute(f"SELECT current_setting('{name}')").fetchall()[0][0])


def _store(tmp_path: Path, memory_limit: str = "", threads: int = 0) -> WorkingStore:
    return WorkingStore.beside(tmp_path / "registry.duckdb", memory_limit=memory_limit, threads=threads)


def _in_mib(limit: str) -> float:
    """DuckDB reports its limit in its own units ("476.8 MiB", "1.8 GiB")."""
    number, unit = limit.split()
    return float(number) * {"KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0}[unit]


def test_the_memory_limit_and_threads_of_the_working_store_reach_duckdb(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KETREG_DUCKDB_MEMORY_LIMIT", "2GB")  # the resource's fields win over the environment
    with _store(tmp_path, memory_limit="500MB", threads=1).connect() as con:
        assert _in_mib(_setting(con, "memory_limit")) == pytest.approx(500e6 / 2**20, rel=0.01)
        assert _setting(con, "threads") == "1"


def test_without_fields_the_environment_then_the_default_budget_applies(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KETREG_DUCKDB_MEMORY_LIMIT", "300MB")
    monkeypatch.setenv("KETREG_DUCKDB_THREADS", "1")
    with _store(tmp_path).connect() as con:
        assert _in_mib(_setting(con, "memory_limit")) == pytest.approx(300e6 / 2**20, rel=0.01)
        assert _setting(con, "threads") == "1"
    monkeypatch.delenv("KETREG_DUCKDB_MEMORY_LIMIT")
    monkeypatch.delenv("KETREG_DUCKDB_THREADS")
    budget = duckdb.connect()
    budget.execute("SET memory_limit = ?", [DEFAULT_MEMORY_LIMIT])
    with _store(tmp_path).connect() as con:
        assert _setting(con, "memory_limit") == _setting(budget, "memory_limit")
        assert _setting(con, "threads") == _setting(budget, "threads")  # DuckDB's own: one per core


def test_great_expectations_gets_whole_sites_in_parts_of_at_most_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(expectations, "MAX_ROWS_PER_VALIDATION", 10)
    con = duckdb.connect()
    con.execute("CREATE SCHEMA registry")
    sizes = {"site_a": 4, "site_b": 6, "site_c": 3, "site_d": 12, "site_e": 2}
    con.execute("CREATE TABLE registry.assessments AS SELECT site_id FROM (SELECT unnest($sites) AS site_id, "
                "unnest($rows) AS n), range(n)", {"sites": list(sizes), "rows": list(sizes.values())})
    parts = expectations._site_parts(con, "assessments")
    assert sorted(site for part in parts for site in part) == sorted(sizes)  # every site, once
    for part in parts:
        rows = sum(sizes[site] for site in part)
        assert rows <= 10 or len(part) == 1  # only a site larger than the bound stands alone above it
    assert parts == [["site_a", "site_b"], ["site_c"], ["site_d"], ["site_e"]]
