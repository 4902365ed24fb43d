"""Small-cell suppression of the registry's figures before they are shared (docs/privacy.md).

A cell (one metric in one stratum) is *small* when its numerator or its denominator is between 1 and k − 1:
it is blanked — numerator, denominator, estimate and interval — and flagged `suppressed`. Zero is not small
(it says nothing about a person). Then **complementary suppression**: the strata of one metric and stratum type
add up to the overall figure (patients fall in exactly one site, etiology, …; events in one category), so a
lone blanked stratum could be recovered by subtracting the others from the overall. Wherever exactly one
stratum of a metric × stratum type is blanked, the next smallest non-empty stratum is blanked too. Every
stratum type is treated as additive, which is exact for the patient strata and conservative for the others.

"Smallest" is the denominator (the numerator for a count), ties broken by the stratum's name: metrics that
share a denominator (cohort infusions, AE rates per infusion) then blank the same complementary stratum, so
one cannot be used to undo the other."""

from __future__ import annotations

import polars as pl

BLANKED = ("numerator", "denominator", "estimate", "ci_low", "ci_high")
_GROUP = ("metric", "stratum_type")
# Columns that label a cell and stay shown; every other numeric column is blanked with it (so a figure added to
# registry_metrics later, say a median, cannot give a blanked count back).
LABELS = ("metric", "stratum_type", "stratum", "unit")


def is_small(count: pl.Expr, k: int) -> pl.Expr:
    """1 ≤ count ≤ k − 1 (false for zero and for no count)."""
    return count.is_between(1, k - 1).fill_null(False)


def suppress_small_cells(metrics: pl.DataFrame, k: int) -> pl.DataFrame:
    """`metrics` (the columns of metrics.registry_metrics) with small cells and their complements blanked
    and a boolean `suppressed` column. Row order and every other column are kept; k = 1 blanks nothing."""
    if k < 1:
        raise ValueError(f"the small-cell count must be at least 1, got {k}")
    frame = metrics.with_row_index("_row").with_columns(
        (is_small(pl.col("numerator"), k) | is_small(pl.col("denominator"), k)).alias("_primary"),
        pl.coalesce("denominator", "numerator").fill_null(0).alias("_size"),
    )
    lone = (
        frame.filter(pl.col("stratum_type") != "overall")
        .group_by(_GROUP)
        .agg(pl.col("_primary").sum().alias("_blanked"))
        .filter(pl.col("_blanked") == 1)
    )
    candidates = (
        frame.join(lone.select(_GROUP), on=list(_GROUP), how="semi")
        .filter(~pl.col("_primary"))
        # Non-empty strata first (blanking an empty one hides nothing), then the smallest, then by name.
        .sort(pl.col("_size") == 0, "_size", "stratum", "_row")
        .group_by(_GROUP, maintain_order=True)
        .first()
        .select("_row")
    )
    complementary = frame["_row"].is_in(candidates["_row"].implode())
    suppressed = frame["_primary"] | complementary
    blanked = [
        c for c in metrics.columns
        if c in BLANKED or (c not in LABELS and metrics.schema[c].is_numeric())
    ]
    out = frame.with_columns(suppressed.alias("suppressed")).with_columns(
        *(pl.when(pl.col("suppressed")).then(None).otherwise(pl.col(c)).alias(c) for c in blanked)
    )
    return out.drop("_row", "_primary", "_size")
