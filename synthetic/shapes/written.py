"""Write one export folder in a site's shape, and say where each canonical row ended up in the site's files."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ..contract import file_name
from ..writer import write_export
from . import excel, redcap, semicolon
from .text import canonical_text

SHAPES = ("canonical", "semicolon", "excel", "redcap")


@dataclass(frozen=True)
class ShapeWritten:
    """Where the rows went: the site's file (or `workbook[sheet]`) of each table and each row's line in it."""

    files: dict[str, str]
    lines: dict[str, np.ndarray] = field(default_factory=dict)  # absent table: row i is on line i + 2
    rows_without_weight: dict[str, np.ndarray] = field(default_factory=dict)  # rate per kg not computable

    def line(self, table: str, row: int) -> int:
        lines = self.lines.get(table)
        return int(lines[row]) if lines is not None else row + 2


def write_shape(shape: str, folder: Path, tables: dict[str, pl.DataFrame], site_id: str) -> ShapeWritten:
    """Write `tables` (typed, or text where a fault was injected) into `folder` as a site of `shape` would."""
    folder.mkdir(parents=True, exist_ok=True)
    if shape == "canonical":
        write_export(folder, tables)
        return ShapeWritten({t: file_name(t) for t in tables})
    text = canonical_text(tables)
    if shape == "semicolon":
        files, no_weight = semicolon.write(folder, text)
        return ShapeWritten({t: files[t] for t in tables}, rows_without_weight=no_weight)
    if shape == "excel":
        return ShapeWritten(excel.write(folder, text))
    if shape == "redcap":
        files, lines = redcap.write(folder, text, site_id)
        return ShapeWritten(files, lines)
    raise ValueError(f"unknown export shape '{shape}' (shapes: {', '.join(SHAPES)})")
