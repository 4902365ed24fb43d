"""A site's "what to fix" workbook (ketreg/reports/private_files.py) holds each value as the site's CSV and
page do: text stays text (even when it looks like a formula or a number), numbers and yes/no stay typed with
every digit, an empty value is an empty cell. Read back with openpyxl, a reader independent of the writer (it
does not decode Excel's `_xHHHH_` escapes, which XlsxWriter writes for text that looks like one, so such text
is not compared here)."""

from __future__ import annotations

import datetime as dt
import stat
import zipfile
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import xlsxwriter
from openpyxl import load_workbook

from ketreg.reports.private_files import FILE_MODE, write_private_xlsx
from ketreg.reports.sheet_rows import MAX_CELL_TEXT, NOT_IN_A_WORKBOOK

_HEADER = ("record_id", "source_line", "is_current_export", "observed", "raw_values")


def test_workbook_keeps_text_as_text_and_numbers_typed(tmp_path: Path) -> None:
    rows = [
        ("=HYPERLINK(\"http://x\")", 12, True, 2.5, ["a", "b"]),
        ("+41 22", 13, False, 0.1 + 0.2, None),
        ("007", 14, True, -3, "text"),
        ("bell\x07 and tab\t", 15, False, 1e-7, "x" * 40_000),
    ]
    path = write_private_xlsx(tmp_path / "what_to_fix.xlsx", {"quarantine": (_HEADER, rows), "notices": (("n",), [])})
    assert stat.S_IMODE(path.stat().st_mode) == FILE_MODE
    workbook = load_workbook(path)
    assert workbook.sheetnames == ["quarantine", "notices"]
    sheet = workbook["quarantine"]
    read = [tuple(cell.value for cell in row) for row in sheet.iter_rows()]
    assert read[0] == _HEADER
    assert read[1] == ("=HYPERLINK(\"http://x\")", 12, True, 2.5, "a; b")
    assert sheet["A2"].data_type == "s"  # a string cell, not a formula
    assert read[2] == ("+41 22", 13, False, 0.1 + 0.2, None)
    assert read[3] == ("007", 14, True, -3, "text")
    # A control character a workbook cannot hold is replaced; text is cut at Excel's 32,767 characters.
    assert read[4] == ("bell\uFFFD and tab\t", 15, False, 1e-7, "x" * 32_767)
    assert [tuple(c.value for c in row) for row in workbook["notices"].iter_rows()] == [("n",)]


# ---------------------------------------------------------------------------------------------------------
# The sheet cells are written by ketreg/reports/sheet_rows.py, not cell by cell through XlsxWriter. The
# workbook XlsxWriter itself writes from the same values is the reference: each sheet's XML is compared byte
# for byte, and every cell read back with openpyxl.

_HOSTILE_ROWS: list[tuple[Any, ...]] = [
    ("=SUM(A1)", 1, True, 0.1 + 0.2, ["x", 2]),
    ("_x0041_ looks like an Excel escape", 2**53 + 1, False, float("nan"), None),
    ("carriage\r\nreturn", -0, None, float("inf"), "  leading and trailing  "),
    ("a & b < c > d \"quoted\"", 10**20, True, float("-inf"), "\ufffe\uffff non-characters"),
    ("\x00\x01\x0b\x0c\x1f control", 3, None, Decimal("1.10"), dt.date(2026, 12, 6)),
    ("é ü 中文 \U0001F600", 4, None, 1e-300, "\U0001F600" * 20_000),  # cut in UTF-16 units, not inside a pair
    ("", 5, None, 123456789.123456789, "x" * 40_000),
    (" ", 6, None, -2.5e15, "tab\tinside"),
    ("trailing space only ", 7, None, 0.0, "\nleading newline only"),
    (None, None, None, None, None),  # an empty row: no <row> element, and not in the used range
]


class _AllDigits(float):
    """XlsxWriter formats numbers with 16 significant digits (`.16G`); this float shows every digit it needs."""

    def __format__(self, spec: str) -> str:
        return repr(float(self))


def _every_digit(value: float | Decimal) -> float:
    number = float(value)
    return number if float(f"{number:.16G}") == number else _AllDigits(number)


def _written_by_xlsxwriter(path: Path, sheets: dict[str, tuple[Sequence[str], Sequence[Sequence[Any]]]]) -> Path:
    """The workbook as XlsxWriter writes it cell by cell: write_private_xlsx as it was before sheet_rows.py."""
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_formulas": False,
                                               "strings_to_numbers": False, "strings_to_urls": False,
                                               "nan_inf_to_errors": True})
    for title, (header, rows) in sheets.items():
        sheet = workbook.add_worksheet(title)
        for column, name in enumerate(header):
            sheet.write_string(0, column, name)
        for number, row in enumerate(rows, start=1):
            for column, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, list):
                    value = "; ".join(map(str, value))
                if isinstance(value, str):
                    sheet.write_string(number, column, NOT_IN_A_WORKBOOK.sub("\uFFFD", value[:MAX_CELL_TEXT]))
                elif isinstance(value, bool):
                    sheet.write_boolean(number, column, value)
                elif isinstance(value, int | float | Decimal):
                    sheet.write_number(number, column, value if type(value) is int else _every_digit(value))
                else:
                    sheet.write_string(number, column, str(value))
    workbook.close()
    return path


def _sheet_xml(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as package:
        return {name: package.read(name) for name in package.namelist() if name.startswith("xl/worksheets/")}


def test_sheet_cells_are_the_ones_xlsxwriter_writes_cell_by_cell(tmp_path: Path) -> None:
    sheets = {"quarantine": (_HEADER, _HOSTILE_ROWS), "empty": (("a", "b"), []),
              "wider": (("one",), [(None, None, "beyond the header"), (1.5,)])}
    ours = write_private_xlsx(tmp_path / "ours.xlsx", sheets)
    reference = _written_by_xlsxwriter(tmp_path / "reference.xlsx", sheets)

    ours_xml, reference_xml = _sheet_xml(ours), _sheet_xml(reference)
    assert list(ours_xml) == list(reference_xml) == [f"xl/worksheets/sheet{n}.xml" for n in (1, 2, 3)]
    assert ours_xml == reference_xml
    ours_book, reference_book = load_workbook(ours), load_workbook(reference)
    assert ours_book.sheetnames == reference_book.sheetnames
    for title in sheets:
        assert ours_book[title].dimensions == reference_book[title].dimensions, title
        ours_cells = [[(c.value, c.data_type) for c in row] for row in ours_book[title].iter_rows()]
        reference_cells = [[(c.value, c.data_type) for c in row] for row in reference_book[title].iter_rows()]
        assert ours_cells == reference_cells, title


def test_text_shaped_like_markup_stays_text(tmp_path: Path) -> None:
    # XlsxWriter writes text that starts with <r> and ends with </r> as raw rich-text XML; ours escapes it.
    path = write_private_xlsx(tmp_path / "w.xlsx", {"s": (("v",), [("<r><t>bold</t></r>",), ("</t></is>",)])})
    assert [c.value for (c,) in load_workbook(path)["s"].iter_rows()] == ["v", "<r><t>bold</t></r>", "</t></is>"]
