"""Landing layer: which exports the sites dropped, and which are unusable before a row is read."""

import dagster as dg

from ketreg.landing.discovery import LandingScan, scan_landing
from ketreg.landing.landing_notices import landing_notices, record_landing_notices
from ketreg.landing.retired import landing_is_empty
from pipelines.connections import WorkingStore
from pipelines.resources import RegistrySettings


@dg.asset(key=["landing", "exports"], group_name="landing", kinds={"python", "duckdb"})
def landing_exports(
    context: dg.AssetExecutionContext, settings: RegistrySettings, working_store: WorkingStore
) -> dg.Output[LandingScan]:
    """Every `<site>/<export>/` folder of the landing folder, with file hashes and header checks."""
    if settings.landing_path.is_dir() and landing_is_empty(settings.landing_path):
        # Most likely an unmounted share or a wrong path: reading it would remove every site's data.
        raise dg.Failure(
            description=f"landing folder {settings.landing_path.resolve()} is empty (an unmounted share or a "
            "wrong path?); nothing was read and the published registry is kept"
        )
    scan = scan_landing(settings.landing_path, settings.sites_path, settings.limits(),
                        retired=settings.retired_sites)
    notices = landing_notices(scan)
    with working_store.connect() as con:
        record_landing_notices(con, notices)
    for entry, notice in notices.iter_rows():
        context.log.warning(f"landing folder: {entry}: {notice}")
    rejected = {e.label: e.rejection for e in scan.exports if e.rejection}
    for label, reason in rejected.items():
        context.log.warning(f"export {label} rejected: {reason}")
    return dg.Output(
        scan,
        metadata={
            "sites": len({e.site_id for e in scan.exports}),
            "exports": len(scan.exports),
            "rejected_before_reading": dg.MetadataValue.json(rejected),
            "ignored_entries": dg.MetadataValue.json(scan.ignored_entries),
            "retired_sites": dg.MetadataValue.json(scan.retired_sites),
        },
    )
