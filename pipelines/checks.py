"""The registry's asset checks, as the check catalogue defines them (config/check_catalogue.yaml, engine
registry_check: conservation, keys, references, contract ranges after harmonisation, sudden drops between a site's
exports) and the evaluator runs them (ketreg/quality/evaluator.py). Each result carries the number of violating
rows (numerator), the number of rows checked (denominator) and the SQL that lists the violations.

Blocking checks are those whose failure means the registry is corrupt or would lose data: metrics and the
analysts' file are then not refreshed in that run. A site that would vanish from the published registry, or a
file that lost more than the configured share of its rows, blocks too: an unmounted share or a half-copied
export must never replace the registry. Removing a site on purpose is explicit (ketreg/landing/retired.py)."""

import dagster as dg

from ketreg.quality.catalogue import registry_checks as catalogue_registry_checks
from ketreg.quality.evaluator import CheckInputs, Evaluation, PublishedRegistryUnreadable, evaluate
from ketreg.quality.registry_evaluations import EvaluationRow, record_evaluations
from pipelines.connections import WorkingStore
from pipelines.resources import RegistrySettings

CHECKS = tuple(catalogue_registry_checks())


def check_inputs(settings: RegistrySettings) -> CheckInputs:
    """The settings the registry checks read besides the working database."""
    return CheckInputs(
        analyst_db_path=settings.analyst_db_path,
        landing_path=settings.landing_path,
        retired_sites=tuple(settings.retired_sites),
        max_row_drop_share=settings.max_row_drop_share,
        protocol=settings.protocol(),
    )


def _check_result(evaluation: Evaluation) -> dg.AssetCheckResult:
    check = evaluation.check
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(["registry", check.table]),
        check_name=check.name,
        passed=evaluation.passed,
        severity=dg.AssetCheckSeverity.ERROR if check.blocking else dg.AssetCheckSeverity.WARN,
        description=evaluation.summary,
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
        metadata=check.described,
    )
    for check in CHECKS
]


# One step for every check (each still its own check on its table in the UI, with its own severity and
# blocking): a step per check cost ~0.2 s of Dagster bookkeeping and a working-store connection each, which
# was most of a run in which nothing changed.
@dg.multi_asset_check(specs=REGISTRY_CHECK_SPECS, name="registry_checks", can_subset=True)
def registry_checks_step(
    context: dg.AssetCheckExecutionContext, settings: RegistrySettings, working_store: WorkingStore
):
    """Every selected registry check, evaluated on one connection to the working database; the outcomes
    are also kept for the quality history of this run (ketreg/quality/registry_evaluations.py)."""
    selected = context.selected_asset_check_keys
    inputs = check_inputs(settings)
    evaluations = []
    with working_store.connect() as con:
        try:
            evaluations = [evaluate(con, check, inputs) for check in CHECKS
                           if dg.AssetCheckKey(dg.AssetKey(["registry", check.table]), check.name) in selected]
        except PublishedRegistryUnreadable as exc:
            raise dg.Failure(description=str(exc)) from exc
        record_evaluations(con, context.run.run_id, [
            EvaluationRow(e.check.table, e.check.name, e.violations, e.checked, e.violations_sql)
            for e in evaluations
        ])
    for evaluation in evaluations:
        yield _check_result(evaluation)


registry_checks = [registry_checks_step]
