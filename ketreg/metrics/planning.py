"""Study planning: how many patients the next trials need, from what the registry observed.

For each power of the protocol file and its two-sided α:
(a) a single-arm study showing the responder rate exceeds a benchmark rate (one-sample test on Cohen's h),
(b) a two-arm trial against a comparator responder rate (two-sample test on Cohen's h, per arm),
(c) a two-arm trial on the mean NPRS change at the end of induction (two-sample t-test on Cohen's d, per arm),
each inflated by the registry's discontinuation rate, then by the design effect 1 + (m − 1) × ICC of a trial
with m patients per site, where ICC is the between-site intra-class correlation of response in the registry.

The power functions are those of statsmodels' NormalIndPower and TTestIndPower (two-sided, both tails),
written out with scipy so the formulas are on the page; the tests check the sizes against statsmodels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
from scipy import optimize, stats

from schemas.protocol import MetricSettings

SCHEMA = {
    "design": pl.String,
    "arms": pl.Int64,
    "alpha": pl.Float64,
    "power": pl.Float64,
    "registry_patients": pl.Int64,
    "registry_estimate": pl.Float64,
    "registry_sd": pl.Float64,
    "reference_value": pl.Float64,
    "effect_size": pl.Float64,
    "effect_size_kind": pl.String,
    "n_per_arm_exact": pl.Float64,
    "n_per_arm": pl.Int64,
    "discontinuation_rate": pl.Float64,
    "n_per_arm_after_discontinuation": pl.Int64,
    "site_icc": pl.Float64,
    "planned_patients_per_site": pl.Int64,
    "design_effect": pl.Float64,
    "n_per_arm_multisite": pl.Int64,
    "total_patients": pl.Int64,
    "total_patients_multisite": pl.Int64,
    "method": pl.String,
    "note": pl.String,
}
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


@dataclass(frozen=True)
class PlannedDesign:
    """One trial design and what the registry says about its primary outcome."""

    design: str
    arms: int
    effect_size_kind: str  # cohens_h (proportions) or cohens_d (means)
    method: str
    registry_patients: int
    registry_estimate: float | None
    registry_sd: float | None
    reference_value: float
    effect_size: float | None  # None when the registry cannot estimate it


def _observed(outcomes: pl.DataFrame) -> dict[str, float | int | None]:
    """What the registry observed among treated cohort patients (the responder denominator)."""
    # Treated, and with a complete course (`responder` is empty when an infusion's number is uncertain).
    treated = outcomes.filter((pl.col("infusion_count") > 0) & pl.col("responder").is_not_null())
    n = treated.height
    changes = treated["nprs_change_end_of_induction"].drop_nulls().cast(pl.Float64)
    # Sorted by site: group_by's order changes between runs, and the ICC's float sums would follow it.
    by_site = treated.group_by("site_id").agg(
        pl.len().alias("n"), pl.col("responder").fill_null(False).sum().alias("r")
    ).sort("site_id")
    return {
        "patients": n,
        "responder_rate": treated["responder"].fill_null(False).mean() if n else None,
        "discontinuation_rate": treated["discontinued"].mean() if n else None,
        "change_patients": changes.len(),
        "mean_change": changes.mean() if changes.len() else None,
        "sd_change": changes.std() if changes.len() > 1 else None,
        "icc": site_icc(by_site["n"].to_list(), by_site["r"].to_list()),
    }


def planned_designs(seen: dict, settings: MetricSettings) -> list[PlannedDesign]:
    """The three designs, with effect sizes from the registry's figures and the protocol file's references."""
    rate, mean, sd = seen["responder_rate"], seen["mean_change"], seen["sd_change"]
    benchmark, comparator = settings.benchmark_responder_rate, settings.comparator_responder_rate
    comparator_change = settings.comparator_mean_nprs_change
    return [
        PlannedDesign(
            "single_arm_vs_benchmark", 1, "cohens_h",
            "one-sample two-sided z-test of the responder rate against the benchmark (arcsine, Cohen's h)",
            seen["patients"], rate, None, benchmark, cohens_h(rate, benchmark) if rate is not None else None,
        ),
        PlannedDesign(
            "two_arm_responder_rate", 2, "cohens_h",
            "two-sample two-sided z-test of responder rates, 1:1 (arcsine, Cohen's h)",
            seen["patients"], rate, None, comparator, cohens_h(rate, comparator) if rate is not None else None,
        ),
        PlannedDesign(
            "two_arm_mean_nprs_change", 2, "cohens_d",
            "two-sample two-sided t-test of the mean NPRS change from baseline to the end of induction, 1:1 "
            "(Cohen's d = (comparator change − registry change) / registry SD)",
            seen["change_patients"], mean, sd, comparator_change,
            (comparator_change - mean) / sd if mean is not None and sd else None,
        ),
    ]


def study_planning(outcomes: pl.DataFrame, settings: MetricSettings) -> pl.DataFrame:
    """The rows of metrics.study_planning, from metrics.patient_outcomes and the protocol file's settings."""
    seen = _observed(outcomes)
    alpha, m, icc, dropout = (
        settings.planning_alpha, settings.planned_patients_per_site, seen["icc"], seen["discontinuation_rate"]
    )
    design_effect = 1 + (m - 1) * icc if icc is not None else None
    rows = []
    for power in settings.planning_powers:
        for plan in planned_designs(seen, settings):
            row = {
                "design": plan.design, "arms": plan.arms, "alpha": alpha, "power": power,
                "registry_patients": plan.registry_patients, "registry_estimate": plan.registry_estimate,
                "registry_sd": plan.registry_sd, "reference_value": plan.reference_value,
                "effect_size": plan.effect_size, "effect_size_kind": plan.effect_size_kind,
                "discontinuation_rate": dropout, "site_icc": icc, "planned_patients_per_site": m,
                "design_effect": design_effect, "method": plan.method, "note": None,
            }
            rows.append(row)
            if plan.effect_size is None:
                row["note"] = "not estimable: the registry has too few treated patients with this outcome"
                continue
            exact = _size(plan.effect_size, plan.effect_size_kind, plan.arms, alpha, power)
            if exact is None:
                row["note"] = (
                    "no sample size: the registry's figure is not better than the reference value"
                    if plan.effect_size <= 0 else f"no sample size: more than {MAX_PATIENTS:.0e} patients"
                )
                continue
            row["n_per_arm_exact"], row["n_per_arm"] = exact, _ceil(exact)
            if dropout is None or dropout >= 1:
                row["note"] = "no inflation for discontinuation: every treated patient discontinued"
                continue
            row["n_per_arm_after_discontinuation"] = _ceil(row["n_per_arm"] / (1 - dropout))
            row["total_patients"] = plan.arms * row["n_per_arm_after_discontinuation"]
            if design_effect is None:
                row["note"] = "no design effect: the registry needs at least two sites to estimate the ICC"
                continue
            row["n_per_arm_multisite"] = _ceil(row["n_per_arm_after_discontinuation"] * design_effect)
            row["total_patients_multisite"] = plan.arms * row["n_per_arm_multisite"]
    return pl.DataFrame(rows, schema=SCHEMA)
