"""Which columns of metrics.patient_outcomes carry the primary estimand, with a labelled fallback.

The endpoints work adds the primary estimand to metrics.patient_outcomes (`sustained_responder`, composite:
missing = not a responder; `nprs_primary` at the fixed timepoint; `nprs_change_primary`;
`primary_assessment_observed`). Until those columns exist the planning figures use the study's definition
(`responder`, the end-of-induction NPRS) and say so in every row they feed.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

PRIMARY_COLUMNS = ("sustained_responder", "nprs_primary", "nprs_change_primary", "primary_assessment_observed")


@dataclass(frozen=True)
class Estimand:
    """The responder, follow-up NPRS and NPRS-change columns to plan from, and how the primary endpoint is missed."""

    primary: bool
    label: str
    responder_column: str
    nprs_column: str
    change_column: str

    def missing_primary(self) -> pl.Expr:
        """True for a treated patient whose primary endpoint was not observed (the dropout of a trial)."""
        if self.primary:
            return ~pl.col("primary_assessment_observed").fill_null(False)
        return pl.col(self.nprs_column).is_null()

    @property
    def missing_definition(self) -> str:
        if self.primary:
            return "share of treated patients with primary_assessment_observed false"
        return "share of treated patients without an NPRS in the induction window (nprs_end_of_induction empty)"


def estimand_for(outcomes: pl.DataFrame) -> Estimand:
    """The primary estimand when metrics.patient_outcomes has all its columns, else the study definition."""
    if all(column in outcomes.columns for column in PRIMARY_COLUMNS):
        return Estimand(True, "primary estimand (sustained_responder)", "sustained_responder", "nprs_primary",
                        "nprs_change_primary")
    return Estimand(False, "study definition (responder; primary estimand columns not built)", "responder",
                    "nprs_end_of_induction", "nprs_change_end_of_induction")


def treated(outcomes: pl.DataFrame) -> pl.DataFrame:
    """Cohort patients with at least one infusion and a known course (`responder` is empty when an infusion's
    number is uncertain), sorted (every figure is computed in the same order)."""
    return outcomes.filter((pl.col("infusion_count") > 0) & pl.col("responder").is_not_null()).sort(
        [c for c in ("site_id", "patient_key") if c in outcomes.columns])
