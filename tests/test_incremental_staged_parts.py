"""Per-site hashes of a staged table, hashed again only for the sites that may have changed
(ketreg/incremental/staged_parts.py): after every kind of change to the stored rows (an export appended, an
export replaced by one with a single value changed, a row deleted, a value updated, a site gone, a site new,
with and without a checkpoint in between) they equal a hash of the whole table, and an append for one site
leaves the sites of the row groups it did not touch unhashed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from ketreg.incremental.staged_parts import table_parts
from ketreg.warehouse.sql_files import run_sql_file

# Site ids longer than DuckDB keeps of a string in its zone maps, sharing that prefix: the ranges are cut.
SITES = [f"site_long_prefix_{n:02d}" for n in range(6)]
ROWS_PER_EXPORT = 40_000  # a few row groups per site (122,880 rows each)


def _whole(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, int]]:
    rows = con.execute(
        "SELECT site_id, count(*), sum(hash(t)::HUGEINT) FROM staging.assessments AS t GROUP BY site_id"
    ).fetchall()
    return sorted((site, count, int(total)) for site, count, total in rows)


def _append(con: duckdb.DuckDBPyConnection, site: str, export_id: str, nprs_shift: int = 0) -> None:
    con.execute(
        "INSERT INTO staging.assessments SELECT ?, ?, i, (i + ?) % 11, 'visit_' || (i % 7) "
        "FROM range(?) AS r (i)", [site, export_id, nprs_shift, ROWS_PER_EXPORT],
    )


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(tmp_path / "work.duckdb"))
    run_sql_file(connection, "incremental/site_digests.sql")
    connection.execute("CREATE SCHEMA staging")
    connection.execute(
        "CREATE TABLE staging.assessments (site_id VARCHAR, export_id VARCHAR, source_line BIGINT, nprs INTEGER, "
        "timepoint VARCHAR)"
    )
    for site in SITES:
        _append(connection, site, "2026-10-01")
    connection.execute("CHECKPOINT")
    return connection


def _replace_export_with_one_value_changed(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DELETE FROM staging.assessments WHERE site_id = ? AND export_id = '2026-10-01'", [SITES[2]])
    _append(con, SITES[2], "2026-10-01")
    con.execute("UPDATE staging.assessments SET nprs = 10 - nprs WHERE site_id = ? AND source_line = 7", [SITES[2]])


# Appends and updates first: rowids stay contiguous, so the sites to hash again are found by row group; once a
# row was deleted every site is hashed (module docstring), which the later changes check.
CHANGES: dict[str, Callable[[duckdb.DuckDBPyConnection], object]] = {
    "new export appended": lambda con: _append(con, SITES[0], "2099-12-31"),
    "one value updated": lambda con: con.execute(
        "UPDATE staging.assessments SET timepoint = 'follow_up' WHERE site_id = ? AND source_line = 5", [SITES[1]]),
    "site new": lambda con: _append(con, "site_new", "2026-11-01", nprs_shift=3),
    "export replaced, one value changed": _replace_export_with_one_value_changed,
    "one row deleted": lambda con: con.execute(
        "DELETE FROM staging.assessments WHERE site_id = ? AND source_line = 123", [SITES[4]]),
    "a row deleted and one of the same count added": lambda con: (
        con.execute("DELETE FROM staging.assessments WHERE site_id = ? AND source_line = 9", [SITES[3]]),
        con.execute("INSERT INTO staging.assessments VALUES (?, '2026-10-01', 9, 3, 'baseline')", [SITES[3]]),
    ),
    "site gone": lambda con: con.execute("DELETE FROM staging.assessments WHERE site_id = ?", [SITES[5]]),
    "site emptied of everything": lambda con: con.execute("DELETE FROM staging.assessments"),
}


@pytest.mark.parametrize("checkpoint", [True, False], ids=["checkpointed", "not checkpointed"])
def test_per_site_hashes_after_each_change_equal_a_whole_table_hash(
    con: duckdb.DuckDBPyConnection, checkpoint: bool
) -> None:
    assert table_parts(con, "assessments") == _whole(con)
    for name, change in CHANGES.items():
        before = _whole(con)
        change(con)
        if checkpoint:
            con.execute("CHECKPOINT")
        assert _whole(con) != before, f"{name}: the change must change the table"
        assert table_parts(con, "assessments") == _whole(con), name
        # Unchanged since: read back as it is.
        assert table_parts(con, "assessments") == _whole(con), name


def test_one_site_appended_leaves_the_sites_of_untouched_row_groups_unhashed(con: duckdb.DuckDBPyConnection) -> None:
    table_parts(con, "assessments")
    # A wrong hash recorded for every other site: kept for the sites whose rows are not hashed again.
    con.execute("UPDATE incremental.staged_table_parts SET hash_sum = '1' WHERE site_id <> ?", [SITES[0]])
    _append(con, SITES[0], "2099-12-31")
    con.execute("CHECKPOINT")
    parts = {site: total for site, _, total in table_parts(con, "assessments")}
    whole = {site: total for site, _, total in _whole(con)}
    assert parts[SITES[0]] == whole[SITES[0]]
    # SITES[1] and SITES[2] lie wholly in the first row group (rows 40,000 to 119,999 of 122,880), which an
    # append leaves as it is (DuckDB appends after the last row group, or into it).
    assert parts[SITES[1]] == parts[SITES[2]] == 1
