"""infusions.csv: one row per IV ketamine session (planned length: see the protocol file)."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.polars import DataFrameModel, Field

from schemas.enums import STOP_REASONS
from schemas.rules import Reference, RowRule, unique_in_export

MAX_SESSION_HOURS = 12

_duration_h = (pl.col("end_time") - pl.col("start_time")).dt.total_seconds() / 3600

ROW_RULES = (
    RowRule("infusion_id_unique_in_file", ("infusion_id",), "infusion_id appears more than once in the file"),
    RowRule("end_after_start", ("start_time", "end_time"), "end_time must be after start_time"),
    RowRule(
        "duration_at_most_12_h",
        ("start_time", "end_time"),
        f"the session lasts more than {MAX_SESSION_HOURS} h between start_time and end_time",
    ),
    RowRule("max_rate_at_least_initial", ("initial_rate_mg_h", "max_rate_mg_h"),
            "max_rate_mg_h is below initial_rate_mg_h"),
    RowRule(
        "total_dose_within_max_rate_times_duration",
        ("total_dose_mg", "max_rate_mg_h", "start_time", "end_time"),
        "total_dose_mg is more than max_rate_mg_h × session duration could deliver",
    ),
)

REFERENCES = (
    Reference("patient_exists", ("patient_id",), "patients", ("patient_id",), "patient_id is not in patients.csv"),
)


class InfusionContract(DataFrameModel):
    """One infusion session. The protocol's plausibility limit on rates is added at run time."""

    infusion_id: str = Field(nullable=False, description="Site's infusion code.")
    patient_id: str = Field(nullable=False, description="Must be a patient of the same export.")
    start_time: pl.Datetime = Field(description="Infusion start, local time.")
    end_time: pl.Datetime = Field(description="Infusion end, local time; after the start.")
    initial_rate_mg_h: pl.Float64 = Field(gt=0, description="Starting rate of the session, mg/h.")
    max_rate_mg_h: pl.Float64 = Field(gt=0, description="Highest rate reached in the session, mg/h.")
    total_dose_mg: pl.Float64 = Field(nullable=True, ge=0, description="Ketamine delivered in the session, mg.")
    completed: pl.Boolean = Field(description="Whether the session ran as planned.")
    stop_reason: str = Field(nullable=True, isin=STOP_REASONS, description="Why an incomplete session stopped.")
    relief_duration_days: pl.Int64 = Field(
        nullable=True, ge=0, description="Days of pain relief the patient reported after this infusion."
    )

    @pa.dataframe_check(name="infusion_id_unique_in_file")
    def infusion_id_unique(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(unique_in_export("infusion_id"))

    @pa.dataframe_check(name="end_after_start")
    def end_after_start(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select((pl.col("end_time") > pl.col("start_time")).fill_null(True))

    @pa.dataframe_check(name="duration_at_most_12_h")
    def duration_at_most_12_h(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select((_duration_h <= MAX_SESSION_HOURS).fill_null(True))

    @pa.dataframe_check(name="max_rate_at_least_initial")
    def max_rate_at_least_initial(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select((pl.col("max_rate_mg_h") >= pl.col("initial_rate_mg_h")).fill_null(True))

    @pa.dataframe_check(name="total_dose_within_max_rate_times_duration")
    def total_dose_deliverable(cls, data: pa.PolarsData) -> pl.LazyFrame:
        # A tolerance of 1e-6 mg keeps exact products (25 mg/h × 4 h = 100 mg) valid despite float rounding.
        deliverable = pl.col("max_rate_mg_h") * _duration_h + 1e-6
        return data.lazyframe.select((pl.col("total_dose_mg") <= deliverable).fill_null(True))

    class Config:
        name = "infusions"
        strict = False
