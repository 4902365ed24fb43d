"""Simulate infusion sessions: titrated rates, 4-hour sessions, doses, and the relief patients report."""

from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from .cohort import INDUCTION_INFUSIONS, CoursePlan
from .contract import STOP_REASONS
from .frames import coded, dates, datetimes, optional
from .schedule import Schedule
from .sites import SiteProfile
from .timeline import at

NO_STOP = -1
# Infusion 1 starts at 10 mg/h and is titrated to at most 25 mg/h as tolerated.
FIRST_MAX_RATES = np.array([15.0, 17.5, 20.0, 22.5, 25.0])
FIRST_MAX_MIX = (0.10, 0.15, 0.30, 0.20, 0.25)
# Each later infusion goes a step higher as tolerated, up to 70 mg/h.
RATE_STEPS = np.array([0.0, 5.0, 10.0])
RATE_STEP_MIX = (0.25, 0.50, 0.25)
PROTOCOL_MAX_RATE = 70.0
# Natural protocol deviations: valid rows the registry should flag as deviations, never quarantine.
FIRST_ABOVE_PROTOCOL_SHARE = 0.02
FIRST_ABOVE_PROTOCOL_RATES = np.array([30.0, 35.0])
MAINTENANCE_ABOVE_PROTOCOL_SHARE = 0.015
MAINTENANCE_ABOVE_PROTOCOL_RATES = np.array([75.0, 80.0, 90.0, 100.0, 120.0])
SHORT_SESSION_SHARE = 0.01  # about 2 hours, stopped on purpose
LONG_SESSION_SHARE = 0.007  # about 7 hours
EARLY_REQUEST_STOP_SHARE = 0.012


@dataclass(frozen=True)
class Sessions:
    """One element per infusion that happened, aligned with the schedule's arrays."""

    patient: np.ndarray
    number: np.ndarray
    day: np.ndarray
    start: np.ndarray  # minutes since 1970-01-01
    minutes: np.ndarray  # duration
    initial_rate: np.ndarray
    max_rate: np.ndarray
    completed: np.ndarray
    stop_reason: np.ndarray  # code into STOP_REASONS, NO_STOP when none

    def stopped_at(self, stop_minute: np.ndarray, rng: np.random.Generator) -> "Sessions":
        """Sessions where an adverse event stopped the infusion at `stop_minute` (elsewhere a huge value)."""
        stopped = stop_minute < self.minutes
        # The pump is stopped and the patient observed a little longer before the session ends.
        minutes = np.where(stopped, stop_minute + rng.integers(5, 21, stopped.size), self.minutes)
        return replace(
            self,
            minutes=minutes,
            completed=self.completed & ~stopped,
            stop_reason=np.where(stopped, STOP_REASONS.index("adverse_event"), self.stop_reason),
        )


def _rates(rng: np.random.Generator, schedule: Schedule) -> tuple[np.ndarray, np.ndarray]:
    rows = schedule.patient.size
    first = schedule.number == 1
    first_max = rng.choice(FIRST_MAX_RATES, schedule.count.size, p=FIRST_MAX_MIX)[schedule.patient]
    steps = np.where(first, 0.0, rng.choice(RATE_STEPS, rows, p=RATE_STEP_MIX))
    climbed = np.cumsum(steps)
    climbed -= climbed[schedule.first_row[schedule.patient]]
    max_rate = np.minimum(PROTOCOL_MAX_RATE, first_max + climbed)
    deviation = rng.random(rows)
    above_first = first & (deviation < FIRST_ABOVE_PROTOCOL_SHARE)
    max_rate[above_first] = rng.choice(FIRST_ABOVE_PROTOCOL_RATES, above_first.sum())
    above_later = (schedule.number > INDUCTION_INFUSIONS) & (deviation < MAINTENANCE_ABOVE_PROTOCOL_SHARE)
    max_rate[above_later] = rng.choice(MAINTENANCE_ABOVE_PROTOCOL_RATES, above_later.sum())
    # Later sessions start at a fraction of the target and climb; rates move in 2.5 mg/h steps.
    later_initial = np.maximum(10.0, np.floor(max_rate * rng.uniform(0.3, 0.6, rows) / 2.5) * 2.5)
    return np.where(first, 10.0, later_initial), max_rate


def plan_sessions(rng: np.random.Generator, schedule: Schedule) -> Sessions:
    """Rates, start times and durations of every infusion, before adverse events stop any of them."""
    rows = schedule.patient.size
    initial_rate, max_rate = _rates(rng, schedule)
    start = at(schedule.day, 8 * 60 + 15 * rng.integers(0, 19, rows))  # 08:00 … 12:30
    minutes = 240 + np.clip(np.round(rng.normal(0, 7, rows)), -15, 15).astype(np.int64)
    completed = np.ones(rows, dtype=bool)
    stop_reason = np.full(rows, NO_STOP)

    kind = rng.random(rows)
    short = kind < SHORT_SESSION_SHARE
    minutes[short] = 120 + rng.integers(-10, 11, short.sum())
    completed[short] = False
    stop_reason[short] = np.where(
        rng.random(short.sum()) < 0.6,
        STOP_REASONS.index("clinical_decision"),
        STOP_REASONS.index("patient_request"),
    )
    long = (kind >= SHORT_SESSION_SHARE) & (kind < SHORT_SESSION_SHARE + LONG_SESSION_SHARE)
    minutes[long] = 420 + rng.integers(-10, 11, long.sum())
    # Another slice of the same draw, so that no session is both short or long and stopped on request.
    request = (kind >= 0.5) & (kind < 0.5 + EARLY_REQUEST_STOP_SHARE)
    minutes[request] = rng.integers(90, 201, request.sum())
    completed[request] = False
    stop_reason[request] = np.where(
        rng.random(request.sum()) < 0.8, STOP_REASONS.index("patient_request"), STOP_REASONS.index("other")
    )
    return Sessions(
        patient=schedule.patient,
        number=schedule.number,
        day=schedule.day,
        start=start,
        minutes=minutes,
        initial_rate=initial_rate,
        max_rate=max_rate,
        completed=completed,
        stop_reason=stop_reason,
    )


def infusion_table(
    rng: np.random.Generator,
    sessions: Sessions,
    plan: CoursePlan,
    patient_id: pl.Series,
    infusion_id: pl.Series,
    profile: SiteProfile,
) -> pl.DataFrame:
    """The infusions table of a site, with the helper columns a snapshot needs."""
    rows = sessions.patient.size
    hours = sessions.minutes / 60
    # The rate climbs from the initial to the maximum during the session, with short pauses, so the dose
    # always stays below max rate × duration.
    mean_rate = sessions.initial_rate + (sessions.max_rate - sessions.initial_rate) * rng.uniform(0.45, 0.85, rows)
    dose = np.floor(10 * hours * mean_rate * rng.uniform(0.92, 1.0, rows)) / 10

    patient = sessions.patient
    responding = plan.responder[patient] & (sessions.number >= plan.response_at[patient])
    relief = np.where(
        responding,
        np.where(plan.long_relief[patient], rng.integers(22, 46, rows), rng.integers(5, 21, rows)),
        rng.integers(0, 5, rows),
    )
    has_relief = rng.random(rows) < profile.relief_duration_days
    return pl.DataFrame(
        [
            infusion_id,
            patient_id.gather(patient),
            datetimes("start_time", sessions.start),
            datetimes("end_time", sessions.start + sessions.minutes),
            pl.Series("initial_rate_mg_h", sessions.initial_rate),
            pl.Series("max_rate_mg_h", sessions.max_rate),
            optional("total_dose_mg", dose, rng.random(rows) < profile.total_dose_mg),
            pl.Series("completed", sessions.completed),
            coded(
                "stop_reason",
                np.maximum(sessions.stop_reason, 0),
                STOP_REASONS,
                sessions.stop_reason != NO_STOP,
            ),
            optional("relief_duration_days", relief, has_relief),
            dates("_visible_on", sessions.day),
            # Relief is known once it has worn off: an earlier export lacks what was still going on.
            dates("_relief_known_on", sessions.day + relief, has_relief),
        ]
    )
