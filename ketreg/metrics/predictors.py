"""Predictors of response: odds ratios of being a responder by etiology, cancer type, metastatic disease, baseline
NPRS band and site, from logistic regressions that say "not estimable" instead of failing on sparse data.

Why Python and not SQL: the regression needs statsmodels. The responder rates with Wilson intervals by the same
factors are in metrics.registry_metrics; this table adds the odds ratios, one factor at a time (univariable)
and all factors together (multivariable, each adjusted for the others).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import polars as pl
import statsmodels.api as sm
from scipy import stats
from statsmodels.tools.sm_exceptions import PerfectSeparationError
from threadpoolctl import threadpool_limits

from schemas.protocol import MetricSettings

# Factor name in the table → column of metrics.patient_outcomes.
FACTORS = {
    "etiology": "cnp_etiology",
    "cancer_type": "cancer_type",
    "metastatic": "metastatic",
    "baseline_nprs_band": "baseline_nprs_band",
    "site": "site_id",
}
POOLED_LEVEL = "other (pooled)"
# A log-odds standard error above this means the likelihood is flat in that direction (quasi-complete
# separation): the odds ratio is reported as not estimable rather than as a meaningless 1e9 or 1e-9.
MAX_LOG_ODDS_SE = 10.0

SCHEMA = {
    "method": pl.String,  # ml (maximum likelihood, below) or firth (ketreg/metrics/firth.py)
    "model": pl.String,
    "factor": pl.String,
    "level": pl.String,
    "reference_level": pl.String,
    "patients": pl.Int64,
    "responders": pl.Int64,
    "odds_ratio": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "p_value": pl.Float64,
    "p_holm": pl.Float64,  # Holm-adjusted within method and model
    "p_bh": pl.Float64,  # Benjamini–Hochberg-adjusted within method and model
    "estimable": pl.Boolean,
    "note": pl.String,
    "model_patients": pl.Int64,
    "model_responders": pl.Int64,
}


@dataclass(frozen=True)
class Design:
    """The patients a model is fitted on, each factor's levels after pooling, and the levels left out."""

    factors: list[str]
    data: pl.DataFrame  # columns: responder (bool) and one text column per factor
    references: dict[str, str]
    levels: dict[str, list[str]]  # non-reference levels, each a coefficient
    dropped_levels: dict[tuple[str, str], tuple[int, int, str]]  # (factor, level) → patients, responders, why
    single_level: dict[str, str]  # factor → its only level


def treated_patients(outcomes: pl.DataFrame) -> pl.DataFrame:
    """The responder denominator (cohort patients with at least one infusion and a complete course: `responder`
    is set), factors as text."""
    return outcomes.filter((pl.col("infusion_count") > 0) & pl.col("responder").is_not_null()).select(
        pl.col("responder").fill_null(False),
        *[
            pl.col(column).cast(pl.String).str.to_lowercase().fill_null("unknown").alias(factor)
            if column == "metastatic"
            else pl.col(column).cast(pl.String).fill_null("unknown").alias(factor)
            for factor, column in FACTORS.items()
        ],
    )


def _pool_rare_levels(data: pl.DataFrame, factor: str, min_patients: int) -> pl.DataFrame:
    counts = data.group_by(factor).len()
    rare = counts.filter(pl.col("len") < min_patients)[factor].to_list()
    if len(rare) < 2:
        # A single rare level has nothing to be pooled with; it stays itself (and may prove not estimable).
        return data
    return data.with_columns(
        pl.when(pl.col(factor).is_in(rare)).then(pl.lit(POOLED_LEVEL)).otherwise(pl.col(factor)).alias(factor)
    )


def _reference(data: pl.DataFrame, factor: str) -> str:
    """The most common level (ties by name) is the reference, so the odds ratios are as precise as they can be;
    a pooled level is a reference only when nothing else is left."""
    counts = data.group_by(factor).len().with_columns((pl.col(factor) == POOLED_LEVEL).alias("pooled"))
    return counts.sort(["pooled", "len", factor], descending=[False, True, False])[factor][0]


def design(patients: pl.DataFrame, factors: list[str], settings: MetricSettings) -> Design:
    """Pool rare levels, then leave out every level in which all or no patients responded (its odds ratio is
    infinite or zero), and repeat until nothing changes."""
    data = patients.select("responder", *factors)
    for factor in factors:
        data = _pool_rare_levels(data, factor, settings.predictor_min_patients_per_level)
    dropped: dict[tuple[str, str], tuple[int, int, str]] = {}
    # When everyone (or no one) responded, that is the model's reason, not every level's.
    while 0 < data["responder"].sum() < data.height:
        separated = []
        for factor in factors:
            # Sorted: group_by's order changes from run to run, and the rows follow it.
            by_level = data.group_by(factor).agg(pl.len().alias("n"), pl.col("responder").sum().alias("r")).sort(factor)
            if by_level.height < 2:
                continue
            for level, n, r in by_level.iter_rows():
                if r in (0, n):
                    who = "all" if r == n else "none"
                    dropped[(factor, level)] = (n, r, (
                        f"not estimable: {who} of the {n} patients in this level responded (odds ratio "
                        f"{'infinite' if r == n else 'zero'}); they are left out of this model"
                    ))
                    separated.append((factor, level))
        if not separated:
            break
        keep = pl.lit(True)
        for factor, level in separated:
            keep = keep & (pl.col(factor) != level)
        data = data.filter(keep)
    references, levels, single = {}, {}, {}
    for factor in factors:
        present = sorted(data[factor].unique().to_list())
        if len(present) == 1:
            single[factor] = present[0]
        elif len(present) > 1:
            references[factor] = _reference(data, factor)
            levels[factor] = [level for level in present if level != references[factor]]
    return Design(factors, data, references, levels, dropped, single)


def _matrix(layout: Design) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Responders, patients and the design row of each covariate pattern. With factors only, patients who share
    a pattern share a likelihood term, so the binomial fit on patterns gives exactly the logistic fit on
    patients (same estimates and standard errors) in memory that grows with patterns, not patients."""
    terms = [(factor, level) for factor, factor_levels in layout.levels.items() for level in factor_levels]
    factors = list(layout.levels)
    if factors:
        # Sorted by pattern: polars' group_by returns groups in a different order on every run, and the fit's
        # floating-point sums follow the row order, so unsorted patterns change the last digits of the estimates.
        patterns = layout.data.group_by(factors).agg(
            pl.col("responder").cast(pl.Float64).sum().alias("responders"), pl.len().cast(pl.Float64).alias("patients")
        ).sort(factors)
    else:
        patterns = layout.data.select(
            pl.col("responder").cast(pl.Float64).sum().alias("responders"), pl.len().cast(pl.Float64).alias("patients")
        )
    columns = [np.ones(patterns.height)]
    columns += [(patterns[factor] == level).cast(pl.Float64).to_numpy() for factor, level in terms]
    return patterns["responders"].to_numpy(), patterns["patients"].to_numpy(), np.column_stack(columns), terms


def _not_estimable_reason(
    responders: np.ndarray, patients: np.ndarray, x: np.ndarray, settings: MetricSettings
) -> str | None:
    n, coefficients = int(patients.sum()), x.shape[1] - 1
    events, non_events = int(responders.sum()), int(n - responders.sum())
    if n == 0:
        return "not estimable: no treated patients"
    if coefficients == 0:
        return "not estimable: every factor has a single level"
    if min(events, non_events) == 0:
        return f"not estimable: {'all' if non_events == 0 else 'none'} of the {n} patients responded"
    needed = settings.predictor_min_events_per_parameter * coefficients
    if min(events, non_events) < needed:
        return (
            f"not estimable: {events} responders and {non_events} non-responders are too few for {coefficients} "
            f"coefficients (the protocol file asks for {needed:g} of each)"
        )
    if np.linalg.matrix_rank(x) < x.shape[1]:
        return "not estimable: the factors' levels coincide (the same patients define two levels)"
    return None


@contextmanager
def deterministic_numerics() -> Iterator[None]:
    """Run the models with one BLAS thread and with numpy's floating-point warnings silenced here, so a table
    depends on its input only.

    Threads: OpenBLAS splits a product's sums across its threads, so their number changes the last bits, and the
    Firth fits' stopping rules can carry those bits into published digits (measured at 20 × 5,000: one Firth
    p-value's 12th digit differs between 1 and 2 threads). One thread is also far cheaper on a shared machine:
    two threads waiting for a busy core made the multivariable fit take 1.73 CPU s instead of 0.10.
    Warnings: `np.seterr` and the warnings filters are process-wide state any other code may change (an error
    filter, `np.seterr(all="raise")`); estimability is judged from the results (fit()), never from a warning."""
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def _glm(
    responders: np.ndarray, patients: np.ndarray, x: np.ndarray
) -> tuple[bool, np.ndarray, np.ndarray, np.ndarray]:
    """The binomial fit on covariate patterns: converged, estimates, standard errors, Wald p-values.

    Nothing raised by a warning: statsmodels divides the residual sum of squares of each IRLS step by the residual
    degrees of freedom, zero in a saturated model (every univariable one). Whether that is 1e-27 / 0 ("divide by
    zero") or 0 / 0 ("invalid value") depends on the last bits of a least-squares solve; turned into an error, it
    made a model "not estimable" on those bits alone. The binomial family never uses that scale."""
    with deterministic_numerics():
        outcome = np.column_stack([responders, patients - responders])
        result = sm.GLM(outcome, x, family=sm.families.Binomial()).fit(maxiter=100, tol=1e-12)
        return bool(result.converged), np.asarray(result.params), np.asarray(result.bse), np.asarray(result.pvalues)


def fit(layout: Design, model: str, settings: MetricSettings) -> list[dict]:
    """One row per factor level: the odds ratio against the reference level with its interval, or why not."""
    responders, patients, x, terms = _matrix(layout)
    reason = _not_estimable_reason(responders, patients, x, settings)
    estimates: dict[tuple[str, str], tuple[float, float, float, float]] = {}
    if reason is None:
        try:
            converged, params, bse, pvalues = _glm(responders, patients, x)
        except (PerfectSeparationError, np.linalg.LinAlgError, ValueError) as exc:
            converged, params = False, np.array([math.nan])
            reason = f"not estimable: the fit failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
        if reason is None and not converged:
            reason = "not estimable: the fit did not converge"
        elif reason is None and not np.isfinite(params).all():
            # Overflow on the way to a separated solution: no estimate of this model is worth reporting.
            reason = "not estimable: the fit gave infinite or undefined estimates"
    if reason is None:
        z = stats.norm.ppf(0.975)
        for index, term in enumerate(terms, start=1):
            coef, se, p = float(params[index]), float(bse[index]), float(pvalues[index])
            # A quasi-separated level shows as an unbounded (or undefined) standard error.
            if math.isfinite(se) and se <= MAX_LOG_ODDS_SE and math.isfinite(p):
                estimates[term] = (math.exp(coef), math.exp(coef - z * se), math.exp(coef + z * se), p)
    return _rows(layout, model, estimates, reason)


def level_counts(data: pl.DataFrame, factor: str) -> dict[str, tuple[int, int]]:
    """Patients and responders in each level of `factor`, in one pass over the patients (a filter per level read
    them all once per level: 649 polars queries for the step at the 100-site shape, 185 now)."""
    counts = data.group_by(factor).agg(pl.len(), pl.col("responder").sum())
    return {level: (int(patients), int(responders)) for level, patients, responders in counts.iter_rows()}


def _rows(layout: Design, model: str, estimates: dict, reason: str | None) -> list[dict]:
    """Per factor, in FACTORS order: the reference level, the other levels, then the levels left out."""
    data = layout.data
    shared = {
        "method": "ml", "model": model, "model_patients": data.height, "model_responders": int(data["responder"].sum()),
        "odds_ratio": None, "ci_low": None, "ci_high": None, "p_value": None,
    }
    rows = []
    for factor in layout.factors:
        reference = layout.references.get(factor)
        counts = level_counts(data, factor)
        for level in [reference, *layout.levels[factor]] if reference is not None else []:
            patients, responders = counts[level]
            row = {
                **shared, "factor": factor, "level": level, "reference_level": reference,
                "patients": patients, "responders": responders,
            }
            if reason is not None:
                row.update(estimable=False, note=reason)
            elif level == reference:
                row.update(odds_ratio=1.0, estimable=True, note="reference level")
            elif (factor, level) in estimates:
                odds_ratio, low, high, p = estimates[(factor, level)]
                row.update(odds_ratio=odds_ratio, ci_low=low, ci_high=high, p_value=p, estimable=True, note=None)
            else:
                row.update(estimable=False, note="not estimable: quasi-complete separation (the odds ratio's "
                           "interval is unbounded)")
            rows.append(row)
        if factor in layout.single_level:
            rows.append({
                **shared, "factor": factor, "level": layout.single_level[factor], "reference_level": None,
                "patients": data.height, "responders": shared["model_responders"], "estimable": False,
                "note": "not estimable: every patient in the model has this level",
            })
        for (dropped_factor, level), (patients, responders, why) in layout.dropped_levels.items():
            if dropped_factor == factor:
                rows.append({
                    **shared, "factor": factor, "level": level, "reference_level": reference,
                    "patients": patients, "responders": responders, "estimable": False, "note": why,
                })
    return rows


def outcome_columns() -> list[str]:
    """The columns of metrics.patient_outcomes the models read. Reading only these matters: the whole table of a
    million patients in polars was the peak of a run at 100 sites × 5,000 patients (1.5 GB RSS)."""
    from ketreg.metrics.firth import CATEGORICAL, CONTINUOUS

    # No patient key: the models see covariate patterns (grouped and sorted), so the patients' order, which the
    # key would fix, changes no figure (tested), and a million 32-character keys cost memory.
    return sorted({"responder", "infusion_count", "site_id", *FACTORS.values(), *CATEGORICAL.values(),
                   *CONTINUOUS.values()})


def response_predictors(outcomes: pl.DataFrame, settings: MetricSettings) -> pl.DataFrame:
    """The rows of metrics.response_predictors: maximum-likelihood fits (a univariable model per factor, then
    the multivariable model), then the Firth-penalised ones, with Holm and Benjamini–Hochberg adjusted p-values."""
    from ketreg.metrics.firth import adjust_p_values, firth_predictors

    patients = treated_patients(outcomes)
    rows = []
    # One BLAS thread for the rank checks too (deterministic_numerics pins the fits): on a loaded 2-core machine the
    # second thread's waits cost more CPU than it saves (at 20 × 5,000 the step took 4.9–8.0 CPU s with two threads).
    with threadpool_limits(limits=1, user_api="blas"):
        for factor in FACTORS:
            rows += fit(design(patients, [factor], settings), "univariable", settings)
        rows += fit(design(patients, list(FACTORS), settings), "multivariable", settings)
        rows += firth_predictors(outcomes, settings)
    unadjusted = {name: kind for name, kind in SCHEMA.items() if name not in ("p_holm", "p_bh")}
    return adjust_p_values(pl.DataFrame(rows, schema=unadjusted)).select(list(SCHEMA))
