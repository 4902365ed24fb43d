"""Every data-quality rule (ketreg/quality/rules.py), run as real Great Expectations suites (`run_suites`, as
the quality asset runs them), broken on purpose in a copy of a real working DuckDB: values one step outside each
contract or protocol limit and codes the contract lacks, a duplicated key, a required value missing, times and
rates out of order, and an outcome measure recorded just below its completeness threshold. Each rule must fail
with the number of rows the test broke, pass when the values sit exactly at or inside the limits, and agree with
its own SQL predicate (the per-site counts and the dashboard's "violating rows" query)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from check_support import (
    REGISTRY_KEYS,
    clean_two_site_run,
    column_types,
    corrupt,
    limit_cases,
    place_cases,
    rows_of,
)
from support import RegistryRun

from ketreg.quality.expectations import run_suites
from ketreg.quality.results import CheckResult
from ketreg.quality.rules import CONFORMANCE, PLAUSIBILITY, QualityRule, registry_rules
from ketreg.quality.settings import load_quality_settings
from schemas.protocol import load_protocol
from schemas.tables import TABLES

# Each test here corrupts or reads real pipeline runs (seconds each).
pytestmark = pytest.mark.slow

# The completeness threshold tested at its boundary: NPRS, the registry's primary outcome.
OUTCOME_TABLE, OUTCOME_COLUMN = "assessments", "nprs"


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> RegistryRun:
    return clean_two_site_run(tmp_path_factory)


@pytest.fixture
def work_db(clean_run: RegistryRun, tmp_path: Path) -> Path:
    copy = tmp_path / "registry_work.duckdb"
    shutil.copy(clean_run.work_db, copy)
    return copy


def rules_of(work_db: Path) -> dict[str, list[QualityRule]]:
    columns = {t.name: list(column_types(work_db, t.name)) for t in TABLES}
    return registry_rules(columns, load_protocol(), load_quality_settings())


def run_rules(work_db: Path) -> tuple[dict[tuple[str, str], CheckResult], dict[str, list[QualityRule]]]:
    """Great Expectations' result of every rule on the whole registry, by (table, rule), and the rules."""
    rules = rules_of(work_db)
    con = duckdb.connect(str(work_db), read_only=True)
    try:
        results = run_suites(con, rules, "test", None).results
        by_rule = {(r.table_name, r.check_name): r for r in results if r.site_id == "all"}
        # The SQL predicate of each rule (the per-site counts and the "violating rows" link) agrees with GX.
        for result in by_rule.values():
            listed = con.execute(f"SELECT count(*) FROM ({result.violations_sql})").fetchall()[0][0]
            per_site = sum(r.numerator for r in results if r.check_id.rsplit("/", 1)[0] ==
                           result.check_id.rsplit("/", 1)[0] and r.site_id != "all")
            assert listed == per_site == result.numerator, (result.check_id, listed, per_site, result.numerator)
    finally:
        con.close()
    return by_rule, rules


def _limit_rules(rules: dict[str, list[QualityRule]]) -> list[QualityRule]:
    return [r for table_rules in rules.values() for r in table_rules
            if r.name.endswith(("_within_range", "_in_codes"))]


def _set_recorded_share(work_db: Path, missing: int) -> int:
    """Make the outcome column's table hold a number of rows at which the completeness threshold is a whole
    number of rows, with `missing` of them empty; returns how many rows may be empty at the threshold."""
    share = load_quality_settings().outcome_completeness[OUTCOME_TABLE][OUTCOME_COLUMN]
    con = duckdb.connect(str(work_db), read_only=True)
    try:
        rows = con.execute(f"SELECT count(*) FROM registry.{OUTCOME_TABLE}").fetchall()[0][0]
    finally:
        con.close()
    total = next(n for n in range(rows, rows + 1000) if abs(n * (1 - share) - round(n * (1 - share))) < 1e-9)
    key = REGISTRY_KEYS[OUTCOME_TABLE]
    corrupt(work_db, *(
        f"INSERT INTO registry.{OUTCOME_TABLE} SELECT * REPLACE ('extra-{i}' AS {key}) "
        f"FROM registry.{OUTCOME_TABLE} WHERE {OUTCOME_COLUMN} IS NOT NULL LIMIT 1"
        for i in range(total - rows)
    ), f"UPDATE registry.{OUTCOME_TABLE} SET {OUTCOME_COLUMN} = NULL WHERE rowid IN "
       f"(SELECT rowid FROM registry.{OUTCOME_TABLE} ORDER BY rowid LIMIT {missing})")
    return round(total * (1 - share))


def test_values_at_or_inside_every_limit_pass_and_the_outcome_at_its_threshold_passes(work_db: Path) -> None:
    cases = limit_cases(work_db, inside=True)
    for table, table_cases in cases.items():
        place_cases(work_db, table, table_cases)
    allowed_missing = _set_recorded_share(work_db, missing=0)
    corrupt(work_db, f"UPDATE registry.{OUTCOME_TABLE} SET {OUTCOME_COLUMN} = NULL WHERE rowid IN "
                     f"(SELECT rowid FROM registry.{OUTCOME_TABLE} WHERE {OUTCOME_COLUMN} IS NOT NULL "
                     f"ORDER BY rowid LIMIT {allowed_missing})")
    results, rules = run_rules(work_db)
    limit_rules = _limit_rules(rules)
    assert {r.category for r in limit_rules} == {CONFORMANCE, PLAUSIBILITY}
    for rule in limit_rules:
        result = results[(rule.table, rule.name)]
        assert (result.passed, result.numerator) == (True, 0), (rule.table, rule.name)
    outcome = results[(OUTCOME_TABLE, f"{OUTCOME_COLUMN}_recorded")]
    assert allowed_missing >= 1 and (outcome.passed, outcome.numerator) == (True, allowed_missing)


def test_values_one_step_outside_fail_their_rule_and_the_outcome_below_its_threshold_fails(work_db: Path) -> None:
    cases = limit_cases(work_db, inside=False)
    for table, table_cases in cases.items():
        place_cases(work_db, table, table_cases)
    allowed_missing = _set_recorded_share(work_db, missing=0)
    corrupt(work_db, f"UPDATE registry.{OUTCOME_TABLE} SET {OUTCOME_COLUMN} = NULL WHERE rowid IN "
                     f"(SELECT rowid FROM registry.{OUTCOME_TABLE} WHERE {OUTCOME_COLUMN} IS NOT NULL "
                     f"ORDER BY rowid LIMIT {allowed_missing + 1})")
    results, rules = run_rules(work_db)
    for rule in _limit_rules(rules):
        kind = "isin" if rule.name.endswith("_in_codes") else "range"
        expected = sum(1 for c in cases[rule.table]
                       if c.column == rule.column and (c.rule == "isin") == (kind == "isin"))
        result = results[(rule.table, rule.name)]
        assert expected >= 1 and (result.passed, result.numerator) == (False, expected), (rule.table, rule.name)
    outcome = results[(OUTCOME_TABLE, f"{OUTCOME_COLUMN}_recorded")]
    assert (outcome.passed, outcome.numerator) == (False, allowed_missing + 1)


def test_duplicate_keys_missing_required_values_and_disordered_pairs_fail_their_rules(work_db: Path) -> None:
    rules = rules_of(work_db)
    keyed = [t for t in REGISTRY_KEYS if t != "dispositions"]
    statements = [f"INSERT INTO registry.{t} SELECT * FROM registry.{t} LIMIT 1" for t in keyed]
    required = {t: next(r.column for r in rules[t] if r.name.endswith("_present")) for t in rules
                if any(r.name.endswith("_present") for r in rules[t])}
    statements += [f"UPDATE registry.{t} SET {column} = NULL WHERE rowid = (SELECT max(rowid) FROM registry.{t})"
                   for t, column in required.items()]
    # One infusion ends when it starts (must end after); another reaches less than its initial rate. A third
    # keeps the maximum equal to the initial rate, which the rule allows.
    statements += [
        "UPDATE registry.infusions SET end_time = start_time WHERE rowid = (SELECT min(rowid) FROM registry.infusions)",
        "UPDATE registry.infusions SET max_rate_mg_h = initial_rate_mg_h - 0.01 "
        "WHERE rowid = (SELECT min(rowid) + 1 FROM registry.infusions)",
        "UPDATE registry.infusions SET max_rate_mg_h = initial_rate_mg_h "
        "WHERE rowid = (SELECT min(rowid) + 2 FROM registry.infusions)",
    ]
    corrupt(work_db, *statements)
    results, _ = run_rules(work_db)
    for table in keyed:
        result = results[(table, f"{REGISTRY_KEYS[table]}_unique")]
        assert (result.passed, result.numerator, result.denominator) == (False, 2, rows_of(table) + 1), table
    assert required, "the contract must require some value"
    for table, column in required.items():
        result = results[(table, f"{column}_present")]
        assert (result.passed, result.numerator) == (False, 1), (table, column)
    assert (results[("infusions", "end_after_start")].passed, results[("infusions", "end_after_start")].numerator) \
        == (False, 1)
    at_least = results[("infusions", "max_rate_at_least_initial")]
    assert (at_least.passed, at_least.numerator) == (False, 1)
