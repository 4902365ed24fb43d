"""Keyed pseudonyms (HMAC-SHA256) computed inside DuckDB, so site ids never leave the working database."""

from __future__ import annotations

import hashlib
import os

import duckdb

KEY_VARIABLE = "KETREG_PSEUDONYM_KEY"
MIN_KEY_LENGTH = 16
_BLOCK = 64  # SHA-256 block size in bytes (RFC 2104)


class MissingPseudonymKey(RuntimeError):
    """No usable key: the registry refuses to run rather than write guessable keys."""


def key_from_environment() -> str:
    """The pseudonymisation key from KETREG_PSEUDONYM_KEY; refuses a missing or short key."""
    key = os.environ.get(KEY_VARIABLE, "")
    check_key(key)
    return key


def check_key(key: str) -> None:
    if len(key) < MIN_KEY_LENGTH:
        raise MissingPseudonymKey(
            f"{KEY_VARIABLE} is {'not set' if not key else 'too short'}: set it to a secret of at least "
            f"{MIN_KEY_LENGTH} characters, the same for every run of this registry (losing it changes every "
            "patient key). `make demo` uses a published demo key, which must never be used for real data."
        )


def install_pseudonym_macro(con: duckdb.DuckDBPyConnection, key: str) -> None:
    """Define `pseudonym(text) → hex HMAC-SHA256(key, text)` for this connection only (a TEMP macro is
    never written to the database file)."""
    check_key(key)
    secret = key.encode()
    if len(secret) > _BLOCK:
        secret = hashlib.sha256(secret).digest()
    secret = secret.ljust(_BLOCK, b"\0")
    inner_pad = bytes(b ^ 0x36 for b in secret).hex()
    outer_pad = bytes(b ^ 0x5C for b in secret).hex()
    con.execute(
        "CREATE OR REPLACE TEMP MACRO pseudonym(message) AS "
        f"sha256(unhex('{outer_pad}') || unhex(sha256(unhex('{inner_pad}') || encode(message))))"
    )
