"""Per-site incremental builds of the registry tables: a table is rebuilt only for the sites whose staged
exports changed since that table was last built (delete + insert of those sites' rows, in the transaction
that builds the table), and rebuilt whole when anything else its rows depend on changed (code, protocol,
key, mappings). Every registry row belongs to one site and is made from that site's rows only, so the rows
of a site depend on that site's exports alone: this gives exactly the rows of a full rebuild (tested).

`incremental.table_sites` remembers, per table and site, the exports the table's rows of that site were made
from, and the digest of everything else; it changes in the same transaction as the table, so a run that
stops half-way leaves each table and its record in step."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

import duckdb

from ketreg.incremental.ledger import SCHEMA, insert_rows
from ketreg.incremental.staged_parts import table_parts
from ketreg.warehouse.sql_files import run_sql_file

# Tables read by the registry SQL whose rows do not belong to a site (never filtered).
_SHARED_TABLES = ("registry.ae_term_categories", "registry.protocol")
# A table name may be quoted, as SQL rendered from the contract's names is (ketreg.warehouse.sql_files.identifier).
_TABLE_REFERENCE = re.compile(r'\b(staging|keys|registry|site_private|metrics)\.("?)([a-z_]+)\2(?![a-z_])')
_CREATE = re.compile(r"CREATE OR REPLACE TABLE ([a-z_]+\.[a-z_]+) AS\s", re.IGNORECASE)
SITES_PARAMETER = "incremental_sites"


def _ensure(con: duckdb.DuckDBPyConnection) -> None:
    run_sql_file(con, "incremental/site_digests.sql")


# Staged tables a site's registry rows are made from; their content is hashed per site, so a working store
# changed behind the pipeline's back is rebuilt rather than trusted.
_STAGED = ("exports", "file_counts", "quarantine", "patients", "infusions", "assessments", "adverse_events",
           "dispositions")


def site_digests(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, str]:
    """Per site, a digest of the content of its staged rows, exports' fingerprints and statuses included (count
    and sum of DuckDB row hashes, hashed again only for the sites whose stored rows may have changed:
    ketreg/incremental/staged_parts.py), computed once per run and kept with it."""
    _ensure(con)
    found = con.execute(
        f"SELECT site_id, digest FROM {SCHEMA}.run_site_digests WHERE run_id = ?", [run_id]
    ).fetchall()
    if found:
        return dict(found)
    parts: dict[str, list[str]] = {}
    for table in _STAGED:
        if not _has_table(con, f"staging.{table}"):
            continue  # a working store not staged yet
        for site_id, count, total in table_parts(con, table):
            if site_id:
                parts.setdefault(site_id, []).append(f"{table}:{count}:{total}")
    digests = {site: hashlib.sha256("|".join(sorted(p)).encode()).hexdigest()[:32] for site, p in parts.items()}
    if digests:
        insert_rows(con, f"{SCHEMA}.run_site_digests", [[run_id, site, digest] for site, digest in digests.items()])
    return digests


def _has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name || '.' || table_name = ?", [table]
    ).fetchall()[0][0])


def sites_to_rebuild(
    con: duckdb.DuckDBPyConnection, table: str, shared_digest: str, run_id: str, built: bool | None = None
) -> list[str] | None:
    """Sites whose rows of `table` must be rebuilt (their staged rows changed, or they left the landing
    folder), or None when the whole table must be: never built, or built from other code, protocol, key or
    mappings. `table` names a table of the working store, or (with `built` saying whether it exists) any other
    per-site result, such as the sites' report folders."""
    _ensure(con)
    recorded = dict(con.execute(
        f"SELECT site_id, exports_digest FROM {SCHEMA}.table_sites WHERE table_name = ? AND shared_digest = ?",
        [table, shared_digest],
    ).fetchall())
    exists = _has_table(con, table) if built is None else built
    if not exists or not recorded:
        return None  # never built, built from other code/protocol/key/mappings, or before this ledger
    current = site_digests(con, run_id)
    changed = {site for site, digest in current.items() if recorded.get(site) != digest}
    gone = set(recorded) - set(current)
    return sorted(changed | gone)


def record_sites(con: duckdb.DuckDBPyConnection, table: str, shared_digest: str, run_id: str) -> None:
    """Note that `table` now holds every site's rows made from the staged rows as they are in this run."""
    _ensure(con)
    con.execute(f"DELETE FROM {SCHEMA}.table_sites WHERE table_name = ?", [table])
    rows = [[table, site, digest, shared_digest] for site, digest in site_digests(con, run_id).items()]
    if rows:  # no site left (a landing folder emptied of exports, stopped later by `no_site_vanished`)
        insert_rows(con, f"{SCHEMA}.table_sites", rows)


def site_scoped(sql: str) -> tuple[str, str]:
    """`CREATE OR REPLACE TABLE s.t AS <query>` turned into a delete of the sites `$incremental_sites` from s.t
    and an insert of their rows (two statements), the query reading only those sites' rows of every table."""
    created = _CREATE.search(sql)
    if created is None:
        raise ValueError("not a CREATE OR REPLACE TABLE … AS statement")
    target = created.group(1)
    query = sql[created.end():].strip().rstrip(";")

    def scoped(match: re.Match[str]) -> str:
        name = match.group(0)
        if f"{match.group(1)}.{match.group(3)}" in _SHARED_TABLES:
            return name
        return f"(SELECT * FROM {name} WHERE list_contains(${SITES_PARAMETER}, site_id))"

    query = _TABLE_REFERENCE.sub(scoped, query)
    return (
        f"DELETE FROM {target} WHERE list_contains(${SITES_PARAMETER}, site_id)",
        f"INSERT INTO {target} BY NAME {query}",
    )


def run_site_scoped(
    con: duckdb.DuckDBPyConnection, text: str, parameters: Mapping[str, object], sites: list[str]
) -> None:
    """Run a table's SQL for `sites` only (see `site_scoped`); `$name` placeholders bound from `parameters`."""
    bound = {**parameters, SITES_PARAMETER: sites}
    for statement in site_scoped(text):
        used = {name: value for name, value in bound.items() if f"${name}" in statement}
        con.execute(statement, used)
