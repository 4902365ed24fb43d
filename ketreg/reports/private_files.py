"""Writing files that hold one site's own records: readable by the owner and the group that serves the site
(0640, folders 0750), and safe to open in Excel (a cell that starts like a formula stays text).

The workbook is XlsxWriter's package with each sheet's cells written by sheet_rows.py, streamed: at 20 sites ×
5,000 patients openpyxl took 43.5 of the site folders' 50.7 CPU seconds, XlsxWriter cell by cell ~12 of 18, this
~2 (benchmarks/README.md, issue 13)."""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import xlsxwriter

from ketreg.reports.sheet_rows import dimension, sheet_data

FILE_MODE = 0o640
FOLDER_MODE = 0o750
# Spreadsheet programs run a cell that starts with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# An empty sheet's used range, as XlsxWriter writes it; replaced by the range of the cells streamed in.
_DIMENSION = '<dimension ref="A1"/>'


def private_folder(path: Path) -> Path:
    """Create `path` (and its parents) and give it the private folder mode."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(FOLDER_MODE)
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return value


def write_private_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """A UTF-8 CSV with a byte-order mark (Excel then reads accents right), mode 0640."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([_plain(v) for v in row] for row in rows)
    path.chmod(FILE_MODE)
    return path


def write_private_xlsx(path: Path, sheets: Mapping[str, tuple[Sequence[str], Sequence[Sequence[Any]]]]) -> Path:
    """One workbook, a sheet per table; every text cell is written as text, never as a formula, and an empty
    value (None) as no cell. XlsxWriter writes the workbook around empty sheets; each sheet's cells are then
    streamed into its part as the package is copied (sheet_rows.py), so a site with a million quarantine
    reasons does not hold them all as cells."""
    shell = io.BytesIO()
    workbook = xlsxwriter.Workbook(shell, {"in_memory": True})
    for title in sheets:
        workbook.add_worksheet(title[:31])
    workbook.close()
    tables = {f"xl/worksheets/sheet{number}.xml": table for number, table in enumerate(sheets.values(), start=1)}
    package = zipfile.ZipFile(shell)
    if not set(tables) <= set(package.namelist()):  # a sheet's cells must never be left out unnoticed
        raise ValueError(f"XlsxWriter named the sheets' parts {package.namelist()}, not {sorted(tables)}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as handle, package, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as out:
        for part in package.infolist():
            if part.filename not in tables:
                out.writestr(part, package.read(part))
                continue
            header, rows = tables[part.filename]
            before, empty, after = package.read(part).decode("utf-8").partition("<sheetData/>")
            if not empty or _DIMENSION not in before:
                raise ValueError(f"XlsxWriter wrote {part.filename} in a form this writer does not know")
            with out.open(part, "w") as sheet:
                sheet.write(before.replace(_DIMENSION, f'<dimension ref="{dimension(header, rows)}"/>')
                            .encode("utf-8") + b"<sheetData>")
                for chunk in sheet_data(header, rows):
                    sheet.write(chunk.encode("utf-8"))
                sheet.write(b"</sheetData>" + after.encode("utf-8"))
    path.chmod(FILE_MODE)
    return path


def write_private_text(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(FILE_MODE)
    return path
