"""The treatment protocol's limits, loaded from one YAML file (`config/protocol.yaml` by default)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

DEFAULT_PROTOCOL_FILE = Path(__file__).resolve().parent.parent / "config" / "protocol.yaml"


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


def load_protocol(path: Path | str | None = None) -> Protocol:
    """Read and check a protocol file; the study's protocol when no path is given."""
    path = Path(path) if path else DEFAULT_PROTOCOL_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ProtocolError(f"protocol file {path} does not exist") from exc
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
    if not (0 < protocol.first_infusion_max_rate_mg_h <= protocol.max_rate_mg_h <= protocol.plausible_max_rate_mg_h):
        raise ProtocolError(
            f"protocol file {path}: rates must satisfy 0 < first-infusion maximum ≤ maximum ≤ plausibility limit"
        )
    if not 0 < protocol.responder_reduction <= protocol.substantial_reduction < 1:
        raise ProtocolError(f"protocol file {path}: response thresholds must satisfy 0 < responder ≤ substantial < 1")
    return protocol
