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
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize

from ketreg.metrics.planning import (
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


def _outcomes(sites: dict[str, tuple[int, int, int]], changes: list[int] | None = None) -> pl.DataFrame:
    """Treated patients per site: (patients, responders, discontinued)."""
    rows = []
    for site, (patients, responders, discontinued) in sites.items():
        for i in range(patients):
            rows.append({"site_id": site, "infusion_count": 3, "responder": i < responders,
                         "discontinued": i < discontinued, "nprs_change_end_of_induction": None})
    for row, change in zip(rows, changes or [], strict=False):
        row["nprs_change_end_of_induction"] = change
    return pl.DataFrame(rows, schema={"site_id": pl.String, "infusion_count": pl.Int64, "responder": pl.Boolean,
                                      "discontinued": pl.Boolean, "nprs_change_end_of_induction": pl.Int64})


def test_sizes_are_inflated_for_discontinuation_then_for_the_design_effect():
    outcomes = _outcomes({"a": (10, 8, 2), "b": (10, 2, 3)}, changes=[-4, -3, -5, -2, -4, -6, -1, -3])
    settings = load_metric_settings()
    table = study_planning(outcomes, settings)

    icc = site_icc([10, 10], [8, 2])
    assert table.height == 3 * len(settings.planning_powers)
    for row in table.iter_rows(named=True):
        assert row["discontinuation_rate"] == pytest.approx(5 / 20)
        assert row["site_icc"] == pytest.approx(icc)
        design_effect = 1 + (settings.planned_patients_per_site - 1) * icc
        assert row["design_effect"] == pytest.approx(design_effect)
        if row["design"] == "single_arm_vs_benchmark":
            # The registry's 50 % does not beat a benchmark of 50 %: no size, and a reason.
            assert row["n_per_arm"] is None and row["note"].startswith("no sample size")
            continue
        assert row["n_per_arm"] == math.ceil(row["n_per_arm_exact"])
        assert row["n_per_arm_after_discontinuation"] == math.ceil(row["n_per_arm"] / 0.75)
        assert row["n_per_arm_multisite"] == math.ceil(row["n_per_arm_after_discontinuation"] * design_effect)
        assert row["total_patients_multisite"] == 2 * row["n_per_arm_multisite"]
    mean_change = table.filter(pl.col("design") == "two_arm_mean_nprs_change").row(0, named=True)
    changes = np.array([-4, -3, -5, -2, -4, -6, -1, -3], dtype=float)
    assert mean_change["registry_estimate"] == pytest.approx(changes.mean())
    assert mean_change["registry_sd"] == pytest.approx(changes.std(ddof=1))
    assert mean_change["effect_size"] == pytest.approx((-1.0 - changes.mean()) / changes.std(ddof=1))


def test_one_site_gives_sizes_without_a_design_effect():
    table = study_planning(_outcomes({"only": (30, 24, 6)}), load_metric_settings())
    single = table.filter(pl.col("design") == "single_arm_vs_benchmark").row(0, named=True)
    assert single["n_per_arm"] is not None and single["n_per_arm_multisite"] is None
    assert "at least two sites" in single["note"]
    no_change = table.filter(pl.col("design") == "two_arm_mean_nprs_change").row(0, named=True)
    assert no_change["note"].startswith("not estimable")


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
