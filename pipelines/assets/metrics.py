"""Metrics layer: the figures the next prospective studies are designed from, built from the registry tables
into the `metrics` schema; each asset shows its headline figures in the Dagster UI."""

import dagster as dg
import polars as pl

from ketreg.incremental.ledger import shared_digest
from ketreg.metrics.build import (
    build_sql_table,
    build_sql_table_for_changed_sites,
    overall_metrics,
    read_table,
    write_table,
)
from pipelines.assets.patient_flow import metrics_patient_flow
from pipelines.connections import WorkingStore
from pipelines.metadata import AssetMetadata
from pipelines.resources import RegistrySettings
from pipelines.skipping import skippable
from schemas.protocol import MetricSettings, load_metric_settings

_REGISTRY_INPUTS = [["registry", t] for t in ("patients", "infusions", "assessments", "adverse_events", "dispositions")]
# Overall figures shown on the registry_metrics asset, in this order.
_HEADLINE_METRICS = (
    "responder_rate", "substantial_responder_rate", "ae_rate_per_infusion", "infusions_with_ae",
    "ae_episode_resolution", "serious_ae_rate", "discontinuation_rate", "responder_discontinuation",
    "durable_relief", "interruption_return_to_baseline", "outcome_completeness",
    "sustained_responder_rate", "patients_with_ae", "severe_ae_rate",
)


def _metric_settings(settings: RegistrySettings) -> MetricSettings:
    return load_metric_settings(settings.protocol_file or None)


def _figure(numerator: int, denominator: int | None, estimate: float | None, low: float | None,
            high: float | None, unit: str) -> str:
    if estimate is None:
        return f"{numerator}/{denominator} (not estimable)"
    if unit == "proportion":
        return f"{estimate:.1%} ({numerator}/{denominator}; 95 % CI {low:.1%}–{high:.1%})"
    return f"{estimate:.3f} per infusion ({numerator}/{denominator}; 95 % CI {low:.3f}–{high:.3f})"


def _markdown(frame: pl.DataFrame) -> dg.MetadataValue:
    header = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * frame.width + "\n"
    body = "".join(
        "| " + " | ".join("" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v)) for v in row) + " |\n"
        for row in frame.iter_rows()
    )
    return dg.MetadataValue.md(header + body)


@dg.asset(
    key=["metrics", "patient_outcomes"],
    deps=_REGISTRY_INPUTS,
    group_name="metrics",
    kinds={"duckdb"},
    description="metrics.patient_outcomes, built by sql/metrics/patient_outcomes.sql",
)
@skippable
def metrics_patient_outcomes(settings: RegistrySettings, working_store: WorkingStore) -> dg.MaterializeResult:
    """One row per analysis-cohort patient: baseline pain, best relief in induction, response, rates, course."""
    run_id = dg.AssetExecutionContext.get().run.run_id
    with working_store.connect() as con:
        sites = build_sql_table_for_changed_sites(
            con, "patient_outcomes", settings.protocol(), _metric_settings(settings), shared_digest(con, run_id),
            run_id,
        )
        ((rows, treated, responders, substantial, discontinued, incomplete, sustained),) = con.execute(
            "SELECT count(*), count_if(infusion_count > 0), count_if(responder), count_if(substantial_responder), "
            "count_if(discontinued AND infusion_count > 0), count_if(course_incomplete), "
            "count_if(sustained_responder) FROM metrics.patient_outcomes"
        ).fetchall()
    return dg.MaterializeResult(
        metadata={
            "cohort_patients": rows,
            "treated_patients": treated,
            "responders": responders,
            "substantial_responders": substantial,
            "discontinued": discontinued,
            "course_incomplete": incomplete,
            "sustained_responders": sustained,
            # Which sites' rows this run rebuilt: "all" for a whole rebuild.
            "sites_rebuilt": dg.MetadataValue.json(sites if sites is not None else "all"),
        }
    )


@dg.asset(
    key=["metrics", "registry_metrics"],
    deps=[["metrics", "patient_outcomes"], *_REGISTRY_INPUTS],
    group_name="metrics",
    kinds={"duckdb"},
    description="metrics.registry_metrics, built by sql/metrics/registry_metrics.sql",
)
@skippable
def metrics_registry_metrics(settings: RegistrySettings, working_store: WorkingStore) -> dg.MaterializeResult:
    """The registry's figures in one tidy table (metric × stratum) with Wilson or Poisson 95 % intervals, added
    up from each site's partial sums (metrics_partial.site_tallies, recounted for the sites whose rows changed)."""
    run_id = dg.AssetExecutionContext.get().run.run_id
    with working_store.connect() as con:
        # Each site's partial sums, rebuilt for the sites whose rows changed, then added up.
        sites = build_sql_table_for_changed_sites(
            con, "site_tallies", settings.protocol(), _metric_settings(settings), shared_digest(con, run_id), run_id
        )
        rows = build_sql_table(con, "registry_metrics", settings.protocol(), _metric_settings(settings),
                               partial_sums_current=True)
        overall = overall_metrics(con)
    metadata: AssetMetadata = {"rows": rows, "sites_recounted": dg.MetadataValue.json(
        sites if sites is not None else "all")}
    for name in ("cohort_patients", "cohort_infusions"):
        metadata[name] = overall[name][0]
    for name in _HEADLINE_METRICS:
        numerator, denominator, estimate, low, high, unit = overall[name]
        metadata[name] = _figure(numerator, denominator, estimate, low, high, unit)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key=["metrics", "response_predictors"],
    deps=[["metrics", "patient_outcomes"]],
    group_name="metrics",
    kinds={"duckdb"},
)
@skippable
def metrics_response_predictors(settings: RegistrySettings, working_store: WorkingStore) -> dg.MaterializeResult:
    """Odds ratios of response by etiology, cancer type, metastatic disease, baseline NPRS band and site
    (logistic regression, univariable and multivariable), or "not estimable" where the data are too sparse."""
    # statsmodels and scipy are imported by the step that uses them, not by every process loading the code.
    from ketreg.metrics.predictors import outcome_columns, response_predictors

    with working_store.connect() as con:
        # Unordered: the models fit on sorted covariate patterns, so the rows' order changes no figure.
        outcomes = read_table(con, "patient_outcomes", outcome_columns(), ordered=False)
        table = response_predictors(outcomes, _metric_settings(settings))
        rows = write_table(con, "response_predictors", table)
    multivariable = table.filter(pl.col("model") == "multivariable")
    reference = multivariable.filter(pl.col("level") == pl.col("reference_level"))
    return dg.MaterializeResult(
        metadata={
            "rows": rows,
            "multivariable_estimable": bool(reference["estimable"].any()) if reference.height else False,
            "multivariable_patients": int(multivariable["model_patients"][0]) if multivariable.height else 0,
            "estimable_odds_ratios": int(table.filter(pl.col("estimable") & (pl.col("odds_ratio") != 1.0)).height),
            "multivariable": _markdown(
                multivariable.select("factor", "level", "patients", "responders", "odds_ratio", "ci_low", "ci_high",
                                     "note")
            ),
        }
    )


@dg.asset(
    key=["metrics", "study_planning"],
    deps=[["metrics", "patient_outcomes"]],
    group_name="metrics",
    kinds={"duckdb"},
)
@skippable
def metrics_study_planning(settings: RegistrySettings, working_store: WorkingStore) -> dg.MaterializeResult:
    """Sample sizes of the next trials (exact single-arm vs benchmark, two-arm on responder rate, on NPRS change
    and by ANCOVA) at each planned power, inflated for dropout (missing primary endpoint) and for the design
    effect of individual or cluster randomisation, each row with its inputs and their source tables."""
    from ketreg.metrics.planning import study_planning  # scipy, imported by the step that uses it

    with working_store.connect() as con:
        outcomes = read_table(con, "patient_outcomes")
        table = study_planning(outcomes, _metric_settings(settings))
        rows = write_table(con, "study_planning", table)
    first = table.row(0, named=True) if table.height else {}
    shared = {
        name: first[name] if first.get(name) is not None else "not estimable"
        for name in ("estimand", "site_icc", "site_icc_ci_high", "dropout_rate")
    }
    return dg.MaterializeResult(
        metadata={
            "rows": rows,
            **shared,
            "sample_sizes": _markdown(
                table.select("design", "power", "clustering", "effect_size", "n_per_arm", "n_per_arm_after_dropout",
                             "n_per_arm_planned", "total_patients", "total_patients_icc_upper", "note")
            ),
        }
    )


metrics_assets = [metrics_patient_outcomes, metrics_registry_metrics, metrics_response_predictors,
                  metrics_study_planning, metrics_patient_flow]
