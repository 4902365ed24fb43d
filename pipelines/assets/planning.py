"""Metrics layer, planning the next study: time-to-event curves, between-site heterogeneity of response.
(The Firth predictors and the sample sizes extend metrics/response_predictors and metrics/study_planning.)"""

import dagster as dg
import polars as pl

from ketreg.incremental.ledger import shared_digest
from ketreg.metrics.build import build_sql_table_for_changed_sites, read_table, write_table
from ketreg.metrics.estimand import estimand_for
from pipelines.connections import WorkingStore
from pipelines.metadata import AssetMetadata
from pipelines.resources import RegistrySettings
from pipelines.skipping import skippable
from schemas.protocol import load_metric_settings

# The models' modules (scipy, statsmodels; ~1 s to import) are imported inside the steps that fit them, so
# loading the code location, the sensor and every other step do not pay for them.
_REGISTRY_INPUTS = [["registry", t] for t in ("patients", "infusions", "assessments", "dispositions")]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["metrics", "time_to_event"], deps=_REGISTRY_INPUTS, group_name="metrics", kinds={"duckdb"},
                     description="Kaplan–Meier curves (relief per infusion, time on treatment) and cumulative "
                                 "incidence of discontinuation by reason, with number at risk"),
        dg.AssetSpec(["metrics", "time_to_event_summary"], deps=_REGISTRY_INPUTS, group_name="metrics",
                     kinds={"duckdb"}, description="Median days with 95 % CI, patients and events per curve"),
    ],
)
@skippable
def metrics_time_to_event(settings: RegistrySettings, working_store: WorkingStore):
    """Relief duration censored at the next infusion, an interruption or loss to follow-up; time on
    treatment; discontinuation by reason as competing risks (sql/metrics/relief_episodes.sql,
    sql/metrics/treatment_courses.sql), fitted on each site's counts per day added up
    (metrics_partial.time_to_event_tallies, recounted for the sites whose rows changed)."""
    from ketreg.metrics.time_to_event import (
        RELIEF,
        read_tallies,
        time_to_event_tables_from_tallies,
    )

    run_id = dg.AssetExecutionContext.get().run.run_id
    with working_store.connect() as con:
        sites = build_sql_table_for_changed_sites(
            con, "time_to_event_tallies", settings.protocol(), load_metric_settings(settings.protocol_file or None),
            shared_digest(con, run_id), run_id,
        )
        tallies = read_tallies(con)
        curves, summary = time_to_event_tables_from_tallies(tallies)
        curve_rows = write_table(con, "time_to_event", curves)
        summary_rows = write_table(con, "time_to_event_summary", summary)
    statuses = dict(tallies.filter(pl.col("endpoint") == RELIEF).group_by("status").agg(pl.col("episodes").sum())
                    .sort("status").iter_rows())
    infusions = sum(statuses.values())
    overall = {row["endpoint"]: row for row in summary.filter(pl.col("stratum_type") == "overall").iter_rows(
        named=True)}

    def median(endpoint: str) -> str:
        row = overall.get(endpoint)
        if row is None or row["median_days"] is None:
            return "not reached"
        high = "not reached" if row["ci_high"] is None else f"{row['ci_high']:g}"
        return f"{row['median_days']:g} days (95 % CI {row['ci_low']:g}–{high}; {row['events']} events)"

    yield dg.MaterializeResult(asset_key=["metrics", "time_to_event"], metadata={
        "rows": curve_rows,
        "infusions_with_relief_recorded": infusions - statuses.get("not_recorded", 0),
        "infusions_without_relief_recorded": statuses.get("not_recorded", 0),
        "relief_censored_at_next_infusion": statuses.get("next_infusion", 0),
        "relief_censored_at_interruption": statuses.get("interruption", 0),
        "relief_censored_lost_to_follow_up": statuses.get("lost_to_follow_up", 0),
        # Which sites' counts this run recounted: "all" for a whole rebuild.
        "sites_recounted": dg.MetadataValue.json(sites if sites is not None else "all"),
    })
    yield dg.MaterializeResult(asset_key=["metrics", "time_to_event_summary"], metadata={
        "rows": summary_rows,
        "median_relief_duration": median("relief_duration"),
        "median_time_on_treatment": median("time_on_treatment"),
    })


@dg.asset(
    key=["metrics", "site_heterogeneity"],
    deps=[["metrics", "patient_outcomes"]],
    group_name="metrics",
    kinds={"duckdb"},
)
@skippable
def metrics_site_heterogeneity(settings: RegistrySettings, working_store: WorkingStore) -> dg.MaterializeResult:
    """Random-effects pooled responder rate across sites (DerSimonian–Laird and REML on the logit scale) with
    Q, I², τ² and the 95 % prediction interval, for the primary estimand (when built) and the study definition."""
    from ketreg.metrics.heterogeneity import heterogeneity_from_outcomes

    with working_store.connect() as con:
        outcomes = read_table(con, "patient_outcomes")
        estimand = estimand_for(outcomes)
        table = heterogeneity_from_outcomes(outcomes)
        rows = write_table(con, "site_heterogeneity", table)
    metadata: AssetMetadata = {"rows": rows, "estimand": estimand.label}
    for row in table.filter(pl.col("pooled_estimate").is_not_null()).iter_rows(named=True):
        pi = (f"; 95 % PI {row['pi_low']:.1%}–{row['pi_high']:.1%}" if row["pi_low"] is not None else "")
        metadata[f"{row['metric']}_{row['method']}"] = (
            f"{row['pooled_estimate']:.1%} (95 % CI {row['ci_low']:.1%}–{row['ci_high']:.1%}{pi}; "
            f"τ² {row['tau2']:.3g}, I² {row['i2']:.0%}, Q {row['q']:.2f} on {row['sites'] - 1} df)"
        )
    return dg.MaterializeResult(metadata=metadata)


planning_assets = [metrics_time_to_event, metrics_site_heterogeneity]
