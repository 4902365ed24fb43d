"""Every environment variable ketreg reads, read here and nowhere else (tests/test_layout.py fails on any other
`os.environ` / `os.getenv` in ketreg/, ketreg_app/, pipelines/ or schemas/).

Values are passed down from here: `pipelines/resources.py` builds the Dagster resources from them, the app layer
(`ketreg_app/`) its defaults. The module lives in the library, without Dagster, because a site's light install
(`ketreg check-export`, no Dagster) and the library's own defaults (the sites folder, the limits file) need the
same variables, and the library never imports `pipelines/`.

The pseudonymisation key is the one secret: it is read when a step needs it (`ketreg.registry.pseudonym`), never
put into a resource's fields, because Dagster stores resource config in every run's snapshot (docs/security.md).
An unset or empty variable means "not configured", so each caller keeps its own default."""

from __future__ import annotations

import os
from typing import overload

# Paths of one registry (the `settings` resource of `dagster dev` and the daemon; `ketreg release`).
LANDING = "KETREG_LANDING"  # the landing folder; default demo/landing
ANALYST_DB = "KETREG_DB"  # the analysts' DuckDB file; default demo/registry.duckdb
PROTOCOL_FILE = "KETREG_PROTOCOL"  # the protocol limits file; default config/protocol.yaml
LIMITS_FILE = "KETREG_LIMITS_FILE"  # bounds per export; default config/limits.yaml
SITES_DIR = "KETREG_SITES_DIR"  # the sites' mapping files; default the repository's sites/
RELEASES_DIR = "KETREG_RELEASES"  # where `ketreg release` freezes releases; default ./releases
# Connections and their budget.
PUBLISH_URL = "KETREG_PUBLISH_URL"  # also publish to PostgreSQL (a URL without a password)
STAGING_WORKERS = "KETREG_STAGING_WORKERS"  # processes validating exports at once; default 1
DUCKDB_MEMORY_LIMIT = "KETREG_DUCKDB_MEMORY_LIMIT"  # DuckDB's memory budget for the working store
DUCKDB_THREADS = "KETREG_DUCKDB_THREADS"  # DuckDB's worker threads; default one per core
# Where this deployment's Dagster UI runs (the quality dashboard links to it), over config/quality.yaml.
DAGSTER_URL = "KETREG_DAGSTER_URL"
# Dagster's own: a persistent instance (run history, sensor cursors) when set, a throw-away one otherwise.
DAGSTER_HOME = "DAGSTER_HOME"
# The secret, and the switch that lets the published demo key through (only `make demo` and the tests set it).
PSEUDONYM_KEY = "KETREG_PSEUDONYM_KEY"
PSEUDONYM_KEY_FILE = "KETREG_PSEUDONYM_KEY_FILE"
ALLOW_DEMO_KEY = "KETREG_ALLOW_DEMO_KEY"


@overload
def value(name: str) -> str | None: ...
@overload
def value(name: str, default: str) -> str: ...
@overload
def value(name: str, default: str | None) -> str | None: ...
def value(name: str, default: str | None = None) -> str | None:
    """The variable's value as set (an empty string included), else `default`: the semantics of
    `os.environ.get`, so moving a read here changes nothing."""
    return os.environ.get(name, default)
