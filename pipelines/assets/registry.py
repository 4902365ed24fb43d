"""Registry layer: the harmonised, pseudonymised tables analysts query, one asset per SQL file."""

import dagster as dg

from ketreg.registry.build import REGISTRY_TABLES, build_table, prepare
from pipelines.resources import PseudonymKey, RegistrySettings

# What each registry table is built from (besides its own staged table).
_UPSTREAM = {
    "exports": [["staging", "exports"]],
    "patients": [["registry", "exports"], ["staging", "patients"]],
    "infusions": [["registry", "patients"], ["staging", "infusions"]],
    "assessments": [["registry", "infusions"], ["staging", "assessments"]],
    "adverse_events": [["registry", "infusions"], ["staging", "adverse_events"]],
    "dispositions": [["registry", "patients"], ["staging", "dispositions"]],
    "protocol_deviations": [["registry", "infusions"]],
    "quarantine": [["registry", "exports"], ["staging", "quarantine"]],
    # The conservation ledger is built last: it compares what was accepted with what reached the registry.
    "file_counts": [
        ["staging", "file_counts"],
        *[["registry", t] for t in ("patients", "infusions", "assessments", "adverse_events", "dispositions")],
    ],
}


def _registry_asset(name: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["registry", name],
        deps=_UPSTREAM[name],
        group_name="registry",
        kinds={"duckdb", "sql"},
        description=f"registry.{name}, built by sql/registry/{name}.sql",
    )
    def _build(settings: RegistrySettings, pseudonym_key: PseudonymKey) -> dg.MaterializeResult:
        with settings.working_db() as con:
            protocol = settings.protocol()
            prepare(con, pseudonym_key.key, protocol)
            rows = build_table(con, name, protocol)
        return dg.MaterializeResult(metadata={"rows": rows})

    _build.__name__ = f"registry_{name}"
    return _build


registry_assets = [_registry_asset(name) for name in REGISTRY_TABLES]
