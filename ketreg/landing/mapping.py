"""A site's mapping file (`sites/<site_id>.yaml`): how its own export becomes the canonical contract.

This module only reads and checks the file; `ketreg.landing.apply_mapping` applies it. Every key is documented in
docs/site-mappings.md. A problem in the file is reported with the file's name and the key path, all problems
together, so a data manager can fix them in one go.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ketreg import environment
from schemas.tables import TABLES_BY_NAME
from schemas.yaml_source import key_lines

MAPPING_DOC = "docs/site-mappings.md"
FORMATS = ("canonical", "delimited", "excel", "redcap")
ENCODINGS = {
    "utf-8": "utf-8-sig", "utf8": "utf-8-sig", "utf-8-sig": "utf-8-sig",
    "latin-1": "latin-1", "latin1": "latin-1", "iso-8859-1": "latin-1",
    "windows-1252": "cp1252", "cp1252": "cp1252",
}
# Units a site may write a contract column in; the first is the contract's own unit (no conversion).
UNITS: dict[str, tuple[str, ...]] = {
    "initial_rate_mg_h": ("mg/h", "mg/kg/h", "ug/kg/min"),
    "max_rate_mg_h": ("mg/h", "mg/kg/h", "ug/kg/min"),
    "total_dose_mg": ("mg",),
    "weight_kg": ("kg", "lb"),
    "nprs": ("nprs", "vas_0_100"),
    "daily_mme": ("mme",),
}
PER_KG_UNITS = ("mg/kg/h", "ug/kg/min")
EXCEL_SERIAL = "excel_serial"
_TOP_KEYS = {
    "site", "format", "encoding", "delimiter", "quote", "decimal_comma", "date_format", "datetime_format",
    "timezone", "source_timezone", "missing_codes", "file", "tables", "ignore",
}
_PART_KEYS = {"file", "sheet", "rows", "columns", "ignore", "not_recorded"}
_ROWS_KEYS = {"event", "instrument", "skip_if_empty"}
_COLUMN_KEYS = {
    "from", "constant", "template", "any_checked", "values", "unmapped", "unit", "format", "round", "missing_codes",
}


class MappingError(ValueError):
    """The mapping file cannot be used; every export of the site is rejected with this message."""


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a few lines of `&a [*a, *a, …]` expand to billions of nodes."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a mapping file", mark)
        return super().compose_node(parent, index)


def _file_name_problem(value: Any, where: str) -> str | None:
    """A mapping names files inside the export folder only: a bare file name, no folder, no `..`."""
    if value is None:
        return None
    text = str(value)
    if not text or text in (".", "..") or "/" in text or "\\" in text or text.startswith(".") or "\0" in text:
        return f"{where}: '{text[:64]}' must be the name of a file in the export folder (no folders, no '..')"
    return None


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
    date_format: str = "%Y-%m-%d"
    datetime_format: str = "%Y-%m-%dT%H:%M:%S"
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


def _text_list(value: Any, where: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str | int | float):
        value = [value]
    if not isinstance(value, list):
        problems.append(f"{where}: expected a list of texts")
        return ()
    return tuple("" if v is None else str(v) for v in value)


def _column_spec(table: str, column: str, raw: Any, where: str, problems: list[str]) -> ColumnSpec:
    if isinstance(raw, str):
        return ColumnSpec(column, source=raw)
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a column name of the site's file or a mapping of keys")
        return ColumnSpec(column)
    for key in sorted(set(raw) - _COLUMN_KEYS):
        problems.append(f"{where}: unknown key '{key}' (known: {', '.join(sorted(_COLUMN_KEYS))})")
    sources = [k for k in ("from", "constant", "template", "any_checked") if raw.get(k) is not None]
    if len(sources) != 1:
        problems.append(f"{where}: give exactly one of from, constant, template, any_checked (got {sources or 'none'})")
    values = raw.get("values")
    if values is not None and not isinstance(values, dict):
        problems.append(f"{where}.values: expected site value: contract value pairs")
        values = None
    unit = raw.get("unit")
    if unit is not None and unit not in UNITS.get(column, ()):
        allowed = ", ".join(UNITS.get(column, ())) or "none (this column has no unit to convert)"
        problems.append(f"{where}.unit: '{unit}' is not a unit of {table}.{column} (allowed: {allowed})")
    unmapped = raw.get("unmapped", "reject")
    if unmapped not in ("reject", "keep"):
        problems.append(f"{where}.unmapped: expected reject or keep (got '{unmapped}')")
    rounding = raw.get("round")
    if rounding is not None and not (isinstance(rounding, int) and 0 <= rounding <= 6):
        problems.append(f"{where}.round: expected a number of decimals 0 … 6 (got '{rounding}')")

    def text(value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return ColumnSpec(
        column,
        source=text(raw.get("from")),
        constant=text(raw.get("constant")),
        template=text(raw.get("template")),
        any_checked=text(raw.get("any_checked")),
        # YAML reads Y/N/yes/no unquoted as booleans: take keys and values back as the text the site wrote.
        values=None if values is None else {_yaml_key(k): text(v) for k, v in values.items()},
        keep_unmapped=unmapped == "keep",
        unit=unit,
        format=text(raw.get("format")),
        round=rounding,
        missing_codes=_text_list(raw.get("missing_codes"), f"{where}.missing_codes", problems),
    )


def _yaml_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _table_part(mapping_format: str, table: str, raw: Any, where: str, problems: list[str]) -> TablePart:
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected keys {', '.join(sorted(_PART_KEYS))}")
        return TablePart(table, where)
    for key in sorted(set(raw) - _PART_KEYS):
        problems.append(f"{where}: unknown key '{key}' (known: {', '.join(sorted(_PART_KEYS))})")
    if (problem := _file_name_problem(raw.get("file"), f"{where}.file")) is not None:
        problems.append(problem)
    if mapping_format in ("canonical", "delimited") and not raw.get("file"):
        problems.append(f"{where}: name the file that holds {table} (file: …)")
    if mapping_format == "excel" and not raw.get("sheet"):
        problems.append(f"{where}: name the sheet that holds {table} (sheet: …)")
    rows = raw.get("rows") or {}
    if not isinstance(rows, dict):
        problems.append(f"{where}.rows: expected event, instrument and/or skip_if_empty")
        rows = {}
    for key in sorted(set(rows) - _ROWS_KEYS):
        problems.append(f"{where}.rows: unknown key '{key}' (known: {', '.join(sorted(_ROWS_KEYS))})")
    if mapping_format != "redcap" and (rows.get("event") is not None or rows.get("instrument") is not None):
        problems.append(f"{where}.rows: event and instrument select REDCap rows; this mapping's format is "
                        f"{mapping_format}")
    contract = TABLES_BY_NAME[table]
    columns_raw = raw.get("columns") or {}
    if not isinstance(columns_raw, dict):
        problems.append(f"{where}.columns: expected contract column: source pairs")
        columns_raw = {}
    columns: dict[str, ColumnSpec] = {}
    for column, spec in columns_raw.items():
        if column not in contract.columns:
            problems.append(
                f"{where}.columns: '{column}' is not a column of {contract.file_name} "
                f"(its columns: {', '.join(contract.columns)})"
            )
            continue
        columns[column] = _column_spec(table, column, spec, f"{where}.columns.{column}", problems)
    instrument = rows.get("instrument")
    skip_if_empty = _skip_if_empty(rows.get("skip_if_empty"), contract, columns, f"{where}.rows.skip_if_empty",
                                   problems)
    not_recorded = _text_list(raw.get("not_recorded"), f"{where}.not_recorded", problems)
    for column in not_recorded:
        if column not in contract.columns:
            problems.append(f"{where}.not_recorded: '{column}' is not a column of {contract.file_name}")
        elif column in contract.required_columns:
            problems.append(f"{where}.not_recorded: {column} is required by the contract; every site must send it")
        elif column in columns:
            problems.append(f"{where}.not_recorded: {column} is also mapped under {where}.columns; keep one")
    return TablePart(
        table,
        where,
        file=raw.get("file"),
        sheet=raw.get("sheet"),
        events=_text_list(rows.get("event"), f"{where}.rows.event", problems),
        instrument=None if instrument is None else str(instrument),
        columns=columns,
        ignore=_text_list(raw.get("ignore"), f"{where}.ignore", problems),
        skip_if_empty=skip_if_empty,
        not_recorded=not_recorded,
    )


def _skip_if_empty(value: Any, contract: Any, columns: dict[str, ColumnSpec], where: str,
                   problems: list[str]) -> tuple[str, ...]:
    """`true`: every mapped column read from the site's data except the ids and references (they are filled on
    every row of a REDCap record); or a list of contract columns."""
    if value is None or value is False:
        return ()
    if value is True:
        keys = {contract.record_id, *(c for ref in contract.references for c in ref.columns)}
        chosen = tuple(c for c, spec in columns.items()
                       if c not in keys and (spec.source is not None or spec.any_checked is not None))
        if not chosen:
            problems.append(f"{where}: no mapped column besides the ids to test; list the columns instead")
        return chosen
    chosen = _text_list(value, where, problems)
    for column in chosen:
        if column not in contract.columns:
            problems.append(f"{where}: '{column}' is not a column of {contract.file_name}")
    return chosen


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
    problems: list[str] = []
    for key in sorted(set(raw) - _TOP_KEYS):
        problems.append(f"unknown key '{key}' (known: {', '.join(sorted(_TOP_KEYS))})")
    if raw.get("site", site_id) != site_id:
        problems.append(f"site: '{raw.get('site')}' does not match the file name's site id '{site_id}'")
    mapping_format = raw.get("format", "delimited")
    if mapping_format not in FORMATS:
        problems.append(f"format: '{mapping_format}' is not one of {', '.join(FORMATS)}")
    encoding = str(raw.get("encoding", "utf-8")).lower()
    if encoding not in ENCODINGS:
        problems.append(f"encoding: '{encoding}' is not one of utf-8, latin-1, windows-1252")
    delimiter = str(raw.get("delimiter", ","))
    quote = str(raw.get("quote", '"'))
    if len(delimiter) != 1 or len(quote) != 1:
        problems.append("delimiter and quote must each be one character")
    if (problem := _file_name_problem(raw.get("file"), "file")) is not None:
        problems.append(problem)
    if mapping_format in ("redcap", "excel") and not raw.get("file"):
        kind = "REDCap export" if mapping_format == "redcap" else "workbook"
        problems.append(f"file: name the {kind} file (file: …)")
    for key in ("timezone", "source_timezone"):
        if raw.get(key) is not None:
            _check_zone(str(raw[key]), key, problems)
    tables_raw = raw.get("tables") or {}
    if not isinstance(tables_raw, dict):
        problems.append("tables: expected one entry per contract table")
        tables_raw = {}
    tables: dict[str, tuple[TablePart, ...]] = {}
    for table, parts in tables_raw.items():
        if table not in TABLES_BY_NAME:
            problems.append(f"tables: '{table}' is not a contract table (tables: {', '.join(TABLES_BY_NAME)})")
            continue
        parts_list = parts if isinstance(parts, list) else [parts]
        tables[table] = tuple(
            _table_part(mapping_format, table, part, f"tables.{table}" + (f"[{i}]" if len(parts_list) > 1 else ""),
                        problems)
            for i, part in enumerate(parts_list)
        )
    for table in TABLES_BY_NAME.values():
        if table.required_in_export and table.name not in tables:
            problems.append(f"tables: {table.name} is missing; every export needs it")
    if problems:
        lines = _key_lines(text)
        raise MappingError(f"{label}: " + "; ".join(_located(p, lines) for p in problems) + f" (see {MAPPING_DOC})")
    return SiteMapping(
        site_id=site_id,
        path=path,
        sha256=hashlib.sha256(content).hexdigest(),
        format=mapping_format,
        encoding=ENCODINGS[encoding],
        delimiter=delimiter,
        quote=quote,
        decimal_comma=bool(raw.get("decimal_comma", False)),
        date_format=str(raw.get("date_format", "%Y-%m-%d")),
        datetime_format=str(raw.get("datetime_format", "%Y-%m-%dT%H:%M:%S")),
        timezone=raw.get("timezone"),
        source_timezone=raw.get("source_timezone"),
        missing_codes=_text_list(raw.get("missing_codes"), "missing_codes", problems),
        file=raw.get("file"),
        ignore=_text_list(raw.get("ignore"), "ignore", problems),
        tables=tables,
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


def _key_lines(text: str) -> dict[str, int]:
    """Line (1-based) of every key path of the file (`tables.patients.columns.sex`, `tables.patients[1]`)."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    return {
        "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).removeprefix("."): line
        for path, line in key_lines(root).items()
    }


def _located(problem: str, lines: dict[str, int]) -> str:
    """The problem with the line of the deepest key path it names (`tables.x.columns.y: …` → `… (line 14)`)."""
    path = problem.split(":", 1)[0].split(" ", 1)[0]
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        found = lines.get(".".join(parts[:end]))
        if found is not None:
            return f"line {found}: {problem}"
    return problem


def _check_zone(zone: str, key: str, problems: list[str]) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{key}: '{zone}' is not a time zone name such as Europe/Berlin or UTC")
