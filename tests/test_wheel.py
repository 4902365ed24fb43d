"""The built wheel carries the SQL, configuration and vendored files, and the installed package finds them from
outside the repository: they are package data read through importlib.resources, not folders found by counting
parents of `__file__` (which only exist in a checkout).

Nothing is downloaded: the wheel is built with the .venv's setuptools (no build isolation) and installed with
--no-deps --no-index into a fresh venv that sees the .venv's third-party packages through a .pth line (a path
line only: the .venv's own .pth files, among them the editable install of this checkout, are not run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from support import canonical_rows, write_export

pytestmark = pytest.mark.slow  # builds and installs a wheel: about 20 s
ROOT = Path(__file__).resolve().parents[1]
_NOT_SOURCE = shutil.ignore_patterns(
    ".venv*", ".git", "demo", "build", "dist", "test-artifacts", "releases", "__pycache__", "*.egg-info",
    ".pytest_cache", ".ruff_cache", "*.duckdb*", "benchmarks",
)


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(wheel, venv, environment): the wheel built from a copy of the source and installed into a fresh venv."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)  # the build writes build/ and *.egg-info: not in the checkout
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                  "--quiet", "-w", str(tmp / "dist"), str(source)], cwd=tmp, env=env)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("ketreg-*.whl")

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=tmp, env=env).stdout.strip())
    (purelib / "ketreg_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    install = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "--quiet", str(wheel)], cwd=tmp, env=env)
    assert install.returncode == 0, install.stderr[-3000:]
    return wheel, venv, env


def test_the_wheel_holds_every_sql_config_and_vendored_file(installed: tuple[Path, Path, dict[str, str]]) -> None:
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        path.relative_to(ROOT).as_posix()
        for pattern in ("sql/**/*.sql", "config/*.yaml", "vendor/data-docs/**/*", "schemas/columns/*.yaml",
                        "ketreg/quality/templates/*")
        for path in ROOT.glob(pattern)
        if path.is_file()
    }
    assert any(name.startswith("sql/registry/") for name in expected)  # the globs found the data at all
    assert expected - names == set()
    # The synthetic generator is a dev tool (synthetic/ at the repository root), not the product: not in the wheel.
    assert (ROOT / "synthetic" / "generate.py").is_file()  # it exists in the checkout, so its absence means something
    assert [name for name in names if "synthetic" in name.split("/")] == []


def test_the_installed_package_finds_its_sql_and_config_outside_the_repository(
    installed: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    _, venv, env = installed
    probe = (
        "import json, ketreg, sql, config, vendor\n"
        "from ketreg.package_data import config_file\n"
        "from ketreg.warehouse.sql_files import SQL_DIR, sql_text\n"
        "from ketreg.landing.limits import load_limits\n"
        "from ketreg.quality.offline_docs import VENDOR_DIR\n"
        "from schemas.protocol import load_metric_settings, load_protocol\n"
        "from schemas.column_docs import load_table_docs\n"
        "print(json.dumps({'modules': [m.__file__ for m in (ketreg, sql, config, vendor)],\n"
        "  'sql_dir': str(SQL_DIR), 'protocol_file': str(config_file('protocol.yaml')),\n"
        "  'vendor': sorted(p.name for p in VENDOR_DIR.iterdir()),\n"
        "  'protocol': load_protocol().name, 'durable_relief_days': load_metric_settings().durable_relief_days,\n"
        "  'max_rows': load_limits().max_rows, 'patients_sql': sql_text('registry/patients.sql'),\n"
        "  'documented_tables': len(load_table_docs())}))\n"
    )
    found = _run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, env=env)
    assert found.returncode == 0, found.stderr[-3000:]
    seen = json.loads(found.stdout)
    for file in [*seen["modules"], seen["sql_dir"], seen["protocol_file"]]:
        assert Path(file).is_relative_to(venv), f"{file} is not the installed copy"
    assert seen["patients_sql"] == (ROOT / "sql" / "registry" / "patients.sql").read_text(encoding="utf-8")
    assert seen["protocol"] and seen["durable_relief_days"] >= 0 and seen["max_rows"] > 0
    assert "bootstrap" in seen["vendor"]
    assert seen["documented_tables"] == len(list((ROOT / "schemas" / "columns").glob("*.yaml"))) > 0

    # The site's command end to end: contract, protocol and limits from config/, the deviation SQL from sql/.
    rows = canonical_rows()
    rows["patients"][1]["sex"] = "W"
    folder = write_export(tmp_path / "outbox", "site_a", rows=rows)
    checked = _run([str(venv / "bin" / "ketreg"), "check-export", str(folder), "--site", "site_a"],
                   cwd=tmp_path, env=env)
    assert checked.returncode == 1, checked.stderr[-3000:]
    assert "code on sex: 1 row(s)" in checked.stdout
    assert "Traceback" not in checked.stderr
    version = _run([str(venv / "bin" / "ketreg"), "--version"], cwd=tmp_path, env=env)
    assert version.stdout.strip() == "ketreg 0.1.0"
    # Neither the generator nor a command for it in the installed product.
    generator = _run([str(venv / "bin" / "python"), "-c", "import synthetic"], cwd=tmp_path, env=env)
    assert "No module named 'synthetic'" in generator.stderr
    generate = _run([str(venv / "bin" / "ketreg"), "generate", "--out", str(tmp_path / "x")], cwd=tmp_path, env=env)
    assert generate.returncode == 2 and "invalid choice: 'generate'" in generate.stderr
