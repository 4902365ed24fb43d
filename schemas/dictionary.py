"""The data dictionary: Markdown rendered from the contract and written into the docs.

Docs never copy a range or a code: the column tables are rendered from the Pandera models (with the
protocol's limits that `TableContract.schema` adds), the protocol file and the header comments of
`sql/registry/*.sql`, and written between marker lines in `docs/`:

    <!-- BEGIN GENERATED: contract -->
    <!-- END GENERATED: contract -->

The published tables' block is rendered from the column docs (`schemas/columns/*.yaml`, read by
`schemas.column_docs`), which take ranges and codes from the same contract.

`python -m schemas.dictionary` rewrites the blocks; `python -m schemas.dictionary --check` exits 1 when
a committed block is stale (a test runs the same check).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import pandera.polars as pa
import polars as pl

from schemas.column_docs import TableDoc, constraint_words, load_table_docs
from schemas.enums import AE_TERM_CATEGORY, CANCER_TYPES
from schemas.identifiers import looks_like_identifier
from schemas.parsing import EXPECTED_TEXT
from schemas.protocol import DEFAULT_PROTOCOL_FILE, Protocol, load_protocol
from schemas.tables import CONTRACT_VERSION, TABLES, TableContract

ROOT = Path(__file__).resolve().parent.parent
REGISTRY_SQL = Path("sql") / "registry"
# Which generated blocks each doc holds; a doc that lacks one of its markers is an error, not a skip.
DOC_BLOCKS = {
    "docs/site-export-contract.md": ("formats", "identifiers", "contract"),
    "docs/registry-tables.md": ("registry",),
}

_TYPE_WORDS = {
    pl.String: "text", pl.Int64: "integer", pl.Float64: "decimal", pl.Boolean: "boolean",
    pl.Date: "date", pl.Datetime: "date-time",
}
# How each type is written: cells the parser reads and cells it refuses (tests/test_docs.py proves both).
WRITING_EXAMPLES: dict[type[pl.DataType], tuple[tuple[str, ...], tuple[str, ...]]] = {
    pl.Int64: (("7", "0", "-3"), ("7.0", "1,000", "seven")),
    pl.Float64: (("12.5", "70", "0.36"), ("12,5", "1 000", "NaN")),
    pl.Boolean: (("true", "false", "True"), ("1", "0", "yes", "Y")),
    pl.Date: (("2026-11-01",), ("01/11/2026", "2026-11-1", "2026-11-01T09:30")),
    pl.Datetime: (
        ("2026-11-01T09:30", "2026-11-01 09:30", "2026-11-01T09:30:15", "2026-11-01T09:30:15.250"),
        ("2026-11-01", "2026-11-01T09:30Z", "2026-11-01T09:30+01:00", "01/11/2026 09:30"),
    ),
}
# Spellings that `schemas.identifiers` treats as direct identifiers (the test proves each one is).
IDENTIFIER_EXAMPLES = (
    "name", "first_name", "Last Name", "surname", "initials", "MRN", "medical_record_number", "nhs_number",
    "ssn", "address", "postcode", "zip", "city", "phone", "mobile", "email", "E-mail", "dob", "date_of_birth",
    "birthdate",
)
# Column checks with a name of their own: the words a data manager reads (statistics fill the braces).
_CHECK_WORDS = {
    "birth_year_not_in_future": "not after the current year",
    "date_not_in_future": "not in the future",
    "rate_within_plausibility_limit": "at most {max_value} mg/h, the protocol's plausibility limit",
}


@dataclass(frozen=True)
class ProtocolSetting:
    """How one limit of the protocol file is used: where it sits in the YAML, and what it does."""

    path: str
    effect: Callable[[Protocol], str]
    deviations: tuple[str, ...] = ()


PROTOCOL_SETTINGS: dict[str, ProtocolSetting] = {
    "name": ProtocolSetting("name", lambda p: "Which protocol this file describes."),
    "version": ProtocolSetting(
        "version", lambda p: "Its version. Changing any setting of the file re-validates every export."
    ),
    "plausible_max_rate_mg_h": ProtocolSetting(
        "plausibility.max_rate_mg_h",
        lambda p: "**Invalid** above it: an infusion whose `initial_rate_mg_h` or `max_rate_mg_h` exceeds "
        f"{_number(p.plausible_max_rate_mg_h)} mg/h is quarantined (`rate_within_plausibility_limit`); "
        "such a rate is most likely a unit error (µg/kg/min or mg/kg/h typed as mg/h).",
    ),
    "first_infusion_max_rate_mg_h": ProtocolSetting(
        "titration.first_infusion_max_rate_mg_h",
        lambda p: f"**Deviation**: the patient's infusion 1 with `max_rate_mg_h` above "
        f"{_number(p.first_infusion_max_rate_mg_h)} mg/h is kept and recorded as "
        "`first_infusion_rate_above_titration_cap`.",
        ("first_infusion_rate_above_titration_cap",),
    ),
    "max_rate_mg_h": ProtocolSetting(
        "titration.max_rate_mg_h",
        lambda p: f"**Deviation**: any infusion with `max_rate_mg_h` above {_number(p.max_rate_mg_h)} mg/h "
        "(and within the plausibility limit) is kept and recorded as `rate_above_protocol_maximum`.",
        ("rate_above_protocol_maximum",),
    ),
    "planned_session_hours": ProtocolSetting(
        "session.planned_hours",
        lambda p: f"The planned session, {_number(p.planned_session_hours)} h.",
    ),
    "session_tolerance_hours": ProtocolSetting(
        "session.tolerance_hours",
        lambda p: "**Deviation**: a session shorter than "
        f"{_number(p.planned_session_hours - p.session_tolerance_hours)} h is recorded as "
        "`session_shorter_than_planned`, one longer than "
        f"{_number(p.planned_session_hours + p.session_tolerance_hours)} h as `session_longer_than_planned`.",
        ("session_shorter_than_planned", "session_longer_than_planned"),
    ),
    "induction_infusions": ProtocolSetting(
        "phases.induction_infusions",
        lambda p: f"A patient's infusions 1 … {p.induction_infusions} are `induction`, later ones "
        "`maintenance` (the registry's `infusions.phase`).",
    ),
    "responder_reduction": ProtocolSetting(
        "response.responder_reduction",
        lambda p: f"A responder has at least {_percent(p.responder_reduction)} NPRS reduction from baseline "
        "(IMMPACT: moderately important). Not yet computed by the registry.",
    ),
    "substantial_reduction": ProtocolSetting(
        "response.substantial_reduction",
        lambda p: f"At least {_percent(p.substantial_reduction)} is a substantial reduction (IMMPACT). "
        "Not yet computed by the registry.",
    ),
}
# The `deviation` codes of registry.protocol_deviations, in the order of the protocol file.
DEVIATION_CODES = tuple(code for setting in PROTOCOL_SETTINGS.values() for code in setting.deviations)


class DocsError(ValueError):
    """A doc lacks its markers, or the contract holds something the dictionary cannot describe."""


def _number(value: float | int) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _percent(share: float) -> str:
    return f"{_number(round(share * 100, 6))} %"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _codes(values: Iterable[object]) -> str:
    return ", ".join(f"`{value}`" for value in values)


def _base_type(dtype: pl.DataType) -> type[pl.DataType]:
    return dtype.base_type() if hasattr(dtype, "base_type") else type(dtype)


def _type_word(table: TableContract, column: str) -> str:
    checks = table.base_schema.columns[column].checks
    if any(check.name == "isin" for check in checks):
        return "code"
    return _TYPE_WORDS[_base_type(table.polars_type(column))]


def _range(bounds: dict[str, str]) -> list[str]:
    if "ge" in bounds and "le" in bounds:
        return [f"{bounds['ge']} … {bounds['le']}"]
    return [f"≥ {bounds['ge']}"] if "ge" in bounds else [f"≤ {bounds['le']}"] if "le" in bounds else []


def _column_rules(table: TableContract, column: pa.Column) -> list[str]:
    """The rules of one column in words, in the order a data manager checks a cell."""
    when_missing = (column.metadata or {}).get("when_missing")
    head = [f"empty → `{when_missing}`"] if when_missing is not None else []
    bounds: dict[str, str] = {}
    rules: list[str] = []
    for check in column.checks:
        stats = check.statistics or {}
        if check.name == "greater_than_or_equal_to":
            bounds["ge"] = _number(stats["min_value"])
        elif check.name == "less_than_or_equal_to":
            bounds["le"] = _number(stats["max_value"])
        elif check.name == "greater_than":
            rules.append(f"> {_number(stats['min_value'])}")
        elif check.name == "less_than":
            rules.append(f"< {_number(stats['max_value'])}")
        elif check.name == "in_range":
            rules.append(f"{_number(stats['min_value'])} … {_number(stats['max_value'])}")
        elif check.name == "isin":
            rules.append(f"one of {_codes(stats['allowed_values'])}")
        elif check.name == "notin":
            rules.append(f"none of {_codes(stats['forbidden_values'])}")
        else:
            words = _CHECK_WORDS.get(check.name, "")
            values = {key: _number(v) if isinstance(v, int | float) else v for key, v in stats.items()}
            rules.append(f"{words.format(**values)} (`{check.name}`)" if words else f"`{check.name}`")
    if column.unique:
        rules.append("unique")
    see: list[str] = []
    for ref in table.references:
        if ref.columns == (column.name,):
            rules.append(f"must match `{ref.parent_columns[0]}` in {ref.parent_table}.csv (`{ref.name}`)")
        elif column.name in ref.columns:
            see.append(ref.name)
    for rule in table.row_rules:
        if rule.columns == (column.name,):
            rules.append(f"`{rule.name}`")
        elif column.name in rule.columns:
            see.append(rule.name)
    if see:
        rules.append(f"see {_codes(see)}")
    return [*head, *_range(bounds), *rules]


def _table_intro(table: TableContract) -> str:
    module_doc = (sys.modules[table.model.__module__].__doc__ or "").strip()
    module_doc = module_doc.removeprefix(f"{table.file_name}:").strip()
    module_doc = module_doc[:1].upper() + module_doc[1:]
    needed = "Required in every export." if table.required_in_export else "Optional: an export may omit it."
    record = (
        f"Quarantined rows are identified by `{table.record_id}`."
        if table.record_id
        else "It has no id column: find its quarantined rows by `source_line`."
    )
    return " ".join(part for part in (module_doc, needed, record) if part)


def _render_table(table: TableContract, protocol: Protocol) -> str:
    schema = table.schema(protocol)
    lines = [f"### {table.file_name}", "", _table_intro(table), "",
             "| column | type | required | rule |", "|---|---|---|---|"]
    for name, column in schema.columns.items():
        required = "yes" if name in table.required_columns else "no"
        rules = _column_rules(table, column)
        parts = [f"{'; '.join(rules)}."] if rules else []
        if column.description:
            parts.append(f"*{column.description}*")
        lines.append(f"| `{name}` | {_type_word(table, name)} | {required} | {_cell(' '.join(parts))} |")
    across = []
    for check in schema.checks:
        rule = table.row_rule(check.name)
        if rule is None:
            raise DocsError(f"{table.name}: dataframe check {check.name!r} has no RowRule, so no message")
        across.append(f"- `{rule.name}` ({', '.join(rule.columns)}): *{rule.message}*")
    for ref in table.references:
        target = f"{ref.parent_table}.csv {', '.join(ref.parent_columns)}"
        across.append(f"- `{ref.name}` ({', '.join(ref.columns)} → {target}, same export): *{ref.message}*")
    if across:
        lines += ["", "A row that breaks one of these rules is quarantined with the message in italics:", "",
                  *across]
    if table.references:
        lines += ["", "A row whose referenced parent row was itself quarantined is quarantined too, with the "
                  "rule `parent_quarantined`."]
    if table.name == "adverse_events":
        pairs = ", ".join(f"`{term}` → `{category}`" for term, category in AE_TERM_CATEGORY.items())
        lines += ["", f"Body system of each term, used to fill an empty `category` and by "
                  f"`category_matches_term` (`other` may carry any category): {pairs}."]
    return "\n".join(lines)


def render_protocol(protocol: Protocol) -> str:
    """The protocol file's limits, their values and what each does (invalid, deviation or phase)."""
    undocumented = {f.name for f in fields(Protocol)} - set(PROTOCOL_SETTINGS)
    if undocumented:
        raise DocsError(f"protocol setting(s) {sorted(undocumented)} lack a PROTOCOL_SETTINGS entry")
    lines = ["| setting in the protocol file | value | what it does |", "|---|---|---|"]
    for name, setting in PROTOCOL_SETTINGS.items():
        value = getattr(protocol, name)
        shown = _number(value) if isinstance(value, int | float) else str(value)
        lines.append(f"| `{setting.path}` | {_cell(shown)} | {_cell(setting.effect(protocol))} |")
    return "\n".join(lines)


def render_contract(protocol: Protocol | None = None) -> str:
    """The five files of the contract, column by column, then the protocol's limits."""
    default = load_protocol()
    protocol = protocol or default
    source = f" (`{DEFAULT_PROTOCOL_FILE.relative_to(ROOT)}`, the default)" if protocol == default else ""
    parts = [
        f"Contract v{CONTRACT_VERSION}, rendered with protocol `{protocol.name}` version {protocol.version}"
        f"{source}.",
        "",
        "*required* = the column must be in the header and every row must fill it; an optional column may "
        "be absent from the header or left empty. Names in backticks are the `rule` a quarantined row "
        "carries; a range breaks rule `range`, a code rule `code`, an unreadable cell rule `type`.",
    ]
    parts += ["", *(f"{_render_table(table, protocol)}\n" for table in TABLES)]
    parts += ["### Protocol limits", "",
              "Limits of the treatment protocol, read from the protocol file (`ketreg run --protocol "
              "FILE`). *Invalid* rows are quarantined; *deviations* are valid rows, kept and recorded in the "
              "registry's `protocol_deviations` table.", "", render_protocol(protocol)]
    return "\n".join(parts).strip() + "\n"


def render_formats() -> str:
    """How each contract type is written in a canonical CSV, with cells the parser reads and refuses."""
    lines = ["| type | written as | read | refused |", "|---|---|---|---|",
             "| text | any text | `PT-0001` | — |",
             f"| code | exactly one of the column's codes (letter case matters) | `{CANCER_TYPES[0]}` | "
             f"`{CANCER_TYPES[0].capitalize()}` |"]
    for dtype, (read, refused) in WRITING_EXAMPLES.items():
        written = _cell(EXPECTED_TEXT[dtype])
        lines.append(f"| {_TYPE_WORDS[dtype]} | {written} | {_codes(read)} | {_codes(refused)} |")
    return "\n".join(lines) + "\n"


def render_identifier_examples() -> str:
    """Spellings of column names that are never read because they look like direct identifiers."""
    missed = [name for name in IDENTIFIER_EXAMPLES if not looks_like_identifier(name)]
    if missed:
        raise DocsError(f"IDENTIFIER_EXAMPLES {missed} are not detected by schemas.identifiers")
    return f"Never read, for example: {_codes(IDENTIFIER_EXAMPLES)}.\n"


def sql_header(path: Path) -> str:
    """The leading `--` comment of a SQL file, as one paragraph."""
    header: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("--"):
            break
        header.append(line.removeprefix("--").strip())
    return " ".join(part for part in header if part)


def _render_table_doc(doc: TableDoc, protocol: Protocol) -> str:
    """One published table: what it means, its key, and each column's meaning, unit and allowed values."""
    key = f"Key: {', '.join(f'`{c}`' for c in doc.primary_key)}. " if doc.primary_key else "No key column. "
    built = f"Built by `{doc.sql_file}`." if doc.sql_file else ""
    lines = [f"### `{doc.published_name}`", "", doc.description or "*No description.*", "", f"{key}{built}".strip(),
             "", "| column | unit | allowed values | meaning |", "|---|---|---|---|"]
    for name, column in doc.columns.items():
        allowed = constraint_words(doc.constraints(name, protocol))
        lines.append(f"| `{name}` | {_cell(column.unit or '')} | {_cell('; '.join(allowed))} | "
                     f"{_cell(column.description)} |")
    if doc.key == "registry.ae_term_categories":
        pairs = ", ".join(f"`{term}` → `{category}`" for term, category in AE_TERM_CATEGORY.items())
        lines += ["", f"Its rows (from `schemas/enums.py`): {pairs}."]
    return "\n".join(lines) + "\n"


def render_registry_tables(root: Path | None = None) -> str:
    """Every published table from its column docs (`schemas/columns/*.yaml`): registry tables first (they sit
    in the analysts' main schema), then the metrics tables. Ranges and codes come from the contract and the
    default protocol file."""
    docs = load_table_docs(root or ROOT)
    protocol = load_protocol()
    ordered = sorted(docs.values(), key=lambda doc: (doc.schema != "registry", doc.schema, doc.name))
    return "\n".join(_render_table_doc(doc, protocol) for doc in ordered)


BLOCKS: dict[str, Callable[[], str]] = {
    "formats": render_formats,
    "identifiers": render_identifier_examples,
    "contract": render_contract,
    "registry": render_registry_tables,
}


def replace_block(text: str, name: str, content: str) -> str:
    """`text` with the lines between the BEGIN/END markers of block `name` replaced by `content`."""
    pattern = re.compile(
        rf"(<!-- BEGIN GENERATED: {re.escape(name)} -->\n).*?(^<!-- END GENERATED: {re.escape(name)} -->)",
        re.DOTALL | re.MULTILINE,
    )
    if len(pattern.findall(text)) != 1:
        raise DocsError(f"expected one pair of '<!-- BEGIN/END GENERATED: {name} -->' marker lines")
    note = "<!-- Generated by `python -m schemas.dictionary` from schemas/, config/, sql/. Do not edit. -->\n"
    return pattern.sub(lambda m: f"{m.group(1)}{note}\n{content.strip()}\n\n{m.group(2)}", text)


def update_docs(check: bool = False, root: Path | None = None) -> list[str]:
    """Rewrite the generated blocks of the docs; return the docs that changed (with `check`, that would
    change, and nothing is written)."""
    root = root or ROOT
    rendered = {
        name: render_registry_tables(root) if name == "registry" else render()
        for name, render in BLOCKS.items()
    }
    changed: list[str] = []
    for doc, blocks in DOC_BLOCKS.items():
        path = root / doc
        if not path.is_file():
            raise DocsError(f"{doc} does not exist")
        text = path.read_text(encoding="utf-8")
        updated = text
        for block in blocks:
            try:
                updated = replace_block(updated, block, rendered[block])
            except DocsError as exc:
                raise DocsError(f"{doc}: {exc}") from exc
        if updated != text:
            changed.append(doc)
            if not check:
                path.write_text(updated, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.dictionary", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated block is stale")
    args = parser.parse_args(argv)
    changed = update_docs(check=args.check)
    for doc in changed:
        print(f"{doc}: {'stale; run python -m schemas.dictionary' if args.check else 'updated'}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
