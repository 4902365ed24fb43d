"""Cut a site's full history into the snapshot one export holds: what the site knew before the cutoff."""

from datetime import date

import polars as pl

from .contract import COLUMNS


def snapshot(site_tables: dict[str, pl.DataFrame], cutoff: date) -> dict[str, pl.DataFrame]:
    """The contract tables as a site would export them on `cutoff` (helper columns dropped)."""
    before = pl.col("_visible_on") < cutoff
    tables = {name: frame.filter(before) for name, frame in site_tables.items()}
    # Values recorded later than the row itself: missing from earlier exports, filled in later ones.
    tables["patients"] = tables["patients"].with_columns(
        pl.when(pl.col("_weight_known_on") < cutoff).then(pl.col("weight_kg")).alias("weight_kg")
    )
    tables["infusions"] = tables["infusions"].with_columns(
        pl.when(pl.col("_relief_known_on") < cutoff).then(pl.col("relief_duration_days")).alias("relief_duration_days")
    )
    return {name: frame.select(COLUMNS[name]) for name, frame in tables.items()}
