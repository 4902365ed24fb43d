"""Read a site's own files (delimited text in any encoding, Excel sheets, REDCap flat CSV) into text frames.

Every cell stays text, exactly as written (Excel dates become ISO text); `_line` is the row's line in the
site's file or sheet (header = line 1), so the quarantine points at the site's own line.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ketreg.landing.mapping import SiteMapping

LINE = "_line"
REDCAP_FIELDS = ("record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance")


class UnreadableSource(ValueError):
    """A file or sheet of the site cannot be read; the whole export is rejected with this message."""


@dataclass(frozen=True)
class SourceFrame:
    """One file or sheet of the site's export as text."""

    label: str  # e.g. "patienten.csv" or "registry.xlsx[Patients]"
    header: list[str]
    frame: pl.DataFrame  # every header column as text, plus `_line`


def read_delimited(path: Path, mapping: SiteMapping, where: str) -> SourceFrame:
    """A delimited text file with the mapping's encoding, delimiter and quote character."""
    data = path.read_bytes()
    if not data:
        raise UnreadableSource(f"{where}: the file is empty; export it again with its header row")
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
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableSource(
            f"{where}: cannot be read with delimiter '{mapping.delimiter}' and quote '{mapping.quote}' "
            f"({first}); check the file against {mapping.label}"
        ) from exc
    header = [c.strip() for c in frame.columns if c != LINE]
    short = _first_short_row(text, mapping, len(header))
    if short is not None:
        line, cells = short
        raise UnreadableSource(
            f"{where}: line {line} has {cells} cell(s) but the header has {len(header)}; every row needs one cell "
            "per column, empty cells included"
        )
    duplicated = sorted({c for c in header if header.count(c) > 1 or "_duplicated_" in c})
    if duplicated:
        raise UnreadableSource(
            f"{where}: column {', '.join(duplicated)} appears more than once in the header; keep one"
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


def read_sheets(path: Path, sheets: list[str], where: str) -> dict[str, SourceFrame]:
    """The named sheets of a workbook, header in row 1; a date cell becomes ISO text."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
        raise UnreadableSource(f"{where}: not an Excel workbook (.xlsx) ({type(exc).__name__}: {exc})") from exc
    try:
        missing = [s for s in sheets if s not in workbook.sheetnames]
        if missing:
            raise UnreadableSource(
                f"{where}: sheet(s) {', '.join(repr(s) for s in missing)} are missing "
                f"(the workbook has: {', '.join(workbook.sheetnames)})"
            )
        frames = {}
        for sheet in sheets:
            rows = workbook[sheet].iter_rows(values_only=True)
            header_cells = next(rows, ())
            header = [str(c).strip() if c is not None else "" for c in header_cells]
            while header and header[-1] == "":
                header.pop()
            duplicated = sorted({c for c in header if header.count(c) > 1})
            if duplicated:
                raise UnreadableSource(
                    f"{where}[{sheet}]: column {', '.join(duplicated)} appears more than once in the header; keep one"
                )
            width = len(header)
            # Sheet rows are numbered as Excel shows them (header = row 1); blank rows are skipped, not renumbered.
            lines, body = [], []
            for line, row in enumerate(rows, start=2):
                if any(v is not None for v in row):
                    lines.append(line)
                    body.append([_cell_text(v) for v in row[:width]])
            columns = {name: [row[i] if i < len(row) else None for row in body] for i, name in enumerate(header)}
            frame = pl.DataFrame(columns, schema=dict.fromkeys(header, pl.String))
            frame = frame.with_columns(pl.Series(LINE, lines, dtype=pl.Int64))
            frames[sheet] = SourceFrame(f"{path.name}[{sheet}]", header, frame)
        return frames
    finally:
        workbook.close()
