"""Landing layer: which exports the sites dropped, and which are unusable before a row is read."""

import dagster as dg

from ketreg.landing.discovery import LandingScan, scan_landing
from pipelines.resources import RegistrySettings


@dg.asset(key=["landing", "exports"], group_name="landing", kinds={"python"})
def landing_exports(context: dg.AssetExecutionContext, settings: RegistrySettings) -> dg.Output[LandingScan]:
    """Every `<site>/<export>/` folder of the landing folder, with file hashes and header checks."""
    scan = scan_landing(settings.landing_path, limits=settings.limits())
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
        },
    )
