"""The product does not depend on the synthetic generator: `synthetic/` is a dev tool at the repository root,
outside the wheel (tests/test_wheel.py), so nothing in `ketreg`, `pipelines` or `schemas` may import it — neither
at import time (checked by importing every module in a fresh interpreter) nor inside a function (checked in the
source, where a lazy `import synthetic` would hide from the first check)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("ketreg", "pipelines", "schemas")


def _product_sources() -> list[Path]:
    return sorted(path for package in PRODUCT for path in (ROOT / package).rglob("*.py"))


def test_importing_every_product_module_never_loads_the_generator() -> None:
    modules = []
    for path in _product_sources():
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    assert len(modules) > 50 and "pipelines.definitions" in modules  # the walk found the product at all
    probe = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    if name.endswith('__main__'):\n"
        "        continue\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'synthetic' or m.startswith('synthetic.'))))\n"
    )
    # cwd is the repository root, so `synthetic` could be imported: its absence is the product's choice.
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_no_product_source_imports_the_generator() -> None:
    offenders = []
    for path in _product_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {name}" for name in names
                          if name == "synthetic" or name.startswith("synthetic.")]
    assert offenders == []


def test_the_generator_is_not_a_subpackage_of_the_product() -> None:
    assert (ROOT / "synthetic" / "__main__.py").is_file()
    assert not (ROOT / "ketreg" / "synthetic").exists()
