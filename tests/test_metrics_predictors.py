"""Predictors of response without a pipeline run: the odds ratios equal a logistic regression fitted directly
with statsmodels' formula interface, and sparse data give "not estimable" rows instead of errors."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
import statsmodels.formula.api as smf

from ketreg.metrics.predictors import POOLED_LEVEL
from ketreg.metrics.predictors import response_predictors as all_predictors
from schemas.protocol import load_metric_settings

SETTINGS = load_metric_settings()


def response_predictors(cohort: pl.DataFrame, settings) -> pl.DataFrame:
    """The maximum-likelihood rows (the Firth rows beside them are tested in test_metrics_firth.py)."""
    return all_predictors(cohort, settings).filter(pl.col("method") == "ml")


def _cohort(n: int, seed: int = 3) -> pl.DataFrame:
    """Treated patients whose odds of response depend on etiology, metastatic disease and baseline band."""
    rng = np.random.default_rng(seed)
    etiology = rng.choice(["cipn", "tumor_compression", "surgery"], n, p=[0.5, 0.3, 0.2])
    metastatic = rng.random(n) < 0.3
    band = rng.choice(["7-10", "4-6"], n, p=[0.7, 0.3])
    site = rng.choice(["a", "b", "c"], n)
    cancer = rng.choice(["breast", "lung", "prostate"], n, p=[0.5, 0.3, 0.2])
    log_odds = 1.0 - 1.0 * (etiology == "tumor_compression") + 0.5 * metastatic - 0.7 * (band == "4-6")
    responder = rng.random(n) < 1 / (1 + np.exp(-log_odds))
    return pl.DataFrame({
        "site_id": site, "cnp_etiology": etiology, "cancer_type": cancer, "metastatic": metastatic,
        "baseline_nprs_band": band, "infusion_count": np.full(n, 3), "responder": responder,
    })


def _row(table: pl.DataFrame, model: str, factor: str, level: str) -> dict:
    return table.filter(
        (pl.col("model") == model) & (pl.col("factor") == factor) & (pl.col("level") == level)
    ).row(0, named=True)


def test_multivariable_odds_ratios_equal_a_direct_statsmodels_fit():
    cohort = _cohort(1500)
    table = response_predictors(cohort, SETTINGS)

    frame = cohort.with_columns(
        pl.col("responder").cast(pl.Int64), pl.col("metastatic").cast(pl.String).str.to_lowercase()
    ).to_pandas()
    references = {
        factor: _row(table, "multivariable", factor, level)["reference_level"]
        for factor, level in (("etiology", "surgery"), ("cancer_type", "lung"), ("metastatic", "true"),
                              ("baseline_nprs_band", "4-6"), ("site", "b"))
    }
    formula = "responder ~ " + " + ".join(
        f"C({column}, Treatment(reference='{references[factor]}'))"
        for factor, column in (("etiology", "cnp_etiology"), ("cancer_type", "cancer_type"),
                               ("metastatic", "metastatic"), ("baseline_nprs_band", "baseline_nprs_band"),
                               ("site", "site_id"))
    )
    fit = smf.logit(formula, data=frame).fit(disp=0)
    conf = fit.conf_int()
    for name, coefficient in fit.params.items():
        if name == "Intercept":
            continue
        column = name.split(",")[0].removeprefix("C(")
        level = name.rsplit("[T.", 1)[1].rstrip("]")
        factor = {"cnp_etiology": "etiology", "site_id": "site"}.get(column, column)
        row = _row(table, "multivariable", factor, level)
        assert row["estimable"], row
        assert row["odds_ratio"] == pytest.approx(np.exp(coefficient), rel=1e-6)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(np.exp(conf.loc[name])), rel=1e-6)
        assert row["p_value"] == pytest.approx(fit.pvalues[name], rel=1e-5)
    # The simulated effects show: compression lowers the odds of response.
    assert _row(table, "multivariable", "etiology", "tumor_compression")["ci_high"] < 1


def test_univariable_odds_ratio_is_the_cross_product_of_the_two_by_two_table():
    cohort = _cohort(800)
    table = response_predictors(cohort, SETTINGS)
    counts = cohort.group_by("metastatic").agg(pl.col("responder").sum().alias("r"), pl.len().alias("n"))
    by = {m: (r, n - r) for m, r, n in counts.iter_rows()}
    expected = (by[True][0] / by[True][1]) / (by[False][0] / by[False][1])
    row = _row(table, "univariable", "metastatic", "true")
    assert row["reference_level"] == "false"
    assert row["odds_ratio"] == pytest.approx(expected, rel=1e-6)
    assert (row["patients"], row["responders"]) == (sum(by[True]), by[True][0])


def test_a_level_where_everyone_responded_is_not_estimable_and_left_out():
    cohort = pl.concat([
        _cohort(600),
        pl.DataFrame({
            "site_id": ["a"] * 6, "cnp_etiology": ["radiation"] * 6, "cancer_type": ["breast"] * 6,
            "metastatic": [False] * 6, "baseline_nprs_band": ["7-10"] * 6, "infusion_count": [3] * 6,
            "responder": [True] * 6,
        }),
    ])
    table = response_predictors(cohort, SETTINGS)
    for model in ("univariable", "multivariable"):
        radiation = _row(table, model, "etiology", "radiation")
        assert not radiation["estimable"] and radiation["odds_ratio"] is None
        assert radiation["note"].startswith("not estimable: all of the 6 patients")
        assert _row(table, model, "etiology", "tumor_compression")["estimable"]


def test_too_few_non_responders_make_the_multivariable_model_not_estimable():
    cohort = _cohort(60)
    table = response_predictors(cohort, SETTINGS)
    multivariable = table.filter(pl.col("model") == "multivariable")
    assert not multivariable["estimable"].any()
    assert multivariable["note"].str.contains("too few").all()
    assert multivariable["odds_ratio"].null_count() == multivariable.height


def test_rare_levels_are_pooled():
    cohort = _cohort(400).with_columns(
        pl.when(pl.int_range(pl.len()) < 3).then(pl.lit("sarcoma"))
        .when(pl.int_range(pl.len()) < 6).then(pl.lit("pancreatic"))
        .otherwise(pl.col("cancer_type")).alias("cancer_type")
    )
    table = response_predictors(cohort, dataclasses.replace(SETTINGS, predictor_min_patients_per_level=5))
    levels = set(table.filter((pl.col("model") == "univariable") & (pl.col("factor") == "cancer_type"))["level"])
    assert POOLED_LEVEL in levels and not {"sarcoma", "pancreatic"} & levels


def test_one_site_is_reported_not_estimable_for_the_site_factor():
    cohort = _cohort(300).with_columns(pl.lit("only").alias("site_id"))
    table = response_predictors(cohort, SETTINGS)
    site = _row(table, "univariable", "site", "only")
    assert not site["estimable"] and "every patient" in site["note"]


@pytest.mark.parametrize("n", [0, 1, 3])
def test_tiny_or_empty_cohorts_never_fail(n: int):
    cohort = _cohort(max(n, 1)).head(n)
    table = response_predictors(cohort, SETTINGS)
    assert not table["estimable"].any()


def test_patients_without_an_infusion_are_left_out():
    cohort = _cohort(200).with_columns(
        pl.when(pl.int_range(pl.len()) < 50).then(0).otherwise(pl.col("infusion_count")).alias("infusion_count")
    )
    table = response_predictors(cohort, SETTINGS)
    assert _row(table, "univariable", "site", "a")["model_patients"] == 150


def test_a_cohort_where_everyone_responded_says_so_once_per_row():
    cohort = _cohort(100).with_columns(pl.lit(True).alias("responder"))
    table = response_predictors(cohort, SETTINGS)
    assert not table["estimable"].any()
    assert table["note"].str.starts_with("not estimable: all of the 100 patients responded").all()


def test_the_patients_order_changes_no_figure():
    """The step reads the outcomes unordered and without the patient key: every model fits on sorted covariate
    patterns, so any order of the same patients gives the same table, bit for bit."""
    cohort = _cohort(2_000, seed=11).with_columns(
        nprs_baseline=pl.Series(np.random.default_rng(11).integers(4, 11, 2_000)))
    first = all_predictors(cohort, SETTINGS)
    assert first.filter(pl.col("estimable") & (pl.col("method") == "firth")).height > 0
    for seed in (1, 2):
        assert all_predictors(cohort.sample(fraction=1.0, shuffle=True, seed=seed), SETTINGS).equals(first)


def test_holm_adjustment_is_bit_for_bit_statsmodels():
    from statsmodels.stats.multitest import multipletests

    from ketreg.metrics.firth import holm

    rng = np.random.default_rng(5)
    for p_values in (rng.random(40), np.round(rng.random(60) * 0.1, 3), np.array([0.04, 0.04, 0.5, 0.001, 0.9]),
                     np.array([0.3])):
        assert np.array_equal(holm(p_values), multipletests(p_values, method="holm")[1])


def test_a_saturated_fit_whose_residuals_vanish_exactly_is_estimable():
    """Half of each metastatic level responded: the univariable model's least-squares step is exact, so statsmodels
    computes the (unused) scale as 0 / 0 residual degrees of freedom. That warning once made the model "not
    estimable"; the odds ratio is 1 with the 2 × 2 table's Woolf interval."""
    n = 200
    cohort = _cohort(n).with_columns(
        metastatic=pl.int_range(n) % 4 < 2, responder=pl.int_range(n) % 8 < 4, site_id=pl.lit("a"))
    row = _row(response_predictors(cohort, SETTINGS), "univariable", "metastatic", "true")
    assert row["estimable"], row["note"]
    half_width = 1.959963984540054 * math.sqrt(4 / 50)  # Woolf: 1/a + 1/b + 1/c + 1/d, 50 patients in each cell
    assert row["odds_ratio"] == pytest.approx(1.0, abs=1e-12)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((math.exp(-half_width), math.exp(half_width)), rel=1e-9)


_FIT_IN_A_FRESH_PROCESS = """
import sys, warnings
import numpy as np, polars as pl
if sys.argv[3] == "hostile":  # process-wide state other code may leave behind
    np.seterr(all="raise")
    warnings.simplefilter("error")
from ketreg.metrics.predictors import response_predictors
from schemas.protocol import load_metric_settings
table = response_predictors(pl.read_parquet(sys.argv[1]), load_metric_settings())
table.write_ipc(sys.argv[2])
"""


def test_the_table_is_the_same_bytes_whatever_the_blas_threads_or_the_process_warning_state(tmp_path):
    """Each run in a fresh process, as the pipeline's steps are. On 3,000 patients, 20 sites and a continuous NPRS
    term, OpenBLAS with 2 threads gave other last digits than with 1 (measured before the models pinned one
    thread), and an error filter or np.seterr(all="raise") left by other code made a fit fail."""
    rng = np.random.default_rng(5)
    n = 3_000
    nprs = rng.integers(3, 11, n)
    etiology = rng.choice(["cipn", "tumor_compression", "surgery", "radiation", "other"], n)
    log_odds = 0.8 - 0.1 * (nprs - 7) - 0.4 * (etiology == "tumor_compression")
    cohort = pl.DataFrame({
        "site_id": rng.choice([f"site_{i:02d}" for i in range(1, 21)], n),
        "cnp_etiology": etiology,
        "cancer_type": rng.choice(["breast", "lung", "prostate", "colorectal", "sarcoma", "other"], n),
        "metastatic": pl.Series(rng.choice(["true", "false", "x"], n, p=[0.4, 0.5, 0.1])).replace({"x": None})
        == "true",
        "nprs_baseline": nprs, "baseline_nprs_band": np.where(nprs >= 7, "7-10", "4-6"),
        "infusion_count": np.full(n, 3),
        "responder": rng.random(n) < 1 / (1 + np.exp(-log_odds)),
    })
    cohort.write_parquet(tmp_path / "cohort.parquet")
    tables = {}
    for name, threads, state in (("1 thread", "1", "default"), ("2 threads", "2", "default"),
                                 ("2 threads, hostile state", "2", "hostile")):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads}
        subprocess.run([sys.executable, "-c", _FIT_IN_A_FRESH_PROCESS, str(tmp_path / "cohort.parquet"),
                        str(tmp_path / f"{name}.arrow"), state], env=env, check=True, timeout=120)
        tables[name] = (tmp_path / f"{name}.arrow").read_bytes()
    table = pl.read_ipc(tmp_path / "1 thread.arrow")
    assert table.filter(pl.col("estimable") & (pl.col("model") == "multivariable")).height > 20
    assert tables["2 threads"] == tables["1 thread"]
    assert tables["2 threads, hostile state"] == tables["1 thread"]
