"""Lay each patient's planned infusions on the calendar: induction weekly, maintenance about monthly.

An outside interruption (like the pandemic) postpones the next infusion for weeks, or ends the course. The end
of the data cuts every course short on 2026-10-31.
"""

from dataclasses import dataclass

import numpy as np

from .cohort import INDUCTION_INFUSIONS, CoursePlan
from .timeline import DATA_END, business_days


@dataclass(frozen=True)
class Schedule:
    """Infusions that happened by the end of the data (by patient, then number), and per-patient dates."""

    patient: np.ndarray  # patient index of each infusion
    number: np.ndarray  # 1-based infusion number within the patient
    day: np.ndarray  # datetime64[D]
    count: np.ndarray  # per patient: infusions that happened
    first_row: np.ndarray  # per patient: index of infusion 1 in the arrays above
    interrupted_on: np.ndarray  # per patient: when the missed infusion was due (NaT = not interrupted)
    resumed_on: np.ndarray  # per patient: first infusion after the interruption (NaT = none)
    course_ended: np.ndarray  # per patient: every infusion the plan allowed has happened


def _within_patient(cumulative: np.ndarray, first_row: np.ndarray) -> np.ndarray:
    """Turn a running total over all rows into one that restarts at each patient's first row."""
    return cumulative - cumulative[first_row]


def build_schedule(rng: np.random.Generator, plan: CoursePlan) -> Schedule:
    """Place every planned infusion on a working day and keep those on or before the end of the data."""
    planned = plan.planned_infusions
    patients = planned.size
    patient = np.repeat(np.arange(patients), planned)
    first_row = np.repeat(np.cumsum(planned) - planned, planned)
    number = np.arange(patient.size) - first_row + 1
    rows = patient.size

    gap = np.where(
        number == 1,
        0,
        np.where(number <= INDUCTION_INFUSIONS, rng.integers(6, 9, rows), rng.integers(25, 33, rows)),
    )
    interrupt_after = plan.interrupt_after[patient]
    missed = (interrupt_after > 0) & (number == interrupt_after + 1)
    resumes = plan.resumes[patient]
    delay = np.where(missed & resumes, rng.integers(56, 121, rows), 0)

    due = business_days(plan.first_day[patient] + _within_patient(np.cumsum(gap), first_row))
    day = business_days(plan.first_day[patient] + _within_patient(np.cumsum(gap + delay), first_row))

    interrupted_on = np.full(patients, np.datetime64("NaT"), dtype="datetime64[D]")
    interrupted_on[patient[missed]] = due[missed]
    interrupted_on[interrupted_on > DATA_END] = np.datetime64("NaT")
    resumed_on = np.full(patients, np.datetime64("NaT"), dtype="datetime64[D]")
    resumed_on[patient[missed & resumes]] = day[missed & resumes]
    resumed_on[resumed_on > DATA_END] = np.datetime64("NaT")

    # Days rise strictly within a patient, so what happened is a prefix of each patient's plan.
    happened = ((interrupt_after == 0) | resumes | (number <= interrupt_after)) & (day <= DATA_END)
    count = np.bincount(patient[happened], minlength=patients)
    allowed = np.where((plan.interrupt_after > 0) & ~plan.resumes, plan.interrupt_after, planned)
    return Schedule(
        patient=patient[happened],
        number=number[happened],
        day=day[happened],
        count=count,
        first_row=np.cumsum(count) - count,
        interrupted_on=interrupted_on,
        resumed_on=resumed_on,
        course_ended=count == allowed,
    )
