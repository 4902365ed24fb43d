"""Building blocks shared by the table contracts: row rules that span columns, and references
between files. Each rule carries the words a data manager reads in the quarantine."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

# Every contract row carries its lineage; rules that hold "within one file" group by these.
LINEAGE_COLUMNS = ("site_id", "export_id", "source_line")


@dataclass(frozen=True)
class RowRule:
    """A rule over several columns of one row (or one file), implemented as a Pandera dataframe check."""

    name: str
    columns: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class Reference:
    """`columns` of a child file must match `parent_columns` of a row in the parent file of the same export."""

    name: str
    columns: tuple[str, ...]
    parent_table: str
    parent_columns: tuple[str, ...]
    message: str


def unique_in_export(column: str) -> pl.Expr:
    """True where `column` is not repeated within the same site export (nulls are left to `required`)."""
    return pl.col(column).is_null() | ~pl.struct("site_id", "export_id", column).is_duplicated()
