"""The registry's data-quality rules per table, derived from the site-export contract (the Pandera schemas in
`schemas/`), the protocol file and `config/quality.yaml`. A range or code is read from the schema, never typed
here; each rule carries both its Great Expectations form and the SQL predicate that lists its violating rows.

Categories follow Kahn et al. 2016 (a harmonized data quality assessment terminology): *conformance* (values
and references keep the contract's format and codes), *completeness* (values are present), *plausibility*
(values are believable: ranges, uniqueness, order in time)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ketreg.quality.settings import QualitySettings
from ketreg.registry.range_rules import violation_predicates
from schemas.protocol import Protocol
from schemas.tables import TABLES, TableContract

CONFORMANCE, COMPLETENESS, PLAUSIBILITY = "conformance", "completeness", "plausibility"
KAHN_CATEGORIES = (CONFORMANCE, COMPLETENESS, PLAUSIBILITY)

_LOWER = ("greater_than_or_equal_to", "greater_than")
_UPPER = ("less_than_or_equal_to", "less_than")
# Protocol limits that TableContract.schema() adds to the contract's own checks, with their bound.
_PROTOCOL_UPPER = ("rate_within_plausibility_limit",)
# Row rules of the contract that Great Expectations can express as an ordered pair of columns:
# rule name → (column that must be larger, column it is compared with, whether equal is allowed).
_PAIR_RULES = {
    "end_after_start": ("end_time", "start_time", False),
    "max_rate_at_least_initial": ("max_rate_mg_h", "initial_rate_mg_h", True),
}


@dataclass(frozen=True)
class QualityRule:
    """One check on one registry table, run per site."""

    table: str
    name: str
    category: str
    column: str | None
    expectation: str  # class name in great_expectations.expectations
    kwargs: dict[str, Any]
    predicate: str  # SQL over the registry table, true on a row that violates the rule
    description: str
    threshold: float = 0.0  # share of checked rows allowed to fail
    meta: dict[str, Any] = field(default_factory=dict)

    def violations_sql(self, site_id: str) -> str:
        """The query that lists this site's violating rows of the registry table."""
        site = site_id.replace("'", "''")
        return f"SELECT * FROM registry.{self.table} WHERE site_id = '{site}' AND ({self.predicate})"

    def all_violations_sql(self) -> str:
        """The query that lists every site's violating rows of the registry table."""
        return f"SELECT * FROM registry.{self.table} WHERE {self.predicate}"


def registry_key(table: TableContract) -> str | None:
    """The pseudonymous key that replaces the site's record id in the registry (`patient_id` → `patient_key`)."""
    return f"{table.record_id.removesuffix('_id')}_key" if table.record_id else None


def _range_rule(table: TableContract, name: str, checks: Iterable[Any]) -> QualityRule | None:
    kwargs: dict[str, Any] = {}
    extra_predicates: list[str] = []
    for check in checks:
        statistics = check.statistics or {}
        if check.name in _LOWER:
            kwargs["min_value"] = statistics["min_value"]
            kwargs["strict_min"] = check.name == "greater_than"
        elif check.name in _UPPER:
            kwargs["max_value"] = statistics["max_value"]
            kwargs["strict_max"] = check.name == "less_than"
        elif check.name in _PROTOCOL_UPPER:
            limit = statistics["max_value"]
            if "max_value" not in kwargs or limit < kwargs["max_value"]:
                kwargs["max_value"], kwargs["strict_max"] = limit, False
            extra_predicates.append(f"{name} IS NOT NULL AND {name} > {limit!r}")
    if not kwargs:
        return None
    predicates = [p for p in violation_predicates(table, {name}) if " NOT IN (" not in p] + extra_predicates
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    bounds = " – ".join(str(v) for v in (low, high) if v is not None)
    return QualityRule(
        table.name, f"{name}_within_range", PLAUSIBILITY, name, "ExpectColumnValuesToBeBetween",
        {"column": name, **kwargs}, " OR ".join(f"({p})" for p in predicates),
        f"{name} lies within the contract's range ({'> ' if kwargs.get('strict_min') else ''}{bounds})",
    )


def table_rules(
    table: TableContract, registry_columns: Iterable[str], protocol: Protocol, settings: QualitySettings
) -> list[QualityRule]:
    """The rules of one registry table: every contract column the table keeps gets its completeness, code and
    range rules; the key its uniqueness; row rules that compare two columns their ordered-pair rule."""
    columns = set(registry_columns)
    rules: list[QualityRule] = []
    outcome_shares = settings.outcome_completeness.get(table.name, {})
    for name, column in table.schema(protocol).columns.items():
        if name not in columns:
            continue
        if name in outcome_shares:
            share = outcome_shares[name]
            rules.append(QualityRule(
                table.name, f"{name}_recorded", COMPLETENESS, name, "ExpectColumnValuesToNotBeNull",
                {"column": name, "mostly": share}, f"{name} IS NULL",
                f"{name} is recorded on at least {share:.0%} of rows (outcome measure, config/quality.yaml)",
                threshold=round(1 - share, 6),
            ))
        elif not column.nullable and "when_missing" not in (column.metadata or {}):
            rules.append(QualityRule(
                table.name, f"{name}_present", COMPLETENESS, name, "ExpectColumnValuesToNotBeNull",
                {"column": name}, f"{name} IS NULL", f"{name} is required by the contract",
            ))
        codes = next((c for c in column.checks if c.name == "isin"), None)
        if codes is not None:
            allowed = list(codes.statistics["allowed_values"])
            predicate = next(p for p in violation_predicates(table, {name}) if " NOT IN (" in p)
            rules.append(QualityRule(
                table.name, f"{name}_in_codes", CONFORMANCE, name, "ExpectColumnValuesToBeInSet",
                {"column": name, "value_set": allowed}, predicate,
                f"{name} is one of the contract's codes ({', '.join(map(str, allowed))})",
            ))
        range_rule = _range_rule(table, name, column.checks)
        if range_rule is not None:
            rules.append(range_rule)
    key = registry_key(table)
    if key and key in columns:
        rules.append(QualityRule(
            table.name, f"{key}_unique", PLAUSIBILITY, key, "ExpectColumnValuesToBeUnique", {"column": key},
            f"{key} IN (SELECT {key} FROM registry.{table.name} GROUP BY {key} HAVING count(*) > 1)",
            f"{key} identifies one row ({table.record_id} is unique within an export)",
        ))
    for rule_name, (larger, smaller, or_equal) in _PAIR_RULES.items():
        row_rule = table.row_rule(rule_name)
        if row_rule is None or not {larger, smaller} <= columns:
            continue
        operator = ">=" if or_equal else ">"
        rules.append(QualityRule(
            table.name, rule_name, PLAUSIBILITY, larger, "ExpectColumnPairValuesAToBeGreaterThanB",
            # A missing time or rate is the `_present` rule's to report, as in the SQL predicate (NULL lists no row)
            # and the contract's row rule; GX would otherwise count it here too and disagree with the site counts.
            {"column_A": larger, "column_B": smaller, "or_equal": or_equal, "ignore_row_if": "either_value_is_missing"},
            f"NOT ({larger} {operator} {smaller})", row_rule.message.replace(" must be ", " is "),
        ))
    return rules


def registry_rules(
    registry_columns: dict[str, list[str]], protocol: Protocol, settings: QualitySettings
) -> dict[str, list[QualityRule]]:
    """Rules of every contract table that the registry holds, by table name."""
    return {
        table.name: table_rules(table, registry_columns[table.name], protocol, settings)
        for table in TABLES
        if table.name in registry_columns
    }
