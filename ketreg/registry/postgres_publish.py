"""Publish to PostgreSQL: the analysts' tier as schemas that many analysts and BI tools read at once, and the
data-manager tier (`site_private`) in a schema of its own where row-level security shows each site's role only
that site's rows.

Every schema is built under a staging name and swapped in with renames inside one transaction, so a reader sees
the whole previous registry or the whole new one, never a mix, and stays connected throughout. DuckDB's
`postgres` extension does not exist offline for DuckDB 2.0, so rows go through psycopg 3's COPY.
The DuckDB analysts' file stays the default; this is an extra target (`ketreg run --publish postgresql://…`)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb

from ketreg.registry.publish import published_tables
from ketreg.registry.site_private import SCHEMA as SITE_PRIVATE_SCHEMA
from ketreg.registry.site_private import SITE_PRIVATE_TABLES

# Working-store schema → PostgreSQL schema, for every schema the analysts' file gets (publish.PUBLISHED_SCHEMAS).
ANALYST_SCHEMAS = {"registry": "registry", "metrics": "metrics"}
SITE_SCHEMA = "site_private"
STAGING_SUFFIX = "__publishing"
PREVIOUS_SUFFIX = "__previous"
# NOLOGIN group roles that the publish creates and grants: people's login roles are made members of them.
ANALYST_ROLE = "ketreg_analyst"
DEFAULT_SITE_ROLE_PREFIX = "ketreg_site_"
COPY_BATCH_ROWS = 50_000
# How long one swap attempt waits for readers' locks, and how many attempts (with a growing pause) before giving up.
SWAP_LOCK_TIMEOUT = "200ms"
SWAP_ATTEMPTS = 60
# What the server holds: the inputs fingerprint (ketreg/incremental/) of the registry last swapped in, written in the
# swap's transaction, so a run with nothing changed can tell the server is up to date without reading its tables.
PUBLICATION_TABLE = '"ketreg_publish"."publication"'

_SIMPLE_TYPES = {
    "VARCHAR": "text", "BOOLEAN": "boolean", "TINYINT": "smallint", "SMALLINT": "smallint",
    "INTEGER": "integer", "BIGINT": "bigint", "UTINYINT": "smallint", "USMALLINT": "integer",
    "UINTEGER": "bigint", "UBIGINT": "numeric", "HUGEINT": "numeric", "FLOAT": "real", "DOUBLE": "double precision",
    "DATE": "date", "TIME": "time", "TIMESTAMP": "timestamp", "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "UUID": "uuid", "JSON": "jsonb", "BLOB": "bytea", "INTERVAL": "interval",
}


class PostgresPublishError(ValueError):
    """A publish URL or setting that cannot work (said in one line)."""


@dataclass(frozen=True)
class _Column:
    name: str
    select: str  # the DuckDB expression that reads it
    pg_type: str


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _column(name: str, duckdb_type: str) -> _Column:
    """How one DuckDB column travels: scalars and lists of scalars keep their type; structs and maps (e.g. the
    quarantine's reasons) become jsonb, which every BI tool can read."""
    quoted = _quote(name)
    if duckdb_type in _SIMPLE_TYPES:
        return _Column(name, quoted, _SIMPLE_TYPES[duckdb_type])
    if duckdb_type.startswith("DECIMAL"):
        return _Column(name, quoted, duckdb_type.replace("DECIMAL", "numeric"))
    if duckdb_type.endswith("[]") and duckdb_type[:-2] in _SIMPLE_TYPES and duckdb_type[:-2] != "JSON":
        return _Column(name, quoted, _SIMPLE_TYPES[duckdb_type[:-2]] + "[]")
    if duckdb_type.startswith(("STRUCT", "MAP")) or "[]" in duckdb_type:
        return _Column(name, f"to_json({quoted})::VARCHAR", "jsonb")
    return _Column(name, f"{quoted}::VARCHAR", "text")


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[_Column]:
    described = con.sql(f"DESCRIBE {schema}.{table}").fetchall()
    return [_column(name, str(column_type)) for name, column_type, *_ in described]


def check_publish_url(url: str) -> None:
    """A PostgreSQL URL without a password: Dagster stores run configuration, so the password belongs in
    PGPASSWORD or ~/.pgpass (libpq reads both), never in the URL."""
    from psycopg.conninfo import conninfo_to_dict

    if not re.match(r"^postgres(ql)?://", url):
        raise PostgresPublishError(f"--publish takes a postgresql:// URL, not {url.split(':', 1)[0]!r}")
    try:
        params = conninfo_to_dict(url)
    except Exception as exc:
        raise PostgresPublishError(f"--publish URL cannot be read: {exc}") from None
    if params.get("password"):
        raise PostgresPublishError(
            "--publish URL carries a password; put it in PGPASSWORD or ~/.pgpass instead (run settings are stored)"
        )


def site_role(site_id: str, prefix: str = DEFAULT_SITE_ROLE_PREFIX) -> str:
    """The group role of one site's data managers (site ids are `[a-z0-9][a-z0-9_-]*`, checked at discovery)."""
    return f"{prefix}{site_id}"


def _copy_table(
    duck: duckdb.DuckDBPyConnection, pg, source: str, target: str, columns: list[_Column]
) -> int:
    column_list = ", ".join(_quote(c.name) for c in columns)
    pg.execute(
        f"CREATE TABLE {target} (" + ", ".join(f"{_quote(c.name)} {c.pg_type}" for c in columns) + ")"
    )
    table = duck.sql(f"SELECT {', '.join(c.select for c in columns)} FROM {source}").to_arrow_table()
    with pg.cursor().copy(f"COPY {target} ({column_list}) FROM STDIN") as copy:
        for batch in table.to_batches(COPY_BATCH_ROWS):
            for row in zip(*(column.to_pylist() for column in batch.columns), strict=True):
                copy.write_row(row)
    return table.num_rows


def _ensure_role(pg, role: str) -> None:
    exists = pg.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
    if not exists:
        pg.execute(f"CREATE ROLE {_quote(role)} NOLOGIN")


def _build_analyst_schemas(duck: duckdb.DuckDBPyConnection, pg) -> dict[str, int]:
    counts: dict[str, int] = {}
    for target in ANALYST_SCHEMAS.values():
        pg.execute(f"CREATE SCHEMA {_quote(target + STAGING_SUFFIX)}")
    for schema, table in published_tables(duck):
        target = ANALYST_SCHEMAS[schema]
        name = f"{_quote(target + STAGING_SUFFIX)}.{_quote(table)}"
        counts[f"{target}.{table}"] = _copy_table(duck, pg, f"{schema}.{table}", name, _columns(duck, schema, table))
    for target in ANALYST_SCHEMAS.values():
        staged = _quote(target + STAGING_SUFFIX)
        pg.execute(f"GRANT USAGE ON SCHEMA {staged} TO {_quote(ANALYST_ROLE)}")
        pg.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {staged} TO {_quote(ANALYST_ROLE)}")
    return counts


def _build_site_schema(duck: duckdb.DuckDBPyConnection, pg, site_role_prefix: str) -> dict[str, int]:
    staged = _quote(SITE_SCHEMA + STAGING_SUFFIX)
    pg.execute(f"CREATE SCHEMA {staged}")
    sites = sorted(
        site for (site,) in duck.sql(f"SELECT DISTINCT site_id FROM {SITE_PRIVATE_SCHEMA}.exports").fetchall()
    )
    for site in sites:
        _ensure_role(pg, site_role(site, site_role_prefix))
        pg.execute(f"GRANT USAGE ON SCHEMA {staged} TO {_quote(site_role(site, site_role_prefix))}")
    counts: dict[str, int] = {}
    for table in SITE_PRIVATE_TABLES:
        name = f"{staged}.{_quote(table)}"
        counts[f"{SITE_SCHEMA}.{table}"] = _copy_table(
            duck, pg, f"{SITE_PRIVATE_SCHEMA}.{table}", name, _columns(duck, SITE_PRIVATE_SCHEMA, table)
        )
        # A row is visible to the members of its site's role only; the owner (the publisher) sees all.
        pg.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
        pg.execute(
            f"CREATE POLICY own_site_rows ON {name} FOR SELECT "
            f"USING (pg_has_role(current_user, {_literal(site_role_prefix)} || site_id, 'MEMBER'))"
        )
        for site in sites:
            pg.execute(f"GRANT SELECT ON {name} TO {_quote(site_role(site, site_role_prefix))}")
    return counts


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _live_tables(pg, schemas: Iterable[str]) -> list[str]:
    rows = pg.execute(
        "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY(%s) ORDER BY schemaname, tablename",
        [list(schemas)],
    ).fetchall()
    return [f"{_quote(schema)}.{_quote(table)}" for schema, table in rows]


def _swap(pg, schemas: Iterable[str]) -> None:
    """Inside the caller's transaction: lock every live table, then each live schema out, its staged twin in, the
    old one dropped. Readers mid-query hold the old tables; the lock waits for them, then every new query sees the
    new set (a query that queued behind the lock looks its tables up again after the commit)."""
    schemas = list(schemas)
    live_tables = _live_tables(pg, schemas)
    if live_tables:
        # One statement in a fixed order, before any rename: the swap never holds some old tables while waiting for
        # others in the middle of a DROP ... CASCADE, which is how it deadlocked with a reader of several tables.
        pg.execute(f"LOCK TABLE {', '.join(live_tables)} IN ACCESS EXCLUSIVE MODE")
    for schema in schemas:
        live, staged, previous = _quote(schema), _quote(schema + STAGING_SUFFIX), _quote(schema + PREVIOUS_SUFFIX)
        pg.execute(f"DROP SCHEMA IF EXISTS {previous} CASCADE")
        if pg.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone():
            pg.execute(f"ALTER SCHEMA {live} RENAME TO {previous}")
        pg.execute(f"ALTER SCHEMA {staged} RENAME TO {live}")
        pg.execute(f"DROP SCHEMA IF EXISTS {previous} CASCADE")


def _swap_when_readers_allow(pg, schemas: Iterable[str]) -> None:
    """The swap in a savepoint, retried: it waits at most SWAP_LOCK_TIMEOUT for the readers' locks, then gives them
    way (rolls back to the savepoint, releasing what it took) and tries again. A wait shorter than the server's
    deadlock_timeout (1 s by default) makes the publish, never an analyst's query, the side that yields when the
    two wait on each other."""
    import psycopg

    schemas = list(schemas)
    for attempt in range(1, SWAP_ATTEMPTS + 1):
        try:
            with pg.transaction():  # a savepoint: the staged schemas built before it stay
                pg.execute(f"SET LOCAL lock_timeout = {_literal(SWAP_LOCK_TIMEOUT)}")
                _swap(pg, schemas)
            return
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
            if attempt == SWAP_ATTEMPTS:
                raise PostgresPublishError(
                    f"the swap could not take its locks in {SWAP_ATTEMPTS} tries: a reader keeps a table of "
                    f"{', '.join(schemas)} open (a long query, or a session idle in a transaction; see "
                    "pg_stat_activity); nothing was published, the previous schemas stay"
                ) from None
            time.sleep(min(0.05 * attempt, 1.0))


@dataclass(frozen=True)
class ServerPublication:
    """The registry a PostgreSQL database holds, as its last publish recorded it."""

    inputs_fingerprint: str
    site_role_prefix: str
    run_id: str


def server_publication(url: str) -> ServerPublication | None:
    """What the last publish to `url` recorded, or None (nothing published there yet, or by a version that kept
    no record)."""
    import psycopg

    check_publish_url(url)
    with psycopg.connect(url, autocommit=True) as pg:
        if pg.execute("SELECT to_regclass(%s)", [PUBLICATION_TABLE]).fetchone() == (None,):
            return None
        row = pg.execute(f"SELECT inputs_fingerprint, site_role_prefix, run_id FROM {PUBLICATION_TABLE}").fetchone()
    return ServerPublication(*row) if row else None


def _record_publication(pg, inputs_fingerprint: str, site_role_prefix: str, run_id: str) -> None:
    pg.execute("CREATE SCHEMA IF NOT EXISTS ketreg_publish")
    pg.execute(
        f"CREATE TABLE IF NOT EXISTS {PUBLICATION_TABLE} (inputs_fingerprint text NOT NULL, "
        "site_role_prefix text NOT NULL, run_id text NOT NULL, published_at timestamptz NOT NULL)"
    )
    pg.execute(f"DELETE FROM {PUBLICATION_TABLE}")
    pg.execute(
        f"INSERT INTO {PUBLICATION_TABLE} VALUES (%s, %s, %s, now())", [inputs_fingerprint, site_role_prefix, run_id]
    )


def publish_postgres(
    duck: duckdb.DuckDBPyConnection,
    url: str,
    site_role_prefix: str = DEFAULT_SITE_ROLE_PREFIX,
    *,
    inputs_fingerprint: str = "",
    run_id: str = "",
) -> dict[str, int]:
    """Publish the analysts' tier (`registry`, `metrics`) and the data-manager tier (`site_private`, row-level
    security per site role) of the working store `duck` to the PostgreSQL database at `url`, in one transaction,
    with the inputs fingerprint and run it was built from (`server_publication` reads them back; empty when
    unknown, which no later run takes for up to date). Returns the row count of each published table
    (`schema.table`). On any error nothing changes."""
    import psycopg

    check_publish_url(url)
    with psycopg.connect(url) as pg:  # one transaction: committed on success, rolled back on error
        # Leftovers of a publish that died before its commit were rolled back with it; these are belt and braces.
        for schema in (*ANALYST_SCHEMAS.values(), SITE_SCHEMA):
            pg.execute(f"DROP SCHEMA IF EXISTS {_quote(schema + STAGING_SUFFIX)} CASCADE")
        _ensure_role(pg, ANALYST_ROLE)
        counts = _build_analyst_schemas(duck, pg)
        counts.update(_build_site_schema(duck, pg, site_role_prefix))
        _swap_when_readers_allow(pg, (*ANALYST_SCHEMAS.values(), SITE_SCHEMA))
        _record_publication(pg, inputs_fingerprint, site_role_prefix, run_id)
    return counts
