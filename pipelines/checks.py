"""Asset checks on the registry tables: conservation, keys and references. Each result carries the
number of violating rows, the number of rows checked, and the SQL that lists the violations."""


from dataclasses import dataclass

import dagster as dg

from pipelines.resources import RegistrySettings


@dataclass(frozen=True)
class RegistryCheck:
    table: str
    name: str
    description: str
    violations_sql: str  # lists the violating rows
    checked_sql: str  # counts the rows checked
    blocking: bool = True


def _primary_key(table: str, key: str) -> RegistryCheck:
    return RegistryCheck(
        table,
        f"{key}_unique_not_null",
        f"{key} identifies each row of registry.{table}",
        f"SELECT * FROM registry.{table} WHERE {key} IS NULL OR {key} IN "
        f"(SELECT {key} FROM registry.{table} GROUP BY {key} HAVING count(*) > 1)",
        f"SELECT count(*) FROM registry.{table}",
    )


def _reference(table: str, key: str, parent: str, nullable: bool = False) -> RegistryCheck:
    present = f"{key} IS NOT NULL AND " if nullable else ""
    return RegistryCheck(
        table,
        f"{key}_references_{parent}",
        f"every {key} of registry.{table} is a row of registry.{parent}",
        f"SELECT * FROM registry.{table} WHERE {present}{key} NOT IN (SELECT {key} FROM registry.{parent})",
        f"SELECT count(*) FROM registry.{table}",
    )


CHECKS = (
    RegistryCheck(
        "file_counts",
        "rows_conserved",
        "every row read from a file is either accepted or quarantined",
        "SELECT * FROM registry.file_counts WHERE rows_read <> rows_accepted + rows_quarantined",
        "SELECT count(*) FROM registry.file_counts",
    ),
    RegistryCheck(
        "file_counts",
        "accepted_rows_reach_registry",
        "every accepted row of each site's current export reached its registry table",
        "SELECT * FROM registry.file_counts WHERE is_current_export AND rows_in_registry <> rows_accepted",
        "SELECT count(*) FROM registry.file_counts WHERE is_current_export",
    ),
    _primary_key("patients", "patient_key"),
    _primary_key("infusions", "infusion_key"),
    _primary_key("assessments", "assessment_key"),
    _primary_key("adverse_events", "ae_key"),
    _reference("infusions", "patient_key", "patients"),
    _reference("assessments", "patient_key", "patients"),
    _reference("assessments", "infusion_key", "infusions", nullable=True),
    _reference("adverse_events", "infusion_key", "infusions"),
    _reference("dispositions", "patient_key", "patients"),
)


def _asset_check(check: RegistryCheck) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["registry", check.table]),
        name=check.name,
        description=check.description,
        blocking=check.blocking,
    )
    def _run(settings: RegistrySettings) -> dg.AssetCheckResult:
        with settings.working_db() as con:
            violations = con.execute(f"SELECT count(*) FROM ({check.violations_sql})").fetchone()[0]
            checked = con.execute(check.checked_sql).fetchone()[0]
        return dg.AssetCheckResult(
            passed=violations == 0,
            severity=dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN,
            metadata={
                "numerator": violations,
                "denominator": checked,
                "violations_sql": dg.MetadataValue.md(f"```sql\n{check.violations_sql}\n```"),
            },
        )

    return _run


registry_checks = [_asset_check(check) for check in CHECKS]
