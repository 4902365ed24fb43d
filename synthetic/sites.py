"""How completely each site records what happens.

The study's main limitation was inconsistent recording of outcome measures, so sites differ here on purpose:
some rarely record satisfaction or function, and the registry's completeness metrics must see that.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SiteProfile:
    """Probability that a site records each optional value when it applies."""

    nprs: float
    function_score: float
    satisfaction: float
    daily_mme: float
    subjective_improvement: float
    weight_kg: float
    metastatic: float
    cnp_diagnosis_date: float
    total_dose_mg: float
    relief_duration_days: float
    onset_time: float
    ae_category: float
    follow_up: float


def site_id(index: int, sites: int) -> str:
    """`site_01`, `site_02`, … (wider only when there are 100 sites or more)."""
    return f"site_{index + 1:0{max(2, len(str(sites)))}d}"


def draw_site_profile(rng: np.random.Generator) -> SiteProfile:
    """Draw one site's recording habits."""

    def usually() -> float:
        return float(rng.uniform(0.75, 0.98))

    def sometimes_rarely() -> float:
        # About a third of sites hardly ever fill this field in.
        return float(rng.uniform(0.05, 0.25)) if rng.random() < 0.35 else usually()

    return SiteProfile(
        nprs=float(rng.uniform(0.9, 0.99)),
        function_score=sometimes_rarely(),
        satisfaction=sometimes_rarely(),
        daily_mme=usually(),
        subjective_improvement=usually(),
        weight_kg=usually(),
        metastatic=usually(),
        cnp_diagnosis_date=float(rng.uniform(0.5, 0.95)),
        total_dose_mg=float(rng.uniform(0.9, 1.0)),
        relief_duration_days=float(rng.uniform(0.3, 0.8)),
        onset_time=usually(),
        # Sites often leave the AE category empty (it is derived from the term): about half the rows.
        ae_category=float(rng.uniform(0.3, 0.7)),
        follow_up=float(rng.uniform(0.2, 0.5)),
    )
