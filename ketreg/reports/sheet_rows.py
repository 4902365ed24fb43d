"""The cells of a workbook's sheet as SpreadsheetML (`<sheetData>`), written the way XlsxWriter's constant-memory
mode writes them: text inline, numbers with every digit they need, yes/no as booleans, an empty value as no
cell. XlsxWriter spent ~10 µs of Python on each cell (most of the site folders' time at 20 sites × 5,000
patients: benchmarks/README.md, issue 13); this writes a row in one pass. Everything around the cells (the
package, styles, sheet names) is still XlsxWriter's (private_files.write_private_xlsx); tests/test_site_workbook.py
reads both writers' files back with openpyxl and finds every cell equal."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

# Excel's largest sheet; XlsxWriter drops cells below it, so this does too.
MAX_ROWS = 1_048_576
# Excel's longest text in a cell, in UTF-16 units; openpyxl cut longer text at as many characters, as we did.
MAX_CELL_TEXT = 32767
# Control characters a workbook cannot hold (openpyxl's ILLEGAL_CHARACTERS_RE; the workbooks written with
# openpyxl before replaced them the same way, so a site's file reads the same as it did).
NOT_IN_A_WORKBOOK = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")
# What XlsxWriter escapes in text (xmlwriter._escape_control_characters, _escape_data): Excel reads `_xHHHH_`
# as a character, so such literal text gets its underscore escaped; a carriage return and the two
# non-characters become `_xHHHH_` too; &, < and > become entities.
_EXCEL_ESCAPE = re.compile("(_x[0-9a-fA-F]{4}_)")
# One character class finds every character text_cell changes (with "_x" and leading or trailing space checked
# beside it): a pattern with `^\s|\s$` in it took ~12 µs on a 200-character value, this ~1 µs.
_CHANGED_CHARACTER = re.compile("[\x00-\x08\x0b-\x1f&<>\ufffe\uffff]")


def _is_plain(text: str) -> bool:
    """True when text_cell writes `text` as it is: nothing to replace or escape, no space to preserve."""
    return not (_CHANGED_CHARACTER.search(text) or "_x" in text or text[:1].isspace() or text[-1:].isspace())


def _column_letters(column: int) -> str:
    letters = ""
    column += 1
    while column:
        column, remainder = divmod(column - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def _utf16_cut(text: str) -> str:
    """Text cut to Excel's limit in UTF-16 units, never inside a character above U+FFFF (as XlsxWriter does)."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > MAX_CELL_TEXT:
            return text[:index]
    return text


def text_cell(ref: str, value: str) -> str:
    """A cell holding `value` as text (never a formula, number or link)."""
    if len(value) > MAX_CELL_TEXT // 2:
        value = _utf16_cut(value[:MAX_CELL_TEXT])
    if not _is_plain(value):
        value = NOT_IN_A_WORKBOOK.sub("\uFFFD", value)
        if "_x" in value:
            value = _EXCEL_ESCAPE.sub(r"_x005F\1", value)
        value = value.replace("\r", "_x000D_").replace("\ufffe", "_xFFFE_").replace("\uffff", "_xFFFF_")
        value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        # Python's \s and str.isspace() are the same characters; XlsxWriter tests with \s.
        if value[:1].isspace() or value[-1:].isspace():
            return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{value}</t></is></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'


def number_cell(ref: str, value: float | Decimal) -> str:
    """A number with 16 significant digits (XlsxWriter's form), or every digit it needs when 16 change it
    (0.30000000000000004 stays itself, as openpyxl wrote it); NaN and infinity as Excel's error values."""
    number = float(value)
    if math.isnan(number):
        return f'<c r="{ref}" t="e"><f>#NUM!</f><v>#NUM!</v></c>'
    if math.isinf(number):
        return f'<c r="{ref}" t="e"><f>{"-" if number < 0 else ""}1/0</f><v>#DIV/0!</v></c>'
    shown = f"{number:.16G}"
    return f'<c r="{ref}"><v>{shown if float(shown) == number else repr(number)}</v></c>'


def _int_cell(ref: str, value: int) -> str:
    return f'<c r="{ref}"><v>{value:.16G}</v></c>'


def _bool_cell(ref: str, value: bool) -> str:
    return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'


def _list_cell(ref: str, value: list[Any]) -> str:
    return text_cell(ref, "; ".join(map(str, value)))


def _other_cell(ref: str, value: Any) -> str:
    # A date or another value: as its text, as the CSV beside it shows it.
    if isinstance(value, bool):
        return _bool_cell(ref, value)
    if isinstance(value, int | float | Decimal):  # an int subclass too, as XlsxWriter was given it
        return number_cell(ref, value)
    if isinstance(value, str):
        return text_cell(ref, value)
    if isinstance(value, list):
        return _list_cell(ref, value)
    return text_cell(ref, str(value))


# The writer of each exact type; subclasses go through _other_cell (bool before int: a bool is an int).
_CELL: dict[type, Callable[[str, Any], str]] = {
    str: text_cell, int: _int_cell, float: number_cell, bool: _bool_cell, Decimal: number_cell, list: _list_cell,
}


def dimension(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The sheet's used range, `A1:I7745`, as XlsxWriter records it: from the header to the last row and
    column holding a value."""
    last_row, last_column = (0, len(header) - 1) if header else (-1, -1)
    for number in range(min(len(rows), MAX_ROWS - 1), 0, -1):
        if any(value is not None for value in rows[number - 1]):
            last_row = max(last_row, number)
            break
    for row in rows[:MAX_ROWS - 1]:
        for column in range(len(row) - 1, last_column, -1):
            if row[column] is not None:
                last_column = column
                break
    if last_row < 0 or last_column < 0:
        return "A1"
    first_row = 1 if header else min(number for number, row in enumerate(rows, start=1)
                                     if any(value is not None for value in row))
    first_column = 0 if header else min(column for row in rows for column, value in enumerate(row) if value is not None)
    start, end = f"{_column_letters(first_column)}{first_row}", f"{_column_letters(last_column)}{last_row + 1}"
    return start if start == end else f"{start}:{end}"


def sheet_data(header: Sequence[str], rows: Sequence[Sequence[Any]], rows_per_chunk: int = 2000) -> Iterator[str]:
    """`<row>` elements of the header and `rows`, a chunk of rows at a time (the caller streams them to disk)."""
    width = max([len(header), *map(len, rows[:MAX_ROWS - 1])]) if rows or header else 0
    letters = [_column_letters(column) for column in range(width)]
    chunk: list[str] = []
    if header:
        chunk.append('<row r="1">' + "".join(text_cell(f"{letters[c]}1", name) for c, name in enumerate(header))
                     + "</row>")
    cell = _CELL.get
    for number, row in enumerate(rows[:MAX_ROWS - 1], start=2):
        cells = []
        for column, value in enumerate(row):
            if value is None:
                continue
            # Most cells are short text needing no escape, or whole numbers: written here without a call.
            kind = type(value)
            if kind is str and len(value) <= MAX_CELL_TEXT // 2 and _is_plain(value):
                cells.append(f'<c r="{letters[column]}{number}" t="inlineStr"><is><t>{value}</t></is></c>')
            elif kind is int:
                cells.append(f'<c r="{letters[column]}{number}"><v>{value:.16G}</v></c>')
            else:
                cells.append((cell(kind) or _other_cell)(f"{letters[column]}{number}", value))
        if cells:
            chunk.append(f'<row r="{number}">{"".join(cells)}</row>')
        if len(chunk) >= rows_per_chunk:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)
