"""Helpers shared by the shape writers: tables as canonical text, and re-spelling that text."""

import polars as pl

from ..contract import COLUMNS
from ..writer import as_text

ISO_DATE = "%Y-%m-%d"
ISO_DATETIME = "%Y-%m-%dT%H:%M:%S"


def canonical_text(tables: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Every table exactly as the canonical CSV spells it (nulls kept as nulls)."""
    return {
        name: frame.select(
            as_text(frame[c]).alias(c) if frame[c].dtype != pl.String else pl.col(c) for c in frame.columns
        )
        for name, frame in tables.items()
    }


def respell_date(column: str, out_format: str, datetime: bool = False) -> pl.Expr:
    """A canonical date (or date-time) in the site's spelling; text that is not one (a fault) stays as it is."""
    parsed = pl.col(column).str.strptime(pl.Datetime("us") if datetime else pl.Date,
                                         ISO_DATETIME if datetime else ISO_DATE, strict=False)
    return pl.coalesce(parsed.dt.strftime(out_format), pl.col(column)).alias(column)


def recode(column: str, codes: dict[str, str]) -> pl.Expr:
    """Contract codes → the site's codes; anything else (a fault) stays as it is."""
    return pl.col(column).replace(codes).alias(column)


def decimal_comma(column: str) -> pl.Expr:
    return pl.col(column).str.replace(".", ",", literal=True).alias(column)


def contract_columns(table: str) -> tuple[str, ...]:
    return COLUMNS[table]


def with_present(frame: pl.DataFrame, *exprs: pl.Expr | pl.Series) -> pl.DataFrame:
    """`with_columns` for the expressions whose column the frame has (a whole-file fault may drop one)."""

    def name(e: pl.Expr | pl.Series) -> str:
        return e.name if isinstance(e, pl.Series) else e.meta.output_name()

    return frame.with_columns([e for e in exprs if name(e) in frame.columns])
