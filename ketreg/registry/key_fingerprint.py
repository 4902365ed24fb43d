"""Which key built the registry: its fingerprint in the working store (`keys.key_history`, every key the
registry has had) and in the analysts' file (`pseudonym_key`, one row). A run with another key is refused
unless it re-keys on purpose (`ketreg run --rekey`): otherwise every patient key would change silently and
two releases could no longer be linked."""

from __future__ import annotations

from pathlib import Path

import duckdb

from ketreg.registry.pseudonym import key_fingerprint
from ketreg.warehouse.sql_files import run_sql_file


class KeyMismatch(RuntimeError):
    """The key is not the one the registry was built with; nothing was changed."""


def mismatch_message(found: str, stored: str, where: str) -> str:
    return (
        f"the pseudonym key's fingerprint {found} does not match {stored}, the fingerprint of the key {where} was "
        "built with. Set this registry's own key; or re-key every patient on purpose with `ketreg run --rekey` "
        "(registries and releases made with different keys cannot be linked). Nothing was changed."
    )


def _stored(path: Path, query: str) -> str | None:
    if not path.is_file():
        return None
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return None  # not readable as a registry: the run itself will say why
    try:
        rows = con.execute(query).fetchall()
    except duckdb.CatalogException:
        return None  # built before fingerprints were recorded
    finally:
        con.close()
    return rows[0][0] if rows else None


def stored_fingerprints(work_db: Path, analyst_db: Path) -> dict[str, str]:
    """{where: fingerprint} recorded in the working store and the analysts' file (absent ones left out)."""
    found = {
        f"the working store {work_db}": _stored(
            work_db, "SELECT key_fingerprint FROM keys.key_history ORDER BY recorded DESC LIMIT 1"
        ),
        f"the analysts' file {analyst_db}": _stored(analyst_db, "SELECT key_fingerprint FROM pseudonym_key"),
    }
    return {where: fingerprint for where, fingerprint in found.items() if fingerprint}


def check_key_matches(key: str, work_db: Path, analyst_db: Path, rekey: bool) -> str | None:
    """Raise KeyMismatch when the registry was built with another key and `rekey` is off. Returns the
    fingerprint being replaced when this run re-keys, else None."""
    fingerprint = key_fingerprint(key)
    for where, stored in stored_fingerprints(work_db, analyst_db).items():
        if stored != fingerprint:
            if not rekey:
                raise KeyMismatch(mismatch_message(fingerprint, stored, where))
            return stored
    return None


def record_key(con: duckdb.DuckDBPyConnection, key: str, rekey: bool, replaces: str | None = None) -> None:
    """Record the key's fingerprint in the working store (refusing another key unless `rekey`) and
    (re)build `registry.pseudonym_key`, the one-row table analysts and release manifests read. `replaces`:
    the fingerprint a re-keying run replaces when the working store is new (a rebuild)."""
    fingerprint = key_fingerprint(key)
    run_sql_file(con, "keys/key_history.sql")
    latest = con.execute(
        "SELECT recorded, key_fingerprint FROM keys.key_history ORDER BY recorded DESC LIMIT 1"
    ).fetchall()
    if not latest and rekey and replaces and replaces != fingerprint:
        con.execute("INSERT INTO keys.key_history VALUES (1, ?, ?, now())", [fingerprint, replaces])
    elif not latest:
        con.execute("INSERT INTO keys.key_history VALUES (1, ?, NULL, NULL)", [fingerprint])
    elif latest[0][1] != fingerprint:
        if not rekey:
            raise KeyMismatch(mismatch_message(fingerprint, latest[0][1], "the working store"))
        con.execute(
            "INSERT INTO keys.key_history VALUES (?, ?, ?, now())", [latest[0][0] + 1, fingerprint, latest[0][1]]
        )
    run_sql_file(con, "keys/pseudonym_key.sql")
