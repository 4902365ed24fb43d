"""Column docs of the published tables, one YAML file per table in `schemas/columns/<schema>.<table>.yaml`.

A file holds only what has no other source: what the table and each column mean in the clinic, units and
keys. Everything else is read from its single source when docs, `COMMENT ON` texts and the data dictionary are
made: a table's description from the header comment of `sql/<schema>/<table>.sql` when the file gives none,
ranges and codes from the Pandera contract (with the protocol's limits) or a named code list. So a range typed
in a YAML file would be a second source, and the loader refuses keys it does not know.

    primary_key: [patient_key]          # optional; implies required and (alone) unique
    description: ...                    # optional when the table's SQL file has a header comment
    sql_file: sql/registry/x.sql        # optional: the SQL file that builds it (default sql/<schema>/<table>.sql)
    columns:
      weight_kg:
        description: Body weight ...    # required
        unit: kg                        # optional
        tests: [not_null, unique]       # optional
        contract: patients.weight_kg    # optional: whose range and codes apply (default: the registry
                                        #   table's contract column of the same name)
        codes: schemas.enums:SEX        # optional: a code list that lives elsewhere ("module:NAME")
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from schemas.protocol import Protocol
from schemas.tables import TABLES_BY_NAME

ROOT = Path(__file__).resolve().parent.parent
COLUMNS_FOLDER = Path("schemas") / "columns"
COLUMN_TESTS = ("not_null", "unique")
_TABLE_KEYS = {"description", "primary_key", "columns", "sql_file"}
_COLUMN_KEYS = {"description", "unit", "tests", "contract", "codes"}
# Pandera checks whose statistics are a fixed bound, as Frictionless Table Schema constraints. The protocol's
# plausibility limit (added by TableContract.schema) is an upper bound like any other.
_BOUNDS = {
    "greater_than_or_equal_to": ("minimum", "min_value"),
    "less_than_or_equal_to": ("maximum", "max_value"),
    "greater_than": ("exclusiveMinimum", "min_value"),
    "less_than": ("exclusiveMaximum", "max_value"),
    "rate_within_plausibility_limit": ("maximum", "max_value"),
}


class ColumnDocsError(ValueError):
    """A column-docs file is malformed or points at a source that does not exist."""


@dataclass(frozen=True)
class ColumnDoc:
    name: str
    description: str
    unit: str | None = None
    tests: tuple[str, ...] = ()
    contract: str | None = None
    codes: str | None = None


@dataclass(frozen=True)
class TableDoc:
    """One published table's docs; `schema` is the working database's (registry, metrics)."""

    schema: str
    name: str
    description: str
    primary_key: tuple[str, ...]
    columns: dict[str, ColumnDoc]
    sql_file: str | None

    @property
    def key(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def published_name(self) -> str:
        """How analysts name it: registry tables sit in the file's main schema (`patients`), the others keep
        their schema (`metrics.registry_metrics`), as ketreg.registry.publish.PUBLISHED_SCHEMAS places them."""
        return self.name if self.schema == "registry" else self.key

    def contract_column(self, column: str) -> tuple[str, str] | None:
        """(contract table, column) whose Pandera checks hold for `column`, if any."""
        doc = self.columns[column]
        if doc.contract:
            table, _, name = doc.contract.partition(".")
            return table, name
        contract = TABLES_BY_NAME.get(self.name) if self.schema == "registry" else None
        return (self.name, column) if contract is not None and column in contract.columns else None

    def constraints(self, column: str, protocol: Protocol) -> dict[str, object]:
        """Frictionless Table Schema constraints of `column`, read from the keys, the tests, the contract
        (with `protocol`'s limits) and the named code list; never from the YAML's own text."""
        doc = self.columns[column]
        found: dict[str, object] = {}
        source = self.contract_column(column)
        if source is not None:
            contract = TABLES_BY_NAME[source[0]]
            checked = contract.schema(protocol).columns[source[1]]
            if not checked.nullable:
                found["required"] = True
            for check in checked.checks:
                stats = check.statistics or {}
                if check.name in _BOUNDS:
                    key, stat = _BOUNDS[check.name]
                    value = stats[stat]
                    if key in found:  # two bounds of one kind: the tighter holds
                        value = min(found[key], value) if "aximum" in key else max(found[key], value)
                    found[key] = value
                elif check.name == "in_range":
                    found["minimum"], found["maximum"] = stats["min_value"], stats["max_value"]
                elif check.name == "isin":
                    found["enum"] = list(stats["allowed_values"])
        if doc.codes:
            found["enum"] = list(_code_list(doc.codes))
        if "not_null" in doc.tests or column in self.primary_key:
            found["required"] = True
        if "unique" in doc.tests or self.primary_key == (column,):
            found["unique"] = True
        return found


def _code_list(reference: str) -> tuple[str, ...]:
    module, _, name = reference.partition(":")
    try:
        values = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ColumnDocsError(f"code list {reference!r} does not exist: {exc}") from exc
    return tuple(values)


def sql_description(path: Path) -> str:
    """The first paragraph of a SQL file's header comment, without its `<schema>.<table>:` prefix."""
    paragraph: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.removeprefix("--").strip()
        if not line.startswith("--") or (not text and paragraph):
            break
        paragraph.append(text)
    description = " ".join(paragraph).strip()
    head, sep, rest = description.partition(": ")
    if sep and head == f"{path.parent.name}.{path.stem}":
        description = rest
    return description[:1].upper() + description[1:]


def _load(path: Path, root: Path) -> TableDoc:
    schema, _, name = path.stem.partition(".")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    where = f"{path.relative_to(root)}"
    if not isinstance(raw, dict) or not isinstance(raw.get("columns"), dict):
        raise ColumnDocsError(f"{where}: expected a mapping with a 'columns' mapping")
    if unknown := set(raw) - _TABLE_KEYS:
        raise ColumnDocsError(f"{where}: unknown key(s) {sorted(unknown)}; ranges and codes are read from "
                              "their source (contract: or codes:), not written here")
    columns: dict[str, ColumnDoc] = {}
    for column, entry in raw["columns"].items():
        entry = entry or {}
        if unknown := set(entry) - _COLUMN_KEYS:
            raise ColumnDocsError(f"{where}: column {column}: unknown key(s) {sorted(unknown)}")
        tests = tuple(entry.get("tests") or ())
        if bad := [t for t in tests if t not in COLUMN_TESTS]:
            raise ColumnDocsError(f"{where}: column {column}: unknown test(s) {bad}; known: {COLUMN_TESTS}")
        columns[column] = ColumnDoc(column, str(entry.get("description") or "").strip(), entry.get("unit"),
                                    tests, entry.get("contract"), entry.get("codes"))
    primary_key = tuple(raw.get("primary_key") or ())
    if missing := [c for c in primary_key if c not in columns]:
        raise ColumnDocsError(f"{where}: primary_key column(s) {missing} are not documented")
    sql_file = raw.get("sql_file") or f"sql/{schema}/{name}.sql"
    if not (root / sql_file).is_file():
        if "sql_file" in raw:
            raise ColumnDocsError(f"{where}: sql_file {sql_file} does not exist")
        sql_file = None
    description = str(raw.get("description") or "").strip()
    if not description and sql_file:
        description = sql_description(root / sql_file)
    doc = TableDoc(schema, name, description, primary_key, columns, sql_file)
    for column in columns:
        source = doc.contract_column(column)
        if source and (source[0] not in TABLES_BY_NAME or source[1] not in TABLES_BY_NAME[source[0]].columns):
            raise ColumnDocsError(f"{where}: column {column}: contract column {'.'.join(source)} does not exist")
    return doc


@cache
def load_table_docs(root: Path = ROOT) -> dict[str, TableDoc]:
    """Every table's docs by `<schema>.<table>` (working-database names), in file-name order, from
    `<root>/schemas/columns/` (and `<root>/sql/` for table descriptions)."""
    paths = sorted((root / COLUMNS_FOLDER).glob("*.yaml"))
    return {doc.key: doc for doc in (_load(path, root) for path in paths)}


def _shown(value: object) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def constraint_words(constraints: dict[str, object]) -> list[str]:
    """Constraints as a reader writes them: `≥ 0`, `one of F, M`, `required`."""
    words: list[str] = []
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if key in constraints:
            words.append(f"{sign} {_shown(constraints[key])}")
    if "enum" in constraints:
        words.append("one of " + ", ".join(str(v) for v in constraints["enum"]))  # type: ignore[attr-defined]
    words += [word for word in ("required", "unique") if constraints.get(word)]
    return words


def column_comment(doc: TableDoc, column: str, protocol: Protocol) -> str:
    """The `COMMENT ON COLUMN` text: description, unit, allowed values."""
    col = doc.columns[column]
    parts = [col.description]
    if col.unit:
        parts.append(f"Unit: {col.unit}.")
    allowed = [w for w in constraint_words(doc.constraints(column, protocol)) if w not in ("required", "unique")]
    if allowed:
        parts.append(f"Allowed: {'; '.join(allowed)}.")
    return " ".join(parts)


def table_comment(doc: TableDoc) -> str:
    """The `COMMENT ON TABLE` text: what the table means, and its key."""
    key = f" Key: {', '.join(doc.primary_key)}." if doc.primary_key else ""
    return f"{doc.description}{key}"
