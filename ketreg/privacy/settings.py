"""The privacy settings file (`config/privacy.yaml`): the smallest count shared figures may show."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from ketreg.package_data import config_file
from schemas.yaml_source import read_yaml, validate

DEFAULT_PRIVACY_FILE = config_file("privacy.yaml")
DEFAULT_SMALL_CELL_COUNT = 5


class PrivacySettingsError(ValueError):
    """The privacy settings file holds an impossible setting."""


@dataclass(frozen=True)
class PrivacySettings:
    # Counts from 1 to small_cell_count - 1 are suppressed in shared figures; 1 disables suppression.
    small_cell_count: int


class PrivacyFile(BaseModel):
    """`config/privacy.yaml` as a typed model. StrictInt: `true` or `2.5` is not a count."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    small_cell_count: StrictInt = Field(default=DEFAULT_SMALL_CELL_COUNT, ge=1)


def load_privacy_settings(path: Path | str | None = None) -> PrivacySettings:
    """Read and check the privacy settings (the registry's default file when no path is given; none at all
    means the default count)."""
    path = Path(path) if path else DEFAULT_PRIVACY_FILE
    if not path.is_file():
        return PrivacySettings(small_cell_count=DEFAULT_SMALL_CELL_COUNT)
    source = read_yaml(path, "privacy settings file", PrivacySettingsError)
    checked = validate(PrivacyFile, source, "privacy settings file", PrivacySettingsError, data=source.data or {},
                       hint="small_cell_count is a whole number ≥ 1 (1 disables suppression)")
    return PrivacySettings(small_cell_count=checked.small_cell_count)
