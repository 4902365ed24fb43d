"""Write export folders and the generator manifest exactly as the site-export contract v1 spells them."""

import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from .contract import file_name

DATE_FORMAT = "%Y-%m-%d"
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
DECIMALS = 1  # every decimal in the generated data has one digit: rates, doses, weights, MME
MANIFEST_NAME = ".generator-manifest.json"  # a dotfile: the pipeline ignores it
_PLAIN_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def as_text(series: pl.Series) -> pl.Series:
    """A column as the CSV writer would spell it, so that a fault can put any text into any column."""
    dtype = series.dtype
    if dtype == pl.Date:
        return series.dt.strftime(DATE_FORMAT)
    if isinstance(dtype, pl.Datetime):
        return series.dt.strftime(DATETIME_FORMAT)
    if dtype.is_float():
        return series.round(DECIMALS).cast(pl.String)
    return series.cast(pl.String)  # booleans become true/false, integers their digits


def write_export(folder: Path, tables: dict[str, pl.DataFrame]) -> None:
    """Write one export folder: a UTF-8 CSV per table, header first, empty cell for missing."""
    folder.mkdir(parents=True, exist_ok=True)
    for table, frame in tables.items():
        frame.write_csv(
            folder / file_name(table),
            separator=",",
            line_terminator="\n",
            date_format=DATE_FORMAT,
            datetime_format=DATETIME_FORMAT,
            float_precision=DECIMALS,
            null_value="",
            quote_style="necessary",
        )


def write_manifest(path: Path, header: dict[str, Any], faults: Iterable[dict[str, Any]]) -> None:
    """Write the manifest: `header` keys one per line, then one fault per line (there may be millions)."""
    with path.open("w", encoding="utf-8", newline="\n") as manifest:
        manifest.write("{\n")
        for key, value in header.items():
            manifest.write(f"  {json.dumps(key)}: {json.dumps(value)},\n")
        manifest.write('  "faults": [')
        written = 0
        for written, fault in enumerate(faults, start=1):
            manifest.write(f"{',' if written > 1 else ''}\n    {json.dumps(fault)}")
        manifest.write("\n  ]\n}\n" if written else "]\n}\n")


def previous_exports(path: Path) -> set[tuple[str, str]]:
    """(site_id, export_id) of the exports an earlier run listed in its manifest, if there is one.

    Only the header is read: the fault list of a large run runs to hundreds of megabytes.
    """
    if not path.exists():
        return set()
    with path.open(encoding="utf-8") as manifest:
        for line in manifest:
            if line.startswith('  "exports": '):
                exports = json.loads(line.split(": ", 1)[1].rstrip().rstrip(","))
                return {(e["site_id"], e["export_id"]) for e in exports}
            if line.startswith('  "faults"'):
                break
    return set()


def remove_exports(out_dir: Path, exports: set[tuple[str, str]]) -> None:
    """Delete export folders an earlier run wrote and this one did not, so no stale site is read."""
    for site, export in sorted(exports):
        if not (_PLAIN_NAME.fullmatch(site) and _PLAIN_NAME.fullmatch(export)):
            continue  # not a folder this generator names: never delete outside the landing folder
        shutil.rmtree(out_dir / site / export, ignore_errors=True)
        site_dir = out_dir / site
        if site_dir.is_dir() and not any(site_dir.iterdir()):
            site_dir.rmdir()
