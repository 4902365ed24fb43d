"""The catalogue's conditions (`violated_when`) rendered for the contract's columns, ranges and codes: the SQL that
is true on a row violating a field-level check. Built from structured data (ketreg/registry/range_rules.py) and the
catalogue's templates, so a range lives in its schema only and no SQL text is ever searched or taken apart."""

from __future__ import annotations

from collections.abc import Collection

from ketreg.quality.catalogue import check_type, column, literal, operator, render_condition, table_name
from ketreg.registry.range_rules import PROTOCOL_LIMITS, Bound, CodeList, contract_bounds, contract_codes
from schemas.protocol import Protocol
from schemas.tables import TableContract


def bound_condition(bound: Bound, columns: Collection[str]) -> str:
    """True on a row whose value breaks one limit of a range (a missing value breaks none)."""
    template = check_type("field_within_range").violated_when or ""
    return render_condition(template, {
        "column": column(bound.column, columns), "operator": operator(bound.operator), "bound": literal(bound.value),
    })


def codes_condition(codes: CodeList, columns: Collection[str]) -> str:
    """True on a row whose value is not one of the column's codes (a missing value is not checked here)."""
    template = check_type("field_in_codes").violated_when or ""
    return render_condition(template, {
        "column": column(codes.column, columns), "codes": ", ".join(literal(code) for code in codes.codes),
    })


def missing_condition(type_name: str, name: str, columns: Collection[str]) -> str:
    """True on a row that lacks a value of `name` (field_present, field_recorded)."""
    return render_condition(check_type(type_name).violated_when or "", {"column": column(name, columns)})


def duplicated_key_condition(table: str, key: str, columns: Collection[str]) -> str:
    """True on a row whose key another row of the table holds too."""
    return render_condition(check_type("key_unique").violated_when or "", {
        "key": column(key, columns), "table": table_name(table),
    })


def pair_condition(larger: str, smaller: str, or_equal: bool, columns: Collection[str]) -> str:
    """True on a row whose `larger` column is not above (or at) its `smaller` one; a missing value lists no row."""
    return render_condition(check_type("column_pair_order").violated_when or "", {
        "larger": column(larger, columns), "operator": operator(">=" if or_equal else ">"),
        "smaller": column(smaller, columns),
    })


def any_of(conditions: list[str]) -> str:
    """True where any of `conditions` is (false when there are none)."""
    return " OR ".join(f"({c})" for c in conditions) or "false"


def contract_condition(table: TableContract, columns: Collection[str], protocol: Protocol) -> str:
    """True on a row of a registry table that breaks any of the contract's ranges or codes, or the protocol's
    limit as recorded with the registry (values_within_contract_ranges)."""
    conditions = [bound_condition(b, columns) for b in contract_bounds(table, columns)]
    conditions += [codes_condition(c, columns) for c in contract_codes(table, columns)]
    limited = sorted({name for name, col in table.schema(protocol).columns.items() if name in columns
                      for check in col.checks if check.name in PROTOCOL_LIMITS})
    template = check_type("values_within_contract_ranges").protocol_violated_when or ""
    conditions += [render_condition(template, {"column": column(name, columns)}) for name in limited]
    return any_of(conditions)
