"""Canonical text → typed values. The contract's types come from the Pandera models; this module
says how each type is written in a canonical file and what a data manager reads when it is not."""

from __future__ import annotations

import polars as pl

from schemas.tables import TableContract

_INTEGER = r"^[+-]?\d+$"
_DECIMAL = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_DATE = r"^\d{4}-\d{2}-\d{2}$"
_DATETIME = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$"
# ISO 8601 local date-time, `T` or a space between date and time, seconds and fractions optional.
_DATETIME_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M")

EXPECTED_TEXT = {
    pl.Int64: "a whole number",
    pl.Float64: "a number with a decimal point (e.g. 12.5)",
    pl.Boolean: "true or false",
    pl.Date: "an ISO date YYYY-MM-DD",
    pl.Datetime: "an ISO date-time YYYY-MM-DDTHH:MM[:SS]",
}


def cleaned_text(column: str) -> pl.Expr:
    """The cell with surrounding blanks removed; an empty cell is missing."""
    text = pl.col(column).str.strip_chars()
    return pl.when(text == "").then(None).otherwise(text)


def _parse(text: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    base = dtype.base_type() if hasattr(dtype, "base_type") else dtype
    if base == pl.Int64:
        return pl.when(text.str.contains(_INTEGER)).then(text.cast(pl.Int64, strict=False))
    if base == pl.Float64:
        return pl.when(text.str.contains(_DECIMAL)).then(text.cast(pl.Float64, strict=False))
    if base == pl.Boolean:
        lowered = text.str.to_lowercase()
        return pl.when(lowered == "true").then(True).when(lowered == "false").then(False)
    if base == pl.Date:
        return pl.when(text.str.contains(_DATE)).then(text.str.strptime(pl.Date, "%Y-%m-%d", strict=False))
    if base == pl.Datetime:
        iso = text.str.replace(" ", "T", literal=True, n=1)
        parsed = pl.coalesce([iso.str.strptime(pl.Datetime("us"), fmt, strict=False) for fmt in _DATETIME_FORMATS])
        # strptime alone is lenient (single-digit fields, second 60): the pattern keeps to ISO 8601.
        return pl.when(text.str.contains(_DATETIME)).then(parsed)
    return text


def parse_table(raw: pl.DataFrame, table: TableContract) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Type every contract column of `raw` (all text, contract columns present).

    Returns the typed frame (same rows, same order, lineage kept) and the parse failures, one row per
    cell that held text the type cannot read: `row`, `column`, `rule` ("type"), `message`.
    """
    lineage = [c for c in raw.columns if c not in table.columns]
    # Clean once, parse once: each column's text is read a single time however many rules look at it.
    cleaned = raw.select(*lineage, *[cleaned_text(c).alias(c) for c in table.columns])
    typed_columns: list[pl.Expr] = []
    for column in table.columns:
        typed = _parse(pl.col(column), table.polars_type(column))
        when_missing = (table.base_schema.columns[column].metadata or {}).get("when_missing")
        if when_missing is not None:
            typed = typed.fill_null(when_missing)
        typed_columns.append(typed.alias(column))
    typed_frame = cleaned.select(*lineage, *typed_columns)

    failure_frames: list[pl.DataFrame] = []
    for column in table.columns:
        dtype = table.polars_type(column)
        if dtype == pl.String:
            continue
        unreadable = cleaned[column].is_not_null() & typed_frame[column].is_null()
        if not unreadable.any():
            continue
        base = dtype.base_type() if hasattr(dtype, "base_type") else dtype
        prefix = f"{column} must be {EXPECTED_TEXT[base]} (got '"
        failure_frames.append(
            pl.DataFrame({"row": unreadable.arg_true().cast(pl.Int64), "text": cleaned[column].filter(unreadable)})
            .select(
                "row",
                pl.lit(column).alias("column"),
                pl.lit("type").alias("rule"),
                # concat_str, not pl.format: pl.format with literal arguments panics in polars 2.1.
                pl.concat_str([pl.lit(prefix), pl.col("text"), pl.lit("')")]).alias("message"),
            )
        )
    return typed_frame, concat_failures(failure_frames)


FAILURE_SCHEMA = {"row": pl.Int64, "column": pl.String, "rule": pl.String, "message": pl.String}


def concat_failures(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Stack failure frames into the one long shape every validation step reports in."""
    if not frames:
        return pl.DataFrame(schema=FAILURE_SCHEMA)
    return pl.concat([frame.select(list(FAILURE_SCHEMA)).cast(FAILURE_SCHEMA) for frame in frames])
