"""Usage and configuration errors exit 2 with one clear line on stderr and no traceback, as the README
promises; `ketreg --version` names the installed version. Each case runs the real command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from support import TEST_KEY, write_export


def _ketreg(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "KETREG_PSEUDONYM_KEY": TEST_KEY, **(env or {})}
    environment.pop("DAGSTER_HOME", None)
    return subprocess.run([sys.executable, "-m", "ketreg_app.cli", *args], capture_output=True, text=True,
                          env=environment, timeout=300)


def _assert_usage_error(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr


@pytest.fixture
def broken_protocol(tmp_path: Path) -> Path:
    path = tmp_path / "protocol.yaml"
    path.write_text("name: ketamine\nversion: 1\ntitration:\n  max_rate_mg_h: [70\n", encoding="utf-8")
    return path


def test_run_with_a_protocol_file_that_is_not_yaml_exits_2_naming_the_line(tmp_path: Path,
                                                                           broken_protocol: Path) -> None:
    landing = tmp_path / "landing"
    write_export(landing, "site_a")
    result = _ketreg("run", "--landing", str(landing), "--db", str(tmp_path / "r.duckdb"),
                     "--protocol", str(broken_protocol))
    _assert_usage_error(result, str(broken_protocol), "line 5")
    assert not (tmp_path / "r.duckdb").exists()


def test_check_export_with_a_protocol_file_that_is_not_yaml_exits_2_not_1(tmp_path: Path,
                                                                         broken_protocol: Path) -> None:
    folder = write_export(tmp_path / "landing", "site_a")
    result = _ketreg("check-export", str(folder), "--site", "site_a", "--protocol", str(broken_protocol))
    _assert_usage_error(result, "fix the YAML syntax")


def test_run_with_a_db_that_cannot_be_written_exits_2_before_running(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write_export(landing, "site_a")
    result = _ketreg("run", "--landing", str(landing), "--db", "/dev/null/x.duckdb")
    _assert_usage_error(result, "--db /dev/null/x.duckdb")


def test_bad_sites_dir_exits_2_from_the_flag_and_from_the_environment(tmp_path: Path) -> None:
    folder = write_export(tmp_path / "landing", "site_a")
    flag = _ketreg("check-export", str(folder), "--site", "site_a", "--sites-dir", str(tmp_path / "nowhere"))
    _assert_usage_error(flag, "--sites-dir", "is not a folder")
    env = _ketreg("check-export", str(folder), "--site", "site_a", env={"KETREG_SITES_DIR": str(tmp_path / "no")})
    _assert_usage_error(env, "KETREG_SITES_DIR", "is not a folder")


def test_version_prints_the_installed_version() -> None:
    result = _ketreg("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"ketreg {version('ketreg')}"
