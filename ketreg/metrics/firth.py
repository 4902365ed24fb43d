"""Predictors of response that survive small data: Firth-penalised logistic regression (Firth 1993; Heinze &
Schemper 2002) with profile penalised-likelihood 95 % intervals and penalised likelihood-ratio p-values, from
`firthmodels`. Baseline NPRS enters as a continuous term (odds ratio per NPRS point); categorical factors are
compared with reference levels fixed in the protocol file; a patient without a value of a covariate is left out
of the models with that covariate (complete case) and counted, never made a level of its own. The multivariable
model carries a sample-size adequacy line by the criteria of Riley et al. (BMJ 2020).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from firthmodels import FirthLogisticRegression
from statsmodels.stats.multitest import multipletests

from ketreg.metrics.predictors import POOLED_LEVEL, deterministic_numerics, level_counts
from schemas.protocol import MetricSettings

# Factor name in the table → column of metrics.patient_outcomes (baseline NPRS is continuous).
CATEGORICAL = {"etiology": "cnp_etiology", "cancer_type": "cancer_type", "metastatic": "metastatic", "site": "site_id"}
CONTINUOUS = {"baseline_nprs": "nprs_baseline"}
PER_POINT = "per NPRS point"
DIGITS = 12  # estimates rounded to 12 significant digits so every run publishes the same digits


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(f"{value:.{DIGITS}g}")


def predictor_frame(outcomes: pl.DataFrame) -> pl.DataFrame:
    """Treated patients: responder (study definition) and the covariates present in `outcomes`, categorical ones
    as text (null = missing), in a fixed order."""
    present = set(outcomes.columns)
    return outcomes.filter(pl.col("infusion_count") > 0).sort(
        [c for c in ("site_id", "patient_key") if c in present]
    ).select(
        pl.col("responder").fill_null(False),
        *[pl.col(column).cast(pl.String).str.to_lowercase().alias(factor) if factor == "metastatic"
          else pl.col(column).cast(pl.String).alias(factor)
          for factor, column in CATEGORICAL.items() if column in present],
        *[pl.col(column).cast(pl.Float64).alias(factor) for factor, column in CONTINUOUS.items() if column in present],
    )


def reference_level(data: pl.DataFrame, factor: str, settings: MetricSettings) -> tuple[str, str | None]:
    """The configured reference level; when the protocol file names none for this factor (sites differ between
    registries) or it is absent from the data, the first level in alphabetical order — never the most frequent,
    which one more patient can flip."""
    present = sorted(data[factor].drop_nulls().unique().to_list())
    configured = settings.predictor_reference_levels.get(factor)
    if configured is not None and configured in present:
        return configured, None
    if configured is not None:
        return present[0], f"configured reference level {configured!r} has no patients; {present[0]!r} used"
    return present[0], None


def _pool(data: pl.DataFrame, factor: str, reference: str, min_patients: int) -> pl.DataFrame:
    counts = data.filter(pl.col(factor).is_not_null()).group_by(factor).len()
    rare = sorted(counts.filter((pl.col("len") < min_patients) & (pl.col(factor) != reference))[factor].to_list())
    if len(rare) < 2:
        return data
    return data.with_columns(
        pl.when(pl.col(factor).is_in(rare)).then(pl.lit(POOLED_LEVEL)).otherwise(pl.col(factor)).alias(factor)
    )


# Above this many (covariate patterns × parameters²) profile intervals and likelihood-ratio tests (one refit per
# bound and per term) take minutes: measured 208 s for the multivariable model of 30 sites × 300 patients
# (≈ 1.3e7) on a loaded 2-core machine, against under a second for the demo's 225 patients. A model that large
# has enough patients per parameter for the penalised Wald interval to agree with the profile one, so it is
# reported instead, and the row says so.
PROFILE_BUDGET = 1e6


def _fit(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray
) -> tuple[FirthLogisticRegression | None, np.ndarray | None, str | None, bool]:
    """Fit on covariate patterns (x, y; weights = patients per pattern: the same penalised likelihood as one row
    per patient, in memory that grows with patterns), then penalised LR tests and profile intervals; or why not.
    The last value says whether the intervals are profile (True) or penalised Wald (False)."""
    patients = int(weights.sum())
    if patients == 0:
        return None, None, "not estimable: no patients with every covariate recorded", True
    if y.all() or not y.any():
        return None, None, f"not estimable: {'all' if y.all() else 'none'} of the {patients} patients responded", True
    design = np.column_stack([np.ones(y.size), x])
    if np.linalg.matrix_rank(design) < design.shape[1]:
        return None, None, "not estimable: the covariates coincide (the same patients define two terms)", True
    model = FirthLogisticRegression(
        # Tighter tolerances than these stall in step-halving on sparse designs; at these the log odds ratios are
        # exact to about 1e-6, far below their standard errors.
        backend="numpy", max_iter=200, max_halfstep=50, gtol=1e-5, xtol=1e-6,
    )
    profile = y.size * design.shape[1] ** 2 <= PROFILE_BUDGET
    # One BLAS thread and no process-wide warning state (predictors.deterministic_numerics): the stopping rules
    # below carry the last bits of every product into the estimates. Non-convergence is read from converged_.
    with deterministic_numerics():
        try:
            model.fit(x, y, sample_weight=weights)
        except (ValueError, np.linalg.LinAlgError) as exc:
            return None, None, f"not estimable: the penalised fit failed ({str(exc).splitlines()[0][:120]})", True
        if not model.converged_:
            return None, None, "not estimable: the penalised fit did not converge", True
        if not profile:
            return model, model.conf_int(alpha=0.05, method="wald"), None, False
        model.lrt()
        intervals = model.conf_int(alpha=0.05, method="pl", max_iter=200, tol=1e-6)
    return model, intervals, None, True


def firth_model(data: pl.DataFrame, factors: list[str], model_name: str, settings: MetricSettings) -> list[dict]:
    """Rows of one Firth model (univariable: one factor; multivariable: all) in the response_predictors shape."""
    missing = {factor: int(data[factor].null_count()) for factor in factors}
    complete = data.drop_nulls(factors)
    references: dict[str, str] = {}
    reference_notes: dict[str, str] = {}
    terms: list[tuple[str, str]] = []
    for factor in factors:
        if factor in CONTINUOUS:
            terms.append((factor, PER_POINT))
            continue
        if complete[factor].n_unique() < 2:
            continue
        reference, note = reference_level(complete, factor, settings)
        references[factor] = reference
        if note:
            reference_notes[factor] = note
        complete = _pool(complete, factor, reference, settings.predictor_min_patients_per_level)
        terms += [(factor, level) for level in sorted(set(complete[factor].to_list()) - {reference})]
    # One row per covariate pattern and outcome, sorted so the fit sees them in the same order on every run.
    used = sorted({factor for factor, _ in terms})
    patterns = complete.group_by([*used, "responder"]).agg(pl.len().alias("patients")).sort([*used, "responder"])
    columns = [patterns[factor].to_numpy() if level == PER_POINT
               else (patterns[factor] == level).cast(pl.Float64).to_numpy() for factor, level in terms]
    y = patterns["responder"].to_numpy().astype(int)
    weights = patterns["patients"].to_numpy().astype(float)
    x = np.column_stack(columns) if columns else np.empty((patterns.height, 0))
    model, intervals, reason, profile = (None, None, "not estimable: every factor has a single level", True) \
        if not terms else _fit(x, y, weights)
    responders = int(complete["responder"].sum())
    shared = {"method": "firth", "model": model_name, "model_patients": complete.height,
              "model_responders": responders, "odds_ratio": None, "ci_low": None, "ci_high": None,
              "p_value": None}
    rows = []
    for factor in factors:
        counts = {PER_POINT: (complete.height, responders)} if factor in CONTINUOUS else level_counts(complete, factor)
        if factor in references:
            reference = references[factor]
            rows.append({**shared, "factor": factor, "level": reference, "reference_level": reference,
                         "patients": counts[reference][0], "responders": counts[reference][1],
                         "odds_ratio": 1.0 if reason is None else None, "estimable": reason is None,
                         "note": reason or reference_notes.get(factor, "reference level")})
        for index, (term_factor, level) in enumerate(terms):
            if term_factor != factor:
                continue
            row = {**shared, "factor": factor, "level": level, "reference_level": references.get(factor),
                   "patients": counts[level][0], "responders": counts[level][1]}
            if reason is not None:
                row.update(estimable=False, note=reason)
            else:
                assert model is not None and intervals is not None  # _fit gives both whenever it gives no reason
                coefficient = float(model.coef_[index])
                p_value = model.lrt_pvalues_[index] if profile else model.pvalues_[index]
                row.update(odds_ratio=_round(math.exp(coefficient)),
                           ci_low=_round(math.exp(intervals[index, 0])), ci_high=_round(math.exp(intervals[index, 1])),
                           p_value=_round(float(p_value)), estimable=True,
                           note="profile penalised-likelihood 95 % interval; penalised likelihood-ratio p" if profile
                           else "penalised Wald 95 % interval and p (a model this large: profile intervals skipped)")
                if not np.isfinite([p_value, *intervals[index]]).all():
                    row["note"] = "odds ratio estimated; its profile interval or likelihood-ratio test did not converge"
            rows.append(row)
        if missing[factor]:
            rows.append({**shared, "factor": factor, "level": None, "reference_level": None,
                         "patients": missing[factor], "responders": int(
                             data.filter(pl.col(factor).is_null())["responder"].sum()),
                         "estimable": False,
                         "note": f"{missing[factor]} treated patients have no recorded {factor}: left out of this "
                                 "model (complete case), not made a level"})
    if model_name == "multivariable":
        rows.append({**shared, "factor": "sample_size_adequacy", "level": None, "reference_level": None,
                     "patients": complete.height, "responders": responders, "estimable": reason is None,
                     "note": riley_line(complete.height, responders, len(terms), settings)})
    return rows


def riley_minimum_n(patients: int, events: int, parameters: int, shrinkage: float = 0.9,
                    nagelkerke_r2: float = 0.15, optimism: float = 0.05, margin: float = 0.05) -> dict[str, float]:
    """Minimum sample sizes of Riley et al. (BMJ 2020) for a binary-outcome model with `parameters` terms:
    (i) expected uniform shrinkage ≥ S, (ii) optimism in Nagelkerke R² ≤ δ, (iii) overall risk within ± margin.
    The anticipated Cox–Snell R² is `nagelkerke_r2` × its maximum (their conservative default 0.15)."""
    share = events / patients
    null_loglik = events * math.log(share) + (patients - events) * math.log(1 - share)
    max_r2 = 1 - math.exp(2 * null_loglik / patients)
    r2 = nagelkerke_r2 * max_r2
    n_shrinkage = parameters / ((shrinkage - 1) * math.log(1 - r2 / shrinkage))
    s_optimism = r2 / (r2 + optimism * max_r2)
    n_optimism = parameters / ((s_optimism - 1) * math.log(1 - r2 / s_optimism))
    n_risk = (1.959963984540054 / margin) ** 2 * share * (1 - share)
    return {"max_r2_cs": max_r2, "r2_cs": r2, "shrinkage": n_shrinkage, "optimism": n_optimism, "risk": n_risk,
            "required": float(math.ceil(max(n_shrinkage, n_optimism, n_risk) - 1e-9))}


def riley_line(patients: int, events: int, parameters: int, settings: MetricSettings) -> str:
    """One sentence a reader can act on: what the model would need and what the registry has."""
    if parameters == 0 or events in (0, patients):
        return "sample-size adequacy (Riley et al. 2020): not assessable without both responders and non-responders"
    need = riley_minimum_n(patients, events, parameters, settings.riley_shrinkage, settings.riley_nagelkerke_r2)
    required = int(need["required"])
    verdict = "adequate" if patients >= required else "too small"
    return (
        f"sample-size adequacy (Riley et al. 2020): {parameters} parameters, outcome share {events / patients:.3f}, "
        f"anticipated Cox–Snell R² {need['r2_cs']:.3f} ({settings.riley_nagelkerke_r2:g} × max "
        f"{need['max_r2_cs']:.3f}) "
        f"need ≥ {required} patients (shrinkage ≥ {settings.riley_shrinkage:g}: {math.ceil(need['shrinkage'])}; "
        f"R² optimism ≤ 0.05: {math.ceil(need['optimism'])}; overall risk ± 0.05: {math.ceil(need['risk'])}); "
        f"the registry has {patients} with {min(events, patients - events)} in the smaller outcome group "
        f"({min(events, patients - events) / parameters:.1f} per parameter): {verdict}"
    )


def firth_predictors(outcomes: pl.DataFrame, settings: MetricSettings) -> list[dict]:
    """Univariable Firth models (one per covariate), then the multivariable one."""
    data = predictor_frame(outcomes)
    factors = [factor for factor in (*CATEGORICAL, *CONTINUOUS) if factor in data.columns]
    rows: list[dict] = []
    for factor in factors:
        rows += firth_model(data, [factor], "univariable", settings)
    rows += firth_model(data, factors, "multivariable", settings)
    return rows


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values, computed exactly as statsmodels' `multipletests(method="holm")` does
    (same operations, so the same bits; tested), without the `gc.collect()` it runs on every call: a full
    collection of the step's heap, 0.7 s a call at 20 sites × 5,000 patients."""
    order = np.argsort(p_values)
    corrected = np.maximum.accumulate(p_values[order] * np.arange(p_values.size, 0, -1))
    corrected[corrected > 1] = 1
    adjusted = np.empty_like(corrected)
    adjusted[order] = corrected
    return adjusted


def adjust_p_values(table: pl.DataFrame) -> pl.DataFrame:
    """Holm and Benjamini–Hochberg adjusted p-values within each method and model (the family of tests a
    reader scans at once); empty where there is no p-value."""
    p_holm: list[float | None] = [None] * table.height
    p_bh: list[float | None] = [None] * table.height
    keys = list(zip(table["method"].to_list(), table["model"].to_list(), strict=True))
    p_values = table["p_value"].to_list()
    for family in sorted(set(keys)):
        positions = [i for i, key in enumerate(keys) if key == family and p_values[i] is not None]
        if not positions:
            continue
        raw = np.array([p_values[i] for i in positions], dtype=float)
        bh = multipletests(raw, method="fdr_bh")[1]
        for position, h, b in zip(positions, holm(raw), bh, strict=True):
            p_holm[position], p_bh[position] = _round(float(h)), _round(float(b))
    return table.with_columns(pl.Series("p_holm", p_holm, dtype=pl.Float64),
                              pl.Series("p_bh", p_bh, dtype=pl.Float64))
