"""Fixtures: canonical export rows to change one cell of, a writer of export folders, the pseudonym key,
and pipeline runs made once per session and shared by the tests that only read their databases.

The plain helpers these use live in `support.py`, beside this file, so tests can import them too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import (
    TEST_KEY,
    RegistryRun,
    Rows,
    canonical_rows,
    run_registry,
    write_export,
    write_scenario_landing,
)

GENERATOR_MANIFEST = ".generator-manifest.json"


@pytest.fixture
def rows() -> Rows:
    """A fresh copy of the canonical export's rows, for a test to change."""
    return canonical_rows()


@pytest.fixture
def export_writer() -> Callable[..., Path]:
    """`write_export(landing, site_id, export_id=..., rows=None)`: writes a canonical export folder
    (`<landing>/<site_id>/<export_id>/<table>.csv`) from rows, the canonical ones by default."""
    return write_export


@pytest.fixture
def pseudonym_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """KETREG_PSEUDONYM_KEY set to a test key for this test only."""
    monkeypatch.setenv("KETREG_PSEUDONYM_KEY", TEST_KEY)
    return TEST_KEY


@pytest.fixture(autouse=True)
def _throwaway_dagster_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    # Runs use an ephemeral Dagster instance, never a developer's DAGSTER_HOME.
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


def _generate_landing() -> Callable[..., Any]:
    try:
        from synthetic import generate_landing
    except ImportError as exc:
        pytest.fail(f"synthetic.generate_landing is not available: {exc}")
    return generate_landing


def read_manifest(landing: Path) -> list[dict[str, Any]]:
    """The faults the generator injected: {site_id, export_id, file, source_line, kind, column}."""
    manifest = json.loads((landing / GENERATOR_MANIFEST).read_text(encoding="utf-8"))
    return manifest["faults"] if isinstance(manifest, dict) else manifest


@pytest.fixture(scope="session")
def faulty_registry(tmp_path_factory: pytest.TempPathFactory) -> RegistryRun:
    """Synthetic exports of three sites with about 5 % faulty rows (every fault listed in the generator's
    manifest), run once through the whole pipeline. Shared by tests that only read the result."""
    generate_landing = _generate_landing()
    root = tmp_path_factory.mktemp("faulty")
    landing = root / "landing"
    generate_landing(landing, sites=3, patients_per_site=25, seed=11, error_rate=0.05)
    return run_registry(landing, root / "out", manifest=read_manifest(landing))


@pytest.fixture(scope="session")
def scenario_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hand-made landing folder of `support.write_scenario_landing` (one site per situation)."""
    return write_scenario_landing(tmp_path_factory.mktemp("scenario") / "landing")


@pytest.fixture(scope="session")
def scenario_registry(scenario_landing: Path, tmp_path_factory: pytest.TempPathFactory) -> RegistryRun:
    """The scenario landing folder, run once through the whole pipeline (read-only for tests)."""
    return run_registry(scenario_landing, tmp_path_factory.mktemp("scenario-run"))
