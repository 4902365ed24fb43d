"""Writing files that hold one site's own records: readable by the owner and the group that serves the site
(0640, folders 0750), and safe to open in Excel (a cell that starts like a formula stays text)."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

FILE_MODE = 0o640
FOLDER_MODE = 0o750
# Spreadsheet programs run a cell that starts with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


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
    """One workbook, a sheet per table; every text cell is written as text, never as a formula."""
    workbook = Workbook(write_only=True)
    for title, (header, rows) in sheets.items():
        sheet = workbook.create_sheet(title[:31])
        sheet.append(list(header))
        for row in rows:
            cells = []
            for value in row:
                value = "; ".join(map(str, value)) if isinstance(value, list) else value
                if isinstance(value, str):
                    # Control characters a site's file may carry are not allowed in a workbook.
                    value = ILLEGAL_CHARACTERS_RE.sub("\uFFFD", value)
                cell = WriteOnlyCell(sheet, value=value)
                if isinstance(value, str):
                    cell.data_type = "s"
                cells.append(cell)
            sheet.append(cells)
    workbook.save(path)
    path.chmod(FILE_MODE)
    return path


def write_private_text(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(FILE_MODE)
    return path
