"""A site's light install: the package without its platform dependencies plus only the `site` extra, pinned by
requirements.lock, in a fresh virtual environment. `ketreg check-export` runs there, and Dagster, Great
Expectations, statsmodels and pandas are not even installed."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from support import canonical_rows, write_export

ROOT = Path(__file__).resolve().parents[1]


def _site_requirements() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"]["site"]


def test_the_site_extra_holds_none_of_the_platform() -> None:
    names = {re.split(r"[\[<>=]", requirement)[0].lower() for requirement in _site_requirements()}
    assert {"polars", "pandera", "openpyxl", "pyyaml", "duckdb"} <= names
    assert not names & {"dagster", "dagster-webserver", "great-expectations", "statsmodels", "pandas"}


@pytest.mark.slow
def test_check_export_runs_in_a_fresh_venv_with_only_the_site_extra(tmp_path: Path) -> None:
    venv = tmp_path / "site-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True, timeout=600, capture_output=True)
    subprocess.run([*pip, "-c", str(ROOT / "requirements.lock"), *_site_requirements()],
                   check=True, timeout=900, capture_output=True)

    rows = canonical_rows()
    rows["patients"][1]["sex"] = "W"
    folder = write_export(tmp_path / "outbox", "site_a", rows=rows)
    ketreg = str(venv / "bin" / "ketreg")
    result = subprocess.run([ketreg, "check-export", str(folder), "--site", "site_a"], capture_output=True,
                            text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "code on sex: 1 row(s)" in result.stdout
    assert "Traceback" not in result.stderr

    absent = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import importlib.util as u; print([m for m in ('dagster', 'great_expectations', 'statsmodels', 'pandas') "
         "if u.find_spec(m)])"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert absent.stdout.strip() == "[]"
