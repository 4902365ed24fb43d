"""Notice new or changed exports in the landing folder and request a registry run for them."""

import hashlib
import json

import dagster as dg

from ketreg.landing.retired import TOMBSTONE, landing_is_empty, tombstoned_sites
from ketreg.landing.signature import export_signatures
from pipelines.jobs import registry_job
from pipelines.resources import RegistrySettings


@dg.sensor(job=registry_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def landing_sensor(context: dg.SensorEvaluationContext, settings: RegistrySettings) -> dg.SensorResult:
    """Compares each export folder's signature with the cursor (JSON: export → signature seen). A run key
    made of what changed means a changed export gets a new run, and a re-evaluation never a duplicate."""
    if not settings.landing_path.is_dir():
        return dg.SensorResult(skip_reason=dg.SkipReason(f"landing folder {settings.landing_dir} does not exist"))
    if landing_is_empty(settings.landing_path):
        # An unmounted share looks like this; a run would only be refused by the publish guard.
        return dg.SensorResult(skip_reason=dg.SkipReason(
            f"landing folder {settings.landing_dir} is empty (an unmounted share or a wrong path?); no run"
        ))
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    settling: set[str] = set()
    current = export_signatures(settings.landing_path, settings.landing_settle_seconds, settings.sites_path, settling)
    # An export seen before whose files are being copied again is neither removed nor changed yet: it keeps
    # the signature seen until it settles (else a re-copy would request a run that "removes" it).
    current.update({label: seen[label] for label in settling if label in seen})
    # A RETIRED file is a change too: the run it starts removes the site on purpose.
    current.update({f"{site}/{TOMBSTONE}": "retired" for site in tombstoned_sites(settings.landing_path)})
    changed = sorted(label for label, signature in current.items() if seen.get(label) != signature)
    removed = sorted(set(seen) - set(current))
    if not changed and not removed:
        return dg.SensorResult(skip_reason=dg.SkipReason(f"no new or changed exports in {settings.landing_dir}"))
    what = [f"{label}={current[label]}" for label in changed] + [f"{label}=removed" for label in removed]
    run_key = hashlib.sha256(";".join(what).encode()).hexdigest()[:20]
    context.log.info(f"requesting a registry run for {', '.join(what)}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=run_key,
                tags={
                    "ketreg/changed_exports": ",".join(changed)[:4000],
                    "ketreg/removed_exports": ",".join(removed)[:4000],
                },
            )
        ],
        cursor=json.dumps(current, sort_keys=True),
    )
