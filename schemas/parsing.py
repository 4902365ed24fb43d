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
_DATETIME_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M")  # after the common "%Y-%m-%dT%H:%M:%S"

EXPECTED_TEXT = {
    pl.Int64: "a whole number",
    pl.Float64: "a number with a decimal point (e.g. 12.5)",
    pl.Boolean: "true or false",
    pl.Date: "an ISO date YYYY-MM-DD",
    pl.Datetime: "an ISO date-time YYYY-MM-DDTHH:MM[:SS]",
}


def cleaned_text(text: pl.Series) -> pl.Series:
    """The cells with surrounding blanks removed; an empty cell is missing. Most exports have neither, and
    checking is far cheaper than rewriting every string, so a column is only rewritten when it needs it."""
    edges = (" ", "\t", "\r", "\n")
    # One pass finds whether any cell holds a blank at all (most columns: none); only then are the edges
    # looked at, eight passes that cost twice the one (measured on 330,000 assessments).
    if text.str.contains_any(list(edges)).any() and any(
        (text.str.starts_with(c) | text.str.ends_with(c)).any() for c in edges
    ):
        text = text.str.strip_chars()
    if (text == "").any():
        text = pl.select(pl.when(text == "").then(None).otherwise(text)).to_series().alias(text.name)
    return text


def _parse_datetime(text: pl.Series) -> pl.Series:
    """ISO 8601 local date-times. The common full form is parsed for every cell in one pass; the rarer
    forms (no seconds, fractions of a second) only for the cells the first pass could not read."""
    iso = text.str.replace(" ", "T", literal=True, n=1)
    parsed = iso.str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S", strict=False)
    retry = parsed.is_null() & iso.is_not_null()
    if retry.any():
        rows = retry.arg_true()
        rarer = iso.gather(rows)
        rarer_parsed = pl.select(
            pl.coalesce([rarer.str.strptime(pl.Datetime("us"), fmt, strict=False) for fmt in _DATETIME_FORMATS])
        ).to_series()
        parsed = parsed.scatter(rows, rarer_parsed)
    # strptime alone is lenient (single-digit fields, second 60): the pattern keeps to ISO 8601.
    return pl.select(pl.when(text.str.contains(_DATETIME)).then(parsed)).to_series().alias(text.name)


def _parse(text: pl.Series, dtype: pl.DataType) -> pl.Series:
    base = dtype.base_type()
    if base == pl.Datetime:
        return _parse_datetime(text)
    column = pl.col(text.name)
    expr: pl.Expr
    if base == pl.Int64:
        expr = pl.when(column.str.contains(_INTEGER)).then(column.cast(pl.Int64, strict=False))
    elif base == pl.Float64:
        expr = pl.when(column.str.contains(_DECIMAL)).then(column.cast(pl.Float64, strict=False))
    elif base == pl.Boolean:
        lowered = column.str.to_lowercase()
        expr = pl.when(lowered == "true").then(True).when(lowered == "false").then(False)
    elif base == pl.Date:
        expr = pl.when(column.str.contains(_DATE)).then(column.str.strptime(pl.Date, "%Y-%m-%d", strict=False))
    else:
        return text
    return text.to_frame().select(expr.alias(text.name)).to_series()


def parse_table(raw: pl.DataFrame, table: TableContract) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Type every contract column of `raw` (all text, contract columns present).

    Returns the typed frame (same rows, same order, lineage kept) and the parse failures, one row per
    cell that held text the type cannot read: `row`, `column`, `rule` ("type"), `message`.
    """
    lineage = [c for c in raw.columns if c not in table.columns]
    # Clean once, parse once: each column's text is read a single time however many rules look at it.
    cleaned = raw.select(*lineage).with_columns(cleaned_text(raw[c]) for c in table.columns)
    typed_columns: list[pl.Series] = []
    for column in table.columns:
        typed = _parse(cleaned[column], table.polars_type(column))
        when_missing = (table.base_schema.columns[column].metadata or {}).get("when_missing")
        if when_missing is not None:
            typed = typed.fill_null(when_missing)
        typed_columns.append(typed)
    typed_frame = cleaned.select(*lineage).with_columns(typed_columns)

    failure_frames: list[pl.DataFrame] = []
    for column in table.columns:
        dtype = table.polars_type(column)
        if dtype == pl.String:
            continue
        unreadable = cleaned[column].is_not_null() & typed_frame[column].is_null()
        if not unreadable.any():
            continue
        base = dtype.base_type()
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


FAILURE_SCHEMA = pl.Schema({"row": pl.Int64, "column": pl.String, "rule": pl.String, "message": pl.String})


def concat_failures(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Stack failure frames into the one long shape every validation step reports in."""
    if not frames:
        return pl.DataFrame(schema=FAILURE_SCHEMA)
    return pl.concat([frame.select(list(FAILURE_SCHEMA)).cast(FAILURE_SCHEMA) for frame in frames])
