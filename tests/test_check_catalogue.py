"""The check catalogue (config/check_catalogue.yaml) is the one place a check is defined: Dagster shows exactly its
instances, the generated docs match it, no module outside the evaluator and the thin Dagster wiring makes a check
or a check result, and its SQL templates take only whitelisted identifiers."""

from __future__ import annotations

import ast
from pathlib import Path

import duckdb
import pytest

from ketreg.quality.catalogue import (
    KAHN_CATEGORIES,
    catalogue,
    gx_suite_checks,
    literal,
    registry_checks,
    render_template,
    table_name,
)
from ketreg.quality.check_docs import DOCS_FILE, render
from pipelines.definitions import build_definitions

ROOT = Path(__file__).resolve().parent.parent

# Where a check or a check result may be made: the evaluator and the engines that run catalogue checks, and the
# thin Dagster wiring that turns catalogue instances into specs and results. CheckResult(*row) in carry_forward
# rebuilds rows read back from quality.check_results (no new check).
_MAKERS = {
    "AssetCheckSpec": {"pipelines/checks.py", "pipelines/quality_checks.py"},
    "AssetCheckResult": {"pipelines/checks.py", "pipelines/quality_checks.py"},
    "asset_check": set(),
    "multi_asset_check": {"pipelines/checks.py", "pipelines/quality_checks.py"},
    "CheckResult": {"ketreg/quality/evaluator.py", "ketreg/quality/carry_forward.py"},
    "QualityRule": {"ketreg/quality/rules.py"},
}


def _calls(path: Path) -> set[str]:
    """Names of the functions and classes called (or used as decorators) in one module."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        target = node.func if isinstance(node, ast.Call) else node if isinstance(node, ast.Attribute) else None
        if isinstance(target, ast.Attribute):
            names.add(target.attr)
        elif isinstance(target, ast.Name):
            names.add(target.id)
    return names


def test_no_check_is_defined_outside_the_catalogue_and_its_evaluator() -> None:
    found = {}
    for folder in ("ketreg", "pipelines"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            for maker in _calls(path) & set(_MAKERS):
                if relative not in _MAKERS[maker]:
                    found.setdefault(relative, []).append(maker)
    assert found == {}, "checks are defined in config/check_catalogue.yaml and made by ketreg/quality/evaluator.py"


def test_dagster_shows_exactly_the_catalogues_checks() -> None:
    definitions = build_definitions()
    shown = {
        (spec.asset_key.path[-1], spec.name, spec.blocking, spec.metadata["kahn_category"])
        for checks in definitions.asset_checks or []
        for spec in checks.check_specs
    }
    expected = {(c.table, c.name, c.blocking, c.category) for c in (*registry_checks(), *gx_suite_checks())}
    assert shown == expected


def test_the_committed_checks_doc_is_generated_from_the_catalogue() -> None:
    committed = (ROOT / DOCS_FILE).read_text(encoding="utf-8")
    assert committed == render(), "run `python -m ketreg.quality.check_docs` and commit docs/checks.md"


def test_every_check_type_has_a_kahn_category_a_severity_and_its_sql_templates() -> None:
    for check_type in catalogue().values():
        assert check_type.category in (*KAHN_CATEGORIES, "by instance"), check_type.type
        for template in (check_type.sql, check_type.denominator_sql, check_type.violations_sql):
            if template is not None:
                assert (ROOT / "sql" / template).is_file(), f"{check_type.type}: sql/{template} is missing"
    names = [(c.table, c.name) for c in registry_checks()]
    assert len(names) == len(set(names)), "a registry check is listed twice"


def test_a_template_takes_only_whitelisted_tables_and_escaped_values() -> None:
    with pytest.raises(ValueError, match="not an allowed SQL identifier"):
        table_name("patients; DROP TABLE patients")
    with pytest.raises(ValueError, match="do not match"):
        render_template("quality/checks/rows_of_table.sql", {"table": table_name("patients"), "extra": "1"})
    con = duckdb.connect()
    try:
        # A site id with a quote stays one text value in the SQL that lists a site's rows.
        site = "site_o'brien"
        assert con.execute(f"SELECT {literal(site)}").fetchall() == [(site,)]
    finally:
        con.close()
