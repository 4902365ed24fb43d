"""The inputs fingerprint of a run: one hash of everything the registry, metrics, quality and publish steps
read besides the landing folder's bytes. Two runs with the same fingerprint build the same outputs, so the
second may leave them as they are (ketreg/incremental/ledger.py).

What goes in, and why each part is there:
- every staged export's fingerprint and status (`staging.exports`): the export's content hash joined with
  the validation rules' fingerprint (contract code and protocol; ketreg/staging/stage.py), and a digest of
  each site's staged rows (ketreg/incremental/sites.py), so a working store edited by hand is not trusted;
- the landing notices of this scan (stray files, retired folders), which the sites' folders list;
- the retired sites (`--retire-site` and RETIRED files), which decide what may leave the registry;
- the code: every Python source of `ketreg/`, `pipelines/`, `schemas/` and every SQL file of `sql/`, and the
  configuration files of `config/` (limits, quality, privacy settings);
- the protocol file's bytes (limits and metric settings), the landing limits in force (a limits file given
  on the command line or by KETREG_LIMITS_FILE), the sites' mapping files, and the run's settings (paths,
  thresholds); not the connections (the working store, DuckDB's memory and threads, the PostgreSQL target),
  which change no output (pipelines/skipping.py);
- the pseudonym key's fingerprint (never the key) and whether the run re-keys.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, is_dataclass
from pathlib import Path

import duckdb

from ketreg import environment
from ketreg.incremental.sites import site_digests
from ketreg.landing.retired import retired_sites
from ketreg.package_data import package_folder

# Code and configuration whose change may change an output. Tests, docs and the synthetic generator (its own
# top-level package, synthetic/, outside these folders: it writes landings, never reads one) are left out.
_CODE_GLOBS = (
    ("ketreg", "**/*.py"),
    ("pipelines", "**/*.py"),
    ("schemas", "**/*.py"),
    ("sql", "**/*.sql"),
    ("config", "**/*"),
)


def code_fingerprint() -> str:
    """SHA-256 over the path and bytes of every source and configuration file the outputs depend on."""
    digest = hashlib.sha256()
    for folder, pattern in _CODE_GLOBS:
        root = package_folder(folder)  # code and data packages alike, from a checkout or an installed wheel
        for path in sorted(root.glob(pattern)):
            relative = f"{folder}/{path.relative_to(root).as_posix()}"
            if not path.is_file() or "__pycache__" in relative:
                continue
            digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _folder_fingerprint(folder: Path, pattern: str) -> str:
    digest = hashlib.sha256()
    if folder.is_dir():
        for path in sorted(folder.glob(pattern)):
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _file_fingerprint(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path and Path(path).is_file() else ""


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[list[str]]:
    try:
        return [[str(value) for value in row] for row in con.execute(sql).fetchall()]
    except duckdb.CatalogException:
        return []  # a table this working store does not have yet


def inputs_fingerprint(
    con: duckdb.DuckDBPyConnection,
    settings: dict[str, object],
    *,
    landing: Path,
    retire: list[str],
    protocol_file: str,
    limits: object,
    sites_dir: Path,
    key_fingerprint: str,
    rekey: bool,
    run_id: str,
) -> tuple[str, dict[str, str]]:
    """The run's inputs fingerprint and its parts (each a hash), read after staging has run.
    `settings` are the run's settings (RegistrySettings' fields); `limits` the landing limits in force."""
    exports = _rows(con, "SELECT site_id, export_id, fingerprint, status FROM staging.exports ORDER BY ALL")
    notices = _rows(con, "SELECT * FROM landing.notices ORDER BY ALL")
    if is_dataclass(limits) and not isinstance(limits, type):
        limits_repr = json.dumps(asdict(limits), sort_keys=True, default=str)
    else:
        limits_repr = repr(limits)
    parts = {
        "exports": json.dumps(exports),
        # The staged rows themselves, per site: a working store changed behind the pipeline's back rebuilds.
        "staged_rows": json.dumps(sorted(site_digests(con, run_id).items())),
        "landing_notices": json.dumps(notices),
        "retired_sites": json.dumps(sorted(retired_sites(landing, retire)) if landing.is_dir() else sorted(retire)),
        "code": code_fingerprint(),
        "protocol_file": _file_fingerprint(protocol_file),
        "limits": limits_repr,
        "site_mappings": _folder_fingerprint(sites_dir, "*.y*ml"),
        "settings": json.dumps(settings, sort_keys=True, default=str),
        # The links written into the dashboard.
        "quality_environment": environment.value(environment.DAGSTER_URL, ""),
        "pseudonym_key": f"{key_fingerprint}:rekey={rekey}",
    }
    hashed = {name: hashlib.sha256(value.encode()).hexdigest()[:16] for name, value in parts.items()}
    whole = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:32]
    return whole, hashed
