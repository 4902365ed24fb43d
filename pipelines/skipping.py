"""Steps a run skips when nothing changed (ketreg/incremental/): the registry, metrics, quality, reports and
publish assets are wrapped with `skippable`. A skipped asset still reports a materialization, with metadata
`skipped: true` and the run of origin of the result it leaves in place, so the Dagster UI says what happened
rather than showing a gap; its asset checks run on the unchanged tables and give the same outcome."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import dagster as dg
import duckdb

from ketreg.incremental.inputs import inputs_fingerprint
from ketreg.incremental.ledger import RunPlan, carried_from, record_asset_run, record_publication, run_plan
from ketreg.registry.pseudonym import MissingPseudonymKey, key_fingerprint, key_from_environment
from pipelines.metadata import AssetMetadata

# Settings that change how a run works, not what it produces (when the sensor looks; staging in parallel gives
# equal digests): changing them must not force a rebuild. Every other field of `settings` is an input.
_NOT_INPUTS = {"landing_settle_seconds", "staging_workers"}
# The connection resources (pipelines/connections.py), field by field: none is an input, so the fingerprint reads
# `settings` only. The working store's file holds the ledger that compares runs (another file compares with its
# own); DuckDB's memory and threads change speed only; the PostgreSQL target decides for itself from what the
# server holds (publish/postgres_registry). tests/test_incremental.py fails when either resource gains a field
# not listed here: whoever adds one decides whether it is an input (and if so, `current_plan` must hash it).
CONNECTION_FIELDS_NOT_INPUTS = {
    "working_store": {"path", "memory_limit", "threads"},
    "postgres_target": {"url", "site_role_prefix"},
}


def current_plan(context: dg.AssetExecutionContext, con: duckdb.DuckDBPyConnection) -> RunPlan:
    """This run's plan (made by the first wrapped step that runs, after staging), on the working store `con`."""
    settings = context.resources.settings
    pseudonym = getattr(context.resources, "pseudonym_key", None)
    rekey = bool(pseudonym and pseudonym.rekey)
    try:
        key = key_fingerprint(key_from_environment())
    except MissingPseudonymKey:
        # A run of steps that need no key (e.g. only the metrics): without the key's fingerprint the inputs
        # are not known to be unchanged, so nothing is skipped.
        key = ""
    return run_plan(
        con,
        context.run.run_id,
        lambda: inputs_fingerprint(
            con,
            settings.model_dump(exclude=_NOT_INPUTS),
            landing=settings.landing_path,
            retire=list(settings.retired_sites),
            protocol_file=settings.protocol_file,
            limits=settings.limits(),
            sites_dir=settings.sites_path,
            key_fingerprint=key,
            rekey=rekey,
            run_id=context.run.run_id,
        ),
        settings.analyst_db_path,
        force=rekey or not key,
    )


def skippable(fn: Callable[..., Any] | None = None, *, publishes: bool = False) -> Any:
    """Wrap an asset's function: skip it when the run's inputs equal those of the run that published the
    analysts' file and this asset's result was made from them; otherwise run it and note it in the ledger.
    `publishes`: the asset replaces the analysts' file (its SHA-256 is recorded for the next run's check)."""

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        def decide(context: dg.AssetExecutionContext) -> tuple[RunPlan, list[str], str | None]:
            keys = sorted(key.to_user_string() for key in context.selected_asset_keys)
            # One connection for the decision: each open and close of the working store costs a checkpoint.
            with context.resources.working_store.connect() as con:
                plan = current_plan(context, con)
                origins = {carried_from(con, plan, key) for key in keys}
                origin = origins.pop() if len(origins) == 1 else None
                if origin is not None:
                    for key in keys:
                        record_asset_run(con, plan, key, origin)
            return plan, keys, origin

        def skipped(context: dg.AssetExecutionContext, plan: RunPlan, keys: list[str], origin: str) -> list:
            # No log line: the materialization's metadata says it, and each event costs a write to the event log.
            metadata: AssetMetadata = {
                "skipped": True,
                "origin_run": origin,
                "reason": f"nothing changed since run {plan.unchanged_since}",
                "inputs_fingerprint": plan.inputs_fingerprint,
            }
            # A multi-asset yields its results in its specs' order, which is the order of their dependencies.
            order = [spec.key.to_user_string() for spec in context.assets_def.specs]
            ordered = sorted(keys, key=lambda key: order.index(key) if key in order else len(order))
            return [dg.MaterializeResult(asset_key=dg.AssetKey.from_user_string(key), metadata=metadata)
                    for key in ordered]

        def built(context: dg.AssetExecutionContext, plan: RunPlan, keys: list[str]) -> None:
            with context.resources.working_store.connect() as con:
                for key in keys:
                    record_asset_run(con, plan, key)
                if publishes:
                    record_publication(con, plan, context.resources.settings.analyst_db_path)

        if inspect.isgeneratorfunction(function):  # a multi-asset yielding one result per asset
            @functools.wraps(function)
            def generator(*args: Any, **kwargs: Any) -> Any:
                context = dg.AssetExecutionContext.get()
                plan, keys, origin = decide(context)
                if origin is not None:
                    yield from skipped(context, plan, keys, origin)
                    return
                yield from function(*args, **kwargs)
                built(context, plan, keys)

            return generator

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            context = dg.AssetExecutionContext.get()
            plan, keys, origin = decide(context)
            if origin is not None:
                return skipped(context, plan, keys, origin)[0]
            result = function(*args, **kwargs)
            built(context, plan, keys)
            return result

        return wrapper

    return wrap(fn) if fn is not None else wrap
