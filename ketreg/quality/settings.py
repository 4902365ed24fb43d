"""The quality settings file (`config/quality.yaml`): outcome-completeness thresholds and the Dagster URL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ketreg import environment
from ketreg.package_data import config_file
from schemas.yaml_source import read_yaml, validate

DEFAULT_QUALITY_FILE = config_file("quality.yaml")


class QualitySettingsError(ValueError):
    """The quality settings file is missing a setting or holds an impossible one."""


@dataclass(frozen=True)
class QualitySettings:
    # table → column → share of rows that must carry a value
    outcome_completeness: dict[str, dict[str, float]]
    dagster_url: str


# Which share of a table's rows must carry each outcome column: a share of rows, from 0 to 1.
_Share = Annotated[float, Field(ge=0, le=1)]


class QualityFile(BaseModel):
    """`config/quality.yaml` as a typed model (keys other than these are ignored, as before)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    outcome_completeness: dict[str, dict[str, _Share]] | None = None
    dagster_url: str | None = None


def load_quality_settings(path: Path | str | None = None) -> QualitySettings:
    """Read and check the quality settings (the registry's default file when no path is given)."""
    path = Path(path) if path else DEFAULT_QUALITY_FILE
    source = read_yaml(path, "quality settings file", QualitySettingsError)
    checked = validate(QualityFile, source, "quality settings file", QualitySettingsError, data=source.data or {},
                       hint="outcome_completeness holds shares between 0 and 1, per table and column")
    return QualitySettings(
        outcome_completeness=checked.outcome_completeness or {},
        # Where this registry's Dagster UI runs: KETREG_DAGSTER_URL (a deployment's own address) over the file;
        # empty means no UI to link to, and the dashboard shows no Dagster links.
        dagster_url=(environment.value(environment.DAGSTER_URL, checked.dagster_url) or "").strip().rstrip("/"),
    )
