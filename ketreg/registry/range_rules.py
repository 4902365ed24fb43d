"""The contract's ranges and code lists as data (column, comparison, bound; column, codes), read from the Pandera
schemas, so the checks after harmonisation read the same schemas as validation (a range is never typed twice).
The check catalogue turns them into SQL conditions (ketreg/quality/catalogue.py, field_within_range and
field_in_codes); nothing here writes or reads SQL text."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import pandera.polars as pa

from schemas.tables import TableContract

# Pandera check name → (the comparison a valid value keeps with the bound, the statistic that holds the bound).
_COMPARISONS = {
    "greater_than_or_equal_to": (">=", "min_value"),
    "less_than_or_equal_to": ("<=", "max_value"),
    "greater_than": (">", "min_value"),
    "less_than": ("<", "max_value"),
}
# Limits the protocol adds to the contract's schema (TableContract.schema): a valid value is at most the bound.
PROTOCOL_LIMITS = ("rate_within_plausibility_limit",)


@dataclass(frozen=True)
class Bound:
    """One limit of a column's range: a valid value keeps `operator` with `value` (`value` ≤ is `<=`)."""

    column: str
    check: str  # the Pandera check's name
    operator: str
    value: Any
    from_protocol: bool = False

    @property
    def is_lower(self) -> bool:
        return self.operator in (">=", ">")


@dataclass(frozen=True)
class CodeList:
    """The codes a column may hold."""

    column: str
    codes: tuple[Any, ...]


def column_bounds(column: str, checks: Collection[pa.Check]) -> list[Bound]:
    """The range limits of one column's Pandera checks (the contract's, and the protocol's where added)."""
    bounds = []
    for check in checks:
        statistics = check.statistics or {}
        if check.name in _COMPARISONS:
            operator, key = _COMPARISONS[check.name]
            bounds.append(Bound(column, check.name, operator, statistics[key]))
        elif check.name in PROTOCOL_LIMITS:
            bounds.append(Bound(column, check.name, "<=", statistics["max_value"], from_protocol=True))
    return bounds


def column_codes(column: str, checks: Collection[pa.Check]) -> CodeList | None:
    """The code list of one column's Pandera checks, if it has one."""
    codes = next((c for c in checks if c.name == "isin"), None)
    return CodeList(column, tuple((codes.statistics or {})["allowed_values"])) if codes is not None else None


def contract_bounds(table: TableContract, registry_columns: Collection[str]) -> list[Bound]:
    """Every range limit of the contract (without the protocol's) whose column the registry table keeps."""
    return [bound for name, column in table.base_schema.columns.items() if name in registry_columns
            for bound in column_bounds(name, column.checks)]


def contract_codes(table: TableContract, registry_columns: Collection[str]) -> list[CodeList]:
    """Every code list of the contract whose column the registry table keeps."""
    found = (column_codes(name, column.checks) for name, column in table.base_schema.columns.items()
             if name in registry_columns)
    return [codes for codes in found if codes is not None]
