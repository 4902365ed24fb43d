"""PostgreSQL as a publish target, against the live server: `ketreg run --publish` writes the analysts' tier and
the site tier; a second publish swaps every schema in one transaction while a reader stays connected and never
sees a mix; row-level security shows each site's role only its own rows; analysts' and sites' roles are apart."""

from __future__ import annotations

import shutil
import threading
import uuid
from pathlib import Path

import duckdb
import psycopg
import pytest
from postgres_support import FreshDatabase, fresh_database
from support import TEST_KEY, canonical_rows, row_by_id, write_export

from ketreg.registry.postgres_publish import (
    ANALYST_ROLE,
    DEFAULT_SITE_ROLE_PREFIX,
    PostgresPublishError,
    check_publish_url,
    publish_postgres,
    server_publication,
    site_role,
)
from ketreg_app.cli import main

# Unique site ids per test run: site roles are global to the server, so no two runs share one.
RUN = uuid.uuid4().hex[:8]
SITE_A, SITE_B = f"s{RUN}_a", f"s{RUN}_b"
# One query, three tables: a reader's view of the registry at one instant.
SNAPSHOT_SQL = (
    "SELECT (SELECT count(*) FROM registry.patients), (SELECT count(*) FROM registry.infusions), "
    "(SELECT count(*) FROM metrics.registry_metrics)"
)
# The same snapshot with the tables taken in the other order: two readers that lock in opposite orders are what
# deadlocked a swap that dropped the old tables while waiting for them (CI, 2026-12-02).
SNAPSHOT_SQL_REVERSED = (
    "SELECT p, i, m FROM (SELECT (SELECT count(*) FROM metrics.registry_metrics) AS m, "
    "(SELECT count(*) FROM registry.infusions) AS i, (SELECT count(*) FROM registry.patients) AS p) AS snapshot"
)


@pytest.fixture(scope="module")
def pg_database() -> FreshDatabase:
    yield from fresh_database()


@pytest.fixture(scope="module")
def published(pg_database: FreshDatabase, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two sites (one with a quarantined patient) run through `ketreg run --publish`; the working store's path."""
    root = tmp_path_factory.mktemp("pg-publish")
    landing = root / "landing"
    rows = canonical_rows()
    row_by_id(rows, "patients", "PT-0002")["weight_kg"] = "20"  # below the protocol's minimum: quarantined
    write_export(landing, SITE_A, rows=rows)
    write_export(landing, SITE_B)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KETREG_PSEUDONYM_KEY", TEST_KEY)
        patch.delenv("DAGSTER_HOME", raising=False)
        code = main(["run", "--landing", str(landing), "--db", str(root / "registry.duckdb"),
                     "--publish", pg_database.url])
    assert code == 0
    yield root / "registry_work.duckdb"
    _drop_roles(pg_database, [site_role(SITE_A), site_role(SITE_B)])


def _drop_roles(db: FreshDatabase, roles: list[str]) -> None:
    with psycopg.connect(db.url, autocommit=True) as pg:
        for role in roles:
            pg.execute(f'DROP OWNED BY "{role}"') if _role_exists(pg, role) else None
            pg.execute(f'DROP ROLE IF EXISTS "{role}"')


def _role_exists(pg, role: str) -> bool:
    return pg.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is not None


def _duck(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def test_cli_publishes_every_table_of_the_analysts_file(published: Path, pg_database: FreshDatabase):
    analyst_file = published.with_name("registry.duckdb")
    expected = {
        (("registry" if schema == "main" else schema), table): rows
        for schema, table, rows in _duck(
            analyst_file, "SELECT schema_name, table_name, estimated_size FROM duckdb_tables()"
        )
    }
    exact = {
        key: _duck(analyst_file, f"SELECT count(*) FROM {'main' if key[0] == 'registry' else key[0]}.{key[1]}")[0][0]
        for key in expected
    }
    with psycopg.connect(pg_database.url) as pg:
        tables = pg.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN ('registry', 'metrics')"
        ).fetchall()
        counts = {key: pg.execute(f'SELECT count(*) FROM {key[0]}."{key[1]}"').fetchone()[0] for key in tables}
        schemas = {row[0] for row in pg.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE '%\\_\\_%'")}
    assert counts == exact
    assert exact[("registry", "patients")] == 3  # 2 + 2 canonical patients, one quarantined
    assert not schemas, "no staging or previous schema is left behind"


def test_bad_publish_url_is_a_usage_error(tmp_path: Path, pseudonym_key: str, capsys: pytest.CaptureFixture):
    write_export(tmp_path / "landing", "site_a")
    code = main(["run", "--landing", str(tmp_path / "landing"), "--db", str(tmp_path / "r.duckdb"),
                 "--publish", "postgresql://u:secret@localhost/db"])
    assert code == 2
    err = capsys.readouterr().err
    assert "PGPASSWORD" in err and "secret" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.duckdb").exists()
    with pytest.raises(PostgresPublishError):
        check_publish_url("mysql://localhost/db")


def test_swap_is_atomic_while_a_reader_stays_connected(
    published: Path, pg_database: FreshDatabase, tmp_path: Path
):
    # A second working store that differs in every counted table.
    changed = tmp_path / "changed.duckdb"
    shutil.copy(published, changed)
    with duckdb.connect(str(changed)) as con:
        con.execute("DELETE FROM registry.patients WHERE rowid % 2 = 0")
        con.execute("DELETE FROM registry.infusions WHERE rowid % 3 = 0")
        con.execute("DELETE FROM metrics.registry_metrics WHERE rowid % 4 = 0")
    reader = psycopg.connect(pg_database.url, autocommit=True)
    before = reader.execute(SNAPSHOT_SQL).fetchone()
    seen: set[tuple] = set()
    errors: list[BaseException] = []
    done = threading.Event()

    def read_throughout(snapshot_sql: str) -> None:
        try:
            with psycopg.connect(pg_database.url, autocommit=True) as own:
                while not done.is_set():
                    seen.add(own.execute(snapshot_sql).fetchone())
        except BaseException as exc:  # a reader error is a failed test, reported below
            errors.append(exc)

    threads = [threading.Thread(target=read_throughout, args=(sql,)) for sql in (SNAPSHOT_SQL, SNAPSHOT_SQL_REVERSED)]
    for thread in threads:
        thread.start()
    try:
        for source in (changed, published, changed, published, changed):
            with duckdb.connect(str(source), read_only=True) as con:
                publish_postgres(con, pg_database.url)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    after = reader.execute(SNAPSHOT_SQL).fetchone()
    reader.close()
    assert not errors, errors
    assert after != before
    assert seen <= {before, after}, f"a reader saw a mix of two publishes: {seen - {before, after}}"
    assert after == _duck(changed, SNAPSHOT_SQL)[0]


def _publish_again(published: Path, pg_database: FreshDatabase) -> None:
    """`ketreg run --publish` once more on the fixture's landing and registry (nothing changed in them)."""
    root = published.parent
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KETREG_PSEUDONYM_KEY", TEST_KEY)
        patch.delenv("DAGSTER_HOME", raising=False)
        code = main(["run", "--landing", str(root / "landing"), "--db", str(root / "registry.duckdb"),
                     "--publish", pg_database.url])
    assert code == 0


def _patients_table_oid(pg_database: FreshDatabase) -> int:
    with psycopg.connect(pg_database.url, autocommit=True) as pg:
        return pg.execute("SELECT 'registry.patients'::regclass::oid").fetchone()[0]


def test_nothing_changed_leaves_the_server_as_it_is_unless_it_holds_something_else(
    published: Path, pg_database: FreshDatabase
):
    # The swap test (or a publish by hand) left tables that no run recorded: the next run publishes.
    with duckdb.connect(str(published), read_only=True) as con:
        publish_postgres(con, pg_database.url)
    assert server_publication(pg_database.url).inputs_fingerprint == ""
    _publish_again(published, pg_database)
    held = server_publication(pg_database.url)
    assert held is not None and held.inputs_fingerprint and held.run_id
    oid = _patients_table_oid(pg_database)
    # Nothing changed and the server holds this registry: no copy, the same tables, the same record.
    _publish_again(published, pg_database)
    assert server_publication(pg_database.url) == held
    assert _patients_table_oid(pg_database) == oid
    with psycopg.connect(pg_database.url) as pg:
        served = pg.execute("SELECT count(*) FROM registry.patients").fetchone()
    assert served == _duck(published, "SELECT count(*) FROM registry.patients")[0]


@pytest.fixture
def people(published: Path, pg_database: FreshDatabase):
    """Login roles: a data manager of each site and an analyst, made members of the publish's group roles."""
    names = {who: f"p{RUN}_{who}_{uuid.uuid4().hex[:4]}" for who in ("dm_a", "dm_b", "analyst")}
    groups = {"dm_a": site_role(SITE_A), "dm_b": site_role(SITE_B), "analyst": ANALYST_ROLE}
    with psycopg.connect(pg_database.url, autocommit=True) as pg:
        for who, login in names.items():
            pg.execute(f'CREATE ROLE "{login}" LOGIN IN ROLE "{groups[who]}"')
    yield names
    with psycopg.connect(pg_database.url, autocommit=True) as pg:
        for login in names.values():
            pg.execute(f'DROP ROLE IF EXISTS "{login}"')


def _as(db: FreshDatabase, login: str) -> psycopg.Connection:
    return psycopg.connect(host=db.host, port=db.port, dbname=db.name, user=login, autocommit=True)


def test_row_level_security_shows_each_site_only_its_rows(
    published: Path, pg_database: FreshDatabase, people: dict[str, str]
):
    for who, site, other in (("dm_a", SITE_A, SITE_B), ("dm_b", SITE_B, SITE_A)):
        with _as(pg_database, people[who]) as pg:
            for table in ("exports", "file_columns", "quarantine"):
                rows = pg.execute(f"SELECT site_id, count(*) FROM site_private.{table} GROUP BY site_id").fetchall()
                expected = _duck(
                    published, f"SELECT site_id, count(*) FROM site_private.{table} WHERE site_id = '{site}' "
                    "GROUP BY site_id",
                )
                assert rows == expected, (who, table)
                assert other not in {site_id for site_id, _ in rows}
            # The site's data manager reads the analysts' tier only if also granted it.
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                pg.execute("SELECT count(*) FROM registry.patients")
    with _as(pg_database, people["dm_a"]) as pg:
        quarantined = dict(pg.execute(
            "SELECT record_id, reason_text FROM site_private.quarantine WHERE file_name = 'patients.csv'"
        ).fetchall())
    # The patient itself, with the site's own id and the reason (its infusions etc. follow it into quarantine).
    assert list(quarantined) == ["PT-0002"]
    assert "weight_kg" in quarantined["PT-0002"]
    with _as(pg_database, people["dm_b"]) as pg:
        assert pg.execute("SELECT count(*) FROM site_private.quarantine").fetchone() == (0,)


def test_analysts_role_reads_registry_not_site_rows(
    published: Path, pg_database: FreshDatabase, people: dict[str, str]
):
    with _as(pg_database, people["analyst"]) as pg:
        assert pg.execute("SELECT count(*) FROM registry.patients").fetchone()[0] > 0
        assert pg.execute("SELECT count(*) FROM metrics.registry_metrics").fetchone()[0] > 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            pg.execute("SELECT count(*) FROM site_private.quarantine")


def test_site_role_prefix_is_the_default():
    assert site_role("site_a") == f"{DEFAULT_SITE_ROLE_PREFIX}site_a"
