"""Read a site's own files (delimited text in any encoding, Excel sheets, REDCap flat CSV) into text frames.

Every cell stays text, exactly as written (Excel dates become ISO text); `_line` is the row's line in the
site's file or sheet (header = line 1), so the quarantine points at the site's own line.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl

from ketreg.landing import messages
from ketreg.landing.limits import LandingLimits
from ketreg.landing.mapping import SiteMapping
from ketreg.landing.safe_files import open_landing_file
from ketreg.landing.text_scan import check_text

LINE = "_line"
REDCAP_FIELDS = ("record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance")


class UnreadableSource(ValueError):
    """A file or sheet of the site cannot be read; the whole export is rejected with this message.

    `site_detail` holds what only the site itself may see (the values a mapping does not cover): `ketreg
    check-export` shows it at the site; the registry never stores or logs it."""

    def __init__(self, message: str, site_detail: str | None = None) -> None:
        super().__init__(message)
        self.site_detail = site_detail


# Only ratios of members this large are judged: a tiny XML part can compress 100:1 honestly.
_RATIO_FLOOR_BYTES = 1 << 20
_QUOTED = re.compile(r"`[^`]*`|'[^']*'|\"[^\"]*\"")


def parser_message(exc: BaseException) -> str:
    """The first line of a parser's error with anything it quotes removed (it may quote the file)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return messages.name(_QUOTED.sub("…", first), 200)


@dataclass(frozen=True)
class SourceFrame:
    """One file or sheet of the site's export as text."""

    label: str  # e.g. "patienten.csv" or "registry.xlsx[Patients]"
    header: list[str]
    frame: pl.DataFrame  # every header column as text, plus `_line`


def read_delimited(path: Path, mapping: SiteMapping, where: str, limits: LandingLimits) -> SourceFrame:
    """A delimited text file with the mapping's encoding, delimiter and quote character."""
    with open_landing_file(path, where, limits) as handle:
        data = handle.read()
    if not data:
        raise UnreadableSource(f"{where}: the file is empty; export it again with its header row")
    check_text(data, where, limits)
    first_line = data.split(b"\n", 1)[0]
    if first_line.count(mapping.delimiter.encode(mapping.encoding)) >= limits.max_header_columns:
        raise limits.exceeded(where, "the number of header columns", None,
                              "max_header_columns")
    try:
        text = data.decode(mapping.encoding)
    except UnicodeDecodeError as exc:
        raise UnreadableSource(
            f"{where}: not {mapping.encoding} text (byte {exc.start}); save it in the encoding "
            f"{mapping.label} names, or change `encoding` there"
        ) from exc
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        frame = pl.read_csv(
            io.BytesIO(text.encode("utf-8")),
            has_header=True,
            separator=mapping.delimiter,
            quote_char=mapping.quote,
            infer_schema=False,
            row_index_name=LINE,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError as exc:
        raise UnreadableSource(
            f"{where}: cannot be read with delimiter '{mapping.delimiter}' and quote '{mapping.quote}' "
            f"({parser_message(exc)}); check the file against {mapping.label}"
        ) from exc
    header = [c.strip() for c in frame.columns if c != LINE]
    short = _first_short_row(text, mapping, len(header))
    if short is not None:
        line, cells = short
        raise UnreadableSource(
            f"{where}: line {line} has {cells} cell(s) but the header has {len(header)}; every row needs one cell "
            "per column, empty cells included"
        )
    counts = Counter(header)
    duplicated = sorted(c for c, n in counts.items() if n > 1 or "_duplicated_" in c)
    if duplicated:
        raise UnreadableSource(
            f"{where}: column {messages.names(duplicated)} appears more than once in the header; keep one"
        )
    frame = frame.rename({c: c.strip() for c in frame.columns})
    return SourceFrame(path.name, header, _with_lines(frame))


def _first_short_row(text: str, mapping: SiteMapping, width: int) -> tuple[int, int] | None:
    """(line, cells) of the first data row with fewer cells than the header, which polars would pad.

    Counting delimiters is cheap and can only over-count (a quoted delimiter), so only the few lines with
    too few of them are parsed properly, and the site's values are never quoted back."""
    lines = pl.Series(text.splitlines())
    if lines.len() < 2:
        return None
    counts = lines.str.count_matches(mapping.delimiter, literal=True)
    candidates = (counts < width - 1).arg_true()
    for index in candidates.to_list():
        if index == 0 or not lines[index].strip():
            continue
        cells = next(csv.reader([lines[index]], delimiter=mapping.delimiter, quotechar=mapping.quote), [])
        if len(cells) < width:
            return index + 1, len(cells)
    return None


def _with_lines(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns((pl.col(LINE).cast(pl.Int64) + 2).alias(LINE))


def _cell_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S") if value.time() != dt.time() else value.strftime("%Y-%m-%d")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _check_workbook_zip(handle: BinaryIO, where: str, limits: LandingLimits) -> None:
    """Judge the workbook from its zip directory alone, before any XML is parsed: a small .xlsx can unpack
    to gigabytes (one shared string a billion characters long, repeated rows). The sizes the directory
    declares bind: openpyxl reads through `zipfile`, which never yields more than a member's declared size
    (a member that lies fails its CRC check)."""
    try:
        members = zipfile.ZipFile(handle).infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnreadableSource(f"{where}: not an Excel workbook (.xlsx) ({type(exc).__name__})") from exc
    total = sum(m.file_size for m in members)
    if total > limits.max_workbook_uncompressed_bytes:
        raise limits.exceeded(where, "the workbook's unpacked size in bytes", total,
                              "max_workbook_uncompressed_bytes")
    for member in members:
        if member.file_size > _RATIO_FLOOR_BYTES:
            ratio = member.file_size // max(member.compress_size, 1)
            if ratio > limits.max_workbook_compression_ratio:
                raise limits.exceeded(where, f"the compression ratio of its part {messages.name(member.filename)}",
                                      f"{ratio:,}:1", "max_workbook_compression_ratio")
    handle.seek(0)


def _checked_cell(value: object, where: str, line: int, limits: LandingLimits) -> object:
    if isinstance(value, str) and len(value) > limits.max_cell_chars:
        raise limits.exceeded(where, f"a cell's length on row {line:,}", f"{len(value):,} characters",
                              "max_cell_chars")
    return value


def read_sheets(path: Path, sheets: list[str], where: str, limits: LandingLimits) -> dict[str, SourceFrame]:
    """The named sheets of a workbook, header in row 1; a date cell becomes ISO text."""
    from openpyxl import load_workbook

    with open_landing_file(path, where, limits) as handle:
        _check_workbook_zip(handle, where, limits)
        try:
            workbook = load_workbook(handle, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
            raise UnreadableSource(f"{where}: not an Excel workbook (.xlsx) ({type(exc).__name__})") from exc
        try:
            return _sheet_frames(workbook, path, sheets, where, limits)
        finally:
            workbook.close()


def _sheet_frames(workbook, path: Path, sheets: list[str], where: str,
                  limits: LandingLimits) -> dict[str, SourceFrame]:
    missing = [s for s in sheets if s not in workbook.sheetnames]
    if missing:
        raise UnreadableSource(
            f"{where}: sheet(s) {messages.names(missing, quote=chr(39))} are missing "
            f"(the workbook has: {messages.names(workbook.sheetnames)})"
        )
    frames = {}
    for sheet in sheets:
        label = f"{where}[{messages.name(sheet)}]"
        rows = workbook[sheet].iter_rows(values_only=True)
        header_cells = next(rows, ())
        if len(header_cells) > limits.max_header_columns:
            raise limits.exceeded(label, "the number of header columns", len(header_cells), "max_header_columns")
        header = [str(_checked_cell(c, label, 1, limits)).strip() if c is not None else "" for c in header_cells]
        while header and header[-1] == "":
            header.pop()
        counts = Counter(header)
        duplicated = sorted(c for c, n in counts.items() if n > 1)
        if duplicated:
            raise UnreadableSource(
                f"{label}: column {messages.names(duplicated)} appears more than once in the header; keep one"
            )
        width = len(header)
        # Sheet rows are numbered as Excel shows them (header = row 1); blank rows are skipped, not renumbered.
        lines, body = [], []
        for line, row in enumerate(rows, start=2):
            if line > limits.max_rows:
                raise limits.exceeded(label, "the number of rows", None, "max_rows")
            if any(v is not None for v in row):
                lines.append(line)
                body.append([_cell_text(_checked_cell(v, label, line, limits)) for v in row[:width]])
        columns = {name: [row[i] if i < len(row) else None for row in body] for i, name in enumerate(header)}
        frame = pl.DataFrame(columns, schema=dict.fromkeys(header, pl.String))
        frame = frame.with_columns(pl.Series(LINE, lines, dtype=pl.Int64))
        frames[sheet] = SourceFrame(f"{path.name}[{sheet}]", header, frame)
    return frames
