"""Simulate what happened to each patient's treatment: continuing, interrupted, resumed, discontinued."""

import numpy as np
import polars as pl

from .cohort import INDUCTION_INFUSIONS, CoursePlan
from .contract import DISPOSITION_REASONS, DISPOSITION_STATUSES
from .frames import coded, dates
from .schedule import Schedule
from .timeline import DATA_END, business_days

NO_REASON = -1
# Responders who stop do so for unsatisfactory relief or adverse events (26.7 % of the study's responders);
# non-responders stop after induction, almost always for lack of relief.
RESPONDER_REASONS = {"unsatisfactory_relief": 0.6, "adverse_event": 0.4}
NON_RESPONDER_REASONS = {"unsatisfactory_relief": 0.85, "patient_choice": 0.10, "other": 0.05}


def _reasons(rng: np.random.Generator, mix: dict[str, float], size: int) -> np.ndarray:
    codes = np.array([DISPOSITION_REASONS.index(reason) for reason in mix])
    return rng.choice(codes, size, p=list(mix.values()))


def simulate_dispositions(
    rng: np.random.Generator, plan: CoursePlan, schedule: Schedule, patient_id: pl.Series
) -> pl.DataFrame:
    """The dispositions table of a site, sorted by patient and date."""
    status = DISPOSITION_STATUSES.index
    # Responders are told they continue into maintenance within a week after infusion 3.
    continuing = np.flatnonzero(plan.responder & (schedule.count >= INDUCTION_INFUSIONS))
    third = schedule.day[schedule.first_row[continuing] + INDUCTION_INFUSIONS - 1]
    continuing_day = business_days(third + rng.integers(1, 8, continuing.size))

    interrupted = np.flatnonzero(~np.isnat(schedule.interrupted_on))
    resumed = np.flatnonzero(~np.isnat(schedule.resumed_on))

    never_resumed = (plan.interrupt_after > 0) & ~plan.resumes
    stopping = np.flatnonzero(plan.discontinues & schedule.course_ended & ~never_resumed)
    last_day = schedule.day[schedule.first_row[stopping] + schedule.count[stopping] - 1]
    stopping_day = business_days(last_day + rng.integers(14, 36, stopping.size))
    stopping_reason = np.where(
        plan.responder[stopping],
        _reasons(rng, RESPONDER_REASONS, stopping.size),
        _reasons(rng, NON_RESPONDER_REASONS, stopping.size),
    )

    patient = np.concatenate([continuing, interrupted, resumed, stopping])
    day = np.concatenate(
        [continuing_day, schedule.interrupted_on[interrupted], schedule.resumed_on[resumed], stopping_day]
    )
    code = np.repeat(
        [status("continuing"), status("interrupted"), status("resumed"), status("discontinued")],
        [continuing.size, interrupted.size, resumed.size, stopping.size],
    )
    reason = np.concatenate(
        [
            np.full(continuing.size, NO_REASON),
            np.full(interrupted.size, DISPOSITION_REASONS.index("external_interruption")),
            np.full(resumed.size, NO_REASON),
            stopping_reason,
        ]
    )
    keep = day <= DATA_END
    order = np.lexsort((code[keep], day[keep], patient[keep]))
    patient, day, code, reason = (
        patient[keep][order],
        day[keep][order],
        code[keep][order],
        reason[keep][order],
    )
    return pl.DataFrame(
        [
            patient_id.gather(patient),
            dates("event_date", day),
            coded("status", code, DISPOSITION_STATUSES),
            coded("reason", np.maximum(reason, 0), DISPOSITION_REASONS, reason != NO_REASON),
            dates("_visible_on", day),
        ]
    )
