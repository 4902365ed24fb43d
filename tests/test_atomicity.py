"""Atomic steps proven by interruption. Publishing the analysts' file and staging a batch of exports each run
in a child process (tests/interrupted_step.py) that stops before a chosen statement — the first, the middle,
the last, or the rename that publishes — and is killed there with SIGKILL, as a crash or an out-of-memory kill
would. Readers must then find the old state or the new one, never a mix (compared table by table with
`table_fingerprints`, the digests releases are verified with), and a rerun must reach exactly the state of
an uninterrupted step. In-place publishing (writing into the analysts' file) or staging outside one
transaction fails these tests."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from check_support import clean_two_site_run
from support import RegistryRun, canonical_rows, row_by_id, write_export

from ketreg.landing.discovery import scan_landing
from ketreg.registry.publish import publish, published_tables
from ketreg.registry.release import table_fingerprints
from ketreg.staging.stage import stage_landing
from schemas.protocol import load_protocol

CHILD = Path(__file__).with_name("interrupted_step.py")
Fingerprints = dict[str, dict[str, object]]


def fingerprints(path: Path, schema: str | None = None) -> Fingerprints:
    """Row count and content digest of every table of a DuckDB file (of one schema when given), read-only."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        found = table_fingerprints(con)
    finally:
        con.close()
    if schema is None:
        return found
    return {name: digest for name, digest in found.items() if name.startswith(f"{schema}.")}


def run_until_paused(step: str, work_db: Path, target: Path, pause_at: str) -> str:
    """Run the step in a child process; when it pauses, kill it with SIGKILL. Returns its last line."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), step, str(work_db), str(target), pause_at],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = child.stdout.readline().strip() if child.stdout else ""
        if line.startswith("PAUSED"):
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert line.startswith(("PAUSED", "DONE")), child.stderr.read() if child.stderr else line
    return line


def statement_kinds(step: str, work_db: Path, target: Path) -> list[str]:
    """The first word of each statement the step runs uninterrupted (on copies: the originals stay as they
    were)."""
    scratch = work_db.parent / "count"
    scratch.mkdir()
    work_copy = scratch / work_db.name
    shutil.copy(work_db, work_copy)
    target_copy = scratch / target.name
    if target.is_dir():
        shutil.copytree(target, target_copy)
    elif target.exists():
        shutil.copy(target, target_copy)
    line = run_until_paused(step, work_copy, target_copy, "0")
    shutil.rmtree(scratch)
    assert line.startswith("DONE")
    return line.split()[2:]


def pause_points(kinds: list[str]) -> list[str]:
    """Statement numbers (1-based) to stop before. In a transaction: its first statement, its middle and the
    COMMIT itself (each child costs seconds). Without one: the first statement, the middle and the last."""
    if "BEGIN" in kinds and "COMMIT" in kinds:
        begin, commit = kinds.index("BEGIN") + 1, len(kinds) - kinds[::-1].index("COMMIT")
        points = {begin + 1, (begin + commit) // 2, commit}
    else:
        points = {1, len(kinds) // 2, len(kinds)}
    return [str(p) for p in sorted(points)]


# A reader that opens the analysts' file read-only while the publisher is stopped and prints what it finds.
READER = textwrap.dedent(
    """
    import json, sys, duckdb
    from ketreg.registry.release import table_fingerprints
    try:
        con = duckdb.connect(sys.argv[1], read_only=True)
        print(json.dumps(table_fingerprints(con)))
    except Exception as exc:
        print(json.dumps({"error": repr(exc)}))
    """
)


def read_while_paused(path: Path) -> Fingerprints:
    done = subprocess.run([sys.executable, "-c", READER, str(path)], capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> RegistryRun:
    """A registry published once (the old state analysts have): two sites, one canonical export each."""
    return clean_two_site_run(tmp_path_factory)


def _changed_working_db(run: RegistryRun, folder: Path) -> Path:
    """A copy of the working database in which every published table has one row more than published, so
    a table copied from it can be told from the old one whichever table it is."""
    folder.mkdir(parents=True, exist_ok=True)
    work_db = folder / run.work_db.name
    shutil.copy(run.work_db, work_db)
    con = duckdb.connect(str(work_db))
    try:
        for schema, table in published_tables(con):
            con.execute(f"INSERT INTO {schema}.{table} DEFAULT VALUES")
    finally:
        con.close()
    return work_db


@pytest.mark.slow
def test_publish_killed_at_any_point_leaves_readers_the_old_or_the_new_registry(
    published: RegistryRun, tmp_path: Path
) -> None:
    work_db = _changed_working_db(published, tmp_path / "work")
    # The new state: what an uninterrupted publish of the changed working database gives.
    reference = tmp_path / "reference" / "registry.duckdb"
    con = duckdb.connect(str(work_db))
    try:
        publish(con, reference)
    finally:
        con.close()
    old, new = fingerprints(published.analyst_db), fingerprints(reference)
    assert old.keys() == new.keys() and all(old[t] != new[t] for t in old), "every table must change"

    analyst_db = tmp_path / "analysts" / "registry.duckdb"
    kinds = statement_kinds("publish", work_db, published.analyst_db)
    assert "CREATE" in kinds
    for pause_at in [*pause_points(kinds), "replace"]:
        analyst_db.parent.mkdir(exist_ok=True)
        shutil.copy(published.analyst_db, analyst_db)
        child = subprocess.Popen(
            [sys.executable, str(CHILD), "publish", str(work_db), str(analyst_db), pause_at],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            line = child.stdout.readline().strip() if child.stdout else ""
            assert line == f"PAUSED {pause_at}", child.stderr.read() if child.stderr else line
            # An analyst opening the file while the publisher is stopped there reads the old registry whole.
            assert read_while_paused(analyst_db) == old, f"reader during publish, paused at {pause_at}"
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert fingerprints(analyst_db) == old, f"after a kill at statement {pause_at}"

        # The next run publishes over whatever the killed one left behind and reaches the new state.
        con = duckdb.connect(str(work_db))
        try:
            publish(con, analyst_db)
        finally:
            con.close()
        assert fingerprints(analyst_db) == new, f"rerun after a kill at statement {pause_at}"


def test_publish_killed_after_the_rename_leaves_the_new_registry(published: RegistryRun, tmp_path: Path) -> None:
    work_db = _changed_working_db(published, tmp_path / "work")
    analyst_db = tmp_path / "analysts" / "registry.duckdb"
    analyst_db.parent.mkdir()
    shutil.copy(published.analyst_db, analyst_db)
    # No statement follows the rename: a child told to stop beyond the last one runs to the end.
    assert run_until_paused("publish", work_db, analyst_db, "100000").startswith("DONE")
    con = duckdb.connect(str(work_db))
    try:
        reference = tmp_path / "reference.duckdb"
        publish(con, reference)
    finally:
        con.close()
    assert fingerprints(analyst_db) == fingerprints(reference)


# ---------------------------------------------------------------------------------------------------------
# Staging: one transaction per batch of exports. The new batch corrects site_a's export (a patient becomes
# invalid, an infusion changes) and brings a first export of site_c.


def _corrected_landing(landing: Path) -> None:
    rows = canonical_rows()
    row_by_id(rows, "patients", "PT-0002")["weight_kg"] = "20"  # below the contract's minimum: quarantined
    row_by_id(rows, "infusions", "INF-0002")["max_rate_mg_h"] = "45"
    write_export(landing, "site_a", rows=rows)
    write_export(landing, "site_c")


@pytest.mark.slow
def test_staging_killed_mid_batch_keeps_the_old_or_the_new_staged_rows(
    published: RegistryRun, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    shutil.copytree(published.landing, landing)
    _corrected_landing(landing)
    old = fingerprints(published.work_db, "staging")
    reference = tmp_path / "reference"
    reference.mkdir()
    shutil.copy(published.work_db, reference / "registry_work.duckdb")
    assert run_until_paused("stage", reference / "registry_work.duckdb", landing, "100000").startswith("DONE")
    new = fingerprints(reference / "registry_work.duckdb", "staging")
    changed = {t for t in old if old[t] != new[t]}
    assert {"staging.patients", "staging.infusions", "staging.quarantine", "staging.exports"} <= changed

    kinds = statement_kinds("stage", published.work_db, landing)
    work_db = tmp_path / "work" / "registry_work.duckdb"
    work_db.parent.mkdir()
    for pause_at in pause_points(kinds):
        shutil.copy(published.work_db, work_db)
        line = run_until_paused("stage", work_db, landing, pause_at)
        assert line == f"PAUSED {pause_at}"
        assert fingerprints(work_db, "staging") in (old, new), f"after a kill at statement {pause_at}"
        # The next run stages again what the killed one did not commit and reaches the same rows.
        con = duckdb.connect(str(work_db))
        try:
            stage_landing(con, scan_landing(landing).exports, load_protocol())
        finally:
            con.close()
        assert fingerprints(work_db, "staging") == new, f"rerun after a kill at statement {pause_at}"


def test_the_transaction_helper_commits_a_finished_block_and_rolls_back_a_raised_one(tmp_path: Path) -> None:
    from ketreg.warehouse.transaction import transaction

    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    try:
        con.execute("CREATE TABLE t (x INTEGER)")
        with transaction(con):
            con.execute("INSERT INTO t VALUES (1)")
        # An error, and an interruption (not an Exception), both leave the table as it was and propagate.
        for interruption in (ValueError("bad row"), KeyboardInterrupt()):
            with pytest.raises(type(interruption)), transaction(con):
                con.execute("INSERT INTO t VALUES (2)")
                con.execute("DELETE FROM t WHERE x = 1")
                raise interruption
        assert con.execute("SELECT x FROM t").fetchall() == [(1,)]
        con.execute("INSERT INTO t VALUES (3)")  # no transaction left open: autocommit again
    finally:
        con.close()
    reopened = duckdb.connect(str(tmp_path / "t.duckdb"), read_only=True)
    try:
        assert reopened.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (3,)]
    finally:
        reopened.close()


def test_writes_open_transactions_only_through_the_helper() -> None:
    """One begin/commit/rollback block (ketreg/warehouse/transaction.py), not copies of it in each module."""
    root = Path(__file__).resolve().parents[1]
    helper = root / "ketreg" / "warehouse" / "transaction.py"
    copies = [
        f"{path.relative_to(root)}:{number}"
        for package in ("ketreg", "ketreg_app", "pipelines", "schemas")
        for path in sorted((root / package).rglob("*.py")) if path != helper
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(call in line for call in (".begin()", ".rollback()", "BEGIN TRANSACTION", "ROLLBACK"))
    ]
    assert "con.rollback()" in helper.read_text(encoding="utf-8")
    assert copies == []
