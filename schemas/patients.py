"""patients.csv: one row per patient the site treated with IV ketamine for cancer-related neuropathic pain."""

from __future__ import annotations

import datetime as dt

import pandera.polars as pa
import polars as pl
from pandera.polars import DataFrameModel, Field

from schemas.enums import CANCER_TYPES, CNP_ETIOLOGIES, SEX
from schemas.rules import RowRule, unique_in_export

ROW_RULES = (
    RowRule("patient_id_unique_in_file", ("patient_id",), "patient_id appears more than once in the file"),
)


class PatientContract(DataFrameModel):
    """The site's record of a patient; the registry replaces patient_id by a keyed pseudonym."""

    patient_id: str = Field(nullable=False, description="Site's patient code; never leaves the quarantine.")
    sex: str = Field(isin=SEX, metadata={"when_missing": "U"}, description="F, M, X or U (unknown).")
    birth_year: pl.Int64 = Field(ge=1900, description="Year of birth only; full dates of birth are never kept.")
    weight_kg: pl.Float64 = Field(nullable=True, ge=25, le=300, description="Body weight, for dose per kg.")
    cancer_type: str = Field(isin=CANCER_TYPES, description="Primary cancer.")
    metastatic: pl.Boolean = Field(nullable=True, description="Metastatic disease at the first infusion.")
    cnp_etiology: str = Field(isin=CNP_ETIOLOGIES, description="Cause of the neuropathic pain.")
    prior_neuropathy: pl.Boolean = Field(
        description="Neuropathy before the cancer-related pain: kept, but outside the analysis cohort."
    )
    cnp_diagnosis_date: pl.Date = Field(nullable=True, description="Diagnosis of CNP; not in the future.")

    @pa.check("birth_year", name="birth_year_not_in_future")
    def birth_year_not_in_future(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key) <= dt.date.today().year)

    @pa.check("cnp_diagnosis_date", name="date_not_in_future")
    def diagnosis_not_in_future(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key) <= dt.date.today())

    @pa.dataframe_check(name="patient_id_unique_in_file")
    def patient_id_unique(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(unique_in_export("patient_id"))

    class Config:
        name = "patients"
        strict = False  # lineage and ignored columns travel alongside
