"""The endpoints a trial statistician signs (issue 11), on a hand-built reference cohort run once through the whole
pipeline (`run_registry`): infusion numbering by the site's record, serious ≠ severe, the sustained-responder primary
estimand with its sensitivity analyses, the safety metrics, and the patient flow. Every expected figure is worked
out by hand below; intervals are compared with statsmodels.

Protocol (config/protocol.yaml): induction = infusions 1–3, responder ≥ 30 % NPRS reduction; primary assessment =
the `pre` NPRS of infusion 4, else the `follow_up` NPRS closest to day 28 (± 7) after infusion 1.

east  PT-E1  Infusion 1 (6 Jan) runs at 200 mg/h: quarantined, its start readable. The next three keep numbers
             2, 3, 4. Baseline 8 on 2 Jan; a second "baseline" of 3 on 10 Jan comes after the first dose and is
             ignored (numbering after quarantine took it as the baseline). Post-infusion-2 NPRS 4 (50 %) →
             responder. Pre-infusion-4 NPRS 5 (37.5 %) → sustained responder, change −3. No AE on a valid infusion
             (the AE of infusion 1 follows it into the quarantine).
      PT-E2  Infusion 2's start is "30/02/2025 09:00": quarantined and unreadable, so no infusion number is
             certain → course_incomplete: in no induction-based endpoint (post NPRS 2 from 9 would be a
             responder). Its grade-2 AE on infusion 1 still counts for safety (2 valid infusions).
      PT-E3  Infusions 1–3 (8, 15, 22 Jan), no infusion 4. Baseline 8; post NPRS 2 → responder. Follow-ups on
             day 30 (NPRS 7) and day 40 (NPRS 2, outside 21–35): the primary assessment is day 30 → 12.5 % →
             not a sustained responder, change −1. A grade-3 headache, not serious: severe, not serious.
             Discontinued for unsatisfactory relief after 3 infusions (phase induction).
      PT-E4  One infusion. Baseline 9, post NPRS 3 → responder; no pre-infusion-4 or follow-up NPRS → the
             primary endpoint is missing → not a sustained responder (composite). A serious grade-2 hallucination:
             serious, not severe. Lost to follow-up after 1 infusion (phase induction).
      PT-E5  Neuropathy before the cancer: outside the cohort (its grade-3 AE counts nowhere).
      PT-E6  In the cohort, no infusion.
west  PT-W1  Infusions 1–3 (6, 13, 20 Jan; infusion 2 lasts 3.5 h). Baseline 10, post NPRS 9; follow-ups on day 25
             (NPRS 8) and day 30 (NPRS 6): day 30 is closer to day 28 → 40 % → sustained responder, change −4.
             Two grade-1 nauseas on infusion 1.
      PT-W2  Its only infusion runs at 300 mg/h: quarantined → excluded, all infusions quarantined.
      PT-W3  Infusions 1–4 (8, 15, 22 Jan, 19 Feb). Baseline 5, a day-28 follow-up of 1 (80 %) but the
             pre-infusion-4 NPRS 5 comes first → not a sustained responder, change 0.
      PT-W4  Sex "W": the patient row is quarantined (its infusion follows it).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import math
from pathlib import Path

import duckdb
import pytest
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.rates import confint_poisson
from statsmodels.stats.weightstats import DescrStatsW
from support import TEST_KEY, RegistryRun, query_db, run_registry, write_export

from ketreg.registry.release import table_fingerprints

PATIENT_HEADER = (
    "patient_id,sex,birth_year,weight_kg,cancer_type,metastatic,cnp_etiology,prior_neuropathy,cnp_diagnosis_date"
)
INFUSION_HEADER = (
    "infusion_id,patient_id,start_time,end_time,initial_rate_mg_h,max_rate_mg_h,total_dose_mg,completed,stop_reason,"
    "relief_duration_days"
)
ASSESSMENT_HEADER = (
    "assessment_id,patient_id,infusion_id,assessed_at,timepoint,nprs,function_score,satisfaction,daily_mme,"
    "subjective_improvement"
)
AE_HEADER = "ae_id,patient_id,infusion_id,onset_time,term,category,grade,serious,action_taken,outcome"
DISPOSITION_HEADER = "patient_id,event_date,status,reason"

EAST = {
    "patients": f"""
{PATIENT_HEADER}
PT-E1,F,1960,70,breast,false,cipn,false,
PT-E2,M,1955,80,lung,true,tumor_compression,false,
PT-E3,F,1962,65,breast,false,cipn,false,
PT-E4,M,1970,75,prostate,false,radiation,false,
PT-E5,F,1965,60,breast,false,cipn,true,
PT-E6,M,1958,90,sarcoma,true,tumor_compression,false,
""",
    "infusions": f"""
{INFUSION_HEADER}
INF-E1-1,PT-E1,2025-01-06T09:00,2025-01-06T13:00,10,200,400,true,,
INF-E1-2,PT-E1,2025-01-13T09:00,2025-01-13T13:00,10,40,120,true,,
INF-E1-3,PT-E1,2025-01-20T09:00,2025-01-20T13:00,10,50,150,true,,
INF-E1-4,PT-E1,2025-02-17T09:00,2025-02-17T13:00,10,60,180,true,,
INF-E2-1,PT-E2,2025-01-07T09:00,2025-01-07T13:00,10,25,80,true,,
INF-E2-2,PT-E2,30/02/2025 09:00,2025-01-14T13:00,10,40,120,true,,
INF-E2-3,PT-E2,2025-01-21T09:00,2025-01-21T13:00,10,50,150,true,,
INF-E3-1,PT-E3,2025-01-08T09:00,2025-01-08T13:00,10,25,80,true,,
INF-E3-2,PT-E3,2025-01-15T09:00,2025-01-15T13:00,10,40,120,true,,
INF-E3-3,PT-E3,2025-01-22T09:00,2025-01-22T13:00,10,50,150,true,,
INF-E4-1,PT-E4,2025-01-09T09:00,2025-01-09T13:00,10,25,80,true,,
INF-E5-1,PT-E5,2025-01-10T09:00,2025-01-10T13:00,10,25,80,true,,
""",
    "assessments": f"""
{ASSESSMENT_HEADER}
A-E1-B,PT-E1,,2025-01-02T10:00,baseline,8,,,,
A-E1-B2,PT-E1,,2025-01-10T10:00,baseline,3,,,,
A-E1-2b,PT-E1,INF-E1-2,2025-01-13T13:30,post,4,,,,
A-E1-4a,PT-E1,INF-E1-4,2025-02-17T08:45,pre,5,,,,
A-E2-B,PT-E2,,2025-01-03T10:00,baseline,9,,,,
A-E2-1b,PT-E2,INF-E2-1,2025-01-07T13:30,post,2,,,,
A-E3-B,PT-E3,,2025-01-03T10:00,baseline,8,,,,
A-E3-1b,PT-E3,INF-E3-1,2025-01-08T13:30,post,2,,,,
A-E3-F1,PT-E3,,2025-02-07T10:00,follow_up,7,,,,
A-E3-F2,PT-E3,,2025-02-17T10:00,follow_up,2,,,,
A-E4-B,PT-E4,,2025-01-03T10:00,baseline,9,,,,
A-E4-1b,PT-E4,INF-E4-1,2025-01-09T13:30,post,3,,,,
A-E6-B,PT-E6,,2025-01-03T10:00,baseline,7,,,,
""",
    "adverse_events": f"""
{AE_HEADER}
AE-E1-1,PT-E1,INF-E1-1,2025-01-06T10:00,nausea,,1,false,none,resolved
AE-E2-1,PT-E2,INF-E2-1,2025-01-07T10:00,dizziness,,2,false,none,resolved
AE-E3-1,PT-E3,INF-E3-1,2025-01-08T10:00,headache,,3,false,none,resolved
AE-E4-1,PT-E4,INF-E4-1,2025-01-09T10:00,hallucination,,2,true,none,resolved
AE-E5-1,PT-E5,INF-E5-1,2025-01-10T10:00,headache,,3,false,none,resolved
""",
    "dispositions": f"""
{DISPOSITION_HEADER}
PT-E3,2025-02-20,discontinued,unsatisfactory_relief
PT-E4,2025-02-01,discontinued,lost_to_follow_up
""",
}

WEST = {
    "patients": f"""
{PATIENT_HEADER}
PT-W1,F,1960,70,breast,false,cipn,false,
PT-W2,M,1955,80,lung,true,tumor_compression,false,
PT-W3,F,1962,65,breast,false,surgery,false,
PT-W4,W,1970,75,prostate,false,radiation,false,
""",
    "infusions": f"""
{INFUSION_HEADER}
INF-W1-1,PT-W1,2025-01-06T09:00,2025-01-06T13:00,10,25,80,true,,
INF-W1-2,PT-W1,2025-01-13T09:00,2025-01-13T12:30,10,40,100,true,,
INF-W1-3,PT-W1,2025-01-20T09:00,2025-01-20T13:00,10,50,150,true,,
INF-W2-1,PT-W2,2025-01-07T09:00,2025-01-07T13:00,10,300,400,true,,
INF-W3-1,PT-W3,2025-01-08T09:00,2025-01-08T13:00,10,25,80,true,,
INF-W3-2,PT-W3,2025-01-15T09:00,2025-01-15T13:00,10,40,120,true,,
INF-W3-3,PT-W3,2025-01-22T09:00,2025-01-22T13:00,10,50,150,true,,
INF-W3-4,PT-W3,2025-02-19T09:00,2025-02-19T13:00,10,60,180,true,,
INF-W4-1,PT-W4,2025-01-09T09:00,2025-01-09T13:00,10,25,80,true,,
""",
    "assessments": f"""
{ASSESSMENT_HEADER}
A-W1-B,PT-W1,,2025-01-02T10:00,baseline,10,,,,
A-W1-1b,PT-W1,INF-W1-1,2025-01-06T13:30,post,9,,,,
A-W1-F1,PT-W1,,2025-01-31T10:00,follow_up,8,,,,
A-W1-F2,PT-W1,,2025-02-05T10:00,follow_up,6,,,,
A-W2-B,PT-W2,,2025-01-03T10:00,baseline,6,,,,
A-W3-B,PT-W3,,2025-01-03T10:00,baseline,5,,,,
A-W3-1b,PT-W3,INF-W3-1,2025-01-08T13:30,post,4,,,,
A-W3-F,PT-W3,,2025-02-05T10:00,follow_up,1,,,,
A-W3-4a,PT-W3,INF-W3-4,2025-02-19T08:45,pre,5,,,,
""",
    "adverse_events": f"""
{AE_HEADER}
AE-W1-1,PT-W1,INF-W1-1,2025-01-06T10:00,nausea,,1,false,none,resolved
AE-W1-2,PT-W1,INF-W1-1,2025-01-06T11:00,nausea,,1,false,none,resolved
""",
    "dispositions": f"""
{DISPOSITION_HEADER}
""",
}


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.strip())))


def write_endpoint_landing(landing: Path) -> Path:
    for site_id, tables in (("east", EAST), ("west", WEST)):
        write_export(landing, site_id, rows={table: _rows(text) for table, text in tables.items()})
    return landing


def _hmac(text: str) -> str:
    return hmac.new(TEST_KEY.encode(), text.encode(), hashlib.sha256).hexdigest()


def patient_key(site_id: str, patient_id: str) -> str:
    return _hmac(f"{site_id}/{patient_id}")


def infusion_key(site_id: str, infusion_id: str) -> str:
    return _hmac(f"infusion/{site_id}/{infusion_id}")[:32]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> RegistryRun:
    root = tmp_path_factory.mktemp("endpoints")
    run = run_registry(write_endpoint_landing(root / "landing"), root / "out")
    assert run.success, "the endpoint cohort's run failed:\n" + "\n".join(run.failures)
    return run


def metric(run: RegistryRun, name: str) -> dict[tuple[str, str], tuple]:
    rows = run.query(
        "SELECT stratum_type, stratum, numerator, denominator, estimate, ci_low, ci_high, unit, sd, exposure_hours "
        "FROM metrics.registry_metrics WHERE metric = ?",
        [name],
    )
    return {(t, s): tuple(rest) for t, s, *rest in rows}


def outcome(run: RegistryRun, site_id: str, patient_id: str, columns: str) -> tuple:
    ((*values,),) = run.query(
        f"SELECT {columns} FROM metrics.patient_outcomes WHERE patient_key = ?", [patient_key(site_id, patient_id)]
    )
    return tuple(values)


# --------------------------------------------------------------------------------------------------------
# 1. Numbering by the site's record.


def test_the_cohort_quarantines_exactly_the_rows_it_was_built_to(cohort: RegistryRun):
    # The working store's quarantine (the analysts' file may carry counts only).
    quarantined = {
        record
        for (record,) in query_db(cohort.work_db, "SELECT record_id FROM staging.quarantine WHERE record_id NOTNULL")
    }
    assert {"INF-E1-1", "INF-E2-2", "INF-W2-1", "PT-W4", "INF-W4-1", "AE-E1-1"} <= quarantined
    assert not quarantined & {"INF-E1-2", "INF-E1-3", "INF-E1-4", "INF-E2-1", "INF-E2-3", "INF-W1-2"}


def test_a_patient_whose_infusion_1_is_quarantined_keeps_numbers_2_3_4(cohort: RegistryRun):
    rows = cohort.query(
        "SELECT infusion_key, infusion_number, phase FROM infusions WHERE patient_key = ?",
        [patient_key("east", "PT-E1")],
    )
    numbers = {key: (number, phase) for key, number, phase in rows}
    assert numbers == {
        infusion_key("east", "INF-E1-2"): (2, "induction"),
        infusion_key("east", "INF-E1-3"): (3, "induction"),
        infusion_key("east", "INF-E1-4"): (4, "maintenance"),
    }


def test_the_baseline_is_before_the_first_dose_even_when_that_infusion_was_quarantined(cohort: RegistryRun):
    # The 10 Jan "baseline" of 3 is after the quarantined infusion 1 of 6 Jan: the 2 Jan baseline of 8 counts.
    assert outcome(cohort, "east", "PT-E1", "nprs_baseline, responder, substantial_responder") == (8, True, True)


def test_the_infusion_1_rate_cap_applies_to_the_real_infusion_1_only(cohort: RegistryRun):
    # INF-E1-2 runs at 40 mg/h; numbered "1" after the quarantine it would break the 25 mg/h cap of infusion 1.
    assert cohort.query(
        "SELECT count(*) FROM protocol_deviations WHERE patient_key = ? AND deviation = "
        "'first_infusion_rate_above_titration_cap'",
        [patient_key("east", "PT-E1")],
    ) == [(0,)]


def test_an_unplaceable_quarantined_infusion_makes_the_course_incomplete_and_leaves_it_out(cohort: RegistryRun):
    columns = ("course_incomplete, infusion_count, responder, substantial_responder, best_nprs_reduction_pct, "
               "sustained_responder, primary_assessment_observed, nprs_primary, nprs_change_primary")
    assert outcome(cohort, "east", "PT-E2", columns) == (True, 2, None, None, None, None, None, None, None)
    assert outcome(cohort, "east", "PT-E1", "course_incomplete, recorded_infusions") == (False, 4)
    # Left out of the responder rate, counted in the flow (below) and still in the safety figures.
    assert metric(cohort, "responder_rate")[("overall", "all")][:2] == (5, 5)


# --------------------------------------------------------------------------------------------------------
# 2. Serious ≠ severe.


def test_a_grade_3_non_serious_ae_is_severe_not_serious_and_a_serious_grade_2_the_reverse(cohort: RegistryRun):
    # Cohort infusions: E1 3 (2–4), E2 2, E3 3, E4 1, W1 3, W3 4 = 16. Severe: E3's grade-3 headache; serious:
    # E4's hallucination (grade 2). E5's grade-3 AE is outside the cohort.
    severe = metric(cohort, "severe_ae_rate")
    serious = metric(cohort, "serious_ae_rate")
    assert severe[("overall", "all")][:2] == (1, 16)
    assert serious[("overall", "all")][:2] == (1, 16)
    assert severe[("etiology", "cipn")][:2] == (1, 9)  # E1 3 + E3 3 + W1 3 infusions; E3's headache
    assert serious[("etiology", "cipn")][:2] == (0, 9)
    assert serious[("etiology", "radiation")][:2] == (1, 1)  # E4
    for rows in (severe, serious):
        _, _, estimate, low, high, unit, *_ = rows[("overall", "all")]
        assert unit == "per_infusion" and estimate == pytest.approx(1 / 16)
        assert (low, high) == pytest.approx(tuple(map(float, confint_poisson(1, 16, method="score"))), abs=1e-12)


# --------------------------------------------------------------------------------------------------------
# 3. The primary estimand and its sensitivity analyses.

# Population: treated cohort patients with a complete course: E1, E3, E4, W1, W3.
PRIMARY = {
    ("east", "PT-E1"): ("pre_infusion", 42, True, 5.0, -3.0, True),
    ("east", "PT-E3"): ("follow_up", 30, True, 7.0, -1.0, False),
    ("east", "PT-E4"): (None, None, False, None, None, False),
    ("west", "PT-W1"): ("follow_up", 30, True, 6.0, -4.0, True),
    ("west", "PT-W3"): ("pre_infusion", 42, True, 5.0, 0.0, False),
}


@pytest.mark.parametrize(("patient", "expected"), PRIMARY.items(), ids=[p for _, p in PRIMARY])
def test_the_primary_assessment_is_fixed_in_time_and_missing_counts_as_non_response(
    cohort: RegistryRun, patient: tuple[str, str], expected: tuple
):
    columns = ("primary_assessment_source, primary_assessment_day, primary_assessment_observed, nprs_primary, "
               "nprs_change_primary, sustained_responder")
    assert outcome(cohort, *patient, columns) == expected


def test_patients_outside_the_estimand_population_have_no_primary_endpoint(cohort: RegistryRun):
    # E6: no infusion. W2: every infusion quarantined. E5 (prior neuropathy) has no row at all.
    for patient in (("east", "PT-E6"), ("west", "PT-W2")):
        assert outcome(cohort, *patient, "sustained_responder, primary_assessment_observed") == (None, None)


def _wilson(numerator: int, denominator: int) -> tuple[float, float]:
    return proportion_confint(numerator, denominator, alpha=0.05, method="wilson")


def test_sustained_responder_rate_and_its_sensitivity_analyses(cohort: RegistryRun):
    # Sustained responders E1, W1 of 5 (E4 missing → non-responder). Complete case: 2 of the 4 observed.
    # Best case: E4 counted a responder → 3 of 5. The study's best-of-any-look responder rate is 5 of 5.
    expected = {
        "sustained_responder_rate": (2, 5),
        "sustained_responder_rate_complete_case": (2, 4),
        "sustained_responder_rate_best_case": (3, 5),
    }
    for name, (numerator, denominator) in expected.items():
        row = metric(cohort, name)[("overall", "all")]
        assert row[:2] == (numerator, denominator), name
        assert row[2] == pytest.approx(numerator / denominator)
        assert row[3:5] == pytest.approx(_wilson(numerator, denominator), abs=1e-12)
        assert row[5] == "proportion"
    by_site = metric(cohort, "sustained_responder_rate")
    assert by_site[("site", "east")][:2] == (1, 3) and by_site[("site", "west")][:2] == (1, 2)
    assert metric(cohort, "sustained_responder_rate_best_case")[("site", "east")][:2] == (2, 3)


def test_nprs_change_primary_is_a_mean_with_sd_and_t_interval_over_one_timepoint(cohort: RegistryRun):
    # Changes at the primary assessment: E1 −3, E3 −1, W1 −4, W3 0 → n 4 of 5, mean −2,
    # SD √((1 + 1 + 4 + 4) / 3) = √(10/3).
    numerator, denominator, estimate, low, high, unit, sd, exposure = metric(cohort, "nprs_change_primary")[
        ("overall", "all")
    ]
    assert (numerator, denominator, unit, exposure) == (4, 5, "mean", None)
    assert estimate == pytest.approx(-2.0, abs=1e-12)
    assert sd == pytest.approx(math.sqrt(10 / 3), abs=1e-12)
    assert (low, high) == pytest.approx(DescrStatsW([-3.0, -1.0, -4.0, 0.0]).tconfint_mean(0.05), abs=1e-12)
    east = metric(cohort, "nprs_change_primary")[("site", "east")]
    assert east[:3] == (2, 3, pytest.approx(-2.0)) and east[6] == pytest.approx(math.sqrt(2))


# --------------------------------------------------------------------------------------------------------
# 4. Safety.


def test_patients_with_ae_counts_each_treated_patient_once(cohort: RegistryRun):
    # Treated cohort patients: E1 E2 E3 E4 W1 W3; with an AE on a valid infusion: E2 E3 E4 W1 (W1 has two).
    rows = metric(cohort, "patients_with_ae")
    assert rows[("overall", "all")][:2] == (4, 6)
    assert rows[("overall", "all")][3:5] == pytest.approx(_wilson(4, 6), abs=1e-12)
    assert rows[("site", "east")][:2] == (3, 4) and rows[("site", "west")][:2] == (1, 2)
    # By worst grade, each over the 6 treated: W1 1; E2 2, E4 2; E3 3 (E1 and W3 had none).
    assert {s: rows[("worst_grade", s)][:2] for s in "12345"} == {
        "1": (1, 6), "2": (2, 6), "3": (1, 6), "4": (0, 6), "5": (0, 6),
    }


def test_grade_distribution_lists_every_ctcae_grade(cohort: RegistryRun):
    # Cohort AE records: W1 grade 1 ×2, E2 grade 2, E4 grade 2, E3 grade 3 → 5.
    rows = metric(cohort, "ae_grade_distribution")
    assert {s: rows[("grade", s)][:2] for s in "12345"} == {
        "1": (2, 5), "2": (2, 5), "3": (1, 5), "4": (0, 5), "5": (0, 5),
    }
    assert rows[("overall", "all")][:2] == (1, 5)  # the overall row: the severe (grade ≥ 3) share of AEs


def test_ae_rate_per_100_infusion_hours_is_exposure_adjusted_with_a_poisson_interval(cohort: RegistryRun):
    # 5 AEs over 15 infusions of 4 h and W1's infusion 2 of 3.5 h: 63.5 h → 7.874 per 100 infusion hours.
    numerator, infusions, estimate, low, high, unit, sd, hours = metric(
        cohort, "ae_rate_per_100_infusion_hours"
    )[("overall", "all")]
    assert (numerator, infusions, unit, sd) == (5, 16, "per_100_infusion_hours", None)
    assert hours == pytest.approx(63.5, abs=1e-12)
    assert estimate == pytest.approx(100 * 5 / 63.5, abs=1e-12)
    expected = tuple(100 * float(bound) for bound in confint_poisson(5, 63.5, method="score"))
    assert (low, high) == pytest.approx(expected, abs=1e-12)
    west = metric(cohort, "ae_rate_per_100_infusion_hours")[("site", "west")]
    assert west[0] == 2 and west[7] == pytest.approx(27.5)  # W1 3 infusions (11.5 h) + W3 4 (16 h)


def test_new_metrics_are_broken_down_by_the_existing_strata(cohort: RegistryRun):
    for name in ("sustained_responder_rate", "nprs_change_primary", "patients_with_ae", "severe_ae_rate",
                 "ae_grade_distribution", "ae_rate_per_100_infusion_hours"):
        types = {t for (t, _) in metric(cohort, name)}
        assert {"overall", "site", "etiology", "cancer_type"} <= types, name


# --------------------------------------------------------------------------------------------------------
# 5. The patient flow.

FLOW = {
    # (step, breakdown, category): (east, west, all)
    ("received", "total", "all"): (6, 4, 10),
    ("quarantined", "total", "all"): (0, 1, 1),
    ("registered", "total", "all"): (6, 3, 9),
    ("excluded", "reason", "prior_neuropathy"): (1, 0, 1),
    ("excluded", "reason", "no_infusion_recorded"): (1, 0, 1),
    ("excluded", "reason", "all_infusions_quarantined"): (0, 1, 1),
    ("excluded", "reason", "course_incomplete"): (1, 0, 1),
    ("analysed", "total", "all"): (3, 2, 5),
    ("primary_endpoint", "status", "observed"): (2, 2, 4),
    ("primary_endpoint", "status", "missing"): (1, 0, 1),
    ("completed_induction", "total", "all"): (2, 2, 4),  # E1 (4 in the record), E3, W1, W3
    ("entered_maintenance", "total", "all"): (1, 1, 2),  # E1, W3
    ("discontinued", "total", "all"): (1, 0, 1),
    ("discontinued", "reason", "unsatisfactory_relief"): (1, 0, 1),
    ("discontinued", "phase", "induction"): (1, 0, 1),
    ("discontinued", "phase", "maintenance"): (0, 0, 0),
    ("lost_to_follow_up", "total", "all"): (1, 0, 1),
    ("lost_to_follow_up", "phase", "induction"): (1, 0, 1),
}


def _flow(run: RegistryRun) -> dict[tuple[str, str, str, str], int]:
    rows = run.query("SELECT step, breakdown, category, site_id, patients FROM metrics.patient_flow")
    return {(step, breakdown, category, site): n for step, breakdown, category, site, n in rows}


def test_patient_flow_gives_the_hand_counted_patients_per_step_and_site(cohort: RegistryRun):
    flow = _flow(cohort)
    for (step, breakdown, category), counts in FLOW.items():
        got = tuple(flow.get((step, breakdown, category, site)) for site in ("east", "west", "all"))
        assert got == counts, (step, breakdown, category)


def _assert_flow_adds_up(flow: dict[tuple[str, str, str, str], int]) -> None:
    sites = {site for (*_, site) in flow}
    for site in sites:
        def n(step: str, breakdown: str = "total", category: str = "all", site: str = site) -> int:
            return flow[(step, breakdown, category, site)]

        def parts(step: str, breakdown: str, site: str = site) -> int:
            return sum(v for (s, b, _, where), v in flow.items() if s == step and b == breakdown and where == site)

        assert n("received") == n("quarantined") + n("registered"), site
        assert n("registered") == parts("excluded", "reason") + n("analysed"), site
        assert n("analysed") == parts("primary_endpoint", "status"), site
        assert n("analysed") >= n("completed_induction") >= n("entered_maintenance"), site
        assert n("discontinued") == parts("discontinued", "reason") == parts("discontinued", "phase"), site
        assert n("lost_to_follow_up") == parts("lost_to_follow_up", "phase"), site
    for (step, breakdown, category, site), value in flow.items():
        if site == "all":
            assert value == sum(v for (s, b, c, where), v in flow.items()
                                if (s, b, c) == (step, breakdown, category) and where != "all"), step


def test_patient_flow_sums_add_up_per_step_and_per_site(cohort: RegistryRun):
    _assert_flow_adds_up(_flow(cohort))


def test_the_dashboard_flow_suppresses_small_counts_and_every_count_that_would_give_one_back(cohort: RegistryRun):
    from ketreg.privacy.flow_suppression import _equations, suppress_flow

    columns = ["step_order", "step", "breakdown", "category", "site_id", "patients"]
    rows = [dict(zip(columns, r, strict=True)) for r in cohort.query(
        f"SELECT {', '.join(columns)} FROM metrics.patient_flow"
    )]
    assert suppress_flow(rows, 1) == [{**r, "suppressed": False} for r in rows]
    shared = suppress_flow(rows, 5)
    cells = {(r["step"], r["breakdown"], r["category"], r["site_id"]): r for r in shared}
    original = {(r["step"], r["breakdown"], r["category"], r["site_id"]): r["patients"] for r in rows}
    # Every count from 1 to 4 is blanked (E2's course_incomplete, W4's quarantined row …); zeros stay.
    assert all(cells[c]["suppressed"] for c, n in original.items() if 1 <= n <= 4)
    assert all(not cells[c]["suppressed"] for c, n in original.items() if n == 0)
    # No equation of the flow is left with a single blank, so none can be solved for a suppressed count.
    for equation in _equations(original):
        assert sum(cells[c]["suppressed"] for c in equation) != 1, equation
    # All sites received 10 records, quarantined 1 (W4), registered 9: the 1 is blanked, and so is one of 10 and 9,
    # or their difference would give it back.
    assert cells[("quarantined", "total", "all", "all")]["suppressed"]
    assert cells[("received", "total", "all", "all")]["suppressed"] or cells[("registered", "total", "all", "all")][
        "suppressed"]


def test_patient_flow_sums_add_up_on_a_faulty_synthetic_registry(faulty_registry: RegistryRun):
    flow = _flow(faulty_registry)
    assert flow[("quarantined", "total", "all", "all")] > 0  # the generator's faults reach the flow
    _assert_flow_adds_up(flow)


# --------------------------------------------------------------------------------------------------------
# 6. Every published table is identical across runs on the same landing folder.


def _published_fingerprints(path: Path) -> dict[str, dict[str, object]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return table_fingerprints(con)
    finally:
        con.close()


def test_two_runs_on_the_same_landing_publish_identical_tables(tmp_path: Path):
    from synthetic import generate_landing

    landing = tmp_path / "landing"
    # Large enough for the multivariable predictors model to be fitted (the source of the last-digit drift).
    generate_landing(landing, sites=3, patients_per_site=40, seed=5, error_rate=0.02)
    first = run_registry(landing, tmp_path / "first")
    second = run_registry(landing, tmp_path / "second")
    assert first.success and second.success, first.failures + second.failures
    assert first.query("SELECT count_if(estimable AND odds_ratio <> 1) FROM metrics.response_predictors")[0][0] > 0
    a, b = _published_fingerprints(first.analyst_db), _published_fingerprints(second.analyst_db)
    assert set(a) == set(b)
    differing = sorted(name for name in a if a[name] != b[name])
    assert differing == [], differing


# --------------------------------------------------------------------------------------------------------
# The primary assessment's settings are configuration, checked where the protocol file is loaded.


def _protocol_with(tmp_path: Path, **primary: int) -> Path:
    import yaml

    from schemas.protocol import DEFAULT_PROTOCOL_FILE

    raw = yaml.safe_load(DEFAULT_PROTOCOL_FILE.read_text(encoding="utf-8"))
    if primary:
        raw["metrics"]["primary_assessment"].update(primary)
    else:
        del raw["metrics"]["primary_assessment"]
    path = tmp_path / "protocol.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_primary_assessment_settings_come_from_the_protocol_file(tmp_path: Path):
    from schemas.protocol import load_metric_settings

    default = load_metric_settings()
    assert (default.primary_pre_infusion_number, default.primary_follow_up_target_day,
            default.primary_follow_up_window_days) == (4, 28, 7)
    custom = load_metric_settings(_protocol_with(tmp_path, pre_infusion_number=5, follow_up_target_day=56))
    assert (custom.primary_pre_infusion_number, custom.primary_follow_up_target_day) == (5, 56)
    # A site protocol written before the primary estimand existed is summarised the registry's default way.
    older = load_metric_settings(_protocol_with(tmp_path))
    assert older.primary_pre_infusion_number == 4


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"pre_infusion_number": 1}, "pre_infusion_number must be ≥ 2"),
        ({"follow_up_window_days": -1}, "follow_up_window_days must be ≥ 0"),
        ({"follow_up_target_day": 7, "follow_up_window_days": 7}, "follow_up_target_day − follow_up_window_days"),
    ],
)
def test_an_impossible_primary_assessment_is_refused_with_the_setting_named(tmp_path: Path, setting: dict,
                                                                            message: str):
    from schemas.protocol import ProtocolError, load_metric_settings

    with pytest.raises(ProtocolError, match=message):
        load_metric_settings(_protocol_with(tmp_path, **setting))


def test_predictors_and_planning_do_not_depend_on_row_order():
    # The cause of the drift between runs: polars' group_by hands groups back in a different order every time
    # and the fits' floating-point sums followed it. Shuffled input must now give the very same bits.
    import numpy as np
    import polars as pl

    from ketreg.metrics.planning import study_planning
    from ketreg.metrics.predictors import response_predictors
    from schemas.protocol import load_metric_settings

    settings = load_metric_settings()
    rng = np.random.default_rng(11)
    n = 600
    outcomes = pl.DataFrame({
        "patient_key": [f"p{i:04d}" for i in range(n)],
        "site_id": rng.choice(["a", "b", "c", "d"], n),
        "cnp_etiology": rng.choice(["cipn", "tumor_compression", "surgery", "radiation"], n),
        "cancer_type": rng.choice(["breast", "lung", "prostate"], n),
        "metastatic": rng.random(n) < 0.4,
        "baseline_nprs_band": rng.choice(["7-10", "4-6"], n),
        "infusion_count": np.full(n, 3),
        "responder": rng.random(n) < 0.6,
        "discontinued": rng.random(n) < 0.3,
        "nprs_change_end_of_induction": rng.integers(-8, 3, n),
        "nprs_baseline": rng.integers(4, 11, n),
        "course_incomplete": np.full(n, False),
        "primary_assessment_observed": rng.random(n) < 0.7,
        "sustained_responder": rng.random(n) < 0.35,
        "nprs_primary": rng.integers(0, 11, n).astype(float),
        "nprs_change_primary": rng.integers(-8, 3, n).astype(float),
    }).with_columns(
        # Missing the primary assessment: no score, and not a responder (composite strategy).
        pl.when(pl.col("primary_assessment_observed")).then(pl.col(c)).otherwise(None).alias(c)
        for c in ("nprs_primary", "nprs_change_primary")
    ).with_columns(pl.col("sustained_responder") & pl.col("primary_assessment_observed"))
    reference = (response_predictors(outcomes, settings), study_planning(outcomes, settings))
    assert reference[0]["estimable"].sum() > 5
    for seed in range(5):
        shuffled = outcomes.sample(fraction=1.0, shuffle=True, seed=seed)
        again = (response_predictors(shuffled, settings), study_planning(shuffled, settings))
        for before, after in zip(reference, again, strict=True):
            assert before.equals(after, null_equal=True)


def test_the_run_summary_states_the_primary_estimand_beside_the_study_responder_rate(cohort: RegistryRun):
    from ketreg_app.summary import run_summary

    summary = run_summary(cohort.analyst_db)
    # Sustained responders 2 of 5 (Wilson 11.8 %–76.9 %); the study's responder rate 5 of 5.
    assert "sustained responder rate: 40.0% (2/5; 95 % CI 11.8%–76.9%)" in summary
    assert "  responder rate: 100.0% (5/5;" in summary


def test_unreadable_raw_values_make_a_course_incomplete_instead_of_failing(cohort: RegistryRun, tmp_path: Path):
    import shutil

    from ketreg.warehouse.connection import run_sql_file

    work = tmp_path / "work.duckdb"
    shutil.copy(cohort.work_db, work)
    con = duckdb.connect(str(work))
    try:
        # Cut INF-E1-1's raw values short: no longer JSON, so its start cannot be read.
        con.execute("UPDATE staging.quarantine SET raw_values = left(raw_values, 10) WHERE record_id = 'INF-E1-1'")
        run_sql_file(con, "keys/infusion_positions.sql")
        rows = con.execute(
            "SELECT infusion_id, infusion_number FROM keys.infusion_positions WHERE patient_id = 'PT-E1' "
            "ORDER BY infusion_number NULLS FIRST"
        ).fetchall()
    finally:
        con.close()
    # Its patient id is in the same raw values, so the row belongs to nobody and the others count from 1 again;
    # with the patient id readable and the start not (PT-E2) the course is incomplete, as tested above.
    assert rows == [("INF-E1-2", 1), ("INF-E1-3", 2), ("INF-E1-4", 3)]
