"""dispositions.csv: changes in a patient's course of treatment (IMMPACT's participant disposition)."""

from __future__ import annotations

import polars as pl
from pandera.polars import DataFrameModel, Field

from schemas.enums import DISPOSITION_REASONS, DISPOSITION_STATUSES
from schemas.rules import Reference, RowRule

ROW_RULES: tuple[RowRule, ...] = ()

REFERENCES = (
    Reference("patient_exists", ("patient_id",), "patients", ("patient_id",), "patient_id is not in patients.csv"),
)


class DispositionContract(DataFrameModel):
    """A dated change of status: treatment continuing, discontinued, interrupted or resumed."""

    patient_id: str = Field(nullable=False, description="Must be a patient of the same export.")
    event_date: pl.Date = Field(description="Date of the change.")
    status: str = Field(isin=DISPOSITION_STATUSES, description="continuing, discontinued, interrupted or resumed.")
    reason: str = Field(nullable=True, isin=DISPOSITION_REASONS, description="Why, for discontinued or interrupted.")

    class Config:
        name = "dispositions"
        strict = False
