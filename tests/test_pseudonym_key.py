"""The pseudonym key is a secret: read at run time from the environment or a key file, refused when weak,
identified by a fingerprint in the working store, the analysts' file and every release, and never changed
silently (`ketreg run --rekey` re-keys on purpose). Real `ketreg run`s on real DuckDB files."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
from pathlib import Path

import duckdb
import pytest
from support import OTHER_KEY, TEST_KEY, query_db

from ketreg.registry.pseudonym import (
    DEMO_KEY,
    MissingPseudonymKey,
    check_key,
    install_pseudonym_macro,
    key_fingerprint,
)
from ketreg.registry.release import make_release
from ketreg.warehouse.file_modes import SHARED_UMASK
from ketreg_app import cli


def _hmac(key: str, text: str) -> str:
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def _run(tmp_path: Path, *extra: str) -> int:
    return cli.main(["run", "--landing", str(tmp_path / "landing"), "--db", str(tmp_path / "out" / "r.duckdb"),
                     *extra])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("a" * 40, "too simple"),
        ("ab" * 20, "too simple"),
        (" " * 40, "whitespace"),
        ("0123456789abcdef 0123456789abcdef", "whitespace"),
        ("0123456789abcdef0123456789abcde", "too short"),  # 31 bytes
        (DEMO_KEY, "published demo key"),
    ],
    ids=["one-character", "two-characters", "spaces", "inner-blank", "31-bytes", "demo-key"],
)
def test_a_weak_or_published_key_is_refused_naming_the_variable(
    key: str, why: str, tmp_path: Path, export_writer, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.setenv("KETREG_PSEUDONYM_KEY", key)
    monkeypatch.delenv("KETREG_ALLOW_DEMO_KEY", raising=False)
    export_writer(tmp_path / "landing", "steady")

    code = _run(tmp_path)

    error = capsys.readouterr().err
    assert code == 2
    assert "KETREG_PSEUDONYM_KEY" in error and why in error
    assert "secrets.token_hex(32)" in error  # how to make a good one
    assert "Traceback" not in error
    assert not (tmp_path / "out").exists()


def test_the_demo_key_is_accepted_only_where_the_demo_allows_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KETREG_ALLOW_DEMO_KEY", "1")
    check_key(DEMO_KEY)  # `make demo` sets the switch
    with pytest.raises(MissingPseudonymKey):
        check_key("a" * 40)  # the switch allows the demo key only, not weak keys

    monkeypatch.setenv("KETREG_ALLOW_DEMO_KEY", "0")
    with pytest.raises(MissingPseudonymKey, match="published demo key"):
        check_key(DEMO_KEY)


def test_a_key_file_is_read_at_run_time_and_its_line_end_dropped(
    tmp_path: Path, export_writer, monkeypatch: pytest.MonkeyPatch
):
    key_file = tmp_path / "pseudonym.key"
    key_file.write_text(TEST_KEY + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    monkeypatch.delenv("KETREG_PSEUDONYM_KEY", raising=False)
    monkeypatch.setenv("KETREG_PSEUDONYM_KEY_FILE", str(key_file))
    export_writer(tmp_path / "landing", "steady")

    assert _run(tmp_path) == 0

    db = tmp_path / "out" / "r.duckdb"
    keys = {key for (key,) in query_db(db, "SELECT patient_key FROM patients")}
    assert keys == {_hmac(TEST_KEY, "steady/PT-0001"), _hmac(TEST_KEY, "steady/PT-0002")}
    assert query_db(db, "SELECT key_fingerprint FROM pseudonym_key") == [(key_fingerprint(TEST_KEY),)]
    # The working store holds the site id ↔ pseudonym map: private to the registry's account.
    assert stat.S_IMODE((tmp_path / "out" / "r_work.duckdb").stat().st_mode) == 0o600
    assert stat.S_IMODE(db.stat().st_mode) == 0o666 & ~SHARED_UMASK


@pytest.mark.parametrize("problem", ["readable-by-all", "both-variables", "missing"])
def test_a_key_file_that_is_unsafe_or_ambiguous_is_refused(
    problem: str, tmp_path: Path, export_writer, monkeypatch: pytest.MonkeyPatch, capsys
):
    key_file = tmp_path / "pseudonym.key"
    key_file.write_text(TEST_KEY, encoding="utf-8")
    key_file.chmod(0o644 if problem == "readable-by-all" else 0o600)
    monkeypatch.setenv("KETREG_PSEUDONYM_KEY_FILE", str(key_file if problem != "missing" else tmp_path / "nope"))
    if problem == "both-variables":
        monkeypatch.setenv("KETREG_PSEUDONYM_KEY", TEST_KEY)
    else:
        monkeypatch.delenv("KETREG_PSEUDONYM_KEY", raising=False)
    export_writer(tmp_path / "landing", "steady")

    assert _run(tmp_path) == 2
    assert "KETREG_PSEUDONYM_KEY_FILE" in capsys.readouterr().err


@pytest.mark.slow
def test_another_key_is_refused_and_changes_nothing_until_rekey_says_so(
    tmp_path: Path, export_writer, monkeypatch: pytest.MonkeyPatch, capsys
):
    export_writer(tmp_path / "landing", "steady")
    db, work = tmp_path / "out" / "r.duckdb", tmp_path / "out" / "r_work.duckdb"
    monkeypatch.setenv("KETREG_PSEUDONYM_KEY", TEST_KEY)
    assert _run(tmp_path) == 0
    capsys.readouterr()
    before = (_sha256(db), _sha256(work))

    # A run with another key: refused up front, both fingerprints named, nothing touched.
    monkeypatch.setenv("KETREG_PSEUDONYM_KEY", OTHER_KEY)
    assert _run(tmp_path) == 2
    error = capsys.readouterr().err
    assert key_fingerprint(TEST_KEY) in error and key_fingerprint(OTHER_KEY) in error
    assert "--rekey" in error
    assert (_sha256(db), _sha256(work)) == before
    assert _run(tmp_path, "--rebuild") == 2  # a rebuild does not get around it either
    capsys.readouterr()
    assert (_sha256(db), _sha256(work)) == before

    # On purpose: every patient re-keyed, and the summary, the table and the next release say so.
    assert _run(tmp_path, "--rekey") == 0
    assert "RE-KEYED" in capsys.readouterr().out
    keys = {key for (key,) in query_db(db, "SELECT patient_key FROM patients")}
    assert keys == {_hmac(OTHER_KEY, "steady/PT-0001"), _hmac(OTHER_KEY, "steady/PT-0002")}
    assert query_db(db, "SELECT key_fingerprint, rekeyed_from FROM pseudonym_key") == [
        (key_fingerprint(OTHER_KEY), key_fingerprint(TEST_KEY)),
    ]
    manifest = json.loads((make_release("after-rekey", db, tmp_path / "releases") / "manifest.json").read_text())
    assert manifest["pseudonym_key"]["fingerprint"] == key_fingerprint(OTHER_KEY)
    assert manifest["pseudonym_key"]["rekeyed"] is True
    assert manifest["pseudonym_key"]["rekeyed_from"] == key_fingerprint(TEST_KEY)
    assert TEST_KEY not in json.dumps(manifest) and OTHER_KEY not in json.dumps(manifest)

    # The new key is now the registry's key; the old one is refused.
    assert _run(tmp_path) == 0
    monkeypatch.setenv("KETREG_PSEUDONYM_KEY", TEST_KEY)
    assert _run(tmp_path) == 2

    # Re-keying with a rebuild (a new working store) still records what it replaced.
    third = "third-pseudonym-key-for-the-rebuild-0123456789"
    monkeypatch.setenv("KETREG_PSEUDONYM_KEY", third)
    assert _run(tmp_path, "--rekey", "--rebuild") == 0
    assert query_db(db, "SELECT key_fingerprint, rekeyed_from FROM pseudonym_key") == [
        (key_fingerprint(third), key_fingerprint(OTHER_KEY)),
    ]


def test_the_key_resource_holds_no_key_so_dagster_never_stores_one():
    from pipelines.resources import PseudonymKey

    assert set(PseudonymKey.model_fields) == {"rekey", "replaces_fingerprint"}


def test_a_scheduled_run_with_another_key_fails_in_its_registry_step_and_rekey_is_recorded():
    # Sensor and schedule runs do not pass through `ketreg run`'s up-front check: the registry step refuses.
    import duckdb

    from ketreg.registry.key_fingerprint import KeyMismatch, record_key

    con = duckdb.connect()
    con.execute("CREATE SCHEMA registry")
    record_key(con, TEST_KEY, rekey=False)
    record_key(con, TEST_KEY, rekey=False)  # the same key again: nothing new
    with pytest.raises(KeyMismatch, match=key_fingerprint(TEST_KEY)):
        record_key(con, OTHER_KEY, rekey=False)
    record_key(con, OTHER_KEY, rekey=True)

    history = con.execute(
        "SELECT recorded, key_fingerprint, previous_key_fingerprint FROM keys.key_history ORDER BY recorded"
    ).fetchall()
    assert history == [(1, key_fingerprint(TEST_KEY), None), (2, key_fingerprint(OTHER_KEY), key_fingerprint(TEST_KEY))]
    assert con.execute("SELECT key_fingerprint, rekeyed_from FROM registry.pseudonym_key").fetchall() == [
        (key_fingerprint(OTHER_KEY), key_fingerprint(TEST_KEY)),
    ]


def test_pseudonym_macro_text_holds_no_key_material():
    # DuckDB shows a macro's text in duckdb_functions() and quotes SQL in its errors: the key and the padded
    # keys HMAC derives from it (which give the key back by one XOR) go in as bound parameters only.
    con = duckdb.connect()
    install_pseudonym_macro(con, TEST_KEY)
    padded = TEST_KEY.encode().ljust(64, b"\0")
    secrets = {TEST_KEY, *(bytes(b ^ pad for b in padded).hex() for pad in (0x36, 0x5C))}
    (definition,) = con.execute(
        "SELECT macro_definition FROM duckdb_functions() WHERE function_name = 'pseudonym'"
    ).fetchone()
    assert not [secret for secret in secrets if secret.lower() in definition.lower()]
    assert con.execute("SELECT pseudonym('site_a/PT-0001')").fetchone()[0] == _hmac(TEST_KEY, "site_a/PT-0001")
