"""A registry run twice for the quality tests: once on synthetic exports with injected faults, then again after
one site re-sent its newest export without faults. Made once per session and shared by
test_quality.py and test_browser.py (`shared_quality_runs`), because each pipeline run costs seconds."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from support import RegistryRun, run_registry

FIXED_SITE = "site_02"


@dataclass(frozen=True)
class QualityRuns:
    first: RegistryRun
    second: RegistryRun
    first_run_id: str
    second_run_id: str
    reports: Path
    manifest: list[dict[str, Any]]

    def work(self, sql: str, params: list[Any] | None = None) -> list[tuple]:
        """Rows of a query on the working database (where quality.* lives), read-only."""
        con = duckdb.connect(str(self.second.work_db), read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()


def _newest_export(landing: Path, site: str) -> str:
    return max(p.name for p in (landing / site).iterdir() if p.is_dir())


_RUNS: list[QualityRuns] = []


def shared_quality_runs(tmp_path_factory: pytest.TempPathFactory) -> QualityRuns:
    """The two runs, made on first use and then shared by every test module of the session."""
    if not _RUNS:
        _RUNS.append(_make_runs(tmp_path_factory))
    return _RUNS[0]


def _make_runs(tmp_path_factory: pytest.TempPathFactory) -> QualityRuns:
    from synthetic import generate_landing

    root = tmp_path_factory.mktemp("quality")
    landing, clean = root / "landing", root / "clean"
    generate_landing(landing, sites=3, patients_per_site=25, seed=5, error_rate=0.05)
    manifest = json.loads((landing / ".generator-manifest.json").read_text(encoding="utf-8"))["faults"]
    out = root / "out"
    first = run_registry(landing, out)
    first_run_id = _latest_run(first.work_db)
    # The site corrects its data and sends its newest export again: the same rows, without the faults.
    generate_landing(clean, sites=3, patients_per_site=25, seed=5, error_rate=0.0)
    export = _newest_export(landing, FIXED_SITE)
    shutil.rmtree(landing / FIXED_SITE / export)
    shutil.copytree(clean / FIXED_SITE / export, landing / FIXED_SITE / export)
    second = run_registry(landing, out)
    return QualityRuns(first, second, first_run_id, _latest_run(second.work_db), out / "reports", manifest)


def _latest_run(work_db: Path) -> str:
    con = duckdb.connect(str(work_db), read_only=True)
    try:
        return con.execute("SELECT arg_max(run_id, run_at) FROM quality.check_results").fetchall()[0][0]
    finally:
        con.close()
