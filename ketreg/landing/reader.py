"""Read one canonical CSV file into text columns with lineage, exactly as the site wrote it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from ketreg.landing import messages
from ketreg.landing.discovery import CONTRACT_DOC, ExportFile, LandingExport
from ketreg.landing.formats import parser_message
from ketreg.landing.safe_files import fd_path, open_landing_file
from schemas.tables import TABLES_BY_NAME

# The header is line 1, so the first data row is line 2. Counting assumes no line breaks inside quoted
# cells, which canonical exports do not have.
FIRST_DATA_LINE = 2


class UnreadableFile(ValueError):
    """The file is not a CSV the contract can read; the whole export is rejected with this message.
    `site_detail`: what only the site may see (its own values), for `ketreg check-export`."""

    def __init__(self, message: str, site_detail: str | None = None) -> None:
        super().__init__(message)
        self.site_detail = site_detail


def _first_short_row(path: Path | str, header_width: int) -> str | None:
    """The CSV error of the first row with fewer cells than the header, if there is one.

    polars pads a short row with empty cells, which would pass off a broken row as a row with missing
    values. Counting commas per line is cheap and can only over-count (a quoted comma), so a line with too
    few of them is a candidate; DuckDB's strict reader then decides, and names the line."""
    lines = pl.read_csv(
        path, has_header=False, separator="\x1f", quote_char=None, infer_schema=False, new_columns=["line"]
    )["line"]
    if not (lines.str.count_matches(",", literal=True) < header_width - 1).any():
        return None
    columns = {f"column_{i}": "VARCHAR" for i in range(header_width)}
    try:
        counted = duckdb.sql(
            "SELECT count(*) FROM read_csv($path, delim = ',', quote = '\"', escape = '\"', header = true, "
            "auto_detect = false, strict_mode = true, null_padding = false, columns = $columns)",
            params={"path": str(path), "columns": columns},
        )
        assert counted is not None  # a SELECT always gives a relation (None is for statements without a result)
        counted.fetchall()
    except duckdb.Error as exc:
        # Never the "Original Line" DuckDB quotes: it holds the site's patient ids and values.
        message = str(exc).split("Possible fixes")[0]
        kept = [line.strip() for line in message.splitlines() if line.strip()]
        return messages.name(" ".join(line for line in kept if not line.startswith("Original Line")), 300)
    return None


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
    where = f"{export.label}/{export_file.path.name}"
    with open_landing_file(export_file.path, where, export.read_limits()) as handle:
        # polars and DuckDB take paths: give them the descriptor that was checked (never a swapped-in link).
        return _read_checked(export, export_file, fd_path(handle, export_file.path), wanted, contract.columns)


def _read_checked(export: LandingExport, export_file: ExportFile, path: str, wanted: dict[str, str],
                  contract_columns: tuple[str, ...] | list[str]) -> pl.DataFrame:
    try:
        frame = pl.read_csv(
            path,
            has_header=True,
            columns=list(wanted),
            infer_schema=False,
            row_index_name="_row",
            encoding="utf8",
            quote_char='"',
            raise_if_empty=False,
        )
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        raise UnreadableFile(
            f"{export.label}/{export_file.path.name}: cannot be read as CSV ({parser_message(exc)}); check the "
            f"delimiter is a comma, quotes are balanced, every row has the header's columns and the file is UTF-8 "
            f"({CONTRACT_DOC})"
        ) from exc
    short_row = _first_short_row(path, len(export_file.header))
    if short_row is not None:
        raise UnreadableFile(
            f"{export.label}/{export_file.path.name}: a row has fewer cells than the header ({short_row}); "
            "every row needs one cell per column, empty cells included"
        )
    frame = frame.rename(wanted)
    return frame.select(
        pl.lit(export.site_id).alias("site_id"),
        pl.lit(export.export_id).alias("export_id"),
        (pl.col("_row").cast(pl.Int64) + FIRST_DATA_LINE).alias("source_line"),
        *[
            pl.col(c).cast(pl.String) if c in frame.columns else pl.lit(None, pl.String).alias(c)
            for c in contract_columns
        ],
    )
