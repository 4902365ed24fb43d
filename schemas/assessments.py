"""assessments.csv: pain, function, satisfaction and opioid use at baseline, around infusions and at follow-up."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.polars import DataFrameModel, Field

from schemas.enums import TIMEPOINTS
from schemas.rules import Reference, RowRule, unique_in_export

ROW_RULES = (
    RowRule("assessment_id_unique_in_file", ("assessment_id",), "assessment_id appears more than once in the file"),
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


class AssessmentContract(DataFrameModel):
    """One assessment of the patient; scores are integers on 0–10 scales."""

    assessment_id: str = Field(nullable=False, description="Site's assessment code.")
    patient_id: str = Field(nullable=False, description="Must be a patient of the same export.")
    infusion_id: str = Field(nullable=True, description="The infusion a pre/post assessment belongs to.")
    assessed_at: pl.Datetime = Field(description="When the assessment was made, local time.")
    timepoint: str = Field(isin=TIMEPOINTS, description="baseline, pre (infusion), post (infusion) or follow_up.")
    nprs: pl.Int64 = Field(nullable=True, ge=0, le=10, description="Numeric pain rating scale, 0 no pain – 10 worst.")
    function_score: pl.Int64 = Field(
        nullable=True, ge=0, le=10, description="Interference of pain with function, 0 none – 10 complete."
    )
    satisfaction: pl.Int64 = Field(nullable=True, ge=0, le=10, description="Satisfaction with treatment, 0–10.")
    daily_mme: pl.Float64 = Field(
        nullable=True, ge=0, le=2000, description="Daily opioid use in morphine milligram equivalents."
    )
    subjective_improvement: pl.Boolean = Field(nullable=True, description="Patient reports feeling better.")

    @pa.dataframe_check(name="assessment_id_unique_in_file")
    def assessment_id_unique(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(unique_in_export("assessment_id"))

    class Config:
        name = "assessments"
        strict = False
