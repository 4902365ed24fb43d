"""Helpers for the tests that break the registry's Dagster asset checks on purpose: evaluate every check of
`pipelines/checks.py` through a real Dagster run against a (corrupted) working DuckDB file, and read each
check's expected severity from its own definition.

A check result is looked up by "<asset>:<check name>", e.g. "registry/patients:patient_key_unique_not_null".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from support import CANONICAL_ROWS, TEST_KEY, RegistryRun, run_registry, write_export

from pipelines.checks import registry_checks
from pipelines.connections import WorkingStore
from pipelines.definitions import ALL_ASSETS
from pipelines.resources import RegistrySettings, registry_resources
from schemas.protocol import Protocol, load_protocol
from schemas.tables import TABLES

SITES = ("site_a", "site_b")
_CLEAN: list[RegistryRun] = []


def clean_two_site_run(tmp_path_factory: pytest.TempPathFactory) -> RegistryRun:
    """Two sites, each with one valid canonical export, run once through the whole pipeline (made on first use,
    then shared by the modules that corrupt copies of its working database)."""
    if not _CLEAN:
        root = tmp_path_factory.mktemp("clean-two-sites")
        for site in SITES:
            write_export(root / "landing", site)
        run = run_registry(root / "landing", root / "out")
        assert run.success, run.failures
        _CLEAN.append(run)
    return _CLEAN[0]


def rows_of(table: str) -> int:
    """Registry rows of a table in the clean two-site run: the canonical export's rows, once per site."""
    return len(CANONICAL_ROWS[table]) * len(SITES)


REGISTRY_KEYS = {"patients": "patient_key", "infusions": "infusion_key", "assessments": "assessment_key",
                 "adverse_events": "ae_key", "dispositions": "patient_key"}


def corrupt(work_db: Path, *statements: str) -> None:
    """Run statements on the working database behind the pipeline's back."""
    con = duckdb.connect(str(work_db))
    try:
        for statement in statements:
            con.execute(statement)
    finally:
        con.close()


def column_types(work_db: Path, table: str) -> dict[str, str]:
    """Column name → DuckDB type of a registry table."""
    con = duckdb.connect(str(work_db), read_only=True)
    try:
        return {name: kind for name, kind, *_ in con.execute(f"DESCRIBE registry.{table}").fetchall()}
    finally:
        con.close()


def literal(value: object) -> str:
    """A value as an SQL literal."""
    return "'" + value.replace("'", "''") + "'" if isinstance(value, str) else repr(value)


def place_cases(work_db: Path, table: str, cases: list) -> list[str]:
    """Each case on its own copy of the table's first row, under a key of its own; returns those keys."""
    key = REGISTRY_KEYS[table]
    statements, keys = [], []
    for index, case in enumerate(cases):
        case_key = f"case-{index:02d}"
        keys.append(case_key)
        if table == "dispositions":
            # Dispositions have no key of their own: the copy keeps its patient and is found by its reason text.
            statements.append(
                f"INSERT INTO registry.{table} SELECT * REPLACE ({literal(case.value)} AS {case.column}) "
                f"FROM registry.{table} LIMIT 1"
            )
            continue
        statements.append(
            f"INSERT INTO registry.{table} SELECT * REPLACE ('{case_key}' AS {key}, "
            f"{literal(case.value)} AS {case.column}) FROM registry.{table} LIMIT 1"
        )
    corrupt(work_db, *statements)
    return keys


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    severity: dg.AssetCheckSeverity
    numerator: int
    denominator: int
    violations_sql: str


def check_name(spec: dg.AssetCheckSpec) -> str:
    return f"{spec.asset_key.to_user_string()}:{spec.name}"


def check_specs() -> dict[str, dg.AssetCheckSpec]:
    """Every registry check's spec (as Dagster holds it), by "<asset>:<check name>"."""
    return {check_name(spec): spec for definition in registry_checks for spec in definition.check_specs}


def expected_severity(name: str) -> dg.AssetCheckSeverity:
    """The severity a failing check must report: ERROR when its definition blocks downstream assets."""
    return dg.AssetCheckSeverity.ERROR if check_specs()[name].blocking else dg.AssetCheckSeverity.WARN


def evaluate_checks(work_db: Path, rebuild: Iterable[str] = ()) -> dict[str, CheckOutcome]:
    """Run every registry check in one real Dagster run against `work_db`; `rebuild` names registry assets
    (e.g. "file_counts") that the run materializes first from the working database's current state."""
    # The pseudonym key resource reads the key from the environment, set below for this run only.
    settings = RegistrySettings(landing_dir=str(work_db.parent / "landing"),
                                analyst_db=str(work_db.with_name("registry.duckdb")))
    resources = registry_resources(settings, WorkingStore(path=str(work_db)))
    selection = dg.AssetSelection.checks(*registry_checks)
    for name in rebuild:
        selection = selection | dg.AssetSelection.assets(dg.AssetKey(["registry", name])).without_checks()
    job = dg.define_asset_job("checks_only", selection=selection)
    defs = dg.Definitions(
        assets=ALL_ASSETS, asset_checks=registry_checks, jobs=[job], resources=resources,
        executor=dg.in_process_executor,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KETREG_PSEUDONYM_KEY", TEST_KEY)
        result = defs.resolve_job_def("checks_only").execute_in_process(
            raise_on_error=False, run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
        )
    # A failing blocking check fails its own step (that is how it blocks); any other step failure is a bug.
    errors = [event.step_failure_data.error for event in result.get_step_failure_events()]
    assert all(e is not None and e.cls_name == "DagsterAssetCheckFailedError" for e in errors), errors
    outcomes: dict[str, CheckOutcome] = {}
    for evaluation in result.get_asset_check_evaluations():
        metadata = evaluation.metadata
        outcomes[f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"] = CheckOutcome(
            passed=evaluation.passed,
            severity=evaluation.severity,
            numerator=metadata["numerator"].value,
            denominator=metadata["denominator"].value,
            violations_sql=metadata["violations_sql"].value.removeprefix("```sql\n").removesuffix("\n```"),
        )
    assert set(outcomes) == set(check_specs()), "every registry check must report a result"
    return outcomes


def failing(outcomes: dict[str, CheckOutcome]) -> dict[str, tuple[int, int]]:
    """(numerator, denominator) of every check that failed."""
    return {name: (o.numerator, o.denominator) for name, o in outcomes.items() if not o.passed}


def violating_rows(work_db: Path, outcome: CheckOutcome, column: str) -> list[Any]:
    """`column` of the rows the check's own violations query lists, sorted."""
    con = duckdb.connect(str(work_db), read_only=True)
    try:
        return sorted(row[0] for row in con.execute(f"SELECT {column} FROM ({outcome.violations_sql})").fetchall())
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------------------
# Boundaries of the contract's ranges, read from the Pandera schemas and the protocol (never typed here).

_LOWER = {"greater_than_or_equal_to": True, "greater_than": False}  # check name → whether equal is allowed
_UPPER = {"less_than_or_equal_to": True, "less_than": False, "rate_within_plausibility_limit": True}


@dataclass(frozen=True)
class BoundCase:
    table: str
    column: str
    rule: str
    value: float | int | str
    inside: bool

    @property
    def label(self) -> str:
        return f"{self.table}.{self.column} {self.rule} {self.value!r}"


def step_of(column_type: str) -> float | int:
    """One step of a column's values: 1 for whole numbers, a hundredth for measured doubles."""
    return 1 if column_type in {"BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT"} else 0.01


def bound_cases(table: str, protocol: Protocol, column_types: dict[str, str]) -> list[BoundCase]:
    """For every range limit of the table's contract whose column the registry keeps: the value exactly at the
    limit, one step inside and one step outside, each marked inside or outside; for every code list, a code
    the contract lacks (outside) and its first code (inside)."""
    contract = next(t for t in TABLES if t.name == table)
    cases: list[BoundCase] = []
    for name, column in contract.schema(protocol).columns.items():
        if name not in column_types:
            continue
        step = step_of(column_types[name])
        for check in column.checks:
            statistics = check.statistics or {}
            if check.name in _LOWER:
                limit, allowed, direction = statistics["min_value"], _LOWER[check.name], 1
            elif check.name in _UPPER:
                limit, allowed, direction = statistics["max_value"], _UPPER[check.name], -1
            elif check.name == "isin":
                codes = list(statistics["allowed_values"])
                cases.append(BoundCase(table, name, "isin", codes[0], True))
                cases.append(BoundCase(table, name, "isin", "not-a-contract-code", False))
                continue
            else:
                continue
            if step == 1 and not float(limit).is_integer():
                limit = math.ceil(limit) if direction == 1 else math.floor(limit)
            inside_value = round(limit + direction * step, 6)
            outside_value = round(limit - direction * step, 6)
            cases.append(BoundCase(table, name, check.name, limit, allowed))
            cases.append(BoundCase(table, name, check.name, inside_value, True))
            cases.append(BoundCase(table, name, check.name, outside_value, False))
    return cases


def limit_cases(work_db: Path, inside: bool) -> dict[str, list[BoundCase]]:
    """The cases inside (or outside) every limit of every registry table, by table."""
    by_table = {}
    for table in TABLES:
        cases = [c for c in bound_cases(table.name, load_protocol(), column_types(work_db, table.name))
                 if c.inside is inside]
        assert cases, f"no limit of {table.name} was found in its contract"
        by_table[table.name] = cases
    return by_table
