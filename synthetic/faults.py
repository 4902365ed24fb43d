"""The catalogue of faults: for every file, the ways a row can break the site-export contract v1.

Each kind changes one row so that it breaks exactly one rule of the contract, on the column the manifest
names. Where a change would break a second rule as a side effect, the kind also blanks the optional value
that rule reads (said next to the kind). Rows that reference a faulty row (an infusion of a patient whose
row lost its id) are not faulty themselves: quarantining them is the pipeline's business.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from .contract import AE_TERM_CATEGORY
from .writer import DATETIME_FORMAT

Values = list[str | None]


@dataclass(frozen=True)
class FaultContext:
    """What a fault may need beyond its own row: rows left intact, and references known to be sound."""

    rng: np.random.Generator
    unfaulted: np.ndarray  # rows of the current file that receive no fault
    clean_patients: frozenset[str]  # patient ids on intact, unique rows of patients.csv
    clean_infusion_ids: np.ndarray  # infusion ids on intact, unique rows of a clean patient
    clean_infusion_patients: np.ndarray  # their patients


# A fault returns the rows it changed and, per column, the new text of those rows (None = empty cell).
Mutation = tuple[np.ndarray, dict[str, Values]]
Mutate = Callable[[pl.DataFrame, np.ndarray, FaultContext], Mutation]


@dataclass(frozen=True)
class FaultKind:
    """One way to break a row: its name in the manifest, the column it breaks, and how."""

    kind: str
    column: str
    mutate: Mutate


def _iso(moment: datetime) -> str:
    return moment.strftime(DATETIME_FORMAT)


def _cells(frame: pl.DataFrame, column: str, rows: np.ndarray) -> list:
    return frame[column].gather(rows).to_list()


def _set(column: str, value: str | None) -> Mutate:
    """Put the same text (or an empty cell) into every chosen row."""
    return lambda frame, rows, ctx: (rows, {column: [value] * rows.size})


def _alternate(column: str, *values: str) -> Mutate:
    """Put the given texts into the chosen rows in turn (e.g. one above and one below a range)."""
    return lambda frame, rows, ctx: (rows, {column: [values[i % len(values)] for i in range(rows.size)]})


DUPLICATE_ID = "duplicate_id"


def duplicated_rows(unfaulted: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The row whose id each duplicate copies: the nearest earlier intact row (row 0 always is one)."""
    return unfaulted[np.searchsorted(unfaulted, rows) - 1]


def _duplicate(column: str) -> Mutate:
    """Copy the id of the nearest earlier intact row: the later line is the duplicate."""

    def mutate(frame: pl.DataFrame, rows: np.ndarray, ctx: FaultContext) -> Mutation:
        return rows, {column: _cells(frame, column, duplicated_rows(ctx.unfaulted, rows))}

    return mutate


def _unknown_ids(frame: pl.DataFrame, rows: np.ndarray) -> Values:
    # Generated ids are a letter and digits, so a second letter makes an id no patient has.
    return [f"{pid[0]}X{pid[1:]}" for pid in _cells(frame, "patient_id", rows)]


def _unknown_patient(frame: pl.DataFrame, rows: np.ndarray, ctx: FaultContext) -> Mutation:
    return rows, {"patient_id": _unknown_ids(frame, rows)}


def _unknown_patient_unlinked(frame: pl.DataFrame, rows: np.ndarray, ctx: FaultContext) -> Mutation:
    # The linked infusion would now belong to another patient, a second broken rule: unlink it.
    return rows, {"patient_id": _unknown_ids(frame, rows), "infusion_id": [None] * rows.size}


def _unknown_infusion(frame: pl.DataFrame, rows: np.ndarray, ctx: FaultContext) -> Mutation:
    # Infusions are numbered from 1, so infusion 0 of the patient does not exist.
    return rows, {"infusion_id": [f"{pid}-I0" for pid in _cells(frame, "patient_id", rows)]}


def _infusion_of_other_patient(frame: pl.DataFrame, rows: np.ndarray, ctx: FaultContext) -> Mutation:
    ids, owners = ctx.clean_infusion_ids, ctx.clean_infusion_patients
    done, values = [], []
    for row, patient in zip(rows, _cells(frame, "patient_id", rows), strict=True):
        if ids.size == 0:
            break
        start = int(ctx.rng.integers(ids.size))
        for step in range(ids.size):
            candidate = (start + step) % ids.size
            if owners[candidate] != patient:
                done.append(row)
                values.append(str(ids[candidate]))
                break
    return np.array(done, dtype=np.int64), {"infusion_id": values}


def _birth_year_not_a_number(frame: pl.DataFrame, rows: np.ndarray, ctx: FaultContext) -> Mutation:
    # A typed letter for a digit, as in 19S7.
    return rows, {"birth_year": [f"{y // 100}S{y % 10}" for y in _cells(frame, "birth_year", rows)]}


def _date_wrong_format(frame: pl.DataFrame, rows: np.ndarray, ctx: FaultContext) -> Mutation:
    # Day-first, and a day February never has, so no lenient parser can rescue it.
    days = _cells(frame, "cnp_diagnosis_date", rows)
    return rows, {"cnp_diagnosis_date": [f"31/02/{(d.year if d else 2025)}" for d in days]}


def _end_before_start(frame: pl.DataFrame, rows: np.ndarray, ctx: FaultContext) -> Mutation:
    starts = _cells(frame, "start_time", rows)
    ends = [_iso(s - timedelta(minutes=30 + 15 * (i % 4))) for i, s in enumerate(starts)]
    # A negative duration would also put any dose above max rate × duration: leave the dose empty.
    return rows, {"end_time": ends, "total_dose_mg": [None] * rows.size}


def _duration_over_12h(frame: pl.DataFrame, rows: np.ndarray, ctx: FaultContext) -> Mutation:
    starts = _cells(frame, "start_time", rows)
    ends = [_iso(s + timedelta(hours=13, minutes=15 * (i % 8))) for i, s in enumerate(starts)]
    return rows, {"end_time": ends}


def _max_below_initial(frame: pl.DataFrame, rows: np.ndarray, ctx: FaultContext) -> Mutation:
    # Raise the initial rate rather than lower the maximum, which could push the dose above max × duration.
    return rows, {"initial_rate_mg_h": [f"{m + 2.5:.1f}" for m in _cells(frame, "max_rate_mg_h", rows)]}


def _rate_above_plausible(frame: pl.DataFrame, rows: np.ndarray, ctx: FaultContext) -> Mutation:
    # A unit error: two zeros too many (at least 1500 mg/h for the lowest maximum, 15 mg/h).
    return rows, {"max_rate_mg_h": [f"{m * 100:.1f}" for m in _cells(frame, "max_rate_mg_h", rows)]}


def _dose_above_max(frame: pl.DataFrame, rows: np.ndarray, ctx: FaultContext) -> Mutation:
    starts, ends = _cells(frame, "start_time", rows), _cells(frame, "end_time", rows)
    rates = _cells(frame, "max_rate_mg_h", rows)
    doses = [
        f"{math.ceil(rate * (end - start).total_seconds() / 3600 * 1.5) + 1:.1f}"
        for start, end, rate in zip(starts, ends, rates, strict=True)
    ]
    return rows, {"total_dose_mg": doses}


def _unparseable_start(frame: pl.DataFrame, rows: np.ndarray, ctx: FaultContext) -> Mutation:
    # Day-first with a day February never has: no parser, lenient or strict, makes a datetime of it.
    starts = _cells(frame, "start_time", rows)
    return rows, {"start_time": [f"30/02/{s.year} {s:%H:%M}" for s in starts]}


def _unknown_term(frame: pl.DataFrame, rows: np.ndarray, ctx: FaultContext) -> Mutation:
    # A real adverse event outside the code list; the category is cleared, as it cannot agree or disagree.
    return rows, {"term": ["pruritus"] * rows.size, "category": [None] * rows.size}


# The category each term is misfiled under: a real category, never the term's own.
_WRONG_CATEGORY = {
    "neurological": "gastrointestinal",
    "psychiatric": "cardiovascular",
    "gastrointestinal": "neurological",
    "cardiovascular": "respiratory",
    "respiratory": "neurological",
}


def _category_contradicts_term(frame: pl.DataFrame, rows: np.ndarray, ctx: FaultContext) -> Mutation:
    terms = _cells(frame, "term", rows)
    # Term `other` may carry any category, so such rows get a specific term first.
    terms = [term if term != "other" else "headache" for term in terms]
    return rows, {"term": terms, "category": [_WRONG_CATEGORY[AE_TERM_CATEGORY[term]] for term in terms]}


FAULT_KINDS: dict[str, tuple[FaultKind, ...]] = {
    "patients": (
        FaultKind("missing_id", "patient_id", _set("patient_id", None)),
        FaultKind(DUPLICATE_ID, "patient_id", _duplicate("patient_id")),
        FaultKind("invalid_sex", "sex", _set("sex", "W")),
        FaultKind("birth_year_out_of_range", "birth_year", _alternate("birth_year", "1850", "2099")),
        FaultKind("birth_year_not_a_number", "birth_year", _birth_year_not_a_number),
        FaultKind("weight_out_of_range", "weight_kg", _alternate("weight_kg", "700.0", "7.0")),
        FaultKind("invalid_cancer_type", "cancer_type", _set("cancer_type", "melanoma")),
        FaultKind("invalid_cnp_etiology", "cnp_etiology", _set("cnp_etiology", "chemotherapy")),
        FaultKind("missing_prior_neuropathy", "prior_neuropathy", _set("prior_neuropathy", None)),
        FaultKind("prior_neuropathy_not_boolean", "prior_neuropathy", _set("prior_neuropathy", "yes")),
        FaultKind("date_in_future", "cnp_diagnosis_date", _set("cnp_diagnosis_date", "2031-01-01")),
        FaultKind("date_wrong_format", "cnp_diagnosis_date", _date_wrong_format),
    ),
    "infusions": (
        FaultKind(DUPLICATE_ID, "infusion_id", _duplicate("infusion_id")),
        FaultKind("unknown_patient", "patient_id", _unknown_patient),
        FaultKind("end_before_start", "end_time", _end_before_start),
        FaultKind("duration_over_12h", "end_time", _duration_over_12h),
        FaultKind("rate_not_positive", "initial_rate_mg_h", _alternate("initial_rate_mg_h", "0.0", "-10.0")),
        FaultKind("max_below_initial", "initial_rate_mg_h", _max_below_initial),
        FaultKind("rate_above_plausible", "max_rate_mg_h", _rate_above_plausible),
        FaultKind("dose_above_max", "total_dose_mg", _dose_above_max),
        FaultKind("missing_completed", "completed", _set("completed", None)),
        FaultKind("invalid_stop_reason", "stop_reason", _set("stop_reason", "pump_failure")),
        FaultKind("negative_relief_duration", "relief_duration_days", _set("relief_duration_days", "-7")),
        FaultKind("unparseable_datetime", "start_time", _unparseable_start),
    ),
    "assessments": (
        FaultKind(DUPLICATE_ID, "assessment_id", _duplicate("assessment_id")),
        FaultKind("unknown_patient", "patient_id", _unknown_patient_unlinked),
        FaultKind("unknown_infusion", "infusion_id", _unknown_infusion),
        FaultKind("missing_assessed_at", "assessed_at", _set("assessed_at", None)),
        FaultKind("invalid_timepoint", "timepoint", _set("timepoint", "during")),
        FaultKind("nprs_out_of_range", "nprs", _alternate("nprs", "11", "-1")),
        FaultKind("nprs_not_integer", "nprs", _set("nprs", "7.5")),
        FaultKind("function_score_out_of_range", "function_score", _alternate("function_score", "12", "-1")),
        FaultKind("satisfaction_out_of_range", "satisfaction", _alternate("satisfaction", "11", "-2")),
        FaultKind("daily_mme_out_of_range", "daily_mme", _alternate("daily_mme", "2500.0", "-30.0")),
        FaultKind(
            "invalid_subjective_improvement",
            "subjective_improvement",
            _set("subjective_improvement", "unsure"),
        ),
    ),
    "adverse_events": (
        FaultKind(DUPLICATE_ID, "ae_id", _duplicate("ae_id")),
        FaultKind("infusion_of_other_patient", "infusion_id", _infusion_of_other_patient),
        FaultKind("unknown_term", "term", _unknown_term),
        FaultKind("category_contradicts_term", "category", _category_contradicts_term),
        FaultKind("grade_out_of_range", "grade", _alternate("grade", "0", "6")),
        FaultKind("missing_serious", "serious", _set("serious", None)),
        FaultKind("invalid_action_taken", "action_taken", _set("action_taken", "dose_not_changed")),
        FaultKind("invalid_outcome", "outcome", _set("outcome", "recovered")),
    ),
    "dispositions": (
        FaultKind("unknown_patient", "patient_id", _unknown_patient),
        FaultKind("missing_event_date", "event_date", _set("event_date", None)),
        FaultKind("invalid_status", "status", _set("status", "on_hold")),
        FaultKind("invalid_reason", "reason", _set("reason", "pandemic")),
    ),
}
