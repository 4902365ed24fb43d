"""Publishing after some sites changed (ketreg/registry/publish.py): the last published file is patched with
only those sites' rows and renamed into place, holding exactly what a fresh publish holds; anything it cannot
vouch for (a published file replaced behind its back) is published afresh. Real DuckDB files from a real run."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from check_support import clean_two_site_run
from support import RegistryRun

from ketreg.registry.publish import publish_changes
from ketreg.registry.release import table_fingerprints


def _digests(path: Path) -> dict[str, dict[str, object]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return table_fingerprints(con)
    finally:
        con.close()


def _storage_version(path: Path) -> str:
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{path}' AS published (READ_ONLY)")
        return con.execute("SELECT tags['storage_version'] FROM duckdb_databases() "
                           "WHERE database_name = 'published'").fetchall()[0][0]
    finally:
        con.close()


@pytest.fixture
def copies(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> tuple[Path, Path]:
    """Copies of a run's working store and the analysts' file it published (the originals stay as they were)."""
    run: RegistryRun = clean_two_site_run(tmp_path_factory)
    work_db, analyst_db = tmp_path / "registry_work.duckdb", tmp_path / "analysts" / "registry.duckdb"
    analyst_db.parent.mkdir()
    shutil.copy(run.work_db, work_db)
    shutil.copy(run.analyst_db, analyst_db)
    return work_db, analyst_db


def test_one_changed_site_is_patched_into_the_last_file_and_equals_a_fresh_publish(
    copies: tuple[Path, Path], tmp_path: Path
) -> None:
    work_db, analyst_db = copies
    con = duckdb.connect(str(work_db))
    try:
        assert publish_changes(con, analyst_db).sites_replaced == []  # nothing changed since the run published
        published_rows = _digests(analyst_db)["assessments"]["rows"]
        site = con.execute("SELECT min(site_id) FROM registry.patients").fetchall()[0][0]
        # The site's rows change as a per-site rebuild changes them: rows and their record in one go.
        con.execute("DELETE FROM registry.assessments WHERE site_id = ? AND rowid IN "
                    "(SELECT min(rowid) FROM registry.assessments WHERE site_id = ?)", [site, site])
        con.execute("UPDATE incremental.table_sites SET exports_digest = 'a new export' "
                    "WHERE site_id = ? AND table_name = 'registry.assessments'", [site])
        assert publish_changes(con, analyst_db).sites_replaced == [site]
        patched = _digests(analyst_db)
        fresh = tmp_path / "fresh" / "registry.duckdb"
        assert publish_changes(con, fresh).sites_replaced is None
    finally:
        con.close()
    assert patched == _digests(fresh)
    assert patched["assessments"]["rows"] == published_rows - 1  # type: ignore[operator]
    assert _storage_version(analyst_db) == _storage_version(fresh)


def test_a_published_file_replaced_behind_the_pipelines_back_is_published_afresh(copies: tuple[Path, Path]) -> None:
    work_db, analyst_db = copies
    con = duckdb.connect(str(work_db))
    try:
        before = _digests(analyst_db)
        # Someone's own table in the analysts' file: the file is no longer the one the run published.
        other = duckdb.connect(str(analyst_db))
        other.execute("CREATE TABLE my_notes AS SELECT 1 AS n")
        other.close()
        assert publish_changes(con, analyst_db).sites_replaced is None
        assert _digests(analyst_db) == before  # written afresh: the stray table is gone, the rows are the same
        # A working table changed without its per-site record: the patched copy's counts differ, so afresh.
        con.execute("DELETE FROM registry.patients WHERE rowid = (SELECT min(rowid) FROM registry.patients)")
        assert publish_changes(con, analyst_db).sites_replaced is None
        assert _digests(analyst_db)["patients"]["rows"] == before["patients"]["rows"] - 1
    finally:
        con.close()
