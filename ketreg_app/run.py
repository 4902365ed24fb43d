"""Run the whole registry pipeline once, through Dagster, for one landing folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from ketreg import environment
from ketreg.incremental.ledger import unchanged_since
from ketreg.landing.messages import bounded
from ketreg.registry.key_fingerprint import check_key_matches
from ketreg.registry.pseudonym import key_fingerprint, key_from_environment
from pipelines.connections import PostgresTarget, WorkingStore
from pipelines.definitions import build_definitions
from pipelines.resources import PseudonymKey, RegistrySettings, registry_resources


@dataclass
class RunOutcome:
    success: bool
    run_id: str
    failures: list[str]
    warnings: list[str] = field(default_factory=list)
    key_fingerprint: str = ""
    rekeyed_from: str | None = None  # the fingerprint this run replaced (`--rekey`), else None
    # The run whose published registry this run left as it was (nothing changed since), else None.
    unchanged_since: str | None = None


def run_pipeline(
    landing: Path,
    analyst_db: Path,
    work_db: Path | None = None,
    protocol_file: Path | None = None,
    rebuild: bool = False,
    rekey: bool = False,
    limits_file: Path | None = None,
    retired_sites: list[str] | None = None,
    sites_dir: Path | None = None,
    publish_url: str = "",
    staging_workers: int = 1,
) -> RunOutcome:
    """Run the registry job (every asset and check, as sensors and schedules launch it) in this process.
    Uses the Dagster instance of DAGSTER_HOME when it is set, so the run shows in `dagster dev`;
    a throw-away instance otherwise. `retired_sites` may leave the published registry in this run; any
    other site that would vanish from it stops the run before publishing (check `no_site_vanished`).

    Before anything runs: raises MissingPseudonymKey for a missing or weak key, and KeyMismatch when the
    working store or the analysts' file was built with another key (unless `rekey`). The key itself is
    never handed to Dagster: the resource reads it from the environment when a step needs it."""
    key = key_from_environment()
    settings = RegistrySettings(
        landing_dir=str(landing),
        analyst_db=str(analyst_db),
        protocol_file=str(protocol_file or ""),
        limits_file=str(limits_file or ""),
        retired_sites=list(retired_sites or []),
        sites_dir=str(sites_dir or ""),
        staging_workers=staging_workers,
    )
    store = WorkingStore.beside(analyst_db, work_db or "")
    settings.limits()  # a broken limits file is a usage error, before anything runs
    rekeyed_from = check_key_matches(key, store.file, settings.analyst_db_path, rekey)
    resources = registry_resources(
        settings, store, PostgresTarget(url=publish_url),
        PseudonymKey(rekey=rekey, replaces_fingerprint=rekeyed_from or ""),
    )
    if rebuild:
        # The working database is derived from the landing folder only: dropping it loses nothing.
        for path in (store.file, store.file.with_name(store.file.name + ".wal")):
            path.unlink(missing_ok=True)
    persistent = environment.value(environment.DAGSTER_HOME)
    instance = dg.DagsterInstance.get() if persistent else dg.DagsterInstance.ephemeral()
    job = build_definitions(resources).resolve_job_def("registry_job")
    result = job.execute_in_process(
        instance=instance,
        raise_on_error=False,
        # The CLI prints its own summary; Dagster's step log goes to the instance (and `dagster dev`).
        run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    )
    # Bounded: an error message is printed and may quote whatever the failing step was reading.
    failures = [
        bounded(f"{event.step_key}: "
                f"{event.step_failure_data.error.message.strip() if event.step_failure_data.error else ''}")
        for event in result.get_step_failure_events()
    ]
    warnings: list[str] = []
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed:
            continue
        message = (
            f"check {evaluation.asset_key.to_user_string()}:{evaluation.check_name}: {evaluation.description}"
        )
        blocking = evaluation.severity == dg.AssetCheckSeverity.ERROR
        (failures if blocking else warnings).append(message)
    return RunOutcome(
        success=result.success and not failures, run_id=result.run_id, failures=failures, warnings=warnings,
        key_fingerprint=key_fingerprint(key), rekeyed_from=rekeyed_from,
        unchanged_since=unchanged_since(store.file, result.run_id),
    )
