"""The one job that sensors and schedules launch: every asset and check, landing to publish."""

import dagster as dg

# Staging re-validates only new or changed exports (by content hash), so a run for one new export does not
# re-ingest the others; the registry SQL then rebuilds from staging in seconds. Per-site partitions would add
# bookkeeping without saving work, and would break "materialize everything in one command".
registry_job = dg.define_asset_job(
    "registry_job",
    selection=dg.AssetSelection.all(),
    description="Landing → staging → registry → metrics → publish, with every asset check.",
)
