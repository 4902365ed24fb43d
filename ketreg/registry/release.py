"""Frozen releases of the published registry: `releases/<name>/registry.duckdb` and a manifest that lets
anyone check later that the data an analysis cites is exactly the data that was released."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import duckdb

from ketreg.landing.discovery import file_sha256
from ketreg.privacy.settings import load_privacy_settings
from ketreg.registry.aggregates import AGGREGATES_FOLDER, verify_aggregates, write_aggregates
from ketreg.registry.data_dictionary import DATA_PACKAGE_FILE, write_data_package
from ketreg.warehouse.sql_files import sql_text

RELEASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
DATABASE_FILE = "registry.duckdb"
MANIFEST_FILE = "manifest.json"
_ROOT = Path(__file__).resolve().parents[2]


class ReleaseError(RuntimeError):
    """A release cannot be made or does not verify; the message says what and why."""


def table_fingerprints(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, object]]:
    """Row count and content hash of every table. The hash sums the MD5 of each row's text, so it does not
    depend on row order or storage layout, only on the values."""
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database() ORDER BY ALL"
    ).fetchall()
    fingerprints: dict[str, dict[str, object]] = {}
    for schema, table in tables:
        name = table if schema == "main" else f"{schema}.{table}"
        rows, lower, upper = con.execute(
            f"SELECT count(*), coalesce(sum(md5_number_lower(t::VARCHAR)), 0), "
            f"coalesce(sum(md5_number_upper(t::VARCHAR)), 0) FROM {schema}.{table} AS t"
        ).fetchall()[0]
        content = hashlib.sha256(f"{rows}:{lower}:{upper}".encode()).hexdigest()
        fingerprints[name] = {"rows": rows, "content_sha256": content}
    return fingerprints


def _code_version() -> dict[str, str | None]:
    try:
        package = version("ketreg")
    except PackageNotFoundError:
        package = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(["git", "status", "--porcelain"], cwd=_ROOT, capture_output=True, text=True).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, False
    return {"package": package, "git_commit": commit, "uncommitted_changes": str(dirty).lower()}


def _exports(con: duckdb.DuckDBPyConnection) -> list[dict[str, object]]:
    rows = con.execute(sql_text("release/exports.sql")).fetchall()
    return [
        {"site_id": s, "export_id": x, "status": st, "is_current": cur, "files": files or []}
        for s, x, st, cur, files in rows
    ]


def _protocol(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    frame = con.execute("SELECT * FROM protocol").fetchall()
    columns = [c[0] for c in con.description]
    return dict(zip(columns, frame[0], strict=True)) if frame else {}


def _pseudonym_key(con: duckdb.DuckDBPyConnection) -> dict[str, object] | None:
    """The fingerprint of the key the released pseudonyms were made with (never the key), and whether the
    registry was re-keyed: releases with different fingerprints cannot be linked patient by patient."""
    try:
        rows = con.execute("SELECT key_fingerprint, rekeyed_from, rekeyed_at FROM pseudonym_key").fetchall()
    except duckdb.CatalogException:
        return None  # published before fingerprints were recorded
    if not rows:
        return None
    fingerprint, rekeyed_from, rekeyed_at = rows[0]
    return {
        "fingerprint": fingerprint,
        "rekeyed": rekeyed_from is not None,
        "rekeyed_from": rekeyed_from,
        "rekeyed_at": rekeyed_at.isoformat() if rekeyed_at is not None else None,
    }


def make_release(name: str, analyst_db: Path, releases_dir: Path, small_cell_count: int | None = None) -> Path:
    """Freeze `analyst_db` as release `name`, with its shareable aggregates (small cells suppressed: counts
    below `small_cell_count`, by default config/privacy.yaml's); refuses to overwrite an existing release."""
    if small_cell_count is None:
        small_cell_count = load_privacy_settings().small_cell_count
    if not RELEASE_NAME.match(name):
        raise ReleaseError(f"release name {name!r} must match {RELEASE_NAME.pattern}")
    if not analyst_db.is_file():
        raise ReleaseError(f"no published registry at {analyst_db}; run `ketreg run` first")
    target = releases_dir / name
    if target.exists():
        raise ReleaseError(f"release {name} already exists in {releases_dir}; releases are never overwritten")
    building = releases_dir / f".{name}.building"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    # The published file is replaced by rename, never rewritten, so this copy is one consistent snapshot.
    shutil.copyfile(analyst_db, building / DATABASE_FILE)
    con = duckdb.connect(str(building / DATABASE_FILE), read_only=True)
    try:
        manifest: dict[str, object] = {
            "release": name,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "source_database": str(analyst_db),
            "code_version": _code_version(),
            "protocol": _protocol(con),
            "pseudonym_key": _pseudonym_key(con),
            "exports": _exports(con),
            "tables": table_fingerprints(con),
        }
    finally:
        con.close()
    manifest["database_file_sha256"] = file_sha256(building / DATABASE_FILE)
    # The data dictionary of exactly this file (Frictionless Data Package: types, docs, constraints, keys).
    package = write_data_package(
        building / DATABASE_FILE, building / DATA_PACKAGE_FILE, f"ketreg-registry-{name.lower()}"
    )
    manifest["data_dictionary"] = {"file": DATA_PACKAGE_FILE, "sha256": file_sha256(package)}
    # The shareable figures, small cells suppressed (the only part of a release meant to leave the team).
    manifest[AGGREGATES_FOLDER] = write_aggregates(
        building / DATABASE_FILE, building / AGGREGATES_FOLDER, small_cell_count, name
    )
    (building / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    for path in sorted(building.rglob("*"), reverse=True):  # files before their folder
        read_only = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
        path.chmod(read_only | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH if path.is_dir() else read_only)
    building.rename(target)
    return target


@dataclass
class Verification:
    release: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_release(name: str, releases_dir: Path) -> Verification:
    """Recompute every hash of release `name` and compare it with its manifest."""
    folder = releases_dir / name
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        return Verification(name, [f"release {name} has no {MANIFEST_FILE} in {folder}"])
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    database = folder / DATABASE_FILE
    if not database.is_file():
        return Verification(name, [f"release {name} has no {DATABASE_FILE}"])
    problems: list[str] = []
    if file_sha256(database) != manifest.get("database_file_sha256"):
        problems.append(f"{DATABASE_FILE}: the file's SHA-256 differs from the manifest (the file was changed)")
    try:
        con = duckdb.connect(str(database), read_only=True)
    except duckdb.Error as exc:
        return Verification(name, [*problems, f"{DATABASE_FILE} cannot be opened: {exc}"])
    try:
        found = table_fingerprints(con)
    finally:
        con.close()
    problems += verify_aggregates(folder, manifest)
    dictionary = manifest.get("data_dictionary")
    if dictionary is not None:  # releases made before the data dictionary have none
        path = folder / dictionary["file"]
        if not path.is_file():
            problems.append(f"{dictionary['file']}: in the manifest but missing from the release")
        elif file_sha256(path) != dictionary["sha256"]:
            problems.append(f"{dictionary['file']}: the file's SHA-256 differs from the manifest (it was changed)")
    expected = manifest.get("tables", {})
    for table in sorted(set(expected) | set(found)):
        if table not in found:
            problems.append(f"table {table}: in the manifest but missing from the database")
        elif table not in expected:
            problems.append(f"table {table}: in the database but not in the manifest")
        elif found[table] != expected[table]:
            problems.append(
                f"table {table}: expected {expected[table]['rows']} rows with content hash "
                f"{str(expected[table]['content_sha256'])[:12]}…, found {found[table]['rows']} rows with "
                f"{str(found[table]['content_sha256'])[:12]}…"
            )
    return Verification(name, problems)
