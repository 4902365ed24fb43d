"""The contract's ranges and codes as SQL predicates over registry columns, so the checks after
harmonisation read the same Pandera schemas as validation (a range is never typed twice)."""

from __future__ import annotations

from schemas.tables import TableContract

_COMPARISONS = {
    "greater_than_or_equal_to": (">=", "min_value"),
    "less_than_or_equal_to": ("<=", "max_value"),
    "greater_than": (">", "min_value"),
    "less_than": ("<", "max_value"),
}


def _sql_literal(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def violation_predicates(table: TableContract, registry_columns: set[str]) -> list[str]:
    """One SQL predicate per range or code rule of the contract whose column the registry table keeps;
    each is true on a row that breaks the rule (missing values break no range)."""
    predicates: list[str] = []
    for name, column in table.base_schema.columns.items():
        if name not in registry_columns:
            continue
        for check in column.checks:
            statistics = check.statistics or {}
            if check.name in _COMPARISONS:
                operator, key = _COMPARISONS[check.name]
                predicates.append(f"{name} IS NOT NULL AND NOT ({name} {operator} {statistics[key]!r})")
            elif check.name == "isin":
                allowed = ", ".join(_sql_literal(v) for v in statistics["allowed_values"])
                predicates.append(f"{name} IS NOT NULL AND {name} NOT IN ({allowed})")
    return predicates
