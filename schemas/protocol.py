"""The treatment protocol's limits, and the settings of the registry metrics, loaded from one YAML file
(`config/protocol.yaml` by default)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ketreg.package_data import config_file
from schemas.yaml_source import YamlSource, read_yaml, validate

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



# The protocol file as typed models: what each setting must be is declared here once; errors name the file,
# line and key path (schemas/yaml_source.py). Unknown keys are ignored, as before (a site's protocol file may
# carry notes of its own).
class _Section(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _share_between(low: float, high: float) -> AfterValidator:
    def check(value: float) -> float:
        if not low < value < high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value
    return AfterValidator(check)


_Share = Annotated[float, _share_between(0, 1)]


class _Plausibility(_Section):
    max_rate_mg_h: float


class _Titration(_Section):
    first_infusion_max_rate_mg_h: float
    max_rate_mg_h: float


class _Session(_Section):
    planned_hours: float
    tolerance_hours: float


class _Phases(_Section):
    induction_infusions: int


class _Response(_Section):
    responder_reduction: float
    substantial_reduction: float


class ProtocolFile(_Section):
    """The limits part of a protocol file (everything but `metrics:`)."""

    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)
    name: str
    version: int
    plausibility: _Plausibility
    titration: _Titration
    session: _Session
    phases: _Phases
    response: _Response

    @model_validator(mode="after")
    def _limits_in_order(self) -> ProtocolFile:
        if not 0 < self.titration.first_infusion_max_rate_mg_h <= self.titration.max_rate_mg_h \
                <= self.plausibility.max_rate_mg_h:
            raise ValueError("rates must satisfy 0 < first-infusion maximum ≤ maximum ≤ plausibility limit")
        if not 0 < self.response.responder_reduction <= self.response.substantial_reduction < 1:
            raise ValueError("response thresholds must satisfy 0 < responder ≤ substantial < 1")
        return self


class _Interruption(_Section):
    follow_up_days: int = Field(ge=0)
    return_to_baseline_margin_nprs: int


class _PrimaryAssessment(_Section):
    # Infusion 1's pre-infusion NPRS is the baseline: the endpoint must come after a dose.
    pre_infusion_number: int = Field(ge=2)
    follow_up_target_day: int
    follow_up_window_days: int = Field(ge=0)

    @model_validator(mode="after")
    def _window_after_the_first_day(self) -> _PrimaryAssessment:
        if self.follow_up_target_day - self.follow_up_window_days < 1:
            raise ValueError("follow_up_target_day − follow_up_window_days must be ≥ 1 (after infusion 1's day)")
        return self


class _BaselineBands(_Section):
    moderate_from: int
    severe_from: int

    @model_validator(mode="after")
    def _bands_in_order(self) -> _BaselineBands:
        if not 0 < self.moderate_from < self.severe_from <= 10:
            raise ValueError("baseline_nprs_bands must satisfy 0 < moderate_from < severe_from ≤ 10")
        return self


class _SampleSizeAdequacy(_Section):
    shrinkage: _Share
    nagelkerke_r2: _Share


class _Predictors(_Section):
    min_patients_per_level: int = Field(ge=1)
    min_events_per_parameter: float
    reference_levels: dict[str, Any] | None = None
    sample_size_adequacy: _SampleSizeAdequacy


class _StudyPlanning(_Section):
    alpha: _Share
    power: list[_Share] = Field(min_length=1)
    benchmark_responder_rate: _Share
    comparator_responder_rate: _Share
    comparator_mean_nprs_change: float
    planned_patients_per_site: int = Field(ge=1)
    single_arm_alpha_one_sided: Annotated[float, _share_between(0, 0.5)]


class MetricsSection(_Section):
    """The `metrics:` section of a protocol file."""

    durable_relief_days: int = Field(ge=0)
    interruption: _Interruption
    primary_assessment: _PrimaryAssessment
    baseline_nprs_bands: _BaselineBands
    predictors: _Predictors
    study_planning: _StudyPlanning


def _read(path: Path) -> YamlSource:
    return read_yaml(path, "protocol file", ProtocolError)


def load_protocol(path: Path | str | None = None) -> Protocol:
    """Read and check a protocol file; the study's protocol when no path is given."""
    path = Path(path) if path else DEFAULT_PROTOCOL_FILE
    source = _read(path)
    if not isinstance(source.data, dict):
        raise ProtocolError(f"protocol file {path}: expected the sections of {DEFAULT_PROTOCOL_FILE.name}")
    checked = validate(ProtocolFile, source, "protocol file", ProtocolError,
                       hint=f"compare with {DEFAULT_PROTOCOL_FILE}")
    return Protocol(
        name=checked.name,
        version=checked.version,
        plausible_max_rate_mg_h=checked.plausibility.max_rate_mg_h,
        first_infusion_max_rate_mg_h=checked.titration.first_infusion_max_rate_mg_h,
        max_rate_mg_h=checked.titration.max_rate_mg_h,
        planned_session_hours=checked.session.planned_hours,
        session_tolerance_hours=checked.session.tolerance_hours,
        induction_infusions=checked.phases.induction_infusions,
        responder_reduction=checked.response.responder_reduction,
        substantial_reduction=checked.response.substantial_reduction,
    )


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


def _with_defaults(section: dict, path: Path) -> dict:
    """A protocol file written before some metrics settings existed takes the default file's: the primary
    assessment, and the study-planning settings (reference levels, sample-size adequacy, one-sided α)."""
    if path == DEFAULT_PROTOCOL_FILE:
        return section
    default = _read(DEFAULT_PROTOCOL_FILE).data["metrics"]
    section = dict(section)
    if section.get("primary_assessment") is None:
        section["primary_assessment"] = default["primary_assessment"]
    predictors, planning = section.get("predictors"), section.get("study_planning")
    if isinstance(predictors, dict) and isinstance(planning, dict) and not (
        "reference_levels" in predictors and "sample_size_adequacy" in predictors
        and "single_arm_alpha_one_sided" in planning
    ):
        section["predictors"] = {**default["predictors"], **predictors}
        section["study_planning"] = {**default["study_planning"], **planning}
    return section


def load_metric_settings(path: Path | str | None = None) -> MetricSettings:
    """The `metrics:` section of a protocol file (the default file's when that file has none)."""
    path = Path(path) if path else DEFAULT_PROTOCOL_FILE
    source = _read(path)
    section = source.data.get("metrics") if isinstance(source.data, dict) else None
    if section is None and path != DEFAULT_PROTOCOL_FILE:
        # A site protocol written before the metrics existed: summarise it the registry's default way.
        return load_metric_settings(DEFAULT_PROTOCOL_FILE)
    if not isinstance(section, dict):
        raise ProtocolError(f"protocol file {path} lacks the `metrics:` section; compare with {DEFAULT_PROTOCOL_FILE}")
    checked = validate(MetricsSection, source, "protocol file", ProtocolError, data=_with_defaults(section, path),
                       prefix=("metrics",), hint=f"compare with the `metrics:` section of {DEFAULT_PROTOCOL_FILE}")
    predictors, planning, primary = checked.predictors, checked.study_planning, checked.primary_assessment
    return MetricSettings(
        durable_relief_days=checked.durable_relief_days,
        interruption_follow_up_days=checked.interruption.follow_up_days,
        return_to_baseline_margin_nprs=checked.interruption.return_to_baseline_margin_nprs,
        moderate_baseline_nprs_from=checked.baseline_nprs_bands.moderate_from,
        severe_baseline_nprs_from=checked.baseline_nprs_bands.severe_from,
        predictor_min_patients_per_level=predictors.min_patients_per_level,
        predictor_min_events_per_parameter=predictors.min_events_per_parameter,
        planning_alpha=planning.alpha,
        planning_powers=tuple(planning.power),
        benchmark_responder_rate=planning.benchmark_responder_rate,
        comparator_responder_rate=planning.comparator_responder_rate,
        comparator_mean_nprs_change=planning.comparator_mean_nprs_change,
        planned_patients_per_site=planning.planned_patients_per_site,
        primary_pre_infusion_number=primary.pre_infusion_number,
        primary_follow_up_target_day=primary.follow_up_target_day,
        primary_follow_up_window_days=primary.follow_up_window_days,
        predictor_reference_levels={
            str(factor): str(level).lower() if isinstance(level, bool) else str(level)
            for factor, level in (predictors.reference_levels or {}).items() if level is not None
        },
        riley_shrinkage=predictors.sample_size_adequacy.shrinkage,
        riley_nagelkerke_r2=predictors.sample_size_adequacy.nagelkerke_r2,
        single_arm_alpha_one_sided=planning.single_arm_alpha_one_sided,
    )
