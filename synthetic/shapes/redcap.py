"""A REDCap longitudinal project's flat CSV export (raw data): one row per record, event and repeating
instance; coded choices as numbers; a checkbox field for the seriousness criteria; `*_complete` columns and
missing-data codes in numeric and date fields (mapping: sites/site_NN_redcap.yaml)."""

from pathlib import Path

import numpy as np
import polars as pl

from ..contract import (
    AE_ACTIONS,
    AE_OUTCOMES,
    AE_TERMS,
    CANCER_TYPES,
    CNP_ETIOLOGIES,
    DISPOSITION_REASONS,
    DISPOSITION_STATUSES,
    SEXES,
    STOP_REASONS,
    TIMEPOINTS,
)
from .text import recode, respell_date, with_present

FILE = "ketamine_registry_export.csv"
EVENTS = ("baseline_arm_1", "treatment_arm_1", "follow_up_arm_1")
# Where each table's rows live: event (or the column whose value decides it) and repeating instrument.
INSTRUMENTS = {
    "patients": "", "infusions": "infusion", "assessments": "pain_assessment", "adverse_events": "adverse_event",
    "dispositions": "disposition",
}
FORMS = {"patients": "demographics", **{t: i for t, i in INSTRUMENTS.items() if i}}
FIELDS = {
    "patients": {
        "patient_id": "record_id", "sex": "sex", "birth_year": "birth_year", "weight_kg": "weight",
        "cancer_type": "cancer_type", "metastatic": "metastatic", "cnp_etiology": "cnp_cause",
        "prior_neuropathy": "prior_neuropathy", "cnp_diagnosis_date": "cnp_dx_date",
    },
    "infusions": {
        "infusion_id": "inf_id", "patient_id": "record_id", "start_time": "inf_start", "end_time": "inf_end",
        "initial_rate_mg_h": "inf_rate_initial", "max_rate_mg_h": "inf_rate_max", "total_dose_mg": "inf_dose_total",
        "completed": "inf_completed", "stop_reason": "inf_stop_reason", "relief_duration_days": "inf_relief_days",
    },
    "assessments": {
        "assessment_id": "pa_id", "patient_id": "record_id", "infusion_id": "pa_infusion", "assessed_at": "pa_datetime",
        "timepoint": "pa_timepoint", "nprs": "pa_nprs", "function_score": "pa_function",
        "satisfaction": "pa_satisfaction", "daily_mme": "pa_mme", "subjective_improvement": "pa_better",
    },
    "adverse_events": {
        "ae_id": "ae_id", "patient_id": "record_id", "infusion_id": "ae_infusion", "onset_time": "ae_onset",
        "term": "ae_term", "category": "ae_body_system", "grade": "ae_grade", "serious": "ae_sae",
        "action_taken": "ae_action", "outcome": "ae_outcome",
    },
    "dispositions": {"patient_id": "record_id", "event_date": "disp_date", "status": "disp_status",
                     "reason": "disp_reason"},
}
# The seriousness criteria checkbox: a serious event is ticked "hospitalisation" (3), a fatal one "death" (1).
SAE_CHECKBOX = ("ae_sae_crit___1", "ae_sae_crit___2", "ae_sae_crit___3")
YES_NO = {"true": "1", "false": "0"}
NUMERIC_OR_DATE = {
    "weight", "cnp_dx_date", "inf_dose_total", "inf_relief_days", "pa_nprs", "pa_function", "pa_satisfaction",
    "pa_mme", "ae_onset",
}
DATETIME = "%Y-%m-%d %H:%M"


def choices(codes: tuple[str, ...]) -> dict[str, str]:
    """Contract codes → REDCap's numbered choices (1, 2, …), in the contract's order."""
    return {code: str(i) for i, code in enumerate(codes, start=1)}


CHOICES = {
    "sex": choices(SEXES), "cancer_type": choices(CANCER_TYPES), "cnp_cause": choices(CNP_ETIOLOGIES),
    "inf_stop_reason": choices(STOP_REASONS), "pa_timepoint": choices(TIMEPOINTS), "ae_term": choices(AE_TERMS),
    "ae_action": choices(AE_ACTIONS), "ae_outcome": choices(AE_OUTCOMES), "disp_status": choices(DISPOSITION_STATUSES),
    "disp_reason": choices(DISPOSITION_REASONS),
}
BOOLEANS = ("metastatic", "prior_neuropathy", "inf_completed", "pa_better")


def _event(table: str, frame: pl.DataFrame) -> pl.Expr:
    if table == "patients":
        return pl.lit(EVENTS[0])
    if table == "dispositions":
        return pl.lit(EVENTS[2])
    if table == "assessments":
        return (
            pl.when(pl.col("pa_timepoint") == CHOICES["pa_timepoint"]["baseline"]).then(pl.lit(EVENTS[0]))
            .when(pl.col("pa_timepoint") == CHOICES["pa_timepoint"]["follow_up"]).then(pl.lit(EVENTS[2]))
            .otherwise(pl.lit(EVENTS[1]))
        )
    return pl.lit(EVENTS[1])


def _sae(frame: pl.DataFrame) -> list[pl.Expr]:
    serious, fatal = pl.col("ae_sae"), pl.col("ae_outcome") == CHOICES["ae_outcome"]["fatal"]
    unknown = ~serious.is_in(["true", "false"])
    return [
        pl.when(unknown).then(None).when((serious == "true") & fatal).then(pl.lit("1")).otherwise(pl.lit("0"))
        .alias(SAE_CHECKBOX[0]),
        pl.when(unknown).then(None).otherwise(pl.lit("0")).alias(SAE_CHECKBOX[1]),
        pl.when(unknown).then(None).when((serious == "true") & ~fatal.fill_null(False)).then(pl.lit("1"))
        .otherwise(pl.lit("0")).alias(SAE_CHECKBOX[2]),
    ]


def _missing_codes(frame: pl.DataFrame) -> pl.DataFrame:
    # REDCap projects record "not asked" and "unknown" explicitly; an empty numeric or date field is one of them.
    code = pl.Series(np.where(np.arange(frame.height) % 2 == 0, "UNK", "NASK"))
    return frame.with_columns(
        pl.when(pl.col(c).is_null()).then(pl.lit(code)).otherwise(pl.col(c)).alias(c)
        for c in NUMERIC_OR_DATE if c in frame.columns
    )


def write(folder: Path, tables: dict[str, pl.DataFrame], site_id: str) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Write the export; return its file and, per table, the line of each of the table's rows."""
    parts = []
    for order, (table, frame) in enumerate(tables.items()):
        frame = frame.rename({c: FIELDS[table][c] for c in frame.columns if c in FIELDS[table]})
        frame = with_present(
            frame,
            *[recode(f, CHOICES[f]) for f in CHOICES],
            *[recode(f, YES_NO) for f in BOOLEANS],
            respell_date("inf_start", DATETIME, True), respell_date("inf_end", DATETIME, True),
            respell_date("pa_datetime", DATETIME, True), respell_date("ae_onset", DATETIME, True),
        )
        if table == "adverse_events":
            frame = frame.with_columns(_sae(frame)).drop("ae_sae")
        frame = _missing_codes(frame).with_columns(
            _event(table, frame).alias("redcap_event_name"),
            pl.lit(INSTRUMENTS[table] or None, pl.String).alias("redcap_repeat_instrument"),
            pl.lit("2").alias(f"{FORMS[table]}_complete"),
            pl.lit(order).alias("_order"),
            pl.int_range(pl.len()).alias("_row"),
        )
        parts.append(frame)
    data = pl.concat(parts, how="diagonal_relaxed")
    event_rank = pl.col("redcap_event_name").replace_strict({e: i for i, e in enumerate(EVENTS)}, return_dtype=pl.Int64)
    data = data.sort(pl.col("record_id").is_null(), "record_id", event_rank, "_order", "_row", maintain_order=True)
    data = data.with_columns(
        pl.when(pl.col("redcap_repeat_instrument").is_not_null())
        .then(pl.int_range(1, pl.len() + 1).over("record_id", "redcap_event_name", "redcap_repeat_instrument"))
        .cast(pl.String).alias("redcap_repeat_instance"),
        pl.lit(site_id).alias("redcap_data_access_group"),
        pl.int_range(2, pl.len() + 2).alias("_line"),
    )
    lines = {
        table: data.filter(pl.col("_order") == order).sort("_row")["_line"].to_numpy()
        for order, table in enumerate(tables)
    }
    leading = ["record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance",
               "redcap_data_access_group"]
    columns = leading + [c for c in data.columns if c not in leading and not c.startswith("_")]
    data.select(columns).write_csv(folder / FILE, line_terminator="\n", null_value="", quote_style="necessary")
    return {table: FILE for table in tables}, lines
