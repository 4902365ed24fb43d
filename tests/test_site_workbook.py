"""A site's "what to fix" workbook (ketreg/reports/private_files.py) holds each value as the site's CSV and
page do: text stays text (even when it looks like a formula or a number), numbers and yes/no stay typed with
every digit, an empty value is an empty cell. Read back with openpyxl, a reader independent of the writer (it
does not decode Excel's `_xHHHH_` escapes, which XlsxWriter writes for text that looks like one, so such text
is not compared here)."""

from __future__ import annotations

import stat
from pathlib import Path

from openpyxl import load_workbook

from ketreg.reports.private_files import FILE_MODE, write_private_xlsx

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
