"""Between-site heterogeneity without a pipeline run: DerSimonian–Laird against the textbook formulas written
out here and against statsmodels' combine_effects where τ² > 0, the truncation where statsmodels goes
negative, REML against Fisher scoring, the Higgins (2009) prediction interval, and the ICC with its F-based
interval against an ANOVA on individual patients."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

from ketreg.metrics.heterogeneity import (
    dersimonian_laird,
    heterogeneity_from_outcomes,
    heterogeneity_rows,
    logit_effects,
    restricted_ml,
    site_heterogeneity,
    site_icc_interval,
)

# (responders, patients) per site.
HETEROGENEOUS = (np.array([40, 12, 30, 9, 25]), np.array([50, 30, 35, 25, 30]))
HOMOGENEOUS = (np.array([30, 29, 31, 30, 28, 32]), np.array([40, 40, 40, 40, 40, 40]))


def _textbook_dl(responders: np.ndarray, patients: np.ndarray) -> dict[str, float]:
    """DerSimonian & Laird (1986) by hand: logit rates, inverse-variance weights, τ² = max(0, (Q − df)/C)."""
    y = np.log(responders / (patients - responders))
    v = 1 / responders + 1 / (patients - responders)
    w = 1 / v
    fixed = (w * y).sum() / w.sum()
    q = (w * (y - fixed) ** 2).sum()
    df = y.size - 1
    c = w.sum() - (w**2).sum() / w.sum()
    tau2 = max(0.0, (q - df) / c)
    w_re = 1 / (v + tau2)
    mean = (w_re * y).sum() / w_re.sum()
    se = math.sqrt(1 / w_re.sum())
    t = stats.t.ppf(0.975, y.size - 2)
    return {"mean": mean, "se": se, "tau2": tau2, "q": q, "i2": max(0.0, (q - df) / q),
            "pi_low": mean - t * math.sqrt(tau2 + se**2), "pi_high": mean + t * math.sqrt(tau2 + se**2)}


def _expit(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.mark.parametrize("data", [HETEROGENEOUS, HOMOGENEOUS], ids=["tau2_positive", "tau2_truncated"])
def test_dersimonian_laird_row_equals_the_textbook_computation(data):
    row = next(r for r in heterogeneity_rows("responder_rate", *data) if r["method"] == "DL")
    expected = _textbook_dl(*data)
    z = stats.norm.isf(0.025)
    assert row["sites"] == data[0].size
    assert row["tau2"] == pytest.approx(expected["tau2"], rel=1e-10, abs=1e-12)
    assert row["q"] == pytest.approx(expected["q"], rel=1e-10)
    assert row["i2"] == pytest.approx(expected["i2"], abs=1e-10)
    assert row["pooled_estimate"] == pytest.approx(_expit(expected["mean"]), rel=1e-10)
    assert row["ci_low"] == pytest.approx(_expit(expected["mean"] - z * expected["se"]), rel=1e-10)
    assert row["ci_high"] == pytest.approx(_expit(expected["mean"] + z * expected["se"]), rel=1e-10)
    assert row["pi_low"] == pytest.approx(_expit(expected["pi_low"]), rel=1e-10)
    assert row["pi_high"] == pytest.approx(_expit(expected["pi_high"]), rel=1e-10)


def test_dersimonian_laird_matches_statsmodels_where_tau2_is_positive():
    y, v = logit_effects(*HETEROGENEOUS)
    ours = dersimonian_laird(y, v)
    reference = combine_effects(y, v, method_re="chi2")
    assert reference.tau2 > 0
    assert ours.tau2 == pytest.approx(reference.tau2, rel=1e-10)
    assert ours.mean == pytest.approx(reference.mean_effect_re, rel=1e-10)
    assert ours.se == pytest.approx(reference.sd_eff_w_re, rel=1e-10)
    assert ours.q == pytest.approx(reference.q, rel=1e-10)
    assert ours.i2 == pytest.approx(reference.i2, rel=1e-10)


def test_a_negative_statsmodels_tau2_is_truncated_at_zero_and_pools_like_the_fixed_effect():
    y, v = logit_effects(*HOMOGENEOUS)
    reference = combine_effects(y, v, method_re="chi2")
    assert reference.tau2 < 0 and reference.i2 < 0  # the pitfall of the stack notes
    ours = dersimonian_laird(y, v)
    assert ours.tau2 == 0.0 and ours.i2 == 0.0
    assert ours.mean == pytest.approx(reference.mean_effect_fe, rel=1e-12)


def _reml_by_fisher_scoring(y: np.ndarray, v: np.ndarray) -> float:
    """REML τ² by Fisher scoring (Viechtbauer 2005, eq. 12), truncated at 0: a different algorithm."""
    tau2 = 0.0
    for _ in range(500):
        w = 1 / (v + tau2)
        mean = (w * y).sum() / w.sum()
        updated = max(0.0, ((w**2) * ((y - mean) ** 2 - v)).sum() / (w**2).sum() + 1 / w.sum())
        if abs(updated - tau2) < 1e-14:
            break
        tau2 = updated
    return tau2


@pytest.mark.parametrize("data", [HETEROGENEOUS, HOMOGENEOUS], ids=["tau2_positive", "tau2_zero"])
def test_reml_tau2_matches_fisher_scoring(data):
    y, v = logit_effects(*data)
    assert restricted_ml(y, v).tau2 == pytest.approx(_reml_by_fisher_scoring(y, v), abs=1e-7)


def test_a_site_where_everyone_responded_keeps_its_weight_through_a_continuity_correction():
    y, v = logit_effects(np.array([10, 0]), np.array([10, 8]))
    assert y[0] == pytest.approx(math.log(10.5 / 0.5)) and v[0] == pytest.approx(1 / 10.5 + 1 / 0.5)
    assert y[1] == pytest.approx(math.log(0.5 / 8.5))


def test_two_sites_pool_without_a_prediction_interval_and_one_site_does_not_pool():
    two = heterogeneity_rows("responder_rate", np.array([8, 2]), np.array([10, 10]))
    assert all(r["pooled_estimate"] is not None and r["pi_low"] is None for r in two)
    one = site_heterogeneity({"responder_rate": pl.DataFrame({"site_id": ["a"], "patients": [10], "responders": [7]})})
    assert one["pooled_estimate"].null_count() == 2 and one["sites"].to_list() == [1, 1]
    assert one.columns == ["metric", "method", "sites", "pooled_estimate", "ci_low", "ci_high", "tau2", "i2", "q",
                           "pi_low", "pi_high"]


def test_site_icc_and_its_interval_follow_the_anova_on_individual_patients():
    sizes, responders = [20, 35, 18, 27], [17, 15, 14, 10]
    groups = [np.array([1.0] * r + [0.0] * (n - r)) for n, r in zip(sizes, responders, strict=True)]
    values = np.concatenate(groups)
    k, total = len(groups), values.size
    msb = sum(g.size * (g.mean() - values.mean()) ** 2 for g in groups) / (k - 1)
    msw = sum(((g - g.mean()) ** 2).sum() for g in groups) / (total - k)
    n0 = (total - sum(g.size**2 for g in groups) / total) / (k - 1)
    f = msb / msw
    f_low = f / stats.f.ppf(0.975, k - 1, total - k)
    f_high = f * stats.f.ppf(0.975, total - k, k - 1)
    icc = site_icc_interval(sizes, responders)
    assert icc.estimate == pytest.approx((msb - msw) / (msb + (n0 - 1) * msw), rel=1e-10)
    assert icc.ci_low == pytest.approx(max(0.0, (f_low - 1) / (f_low + n0 - 1)), abs=1e-12)
    assert icc.ci_high == pytest.approx((f_high - 1) / (f_high + n0 - 1), rel=1e-10)
    assert icc.ci_low <= icc.estimate <= icc.ci_high


def test_an_icc_below_zero_is_reported_as_zero_with_a_positive_upper_bound():
    icc = site_icc_interval([40, 40, 40], [20, 20, 21])
    assert icc.estimate == 0.0 and icc.ci_low == 0.0 and icc.ci_high > 0


def _outcomes(with_primary: bool) -> pl.DataFrame:
    sites = {"a": (20, 15, 12), "b": (25, 12, 9), "c": (18, 16, 14)}  # patients, responders, sustained
    rows = [{"patient_key": f"{s}{i:02d}", "site_id": s, "infusion_count": 3, "responder": i < r,
             "sustained_responder": i < k, "primary_assessment_observed": True, "nprs_primary": 4.0,
             "nprs_change_primary": -3.0}
            for s, (n, r, k) in sites.items() for i in range(n)]
    frame = pl.DataFrame(rows)
    return frame if with_primary else frame.drop("sustained_responder", "primary_assessment_observed",
                                                 "nprs_primary", "nprs_change_primary")


def test_the_primary_estimand_is_pooled_beside_the_study_definition_when_it_is_built():
    both = heterogeneity_from_outcomes(_outcomes(with_primary=True))
    assert sorted(set(both["metric"])) == ["responder_rate", "sustained_responder_rate"]
    primary = next(r for r in both.iter_rows(named=True)
                   if r["metric"] == "sustained_responder_rate" and r["method"] == "DL")
    expected = _textbook_dl(np.array([12, 9, 14]), np.array([20, 25, 18]))
    assert primary["pooled_estimate"] == pytest.approx(_expit(expected["mean"]), rel=1e-10)
    study_only = heterogeneity_from_outcomes(_outcomes(with_primary=False))
    assert set(study_only["metric"]) == {"responder_rate"}
    assert study_only.equals(both.filter(pl.col("metric") == "responder_rate"))
