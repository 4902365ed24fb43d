"""The check catalogue (`config/check_catalogue.yaml`): every data-quality check type of the registry as data —
Kahn category and subcategory, severity, threshold, description and the SQL template that lists its violating
rows — and the check instances made from it, the listed ones and those generated from the contract.

Every engine reads its checks from here: the registry's Dagster asset checks (`registry_checks`), the Great
Expectations rules (ketreg/quality/rules.py), the site-export checks (ketreg/quality/site_checks.py) and the
Great Expectations suites' asset checks (`gx_suite_checks`); docs/checks.md is generated from it (`docs_table`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ketreg.package_data import config_file
from ketreg.warehouse.sql_files import identifier, render_sql, sql_text
from schemas.tables import TABLES, TableContract
from schemas.yaml_source import read_yaml, validate

CATALOGUE_FILE = config_file("check_catalogue.yaml")

CONFORMANCE, COMPLETENESS, PLAUSIBILITY = "conformance", "completeness", "plausibility"
KAHN_CATEGORIES = (CONFORMANCE, COMPLETENESS, PLAUSIBILITY)
Engine = Literal["registry_check", "great_expectations", "site_export", "gx_suite"]


class CatalogueError(ValueError):
    """The check catalogue is missing a field or holds an impossible one."""


class CheckType(BaseModel):
    """One row of the catalogue: a kind of check, with its SQL template."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str
    engine: Engine
    category: str
    subcategory: str
    severity: Literal["blocking", "warning"]
    threshold: float
    name: str
    description: str
    sql: str | None = None
    denominator_sql: str | None = None
    violations_sql: str | None = None
    violated_when: str | None = None
    protocol_violated_when: str | None = None
    expectation: str | None = None
    counts: Literal["every_row", "rows_with_value"] | None = None
    names_column: str | None = None
    remedy: str = ""
    generated_from: str | None = None
    instances: tuple[dict[str, Any], ...] | None = None

    @property
    def blocking(self) -> bool:
        return self.severity == "blocking"


class CatalogueFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    check_types: tuple[CheckType, ...]


@cache
def catalogue() -> dict[str, CheckType]:
    """The check types of the catalogue, by type, in the catalogue's order."""
    source = read_yaml(CATALOGUE_FILE, "check catalogue", CatalogueError)
    checked = validate(CatalogueFile, source, "check catalogue", CatalogueError, data=source.data or {},
                       hint="see the field list at the top of config/check_catalogue.yaml")
    types = {check_type.type: check_type for check_type in checked.check_types}
    for check_type in checked.check_types:
        if (check_type.instances is None) == (check_type.generated_from is None):
            raise CatalogueError(f"{CATALOGUE_FILE}: check type {check_type.type} needs either `instances` or "
                                 "`generated_from` (where its instances come from), not both")
        # "by instance": each listed instance (or each generated one, for gx_suite) names its category.
        per_instance = check_type.engine == "gx_suite" or all(
            listed.get("category") in KAHN_CATEGORIES for listed in check_type.instances or [{}]
        )
        if check_type.category not in KAHN_CATEGORIES and not per_instance:
            raise CatalogueError(f"{CATALOGUE_FILE}: check type {check_type.type} has category "
                                 f"{check_type.category!r}; use one of {', '.join(KAHN_CATEGORIES)}")
    return types


def check_type(name: str) -> CheckType:
    """One check type of the catalogue."""
    return catalogue()[name]


@dataclass(frozen=True)
class CatalogueCheck:
    """One check instance: a check type applied to a table (and column, or parameters)."""

    check_type: CheckType
    table: str
    name: str
    description: str
    category: str
    subcategory: str
    column: str | None = None
    threshold: float = 0.0
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def blocking(self) -> bool:
        return self.check_type.blocking

    @property
    def described(self) -> dict[str, str | float]:
        """The catalogue's fields of this check, as Dagster shows them beside the check (its spec's metadata)."""
        fields: dict[str, str | float] = {
            "check_type": self.check_type.type, "kahn_category": self.category,
            "kahn_subcategory": self.subcategory, "severity": self.check_type.severity, "threshold": self.threshold,
        }
        if self.check_type.sql:
            fields["sql_template"] = f"sql/{self.check_type.sql}"
        return fields


class _Slots(dict[str, Any]):
    """Parameters of an instance; a slot known only when the check runs (a site's export) stays `{slot}`."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def instance(check_type: CheckType, table: str, column: str | None = None, **params: Any) -> CatalogueCheck:
    """A check of `check_type` on `table`, its name and description filled from `params` (and `table`)."""
    slots = _Slots({"table": table, "column": column, **params})
    return CatalogueCheck(
        check_type=check_type,
        table=table,
        name=check_type.name.format_map(slots),
        description=check_type.description.format_map(slots),
        category=params.get("category", check_type.category),
        subcategory=params.get("subcategory", check_type.subcategory),
        column=column,
        threshold=params.get("threshold", check_type.threshold),
        params=params,
    )


def registry_key(table: TableContract) -> str | None:
    """The pseudonymous key that replaces the site's record id in the registry (`patient_id` → `patient_key`)."""
    return f"{table.record_id.removesuffix('_id')}_key" if table.record_id else None


def _listed(check_type: CheckType) -> list[CatalogueCheck]:
    return [instance(check_type, **dict(listed)) for listed in check_type.instances or ()]


def registry_checks() -> list[CatalogueCheck]:
    """The registry's Dagster asset checks, in the catalogue's order (listed and generated from the contract)."""
    checks: list[CatalogueCheck] = []
    for check_type in catalogue().values():
        if check_type.engine != "registry_check":
            continue
        if check_type.type == "primary_key":
            checks += [instance(check_type, table.name, key=registry_key(table)) for table in TABLES
                       if table.record_id]
        elif check_type.type == "values_within_contract_ranges":
            checks += [instance(check_type, table.name) for table in TABLES]
        else:
            checks += _listed(check_type)
    return checks


def gx_suite_checks() -> list[CatalogueCheck]:
    """The Great Expectations suites' Dagster asset checks: one per registry table and Kahn category."""
    check_type = next(t for t in catalogue().values() if t.engine == "gx_suite")
    return [instance(check_type, table.name, category=category, subcategory=check_type.subcategory)
            for table in TABLES for category in KAHN_CATEGORIES]


def site_export_checks() -> list[CatalogueCheck]:
    """The site-export checks: per file of the contract and category (each listed with its quarantine rules), and
    the newest export's; each is evaluated per site of the run."""
    checks: list[CatalogueCheck] = []
    for check_type in catalogue().values():
        if check_type.engine != "site_export":
            continue
        if check_type.type == "rows_pass_category_rules":
            checks += [instance(check_type, table.name, file=table.name, file_name=table.file_name, **listed)
                       for table in TABLES for listed in listed_instances(check_type.type)]
        else:
            checks += _listed(check_type)
    return checks


def listed_instances(type_name: str) -> list[dict[str, Any]]:
    """The instances the catalogue lists for a check type, as written."""
    return [dict(listed) for listed in check_type(type_name).instances or ()]


# --- rendering the SQL templates -------------------------------------------------------------------------------

def _header_free(text: str) -> str:
    """A template without its header comment lines (what it means, lint settings): the recorded SQL is the query."""
    lines = text.strip().splitlines()
    while lines and lines[0].startswith("--"):
        lines.pop(0)
    return "\n".join(lines)


def literal(value: Any) -> str:
    """A value as a SQL literal: numbers as written, text quoted with its quotes doubled (codes, site ids, file
    names), a list of texts as a DuckDB list. Only values, never identifiers or SQL (`identifier` names those)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{value!r} is not a value a check compares with")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]::VARCHAR[]"
    raise ValueError(f"{value!r} is not a value a check compares with")


_OPERATORS = (">=", "<=", ">", "<")


def operator(symbol: str) -> str:
    """A comparison operator, if it is one of the four a range uses."""
    if symbol not in _OPERATORS:
        raise ValueError(f"{symbol!r} is not a range operator ({', '.join(_OPERATORS)})")
    return symbol


def render_template(relative: str, fragments: Mapping[str, str]) -> str:
    """`sql/<relative>` without its header, its {slots} filled with `fragments` (identifiers from `identifier`,
    literals from `literal`, conditions from `render_condition`)."""
    return render_sql(_header_free(sql_text(relative)), fragments)


def render_condition(template: str, fragments: Mapping[str, str]) -> str:
    """A catalogue condition (`violated_when`) with its {slots} filled."""
    return render_sql(template, fragments)


def column(name: str, allowed: Collection[str]) -> str:
    """A column name of a registry table as an identifier (whitelisted against the table's columns)."""
    return identifier(name, allowed)


def table_name(name: str) -> str:
    """A registry table name as an identifier (whitelisted against the contract's and the registry's tables)."""
    return identifier(name, REGISTRY_TABLE_NAMES)


# Registry tables a check may read: the contract's tables and the registry's own bookkeeping.
REGISTRY_TABLE_NAMES: frozenset[str] = frozenset(
    {table.name for table in TABLES} | {"file_counts", "quarantine", "exports", "protocol"}
)
