"""The registry metrics on a hand-built reference cohort, run once through the whole pipeline (`run_registry`):
every figure of metrics.registry_metrics and metrics.patient_outcomes is compared with a number worked out by
hand below, the intervals with statsmodels, and the study-planning sizes with statsmodels' power functions.

The reference cohort (two sites, eight patients; protocol: induction = infusions 1–3, responder ≥ 30 %,
substantial ≥ 50 %, durable relief > 21 days, interruption judged ≥ 14 days after, within 1 NPRS point):

north  PT-N1  breast, CIPN, not metastatic, 70 kg. Baseline 10. Infusions 1–4 (4 = maintenance). Post-infusion
              NPRS 8 then 7: a reduction of exactly 30 % → responder, not substantial. Post-infusion-4 NPRS 3 and a
              follow-up NPRS 2 after infusion 4 started are outside induction. Relief 7, 21, 21 days: exactly 21
              is not durable. Two self-resolved AEs on infusion 1.
       PT-N2  lung, tumour compression, metastatic. Baseline 8 (a later baseline of 2, after infusion 1 started,
              is ignored). Post NPRS 6 and 6 (25 %) but "feels better" → responder by subjective report only.
              Relief 22 days → durable. AEs: dizziness with rate reduced (intervention); hypertension grade 3
              (severe, not serious: ICH E2A; self-resolved). Discontinued for an adverse event. Interrupted from
              outside; its only later NPRS is 13 days after → not judged.
       PT-N3  prior neuropathy: outside the analysis cohort, though a responder with an AE.
       PT-N4  breast, surgery, metastatic unknown. No baseline assessment: baseline = pre-infusion-1 NPRS 7.
              Post NPRS 5 (28.6 %) → not a responder. Infusion 3 runs at 200 mg/h: quarantined, with its AE
              and its post NPRS of 2. Discontinued for unsatisfactory relief.
south  PT-S1  prostate, radiation, not metastatic. Baseline 6. Infusions 1–4. An unlinked post NPRS 3 dated
              before infusion 4 → exactly 50 % → responder and substantial. Relief 30 days. Interrupted from
              outside: NPRS 6 after 9 days (too soon), then 3 after 19 days → did not return to baseline.
       PT-S2  breast, CIPN, not metastatic. Baseline 8, post NPRS 8, an unlinked follow-up 7 → not a responder.
              Serious hallucination with the infusion stopped. Interrupted from outside; NPRS 7 exactly 14 days
              later → returned to baseline (7 ≥ 8 − 1).
       PT-S3  sarcoma, tumour compression, metastatic. Baseline 7, no infusion: in the cohort, in no rate.
       PT-S4  breast, CIPN, not metastatic. Baseline 9, post NPRS 4 (55.6 %) → responder and substantial. No
              relief duration recorded. Discontinued for unsatisfactory relief.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
from pathlib import Path

import pytest
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.rates import confint_poisson
from support import TEST_KEY, RegistryRun, run_registry, write_export

REFERENCE_CSV = {
    "patients": """
patient_id,sex,birth_year,weight_kg,cancer_type,metastatic,cnp_etiology,prior_neuropathy,cnp_diagnosis_date
PT-N1,F,1960,70,breast,false,cipn,false,2024-06-01
PT-N2,M,1955,,lung,true,tumor_compression,false,
PT-N3,F,1962,65,breast,false,cipn,true,
PT-N4,F,1970,80,breast,,surgery,false,
""",
    "infusions": """
infusion_id,patient_id,start_time,end_time,initial_rate_mg_h,max_rate_mg_h,total_dose_mg,completed,stop_reason,relief_duration_days
INF-N1-1,PT-N1,2025-01-06T09:00,2025-01-06T13:00,10,25,80,true,,7
INF-N1-2,PT-N1,2025-01-13T09:00,2025-01-13T13:00,10,40,120,true,,21
INF-N1-3,PT-N1,2025-01-20T09:00,2025-01-20T13:00,10,50,150,true,,21
INF-N1-4,PT-N1,2025-02-17T09:00,2025-02-17T13:00,10,70,200,true,,
INF-N2-1,PT-N2,2025-01-07T09:00,2025-01-07T13:00,10,20,60,true,,22
INF-N2-2,PT-N2,2025-01-14T09:00,2025-01-14T13:00,10,35,100,true,,
INF-N3-1,PT-N3,2025-01-08T09:00,2025-01-08T13:00,10,25,80,true,,30
INF-N4-1,PT-N4,2025-01-09T09:00,2025-01-09T13:00,10,25,80,true,,5
INF-N4-2,PT-N4,2025-01-16T09:00,2025-01-16T13:00,10,40,120,true,,
INF-N4-3,PT-N4,2025-01-23T09:00,2025-01-23T13:00,10,200,400,true,,
""",
    "assessments": """
assessment_id,patient_id,infusion_id,assessed_at,timepoint,nprs,function_score,satisfaction,daily_mme,subjective_improvement
A-N1-B,PT-N1,,2025-01-02T10:00,baseline,10,7,2,60,
A-N1-1a,PT-N1,INF-N1-1,2025-01-06T08:45,pre,10,6,3,60,
A-N1-1b,PT-N1,INF-N1-1,2025-01-06T13:30,post,8,,,,false
A-N1-2b,PT-N1,INF-N1-2,2025-01-13T13:30,post,7,,,,
A-N1-4b,PT-N1,INF-N1-4,2025-02-17T13:30,post,3,,,,
A-N1-F,PT-N1,,2025-03-01T10:00,follow_up,2,,,,
A-N2-B,PT-N2,,2025-01-02T10:00,baseline,8,5,2,120,
A-N2-B2,PT-N2,,2025-01-08T10:00,baseline,2,,,,
A-N2-1a,PT-N2,INF-N2-1,2025-01-07T08:45,pre,8,5,,120,
A-N2-1b,PT-N2,INF-N2-1,2025-01-07T13:30,post,6,,,,false
A-N2-2b,PT-N2,INF-N2-2,2025-01-14T13:30,post,6,,,,true
A-N2-F,PT-N2,,2025-02-14T10:00,follow_up,8,,,,
A-N3-B,PT-N3,,2025-01-02T10:00,baseline,9,,,,
A-N3-1b,PT-N3,INF-N3-1,2025-01-08T13:30,post,1,,,,true
A-N4-1a,PT-N4,INF-N4-1,2025-01-09T08:45,pre,7,4,5,30,
A-N4-1b,PT-N4,INF-N4-1,2025-01-09T13:30,post,5,,,,false
A-N4-2b,PT-N4,INF-N4-2,2025-01-16T13:30,post,5,,,,
A-N4-3b,PT-N4,INF-N4-3,2025-01-23T13:30,post,2,,,,true
""",
    "adverse_events": """
ae_id,patient_id,infusion_id,onset_time,term,category,grade,serious,action_taken,outcome
AE-N1-1,PT-N1,INF-N1-1,2025-01-06T10:00,nausea,,1,false,none,resolved
AE-N1-2,PT-N1,INF-N1-1,2025-01-06T11:00,headache,,1,false,none,resolved
AE-N2-1,PT-N2,INF-N2-1,2025-01-07T10:00,dizziness,,2,false,rate_reduced,resolved
AE-N2-2,PT-N2,INF-N2-2,2025-01-14T10:00,hypertension,,3,false,none,resolved
AE-N3-1,PT-N3,INF-N3-1,2025-01-08T10:00,nausea,,1,false,none,resolved
AE-N4-1,PT-N4,INF-N4-3,2025-01-23T10:00,vomiting,,1,false,none,resolved
""",
    "dispositions": """
patient_id,event_date,status,reason
PT-N1,2025-01-27,continuing,
PT-N2,2025-02-01,interrupted,external_interruption
PT-N2,2025-03-01,discontinued,adverse_event
PT-N4,2025-02-20,discontinued,unsatisfactory_relief
""",
}

SOUTH_CSV = {
    "patients": """
patient_id,sex,birth_year,weight_kg,cancer_type,metastatic,cnp_etiology,prior_neuropathy,cnp_diagnosis_date
PT-S1,M,1950,90,prostate,false,radiation,false,
PT-S2,F,1965,60,breast,false,cipn,false,
PT-S3,M,1958,75,sarcoma,true,tumor_compression,false,
PT-S4,F,1972,55,breast,false,cipn,false,
""",
    "infusions": """
infusion_id,patient_id,start_time,end_time,initial_rate_mg_h,max_rate_mg_h,total_dose_mg,completed,stop_reason,relief_duration_days
INF-S1-1,PT-S1,2025-01-06T09:00,2025-01-06T13:00,10,25,80,true,,30
INF-S1-2,PT-S1,2025-01-13T09:00,2025-01-13T13:00,10,40,120,true,,
INF-S1-3,PT-S1,2025-01-20T09:00,2025-01-20T13:00,10,50,150,true,,
INF-S1-4,PT-S1,2025-02-17T09:00,2025-02-17T13:00,10,60,180,true,,
INF-S2-1,PT-S2,2025-01-07T09:00,2025-01-07T13:00,10,25,80,true,,3
INF-S2-2,PT-S2,2025-01-14T09:00,2025-01-14T13:00,10,30,90,false,adverse_event,
INF-S4-1,PT-S4,2025-01-08T09:00,2025-01-08T13:00,10,25,80,true,,
""",
    "assessments": """
assessment_id,patient_id,infusion_id,assessed_at,timepoint,nprs,function_score,satisfaction,daily_mme,subjective_improvement
A-S1-B,PT-S1,,2025-01-02T10:00,baseline,6,5,3,0,
A-S1-1a,PT-S1,INF-S1-1,2025-01-06T08:45,pre,6,5,4,0,
A-S1-1b,PT-S1,INF-S1-1,2025-01-06T13:30,post,6,,,,false
A-S1-U,PT-S1,,2025-02-03T10:00,post,3,,,,
A-S1-F1,PT-S1,,2025-03-10T10:00,follow_up,6,,,,
A-S1-F2,PT-S1,,2025-03-20T10:00,follow_up,3,,,,
A-S2-B,PT-S2,,2025-01-02T10:00,baseline,8,6,2,45,
A-S2-1a,PT-S2,INF-S2-1,2025-01-07T08:45,pre,,6,3,45,
A-S2-1b,PT-S2,INF-S2-1,2025-01-07T13:30,post,8,,,,false
A-S2-F,PT-S2,,2025-02-15T10:00,follow_up,7,,,,false
A-S3-B,PT-S3,,2025-01-02T10:00,baseline,7,,,,
A-S4-B,PT-S4,,2025-01-02T10:00,baseline,9,,,,
A-S4-1b,PT-S4,INF-S4-1,2025-01-08T13:30,post,4,,,,
""",
    "adverse_events": """
ae_id,patient_id,infusion_id,onset_time,term,category,grade,serious,action_taken,outcome
AE-S2-1,PT-S2,INF-S2-2,2025-01-14T11:00,hallucination,,2,true,infusion_stopped,resolved
""",
    "dispositions": """
patient_id,event_date,status,reason
PT-S1,2025-01-27,continuing,
PT-S1,2025-03-01,interrupted,external_interruption
PT-S1,2025-05-01,resumed,
PT-S2,2025-02-01,interrupted,external_interruption
PT-S3,2025-01-20,discontinued,patient_choice
PT-S4,2025-02-10,discontinued,unsatisfactory_relief
""",
}

SITES = {"north": REFERENCE_CSV, "south": SOUTH_CSV}

# Hand-computed figures: metric → {(stratum_type, stratum): (numerator, denominator)}. Counts: (n, None).
# Cohort: N1 N2 N4 S1 S2 S3 S4 (N3 excluded). Treated: all but S3. Responders: N1 N2 S1 S4.
# Cohort infusions: N1 4 + N2 2 + N4 2 (the 200 mg/h one is quarantined) + S1 4 + S2 2 + S4 1 = 15.
EXPECTED: dict[str, dict[tuple[str, str], tuple[int, int | None]]] = {
    "cohort_patients": {
        ("overall", "all"): (7, None), ("site", "north"): (3, None), ("site", "south"): (4, None),
        ("etiology", "cipn"): (3, None), ("etiology", "tumor_compression"): (2, None),
        ("etiology", "surgery"): (1, None), ("etiology", "radiation"): (1, None),
        ("cancer_type", "breast"): (4, None), ("cancer_type", "lung"): (1, None),
        ("cancer_type", "prostate"): (1, None), ("cancer_type", "sarcoma"): (1, None),
        ("metastatic", "true"): (2, None), ("metastatic", "false"): (4, None), ("metastatic", "unknown"): (1, None),
    },
    "cohort_infusions": {("overall", "all"): (15, None), ("site", "north"): (8, None), ("site", "south"): (7, None)},
    "responder_rate": {
        ("overall", "all"): (4, 6), ("site", "north"): (2, 3), ("site", "south"): (2, 3),
        ("etiology", "cipn"): (2, 3), ("etiology", "tumor_compression"): (1, 1), ("etiology", "surgery"): (0, 1),
        ("etiology", "radiation"): (1, 1),
        ("cancer_type", "breast"): (2, 4), ("cancer_type", "lung"): (1, 1), ("cancer_type", "prostate"): (1, 1),
        ("cancer_type", "sarcoma"): (0, 0),
        ("metastatic", "true"): (1, 1), ("metastatic", "false"): (3, 4), ("metastatic", "unknown"): (0, 1),
        ("baseline_nprs_band", "7-10"): (3, 5), ("baseline_nprs_band", "4-6"): (1, 1),
    },
    # S1 (exactly 50 %) and S4; N1's post-maintenance 3 does not count.
    "substantial_responder_rate": {("overall", "all"): (2, 6), ("site", "north"): (0, 3), ("site", "south"): (2, 3)},
    # AEs: N1 ×2 on one infusion, N2 ×2, S2 ×1 (N3's is outside the cohort, N4's was quarantined).
    "ae_rate_per_infusion": {
        ("overall", "all"): (5, 15), ("site", "north"): (4, 8), ("site", "south"): (1, 7),
        ("ae_category", "neurological"): (2, 15), ("ae_category", "gastrointestinal"): (1, 15),
        ("ae_category", "cardiovascular"): (1, 15), ("ae_category", "psychiatric"): (1, 15),
        ("ae_category", "respiratory"): (0, 15), ("ae_category", "other"): (0, 15),
    },
    "infusions_with_ae": {("overall", "all"): (4, 15), ("site", "north"): (3, 8), ("site", "south"): (1, 7)},
    # Episodes: N1-1 and N2-2 self-resolved; N2-1 (rate reduced) and S2-2 (stopped) needed intervention.
    "ae_episode_resolution": {
        ("overall", "all"): (2, 4), ("resolution", "self_resolved"): (2, 4), ("resolution", "intervention"): (2, 4),
        ("site", "north"): (2, 3), ("site", "south"): (0, 1),
    },
    # Serious = the site's `serious` flag only (ICH E2A): S2's hallucination. N2's grade-3 hypertension is severe,
    # not serious (tests/test_endpoints.py counts it in severe_ae_rate).
    "serious_ae_rate": {("overall", "all"): (1, 15), ("site", "north"): (0, 8), ("site", "south"): (1, 7)},
    # Treated and discontinued: N2 (adverse event), N4 and S4 (unsatisfactory relief); S3 had no infusion.
    "discontinuation_rate": {
        ("overall", "all"): (3, 6), ("reason", "adverse_event"): (1, 6), ("reason", "unsatisfactory_relief"): (2, 6),
    },
    "responder_discontinuation": {
        ("overall", "all"): (2, 4), ("reason", "adverse_event"): (1, 4), ("reason", "unsatisfactory_relief"): (1, 4),
        ("site", "north"): (1, 2), ("site", "south"): (1, 2),
    },
    # Responders with a relief duration: N1 (at most 21: not durable), N2 (22), S1 (30); S4 has none.
    "durable_relief": {
        ("overall", "all"): (2, 3), ("site", "north"): (1, 2), ("site", "south"): (1, 1),
        ("cancer_type", "breast"): (0, 1), ("cancer_type", "sarcoma"): (0, 0), ("etiology", "surgery"): (0, 0),
    },
    # S2 returned (NPRS 7 at exactly 14 days, baseline 8); S1 did not (3 < 6 − 1); N2's NPRS came too soon.
    "interruption_return_to_baseline": {
        ("overall", "all"): (1, 2), ("site", "south"): (1, 2), ("site", "north"): (0, 0),
    },
    # Per infusion, measures from its pre and post assessments: complete = N1-1, N4-1, S1-1.
    "outcome_completeness": {
        ("overall", "all"): (3, 15), ("site", "north"): (2, 8), ("site", "south"): (1, 7),
        ("measure", "nprs_pre"): (4, 15), ("measure", "nprs_post"): (10, 15), ("measure", "function_score"): (5, 15),
        ("measure", "satisfaction"): (4, 15), ("measure", "daily_mme"): (5, 15),
    },
    "outcome_completeness_nprs_pre": {
        ("overall", "all"): (4, 15), ("site", "north"): (3, 8), ("site", "south"): (1, 7),
    },
    "outcome_completeness_satisfaction": {("site", "north"): (2, 8), ("site", "south"): (2, 7)},
}

ISSUE_METRICS = (
    "cohort_patients", "cohort_infusions", "responder_rate", "substantial_responder_rate", "ae_rate_per_infusion",
    "infusions_with_ae", "ae_episode_resolution", "serious_ae_rate", "responder_discontinuation", "durable_relief",
    "interruption_return_to_baseline", "outcome_completeness",
)

# patient → expected columns of metrics.patient_outcomes.
EXPECTED_PATIENTS = {
    ("north", "PT-N1"): dict(nprs_baseline=10, baseline_source="baseline", best_nprs_reduction_pct=30.0,
                             responder=True, substantial_responder=False, subjective_improvement=False,
                             infusion_count=4, max_rate_mg_h=70.0, max_rate_mg_kg_h=1.0, discontinued=False,
                             longest_relief_days=21, durable_relief=False, nprs_change_end_of_induction=-3),
    ("north", "PT-N2"): dict(nprs_baseline=8, best_nprs_reduction_pct=25.0, responder=True,
                             substantial_responder=False, subjective_improvement=True, max_rate_mg_kg_h=None,
                             discontinued=True, discontinuation_reason="adverse_event", durable_relief=True,
                             interrupted=True, returned_to_baseline_after_interruption=None, metastatic=True),
    ("north", "PT-N4"): dict(nprs_baseline=7, baseline_source="pre_infusion_1", best_nprs_reduction_pct=28.6,
                             responder=False, infusion_count=2, max_rate_mg_h=40.0, metastatic=None,
                             discontinuation_reason="unsatisfactory_relief", baseline_nprs_band="7-10"),
    ("south", "PT-S1"): dict(nprs_baseline=6, best_nprs_reduction_pct=50.0, responder=True,
                             substantial_responder=True, durable_relief=True, interrupted=True,
                             nprs_after_interruption=3, returned_to_baseline_after_interruption=False,
                             baseline_nprs_band="4-6", nprs_end_of_induction=3),
    ("south", "PT-S2"): dict(responder=False, returned_to_baseline_after_interruption=True,
                             nprs_after_interruption=7, best_nprs_reduction_pct=12.5, nprs_end_of_induction=7),
    ("south", "PT-S3"): dict(infusion_count=0, responder=None, substantial_responder=None, nprs_baseline=7,
                             discontinued=True),
    ("south", "PT-S4"): dict(best_nprs_reduction_pct=55.6, responder=True, substantial_responder=True,
                             longest_relief_days=None, durable_relief=None, discontinued=True),
}

REGISTRY_METRICS_COLUMNS = [
    ("metric", "VARCHAR"), ("stratum_type", "VARCHAR"), ("stratum", "VARCHAR"), ("numerator", "BIGINT"),
    ("denominator", "BIGINT"), ("estimate", "DOUBLE"), ("ci_low", "DOUBLE"), ("ci_high", "DOUBLE"), ("unit", "VARCHAR"),
    ("sd", "DOUBLE"), ("exposure_hours", "DOUBLE"),
]


def write_reference_landing(landing: Path) -> Path:
    for site_id, tables in SITES.items():
        rows = {table: list(csv.DictReader(io.StringIO(text.strip()))) for table, text in tables.items()}
        write_export(landing, site_id, rows=rows)
    return landing


def patient_key(site_id: str, patient_id: str) -> str:
    return hmac.new(TEST_KEY.encode(), f"{site_id}/{patient_id}".encode(), hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> RegistryRun:
    root = tmp_path_factory.mktemp("metrics-reference")
    run = run_registry(write_reference_landing(root / "landing"), root / "out")
    assert run.success, "the reference run failed:\n" + "\n".join(run.failures)
    return run


def metric_rows(run: RegistryRun, metric: str) -> dict[tuple[str, str], tuple]:
    rows = run.query(
        "SELECT stratum_type, stratum, numerator, denominator, estimate, ci_low, ci_high, unit "
        "FROM metrics.registry_metrics WHERE metric = ?",
        [metric],
    )
    return {(t, s): tuple(rest) for t, s, *rest in rows}


# --------------------------------------------------------------------------------------------------------
# The shape of metrics.registry_metrics.


def test_registry_metrics_has_exactly_the_columns_and_types_of_the_issue(reference: RegistryRun):
    columns = reference.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'metrics' AND table_name = 'registry_metrics' ORDER BY ordinal_position"
    )
    assert columns == REGISTRY_METRICS_COLUMNS


def test_every_metric_of_the_issue_has_one_overall_row_with_stratum_all(reference: RegistryRun):
    overall = reference.query(
        "SELECT metric, count(*) FROM metrics.registry_metrics WHERE stratum_type = 'overall' GROUP BY metric"
    )
    counts = dict(overall)
    assert all(counts.get(metric) == 1 for metric in ISSUE_METRICS), counts
    assert reference.query(
        "SELECT count(*) FROM metrics.registry_metrics WHERE stratum_type = 'overall' AND stratum <> 'all'"
    ) == [(0,)]


def test_metric_and_stratum_identify_each_row(reference: RegistryRun):
    assert reference.query(
        "SELECT metric, stratum_type, stratum FROM metrics.registry_metrics GROUP BY ALL HAVING count(*) > 1"
    ) == []


def test_proportions_are_stratified_by_site_etiology_and_cancer_type(reference: RegistryRun):
    proportions = reference.query(
        "SELECT metric, list(DISTINCT stratum_type) FROM metrics.registry_metrics WHERE unit <> 'count' GROUP BY metric"
    )
    for metric, stratum_types in proportions:
        assert {"overall", "site", "etiology", "cancer_type"} <= set(stratum_types), metric


def test_counts_have_no_denominator_and_estimate_the_numerator(reference: RegistryRun):
    bad = reference.query(
        "SELECT * FROM metrics.registry_metrics WHERE unit = 'count' AND (denominator IS NOT NULL "
        "OR estimate IS DISTINCT FROM numerator OR ci_low IS NOT NULL OR ci_high IS NOT NULL)"
    )
    assert bad == []


def test_rates_estimate_numerator_over_denominator(reference: RegistryRun):
    bad = reference.query(
        "SELECT * FROM metrics.registry_metrics WHERE unit IN ('proportion', 'per_infusion') AND denominator > 0 "
        "AND abs(estimate - numerator / denominator) > 1e-12"
    )
    assert bad == []


# --------------------------------------------------------------------------------------------------------
# The reference cohort's figures, worked out by hand.


@pytest.mark.parametrize("metric", sorted(EXPECTED))
def test_reference_cohort_gives_the_hand_computed_numerator_and_denominator(reference: RegistryRun, metric: str):
    rows = metric_rows(reference, metric)
    for stratum, (numerator, denominator) in EXPECTED[metric].items():
        assert stratum in rows, f"{metric} has no row for {stratum}"
        assert rows[stratum][:2] == (numerator, denominator), f"{metric} {stratum}"


def test_metric_own_strata_are_complete_even_when_zero(reference: RegistryRun):
    categories = {s for (t, s) in metric_rows(reference, "ae_rate_per_infusion") if t == "ae_category"}
    assert categories == {"neurological", "psychiatric", "gastrointestinal", "cardiovascular", "respiratory", "other"}
    measures = {s for (t, s) in metric_rows(reference, "outcome_completeness") if t == "measure"}
    assert measures == {"nprs_pre", "nprs_post", "function_score", "satisfaction", "daily_mme"}


def test_a_zero_denominator_gives_an_empty_estimate_and_interval(reference: RegistryRun):
    sarcoma = metric_rows(reference, "responder_rate")[("cancer_type", "sarcoma")]
    assert sarcoma == (0, 0, None, None, None, "proportion")
    assert metric_rows(reference, "durable_relief")[("etiology", "surgery")][2:5] == (None, None, None)


def test_units_say_what_each_figure_is(reference: RegistryRun):
    units = dict(reference.query("SELECT DISTINCT metric, unit FROM metrics.registry_metrics"))
    assert units["cohort_patients"] == units["cohort_infusions"] == "count"
    assert units["ae_rate_per_infusion"] == units["serious_ae_rate"] == "per_infusion"
    assert all(units[m] == "proportion" for m in ISSUE_METRICS if m not in (
        "cohort_patients", "cohort_infusions", "ae_rate_per_infusion", "serious_ae_rate"))


def test_wilson_intervals_match_statsmodels(reference: RegistryRun):
    rows = reference.query(
        "SELECT numerator, denominator, ci_low, ci_high FROM metrics.registry_metrics "
        "WHERE unit = 'proportion' AND denominator > 0"
    )
    assert len(rows) > 50
    for numerator, denominator, low, high in rows:
        expected = proportion_confint(numerator, denominator, alpha=0.05, method="wilson")
        assert (low, high) == pytest.approx(expected, abs=1e-12), (numerator, denominator)


def test_per_infusion_intervals_match_statsmodels_poisson_score(reference: RegistryRun):
    rows = reference.query(
        "SELECT numerator, denominator, ci_low, ci_high FROM metrics.registry_metrics "
        "WHERE unit = 'per_infusion' AND denominator > 0"
    )
    assert len(rows) > 10
    for numerator, infusions, low, high in rows:
        expected = confint_poisson(numerator, infusions, method="score", alpha=0.05)
        assert (low, high) == pytest.approx(tuple(map(float, expected)), abs=1e-12), (numerator, infusions)


# --------------------------------------------------------------------------------------------------------
# metrics.patient_outcomes


def test_patient_outcomes_has_one_row_per_cohort_patient_and_leaves_out_the_excluded(reference: RegistryRun):
    keys = {key for (key,) in reference.query("SELECT patient_key FROM metrics.patient_outcomes")}
    assert keys == {patient_key(site, pid) for site, pid in EXPECTED_PATIENTS}
    assert patient_key("north", "PT-N3") not in keys


@pytest.mark.parametrize(("patient", "expected"), EXPECTED_PATIENTS.items(), ids=[p for _, p in EXPECTED_PATIENTS])
def test_patient_outcomes_follow_the_definitions(reference: RegistryRun, patient: tuple[str, str], expected: dict):
    columns = list(expected)
    ((*values,),) = reference.query(
        f"SELECT {', '.join(columns)} FROM metrics.patient_outcomes WHERE patient_key = ?", [patient_key(*patient)]
    )
    assert dict(zip(columns, values, strict=True)) == expected


def test_the_quarantined_infusion_and_what_hangs_on_it_count_nowhere(reference: RegistryRun):
    assert reference.query_work(
        "SELECT count(*) FROM site_private.quarantine WHERE record_id IN ('INF-N4-3', 'AE-N4-1', 'A-N4-3b')"
    ) == [(3,)]
    ((infusions, responder),) = reference.query(
        "SELECT infusion_count, responder FROM metrics.patient_outcomes WHERE patient_key = ?",
        [patient_key("north", "PT-N4")],
    )
    assert (infusions, responder) == (2, False)


# --------------------------------------------------------------------------------------------------------
# Predictors and study planning on the reference run.


def test_predictors_on_a_sparse_cohort_say_not_estimable_instead_of_failing(reference: RegistryRun):
    rows = reference.query("SELECT model, estimable, note FROM metrics.response_predictors WHERE method = 'ml'")
    assert rows
    multivariable = [(estimable, note) for model, estimable, note in rows if model == "multivariable"]
    assert multivariable and not any(estimable for estimable, _ in multivariable)
    assert all(note.startswith("not estimable") for _, note in multivariable)


def test_study_planning_plans_from_the_primary_estimand_of_the_reference_cohort(reference: RegistryRun):
    rows = reference.query(
        "SELECT design, power, estimand, registry_patients, registry_estimate, dropout_rate, n_per_arm, note "
        "FROM metrics.study_planning ORDER BY ALL"
    )
    assert {(design, power) for design, power, *_ in rows} == {
        (d, p) for d in ("single_arm_exact_binomial", "two_arm_responder_rate", "two_arm_nprs_change",
                         "two_arm_nprs_ancova")
        for p in (0.8, 0.9)
    }
    # No reference patient reached the primary assessment (pre-infusion-4 NPRS, or a follow-up NPRS at day 28 ± 7):
    # 0 of 6 evaluable patients are sustained responders and every one misses the endpoint (dropout 100 %),
    # though the study definition counts 4 responders and only 3 discontinued. No size is given, and each row
    # says why; the sizes themselves are checked against statsmodels in test_metrics_planning.py.
    for design, _, estimand, patients, estimate, dropout, n, note in rows:
        assert estimand == "primary estimand (sustained_responder)"
        assert dropout == 1.0 and n is None and note
        if design in ("single_arm_exact_binomial", "two_arm_responder_rate"):
            assert (patients, estimate) == (6, 0.0)
            assert note.startswith("no sample size: the registry's figure is not better")
        else:
            assert note.startswith("not estimable")


def test_the_demo_figures_reach_the_analysts_file_under_the_metrics_schema(reference: RegistryRun):
    tables = {t for (t,) in reference.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'metrics'")}
    assert tables == {"patient_outcomes", "registry_metrics", "response_predictors", "study_planning", "patient_flow",
                      "site_heterogeneity", "time_to_event", "time_to_event_summary"}
    assert reference.query(
        "SELECT estimate FROM metrics.registry_metrics WHERE metric = 'responder_rate' AND stratum_type = 'overall'"
    ) == [(pytest.approx(4 / 6),)]


# --------------------------------------------------------------------------------------------------------
# Dagster, and a registry without patients.


def _copy_work_db(run: RegistryRun, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "registry_work.duckdb"
    copy.write_bytes(run.work_db.read_bytes())
    return copy


def test_metrics_assets_show_headline_figures_as_metadata(reference: RegistryRun, tmp_path: Path):
    import dagster as dg

    from pipelines.assets.metrics import metrics_assets
    from pipelines.connections import WorkingStore
    from pipelines.resources import RegistrySettings

    work_db = _copy_work_db(reference, tmp_path)
    settings = RegistrySettings(landing_dir=str(reference.landing), analyst_db=str(tmp_path / "registry.duckdb"))
    result = dg.materialize(
        metrics_assets, resources={"settings": settings, "working_store": WorkingStore(path=str(work_db))},
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )

    assert result.success
    metadata = {
        event.asset_key.to_user_string(): event.step_materialization_data.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert metadata["metrics/patient_outcomes"]["responders"].value == 4
    assert metadata["metrics/registry_metrics"]["cohort_patients"].value == 7
    assert metadata["metrics/registry_metrics"]["responder_rate"].value.startswith("66.7% (4/6; 95 % CI")
    assert "n_per_arm" in metadata["metrics/study_planning"]["sample_sizes"].value
    assert metadata["metrics/response_predictors"]["multivariable_estimable"].value is False


def test_metrics_assets_sit_in_their_layer_and_are_published(reference: RegistryRun):
    from pipelines.definitions import defs

    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    metric_keys = {f"metrics/{name}" for name in
                   ("patient_outcomes", "registry_metrics", "response_predictors", "study_planning")}
    assert metric_keys <= set(specs)
    for key in metric_keys:
        assert specs[key].group_name == "metrics"
        assert "duckdb" in specs[key].kinds
    publish_deps = {dep.asset_key.to_user_string() for dep in specs["publish/analyst_registry"].deps}
    assert metric_keys <= publish_deps
    outcome_deps = {dep.asset_key.to_user_string() for dep in specs["metrics/patient_outcomes"].deps}
    assert {"registry/patients", "registry/infusions", "registry/assessments", "registry/dispositions"} <= outcome_deps


def test_a_registry_without_patients_still_gets_every_overall_row(reference: RegistryRun, tmp_path: Path):
    import duckdb

    from ketreg.metrics.build import build_sql_table, read_table
    from ketreg.metrics.planning import study_planning
    from ketreg.metrics.predictors import response_predictors
    from schemas.protocol import load_metric_settings, load_protocol

    con = duckdb.connect(str(_copy_work_db(reference, tmp_path)))
    try:
        for table in ("adverse_events", "assessments", "dispositions", "infusions", "patients"):
            con.execute(f"DELETE FROM registry.{table}")
        for name in ("patient_outcomes", "registry_metrics"):
            build_sql_table(con, name, load_protocol(), load_metric_settings())
        overall = con.execute(
            "SELECT metric, numerator, denominator, estimate, ci_low, ci_high FROM metrics.registry_metrics "
            "WHERE stratum_type = 'overall'"
        ).fetchall()
        outcomes = read_table(con, "patient_outcomes")
    finally:
        con.close()
    assert {metric for metric, *_ in overall} >= set(ISSUE_METRICS)
    for metric, numerator, denominator, estimate, low, high in overall:
        assert numerator == 0, metric
        if metric not in ("cohort_patients", "cohort_infusions"):
            assert (denominator, estimate, low, high) == (0, None, None, None), metric
    settings = load_metric_settings()
    assert response_predictors(outcomes, settings)["estimable"].any() is False
    planning = study_planning(outcomes, settings)
    assert planning.height == 14 and planning["n_per_arm"].null_count() == 14  # 7 design rows × 2 powers


# --------------------------------------------------------------------------------------------------------
# docs/metrics.md


METRICS_DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"


def test_every_metric_and_column_is_documented(reference: RegistryRun):
    doc = METRICS_DOC.read_text(encoding="utf-8")
    headings = {name for line in doc.splitlines() if line.startswith("### ")
                for name in re.findall(r"`([a-z0-9_]+)`", line)}
    metrics = {m for (m,) in reference.query("SELECT DISTINCT metric FROM metrics.registry_metrics")}
    assert metrics - headings == set()
    for table in ("patient_outcomes", "response_predictors", "study_planning", "patient_flow"):
        columns = [c for (c,) in reference.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'metrics' AND table_name = ?",
            [table],
        )]
        assert [c for c in columns if f"`{c}`" not in doc] == [], table


def test_example_queries_in_the_metrics_doc_run_on_the_published_registry(reference: RegistryRun):
    queries = re.findall(r"```sql\n(.*?)```", METRICS_DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert len(queries) > 10
    for query in queries:
        assert reference.query(query), query
