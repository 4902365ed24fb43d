"""A site's mapping file (`sites/<site_id>.yaml`): how its own export becomes the canonical contract.

This module reads the file (bounded, no YAML aliases) and checks it against the pydantic models of
`ketreg.landing.mapping_file`, then gives the checked mapping that `ketreg.landing.apply_mapping` applies. Every
key is documented in docs/site-mappings.md. A problem in the file is reported with the file's name, the line and
the key path, all problems together, so a data manager can fix them in one go.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from ketreg import environment
from ketreg.landing.mapping_file import (
    DEFAULT_DATE_FORMAT,
    DEFAULT_DATETIME_FORMAT,
    ENCODINGS,
    ColumnSource,
    TablePartBase,
    describe,
    skip_if_empty_columns,
    validate_mapping,
)
from schemas.tables import TABLES_BY_NAME
from schemas.yaml_source import KeyPath, YamlSource, key_lines

MAPPING_DOC = "docs/site-mappings.md"


class MappingError(ValueError):
    """The mapping file cannot be used; every export of the site is rejected with this message."""


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a few lines of `&a [*a, *a, …]` expand to billions of nodes."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a mapping file", mark)
        return super().compose_node(parent, index)


@dataclass(frozen=True)
class ColumnSpec:
    """Where one contract column comes from and how its text is turned into the contract's."""

    column: str
    source: str | None = None  # a column of the site's file
    constant: str | None = None
    template: str | None = None  # e.g. "{record_id}-I{redcap_repeat_instance}"
    any_checked: str | None = None  # a REDCap checkbox field: true if any `<field>___<code>` is 1
    values: dict[str, str | None] | None = None
    keep_unmapped: bool = False
    unit: str | None = None
    format: str | None = None
    round: int | None = None
    missing_codes: tuple[str, ...] = ()

    def source_columns(self, header: list[str]) -> list[str]:
        """The site's columns this spec reads (for reporting unused ones)."""
        if self.source:
            return [self.source]
        if self.any_checked:
            return [c for c in header if c.startswith(f"{self.any_checked}___")]
        if self.template:
            return [c for c in header if f"{{{c}}}" in self.template]
        return []


@dataclass(frozen=True)
class TablePart:
    """One place of the site's export that holds rows of a contract table (a file, a sheet, or REDCap rows)."""

    table: str
    where: str  # the key path in the mapping file, for messages
    file: str | None = None
    sheet: str | None = None
    events: tuple[str, ...] = ()  # REDCap: redcap_event_name values; empty = any event
    instrument: str | None = None  # REDCap: redcap_repeat_instrument; "" = the non-repeating rows
    columns: dict[str, ColumnSpec] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    # Rows whose listed contract columns are all empty are skipped (and counted in a notice), e.g. a REDCap
    # event row that holds no baseline score. Empty: no row is skipped.
    skip_if_empty: tuple[str, ...] = ()
    # Optional contract columns the site does not record: no "read as empty" notice for them.
    not_recorded: tuple[str, ...] = ()


@dataclass(frozen=True)
class SiteMapping:
    """A site's mapping file, checked."""

    site_id: str
    path: Path
    sha256: str
    format: str
    encoding: str = "utf-8-sig"
    delimiter: str = ","
    quote: str = '"'
    decimal_comma: bool = False
    date_format: str = DEFAULT_DATE_FORMAT
    datetime_format: str = DEFAULT_DATETIME_FORMAT
    timezone: str | None = None
    source_timezone: str | None = None
    missing_codes: tuple[str, ...] = ()
    file: str | None = None  # REDCap: the one file of the export; Excel: the workbook
    ignore: tuple[str, ...] = ()
    tables: dict[str, tuple[TablePart, ...]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"sites/{self.path.name}"

    def source_files(self) -> list[str]:
        """The files of an export folder this mapping reads."""
        if self.format in ("redcap", "excel"):
            return [self.file] if self.file else []
        return sorted({p.file for parts in self.tables.values() for p in parts if p.file})


def default_sites_dir() -> Path:
    """`$KETREG_SITES_DIR`, else the `sites/` folder of the repository."""
    configured = environment.value(environment.SITES_DIR)
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "sites"


def mapping_path(sites_dir: Path, site_id: str) -> Path | None:
    path = sites_dir / f"{site_id}.yaml"
    return path if path.is_file() else None


def load_mapping(path: Path, site_id: str, max_bytes: int = 1 << 20) -> SiteMapping:
    """Read and check `path` (at most `max_bytes`, no YAML aliases); raise MappingError listing every
    problem found, with the line and column PyYAML gives."""
    label = f"sites/{path.name}"
    try:
        with path.open("rb") as handle:
            content = handle.read(max_bytes + 1)
    except OSError as exc:
        raise MappingError(f"{label}: cannot be read ({exc.strerror})") from exc
    if len(content) > max_bytes:
        raise MappingError(f"{label}: larger than {max_bytes:,} bytes (max_mapping_bytes in config/limits.yaml)")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MappingError(f"{label}: not UTF-8 text (byte {exc.start}); save the mapping file as UTF-8") from exc
    try:
        raw = yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise MappingError(f"{label}: {_yaml_error(exc, text)}") from exc
    if not isinstance(raw, dict):
        raise MappingError(f"{label}: expected keys such as format and tables ({MAPPING_DOC})")
    try:
        checked = validate_mapping(raw, site_id)
    except ValidationError as exc:
        source = YamlSource(path, raw, _key_lines(text))
        raise MappingError(f"{label}: " + "; ".join(describe(exc, raw, source.line_of)) + f" (see {MAPPING_DOC})") \
            from None
    return SiteMapping(
        site_id=site_id,
        path=path,
        sha256=hashlib.sha256(content).hexdigest(),
        format=checked.format,
        encoding=ENCODINGS[checked.encoding],
        delimiter=checked.delimiter,
        quote=checked.quote,
        decimal_comma=checked.decimal_comma,
        date_format=checked.date_format,
        datetime_format=checked.datetime_format,
        timezone=checked.timezone,
        source_timezone=checked.source_timezone,
        missing_codes=checked.missing_codes,
        file=checked.file,
        ignore=checked.ignore,
        tables={
            table: tuple(_table_part(table, part, f"tables.{table}" + (f"[{i}]" if len(parts) > 1 else ""))
                         for i, part in enumerate(parts))
            for table in TABLES_BY_NAME
            if (parts := getattr(checked.tables, table)) is not None
        },
    )


def _table_part(table: str, part: TablePartBase, where: str) -> TablePart:
    return TablePart(
        table,
        where,
        file=part.file,
        sheet=part.sheet,
        events=part.rows.event,
        instrument=part.rows.instrument,
        columns={column: _column_spec(column, spec) for column, spec in part.mapped_columns().items()},
        ignore=part.ignore,
        skip_if_empty=skip_if_empty_columns(part, TABLES_BY_NAME[table]),
        not_recorded=part.not_recorded,
    )


def _column_spec(column: str, spec: ColumnSource) -> ColumnSpec:
    return ColumnSpec(
        column,
        source=spec.source,
        constant=spec.constant,
        template=spec.template,
        any_checked=spec.any_checked,
        values=spec.values,
        keep_unmapped=spec.unmapped == "keep",
        unit=spec.unit,
        format=spec.format,
        round=spec.round,
        missing_codes=spec.missing_codes,
    )


def _yaml_error(exc: yaml.YAMLError, text: str) -> str:
    """PyYAML's own words with the line, column and the key path the error sits under, e.g.
    `line 12, column 20 (under tables.patients.columns): mapping values are not allowed here`."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    hint = ""
    if "mapping values are not allowed" in problem or "found character" in problem:
        hint = "; a column name with ':', '?', '#' or a leading '-' must be quoted, e.g. \"Pain score?\""
    if mark is None:
        return f"not valid YAML: {problem}{hint}"
    path = _path_above(text.splitlines(), mark.line)
    under = f" (under {path})" if path else ""
    return f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}{under}: {problem}{hint}"


def _path_above(lines: list[str], line: int) -> str:
    """The keys enclosing `line` of a block-style YAML file, found by indentation (the parser stopped there,
    so there is no tree to ask)."""
    keys: list[str] = []
    indent = len(lines[line]) - len(lines[line].lstrip()) if line < len(lines) else 0
    for text in reversed(lines[:line]):
        stripped = text.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        own = len(text) - len(stripped)
        if own < indent and ":" in stripped:
            keys.append(stripped.removeprefix("- ").split(":", 1)[0].strip().strip("'\""))
            indent = own
        if own == 0:
            break
    return ".".join(reversed(keys))


def _key_lines(text: str) -> dict[KeyPath, int]:
    """Line (1-based) of every key path of the file; the file parsed already, so composing it cannot fail."""
    try:
        return key_lines(yaml.compose(text))
    except yaml.YAMLError:
        return {}
