"""Configuration of a registry run, as Dagster resources: where the landing folder and the analysts' file are,
which protocol and thresholds apply, and the pseudonymisation key (from the environment only). The connections
(the working DuckDB store, the PostgreSQL target) are resources of their own (pipelines/connections.py).

Environment variables reach the resources from `ketreg.environment` (the one module that reads them) and are
passed down as field values; the key alone is read when a step needs it, never stored as a field."""

from pathlib import Path

import dagster as dg

from ketreg import environment
from ketreg.landing.limits import LandingLimits, load_limits
from ketreg.landing.mapping import default_sites_dir
from ketreg.registry.pseudonym import key_from_environment
from pipelines.connections import PostgresTarget, WorkingStore
from schemas.protocol import Protocol, load_protocol


class RegistrySettings(dg.ConfigurableResource):
    """Paths and thresholds of one registry. Analysts read `analyst_db`; the pipeline's private working store
    is the `working_store` resource (by default beside `analyst_db`)."""

    landing_dir: str
    analyst_db: str
    protocol_file: str = ""
    # Bounds on the work one export may cost; empty = $KETREG_LIMITS_FILE or config/limits.yaml.
    limits_file: str = ""
    # The sensor leaves an export alone until its files have been still this long (a copy in progress).
    landing_settle_seconds: float = 60.0
    # A site's current export with fewer rows than (1 − this share) × its previous export stops publishing
    # (blocking check `no_sudden_row_drop`).
    max_row_drop_share: float = 0.2
    # Sites whose data may leave the published registry in this run (`ketreg run --retire-site`); a
    # `RETIRED` file in a site's landing folder does the same durably (ketreg/landing/retired.py).
    retired_sites: list[str] = []  # noqa: RUF012 (pydantic copies field defaults per instance)
    # The sites' mapping files (`<site_id>.yaml`); empty = $KETREG_SITES_DIR, else the repository's `sites/`.
    sites_dir: str = ""
    # The quality dashboard and Great Expectations Data Docs; empty = a `reports` folder beside `analyst_db`.
    reports_dir: str = ""
    # Processes that validate exports at once (pipelines/staging_fanout.py); 1 = in the staging step itself.
    staging_workers: int = 1

    @property
    def landing_path(self) -> Path:
        return Path(self.landing_dir)

    @property
    def analyst_db_path(self) -> Path:
        return Path(self.analyst_db)

    @property
    def sites_path(self) -> Path:
        return Path(self.sites_dir) if self.sites_dir else default_sites_dir()

    @property
    def reports_path(self) -> Path:
        return Path(self.reports_dir) if self.reports_dir else self.analyst_db_path.parent / "reports"

    def protocol(self) -> Protocol:
        return load_protocol(self.protocol_file or None)

    def limits(self) -> LandingLimits:
        return load_limits(self.limits_file or None)


class PseudonymKey(dg.ConfigurableResource):
    """The HMAC key for patient pseudonyms, read when a step needs it from KETREG_PSEUDONYM_KEY or the file
    KETREG_PSEUDONYM_KEY_FILE names. It has no key field on purpose: Dagster stores resource config in every
    run snapshot, so the key must never be config (docs/security.md)."""

    # True for a run that re-keys every patient on purpose (`ketreg run --rekey`); otherwise a key whose
    # fingerprint differs from the working store's is refused.
    rekey: bool = False
    # The fingerprint a re-keying run replaces, when `ketreg run` found it in the analysts' file only (a
    # `--rebuild` starts a new working store): recorded so the re-keying is not forgotten. Not a secret.
    replaces_fingerprint: str = ""

    def secret(self) -> str:
        """The key, checked (raises MissingPseudonymKey naming the variable)."""
        return key_from_environment()


def registry_resources(
    settings: RegistrySettings,
    working_store: WorkingStore | None = None,
    postgres_target: PostgresTarget | None = None,
    pseudonym_key: PseudonymKey | None = None,
) -> dict[str, dg.ConfigurableResource]:
    """The resources of a registry run, by the keys its assets name: `settings`, the working store (beside the
    analysts' file unless given), the PostgreSQL target (none unless given) and the pseudonym key."""
    return {
        "settings": settings,
        "working_store": working_store or WorkingStore.beside(settings.analyst_db),
        "postgres_target": postgres_target or PostgresTarget(),
        "pseudonym_key": pseudonym_key or PseudonymKey(),
    }


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources for `dagster dev` and the daemon: paths from KETREG_LANDING / KETREG_DB (the demo's by default)."""
    settings = RegistrySettings(
        landing_dir=environment.value(environment.LANDING, "demo/landing"),
        analyst_db=environment.value(environment.ANALYST_DB, "demo/registry.duckdb"),
        protocol_file=environment.value(environment.PROTOCOL_FILE, ""),
        sites_dir=environment.value(environment.SITES_DIR, ""),
        staging_workers=int(environment.value(environment.STAGING_WORKERS, "1")),
    )
    target = PostgresTarget(url=environment.value(environment.PUBLISH_URL, ""))
    return registry_resources(settings, postgres_target=target)
