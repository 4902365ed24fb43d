"""Simulate the patients of one site and draw, up front, the hidden course each of them will follow."""

from dataclasses import dataclass

import numpy as np
import polars as pl

from .contract import CANCER_TYPES, CNP_ETIOLOGIES, SEXES
from .frames import coded, dates, optional
from .sites import SiteProfile
from .timeline import FIRST_INFUSION_FROM, FIRST_INFUSION_TO, business_days

# Breast and nerve-sheath tumours were the study's most common cancers (13 and 7 of 57).
CANCER_MIX = (0.22, 0.14, 0.09, 0.08, 0.07, 0.06, 0.08, 0.07, 0.07, 0.04, 0.08)
# Etiology 13 compression / 25 CIPN / 13 surgery / 6 radiation of 57, plus a few % other. Nerve-sheath
# tumours hurt by compression or after surgery, never through chemotherapy, so they get their own mix and
# the rest is tilted to keep the overall mix at the study's.
ETIOLOGY_MIX_NERVE_SHEATH = (0.60, 0.0, 0.35, 0.0, 0.05)
ETIOLOGY_MIX_OTHER = (0.158, 0.500, 0.199, 0.116, 0.027)
METASTATIC_SHARE = 0.14  # 8 of 57
PRIOR_NEUROPATHY_SHARE = 0.05
RESPONDER_SHARE = 0.74  # 42 of 57
LONG_RELIEF_SHARE = 0.72  # responders with relief beyond 3 weeks
# Drawn above the study's 26.7 % because an interruption that never resumes, or the end of the data,
# pre-empts some discontinuations; what reaches the files comes out near 27 %.
RESPONDER_DISCONTINUATION_SHARE = 0.33
# 14 of 57 were interrupted by the pandemic; some interruptions fall after the end of the data.
INTERRUPTION_SHARE = 0.28
RESUMPTION_SHARE = 0.55
# 13 of 14 interrupted patients went back to baseline pain.
KEEPS_RELIEF_WHEN_INTERRUPTED = 0.07
BASELINE_NPRS_VALUES = np.arange(4, 11)  # refractory pain: moderate to worst
BASELINE_NPRS_MIX = (0.04, 0.08, 0.14, 0.22, 0.24, 0.16, 0.12)
INDUCTION_INFUSIONS = 3
BACK_FILLED_WEIGHT_SHARE = 0.06
DATA_CLEANING_DAY = np.datetime64("2026-10-15", "D")


@dataclass(frozen=True)
class CoursePlan:
    """What each patient's treatment will be like, one array element per patient of the site."""

    baseline_day: np.ndarray  # datetime64[D]; the baseline assessment, before infusion 1
    first_day: np.ndarray  # datetime64[D]; infusion 1
    responder: np.ndarray
    response_at: np.ndarray  # the infusion (1 … 3) after which the response shows
    long_relief: np.ndarray  # relief lasts beyond 3 weeks once responding
    discontinues: np.ndarray  # the course ends in a recorded discontinuation
    planned_infusions: np.ndarray
    interrupt_after: np.ndarray  # infusion after which an outside event interrupts; 0 = never
    resumes: np.ndarray
    keeps_relief_when_interrupted: np.ndarray
    baseline_nprs: np.ndarray
    baseline_function: np.ndarray  # interference with function, 0 none … 10 complete
    baseline_mme: np.ndarray  # daily morphine milligram equivalents


@dataclass(frozen=True)
class Cohort:
    """The patients table of one site (with helper columns for snapshots) and their course plan."""

    patient_id: pl.Series
    patients: pl.DataFrame
    plan: CoursePlan


def _first_days(rng: np.random.Generator, n: int) -> np.ndarray:
    span = int((FIRST_INFUSION_TO - FIRST_INFUSION_FROM).astype(int))
    # The window ends on a Wednesday, so rolling weekends forward never leaves it.
    return business_days(FIRST_INFUSION_FROM + rng.integers(0, span + 1, n))


def _sexes(rng: np.random.Generator, cancer: np.ndarray) -> np.ndarray:
    codes = np.where(rng.random(cancer.size) < 0.5, SEXES.index("F"), SEXES.index("M"))
    breast = cancer == CANCER_TYPES.index("breast")
    codes[breast] = np.where(rng.random(breast.sum()) < 0.99, SEXES.index("F"), SEXES.index("M"))
    codes[cancer == CANCER_TYPES.index("gynecologic")] = SEXES.index("F")
    codes[cancer == CANCER_TYPES.index("prostate")] = SEXES.index("M")
    unusual = rng.random(cancer.size)
    codes[unusual < 0.004] = SEXES.index("X")
    codes[(unusual >= 0.004) & (unusual < 0.012)] = SEXES.index("U")  # not recorded: the contract says U
    return codes


def _plan(rng: np.random.Generator, n: int) -> CoursePlan:
    first_day = _first_days(rng, n)
    responder = rng.random(n) < RESPONDER_SHARE
    discontinues = ~responder | (rng.random(n) < RESPONDER_DISCONTINUATION_SHARE)
    # Responders continue about monthly: those who stop after a few cycles, and the rest for longer
    # (the end of the data cuts most of them short).
    stopping_cycles = rng.geometric(0.35, n)
    continuing_cycles = np.minimum(rng.geometric(1 / 7, n), 36)
    maintenance = np.where(discontinues, stopping_cycles, continuing_cycles)
    planned = INDUCTION_INFUSIONS + np.where(responder, maintenance, 0)
    interrupted = rng.random(n) < INTERRUPTION_SHARE
    interrupt_after = np.where(interrupted, rng.integers(1, planned), 0)
    baseline_mme = np.round(np.clip(rng.lognormal(np.log(60), 0.7, n), 5, 1200), 1)
    baseline_mme[rng.random(n) < 0.12] = 0.0  # opioid-free patients
    return CoursePlan(
        baseline_day=business_days(first_day - rng.integers(1, 22, n), roll="backward"),
        first_day=first_day,
        responder=responder,
        response_at=rng.choice(np.arange(1, 4), n, p=(0.55, 0.30, 0.15)),
        long_relief=rng.random(n) < LONG_RELIEF_SHARE,
        discontinues=discontinues,
        planned_infusions=planned,
        interrupt_after=interrupt_after,
        resumes=rng.random(n) < RESUMPTION_SHARE,
        keeps_relief_when_interrupted=responder & (rng.random(n) < KEEPS_RELIEF_WHEN_INTERRUPTED),
        baseline_nprs=rng.choice(BASELINE_NPRS_VALUES, n, p=BASELINE_NPRS_MIX),
        baseline_function=np.clip(np.round(rng.normal(6.5, 1.5, n)), 2, 10).astype(np.int64),
        baseline_mme=baseline_mme,
    )


def simulate_cohort(rng: np.random.Generator, n: int, profile: SiteProfile) -> Cohort:
    """Simulate `n` patients of one site: their table rows and their course plan."""
    plan = _plan(rng, n)
    width = max(4, len(str(n)))
    patient_id = pl.Series("patient_id", np.arange(1, n + 1)).cast(pl.String).str.zfill(width)
    patient_id = ("K" + patient_id).alias("patient_id")

    cancer = rng.choice(len(CANCER_TYPES), n, p=CANCER_MIX)
    nerve_sheath = cancer == CANCER_TYPES.index("nerve_sheath_tumor")
    etiology = np.where(
        nerve_sheath,
        rng.choice(len(CNP_ETIOLOGIES), n, p=ETIOLOGY_MIX_NERVE_SHEATH),
        rng.choice(len(CNP_ETIOLOGIES), n, p=ETIOLOGY_MIX_OTHER),
    )
    sex = _sexes(rng, cancer)
    start_year = plan.first_day.astype("datetime64[Y]").astype(np.int64) + 1970
    age = np.clip(np.round(rng.normal(61, 12, n)), 21, 92).astype(np.int64)
    weight = np.where(sex == SEXES.index("F"), rng.normal(68, 14, n), rng.normal(80, 15, n))
    weight = np.round(np.clip(weight, 38, 170), 1)
    has_weight = rng.random(n) < profile.weight_kg
    # A data-cleaning pass in October 2026 back-filled a few weights: the earlier export lacks them.
    back_filled = rng.random(n) < BACK_FILLED_WEIGHT_SHARE
    weight_known_on = np.where(back_filled, DATA_CLEANING_DAY, plan.baseline_day)

    patients = pl.DataFrame(
        [
            patient_id,
            coded("sex", sex, SEXES),
            pl.Series("birth_year", start_year - age),
            optional("weight_kg", weight, has_weight),
            coded("cancer_type", cancer, CANCER_TYPES),
            optional("metastatic", rng.random(n) < METASTATIC_SHARE, rng.random(n) < profile.metastatic),
            coded("cnp_etiology", etiology, CNP_ETIOLOGIES),
            pl.Series("prior_neuropathy", rng.random(n) < PRIOR_NEUROPATHY_SHARE),
            dates(
                "cnp_diagnosis_date",
                plan.first_day - rng.integers(30, 731, n),
                rng.random(n) < profile.cnp_diagnosis_date,
            ),
            dates("_visible_on", plan.baseline_day),
            dates("_weight_known_on", weight_known_on),
        ]
    )
    return Cohort(patient_id=patient_id, patients=patients, plan=plan)
