"""metrics.registry_metrics as it may be shared: small cells and their complements suppressed."""

from __future__ import annotations

from typing import Any

import duckdb
import polars as pl

from ketreg.privacy.suppression import suppress_small_cells


def suppressed_metrics_frame(con: duckdb.DuckDBPyConnection, k: int) -> pl.DataFrame:
    """Every row of metrics.registry_metrics, in its order, with small cells blanked and `suppressed`."""
    return suppress_small_cells(con.sql("SELECT * FROM metrics.registry_metrics").pl(), k)


def suppressed_metrics(con: duckdb.DuckDBPyConnection, k: int) -> list[dict[str, Any]]:
    """The same rows as dictionaries (column → value)."""
    return suppressed_metrics_frame(con, k).to_dicts()
