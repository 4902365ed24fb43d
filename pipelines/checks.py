"""Asset checks on the registry tables: conservation, keys, references, contract ranges after
harmonisation, and sudden drops between a site's exports. Each result carries the number of violating rows
(numerator), the number of rows checked (denominator) and the SQL that lists the violations.

Blocking checks are those whose failure means the registry is corrupt or would lose data: metrics and the
analysts' file are then not refreshed in that run. A site that would vanish from the published registry, or a
file that lost more than the configured share of its rows, blocks too: an unmounted share or a half-copied
export must never replace the registry. Removing a site on purpose is explicit (ketreg/landing/retired.py)."""

from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import duckdb

from ketreg.landing.retired import retired_sites
from ketreg.quality.registry_evaluations import EvaluationRow, record_evaluations
from ketreg.registry.range_rules import violation_predicates
from ketreg.warehouse.connection import scalar
from pipelines.resources import RegistrySettings
from schemas.tables import TABLES

# Given the working database and the settings, the SQL that lists violating rows.
ViolationsSQL = Callable[[duckdb.DuckDBPyConnection, RegistrySettings], str]


@dataclass(frozen=True)
class RegistryCheck:
    table: str
    name: str
    description: str
    violations_sql: ViolationsSQL
    checked_sql: str | ViolationsSQL  # counts the rows checked
    blocking: bool = True
    # When set, a failure's description names the values of this column of the violating rows (e.g. sites)
    # and says how to resolve it, so the operator reads the reason in the run's failure, not only in SQL.
    names_column: str | None = None
    remedy: str = ""

    def checked_query(self, con: duckdb.DuckDBPyConnection, settings: RegistrySettings) -> str:
        """The SQL that counts the rows checked (the denominator)."""
        return self.checked_sql if isinstance(self.checked_sql, str) else self.checked_sql(con, settings)


def _fixed(sql: str) -> ViolationsSQL:
    return lambda _con, _settings: sql


def _primary_key(table: str, key: str) -> RegistryCheck:
    return RegistryCheck(
        table,
        f"{key}_unique_not_null",
        f"{key} identifies each row of registry.{table}",
        _fixed(
            f"SELECT * FROM registry.{table} WHERE {key} IS NULL OR {key} IN "
            f"(SELECT {key} FROM registry.{table} GROUP BY {key} HAVING count(*) > 1)"
        ),
        f"SELECT count(*) FROM registry.{table}",
    )


def _reference(table: str, key: str, parent: str, nullable: bool = False) -> RegistryCheck:
    present = f"{key} IS NOT NULL AND " if nullable else ""
    return RegistryCheck(
        table,
        f"{key}_references_{parent}",
        f"every {key} of registry.{table} is a row of registry.{parent}",
        _fixed(f"SELECT * FROM registry.{table} WHERE {present}{key} NOT IN (SELECT {key} FROM registry.{parent})"),
        f"SELECT count(*) FROM registry.{table}",
    )


def _contract_ranges(table: str) -> RegistryCheck:
    contract = next(t for t in TABLES if t.name == table)

    def violations(con: duckdb.DuckDBPyConnection, _settings: RegistrySettings) -> str:
        columns = {row[0] for row in con.execute(f"DESCRIBE registry.{table}").fetchall()}
        predicates = violation_predicates(contract, columns)
        if table == "infusions":
            # The protocol's plausibility limit, as recorded with this registry.
            predicates += [
                f"{rate} > (SELECT plausible_max_rate_mg_h FROM registry.protocol)"
                for rate in ("initial_rate_mg_h", "max_rate_mg_h")
            ]
        where = " OR ".join(f"({p})" for p in predicates) or "false"
        return f"SELECT * FROM registry.{table} WHERE {where}"

    return RegistryCheck(
        table,
        "values_within_contract_ranges",
        f"every value of registry.{table} still keeps the contract's ranges and codes after harmonisation",
        violations,
        f"SELECT count(*) FROM registry.{table}",
    )


def _row_drop(con: duckdb.DuckDBPyConnection, settings: RegistrySettings) -> str:
    return f"""
        WITH accepted AS (
            SELECT site_id, export_id, file_name, rows_read,
                   row_number() OVER (PARTITION BY site_id, file_name ORDER BY export_id DESC) AS recency
            FROM registry.file_counts WHERE export_status = 'accepted')
        SELECT cur.site_id, cur.file_name, prev.export_id AS previous_export, prev.rows_read AS previous_rows,
               cur.export_id AS current_export, cur.rows_read AS current_rows
        FROM accepted AS cur
        JOIN accepted AS prev ON prev.site_id = cur.site_id AND prev.file_name = cur.file_name AND prev.recency = 2
        WHERE cur.recency = 1 AND cur.rows_read < (1 - {settings.max_row_drop_share}) * prev.rows_read"""


# The published registry's rows per site, copied into the working database when a check needs them, so the
# check's SQL runs on the working database alone (and can be run again from the quality history).
PUBLISHED_SITES = "publish_guard.published_sites"


def _snapshot_published_sites(con: duckdb.DuckDBPyConnection, settings: RegistrySettings) -> None:
    """Refresh PUBLISHED_SITES from the analysts' file as it is now (no rows when nothing is published yet)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS publish_guard")
    con.execute(f"CREATE OR REPLACE TABLE {PUBLISHED_SITES} (site_id VARCHAR, rows_published BIGINT)")
    path = settings.analyst_db_path
    if not path.exists():
        return
    try:
        con.execute("ATTACH ? AS published (READ_ONLY)", [str(path.resolve())])
    except duckdb.Error as exc:
        raise dg.Failure(
            description=f"cannot read the published registry {path.resolve()} to compare with this run "
            f"(is it open read-write elsewhere?): {type(exc).__name__}; nothing was published"
        ) from exc
    try:
        tables = {row[0] for row in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'published' AND schema_name = 'main'"
        ).fetchall()}
        if "file_counts" in tables:
            con.execute(f"INSERT INTO {PUBLISHED_SITES} SELECT site_id, sum(rows_in_registry) "
                        "FROM published.main.file_counts WHERE is_current_export GROUP BY site_id")
        elif "exports" in tables:  # an older or reduced registry: a current export counts as data
            con.execute(f"INSERT INTO {PUBLISHED_SITES} SELECT DISTINCT site_id, 1 "
                        "FROM published.main.exports WHERE is_current")
    finally:
        con.execute("DETACH published")


def _vanished_sites(con: duckdb.DuckDBPyConnection, settings: RegistrySettings) -> str:
    _snapshot_published_sites(con, settings)
    retired = [site.replace("'", "''") for site in retired_sites(settings.landing_path, settings.retired_sites)]
    retired_list = "[" + ", ".join(f"'{site}'" for site in retired) + "]::VARCHAR[]"
    return f"""
        WITH this_run AS (
            SELECT site_id, sum(rows_in_registry) AS rows_in_registry FROM registry.file_counts
            WHERE is_current_export GROUP BY site_id)
        SELECT published.site_id, published.rows_published, coalesce(this_run.rows_in_registry, 0) AS rows_this_run
        FROM {PUBLISHED_SITES} AS published LEFT JOIN this_run USING (site_id)
        WHERE published.rows_published > 0 AND coalesce(this_run.rows_in_registry, 0) = 0
          AND NOT list_contains({retired_list}, published.site_id)
        ORDER BY published.site_id"""


CHECKS = (
    RegistryCheck(
        "file_counts",
        "rows_conserved",
        "every row read from a file is either accepted or quarantined",
        _fixed("SELECT * FROM registry.file_counts WHERE rows_read <> rows_accepted + rows_quarantined"),
        "SELECT count(*) FROM registry.file_counts",
    ),
    RegistryCheck(
        "file_counts",
        "accepted_rows_reach_registry",
        "every accepted row of each site's current export reached its registry table",
        _fixed("SELECT * FROM registry.file_counts WHERE is_current_export AND rows_in_registry <> rows_accepted"),
        "SELECT count(*) FROM registry.file_counts WHERE is_current_export",
    ),
    RegistryCheck(
        "file_counts",
        "no_sudden_row_drop",
        "no file of a site's current export lost more than the configured share of its previous export's rows",
        _row_drop,
        "SELECT count(*) FROM registry.file_counts WHERE is_current_export",
        names_column="site_id",
        remedy="if the site really removed those rows, move its older export out of the landing folder; "
        "otherwise ask the site for a complete export (max_row_drop_share sets the share)",
    ),
    RegistryCheck(
        "file_counts",
        "no_site_vanished",
        "no site with data in the published registry loses all of it, unless retired on purpose",
        _vanished_sites,
        f"SELECT count(*) FROM {PUBLISHED_SITES} WHERE rows_published > 0",
        names_column="site_id",
        remedy="nothing was published; if the landing folder is right and the site is to leave the registry, "
        "retire it: `ketreg run --retire-site SITE` or a file named RETIRED in landing/SITE/",
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
    *[_contract_ranges(table.name) for table in TABLES],
    # The analysts' counts-only quarantine names exactly the lines the conservation ledger counts.
    RegistryCheck(
        "file_counts",
        "quarantine_counts_match_file_counts",
        "the quarantined lines counted in registry.quarantine are the rows each file quarantined",
        _fixed(
            "SELECT f.site_id, f.export_id, f.file_name, f.rows_quarantined, coalesce(c.lines, 0) AS lines_counted "
            "FROM registry.file_counts AS f LEFT JOIN (SELECT site_id, export_id, file_name, "
            "count(DISTINCT line) AS lines FROM registry.quarantine, unnest(source_lines) AS u (line) GROUP BY ALL) "
            "AS c USING (site_id, export_id, file_name) WHERE f.rows_quarantined <> coalesce(c.lines, 0)"
        ),
        "SELECT count(*) FROM registry.file_counts",
    ),
)


@dataclass(frozen=True)
class CheckEvaluation:
    """One registry check evaluated on the working database: its violating rows' SQL and counts."""

    check: RegistryCheck
    violations_sql: str
    violations: int  # the numerator
    checked: int  # the denominator
    named: list[str]  # values of `check.names_column` of the violating rows (at most 20)

    @property
    def passed(self) -> bool:
        return self.violations == 0


def evaluate(con: duckdb.DuckDBPyConnection, settings: RegistrySettings, check: RegistryCheck) -> CheckEvaluation:
    """Run one check's SQL on the working database."""
    violations_sql = check.violations_sql(con, settings).strip()
    violations = scalar(con, f"SELECT count(*) FROM ({violations_sql})")
    checked = scalar(con, check.checked_query(con, settings))
    named = []
    if violations and check.names_column:
        named = [str(row[0]) for row in con.execute(
            f"SELECT DISTINCT {check.names_column} FROM ({violations_sql}) ORDER BY 1 LIMIT 20"
        ).fetchall()]
    return CheckEvaluation(check, violations_sql, violations, checked, named)


def _check_result(evaluation: CheckEvaluation) -> dg.AssetCheckResult:
    check = evaluation.check
    description = f"{evaluation.violations} of {evaluation.checked} rows violate: {check.description}"
    if evaluation.named:
        description += f" ({check.names_column}: {', '.join(evaluation.named)}); {check.remedy}"
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(["registry", check.table]),
        check_name=check.name,
        passed=evaluation.passed,
        severity=dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "numerator": evaluation.violations,
            "denominator": evaluation.checked,
            "violations_sql": dg.MetadataValue.md(f"```sql\n{evaluation.violations_sql}\n```"),
        },
    )


REGISTRY_CHECK_SPECS = [
    dg.AssetCheckSpec(
        name=check.name,
        asset=dg.AssetKey(["registry", check.table]),
        description=check.description,
        blocking=check.blocking,
    )
    for check in CHECKS
]


# One step for every check (each still its own check on its table in the UI, with its own severity and
# blocking): a step per check cost ~0.2 s of Dagster bookkeeping and a working-store connection each, which
# was most of a run in which nothing changed.
@dg.multi_asset_check(specs=REGISTRY_CHECK_SPECS, name="registry_checks", can_subset=True)
def registry_checks_step(context: dg.AssetCheckExecutionContext, settings: RegistrySettings):
    """Every selected registry check, evaluated on one connection to the working database; the outcomes
    are also kept for the quality history of this run (ketreg/quality/registry_evaluations.py)."""
    selected = context.selected_asset_check_keys
    evaluations = []
    with settings.working_db() as con:
        for check in CHECKS:
            if dg.AssetCheckKey(dg.AssetKey(["registry", check.table]), check.name) not in selected:
                continue
            evaluations.append(evaluate(con, settings, check))
        record_evaluations(con, context.run.run_id, [
            EvaluationRow(e.check.table, e.check.name, e.violations, e.checked, e.violations_sql)
            for e in evaluations
        ])
    for evaluation in evaluations:
        yield _check_result(evaluation)


registry_checks = [registry_checks_step]
