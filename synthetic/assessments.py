"""Simulate assessments: a baseline, one before and one after every infusion, and some follow-ups.

Pain is NPRS 0–10. Once a responder's response shows, pain after an infusion is at least 30 % below baseline;
a non-responder's never drops that far. After an outside interruption nearly everyone goes back to baseline.
"""

from dataclasses import dataclass, fields

import numpy as np
import polars as pl

from .cohort import CoursePlan
from .contract import TIMEPOINTS
from .frames import child_ids, coded, datetimes, optional, rank_within
from .infusions import Sessions
from .schedule import Schedule
from .sites import SiteProfile
from .timeline import DATA_END, at, business_days, day_of

BASELINE, PRE, POST, FOLLOW_UP = (TIMEPOINTS.index(t) for t in ("baseline", "pre", "post", "follow_up"))
NO_INFUSION = -1
BASELINE_NPRS_RECORDED = 0.98


@dataclass(frozen=True)
class _Rows:
    """Assessment rows before their values are drawn."""

    patient: np.ndarray
    time: np.ndarray  # minutes since 1970-01-01
    timepoint: np.ndarray
    infusion: np.ndarray  # session row, NO_INFUSION when unlinked
    improved: np.ndarray  # the patient is in a responding phase at this assessment
    after_interruption: np.ndarray  # the follow-up that shows what an interruption did to the pain
    key_post: np.ndarray  # the post assessment where a responder's response first shows

    def sorted(self) -> "_Rows":
        order = np.lexsort((self.time, self.patient))
        return _Rows(*(getattr(self, f.name)[order] for f in fields(self)))


def _follow_ups(
    rng: np.random.Generator, plan: CoursePlan, schedule: Schedule, profile: SiteProfile
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(patient, day, after_interruption) of the follow-up visits that happened by the end of the data."""
    interrupted = ~np.isnat(schedule.interrupted_on)
    # Everyone interrupted is seen 2–6 weeks later (always before any resumption, which is ≥ 8 weeks).
    broke = np.flatnonzero(interrupted)
    broke_day = business_days(schedule.interrupted_on[broke] + rng.integers(14, 43, broke.size))
    stopped_for_good = interrupted & np.isnat(schedule.resumed_on)
    routine = np.flatnonzero((rng.random(plan.first_day.size) < profile.follow_up) & ~stopped_for_good)
    last_day = schedule.day[schedule.first_row[routine] + schedule.count[routine] - 1]
    routine_day = business_days(last_day + rng.integers(14, 43, routine.size))
    patient = np.concatenate([broke, routine])
    day = np.concatenate([broke_day, routine_day])
    after_interruption = np.arange(patient.size) < broke.size
    keep = day <= DATA_END
    return patient[keep], day[keep], after_interruption[keep]


def _rows(
    rng: np.random.Generator, plan: CoursePlan, schedule: Schedule, sessions: Sessions, profile: SiteProfile
) -> _Rows:
    patients, infusions = plan.first_day.size, sessions.patient.size
    p, number = sessions.patient, sessions.number
    responding_post = plan.responder[p] & (number >= plan.response_at[p])
    back_from_break = (plan.interrupt_after[p] > 0) & (number == plan.interrupt_after[p] + 1)
    responding_pre = plan.responder[p] & (number > plan.response_at[p]) & ~back_from_break
    fp, follow_day, after_interruption = _follow_ups(rng, plan, schedule, profile)
    follows = fp.size
    responded_by_then = plan.responder[fp] & (schedule.count[fp] >= plan.response_at[fp])
    improved_follow_up = np.where(after_interruption, plan.keeps_relief_when_interrupted[fp], responded_by_then)
    none_p, none_i, none_f = np.zeros(patients, bool), np.zeros(infusions, bool), np.zeros(follows, bool)
    return _Rows(
        patient=np.concatenate([np.arange(patients), p, p, fp]),
        time=np.concatenate(
            [
                at(plan.baseline_day, 9 * 60 + 15 * rng.integers(0, 29, patients)),
                sessions.start - rng.integers(10, 41, infusions),
                sessions.start + sessions.minutes + rng.integers(10, 61, infusions),
                at(follow_day, 10 * 60 + 15 * rng.integers(0, 25, follows)),
            ]
        ),
        timepoint=np.repeat([BASELINE, PRE, POST, FOLLOW_UP], [patients, infusions, infusions, follows]),
        infusion=np.concatenate(
            [
                np.full(patients, NO_INFUSION),
                np.arange(infusions),
                np.arange(infusions),
                np.full(follows, NO_INFUSION),
            ]
        ),
        improved=np.concatenate([none_p, responding_pre, responding_post, improved_follow_up]),
        after_interruption=np.concatenate([none_p, none_i, none_i, after_interruption]),
        key_post=np.concatenate([none_p, none_i, plan.responder[p] & (number == plan.response_at[p]), none_f]),
    ).sorted()


def _nprs(rng: np.random.Generator, rows: _Rows, plan: CoursePlan) -> np.ndarray:
    baseline = plan.baseline_nprs[rows.patient]
    n = baseline.size
    # Baseline pain is at least 4, so one point down is always less than a 30 % drop.
    unchanged = np.clip(baseline + rng.integers(-1, 2, n), 0, 10)
    not_yet = baseline - rng.integers(0, 2, n)
    relieved = np.floor(baseline * (1 - rng.uniform(0.3, 0.75, n))).astype(np.int64)  # ≥ 30 % drop
    # Before the next infusion, long relief has partly worn off and short relief fully.
    wearing_off = np.where(
        plan.long_relief[rows.patient],
        np.floor(baseline * (1 - rng.uniform(0.15, 0.5, n))).astype(np.int64),
        not_yet,
    )
    timepoint, improved = rows.timepoint, rows.improved
    return np.select(
        [timepoint == BASELINE, timepoint == PRE, timepoint == POST, improved],
        [
            baseline,
            np.where(improved, wearing_off, unchanged),
            np.where(improved, relieved, not_yet),
            relieved,
        ],
        default=unchanged,
    )


def simulate_assessments(
    rng: np.random.Generator,
    plan: CoursePlan,
    schedule: Schedule,
    sessions: Sessions,
    patient_id: pl.Series,
    infusion_id: pl.Series,
    profile: SiteProfile,
) -> pl.DataFrame:
    """The assessments table of a site, sorted by patient and time, with its snapshot helper column."""
    rows = _rows(rng, plan, schedule, sessions, profile)
    n = rows.patient.size
    improved, baseline_row = rows.improved, rows.timepoint == BASELINE
    post_or_follow_up = (rows.timepoint == POST) | (rows.timepoint == FOLLOW_UP)

    nprs = _nprs(rng, rows, plan)
    f0 = plan.baseline_function[rows.patient]
    function = np.select(
        [baseline_row, improved],
        [f0, np.clip(f0 - rng.integers(1, 5, n), 0, 10)],
        default=np.clip(f0 + rng.integers(-1, 2, n), 0, 10),
    )
    satisfaction = np.select(
        [baseline_row, improved],
        [rng.integers(1, 5, n), rng.integers(6, 11, n)],
        default=rng.integers(2, 7, n),
    )
    m0 = plan.baseline_mme[rows.patient]
    mme = np.where(
        baseline_row,
        m0,
        np.round(m0 * np.where(improved, rng.uniform(0.55, 0.95, n), rng.uniform(0.95, 1.1, n)), 1),
    )
    subjective = improved & (rng.random(n) < 0.95)

    has_nprs = rng.random(n) < np.where(baseline_row, BASELINE_NPRS_RECORDED, profile.nprs)
    # A response, and the return of pain after an interruption, must be visible in the data: those
    # assessments always record pain, and the patient's own verdict when there is no baseline pain.
    has_nprs |= rows.key_post | rows.after_interruption
    baseline_recorded = np.zeros(plan.first_day.size, bool)
    baseline_recorded[rows.patient[baseline_row]] = has_nprs[baseline_row]
    needs_verdict = rows.key_post & ~baseline_recorded[rows.patient]
    has_subjective = (post_or_follow_up & (rng.random(n) < profile.subjective_improvement)) | needs_verdict
    subjective |= needs_verdict

    owner = patient_id.gather(rows.patient)
    linked = rows.infusion != NO_INFUSION
    session = np.maximum(rows.infusion, 0)
    visible = np.where(linked, sessions.day[session], day_of(rows.time))
    return pl.DataFrame(
        [
            child_ids(owner, "A", rank_within(rows.patient)).alias("assessment_id"),
            owner.alias("patient_id"),
            infusion_id.gather(optional("infusion_id", session.astype(np.uint32), linked)).alias("infusion_id"),
            datetimes("assessed_at", rows.time),
            coded("timepoint", rows.timepoint, TIMEPOINTS),
            optional("nprs", nprs, has_nprs),
            optional("function_score", function, rng.random(n) < profile.function_score),
            optional("satisfaction", satisfaction, rng.random(n) < profile.satisfaction),
            optional("daily_mme", mme, rng.random(n) < profile.daily_mme),
            optional("subjective_improvement", subjective, has_subjective),
            pl.Series("_visible_on", visible.astype("datetime64[D]")),
        ]
    )
