"""Study planning: how many patients the next trials need, from what the registry observed.

For each power of the protocol file, from the primary estimand (metrics.patient_outcomes; the study definition
when the primary-estimand columns are not built, labelled in every row):
(a) a single-arm study against a benchmark responder rate: exact binomial single-stage design (A'Hern 2001),
    one-sided α, the smallest n with a critical number of responders r;
(b) a two-arm trial against a comparator responder rate (two-sample z-test on Cohen's h, per arm);
(c) a two-arm trial on the NPRS change from baseline (two-sample t-test on Cohen's d of the change);
(d) the same comparison analysed by ANCOVA of the follow-up NPRS on baseline: the t-test size on the
    follow-up SD times 1 − ρ², ρ the baseline–follow-up correlation (Borm, Fransen & Lemmens 2007);
each inflated for dropout — the share of treated patients missing the primary endpoint, not every
discontinuation (most discontinuations are outcomes) — then by the design effect of the trial as planned:
individually randomised within site (stratified by site: ≈ 1) or cluster-randomised by site (1 + (m − 1)·ICC,
with the ICC's upper 95 % bound as the sensitivity size). Every row carries its inputs and their source tables.

The power functions are those of statsmodels' NormalIndPower and TTestIndPower (two-sided, both tails),
written out with scipy so the formulas are on the page; the tests check the sizes against statsmodels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
import polars as pl
from scipy import optimize, stats

from ketreg.metrics.estimand import Estimand, estimand_for, treated
from ketreg.metrics.heterogeneity import SiteIcc, site_icc_interval
from schemas.protocol import MetricSettings

SCHEMA = {
    "design": pl.String,
    "arms": pl.Int64,
    "estimand": pl.String,
    "alpha": pl.Float64,
    "power": pl.Float64,
    "clustering": pl.String,
    "registry_patients": pl.Int64,
    "registry_estimate": pl.Float64,
    "registry_sd": pl.Float64,
    "baseline_followup_correlation": pl.Float64,
    "reference_value": pl.Float64,
    "effect_size": pl.Float64,
    "effect_size_kind": pl.String,
    "n_per_arm_exact": pl.Float64,
    "n_per_arm": pl.Int64,
    "critical_responders": pl.Int64,
    "dropout_rate": pl.Float64,
    "n_per_arm_after_dropout": pl.Int64,
    "site_icc": pl.Float64,
    "site_icc_ci_low": pl.Float64,
    "site_icc_ci_high": pl.Float64,
    "planned_patients_per_site": pl.Int64,
    "design_effect": pl.Float64,
    "design_effect_icc_upper": pl.Float64,
    "n_per_arm_planned": pl.Int64,
    "n_per_arm_planned_icc_upper": pl.Int64,
    "total_patients": pl.Int64,
    "total_patients_icc_upper": pl.Int64,
    "method": pl.String,
    "inputs": pl.String,
    "note": pl.String,
}
MAX_EXACT_PATIENTS = 10_000  # the exact single-arm search stops here
MAX_PATIENTS = 1e9  # beyond this a design is not worth sizing


def cohens_h(proportion: float, reference: float) -> float:
    """Cohen's h = 2·asin(√p) − 2·asin(√p₀) (statsmodels' proportion_effectsize)."""
    return 2 * math.asin(math.sqrt(proportion)) - 2 * math.asin(math.sqrt(reference))


def normal_power(effect_size: float, n: float, alpha: float, arms: int) -> float:
    """Power of a two-sided z-test: one sample of n (arms=1), or two arms of n each (arms=2)."""
    effective_n = n if arms == 1 else n / 2
    critical = stats.norm.isf(alpha / 2)
    shift = effect_size * math.sqrt(effective_n)
    return float(stats.norm.sf(critical - shift) + stats.norm.cdf(-critical - shift))


def t_test_power(effect_size: float, n: float, alpha: float) -> float:
    """Power of a two-sided two-sample t-test with n patients per arm."""
    df = 2 * n - 2
    critical = stats.t.isf(alpha / 2, df)
    noncentrality = effect_size * math.sqrt(n / 2)
    return float(stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality))


def solve_n(power_at: Callable[[float], float], target: float, smallest: float = 2.0) -> float | None:
    """The (fractional) number of patients at which `power_at(n)` reaches `target`; None beyond MAX_PATIENTS."""
    if power_at(smallest) >= target:
        return smallest
    high = smallest * 2
    while power_at(high) < target:
        high *= 2
        if high > MAX_PATIENTS:
            return None
    return float(optimize.brentq(lambda n: power_at(n) - target, smallest, high, xtol=1e-10))


def single_arm_n(responder_rate: float, benchmark: float, alpha: float, power: float) -> float | None:
    """Patients a single-arm study needs to show the responder rate exceeds the benchmark (None if it does not)."""
    return _size(cohens_h(responder_rate, benchmark), "cohens_h", 1, alpha, power)


def two_arm_proportion_n(responder_rate: float, comparator: float, alpha: float, power: float) -> float | None:
    """Patients per arm of a 1:1 trial comparing responder rates."""
    return _size(cohens_h(responder_rate, comparator), "cohens_h", 2, alpha, power)


def two_arm_mean_n(effect_size: float, alpha: float, power: float) -> float | None:
    """Patients per arm of a 1:1 trial comparing mean NPRS change, for Cohen's d = effect_size."""
    return _size(effect_size, "cohens_d", 2, alpha, power)


def _size(effect_size: float, kind: str, arms: int, alpha: float, power: float) -> float | None:
    if effect_size <= 0:
        return None
    if kind == "cohens_d":
        return solve_n(lambda n: t_test_power(effect_size, n, alpha), power)
    return solve_n(lambda n: normal_power(effect_size, n, alpha, arms), power, smallest=1.0 if arms == 1 else 2.0)


def site_icc(site_sizes: list[int], site_responders: list[int]) -> float | None:
    """One-way ANOVA estimate of the intra-class correlation of a binary outcome between sites:
    (MSB − MSW) / (MSB + (n₀ − 1)·MSW), with n₀ the size-adjusted mean site size; truncated at 0.
    None with fewer than two sites, or when no patient differs from another."""
    pairs = [(n, r) for n, r in zip(site_sizes, site_responders, strict=True) if n > 0]
    k, total = len(pairs), sum(n for n, _ in pairs)
    if k < 2 or total - k < 1:
        return None
    overall = sum(r for _, r in pairs) / total
    between = sum(n * (r / n - overall) ** 2 for n, r in pairs) / (k - 1)
    within = sum(r * (1 - r / n) for n, r in pairs) / (total - k)
    n0 = (total - sum(n * n for n, _ in pairs) / total) / (k - 1)
    denominator = between + (n0 - 1) * within
    if denominator <= 0:
        return None
    return max(0.0, (between - within) / denominator)


def _ceil(value: float) -> int:
    # 1e-9 keeps a size that is an integer up to float noise (e.g. 24.000000000001) from rounding up.
    return math.ceil(value - 1e-9)



def exact_single_arm(p0: float, p1: float, alpha: float, power: float) -> tuple[int, int] | None:
    """A'Hern's single-stage exact design: the smallest n, with the smallest r such that
    P(X ≥ r | n, p0) ≤ α (one-sided), for which P(X ≥ r | n, p1) ≥ power; None if p1 ≤ p0 or n would exceed
    MAX_EXACT_PATIENTS."""
    if p1 <= p0:
        return None
    n = np.arange(1, MAX_EXACT_PATIENTS + 1)
    # r − 1 = the (1 − α) quantile under p0, then stepped up where the tail still exceeds α (discreteness).
    r = stats.binom.ppf(1 - alpha, n, p0).astype(int) + 1
    r = np.where(stats.binom.sf(r - 1, n, p0) > alpha, r + 1, r)
    reached = (stats.binom.sf(r - 1, n, p0) <= alpha) & (stats.binom.sf(r - 1, n, p1) >= power) & (r <= n)
    if not reached.any():
        return None
    first = int(np.argmax(reached))
    return int(n[first]), int(r[first])


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "not estimable"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Observed:
    """What the registry observed among treated cohort patients, for the estimand in use."""

    estimand: Estimand
    patients: int
    responder_rate: float | None
    dropout_rate: float | None
    change_patients: int
    mean_change: float | None
    sd_change: float | None
    followup_patients: int
    sd_followup: float | None
    correlation: float | None
    icc: SiteIcc


def observe(outcomes: pl.DataFrame) -> Observed:
    """The registry's figures the sizes are computed from (see estimand.py for the columns)."""
    estimand = estimand_for(outcomes)
    patients = treated(outcomes)
    n = patients.height
    responders = patients[estimand.responder_column].fill_null(False)
    changes = patients[estimand.change_column].drop_nulls().cast(pl.Float64)
    pairs = patients.select(pl.col("nprs_baseline").cast(pl.Float64), pl.col(estimand.nprs_column).cast(pl.Float64)
                            ).drop_nulls()
    correlation = None
    if pairs.height > 2 and pairs[:, 0].std() and pairs[:, 1].std():
        correlation = float(np.corrcoef(pairs[:, 0].to_numpy(), pairs[:, 1].to_numpy())[0, 1])
    followup = patients[estimand.nprs_column].drop_nulls().cast(pl.Float64)
    by_site = patients.group_by("site_id").agg(
        pl.len().alias("n"), pl.col(estimand.responder_column).fill_null(False).sum().alias("r")
    ).sort("site_id")
    # polars types a Series' mean and std as any scalar (dates, durations…); these Series are Boolean without
    # nulls and Float64 without nulls, so each is a float.
    return Observed(
        estimand=estimand, patients=n,
        responder_rate=float(cast(float, responders.mean())) if n else None,
        dropout_rate=float(patients.select(estimand.missing_primary().mean()).item()) if n else None,
        change_patients=changes.len(),
        mean_change=float(cast(float, changes.mean())) if changes.len() else None,
        sd_change=float(cast(float, changes.std())) if changes.len() > 1 else None,
        followup_patients=followup.len(),
        sd_followup=float(cast(float, followup.std())) if followup.len() > 1 else None,
        correlation=correlation,
        icc=site_icc_interval(by_site["n"].to_list(), by_site["r"].to_list()),
    )


def _design_rows(seen: Observed, settings: MetricSettings, power: float) -> list[dict]:
    """The four designs at one power, before dropout and clustering."""
    e = seen.estimand
    source = f"metrics.patient_outcomes.{e.responder_column}, treated patients"
    rate, alpha = seen.responder_rate, settings.planning_alpha
    benchmark, comparator = settings.benchmark_responder_rate, settings.comparator_responder_rate
    comparator_change = settings.comparator_mean_nprs_change
    config = "config/protocol.yaml metrics.study_planning"
    rows = []

    exact = exact_single_arm(benchmark, rate, settings.single_arm_alpha_one_sided, power) if rate is not None \
        else None
    rows.append({
        "design": "single_arm_exact_binomial", "arms": 1, "alpha": settings.single_arm_alpha_one_sided,
        "registry_patients": seen.patients, "registry_estimate": rate, "reference_value": benchmark,
        "effect_size": rate - benchmark if rate is not None else None, "effect_size_kind": "risk_difference",
        "n_per_arm_exact": float(exact[0]) if exact else None, "n_per_arm": exact[0] if exact else None,
        "critical_responders": exact[1] if exact else None,
        "method": "A'Hern (2001) single-stage exact binomial design: reject p ≤ benchmark when responders ≥ "
                  "critical_responders (one-sided α)",
        "inputs": f"responder rate {_fmt(rate)} ({source}, n = {seen.patients}); benchmark {benchmark:g} "
                  f"({config}.benchmark_responder_rate); one-sided α {settings.single_arm_alpha_one_sided:g} "
                  f"({config}.single_arm_alpha_one_sided)",
    })
    h = cohens_h(rate, comparator) if rate is not None else None
    n = two_arm_proportion_n(rate, comparator, alpha, power) if rate is not None else None
    rows.append({
        "design": "two_arm_responder_rate", "arms": 2, "alpha": alpha, "registry_patients": seen.patients,
        "registry_estimate": rate, "reference_value": comparator, "effect_size": h, "effect_size_kind": "cohens_h",
        "n_per_arm_exact": n,
        "method": "two-sample two-sided z-test of responder rates, 1:1 (arcsine, Cohen's h; statsmodels "
                  "NormalIndPower)",
        "inputs": f"responder rate {_fmt(rate)} ({source}, n = {seen.patients}); comparator rate {comparator:g} "
                  f"({config}.comparator_responder_rate); two-sided α {alpha:g} ({config}.alpha)",
    })
    mean, sd_change = seen.mean_change, seen.sd_change
    d_change = (comparator_change - mean) / sd_change if mean is not None and sd_change else None
    rows.append({
        "design": "two_arm_nprs_change", "arms": 2, "alpha": alpha, "registry_patients": seen.change_patients,
        "registry_estimate": mean, "registry_sd": sd_change, "reference_value": comparator_change,
        "effect_size": d_change, "effect_size_kind": "cohens_d",
        "n_per_arm_exact": two_arm_mean_n(d_change, alpha, power) if d_change is not None else None,
        "method": "two-sample two-sided t-test of the NPRS change from baseline, 1:1 (Cohen's d = (comparator "
                  "change − registry change) / SD of the change; statsmodels TTestIndPower)",
        "inputs": f"mean NPRS change {_fmt(mean)} and its SD {_fmt(sd_change)} (metrics.patient_outcomes."
                  f"{e.change_column}, n = {seen.change_patients}); comparator change {comparator_change:g} "
                  f"({config}.comparator_mean_nprs_change); two-sided α {alpha:g}",
    })
    sd_followup, rho = seen.sd_followup, seen.correlation
    d_followup = (comparator_change - mean) / sd_followup if mean is not None and sd_followup else None
    t_test = two_arm_mean_n(d_followup, alpha, power) if d_followup is not None else None
    ancova = t_test * (1 - rho**2) if t_test is not None and rho is not None else None
    rows.append({
        "design": "two_arm_nprs_ancova", "arms": 2, "alpha": alpha, "registry_patients": seen.followup_patients,
        "registry_estimate": mean, "registry_sd": sd_followup, "baseline_followup_correlation": rho,
        "reference_value": comparator_change, "effect_size": d_followup, "effect_size_kind": "cohens_d",
        "n_per_arm_exact": ancova,
        "method": "ANCOVA of the follow-up NPRS adjusted for baseline, 1:1: the t-test size on the follow-up SD "
                  "times 1 − ρ² (Borm, Fransen & Lemmens 2007)",
        "inputs": f"mean NPRS change {_fmt(mean)} (metrics.patient_outcomes.{e.change_column}); SD of the "
                  f"follow-up NPRS {_fmt(sd_followup)} (metrics.patient_outcomes.{e.nprs_column}, n = "
                  f"{seen.followup_patients}); baseline–follow-up correlation ρ = {_fmt(rho)} (nprs_baseline × "
                  f"{e.nprs_column}); comparator change {comparator_change:g}; two-sided α {alpha:g}",
    })
    return rows


CLUSTERING = {
    1: ("sites_as_clusters",),
    2: ("individual_randomisation_stratified_by_site", "cluster_randomisation_by_site"),
}


def study_planning(outcomes: pl.DataFrame, settings: MetricSettings) -> pl.DataFrame:
    """The rows of metrics.study_planning, from metrics.patient_outcomes and the protocol file's settings."""
    seen = observe(outcomes)
    icc, m, dropout = seen.icc, settings.planned_patients_per_site, seen.dropout_rate
    design_effect = 1 + (m - 1) * icc.estimate if icc.estimate is not None else None
    design_effect_upper = 1 + (m - 1) * icc.ci_high if icc.ci_high is not None else None
    shared_inputs = (
        f"dropout {_fmt(dropout)} = {seen.estimand.missing_definition} (metrics.patient_outcomes); site ICC "
        f"{_fmt(icc.estimate)} (95 % CI {_fmt(icc.ci_low)}–{_fmt(icc.ci_high)}; one-way ANOVA of "
        f"{seen.estimand.responder_column} over {icc.sites} sites, {icc.patients} treated patients, "
        f"metrics.patient_outcomes); {m} patients per site (config/protocol.yaml "
        "metrics.study_planning.planned_patients_per_site)"
    )
    rows = []
    for power in settings.planning_powers:
        for design in _design_rows(seen, settings, power):
            for clustering in CLUSTERING[design["arms"]]:
                rows.append(_sized({
                    **design, "estimand": seen.estimand.label, "power": power, "clustering": clustering,
                    "dropout_rate": dropout, "site_icc": icc.estimate, "site_icc_ci_low": icc.ci_low,
                    "site_icc_ci_high": icc.ci_high, "planned_patients_per_site": m,
                    "inputs": design["inputs"] + "; " + shared_inputs,
                }, design_effect, design_effect_upper))
    return pl.DataFrame(rows, schema=SCHEMA)


def _sized(row: dict, design_effect: float | None, design_effect_upper: float | None) -> dict:
    """Round up, inflate for dropout, then for the design effect of the row's clustering; or say why not."""
    exact, arms, dropout = row.get("n_per_arm_exact"), row["arms"], row["dropout_rate"]
    no_correlation = row["design"] == "two_arm_nprs_ancova" and row.get("baseline_followup_correlation") is None
    if row.get("effect_size") is None or no_correlation:
        row["note"] = "not estimable: the registry has too few treated patients with this outcome"
        return row
    if exact is None:
        row["note"] = (
            "no sample size: the registry's figure is not better than the reference value"
            if row["effect_size"] <= 0 or row["effect_size_kind"] == "risk_difference"
            else f"no sample size: more than {MAX_PATIENTS:.0e} patients"
        )
        return row
    row["n_per_arm"] = row.get("n_per_arm") or _ceil(exact)
    if dropout is None or dropout >= 1:
        row["note"] = "no inflation for dropout: no treated patient has the primary endpoint"
        return row
    after = _ceil(row["n_per_arm"] / (1 - dropout))
    row["n_per_arm_after_dropout"] = after
    if row["clustering"] == "individual_randomisation_stratified_by_site":
        # Randomising patients within each site, stratified by site, takes the site effect out of the
        # comparison: the design effect is about 1 (Kahan & Morris 2012).
        row.update(design_effect=1.0, design_effect_icc_upper=1.0, n_per_arm_planned=after,
                   n_per_arm_planned_icc_upper=after)
    elif design_effect is None:
        row["note"] = "no design effect: the registry needs at least two sites to estimate the ICC"
        return row
    else:
        row.update(design_effect=design_effect, design_effect_icc_upper=design_effect_upper,
                   n_per_arm_planned=_ceil(after * design_effect),
                   n_per_arm_planned_icc_upper=_ceil(after * design_effect_upper)
                   if design_effect_upper is not None else None)
    row["total_patients"] = arms * row["n_per_arm_planned"]
    if row.get("n_per_arm_planned_icc_upper") is not None:
        row["total_patients_icc_upper"] = arms * row["n_per_arm_planned_icc_upper"]
    return row
