"""Every range limit of the contract says the same in the registry's SQL as in its Pandera schema: a value exactly
at a limit, and a value just inside or just outside it, is valid for both or for neither. The registry's range
check (values_within_contract_ranges) and the Great Expectations ranges are built from these conditions, so an
operator turned from `>=` into `>` (or a bound read from the wrong statistic) shows here as a plain assertion."""

from __future__ import annotations

import duckdb
import pandera.polars as pa
import polars as pl
import pytest

from ketreg.quality.conditions import bound_condition
from ketreg.registry.range_rules import Bound, contract_bounds
from schemas.tables import TABLES

CASES = [
    (table, name, check, bound)
    for table in TABLES
    for name, schema_column in table.base_schema.columns.items()
    for check in schema_column.checks
    for bound in contract_bounds(table, [name])
    if bound.check == check.name and bound.column == name
]


def _pandera_accepts(column: str, check: pa.Check, value: float) -> bool:
    schema = pa.DataFrameSchema({column: pa.Column(pl.Float64, checks=[check], nullable=True)})
    try:
        schema.validate(pl.DataFrame({column: [value]}, schema={column: pl.Float64}))
    except pa.errors.SchemaError:
        return False
    return True


def _sql_accepts(bound: Bound, value: float) -> bool:
    condition = bound_condition(bound, [bound.column])
    relation = duckdb.sql(f'SELECT ({condition}) FROM (SELECT CAST($value AS DOUBLE) AS "{bound.column}")',
                          params={"value": value})
    assert relation is not None
    return not relation.fetchall()[0][0]


def test_every_contract_column_with_a_range_has_its_limits_here():
    assert {(t.name, c) for t, c, _, _ in CASES} >= {("assessments", "nprs"), ("infusions", "max_rate_mg_h"),
                                                      ("adverse_events", "grade")}


@pytest.mark.parametrize(("table", "column", "check", "bound"), CASES,
                         ids=[f"{t.name}.{c}.{b.check}" for t, c, _, b in CASES])
def test_sql_and_pandera_agree_at_and_around_each_limit(table, column, check, bound):
    step = 1 if float(bound.value).is_integer() else 0.01
    for value in (float(bound.value), float(bound.value) - step, float(bound.value) + step,
                  float(bound.value) - 1e-9, float(bound.value) + 1e-9):
        assert _sql_accepts(bound, value) == _pandera_accepts(column, check, value), (
            f"{table.name}.{column} = {value!r}: SQL {bound.operator} {bound.value!r} disagrees with Pandera's "
            f"{check.name}"
        )
