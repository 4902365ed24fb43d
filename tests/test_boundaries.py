"""Every limit tested on both sides — exactly at it, one step inside, one step outside — with the cases generated
from the same source of truth as the rules: the Pandera contracts and `config/protocol.yaml` (read through
`schemas.protocol`), never from numbers typed here. Outcomes are asserted from what each case is (at, inside,
outside), not recomputed with the rule's own formula:

- the contract's ranges and codes and the protocol's plausibility limit on rates: accepted or quarantined, with
  the column named (real Pandera validation, as staging runs it);
- the protocol's titration caps and session length: a deviation or none (a real pipeline run);
- the metric thresholds (responder and substantial-responder reductions, durable relief): the patient's outcome
  in metrics.patient_outcomes (the same run).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl
import pytest
from check_support import BoundCase, bound_cases
from support import (
    RegistryRun,
    canonical_rows,
    quarantine_reasons,
    query_db,
    run_registry,
    validate_rows,
    write_export,
)

from schemas.protocol import load_metric_settings, load_protocol
from schemas.tables import TABLES, TABLES_BY_NAME

PROTOCOL = load_protocol()
METRICS = load_metric_settings()
RATE_COLUMNS = ("initial_rate_mg_h", "max_rate_mg_h")


def _contract_types(table: str) -> dict[str, str]:
    contract = TABLES_BY_NAME[table]
    kinds = {pl.Int64: "BIGINT", pl.Float64: "DOUBLE"}
    return {column: kinds.get(contract.polars_type(column), "VARCHAR") for column in contract.columns}


CONTRACT_CASES = [case for t in TABLES for case in bound_cases(t.name, PROTOCOL, _contract_types(t.name))]


def _text(value: object) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


@pytest.mark.parametrize("case", CONTRACT_CASES, ids=lambda c: c.label)
def test_contract_and_plausibility_limits_accept_at_and_inside_and_quarantine_outside(case: BoundCase) -> None:
    rows = canonical_rows()
    contract = TABLES_BY_NAME[case.table]
    # The first row that already carries a value in that column, so that codes meet the context they need.
    row = next((r for r in rows[case.table] if r.get(case.column)), rows[case.table][0])
    row[case.column] = _text(case.value)
    if case.column in RATE_COLUMNS:
        # Both rates move together (the maximum may not be below the initial rate), and no dose is recorded
        # (a dose must be deliverable at the maximum rate): only the limit under test decides.
        row.update(dict.fromkeys(RATE_COLUMNS, _text(case.value)), total_dose_mg="")
    result = validate_rows(rows, upto=case.table)[case.table]
    record_id = row[contract.record_id] if contract.record_id else None
    lines = [i + 2 for i, r in enumerate(rows[case.table]) if r is row]
    reasons = quarantine_reasons(result, record_id=record_id, source_line=None if record_id else lines[0])
    if case.inside:
        assert reasons == [], reasons
    else:
        assert case.column in {reason["column"] for reason in reasons}, reasons


def test_contract_cases_cover_every_kind_of_limit() -> None:
    # The generator must find the limits, or the test above would pass on nothing.
    rules = {(c.table, c.column, c.rule) for c in CONTRACT_CASES}
    assert ("infusions", "max_rate_mg_h", "rate_within_plausibility_limit") in rules
    assert ("infusions", "initial_rate_mg_h", "rate_within_plausibility_limit") in rules
    assert {("assessments", "nprs", "greater_than_or_equal_to"), ("assessments", "nprs", "less_than_or_equal_to"),
            ("infusions", "max_rate_mg_h", "greater_than"), ("patients", "sex", "isin")} <= rules
    plausible = {c.value for c in CONTRACT_CASES if c.rule == "rate_within_plausibility_limit"}
    assert PROTOCOL.plausible_max_rate_mg_h in plausible


# ---------------------------------------------------------------------------------------------------------
# Protocol deviations and metric thresholds: one site whose patients each sit on one side of one limit.

RATE_STEP = 0.01
MINUTE = dt.timedelta(minutes=1)
START = dt.datetime(2025, 1, 6, 9, 0)


@dataclass(frozen=True)
class Case:
    patient: str
    limit: str
    where: str  # "at", "inside", "outside"


def _at_inside_outside(limit: float | dt.timedelta, step: float | dt.timedelta, upward_is_outside: bool) -> dict:
    """The limit, one step inside and one step outside it."""
    direction = 1 if upward_is_outside else -1
    values = {"at": limit, "inside": limit - direction * step, "outside": limit + direction * step}
    return {where: round(v, 6) if isinstance(v, float) else v for where, v in values.items()}


def _nprs_at(reduction: float) -> tuple[int, int]:
    """A baseline NPRS and the post-infusion NPRS that is exactly `reduction` below it (whole points)."""
    for baseline in range(10, 0, -1):
        target = baseline * (1 - reduction)
        if abs(target - round(target)) < 1e-9:
            return baseline, round(target)
    pytest.skip(f"no whole NPRS lies exactly {reduction:.0%} below a baseline of 1–10")


def _boundary_rows() -> tuple[dict[str, list[dict[str, str]]], list[Case]]:
    template = canonical_rows()
    patient_row, infusion_row = template["patients"][0], template["infusions"][0]
    rows: dict[str, list[dict[str, str]]] = {t: [] for t in template}
    cases: list[Case] = []
    counter = iter(range(1, 1000))

    def patient(limit: str, where: str, infusions: list[dict[str, str]], baseline: int | None = None,
                post: int | None = None) -> None:
        number = next(counter)
        pid = f"PT-B{number:03d}"
        rows["patients"].append(dict(patient_row, patient_id=pid))
        for index, changes in enumerate(infusions, start=1):
            start = START + dt.timedelta(days=7 * (index - 1))
            end = start + dt.timedelta(hours=PROTOCOL.planned_session_hours)
            infusion = dict(infusion_row, infusion_id=f"INF-B{number:03d}-{index}", patient_id=pid,
                            start_time=start.isoformat(timespec="minutes"), end_time=end.isoformat(timespec="minutes"),
                            initial_rate_mg_h="10", max_rate_mg_h="10", total_dose_mg="", relief_duration_days="")
            infusion.update(changes)
            rows["infusions"].append(infusion)
        if baseline is not None:
            rows["assessments"].append({
                "assessment_id": f"ASM-B{number:03d}-0", "patient_id": pid, "infusion_id": "",
                "assessed_at": (START - dt.timedelta(days=3)).isoformat(timespec="minutes"), "timepoint": "baseline",
                "nprs": str(baseline), "function_score": "", "satisfaction": "", "daily_mme": "",
                "subjective_improvement": "",
            })
            rows["assessments"].append({
                "assessment_id": f"ASM-B{number:03d}-1", "patient_id": pid, "infusion_id": f"INF-B{number:03d}-1",
                "assessed_at": (START + dt.timedelta(hours=5)).isoformat(timespec="minutes"), "timepoint": "post",
                "nprs": str(post), "function_score": "", "satisfaction": "", "daily_mme": "",
                "subjective_improvement": "",
            })
        cases.append(Case(pid, limit, where))

    # Titration cap of infusion 1: a deviation only above it.
    for where, rate in _at_inside_outside(PROTOCOL.first_infusion_max_rate_mg_h, RATE_STEP, True).items():
        patient("first_infusion_rate_above_titration_cap", where, [{"max_rate_mg_h": _text(rate)}])
    # Maximum rate of later infusions (infusion 2; infusion 1 keeps to its cap).
    for where, rate in _at_inside_outside(PROTOCOL.max_rate_mg_h, RATE_STEP, True).items():
        patient("rate_above_protocol_maximum", where, [{}, {"max_rate_mg_h": _text(rate)}])
    # Session length: planned ± tolerance, to the minute (CSV times carry minutes).
    planned, tolerance = dt.timedelta(hours=PROTOCOL.planned_session_hours), dt.timedelta(
        hours=PROTOCOL.session_tolerance_hours)
    for limit, bound, upward in (("session_shorter_than_planned", planned - tolerance, False),
                                 ("session_longer_than_planned", planned + tolerance, True)):
        for where, length in _at_inside_outside(bound, MINUTE, upward).items():
            patient(limit, where, [{"end_time": (START + length).isoformat(timespec="minutes")}])
    # Responder thresholds: a post-infusion NPRS exactly the protocol's reduction below baseline, one point
    # better (inside) and one point worse (outside).
    for limit, reduction in (("responder", PROTOCOL.responder_reduction),
                             ("substantial_responder", PROTOCOL.substantial_reduction)):
        baseline, post_at = _nprs_at(reduction)
        for where, post in (("at", post_at), ("inside", post_at - 1), ("outside", post_at + 1)):
            patient(limit, where, [{}], baseline=baseline, post=post)
    # Durable relief: relief lasting more than the threshold; exactly the threshold is not durable.
    days = METRICS.durable_relief_days
    for where, relief in (("at", days), ("inside", days + 1), ("outside", days - 1)):
        patient("durable_relief", where, [{"relief_duration_days": str(relief)}])
    return rows, cases


@pytest.fixture(scope="module")
def boundary_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[RegistryRun, list[Case]]:
    root = tmp_path_factory.mktemp("boundaries")
    rows, cases = _boundary_rows()
    write_export(root / "landing", "boundary", rows=rows)
    run = run_registry(root / "landing", root / "out")
    assert run.success, run.failures
    assert run.query("SELECT count(*) FROM quarantine") == [(0,)], "every boundary row must be valid"
    return run, cases


def _patient_keys(run: RegistryRun) -> dict[str, str]:
    """Site patient id → pseudonym, by the line of patients.csv each registry row came from (patients were
    written in order PT-B001, PT-B002, … from line 2), read in the working store."""
    lines = query_db(run.work_db, "SELECT source_line, patient_key FROM registry.patients")
    return {f"PT-B{line - 1:03d}": key for line, key in lines}


DEVIATIONS = ("first_infusion_rate_above_titration_cap", "rate_above_protocol_maximum",
              "session_shorter_than_planned", "session_longer_than_planned")
# At a deviation limit the infusion keeps to the protocol; the limit itself is allowed.
DEVIATION_EXPECTED = {"at": False, "inside": False, "outside": True}
# At a metric threshold the patient counts: a 30 % reduction is a response; relief of exactly the threshold
# days is not "more than" it, so it is not durable (docs/metrics.md).
METRIC_EXPECTED = {
    "responder": {"at": True, "inside": True, "outside": False},
    "substantial_responder": {"at": True, "inside": True, "outside": False},
    "durable_relief": {"at": False, "inside": True, "outside": False},
}


@pytest.mark.slow
def test_protocol_deviations_start_one_step_past_each_limit(boundary_run: tuple[RegistryRun, list[Case]]) -> None:
    run, cases = boundary_run
    keys = _patient_keys(run)
    found = {(pk, deviation) for pk, deviation in run.query("SELECT patient_key, deviation FROM protocol_deviations")}
    for case in cases:
        if case.limit not in DEVIATIONS:
            continue
        expected = DEVIATION_EXPECTED[case.where]
        assert ((keys[case.patient], case.limit) in found) is expected, case
    # Cases of one limit raise no other deviation (e.g. a session a minute too long is not also too fast).
    deviating = {keys[c.patient] for c in cases if c.limit in DEVIATIONS and c.where == "outside"}
    assert {pk for pk, _ in found} == deviating
    assert len(found) == len(deviating)


@pytest.mark.slow
@pytest.mark.parametrize("metric", list(METRIC_EXPECTED))
def test_metric_thresholds_count_the_patient_on_the_right_side(
    boundary_run: tuple[RegistryRun, list[Case]], metric: str
) -> None:
    run, cases = boundary_run
    keys = _patient_keys(run)
    outcome = dict(run.query(f"SELECT patient_key, {metric} FROM metrics.patient_outcomes"))
    checked = [c for c in cases if c.limit == metric]
    assert len(checked) == 3
    for case in checked:
        assert outcome[keys[case.patient]] is METRIC_EXPECTED[metric][case.where], case
