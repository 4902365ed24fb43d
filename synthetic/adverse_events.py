"""Simulate adverse events during infusions, and stop the infusions an event made the team stop."""

import numpy as np
import polars as pl

from .contract import AE_ACTIONS, AE_CATEGORIES, AE_OUTCOMES, AE_TERMS
from .frames import child_ids, coded, datetimes, rank_within
from .infusions import Sessions
from .sites import SiteProfile

# Events per infusion, by body system: the study saw neurological 7.8 %, gastrointestinal 3.6 %,
# cardiovascular 2.1 %; psychiatric effects are classic for ketamine, desaturation is rare.
RATE_PER_INFUSION = {
    "neurological": 0.078,
    "gastrointestinal": 0.036,
    "cardiovascular": 0.021,
    "psychiatric": 0.010,
    "respiratory": 0.003,
    "other": 0.004,
}
TERM_MIX = {
    "neurological": {"headache": 0.35, "dizziness": 0.33, "somnolence": 0.24, "diplopia": 0.08},
    "gastrointestinal": {"nausea": 0.7, "vomiting": 0.3},
    "cardiovascular": {"hypertension": 0.55, "tachycardia": 0.35, "hypotension": 0.05, "bradycardia": 0.05},
    "psychiatric": {"hallucination": 0.25, "dysphoria": 0.35, "anxiety": 0.40},
    "respiratory": {"desaturation": 1.0},
    "other": {"other": 1.0},
}
# 64.7 % of episodes resolved without intervention; the rest needed a rate change, a stop or medication.
ACTION_MIX = {"none": 0.65, "rate_reduced": 0.17, "infusion_stopped": 0.07, "prn_medication": 0.11}
GRADE_MIX = {1: 0.68, 2: 0.30, 3: 0.02}  # none life-threatening
SERIOUS_SHARE_OF_GRADE_3 = 0.3
OUTCOME_MIX = {"resolved": 0.86, "resolving": 0.08, "not_resolved": 0.02, "fatal": 0.0, "unknown": 0.04}
NOT_STOPPED = np.iinfo(np.int64).max


def _draw_events(rng: np.random.Generator, sessions: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which infusions had which events: (infusion row, category code, term code) per event."""
    rows, categories, terms = [], [], []
    for category, rate in RATE_PER_INFUSION.items():
        hit = np.flatnonzero(rng.random(sessions) < rate)
        mix = TERM_MIX[category]
        codes = np.array([AE_TERMS.index(term) for term in mix])
        rows.append(hit)
        categories.append(np.full(hit.size, AE_CATEGORIES.index(category)))
        terms.append(rng.choice(codes, hit.size, p=list(mix.values())))
    return np.concatenate(rows), np.concatenate(categories), np.concatenate(terms)


def simulate_adverse_events(
    rng: np.random.Generator,
    sessions: Sessions,
    patient_id: pl.Series,
    infusion_id: pl.Series,
    profile: SiteProfile,
) -> tuple[Sessions, pl.DataFrame]:
    """Draw events for every infusion; return the sessions as the events left them, and the AE table."""
    row, category, term = _draw_events(rng, sessions.patient.size)
    events = row.size
    action = rng.choice(len(AE_ACTIONS), events, p=[ACTION_MIX[a] for a in AE_ACTIONS])
    stopping = action == AE_ACTIONS.index("infusion_stopped")

    planned = sessions.minutes[row]
    latest = np.minimum(180, planned - 20)
    stop_onset = 30 + np.floor(rng.random(events) * (latest - 29)).astype(np.int64)
    stop_minute = np.full(sessions.patient.size, NOT_STOPPED)
    np.minimum.at(stop_minute, row[stopping], stop_onset[stopping])
    sessions = sessions.stopped_at(stop_minute, rng)

    final = sessions.minutes[row]
    onset = np.where(
        stopping,
        np.minimum(stop_onset, final - 1),
        10 + np.floor(rng.random(events) * (final - 14)).astype(np.int64),
    )
    order = np.lexsort((onset, row))
    row, category, term, action, onset = row[order], category[order], term[order], action[order], onset[order]

    patient = sessions.patient[row]
    grade = rng.choice(list(GRADE_MIX), events, p=list(GRADE_MIX.values()))
    serious = (grade == 3) & (rng.random(events) < SERIOUS_SHARE_OF_GRADE_3)
    outcome = rng.choice(len(AE_OUTCOMES), events, p=[OUTCOME_MIX[o] for o in AE_OUTCOMES])
    owner = patient_id.gather(patient)
    table = pl.DataFrame(
        [
            child_ids(owner, "E", rank_within(patient)).alias("ae_id"),
            owner.alias("patient_id"),
            infusion_id.gather(row).alias("infusion_id"),
            datetimes("onset_time", sessions.start[row] + onset, rng.random(events) < profile.onset_time),
            coded("term", term, AE_TERMS),
            coded("category", category, AE_CATEGORIES, rng.random(events) < profile.ae_category),
            pl.Series("grade", grade),
            pl.Series("serious", serious),
            coded("action_taken", action, AE_ACTIONS),
            coded("outcome", outcome, AE_OUTCOMES),
            pl.Series("_visible_on", sessions.day[row]),
        ]
    )
    return sessions, table
