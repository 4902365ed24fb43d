"""Builders that turn the simulation's numpy arrays into typed polars columns (null = empty cell)."""

from collections.abc import Sequence

import numpy as np
import polars as pl


def optional(name: str, values: np.ndarray, present: np.ndarray) -> pl.Series:
    """A column that is null wherever `present` is false, i.e. the site did not record the value."""
    series = pl.Series(name, values)
    missing = np.flatnonzero(~present)
    return series.scatter(missing, None) if missing.size else series


def coded(name: str, codes: np.ndarray, labels: Sequence[str], present: np.ndarray | None = None) -> pl.Series:
    """A text column from integer codes into `labels` (gathering is far cheaper than building strings)."""
    index = pl.Series(name, codes.astype(np.uint32))
    if present is not None:
        index = optional(name, index.to_numpy(), present)
    return pl.Series(name, list(labels), dtype=pl.String).gather(index).alias(name)


def datetimes(name: str, minutes: np.ndarray, present: np.ndarray | None = None) -> pl.Series:
    """A datetime column from integer minutes since 1970-01-01."""
    values = minutes.astype("datetime64[m]").astype("datetime64[ms]")
    return pl.Series(name, values) if present is None else optional(name, values, present)


def dates(name: str, days: np.ndarray, present: np.ndarray | None = None) -> pl.Series:
    """A date column from datetime64[D] values."""
    values = days.astype("datetime64[D]")
    return pl.Series(name, values) if present is None else optional(name, values, present)


def child_ids(parent_ids: pl.Series, tag: str, numbers: np.ndarray) -> pl.Series:
    """Ids of child records built on the parent's id, e.g. `K0001-I3` for the third infusion of K0001."""
    frame = pl.DataFrame({"parent": parent_ids, "number": numbers})
    return frame.select(pl.format("{}-" + tag + "{}", "parent", "number")).to_series()


def rank_within(groups: np.ndarray) -> np.ndarray:
    """1-based position of each row within its run of equal values in `groups` (rows sorted by group)."""
    first = np.searchsorted(groups, groups, side="left")
    return np.arange(groups.size) - first + 1
