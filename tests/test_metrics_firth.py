"""Firth predictors without a pipeline run: the published 2×2 result (Firth's estimate of a binary covariate is
the log odds ratio with ½ added to each cell; Firth 1993, Heinze & Schemper 2002), profile penalised-likelihood
intervals and penalised likelihood-ratio p-values against a computation of the penalised likelihood written out
here, reference levels from the protocol file, missing covariates counted but not made a level, Holm and
Benjamini–Hochberg adjustment, and the Riley et al. (2020) criteria."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import optimize, stats

from ketreg.metrics.firth import adjust_p_values, firth_model, firth_predictors, predictor_frame, riley_minimum_n
from schemas.protocol import load_metric_settings

SETTINGS = load_metric_settings()


def _outcomes(rows: list[tuple[str, str, str, bool | None, float | None, bool]]) -> pl.DataFrame:
    """Treated patients: (site, etiology, cancer type, metastatic, baseline NPRS, responder)."""
    return pl.DataFrame(
        [{"patient_key": f"p{i:03d}", "site_id": site, "cnp_etiology": etiology, "cancer_type": cancer,
          "metastatic": metastatic, "nprs_baseline": baseline, "responder": responder, "infusion_count": 3}
         for i, (site, etiology, cancer, metastatic, baseline, responder) in enumerate(rows)],
        schema={"patient_key": pl.String, "site_id": pl.String, "cnp_etiology": pl.String, "cancer_type": pl.String,
                "metastatic": pl.Boolean, "nprs_baseline": pl.Int64, "responder": pl.Boolean,
                "infusion_count": pl.Int64},
    )


def _two_by_two(a: int, b: int, c: int, d: int) -> pl.DataFrame:
    """Metastatic: a responders, b non-responders; not metastatic: c responders, d non-responders."""
    rows = ([("s", "cipn", "breast", True, 7.0, True)] * a + [("s", "cipn", "breast", True, 7.0, False)] * b
            + [("s", "cipn", "breast", False, 7.0, True)] * c + [("s", "cipn", "breast", False, 7.0, False)] * d)
    return predictor_frame(_outcomes(rows))


def _term(rows: list[dict], factor: str, level: str) -> dict:
    return next(r for r in rows if r["factor"] == factor and r["level"] == level)


@pytest.mark.parametrize("cells", [(12, 3, 7, 9), (10, 0, 6, 8), (1, 14, 9, 2)], ids=["plain", "zero_cell", "rare"])
def test_firth_odds_ratio_of_a_binary_covariate_is_the_half_corrected_cross_product(cells):
    a, b, c, d = cells
    rows = firth_model(_two_by_two(a, b, c, d), ["metastatic"], "univariable", SETTINGS)
    expected = (a + 0.5) * (d + 0.5) / ((b + 0.5) * (c + 0.5))
    term = _term(rows, "metastatic", "true")
    assert term["reference_level"] == "false" and term["estimable"]
    assert term["odds_ratio"] == pytest.approx(expected, rel=1e-5)


def _penalised_loglik(beta: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """log L(β) + ½ log det I(β) for logistic regression (Firth 1993)."""
    eta = x @ beta
    p = 1 / (1 + np.exp(-eta))
    loglik = float((y * eta - np.log1p(np.exp(eta))).sum())
    information = x.T @ (x * (p * (1 - p))[:, None])
    return loglik + 0.5 * float(np.linalg.slogdet(information)[1])


def test_profile_interval_and_p_value_follow_the_penalised_likelihood():
    a, b, c, d = 12, 3, 7, 9
    data = _two_by_two(a, b, c, d)
    term = _term(firth_model(data, ["metastatic"], "univariable", SETTINGS), "metastatic", "true")
    x = np.column_stack([np.ones(data.height), (data["metastatic"] == "true").cast(pl.Float64).to_numpy()])
    y = data["responder"].cast(pl.Float64).to_numpy()
    best = optimize.minimize(lambda beta: -_penalised_loglik(beta, x, y), np.zeros(2), method="BFGS",
                             options={"gtol": 1e-10})

    def profile(slope: float) -> float:
        return -optimize.minimize_scalar(lambda b0: -_penalised_loglik(np.array([b0, slope]), x, y)).fun

    maximum = -best.fun
    critical = stats.chi2.ppf(0.95, 1) / 2
    low = optimize.brentq(lambda s: maximum - profile(s) - critical, best.x[1] - 10, best.x[1])
    high = optimize.brentq(lambda s: maximum - profile(s) - critical, best.x[1], best.x[1] + 10)
    assert math.log(term["odds_ratio"]) == pytest.approx(best.x[1], abs=1e-4)
    assert math.log(term["ci_low"]) == pytest.approx(low, abs=1e-3)
    assert math.log(term["ci_high"]) == pytest.approx(high, abs=1e-3)
    assert term["p_value"] == pytest.approx(stats.chi2.sf(2 * (maximum - profile(0.0)), 1), rel=1e-3)


def test_reference_levels_come_from_the_protocol_file_not_from_the_most_frequent_level():
    rows = [("s1", "surgery", "lung", False, 6.0, i % 2 == 0) for i in range(12)]
    rows += [("s1", "cipn", "breast", False, 8.0, i % 3 == 0) for i in range(6)]
    fits = firth_model(predictor_frame(_outcomes(rows)), ["etiology", "cancer_type"], "multivariable", SETTINGS)
    assert SETTINGS.predictor_reference_levels["etiology"] == "cipn"
    assert {r["reference_level"] for r in fits if r["factor"] == "etiology"} == {"cipn"}
    assert {r["reference_level"] for r in fits if r["factor"] == "cancer_type"} == {"breast"}


def test_missing_covariates_are_counted_and_left_out_never_a_level():
    rows = [("s1", "cipn", "breast", i % 2 == 0, float(4 + i % 6), i % 3 != 0) for i in range(20)]
    rows += [("s1", "cipn", "breast", None, 7.0, True)] * 3 + [("s1", "cipn", "breast", True, None, False)] * 2
    fits = firth_model(predictor_frame(_outcomes(rows)), ["metastatic", "baseline_nprs"], "multivariable", SETTINGS)
    missing = {r["factor"]: r for r in fits if r["level"] is None and r["factor"] != "sample_size_adequacy"}
    assert missing["metastatic"]["patients"] == 3 and missing["baseline_nprs"]["patients"] == 2
    assert not missing["metastatic"]["estimable"] and "not made a level" in missing["metastatic"]["note"]
    assert {r["level"] for r in fits if r["factor"] == "metastatic"} == {"false", "true", None}
    assert {r["model_patients"] for r in fits} == {20}
    per_point = _term(fits, "baseline_nprs", "per NPRS point")
    assert per_point["estimable"] and per_point["reference_level"] is None


def test_firth_fits_where_maximum_likelihood_separates():
    # Every metastatic patient responded: ML has no finite odds ratio; Firth has one, with a finite interval.
    rows = [("s1", "cipn", "breast", True, 7.0, True)] * 6 + [("s1", "cipn", "breast", False, 7.0, i < 4)
                                                              for i in range(10)]
    term = _term(firth_model(predictor_frame(_outcomes(rows)), ["metastatic"], "univariable", SETTINGS),
                 "metastatic", "true")
    assert term["estimable"] and math.isfinite(term["ci_high"]) and term["odds_ratio"] > 1


def test_holm_and_benjamini_hochberg_follow_their_step_rules():
    p = [0.01, 0.04, 0.03, 0.2, None]
    table = pl.DataFrame({"method": ["firth"] * 5, "model": ["univariable"] * 5, "p_value": p})
    adjusted = adjust_p_values(table)
    raw = np.array(p[:4])
    order = np.argsort(raw)
    m = raw.size
    holm = np.maximum.accumulate((m - np.arange(m)) * raw[order])
    bh = np.minimum.accumulate((m / np.arange(m, 0, -1)) * raw[order][::-1])[::-1]
    expected_holm, expected_bh = np.empty(m), np.empty(m)
    expected_holm[order], expected_bh[order] = np.minimum(holm, 1), np.minimum(bh, 1)
    assert adjusted["p_holm"].to_list()[:4] == pytest.approx(list(expected_holm))
    assert adjusted["p_bh"].to_list()[:4] == pytest.approx(list(expected_bh))
    assert adjusted["p_holm"][4] is None and adjusted["p_bh"][4] is None


def test_riley_criteria_by_their_formulas():
    patients, events, parameters = 200, 60, 8
    need = riley_minimum_n(patients, events, parameters)
    phi = events / patients
    max_r2 = 1 - (phi**phi * (1 - phi) ** (1 - phi)) ** 2
    r2 = 0.15 * max_r2
    assert need["max_r2_cs"] == pytest.approx(max_r2)
    assert need["shrinkage"] == pytest.approx(parameters / ((0.9 - 1) * math.log(1 - r2 / 0.9)))
    s = r2 / (r2 + 0.05 * max_r2)
    assert need["optimism"] == pytest.approx(parameters / ((s - 1) * math.log(1 - r2 / s)))
    assert need["risk"] == pytest.approx((1.959963984540054 / 0.05) ** 2 * phi * (1 - phi))
    assert need["required"] == math.ceil(max(need["shrinkage"], need["optimism"], need["risk"]))


def test_every_firth_model_has_its_rows_and_the_multivariable_one_an_adequacy_line():
    rng = np.random.default_rng(11)
    rows = [(f"s{i % 3}", ["cipn", "surgery", "radiation"][i % 3], ["breast", "lung"][i % 2], bool(i % 4 == 0),
             float(rng.integers(3, 11)), bool(rng.random() < 0.7)) for i in range(60)]
    fits = firth_predictors(_outcomes(rows), SETTINGS)
    assert {r["method"] for r in fits} == {"firth"}
    assert {(r["model"], r["factor"]) for r in fits if r["model"] == "univariable"} == {
        ("univariable", f) for f in ("etiology", "cancer_type", "metastatic", "site", "baseline_nprs")}
    adequacy = [r for r in fits if r["factor"] == "sample_size_adequacy"]
    assert len(adequacy) == 1 and adequacy[0]["model"] == "multivariable"
    assert adequacy[0]["note"].startswith("sample-size adequacy (Riley et al. 2020)")
    assert "the registry has 60" in adequacy[0]["note"]


def test_a_model_too_large_for_profile_intervals_reports_penalised_wald_ones_and_says_so(monkeypatch):
    import ketreg.metrics.firth as firth

    data = _two_by_two(40, 12, 25, 30)
    profile = _term(firth_model(data, ["metastatic"], "univariable", SETTINGS), "metastatic", "true")
    monkeypatch.setattr(firth, "PROFILE_BUDGET", 1)
    wald = _term(firth_model(data, ["metastatic"], "univariable", SETTINGS), "metastatic", "true")
    assert wald["odds_ratio"] == profile["odds_ratio"]
    assert wald["note"].startswith("penalised Wald") and profile["note"].startswith("profile")
    se = math.sqrt(1 / 40.5 + 1 / 12.5 + 1 / 25.5 + 1 / 30.5)  # Wald SE of the half-corrected log odds ratio
    assert math.log(wald["ci_high"] / wald["ci_low"]) == pytest.approx(2 * 1.959963984540054 * se, rel=0.05)
    assert wald["ci_low"] == pytest.approx(profile["ci_low"], rel=0.1)
