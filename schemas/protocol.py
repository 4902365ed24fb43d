"""The treatment protocol's limits, and the settings of the registry metrics, loaded from one YAML file
(`config/protocol.yaml` by default)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from ketreg.package_data import config_file

DEFAULT_PROTOCOL_FILE = config_file("protocol.yaml")


class ProtocolError(ValueError):
    """The protocol file is missing a limit or holds an impossible one."""


@dataclass(frozen=True)
class Protocol:
    """Limits of the infusion protocol; validation and deviation rules read them from here."""

    name: str
    version: int
    plausible_max_rate_mg_h: float
    first_infusion_max_rate_mg_h: float
    max_rate_mg_h: float
    planned_session_hours: float
    session_tolerance_hours: float
    induction_infusions: int
    responder_reduction: float
    substantial_reduction: float

    @property
    def fingerprint(self) -> str:
        """A short hash of every limit: a change of protocol re-validates every export."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def as_sql_parameters(self) -> dict[str, float | int | str]:
        """The limits as named parameters for the SQL files (`$max_rate_mg_h`, …)."""
        return asdict(self)


def _read_yaml(path: Path) -> object:
    """The parsed protocol file; a missing, unreadable or malformed file is a ProtocolError naming the file
    and, for YAML syntax, the line and column (a typo is the operator's to fix, not a crash)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ProtocolError(f"protocol file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"protocol file {path} cannot be read: {type(exc).__name__}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ProtocolError(f"protocol file {path}{where}: {problem}; fix the YAML syntax") from exc


def load_protocol(path: Path | str | None = None) -> Protocol:
    """Read and check a protocol file; the study's protocol when no path is given."""
    path = Path(path) if path else DEFAULT_PROTOCOL_FILE
    raw = _read_yaml(path)
    try:
        protocol = Protocol(
            name=str(raw["name"]),
            version=int(raw["version"]),
            plausible_max_rate_mg_h=float(raw["plausibility"]["max_rate_mg_h"]),
            first_infusion_max_rate_mg_h=float(raw["titration"]["first_infusion_max_rate_mg_h"]),
            max_rate_mg_h=float(raw["titration"]["max_rate_mg_h"]),
            planned_session_hours=float(raw["session"]["planned_hours"]),
            session_tolerance_hours=float(raw["session"]["tolerance_hours"]),
            induction_infusions=int(raw["phases"]["induction_infusions"]),
            responder_reduction=float(raw["response"]["responder_reduction"]),
            substantial_reduction=float(raw["response"]["substantial_reduction"]),
        )
    except (KeyError, TypeError) as exc:
        raise ProtocolError(
            f"protocol file {path} lacks the setting {exc}; compare with {DEFAULT_PROTOCOL_FILE}"
        ) from exc
    except ValueError as exc:
        raise ProtocolError(f"protocol file {path}: a setting is not a number ({exc}); compare with "
                            f"{DEFAULT_PROTOCOL_FILE}") from exc
    if not (0 < protocol.first_infusion_max_rate_mg_h <= protocol.max_rate_mg_h <= protocol.plausible_max_rate_mg_h):
        raise ProtocolError(
            f"protocol file {path}: rates must satisfy 0 < first-infusion maximum ≤ maximum ≤ plausibility limit"
        )
    if not 0 < protocol.responder_reduction <= protocol.substantial_reduction < 1:
        raise ProtocolError(f"protocol file {path}: response thresholds must satisfy 0 < responder ≤ substantial < 1")
    return protocol


@dataclass(frozen=True)
class MetricSettings:
    """Settings of the registry metrics: the `metrics:` section of the protocol file.

    Kept apart from `Protocol` on purpose: they change how the registry is summarised, not how a row is validated,
    so they stay out of `Protocol.fingerprint` (a new benchmark rate must not re-validate every export).
    """

    durable_relief_days: int
    interruption_follow_up_days: int
    return_to_baseline_margin_nprs: int
    moderate_baseline_nprs_from: int
    severe_baseline_nprs_from: int
    predictor_min_patients_per_level: int
    predictor_min_events_per_parameter: float
    planning_alpha: float
    planning_powers: tuple[float, ...]
    benchmark_responder_rate: float
    comparator_responder_rate: float
    comparator_mean_nprs_change: float
    planned_patients_per_site: int
    primary_pre_infusion_number: int
    primary_follow_up_target_day: int
    primary_follow_up_window_days: int
    # Planning of the next study (ketreg/metrics/firth.py, planning.py): fixed reference levels of the Firth
    # models, the Riley et al. (2020) criteria, and the one-sided α of the exact single-arm design.
    predictor_reference_levels: dict[str, str]
    riley_shrinkage: float
    riley_nagelkerke_r2: float
    single_arm_alpha_one_sided: float

    def as_sql_parameters(self) -> dict[str, float | int]:
        """The scalar settings as named parameters for the SQL files (`$durable_relief_days`, …)."""
        return {name: value for name, value in asdict(self).items() if not isinstance(value, tuple | list | dict)}


def _planning_settings(section: dict, path: Path) -> dict:
    """The study-planning settings; a protocol file written before they existed takes the default file's."""
    predictors, planning = section["predictors"], section["study_planning"]
    if path != DEFAULT_PROTOCOL_FILE and not (
        "reference_levels" in predictors and "sample_size_adequacy" in predictors
        and "single_arm_alpha_one_sided" in planning
    ):
        default = yaml.safe_load(DEFAULT_PROTOCOL_FILE.read_text(encoding="utf-8"))["metrics"]
        predictors = {**default["predictors"], **predictors}
        planning = {**default["study_planning"], **planning}
    adequacy = predictors["sample_size_adequacy"]
    return {
        "predictor_reference_levels": {
            str(factor): str(level).lower() if isinstance(level, bool) else str(level)
            for factor, level in (predictors["reference_levels"] or {}).items() if level is not None
        },
        "riley_shrinkage": float(adequacy["shrinkage"]),
        "riley_nagelkerke_r2": float(adequacy["nagelkerke_r2"]),
        "single_arm_alpha_one_sided": float(planning["single_arm_alpha_one_sided"]),
    }


def load_metric_settings(path: Path | str | None = None) -> MetricSettings:
    """The `metrics:` section of a protocol file (the default file's when that file has none)."""
    path = Path(path) if path else DEFAULT_PROTOCOL_FILE
    raw = _read_yaml(path)
    section = raw.get("metrics") if isinstance(raw, dict) else None
    if section is None and path != DEFAULT_PROTOCOL_FILE:
        # A site protocol written before the metrics existed: summarise it the registry's default way.
        return load_metric_settings(DEFAULT_PROTOCOL_FILE)
    try:
        planning = section["study_planning"]
        primary = section.get("primary_assessment") if isinstance(section, dict) else None
        if primary is None and path != DEFAULT_PROTOCOL_FILE:
            # A protocol file written before the primary estimand existed: the registry's default assessment.
            primary = yaml.safe_load(DEFAULT_PROTOCOL_FILE.read_text(encoding="utf-8"))["metrics"]["primary_assessment"]
        if primary is None:
            raise KeyError("primary_assessment")
        settings = MetricSettings(
            durable_relief_days=int(section["durable_relief_days"]),
            interruption_follow_up_days=int(section["interruption"]["follow_up_days"]),
            return_to_baseline_margin_nprs=int(section["interruption"]["return_to_baseline_margin_nprs"]),
            moderate_baseline_nprs_from=int(section["baseline_nprs_bands"]["moderate_from"]),
            severe_baseline_nprs_from=int(section["baseline_nprs_bands"]["severe_from"]),
            predictor_min_patients_per_level=int(section["predictors"]["min_patients_per_level"]),
            predictor_min_events_per_parameter=float(section["predictors"]["min_events_per_parameter"]),
            planning_alpha=float(planning["alpha"]),
            planning_powers=tuple(float(power) for power in planning["power"]),
            benchmark_responder_rate=float(planning["benchmark_responder_rate"]),
            comparator_responder_rate=float(planning["comparator_responder_rate"]),
            comparator_mean_nprs_change=float(planning["comparator_mean_nprs_change"]),
            planned_patients_per_site=int(planning["planned_patients_per_site"]),
            primary_pre_infusion_number=int(primary["pre_infusion_number"]),
            primary_follow_up_target_day=int(primary["follow_up_target_day"]),
            primary_follow_up_window_days=int(primary["follow_up_window_days"]),
            **_planning_settings(section, path),
        )
    except (KeyError, TypeError) as exc:
        raise ProtocolError(
            f"protocol file {path} lacks the metrics setting {exc}; compare with the `metrics:` section of "
            f"{DEFAULT_PROTOCOL_FILE}"
        ) from exc
    except ValueError as exc:
        raise ProtocolError(f"protocol file {path}: a metrics setting is not a number ({exc})") from exc
    problems = [
        message
        for failed, message in (
            (settings.durable_relief_days < 0, "durable_relief_days must be ≥ 0"),
            (settings.interruption_follow_up_days < 0, "interruption.follow_up_days must be ≥ 0"),
            (not 0 < settings.moderate_baseline_nprs_from < settings.severe_baseline_nprs_from <= 10,
             "baseline_nprs_bands must satisfy 0 < moderate_from < severe_from ≤ 10"),
            (settings.predictor_min_patients_per_level < 1, "predictors.min_patients_per_level must be ≥ 1"),
            (not 0 < settings.planning_alpha < 1, "study_planning.alpha must be between 0 and 1"),
            (not settings.planning_powers or not all(0 < p < 1 for p in settings.planning_powers),
             "study_planning.power must list powers between 0 and 1"),
            (not 0 < settings.benchmark_responder_rate < 1,
             "study_planning.benchmark_responder_rate must be between 0 and 1"),
            (not 0 < settings.comparator_responder_rate < 1,
             "study_planning.comparator_responder_rate must be between 0 and 1"),
            (settings.planned_patients_per_site < 1, "study_planning.planned_patients_per_site must be ≥ 1"),
            # Infusion 1's pre-infusion NPRS is the baseline: the endpoint must come after a dose.
            (settings.primary_pre_infusion_number < 2, "primary_assessment.pre_infusion_number must be ≥ 2"),
            (settings.primary_follow_up_window_days < 0, "primary_assessment.follow_up_window_days must be ≥ 0"),
            (settings.primary_follow_up_target_day - settings.primary_follow_up_window_days < 1,
             "primary_assessment.follow_up_target_day − follow_up_window_days must be ≥ 1 (after infusion 1's day)"),
            (not 0 < settings.riley_shrinkage < 1, "predictors.sample_size_adequacy.shrinkage must be between 0 and 1"),
            (not 0 < settings.riley_nagelkerke_r2 < 1,
             "predictors.sample_size_adequacy.nagelkerke_r2 must be between 0 and 1"),
            (not 0 < settings.single_arm_alpha_one_sided < 0.5,
             "study_planning.single_arm_alpha_one_sided must be between 0 and 0.5"),
        )
        if failed
    ]
    if problems:
        raise ProtocolError(f"protocol file {path}, metrics section: " + "; ".join(problems))
    return settings
