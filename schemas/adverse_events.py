"""adverse_events.csv: one row per adverse event during or after an infusion (CTCAE v5 grades)."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.polars import DataFrameModel, Field

from schemas.enums import AE_ACTIONS, AE_CATEGORIES, AE_OUTCOMES, AE_TERM_CATEGORY, AE_TERMS
from schemas.rules import Reference, RowRule, unique_in_export

ROW_RULES = (
    RowRule("ae_id_unique_in_file", ("ae_id",), "ae_id appears more than once in the file"),
    RowRule("category_matches_term", ("term", "category"), "category contradicts the term's body system"),
)

REFERENCES = (
    Reference("patient_exists", ("patient_id",), "patients", ("patient_id",), "patient_id is not in patients.csv"),
    Reference(
        "infusion_exists", ("infusion_id",), "infusions", ("infusion_id",), "infusion_id is not in infusions.csv"
    ),
    Reference(
        "infusion_belongs_to_patient",
        ("infusion_id", "patient_id"),
        "infusions",
        ("infusion_id", "patient_id"),
        "infusion_id belongs to another patient",
    ),
)


class AdverseEventContract(DataFrameModel):
    """An adverse event attributed to an infusion."""

    ae_id: str = Field(nullable=False, description="Site's adverse-event code.")
    patient_id: str = Field(nullable=False, description="Must be a patient of the same export.")
    infusion_id: str = Field(nullable=False, description="The infusion of that patient the event followed.")
    onset_time: pl.Datetime = Field(nullable=True, description="Onset, local time.")
    term: str = Field(isin=AE_TERMS, description="Adverse-event term (CDISC AETERM, coded).")
    category: str = Field(
        nullable=True, isin=AE_CATEGORIES, description="Body system (AEBODSYS); derived from the term when empty."
    )
    grade: pl.Int64 = Field(ge=1, le=5, description="CTCAE v5 grade: 1 mild … 5 death.")
    serious: pl.Boolean = Field(description="Serious adverse event: death, life-threatening, hospitalisation.")
    action_taken: str = Field(isin=AE_ACTIONS, description="What was done (AEACN): none, rate reduced, …")
    outcome: str = Field(isin=AE_OUTCOMES, description="How the event ended (AEOUT).")

    @pa.dataframe_check(name="ae_id_unique_in_file")
    def ae_id_unique(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(unique_in_export("ae_id"))

    @pa.dataframe_check(name="category_matches_term")
    def category_matches_term(cls, data: pa.PolarsData) -> pl.LazyFrame:
        expected = pl.col("term").replace_strict(AE_TERM_CATEGORY, default=None)
        agrees = pl.col("category").is_null() | (pl.col("term") == "other") | (pl.col("category") == expected)
        return data.lazyframe.select(agrees.fill_null(True))

    class Config:
        name = "adverse_events"
        strict = False
