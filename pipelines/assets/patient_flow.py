"""Metrics layer: the patient flow (CONSORT / RECORD style), from the records a site sent to the patients
analysed, with the steps' counts in the Dagster UI."""

import dagster as dg

from ketreg.metrics.build import build_sql_table
from pipelines.connections import WorkingStore
from pipelines.resources import RegistrySettings
from pipelines.skipping import skippable
from schemas.protocol import load_metric_settings


@dg.asset(
    key=["metrics", "patient_flow"],
    deps=[["metrics", "patient_outcomes"], ["registry", "patients"], ["registry", "file_counts"]],
    group_name="metrics",
    kinds={"duckdb"},
    description="metrics.patient_flow, built by sql/metrics/patient_flow.sql",
)
@skippable
def metrics_patient_flow(settings: RegistrySettings, working_store: WorkingStore) -> dg.MaterializeResult:
    """Counts per step of the patient flow (received → … → analysed → discontinued), per site and for all."""
    with working_store.connect() as con:
        rows = build_sql_table(
            con, "patient_flow", settings.protocol(), load_metric_settings(settings.protocol_file or None)
        )
        totals = con.execute(
            "SELECT step, patients FROM metrics.patient_flow "
            "WHERE site_id = 'all' AND breakdown = 'total' ORDER BY step_order"
        ).fetchall()
    return dg.MaterializeResult(metadata={"rows": rows, **{step: patients for step, patients in totals}})
