"""The registry's Great Expectations rules per table: the catalogue's field-level check types (engine
great_expectations in config/check_catalogue.yaml) applied to the site-export contract (the Pandera schemas in
`schemas/`), the protocol file and `config/quality.yaml`. A range or code is read from the schema, never typed
here; each rule carries both its Great Expectations form and the SQL condition (rendered from the catalogue) that
lists its violating rows.

Categories follow Kahn et al. 2016 (a harmonized data quality assessment terminology): *conformance* (values
and references keep the contract's format and codes), *completeness* (values are present), *plausibility*
(values are believable: ranges, uniqueness, order in time); each check type's category is in the catalogue."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ketreg.quality.catalogue import (
    COMPLETENESS,
    CONFORMANCE,
    KAHN_CATEGORIES,
    PLAUSIBILITY,
    CatalogueCheck,
    check_type,
    instance,
    listed_instances,
    literal,
    registry_key,
    render_template,
    table_name,
)
from ketreg.quality.conditions import (
    any_of,
    bound_condition,
    codes_condition,
    duplicated_key_condition,
    missing_condition,
    pair_condition,
)
from ketreg.quality.settings import QualitySettings
from ketreg.registry.range_rules import column_bounds, column_codes
from schemas.protocol import Protocol
from schemas.tables import TABLES, TableContract

__all__ = ["COMPLETENESS", "CONFORMANCE", "KAHN_CATEGORIES", "PLAUSIBILITY", "QualityRule", "registry_key",
           "registry_rules", "table_rules"]


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
    meta: dict[str, Any] = field(default_factory=dict)  # the catalogue's check type, subcategory and severity

    def violations_sql(self, site_id: str) -> str:
        """The query that lists this site's violating rows of the registry table."""
        return render_template("quality/checks/site_violating_rows.sql", {
            "table": table_name(self.table), "site_id": literal(site_id), "violated_when": self.predicate,
        })

    def all_violations_sql(self) -> str:
        """The query that lists every site's violating rows of the registry table."""
        return render_template("quality/checks/violating_rows.sql", {
            "table": table_name(self.table), "violated_when": self.predicate,
        })


def _rule(check: CatalogueCheck, kwargs: dict[str, Any], predicate: str) -> QualityRule:
    check_kind = check.check_type
    return QualityRule(
        check.table, check.name, check.category, check.column, check_kind.expectation or "", kwargs, predicate,
        check.description, threshold=check.threshold,
        meta={"check_type": check_kind.type, "kahn_subcategory": check.subcategory, "severity": check_kind.severity,
              "counts": check_kind.counts},
    )


def _range_rule(table: TableContract, name: str, checks: Iterable[Any], columns: set[str]) -> QualityRule | None:
    kwargs: dict[str, Any] = {}
    bounds = column_bounds(name, list(checks))
    for bound in bounds:
        if bound.from_protocol:
            if "max_value" not in kwargs or bound.value < kwargs["max_value"]:
                kwargs["max_value"], kwargs["strict_max"] = bound.value, False
        elif bound.is_lower:
            kwargs["min_value"], kwargs["strict_min"] = bound.value, bound.operator == ">"
        else:
            kwargs["max_value"], kwargs["strict_max"] = bound.value, bound.operator == "<"
    if not kwargs:
        return None
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    shown = " – ".join(str(v) for v in (low, high) if v is not None)
    check = instance(check_type("field_within_range"), table.name, name,
                     bounds=f"{'> ' if kwargs.get('strict_min') else ''}{shown}")
    return _rule(check, {"column": name, **kwargs}, any_of([bound_condition(b, columns) for b in bounds]))


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
            check = instance(check_type("field_recorded"), table.name, name, share=f"{share:.0%}",
                             threshold=round(1 - share, 6))
            rules.append(_rule(check, {"column": name, "mostly": share},
                               missing_condition("field_recorded", name, columns)))
        elif not column.nullable and "when_missing" not in (column.metadata or {}):
            check = instance(check_type("field_present"), table.name, name)
            rules.append(_rule(check, {"column": name}, missing_condition("field_present", name, columns)))
        codes = column_codes(name, column.checks)
        if codes is not None:
            check = instance(check_type("field_in_codes"), table.name, name,
                             codes_listed=", ".join(map(str, codes.codes)))
            rules.append(_rule(check, {"column": name, "value_set": list(codes.codes)},
                               codes_condition(codes, columns)))
        range_rule = _range_rule(table, name, column.checks, columns)
        if range_rule is not None:
            rules.append(range_rule)
    key = registry_key(table)
    if key and key in columns:
        check = instance(check_type("key_unique"), table.name, key, key=key, record_id=table.record_id)
        rules.append(_rule(check, {"column": key}, duplicated_key_condition(table.name, key, columns)))
    for listed in listed_instances("column_pair_order"):
        row_rule = table.row_rule(listed["rule"])
        larger, smaller, or_equal = listed["larger"], listed["smaller"], bool(listed["or_equal"])
        if listed["table"] != table.name or row_rule is None or not {larger, smaller} <= columns:
            continue
        check = instance(check_type("column_pair_order"), table.name, larger, rule=listed["rule"],
                         message=row_rule.message.replace(" must be ", " is "))
        rules.append(_rule(
            check,
            # A missing time or rate is the `_present` rule's to report, as in the SQL condition (NULL lists no
            # row) and the contract's row rule; GX would otherwise count it here too and disagree with the sites'.
            {"column_A": larger, "column_B": smaller, "or_equal": or_equal, "ignore_row_if": "either_value_is_missing"},
            pair_condition(larger, smaller, or_equal, columns),
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
