"""A hospital's Excel workbook: a sheet per table, English labels, Y/N, dd/mm/yyyy dates, weight in lb and
infusion times as date-time cells in UTC (mapping: sites/site_NN_excel.yaml)."""

from datetime import datetime
from pathlib import Path

import polars as pl
from openpyxl import Workbook

from .text import ISO_DATETIME, recode, respell_date, with_present

WORKBOOK = "registry.xlsx"
SHEETS = {
    "patients": "Patients", "infusions": "Infusions", "assessments": "Pain assessments",
    "adverse_events": "Adverse events", "dispositions": "Status changes",
}
COLUMNS = {
    "patients": {
        "patient_id": "Patient ID", "sex": "Sex", "birth_year": "Year of birth", "weight_kg": "Weight (lb)",
        "cancer_type": "Cancer", "metastatic": "Metastatic", "cnp_etiology": "Cause of CNP",
        "prior_neuropathy": "Prior neuropathy", "cnp_diagnosis_date": "CNP diagnosed",
    },
    "infusions": {
        "infusion_id": "Infusion ID", "patient_id": "Patient ID", "start_time": "Start (UTC)",
        "end_time": "End (UTC)", "initial_rate_mg_h": "Initial rate (mg/h)", "max_rate_mg_h": "Max rate (mg/h)",
        "total_dose_mg": "Total dose (mg)",
        "completed": "Completed", "stop_reason": "Stop reason", "relief_duration_days": "Relief (days)",
    },
    "assessments": {
        "assessment_id": "Assessment ID", "patient_id": "Patient ID", "infusion_id": "Infusion ID",
        "assessed_at": "Assessed (UTC)", "timepoint": "Timepoint", "nprs": "NPRS", "function_score": "Function",
        "satisfaction": "Satisfaction", "daily_mme": "Daily MME", "subjective_improvement": "Feels better",
    },
    "adverse_events": {
        "ae_id": "AE ID", "patient_id": "Patient ID", "infusion_id": "Infusion ID", "onset_time": "Onset (UTC)",
        "term": "Event", "category": "Body system", "grade": "CTCAE grade", "serious": "Serious",
        "action_taken": "Action", "outcome": "Outcome",
    },
    "dispositions": {"patient_id": "Patient ID", "event_date": "Date", "status": "Status", "reason": "Reason"},
}
YES_NO = {"true": "Y", "false": "N"}
SEX = {"F": "Female", "M": "Male", "X": "Other", "U": "Unknown"}
DATE = "%d/%m/%Y"
LOCAL_ZONE = "Europe/London"
LB_IN_KG = 0.45359237
DATETIME_COLUMNS = {"start_time", "end_time", "assessed_at", "onset_time"}
NUMBER_COLUMNS = {
    "birth_year", "weight_kg", "initial_rate_mg_h", "max_rate_mg_h", "total_dose_mg", "relief_duration_days",
    "nprs", "function_score", "satisfaction", "daily_mme", "grade",
}


def _pounds(column: str) -> pl.Expr:
    kg = pl.col(column).cast(pl.Float64, strict=False)
    return pl.coalesce((kg / LB_IN_KG).round(2).cast(pl.String), pl.col(column)).alias(column)


def _cells(frame: pl.DataFrame, column: str) -> list[object]:
    """Cell values: date-times as UTC date-time cells, numbers as numbers, anything unreadable as text."""
    text = frame[column]
    if column in DATETIME_COLUMNS:
        utc = (
            text.str.strptime(pl.Datetime("us"), ISO_DATETIME, strict=False)
            .dt.replace_time_zone(LOCAL_ZONE, ambiguous="earliest", non_existent="null")
            .dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        )
        return [t if t is not None else s for t, s in zip(utc.to_list(), text.to_list(), strict=True)]
    if column in NUMBER_COLUMNS:
        numbers = text.cast(pl.Float64, strict=False).to_list()
        return [
            (int(n) if n.is_integer() and "." not in s else n) if n is not None else s
            for n, s in zip(numbers, text.to_list(), strict=True)
        ]
    return text.to_list()


def write(folder: Path, tables: dict[str, pl.DataFrame]) -> dict[str, str]:
    """Write the workbook; return the sheet of each table (`registry.xlsx[Sheet]`)."""
    workbook = Workbook()
    workbook.remove(workbook.active)
    for table, frame in tables.items():
        frame = with_present(
            frame,
            recode("sex", SEX), _pounds("weight_kg"), recode("metastatic", YES_NO), recode("prior_neuropathy", YES_NO),
            respell_date("cnp_diagnosis_date", DATE), recode("completed", YES_NO),
            recode("subjective_improvement", YES_NO), recode("serious", YES_NO), respell_date("event_date", DATE),
        )
        sheet = workbook.create_sheet(SHEETS[table])
        sheet.append([COLUMNS[table].get(c, c) for c in frame.columns])
        columns = [_cells(frame, c) for c in frame.columns]
        for row in zip(*columns, strict=True):
            sheet.append(list(row))
    # A fixed creation time keeps the workbook byte-identical from run to run.
    workbook.properties.created = workbook.properties.modified = datetime(2026, 11, 1)
    workbook.save(folder / WORKBOOK)
    return {table: f"{WORKBOOK}[{name}]" for table, name in SHEETS.items()}
