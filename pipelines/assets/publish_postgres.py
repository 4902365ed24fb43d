"""Publish layer, PostgreSQL target: when `postgres_target.url` is set (`ketreg run --publish postgresql://…`,
or KETREG_PUBLISH_URL for the daemon), the analysts' tier and the site tier go to PostgreSQL after the analysts'
DuckDB file, each swapped in one transaction. Unset (the default), this step publishes nothing. When nothing changed
since the registry the server holds (its recorded inputs fingerprint is this run's), the step publishes nothing
either: a sensor run every minute must not copy the whole registry to the server every minute."""

import dagster as dg

from ketreg.registry.postgres_publish import publish_postgres, server_publication
from pipelines.assets.publish import analyst_registry
from pipelines.assets.site_private import site_private_assets
from pipelines.connections import PostgresTarget, WorkingStore
from pipelines.resources import RegistrySettings
from pipelines.skipping import current_plan


@dg.asset(
    key=["publish", "postgres_registry"],
    # After the DuckDB publish: a run that fails before it publishes neither target.
    deps=[analyst_registry.key, *(key for asset in site_private_assets for key in asset.keys)],
    group_name="publish",
    kinds={"postgres"},
)
def postgres_registry(
    context: dg.AssetExecutionContext,
    settings: RegistrySettings,  # read by current_plan, from the context's resources
    working_store: WorkingStore,
    postgres_target: PostgresTarget,
) -> dg.MaterializeResult:
    """Schemas `registry` and `metrics` for analysts (role ketreg_analyst) and `site_private` with row-level
    security (one role per site), built aside and renamed into place in one transaction."""
    if not postgres_target.url:
        return dg.MaterializeResult(metadata={"published": False, "why": "no postgres_target.url set"})
    with working_store.connect() as con:
        plan = current_plan(context, con)
        held = server_publication(postgres_target.url)
        if (
            plan.unchanged_since is not None
            and held is not None
            and (held.inputs_fingerprint, held.site_role_prefix)
            == (plan.inputs_fingerprint, postgres_target.site_role_prefix)
        ):
            return dg.MaterializeResult(
                metadata={
                    "published": False,
                    "skipped": True,
                    "origin_run": held.run_id,
                    "why": f"the server holds the registry of run {held.run_id}; nothing changed since",
                }
            )
        counts = publish_postgres(
            con,
            postgres_target.url,
            postgres_target.site_role_prefix,
            inputs_fingerprint=plan.inputs_fingerprint,
            run_id=context.run.run_id,
        )
    context.log.info(f"published {len(counts)} tables to PostgreSQL")
    return dg.MaterializeResult(
        metadata={"published": True, **{f"rows_{table}": rows for table, rows in counts.items()}}
    )
