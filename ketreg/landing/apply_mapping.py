"""Apply a site's mapping: its own files → the canonical text frames `read_export_file` produces.

The frames have the same columns (site_id, export_id, source_line and the contract's columns, all text), so
validation downstream is the same for every site. Renames, constants, missing-data codes, value maps, units,
date formats and time zones are applied here. A value that cannot be converted for one row (a rate per kg
for a patient without a weight, a date not in the site's format) becomes a failure of that row, handed to
`validate_table` with the other failures; a problem with the mapping itself rejects the export.
"""

from __future__ import annotations

import fnmatch
import os
import string
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ketreg.landing import messages
from ketreg.landing.formats import LINE, REDCAP_FIELDS, SourceFrame, UnreadableSource, read_delimited, read_sheets
from ketreg.landing.limits import LandingLimits, load_limits
from ketreg.landing.mapping import ColumnSpec, SiteMapping, TablePart
from ketreg.landing.mapping_file import EXCEL_SERIAL, PER_KG_UNITS
from schemas.identifiers import looks_like_identifier
from schemas.parsing import FAILURE_SCHEMA, concat_failures
from schemas.tables import TABLES, TableContract

CANONICAL_DATE = "%Y-%m-%d"
CANONICAL_DATETIME = "%Y-%m-%dT%H:%M:%S"
_ISO_DATETIMES = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
LB_IN_KG = 0.45359237
UNIT_CONVERSION = "unit_conversion"


@dataclass
class MappedExport:
    """One export of a mapped site, in canonical form, with what could not be converted row by row."""

    frames: dict[str, pl.DataFrame]
    failures: dict[str, pl.DataFrame]  # per table: row, column, rule, message (row = index in the frame)
    sources: dict[str, str] = field(default_factory=dict)  # table → the site's file or sheet it came from
    notices: list[str] = field(default_factory=list)
    identifier_columns: dict[str, list[str]] = field(default_factory=dict)  # per table's source
    unused_columns: dict[str, list[str]] = field(default_factory=dict)


def _human_format(fmt: str) -> str:
    for code, text in (("%d", "dd"), ("%m", "mm"), ("%Y", "yyyy"), ("%H", "HH"), ("%M", "MM"), ("%S", "SS")):
        fmt = fmt.replace(code, text)
    return fmt


def _template(template: str) -> pl.Expr:
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template):
        if literal:
            parts.append(pl.lit(literal))
        if name:
            parts.append(pl.col(name).str.strip_chars())
    return pl.concat_str(parts)


def _source_text(spec: ColumnSpec, src: SourceFrame) -> pl.Expr:
    if spec.constant is not None:
        return pl.lit(spec.constant, pl.String)
    if spec.template is not None:
        return _template(spec.template)
    if spec.any_checked is not None:
        boxes = [pl.col(c).str.strip_chars() for c in spec.source_columns(src.header)]
        if not boxes:
            return pl.lit(None, pl.String)
        filled = pl.any_horizontal([b.is_not_null() & (b != "") for b in boxes])
        checked = pl.any_horizontal([b == "1" for b in boxes]).fill_null(False)
        return pl.when(~filled).then(None).when(checked).then(pl.lit("true")).otherwise(pl.lit("false"))
    assert spec.source is not None  # the mapping gives exactly one of from, constant, template, any_checked
    return pl.col(spec.source).cast(pl.String)


def _missing_to_null(text: pl.Expr, codes: tuple[str, ...]) -> pl.Expr:
    text = text.str.strip_chars()
    missing = text == ""
    if codes:
        missing = missing | text.is_in(list(codes))
    return pl.when(missing).then(None).otherwise(text)


class _Problems:
    """Problems that make the export unusable, gathered so the site can fix them all at once. `site_details`
    quote the site's values: shown by `ketreg check-export` at the site, never stored by the registry."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.site_details: list[str] = []

    def add(self, message: str, site_detail: str | None = None) -> None:
        self.items.append(message)
        if site_detail is not None:
            self.site_details.append(site_detail)


def _date_parse(text: pl.Series, formats: list[str], datetime: bool) -> pl.Series:
    target = pl.Datetime("us") if datetime else pl.Date
    frame = pl.DataFrame({"t": text})
    candidates = []
    for fmt in formats:
        if fmt == EXCEL_SERIAL:
            serial = pl.col("t").cast(pl.Float64, strict=False)
            moment = pl.datetime(1899, 12, 30) + pl.duration(
                microseconds=(serial * 86_400_000_000).round(0).cast(pl.Int64)
            )
            candidates.append(moment.dt.date() if not datetime else moment.cast(target))
        else:
            candidates.append(pl.col("t").str.strptime(target, fmt, strict=False))
    return frame.select(pl.coalesce(candidates)).to_series()


def _convert_dates(
    values: pl.Series, spec: ColumnSpec, mapping: SiteMapping, is_datetime: bool, failures: list[pl.DataFrame],
    column: str,
) -> pl.Series:
    fmt = spec.format or (mapping.datetime_format if is_datetime else mapping.date_format)
    formats = [fmt, *(_ISO_DATETIMES if is_datetime else (CANONICAL_DATE,))]
    parsed = _date_parse(values, formats, is_datetime)
    if is_datetime and mapping.timezone and mapping.source_timezone and mapping.timezone != mapping.source_timezone:
        # The export writes times in another zone (often UTC): the contract wants the site's local time.
        parsed = (
            parsed.dt.replace_time_zone(mapping.source_timezone, ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone(mapping.timezone)
            .dt.replace_time_zone(None)
        )
    unreadable = values.is_not_null() & parsed.is_null()
    if unreadable.any():
        shown = "a serial day number" if fmt == EXCEL_SERIAL else _human_format(fmt)
        failures.append(
            pl.DataFrame({"row": unreadable.arg_true().cast(pl.Int64), "text": values.filter(unreadable)}).select(
                "row",
                pl.lit(column).alias("column"),
                pl.lit("type").alias("rule"),
                pl.concat_str([
                    pl.lit(f"{column} must be a {'date-time' if is_datetime else 'date'} written {shown} (got '"),
                    pl.col("text"), pl.lit("')"),
                ]).alias("message"),
            )
        )
    text = parsed.dt.strftime(CANONICAL_DATETIME if is_datetime else CANONICAL_DATE)
    # An unreadable cell keeps the site's text, so the quarantine shows what was sent.
    return pl.select(pl.when(unreadable).then(values).otherwise(text)).to_series()


def _number_text(values: pl.Series, decimal_comma: bool) -> pl.Series:
    return values.str.replace(",", ".", literal=True) if decimal_comma else values


def _convert_unit(
    values: pl.Series, spec: ColumnSpec, column: str, frame: pl.DataFrame, weights: pl.DataFrame | None,
    failures: list[pl.DataFrame], as_sent: pl.Series,
) -> pl.Series:
    number = values.cast(pl.Float64, strict=False)
    if spec.unit == "lb":
        converted = number * LB_IN_KG
    elif spec.unit == "vas_0_100":
        # 0–100 mm VAS → NPRS 0–10, halves rounded up (45 mm → 5).
        converted = (number / 10 + 1e-9).round(0)
    elif spec.unit in PER_KG_UNITS:
        patient = frame["patient_id"].str.strip_chars()
        weight = (
            pl.DataFrame({"patient_id": patient})
            .join(weights if weights is not None else pl.DataFrame(schema={"patient_id": pl.String,
                                                                          "weight_kg": pl.Float64}),
                  on="patient_id", how="left", maintain_order="left")["weight_kg"]
        )
        per_hour = number * weight if spec.unit == "mg/kg/h" else number * weight * 60 / 1000
        no_weight = number.is_not_null() & weight.is_null()
        if no_weight.any():
            failures.append(
                pl.DataFrame({
                    "row": no_weight.arg_true().cast(pl.Int64),
                    "text": as_sent.filter(no_weight),
                    "patient": patient.filter(no_weight).fill_null(""),
                }).select(
                    "row",
                    pl.lit(column).alias("column"),
                    pl.lit(UNIT_CONVERSION).alias("rule"),
                    pl.concat_str([
                        pl.lit(f"{column} was sent in {spec.unit} ('"), pl.col("text"),
                        pl.lit("') but patient '"), pl.col("patient"),
                        pl.lit("' has no readable weight_kg in this export, so it cannot be converted to mg/h; "
                               "send the patient's weight"),
                    ]).alias("message"),
                )
            )
        converted = per_hour
    else:
        converted = number
    if spec.round is not None:
        converted = converted.round(spec.round)
    as_text = converted.cast(pl.Int64).cast(pl.String) if spec.unit == "vas_0_100" else converted.cast(pl.String)
    # Unreadable numbers keep the site's text: the contract's parser reports them as `type`.
    return pl.select(pl.when(converted.is_null()).then(values).otherwise(as_text)).to_series()


def _map_values(
    values: pl.Series, spec: ColumnSpec, column: str, part: TablePart, src: SourceFrame, where: str,
    mapping: SiteMapping, problems: _Problems,
) -> pl.Series:
    assert spec.values is not None
    mapped = values.replace_strict(spec.values, default=None, return_dtype=pl.String)
    unmapped = values.is_not_null() & ~values.is_in(list(spec.values))
    if not unmapped.any():
        return mapped
    if spec.keep_unmapped:
        return pl.select(pl.when(unmapped).then(values).otherwise(mapped)).to_series()
    lines = src.frame[LINE] if LINE in src.frame.columns else pl.Series([None] * values.len())
    offending = (
        pl.DataFrame({"value": values.filter(unmapped), "line": lines.filter(unmapped)})
        .group_by("value", maintain_order=True).agg(pl.len().alias("rows"), pl.col("line").first())
    )
    # The values themselves are the site's data (free text may name a patient): the registry's message
    # gives counts and line numbers only; the values go to the site's own check-export report.
    shown = ", ".join(
        f"'{messages.name(v)}' ({n} row{'s' if n > 1 else ''}, first on line {line})"
        for v, n, line in offending.rows()[:10]
    )
    first_lines = ", ".join(str(line) for line in offending["line"].head(10).to_list())
    source = messages.name(spec.source or spec.template or spec.any_checked or "constant")
    rows = int(offending["rows"].sum())
    problems.add(
        f"{where}/{src.label}: column '{source}' (→ {part.table}.{column}) has {offending.height:,} value(s) the "
        f"mapping does not cover, in {rows:,} row(s) (first on lines {first_lines}) — run `ketreg check-export` "
        f"at the site to see them and add them under {part.where}.columns.{column}.values in {mapping.label}",
        site_detail=f"{src.label}: column '{source}' values not covered by {mapping.label}: {shown}",
    )
    return mapped


def _weights(patients: pl.DataFrame | None) -> pl.DataFrame | None:
    if patients is None:
        return None
    return (
        patients.select(
            pl.col("patient_id").str.strip_chars(),
            pl.col("weight_kg").str.strip_chars().cast(pl.Float64, strict=False),
        )
        .filter(pl.col("patient_id").is_not_null() & pl.col("weight_kg").is_not_null())
        .unique("patient_id", keep="first", maintain_order=True)
    )


def _rows_of(part: TablePart, src: SourceFrame) -> pl.DataFrame:
    """The REDCap rows of a part: its events and instrument; all rows for other formats."""
    frame = src.frame
    if part.events:
        frame = frame.filter(pl.col("redcap_event_name").str.strip_chars().is_in(list(part.events)))
    if part.instrument is not None:
        instrument = (
            pl.col("redcap_repeat_instrument").str.strip_chars().fill_null("")
            if "redcap_repeat_instrument" in frame.columns else pl.lit("")
        )
        frame = frame.filter(instrument == part.instrument)
    return frame


def _map_part(
    part: TablePart, src: SourceFrame, table: TableContract, mapping: SiteMapping, weights: pl.DataFrame | None,
    where: str, problems: _Problems, used: set[str], absent: list[str], skipped: list[int],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    rows = _rows_of(part, src)
    specs: dict[str, ColumnSpec | None] = {}
    named = [s.source for s in part.columns.values() if s.source]
    if named and not set(named) & set(src.header) and not set(table.columns) & set(src.header):
        # Line 1 may be a data row (a headerless file): it is never quoted back.
        problems.add(
            f"{where}/{src.label}: no recognisable header row (line 1 names none of the columns {mapping.label} "
            f"reads for {part.table}, e.g. {messages.names(named[:3], quote=chr(39))}); the first line must be "
            "the header"
        )
        return pl.DataFrame(), concat_failures([])
    for column in table.columns:
        spec = part.columns.get(column)
        if spec is None and column in src.header:
            spec = ColumnSpec(column, source=column)
        if spec is not None:
            needed = [spec.source] if spec.source else []
            if spec.template:
                needed += [n for _, n, _, _ in string.Formatter().parse(spec.template) if n]
            missing = [n for n in needed if n not in src.header]
            for name in missing:
                problems.add(
                    f"{where}/{src.label}: column '{messages.name(name)}' named by {mapping.label} "
                    f"({part.where}.columns.{column}) is not in the file (its columns: "
                    f"{messages.names(src.header, shown=15)})"
                )
            if missing:
                spec = None
            else:
                used.update(spec.source_columns(src.header))
        elif column not in table.required_columns:
            absent.append(column)
        else:
            problems.add(
                f"{where}/{src.label}: nothing in {mapping.label} gives the required column {table.name}.{column}: "
                f"map it under {part.where}.columns"
            )
        specs[column] = spec

    failures: list[pl.DataFrame] = []
    # The line column keeps the frame's height when every other column is a constant.
    texts = rows.select(
        pl.col(LINE),
        *[
            (_missing_to_null(_source_text(spec, src), (*mapping.missing_codes, *spec.missing_codes))
             if spec is not None else pl.lit(None, pl.String)).alias(column)
            for column, spec in specs.items()
        ]
    )
    if part.skip_if_empty:
        # A selected row with nothing in the tested columns holds no record of this table (a REDCap event row
        # without its score): skipped, and counted in a notice, never dropped silently.
        empty = pl.all_horizontal([pl.col(c).is_null() for c in part.skip_if_empty])
        keep = texts.select(~empty).to_series()
        skipped.append(int((~keep).sum()))
        rows, texts = rows.filter(keep), texts.filter(keep)
    columns: dict[str, pl.Series] = {}
    for column, spec in specs.items():
        values = texts[column]
        if spec is not None and spec.values is not None:
            values = _map_values(values, spec, column, part, SourceFrame(src.label, src.header, rows), where,
                                 mapping, problems)
        columns[column] = values
    built = pl.DataFrame(columns)
    for column, spec in specs.items():
        if spec is None or (spec.constant is not None and spec.values is None and spec.unit is None):
            continue
        dtype = table.polars_type(column)
        base = dtype.base_type() if hasattr(dtype, "base_type") else dtype
        values = built[column]
        if base in (pl.Float64, pl.Int64):
            as_sent = values
            values = _number_text(values, mapping.decimal_comma)
            if spec.unit is not None or spec.round is not None:
                values = _convert_unit(values, spec, column, built, weights, failures, as_sent)
        elif base in (pl.Date, pl.Datetime):
            values = _convert_dates(values, spec, mapping, base == pl.Datetime, failures, column)
        built = built.with_columns(values.alias(column))
    built = built.with_columns(texts[LINE].alias("source_line"))
    return built, concat_failures(failures)


def _unused(
    src: SourceFrame, used: set[str], ignore: tuple[str, ...], mapping: SiteMapping
) -> tuple[list[str], list[str]]:
    identifiers, unused = [], []
    for column in src.header:
        if column in used or (mapping.format == "redcap" and column in (*REDCAP_FIELDS, "redcap_data_access_group")):
            continue
        if looks_like_identifier(column):
            # Before `ignore`: ignoring a column must not hide that a name or MRN left the hospital.
            identifiers.append(column)
        elif not any(fnmatch.fnmatchcase(column, pattern) for pattern in ignore):
            unused.append(column)
    return identifiers, unused


def _load_sources(folder: Path, mapping: SiteMapping, where: str, limits: LandingLimits) -> dict[str, SourceFrame]:
    """Source frames by the key parts use: the file name, or the sheet name for a workbook."""
    problems: list[str] = []
    sources: dict[str, SourceFrame] = {}
    if mapping.format == "excel":
        assert mapping.file is not None
        path = folder / mapping.file
        if not os.path.lexists(path):
            raise UnreadableSource(f"{where}: {mapping.file} is missing; {mapping.label} reads every table from it")
        sheets = [p.sheet for parts in mapping.tables.values() for p in parts if p.sheet]
        return read_sheets(path, list(dict.fromkeys(sheets)), f"{where}/{mapping.file}", limits)
    names = mapping.source_files()
    for name in names:
        path = folder / name
        if not os.path.lexists(path):
            tables = [t for t, parts in mapping.tables.items() if any(p.file == name for p in parts)]
            if mapping.format == "redcap" or any(t != "dispositions" for t in tables):
                problems.append(
                    f"{where}: {name} is missing; {mapping.label} reads {', '.join(tables) or 'it'} from it"
                )
            continue
        try:
            sources[name] = read_delimited(path, mapping, f"{where}/{name}", limits)
        except UnreadableSource as exc:
            problems.append(str(exc))
    if problems:
        raise UnreadableSource("; ".join(problems))
    if mapping.format == "redcap":
        src = sources[names[0]]
        absent = [f for f in ("record_id", "redcap_event_name") if f not in src.header]
        if absent:
            raise UnreadableSource(
                f"{where}/{src.label}: not a REDCap export: column(s) {', '.join(absent)} are missing; export "
                "the records as CSV (raw data) with the REDCap fields"
            )
    return sources


def read_mapped_export(folder: Path, site_id: str, export_id: str, mapping: SiteMapping,
                       limits: LandingLimits | None = None) -> MappedExport:
    """Read the export in `folder` through `mapping`. Raises UnreadableSource with every problem that makes
    the export unusable (missing files, sheets or columns, values no map covers); LimitExceeded or
    NotARegularEntry for a file the registry does not read."""
    where = f"{site_id}/{export_id}"
    sources = _load_sources(folder, mapping, where, limits or load_limits())
    problems = _Problems()
    frames: dict[str, pl.DataFrame] = {}
    failures: dict[str, pl.DataFrame] = {}
    used: dict[str, set[str]] = {key: set() for key in sources}
    ignores: dict[str, tuple[str, ...]] = {key: mapping.ignore for key in sources}
    result = MappedExport(frames, failures)
    for table in TABLES:
        parts = mapping.tables.get(table.name, ())
        built_parts: list[pl.DataFrame] = []
        part_failures: list[pl.DataFrame] = []
        offset = 0
        for part in parts:
            key = {"excel": part.sheet, "redcap": mapping.file}.get(mapping.format, part.file)
            if key not in sources:
                continue  # an optional table whose file the site did not send
            src = sources[key]
            ignores[key] = (*ignores[key], *part.ignore)
            weights = _weights(frames.get("patients")) if table.name == "infusions" else None
            absent: list[str] = []
            skipped: list[int] = []
            built, fails = _map_part(part, src, table, mapping, weights, where, problems, used[key], absent,
                                     skipped)
            if built.width == 0:
                continue  # no recognisable header: already a problem
            absent = [c for c in absent if c not in part.not_recorded]
            if sum(skipped):
                result.notices.append(
                    f"{where}/{src.label}: {sum(skipped)} row(s) selected for {table.file_name} ({part.where}.rows) "
                    f"had {', '.join(part.skip_if_empty)} all empty and were skipped (skip_if_empty)"
                )
            if absent:
                result.notices.append(
                    f"{where}/{src.label}: optional column(s) {', '.join(absent)} of {table.file_name} have no "
                    f"source in {mapping.label} and are read as empty"
                )
            built_parts.append(built)
            part_failures.append(fails.with_columns(pl.col("row") + offset))
            offset += built.height
            result.sources[table.name] = src.label
        if not built_parts:
            continue
        frame = pl.concat(built_parts)
        frames[table.name] = frame.select(
            pl.lit(site_id).alias("site_id"), pl.lit(export_id).alias("export_id"),
            pl.col("source_line").cast(pl.Int64), *[pl.col(c).cast(pl.String) for c in table.columns],
        )
        failures[table.name] = concat_failures(part_failures)
    for key, src in sources.items():
        identifiers, unused = _unused(src, used[key], ignores[key], mapping)
        result.identifier_columns[src.label] = [messages.name(c) for c in identifiers[:50]]
        result.unused_columns[src.label] = [messages.name(c) for c in unused[:50]]
        if identifiers:
            result.notices.append(messages.bounded(
                f"{where}/{src.label}: column(s) {messages.names(identifiers)} look like direct patient identifiers;"
                " they were not read — please remove them from the export"
            ))
        if unused:
            result.notices.append(messages.bounded(
                f"{where}/{src.label}: column(s) {messages.names(unused)} are neither mapped nor ignored by "
                f"{mapping.label} and were not read; map them or list them under `ignore`"
            ))
    if problems.items:
        raise UnreadableSource(
            messages.bounded("; ".join(problems.items)),
            site_detail="; ".join(problems.site_details) or None,
        )
    return result


def empty_failures() -> pl.DataFrame:
    return pl.DataFrame(schema=FAILURE_SCHEMA)
