"""Keyed pseudonyms (HMAC-SHA256) computed inside DuckDB, so site ids never leave the working database.

The key is a secret read at run time, from `KETREG_PSEUDONYM_KEY` or the file `KETREG_PSEUDONYM_KEY_FILE`
names: never from Dagster config (Dagster stores run config in its run snapshots), never written anywhere.
Only its fingerprint (`key_fingerprint`) is stored, so a run with another key is noticed.
"""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

import duckdb

from ketreg import environment

KEY_VARIABLE = environment.PSEUDONYM_KEY
KEY_FILE_VARIABLE = environment.PSEUDONYM_KEY_FILE
# Set only by `make demo` and the test suite: the published demo key is refused everywhere else.
ALLOW_DEMO_KEY_VARIABLE = environment.ALLOW_DEMO_KEY
# Published on purpose in the Makefile and the README: fit for synthetic data only.
DEMO_KEY = "ketreg-demo-key-synthetic-data-only"
MIN_KEY_BYTES = 32
MIN_DISTINCT_CHARACTERS = 8
FINGERPRINT_MESSAGE = b"ketreg key id"
_BLOCK = 64  # SHA-256 block size in bytes (RFC 2104)
_HOW_TO = 'make one with `python -c "import secrets; print(secrets.token_hex(32))"` (docs/security.md)'


class MissingPseudonymKey(RuntimeError):
    """No usable key: the registry refuses to run rather than write guessable keys."""


def key_from_environment() -> str:
    """The pseudonymisation key from KETREG_PSEUDONYM_KEY, or from the file KETREG_PSEUDONYM_KEY_FILE names
    (one line; its line end is dropped). Refuses a missing, weak or published key, naming the variable."""
    direct = environment.value(KEY_VARIABLE)
    file_name = environment.value(KEY_FILE_VARIABLE)
    if direct and file_name:
        raise MissingPseudonymKey(f"both {KEY_VARIABLE} and {KEY_FILE_VARIABLE} are set; set only one")
    if file_name:
        key, variable = _key_from_file(Path(file_name)), KEY_FILE_VARIABLE
    else:
        key, variable = direct or "", KEY_VARIABLE
    check_key(key, variable)
    return key


def _key_from_file(path: Path) -> str:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise MissingPseudonymKey(f"{KEY_FILE_VARIABLE} names {path}, which is not a regular file")
        if info.st_mode & stat.S_IROTH:
            raise MissingPseudonymKey(
                f"{KEY_FILE_VARIABLE} names {path}, which every user of this machine can read; "
                f"make it private (chmod 600 {path})"
            )
        raw = path.read_bytes()[: 1 << 16]
    except OSError as exc:
        raise MissingPseudonymKey(f"{KEY_FILE_VARIABLE} names {path}, which cannot be read ({exc.strerror})") from exc
    try:
        return raw.decode("utf-8").removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError as exc:
        raise MissingPseudonymKey(f"{KEY_FILE_VARIABLE} names {path}, which is not UTF-8 text") from exc


def check_key(key: str, variable: str = KEY_VARIABLE) -> None:
    """Refuse a key an attacker could guess: missing, under 32 bytes, whitespace, too few distinct
    characters (`aaaa…`, `abab…`), or the published demo key (unless the demo allows it)."""
    problem = None
    if not key:
        problem = "is not set"
    elif key == DEMO_KEY:
        if environment.value(ALLOW_DEMO_KEY_VARIABLE) == "1":
            return
        problem = (f"is the published demo key, fit only for synthetic data (`make demo` allows it with "
                   f"{ALLOW_DEMO_KEY_VARIABLE}=1)")
    elif len(key.encode()) < MIN_KEY_BYTES:
        problem = f"is too short ({len(key.encode())} bytes; at least {MIN_KEY_BYTES} are needed)"
    elif any(c.isspace() for c in key):
        problem = "contains whitespace (a pasted line break or blank?)"
    elif len(set(key)) < MIN_DISTINCT_CHARACTERS:
        problem = f"is too simple (fewer than {MIN_DISTINCT_CHARACTERS} different characters)"
    if problem is not None:
        raise MissingPseudonymKey(
            f"{variable} {problem}: set it to a secret of at least {MIN_KEY_BYTES} bytes, the same for every run "
            f"of this registry (losing it changes every patient key); {_HOW_TO}"
        )


def key_fingerprint(key: str) -> str:
    """An identifier of the key that reveals nothing about it: the first 16 hex of HMAC(key, "ketreg key id")."""
    return hmac.new(key.encode(), FINGERPRINT_MESSAGE, hashlib.sha256).hexdigest()[:16]


def install_pseudonym_macro(con: duckdb.DuckDBPyConnection, key: str) -> None:
    """Define `pseudonym(text) → hex HMAC-SHA256(key, text)` for this connection only (a TEMP macro is
    never written to the database file). The padded keys go in as bound parameters of connection variables,
    never as SQL text: the macro's text (which DuckDB shows in `duckdb_functions()` and quotes in errors)
    names the variables only."""
    if not key:
        raise MissingPseudonymKey(f"{KEY_VARIABLE} is not set")
    secret = key.encode()
    if len(secret) > _BLOCK:
        secret = hashlib.sha256(secret).digest()
    secret = secret.ljust(_BLOCK, b"\0")
    con.execute(f"SET VARIABLE {_INNER_PAD} = ?", [bytes(b ^ 0x36 for b in secret)])
    con.execute(f"SET VARIABLE {_OUTER_PAD} = ?", [bytes(b ^ 0x5C for b in secret)])
    con.execute(
        "CREATE OR REPLACE TEMP MACRO pseudonym(message) AS "
        f"sha256(getvariable('{_OUTER_PAD}') || unhex(sha256(getvariable('{_INNER_PAD}') || encode(message))))"
    )


# Connection variables (in memory, gone with the connection) holding the key XOR-ed with HMAC's pads.
_INNER_PAD = "ketreg_hmac_inner_pad"
_OUTER_PAD = "ketreg_hmac_outer_pad"
