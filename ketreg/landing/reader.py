"""Read one canonical CSV file into text columns with lineage, exactly as the site wrote it."""

from __future__ import annotations

import polars as pl

from ketreg.landing.discovery import CONTRACT_DOC, ExportFile, LandingExport
from schemas.tables import TABLES_BY_NAME

# The header is line 1, so the first data row is line 2. Counting assumes no line breaks inside quoted
# cells, which canonical exports do not have.
FIRST_DATA_LINE = 2


class UnreadableFile(ValueError):
    """The file is not a CSV the contract can read; the whole export is rejected with this message."""


def read_export_file(export: LandingExport, export_file: ExportFile) -> pl.DataFrame:
    """All rows of the file as text, contract columns only (absent optional ones as empty), plus
    `site_id`, `export_id` and `source_line`. Identifier-like and unknown columns are never loaded."""
    contract = TABLES_BY_NAME[export_file.table]
    # Ask for the names as written (blanks and all), then use the cleaned names.
    wanted = {
        written: clean
        for written, clean in zip(export_file.header_as_written, export_file.header, strict=True)
        if clean in contract.columns
    }
    try:
        frame = pl.read_csv(
            export_file.path,
            has_header=True,
            columns=list(wanted),
            infer_schema=False,
            row_index_name="_row",
            encoding="utf8",
            quote_char='"',
            raise_if_empty=False,
        )
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnreadableFile(
            f"{export.label}/{export_file.path.name}: cannot be read as CSV ({first_line}); check the delimiter "
            f"is a comma, quotes are balanced, every row has the header's columns and the file is UTF-8 "
            f"({CONTRACT_DOC})"
        ) from exc
    frame = frame.rename(wanted)
    return frame.select(
        pl.lit(export.site_id).alias("site_id"),
        pl.lit(export.export_id).alias("export_id"),
        (pl.col("_row").cast(pl.Int64) + FIRST_DATA_LINE).alias("source_line"),
        *[
            pl.col(c).cast(pl.String) if c in frame.columns else pl.lit(None, pl.String).alias(c)
            for c in contract.columns
        ],
    )
