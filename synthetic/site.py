"""Simulate everything one site holds by the end of the data (2026-10-31)."""

from dataclasses import replace

import numpy as np
import polars as pl

from .adverse_events import simulate_adverse_events
from .assessments import simulate_assessments
from .cohort import simulate_cohort
from .dispositions import simulate_dispositions
from .frames import child_ids
from .infusions import infusion_table, plan_sessions
from .schedule import build_schedule
from .sites import draw_site_profile

# Each site draws from its own random stream, so a site's data do not depend on how many sites there are,
# and its clinical data do not depend on the faults drawn later from other streams.
CLINICAL_STREAM = 0


def site_rng(seed: int, site_index: int, stream: int) -> np.random.Generator:
    """The random stream `stream` of one site for one seed."""
    return np.random.default_rng([seed, site_index, stream])


def simulate_site(
    seed: int, site_index: int, patients: int, weighs_everyone: bool = False
) -> dict[str, pl.DataFrame]:
    """All tables of one site, each with the `_visible_on` date (and other `_` helpers) snapshots use.

    `weighs_everyone`: the site records every patient's weight (it doses per kg); nothing else changes."""
    rng = site_rng(seed, site_index, CLINICAL_STREAM)
    profile = draw_site_profile(rng)
    if weighs_everyone:
        profile = replace(profile, weight_kg=1.0)
    cohort = simulate_cohort(rng, patients, profile)
    plan = cohort.plan
    schedule = build_schedule(rng, plan)
    infusion_id = child_ids(cohort.patient_id.gather(schedule.patient), "I", schedule.number).alias("infusion_id")
    sessions = plan_sessions(rng, schedule)
    sessions, adverse_events = simulate_adverse_events(rng, sessions, cohort.patient_id, infusion_id, profile)
    return {
        "patients": cohort.patients,
        "infusions": infusion_table(rng, sessions, plan, cohort.patient_id, infusion_id, profile),
        "assessments": simulate_assessments(rng, plan, schedule, sessions, cohort.patient_id, infusion_id, profile),
        "adverse_events": adverse_events,
        "dispositions": simulate_dispositions(rng, plan, schedule, cohort.patient_id),
    }
