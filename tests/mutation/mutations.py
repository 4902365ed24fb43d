"""The curated mutations of `make mutation`: one small, realistic bug each in a safety net of the registry —
the checks' SQL, the contract and protocol limits, the deviation and metric thresholds, publishing and staging
— with the tests that must catch it. Each mutation replaces one exact piece of text, found exactly once in its
file (tests/test_mutation_targets.py keeps this list from rotting as the code changes).

A mutation listed in `ACCEPTED_SURVIVORS` may survive; tests/README.md says why."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # relative to the repository root
    before: str  # exact text, found exactly once in the file
    after: str
    tests: tuple[str, ...]  # pytest arguments: the tests that must fail
    net: str  # the safety net the bug breaks


_CHECKS = ("tests/test_registry_checks.py",)

MUTATIONS: tuple[Mutation, ...] = (
    # The five of issue 17 (each survived the whole suite before).
    Mutation(
        "in_place_publish", "ketreg/registry/publish.py",
        'staging_file = analyst_db.with_name(f".{analyst_db.name}.publishing")',
        "staging_file = analyst_db",
        ("tests/test_atomicity.py", "-k", "publish"),
        "the analysts' file is built aside and renamed; in place, a reader or a crash sees half a registry",
    ),
    Mutation(
        "weakened_conservation", "sql/quality/checks/rows_conserved.sql",
        "WHERE rows_read <> rows_accepted + rows_quarantined",
        "WHERE rows_read < rows_accepted",
        _CHECKS,
        "rows_conserved: a row read but neither accepted nor quarantined fails the run",
    ),
    Mutation(
        "inverted_row_drop_share", "sql/quality/checks/no_sudden_row_drop.sql",
        "cur.rows_read < (1 - {max_row_drop_share}) * prev.rows_read",
        "cur.rows_read < {max_row_drop_share} * prev.rows_read",
        (*_CHECKS, "-k", "drop"),
        "no_sudden_row_drop: a file that lost more than the allowed share of its rows is reported",
    ),
    Mutation(
        "range_check_rate_limit_x10", "config/check_catalogue.yaml",
        '"{column} > (SELECT plausible_max_rate_mg_h FROM registry.protocol)"',
        '"{column} > (SELECT plausible_max_rate_mg_h FROM registry.protocol) * 10"',
        (*_CHECKS, "-k", "range"),
        "values_within_contract_ranges: the protocol's plausible rate still holds after harmonisation",
    ),
    Mutation(
        "session_length_boundary", "sql/registry/protocol_deviations.sql",
        "WHERE duration_h > $planned_session_hours + $session_tolerance_hours",
        "WHERE duration_h >= $planned_session_hours + $session_tolerance_hours",
        ("tests/test_boundaries.py", "-k", "deviations"),
        "a session exactly planned + tolerance hours long keeps to the protocol",
    ),
    # Further nets: the other checks, contract limits, boundary operators, thresholds, staging, cascade.
    Mutation(
        "staging_outside_a_transaction", "ketreg/staging/stage.py",
        "    with transaction(con):\n        _delete_exports(con, keys, _ALL_STAGING)",
        "    if True:  # mutated: no transaction\n        _delete_exports(con, keys, _ALL_STAGING)",
        ("tests/test_atomicity.py", "-k", "staging"),
        "a batch of exports is staged in one transaction: killed half way, staging keeps the old rows",
    ),
    Mutation(
        "reach_check_one_sided", "sql/quality/checks/accepted_rows_reach_registry.sql",
        "WHERE is_current_export AND rows_in_registry <> rows_accepted",
        "WHERE is_current_export AND rows_in_registry < rows_accepted",
        (*_CHECKS, "-k", "reach"),
        "accepted_rows_reach_registry: the registry holds exactly the accepted rows, no more, no fewer",
    ),
    Mutation(
        "quarantine_counts_one_sided", "sql/quality/checks/quarantine_counts_match_file_counts.sql",
        "WHERE f.rows_quarantined <> coalesce(c.lines, 0)",
        "WHERE f.rows_quarantined > coalesce(c.lines, 0)",
        (*_CHECKS, "-k", "quarantine_counts"),
        "quarantine_counts_match_file_counts: the analysts' quarantine counts name exactly the quarantined lines",
    ),
    Mutation(
        "vanished_site_check_never_fires", "sql/quality/checks/no_site_vanished.sql",
        "WHERE published.rows_published > 0 AND coalesce(this_run.rows_in_registry, 0) = 0",
        "WHERE published.rows_published > 0 AND coalesce(this_run.rows_in_registry, 0) < 0",
        (*_CHECKS, "-k", "vanish"),
        "no_site_vanished: a published site whose rows all disappear stops publishing",
    ),
    Mutation(
        # The list of retired sites is still filled in (the renderer refuses a template with an unfilled slot), but
        # no published site is looked up in it.
        "vanished_site_check_ignores_retirement", "sql/quality/checks/no_site_vanished.sql",
        "list_contains({retired_sites}, published.site_id)",
        "list_contains({retired_sites}, 'not-a-site')",
        (*_CHECKS, "-k", "retired"),
        "a site retired on purpose may leave the registry",
    ),
    Mutation(
        "key_check_tolerates_pairs", "sql/quality/checks/primary_key.sql",
        "GROUP BY {key} HAVING count(*) > 1)",
        "GROUP BY {key} HAVING count(*) > 2)",
        (*_CHECKS, "-k", "key"),
        "key uniqueness: a key used twice fails",
    ),
    Mutation(
        # (Comparing with its own table, as this mutation did before the catalogue, leaves the template's {parent}
        # slot unfilled: the renderer refuses it, an error rather than a test catching the bug.)
        "reference_check_never_fires", "sql/quality/checks/reference.sql",
        "WHERE {key} IS NOT NULL AND {key} NOT IN",
        "WHERE {key} IS NULL AND {key} NOT IN",
        (*_CHECKS, "-k", "reference"),
        "references: a child row whose parent is missing fails",
    ),
    Mutation(
        "check_severity_swapped", "pipelines/checks.py",
        "severity=dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN",
        "severity=dg.AssetCheckSeverity.WARN if check.blocking else dg.AssetCheckSeverity.ERROR",
        (*_CHECKS, "-k", "duplicated or drop"),
        "a blocking check reports ERROR, a warning WARN",
    ),
    Mutation(
        "range_rule_lower_bound_strict", "ketreg/registry/range_rules.py",
        '"greater_than_or_equal_to": (">=", "min_value"),',
        '"greater_than_or_equal_to": (">", "min_value"),',
        ("tests/test_range_conditions.py", *_CHECKS, "-k", "range"),
        "a value exactly at an inclusive lower limit is valid after harmonisation",
    ),
    Mutation(
        "nprs_upper_limit_widened", "schemas/assessments.py",
        "nprs: pl.Int64 = Field(nullable=True, ge=0, le=10,",
        "nprs: pl.Int64 = Field(nullable=True, ge=0, le=11,",
        ("tests/test_contract_rules.py", "tests/test_boundaries.py", "-k", "nprs or contract"),
        "NPRS is 0–10: 11 is quarantined",
    ),
    Mutation(
        "weight_lower_limit_lowered", "schemas/patients.py",
        "weight_kg: pl.Float64 = Field(nullable=True, ge=25, le=300,",
        "weight_kg: pl.Float64 = Field(nullable=True, ge=24, le=300,",
        ("tests/test_contract_rules.py", "tests/test_boundaries.py", "-k", "weight or contract"),
        "a weight below the contract's minimum is quarantined",
    ),
    Mutation(
        "plausibility_limit_exclusive", "schemas/tables.py",
        "data.lazyframe.select(pl.col(data.key) <= limit)",
        "data.lazyframe.select(pl.col(data.key) < limit)",
        ("tests/test_boundaries.py", "-k", "plausibility"),
        "a rate exactly at the protocol's plausibility limit is valid",
    ),
    Mutation(
        "titration_cap_boundary", "sql/registry/protocol_deviations.sql",
        "WHERE infusion_number = 1 AND max_rate_mg_h > $first_infusion_max_rate_mg_h",
        "WHERE infusion_number = 1 AND max_rate_mg_h >= $first_infusion_max_rate_mg_h",
        ("tests/test_boundaries.py", "-k", "deviations"),
        "infusion 1 exactly at the titration cap keeps to the protocol",
    ),
    Mutation(
        "responder_threshold_strict", "sql/metrics/patient_outcomes.sql",
        "w.nprs <= b.nprs_baseline * (1 - $responder_reduction) + 1e-9",
        "w.nprs < b.nprs_baseline * (1 - $responder_reduction)",
        ("tests/test_boundaries.py", "-k", "metric"),
        "a reduction of exactly the responder threshold (30 %) is a response",
    ),
    Mutation(
        "durable_relief_boundary", "sql/metrics/patient_outcomes.sql",
        "bool_or(i.relief_duration_days > $durable_relief_days)",
        "bool_or(i.relief_duration_days >= $durable_relief_days)",
        ("tests/test_boundaries.py", "-k", "metric"),
        "relief of exactly the threshold days is not durable (more than 3 weeks)",
    ),
    Mutation(
        "cascade_blames_the_reference", "schemas/validation.py",
        'was_quarantined = pl.col("_parent_quarantined").fill_null(False)',
        "was_quarantined = pl.lit(False)",
        ("tests/test_contract_rules.py", "tests/test_pipeline.py", "-k", "quarantine"),
        "a child of a quarantined parent is quarantined as such (parent_quarantined), not as a broken reference",
    ),
)

# Mutations allowed to survive, with the reason (repeated in tests/README.md).
ACCEPTED_SURVIVORS: dict[str, str] = {}
