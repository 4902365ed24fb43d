"""Writing files that hold one site's own records: readable by the owner and the group that serves the site
(0640, folders 0750), and safe to open in Excel (a cell that starts like a formula stays text).

The workbook is written with XlsxWriter, row by row in its constant-memory mode: at 20 sites × 5,000 patients
openpyxl's write-only workbook took 43.5 of the site folders' 50.7 CPU seconds (benchmarks/README.md)."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import xlsxwriter

FILE_MODE = 0o640
FOLDER_MODE = 0o750
# Spreadsheet programs run a cell that starts with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Control characters a workbook cannot hold (openpyxl's ILLEGAL_CHARACTERS_RE; the workbooks written with
# openpyxl before replaced them the same way, so a site's file reads the same as it did).
_NOT_IN_A_WORKBOOK = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")
# Excel's longest text in a cell; openpyxl cut longer text here too.
_MAX_CELL_TEXT = 32767


class _AllDigits(float):
    """A number XlsxWriter writes with every digit it needs: it formats numbers with 16 significant digits
    (`.16G`), which turns 0.30000000000000004 into 0.3; openpyxl wrote the shortest exact form, as this does."""

    def __format__(self, spec: str) -> str:
        return repr(float(self))


def _number(value: float | Decimal) -> float:
    number = float(value)
    return number if float(f"{number:.16G}") == number else _AllDigits(number)


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
    value (None) as no cell. Rows go to disk as they are written (constant memory), so a site with a million
    quarantine reasons does not hold them all as cells."""
    workbook = xlsxwriter.Workbook(str(path), {
        "constant_memory": True,
        # Text stays text: no formula, number or link is read into a site's values.
        "strings_to_formulas": False, "strings_to_numbers": False, "strings_to_urls": False,
        "nan_inf_to_errors": True,  # a NaN is written as #NUM! instead of failing the step
    })
    try:
        for title, (header, rows) in sheets.items():
            sheet = workbook.add_worksheet(title[:31])
            for column, name in enumerate(header):
                sheet.write_string(0, column, name)
            write_text, write_number, write_boolean = sheet.write_string, sheet.write_number, sheet.write_boolean
            for row_number, row in enumerate(rows, start=1):
                for column, value in enumerate(row):
                    if value is None:
                        continue
                    if isinstance(value, list):
                        value = "; ".join(map(str, value))
                    if isinstance(value, str):
                        write_text(row_number, column, _NOT_IN_A_WORKBOOK.sub("\uFFFD", value[:_MAX_CELL_TEXT]))
                    elif isinstance(value, bool):  # before numbers: a bool is an int
                        write_boolean(row_number, column, value)
                    elif isinstance(value, int | float | Decimal):
                        write_number(row_number, column, value if type(value) is int else _number(value))
                    else:  # a date or a decimal: as its text, as the CSV beside it shows it
                        write_text(row_number, column, str(value))
    finally:
        workbook.close()
    path.chmod(FILE_MODE)
    return path


def write_private_text(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(FILE_MODE)
    return path
