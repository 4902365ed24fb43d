"""Study planning without a pipeline run: sample sizes against statsmodels' power functions, the between-site
ICC against an ANOVA computed from individual patients, inflation for discontinuation and the design effect,
and the `metrics:` settings of the protocol file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from scipy import stats
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize

from ketreg.metrics.heterogeneity import site_icc_interval
from ketreg.metrics.planning import (
    exact_single_arm,
    single_arm_n,
    site_icc,
    study_planning,
    two_arm_mean_n,
    two_arm_proportion_n,
)
from schemas.protocol import DEFAULT_PROTOCOL_FILE, ProtocolError, load_metric_settings

PROPORTIONS = [(0.74, 0.5), (0.6, 0.55), (0.9, 0.3), (0.35, 0.3)]


@pytest.mark.parametrize("power", [0.8, 0.9])
@pytest.mark.parametrize(("rate", "reference"), PROPORTIONS)
def test_single_arm_size_matches_statsmodels_one_sample_normal_power(rate: float, reference: float, power: float):
    expected = NormalIndPower().solve_power(
        effect_size=proportion_effectsize(rate, reference), alpha=0.05, power=power, ratio=0
    )
    assert single_arm_n(rate, reference, 0.05, power) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("power", [0.8, 0.9])
@pytest.mark.parametrize(("rate", "reference"), PROPORTIONS)
def test_two_arm_size_per_arm_matches_statsmodels_normal_power(rate: float, reference: float, power: float):
    expected = NormalIndPower().solve_power(
        effect_size=proportion_effectsize(rate, reference), alpha=0.05, power=power, ratio=1
    )
    assert two_arm_proportion_n(rate, reference, 0.05, power) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("power", [0.8, 0.9])
@pytest.mark.parametrize("effect_size", [0.2, 0.5, 0.93, 1.5])
def test_mean_change_size_per_arm_matches_statsmodels_t_test_power(effect_size: float, power: float):
    expected = TTestIndPower().solve_power(effect_size=effect_size, alpha=0.05, power=power, ratio=1)
    assert two_arm_mean_n(effect_size, 0.05, power) == pytest.approx(expected, rel=1e-6)


def test_no_size_when_the_registry_does_not_beat_the_reference():
    assert single_arm_n(0.5, 0.5, 0.05, 0.8) is None
    assert two_arm_proportion_n(0.25, 0.3, 0.05, 0.8) is None
    assert two_arm_mean_n(-0.1, 0.05, 0.8) is None


def _anova_icc(sizes: list[int], responders: list[int]) -> float:
    """ICC(1) from the individual 0/1 outcomes, the textbook way (an independent computation)."""
    groups = [np.array([1] * r + [0] * (n - r), dtype=float) for n, r in zip(sizes, responders, strict=True)]
    values = np.concatenate(groups)
    k, total = len(groups), values.size
    msb = sum(g.size * (g.mean() - values.mean()) ** 2 for g in groups) / (k - 1)
    msw = sum(((g - g.mean()) ** 2).sum() for g in groups) / (total - k)
    n0 = (total - sum(g.size**2 for g in groups) / total) / (k - 1)
    return (msb - msw) / (msb + (n0 - 1) * msw)


def test_site_icc_is_the_one_way_anova_estimate():
    # Two sites of 10, 8 and 2 responders: MSB = 1.8, MSW = 3.2 / 18, n₀ = 10 → ICC = 1.6222 / 3.4.
    assert site_icc([10, 10], [8, 2]) == pytest.approx((1.8 - 3.2 / 18) / (1.8 + 9 * 3.2 / 18))
    for sizes, responders in (([10, 10], [8, 2]), ([12, 30, 7], [10, 15, 6]), ([40, 25, 33, 18], [30, 20, 22, 9])):
        assert site_icc(sizes, responders) == pytest.approx(max(0.0, _anova_icc(sizes, responders)))


def test_site_icc_is_not_estimable_from_one_site_and_never_negative():
    assert site_icc([25], [20]) is None
    assert site_icc([10, 10], [10, 10]) is None  # nobody differs from anybody
    assert site_icc([10, 10], [5, 5]) == 0.0  # below 0 by chance: truncated


def _outcomes(sites: dict[str, tuple[int, int, int]], changes: list[int] | None = None,
              primary: dict[str, list] | None = None) -> pl.DataFrame:
    """Treated patients per site: (patients, responders, discontinued); baseline NPRS 8 and, for the first
    len(changes) patients, an end-of-induction NPRS of 8 + change. `primary` adds the primary-estimand columns."""
    rows = []
    for site, (patients, responders, discontinued) in sites.items():
        for i in range(patients):
            rows.append({"patient_key": f"{site}-{i:03d}", "site_id": site, "infusion_count": 3,
                         "responder": i < responders, "discontinued": i < discontinued, "nprs_baseline": 8,
                         "nprs_end_of_induction": None, "nprs_change_end_of_induction": None})
    for row, change in zip(rows, changes or [], strict=False):
        row["nprs_change_end_of_induction"] = change
        row["nprs_end_of_induction"] = 8 + change
    frame = pl.DataFrame(rows, schema={
        "patient_key": pl.String, "site_id": pl.String, "infusion_count": pl.Int64, "responder": pl.Boolean,
        "discontinued": pl.Boolean, "nprs_baseline": pl.Int64, "nprs_end_of_induction": pl.Int64,
        "nprs_change_end_of_induction": pl.Int64})
    if primary:
        frame = frame.with_columns(pl.Series(name, values) for name, values in primary.items())
    return frame


def _row(table: pl.DataFrame, design: str, clustering: str, power: float = 0.8) -> dict:
    return table.filter((pl.col("design") == design) & (pl.col("clustering") == clustering)
                        & (pl.col("power") == power)).row(0, named=True)


def test_sizes_are_inflated_for_missing_primary_endpoint_then_for_the_planned_design_effect():
    changes = [-4, -3, -5, -2, -4, -6, -1, -3, -5, -4, -2, -6]
    outcomes = _outcomes({"a": (10, 8, 2), "b": (10, 2, 3)}, changes=changes)
    settings = load_metric_settings()
    table = study_planning(outcomes, settings)

    icc = site_icc_interval([10, 10], [8, 2])
    m = settings.planned_patients_per_site
    # Dropout is the share without the endpoint (8 of 20 have no end-of-induction NPRS), not the 5 discontinued.
    assert table["dropout_rate"].to_list() == [pytest.approx(8 / 20)] * table.height
    assert table.height == 7 * len(settings.planning_powers)
    for row in table.iter_rows(named=True):
        assert row["estimand"].startswith("study definition")
        assert row["site_icc"] == pytest.approx(icc.estimate) and row["site_icc_ci_high"] == pytest.approx(icc.ci_high)
        assert "metrics.patient_outcomes" in row["inputs"] and "config/protocol.yaml" in row["inputs"]
        if row["n_per_arm"] is None:
            continue
        assert row["n_per_arm_after_dropout"] == math.ceil(row["n_per_arm"] / (1 - 8 / 20))
        after = row["n_per_arm_after_dropout"]
        if row["clustering"] == "individual_randomisation_stratified_by_site":
            assert row["design_effect"] == 1.0 and row["n_per_arm_planned"] == after
        else:
            assert row["design_effect"] == pytest.approx(1 + (m - 1) * icc.estimate)
            assert row["n_per_arm_planned"] == math.ceil(after * (1 + (m - 1) * icc.estimate))
            assert row["n_per_arm_planned_icc_upper"] == math.ceil(after * (1 + (m - 1) * icc.ci_high))
        assert row["total_patients"] == row["arms"] * row["n_per_arm_planned"]
    # The registry's 50 % does not beat a benchmark of 50 %: no exact single-arm size, and a reason.
    single = _row(table, "single_arm_exact_binomial", "sites_as_clusters")
    assert single["n_per_arm"] is None and single["note"].startswith("no sample size")
    change = _row(table, "two_arm_nprs_change", "individual_randomisation_stratified_by_site")
    values = np.array(changes, dtype=float)
    assert change["registry_estimate"] == pytest.approx(values.mean())
    assert change["registry_sd"] == pytest.approx(values.std(ddof=1))
    assert change["effect_size"] == pytest.approx((-1.0 - values.mean()) / values.std(ddof=1))


def test_ancova_size_is_the_t_test_size_on_the_follow_up_sd_times_one_minus_rho_squared():
    rng = np.random.default_rng(5)
    baseline = rng.integers(5, 11, 40)
    follow_up = np.clip(baseline - rng.integers(0, 6, 40), 0, 10)
    rows = [{"patient_key": f"p{i:02d}", "site_id": "ab"[i % 2], "infusion_count": 3, "responder": bool(i % 3),
             "discontinued": False, "nprs_baseline": int(b), "nprs_end_of_induction": int(f),
             "nprs_change_end_of_induction": int(f - b)} for i, (b, f) in enumerate(zip(baseline, follow_up,
                                                                                      strict=True))]
    table = study_planning(pl.DataFrame(rows), load_metric_settings())
    row = _row(table, "two_arm_nprs_ancova", "individual_randomisation_stratified_by_site", 0.9)
    rho = np.corrcoef(baseline, follow_up)[0, 1]
    d = (-1.0 - (follow_up - baseline).mean()) / follow_up.std(ddof=1)
    expected = TTestIndPower().solve_power(effect_size=d, alpha=0.05, power=0.9, ratio=1) * (1 - rho**2)
    assert row["baseline_followup_correlation"] == pytest.approx(rho)
    assert row["n_per_arm_exact"] == pytest.approx(expected, rel=1e-6)
    assert row["n_per_arm"] == math.ceil(expected)


@pytest.mark.parametrize(("p0", "p1", "alpha", "power"), [
    (0.5, 0.75, 0.025, 0.8), (0.3, 0.5, 0.05, 0.8), (0.2, 0.4, 0.05, 0.9), (0.5, 0.7, 0.025, 0.9),
])
def test_exact_single_arm_design_is_the_smallest_n_found_by_a_brute_force_binomial_search(p0, p1, alpha, power):
    found = None
    for n in range(1, 400):
        for r in range(0, n + 1):
            if stats.binom.sf(r - 1, n, p0) <= alpha:  # the smallest critical count with type I error ≤ α
                if stats.binom.sf(r - 1, n, p1) >= power:
                    found = (n, r)
                break
        if found:
            break
    assert exact_single_arm(p0, p1, alpha, power) == found


def test_the_primary_estimand_is_used_when_patient_outcomes_has_it():
    primary = {
        "sustained_responder": [True] * 14 + [False] * 6,
        "primary_assessment_observed": [True] * 18 + [False] * 2,
        "nprs_primary": [float(4 + i % 3) for i in range(18)] + [None, None],
        "nprs_change_primary": [float(-4 + i % 3) for i in range(18)] + [None, None],
        "course_incomplete": [False] * 20,
    }
    table = study_planning(_outcomes({"a": (10, 3, 5), "b": (10, 3, 5)}, primary=primary), load_metric_settings())
    row = _row(table, "two_arm_responder_rate", "individual_randomisation_stratified_by_site")
    assert row["estimand"] == "primary estimand (sustained_responder)"
    assert row["registry_estimate"] == pytest.approx(14 / 20)  # not the 6/20 study-definition responders
    assert row["dropout_rate"] == pytest.approx(2 / 20)
    assert "sustained_responder" in row["inputs"] and "primary_assessment_observed" in row["inputs"]


def test_one_site_gives_sizes_without_a_cluster_design_effect():
    table = study_planning(_outcomes({"only": (30, 24, 6)}, changes=[-3] * 29), load_metric_settings())
    single = _row(table, "single_arm_exact_binomial", "sites_as_clusters")
    assert single["n_per_arm"] is not None and single["n_per_arm_planned"] is None
    assert "at least two sites" in single["note"]
    individual = _row(table, "two_arm_responder_rate", "individual_randomisation_stratified_by_site")
    assert individual["n_per_arm_planned"] == individual["n_per_arm_after_dropout"]
    no_change = _row(table, "two_arm_nprs_change", "individual_randomisation_stratified_by_site")
    assert no_change["note"].startswith("not estimable")  # every change is −3: no SD


# --------------------------------------------------------------------------------------------------------
# The metrics section of the protocol file.


def test_metric_settings_come_from_the_protocol_file():
    settings = load_metric_settings()
    raw = yaml.safe_load(DEFAULT_PROTOCOL_FILE.read_text(encoding="utf-8"))["metrics"]
    assert settings.durable_relief_days == raw["durable_relief_days"] == 21
    assert settings.interruption_follow_up_days == 14
    assert settings.planning_powers == (0.8, 0.9)
    assert settings.planning_alpha == 0.05


def test_a_protocol_file_without_a_metrics_section_uses_the_registry_default(tmp_path: Path):
    raw = yaml.safe_load(DEFAULT_PROTOCOL_FILE.read_text(encoding="utf-8"))
    del raw["metrics"]
    (tmp_path / "protocol.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert load_metric_settings(tmp_path / "protocol.yaml") == load_metric_settings()


def test_an_impossible_metrics_setting_is_refused_with_its_name(tmp_path: Path):
    raw = yaml.safe_load(DEFAULT_PROTOCOL_FILE.read_text(encoding="utf-8"))
    raw["metrics"]["study_planning"]["benchmark_responder_rate"] = 1.5
    (tmp_path / "protocol.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ProtocolError, match="benchmark_responder_rate"):
        load_metric_settings(tmp_path / "protocol.yaml")


def test_a_missing_metrics_setting_is_named(tmp_path: Path):
    raw = yaml.safe_load(DEFAULT_PROTOCOL_FILE.read_text(encoding="utf-8"))
    del raw["metrics"]["durable_relief_days"]
    (tmp_path / "protocol.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ProtocolError, match="durable_relief_days"):
        load_metric_settings(tmp_path / "protocol.yaml")
