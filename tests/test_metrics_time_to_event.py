"""Time-to-event metrics without a pipeline run: Kaplan–Meier against statsmodels' SurvfuncRight, the
Aalen–Johansen cumulative incidence against lifelines' AalenJohansenFitter and a hand computation, and the
censoring rules of the relief and treatment-course queries on a small registry built in DuckDB."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import polars as pl
import pytest
from lifelines import AalenJohansenFitter
from scipy import stats
from statsmodels.duration.survfunc import SurvfuncRight

from ketreg.metrics.build import time_to_event_tallies_sql
from ketreg.metrics.time_to_event import (
    TALLY_SCHEMA,
    cumulative_incidence,
    kaplan_meier,
    read_tallies,
    relief_episodes,
    tallies_from_rows,
    time_to_event_tables,
    time_to_event_tables_from_tallies,
    treatment_courses,
)

# Fixed data with ties between events and censorings (integer days, as the registry records them).
TIMES = np.array([3, 5, 5, 7, 7, 7, 9, 12, 12, 15, 18, 18, 21, 25, 30, 30, 34, 40, 41, 45], dtype=float)
EVENTS = np.array([1, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0], dtype=bool)


def test_kaplan_meier_curve_and_greenwood_interval_match_statsmodels():
    rows, _ = kaplan_meier(TIMES, EVENTS)
    reference = SurvfuncRight(TIMES, EVENTS.astype(int))
    z = stats.norm.isf(0.025)
    by_time = {row["time_days"]: row for row in rows}
    assert rows[0]["time_days"] == 0 and rows[0]["survival"] == 1.0 and rows[0]["at_risk"] == TIMES.size
    for time, survival, se, at_risk in zip(reference.surv_times, reference.surv_prob, reference.surv_prob_se,
                                           reference.n_risk, strict=True):
        row = by_time[time]
        assert row["survival"] == pytest.approx(survival, rel=1e-10)
        assert row["at_risk"] == at_risk
        # log(−log) interval from the Greenwood variance: S^exp(±z·√V / log S), V = (se/S)².
        spread = z * (se / survival) / abs(math.log(survival))
        assert row["ci_low"] == pytest.approx(survival ** math.exp(spread), rel=1e-9)
        assert row["ci_high"] == pytest.approx(survival ** math.exp(-spread), rel=1e-9)
    assert sum(row["events"] for row in rows) == EVENTS.sum()
    assert sum(row["censored"] for row in rows) == (~EVENTS).sum()


def test_median_and_its_interval_match_statsmodels_brookmeyer_crowley():
    _, summary = kaplan_meier(TIMES, EVENTS)
    reference = SurvfuncRight(TIMES, EVENTS.astype(int))
    assert summary["median_days"] == reference.quantile(0.5)
    low, high = reference.quantile_ci(0.5, method="cloglog")
    assert (summary["ci_low"], summary["ci_high"]) == (low, high if np.isfinite(high) else None)


def test_a_median_never_reached_is_empty_not_infinite():
    _, summary = kaplan_meier(np.array([5.0, 8.0, 10.0, 12.0]), np.array([True, False, False, False]))
    assert summary["median_days"] is None and summary["ci_high"] is None


CAUSES = np.array([1, 2, 0, 1, 1, 0, 0, 2, 1, 0, 1, 2, 0, 1, 0, 2, 1, 0, 1, 0])


def test_cumulative_incidence_equals_the_hand_computed_aalen_johansen():
    for cause in (1, 2):
        rows = cumulative_incidence(TIMES, CAUSES, cause)
        survival, incidence, expected = 1.0, 0.0, {}
        for time in np.unique(TIMES):
            at_risk = (time <= TIMES).sum()
            incidence += survival * ((time == TIMES) & (cause == CAUSES)).sum() / at_risk
            survival *= 1 - ((time == TIMES) & (CAUSES > 0)).sum() / at_risk
            expected[time] = incidence
        assert {row["time_days"]: row["survival"] for row in rows if row["time_days"] > 0} == pytest.approx(expected)


def test_cumulative_incidence_matches_lifelines_on_untied_times():
    # lifelines jitters tied times at random, so compare where no two times are equal.
    times = np.arange(1, 21, dtype=float) * 1.5
    rows = cumulative_incidence(times, CAUSES, 1)
    fitter = AalenJohansenFitter(calculate_variance=False).fit(times, CAUSES, event_of_interest=1)
    reference = fitter.cumulative_density_.iloc[:, 0]
    for row in rows:
        assert row["survival"] == pytest.approx(float(reference.loc[row["time_days"]]), abs=1e-12)


def test_cumulative_incidences_of_all_reasons_and_the_survivors_add_to_one():
    total = sum(cumulative_incidence(TIMES, CAUSES, cause)[-1]["survival"] for cause in (1, 2))
    all_causes, _ = kaplan_meier(TIMES, CAUSES > 0)
    assert total + all_causes[-1]["survival"] == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------------------
# The censoring rules, on a registry of four patients built directly in DuckDB.

REGISTRY = """
CREATE SCHEMA registry;
CREATE TABLE registry.patients AS SELECT * FROM (VALUES
    ('p1', 'a', true), ('p2', 'a', true), ('p3', 'b', true), ('p4', 'b', true), ('p5', 'b', true),
    ('px', 'b', false)
) AS t(patient_key, site_id, in_analysis_cohort);
CREATE TABLE registry.infusions AS SELECT infusion_key, patient_key, site_id, infusion_number,
    CAST(start_time AS TIMESTAMP) AS start_time, relief_duration_days FROM (VALUES
    ('i11', 'p1', 'a', 1, '2025-01-01 09:00', 5),     -- ends day 5, before the next infusion (day 7): event
    ('i12', 'p1', 'a', 2, '2025-01-08 09:00', 10),    -- next infusion on day 7 ≤ 10: censored at 7
    ('i13', 'p1', 'a', 3, '2025-01-15 09:00', NULL),  -- not recorded
    ('i21', 'p2', 'a', 1, '2025-01-01 09:00', 30),    -- interrupted on day 12: censored at 12
    ('i31', 'p3', 'b', 1, '2025-01-01 09:00', 40),    -- lost to follow-up on day 20: censored at 20
    ('i41', 'p4', 'b', 1, '2025-01-01 09:00', 7),     -- next infusion exactly on day 7: censored at 7
    ('i42', 'p4', 'b', 2, '2025-01-08 09:00', 3),
    ('i51', 'p5', 'b', 1, '2025-01-01 09:00', 10),    -- next infusion and an interruption both on day 7
    ('i52', 'p5', 'b', 2, '2025-01-08 09:00', NULL),
    ('ix1', 'px', 'b', 1, '2025-01-01 09:00', 9)      -- outside the analysis cohort
) AS t(infusion_key, patient_key, site_id, infusion_number, start_time, relief_duration_days);
CREATE TABLE registry.assessments AS SELECT patient_key, CAST(assessed_at AS TIMESTAMP) AS assessed_at FROM (VALUES
    ('p1', '2025-03-01 10:00'), ('p4', '2025-02-01 10:00')
) AS t(patient_key, assessed_at);
CREATE TABLE registry.dispositions AS SELECT patient_key, CAST(event_date AS DATE) AS event_date, status, reason,
    source_line FROM (VALUES
    ('p2', '2025-01-13', 'interrupted', 'external_interruption', 1),
    ('p2', '2025-02-01', 'discontinued', 'unsatisfactory_relief', 2),
    ('p3', '2025-01-21', 'discontinued', 'lost_to_follow_up', 3),
    ('p4', '2025-01-20', 'discontinued', 'adverse_event', 4),
    ('p5', '2025-01-08', 'interrupted', 'adverse_event', 5)
) AS t(patient_key, event_date, status, reason, source_line);
"""


@pytest.fixture
def registry() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(REGISTRY)
    return con


def test_relief_is_censored_at_the_next_infusion_an_interruption_or_loss_to_follow_up(registry):
    episodes = {row["infusion_key"]: row for row in relief_episodes(registry).iter_rows(named=True)}
    assert "ix1" not in episodes
    expected = {
        "i11": (5, True, "relief_ended"), "i12": (7, False, "next_infusion"), "i13": (None, None, "not_recorded"),
        "i21": (12, False, "interruption"), "i31": (20, False, "lost_to_follow_up"),
        "i41": (7, False, "next_infusion"), "i42": (3, True, "relief_ended"),
        "i51": (7, False, "next_infusion"), "i52": (None, None, "not_recorded"),
    }
    assert {key: (r["time_days"], r["relief_ended"], r["status"]) for key, r in episodes.items()} == expected


def test_time_on_treatment_ends_at_discontinuation_and_is_censored_otherwise(registry):
    courses = {row["patient_key"]: row for row in treatment_courses(registry).iter_rows(named=True)}
    assert set(courses) == {"p1", "p2", "p3", "p4", "p5"}
    # An interruption for another reason than an outside one is part of the course, not its end.
    assert (courses["p5"]["time_days"], courses["p5"]["status"]) == (7, "censored_last_contact")
    assert (courses["p1"]["time_days"], courses["p1"]["status"]) == (59, "censored_last_contact")  # 1 Mar
    assert (courses["p2"]["time_days"], courses["p2"]["status"]) == (12, "censored_external_interruption")
    assert (courses["p3"]["time_days"], courses["p3"]["status"]) == (20, "censored_lost_to_follow_up")
    assert (courses["p4"]["time_days"], courses["p4"]["discontinued"], courses["p4"]["reason"]) == (
        19, True, "adverse_event")


def test_tables_have_the_published_shapes_and_strata(registry):
    curves, summary = time_to_event_tables(relief_episodes(registry), treatment_courses(registry))
    assert curves.columns == ["endpoint", "stratum_type", "stratum", "time_days", "at_risk", "events", "censored",
                              "survival", "ci_low", "ci_high"]
    assert summary.columns == ["endpoint", "stratum_type", "stratum", "patients", "events", "median_days", "ci_low",
                               "ci_high"]
    keys = set(summary.select("endpoint", "stratum_type", "stratum").iter_rows())
    assert keys == {
        ("relief_duration", "overall", "all"), ("relief_duration", "site", "a"), ("relief_duration", "site", "b"),
        ("time_on_treatment", "overall", "all"), ("time_on_treatment", "site", "a"),
        ("time_on_treatment", "site", "b"),
        ("discontinuation_cumulative_incidence", "reason", "adverse_event"),
    }
    relief = summary.filter((pl.col("endpoint") == "relief_duration") & (pl.col("stratum") == "all")).row(0, named=True)
    assert (relief["patients"], relief["events"]) == (5, 2)  # seven analysed infusions of five patients


def test_the_same_input_gives_bit_identical_tables(registry):
    first = time_to_event_tables(relief_episodes(registry), treatment_courses(registry))
    second = time_to_event_tables(relief_episodes(registry).reverse(), treatment_courses(registry).reverse())
    for a, b in zip(first, second, strict=True):
        assert a.equals(b)


def _sql_tallies(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    con.execute("CREATE SCHEMA IF NOT EXISTS metrics_partial")
    con.execute(time_to_event_tallies_sql())
    return read_tallies(con)


def _sorted(tallies: pl.DataFrame) -> pl.DataFrame:
    return tallies.sort(list(TALLY_SCHEMA)[:6], nulls_last=True)


def test_the_sql_tallies_count_what_the_episodes_rows_hold(registry):
    from_sql = _sql_tallies(registry)
    assert _sorted(from_sql).equals(_sorted(tallies_from_rows(relief_episodes(registry), treatment_courses(registry))))
    relief = from_sql.filter(pl.col("endpoint") == "relief_duration")
    # Nine infusions of five patients, seven of them with a relief duration; p1's i13 has none.
    assert relief["episodes"].sum() == 9 and relief["patients"].sum() == 5
    assert relief.filter(pl.col("status") == "not_recorded")["episodes"].sum() == 2


def test_curves_from_the_sites_tallies_are_bit_for_bit_those_fitted_on_every_episode(registry):
    from_rows = time_to_event_tables(relief_episodes(registry), treatment_courses(registry))
    for a, b in zip(from_rows, time_to_event_tables_from_tallies(_sql_tallies(registry)), strict=True):
        assert a.equals(b)


def test_counted_rows_fit_the_same_bits_as_one_row_per_subject():
    rng = np.random.default_rng(3)
    # Many subjects on few days, with ties of events and censorings: what the registry's curves look like.
    times = rng.integers(0, 60, 20_000).astype(float)
    events = rng.random(20_000) < 0.6
    causes = np.where(events, rng.integers(1, 4, 20_000), 0)
    grouped = pl.DataFrame({"t": times, "e": events, "c": causes}).group_by("t", "e", "c").len().sort("t", "e", "c")
    counts = grouped["len"].to_numpy()
    one_each = kaplan_meier(times, events)
    counted = kaplan_meier(grouped["t"].to_numpy(), grouped["e"].to_numpy(), counts=counts)
    assert one_each == counted
    for cause in (1, 2, 3):
        assert cumulative_incidence(times, causes, cause) == cumulative_incidence(
            grouped["t"].to_numpy(), grouped["c"].to_numpy(), cause, counts=counts)


def test_a_site_recounted_alone_gives_the_tallies_of_a_whole_recount(registry):
    """What the pipeline does when one site's rows change: delete that site's tallies and insert them again
    from its rows only (ketreg/incremental/sites.py); the table must then equal a whole rebuild."""
    from ketreg.incremental.sites import run_site_scoped

    whole = _sql_tallies(registry)
    for table in ("patients", "infusions", "assessments", "dispositions"):
        if "site_id" not in registry.table(f"registry.{table}").columns:
            registry.execute(f"ALTER TABLE registry.{table} ADD COLUMN site_id VARCHAR")
            registry.execute(f"UPDATE registry.{table} AS t SET site_id = p.site_id FROM registry.patients AS p "
                             "WHERE p.patient_key = t.patient_key")
    registry.execute("UPDATE registry.infusions SET relief_duration_days = 4 WHERE infusion_key = 'i42'")
    run_site_scoped(registry, time_to_event_tallies_sql(), {}, ["b"])
    recounted = read_tallies(registry)
    assert recounted.filter(pl.col("site_id") == "a").sort(list(TALLY_SCHEMA)[:6], nulls_last=True).equals(
        _sorted(whole).filter(pl.col("site_id") == "a"))
    assert _sorted(recounted).equals(_sorted(_sql_tallies(registry)))
    assert not _sorted(recounted).equals(_sorted(whole))
