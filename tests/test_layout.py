"""The layers import downwards only.

- The product does not depend on the synthetic generator: `synthetic/` is a dev tool at the repository root,
  outside the wheel (tests/test_wheel.py), so nothing in `ketreg`, `ketreg_app`, `pipelines` or `schemas` may
  import it — neither at import time (checked by importing every module in a fresh interpreter) nor inside a
  function (checked in the source, where a lazy `import synthetic` would hide from the first check).
- The app layer (`ketreg_app`: the command, one run, its summary, the pre-flight) sits above the orchestration
  (`pipelines`), which sits above the library (`ketreg`) and the contracts (`schemas`): the library and the
  contracts never import `pipelines` or `ketreg_app`, and `pipelines` never imports `ketreg_app` (checked in the
  source, lazy imports included)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("ketreg", "ketreg_app", "pipelines", "schemas")


def _product_sources(packages: tuple[str, ...] = PRODUCT) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the file, at module level or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _offenders(packages: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} {name}"
        for path in _product_sources(packages)
        for line, name in _imports(path)
        if any(name == top or name.startswith(top + ".") for top in forbidden)
    ]


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
    assert _offenders(PRODUCT, ("synthetic",)) == []


def test_the_library_and_the_contracts_never_import_the_orchestration_or_the_app() -> None:
    assert _offenders(("ketreg", "schemas"), ("pipelines", "ketreg_app")) == []


def test_the_orchestration_never_imports_the_app() -> None:
    assert _offenders(("pipelines",), ("ketreg_app",)) == []


def test_the_scan_sees_imports_inside_functions() -> None:
    """The app's command imports the run lazily, inside a handler: the scan must see such an import, or the two
    tests above could pass on a library that reaches up the same way."""
    assert (ROOT / "ketreg_app" / "cli.py").is_file()
    lazy = _offenders(("ketreg_app",), ("ketreg_app.run",))
    assert lazy and all(entry.startswith("ketreg_app/cli.py:") for entry in lazy)
    assert _offenders(("ketreg_app",), ("pipelines",))  # the app does use the orchestration


def test_the_app_layer_is_not_inside_the_library() -> None:
    for name in ("cli", "run", "summary", "preflight"):
        assert (ROOT / "ketreg_app" / f"{name}.py").is_file()
        assert not (ROOT / "ketreg" / f"{name}.py").exists()


def test_the_generator_is_not_a_subpackage_of_the_product() -> None:
    assert (ROOT / "synthetic" / "__main__.py").is_file()
    assert not (ROOT / "ketreg" / "synthetic").exists()


_ENVIRONMENT_READERS = {"environ", "environb", "getenv", "getenvb"}


def _environment_reads(path: Path) -> list[str]:
    """Where the file touches the process environment: `os.environ…`, `os.getenv(…)`, `from os import environ`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Attribute) and node.attr in _ENVIRONMENT_READERS
                and isinstance(node.value, ast.Name) and node.value.id == "os"):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} os.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"{path.relative_to(ROOT)}:{node.lineno} from os import {alias.name}"
                      for alias in node.names if alias.name in _ENVIRONMENT_READERS]
    return found


def test_only_the_environment_module_reads_environment_variables() -> None:
    """Every variable is read in ketreg/environment.py and passed down (the settings resource, the app's
    defaults): a read anywhere else is a setting nobody can find in one list."""
    the_one = ROOT / "ketreg" / "environment.py"
    assert _environment_reads(the_one)  # the scan recognises a read where there is one
    elsewhere = [read for path in _product_sources() if path != the_one for read in _environment_reads(path)]
    assert elsewhere == []


def test_every_variable_the_docs_name_is_one_the_environment_module_reads() -> None:
    """A variable in the docs that no code reads would be a setting that silently does nothing."""
    from ketreg import environment

    declared = {value for name, value in vars(environment).items() if name.isupper() and isinstance(value, str)}
    documents = [ROOT / "README.md", ROOT / "Makefile", *sorted((ROOT / "docs").glob("*.md"))]
    named = {match for path in documents for match in re.findall(r"\bKETREG_[A-Z_]+[A-Z]\b",
                                                                 path.read_text(encoding="utf-8"))}
    assert "KETREG_PSEUDONYM_KEY" in named  # the scan found the docs' variables at all
    assert named - declared == set()
