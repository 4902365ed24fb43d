"""The privacy settings file (`config/privacy.yaml`): the smallest count shared figures may show."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from ketreg.package_data import config_file

DEFAULT_PRIVACY_FILE = config_file("privacy.yaml")
DEFAULT_SMALL_CELL_COUNT = 5


class PrivacySettingsError(ValueError):
    """The privacy settings file holds an impossible setting."""


@dataclass(frozen=True)
class PrivacySettings:
    # Counts from 1 to small_cell_count - 1 are suppressed in shared figures; 1 disables suppression.
    small_cell_count: int


def load_privacy_settings(path: Path | str | None = None) -> PrivacySettings:
    """Read and check the privacy settings (the registry's default file when no path is given)."""
    path = Path(path) if path else DEFAULT_PRIVACY_FILE
    raw = (yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None) or {}
    value = raw.get("small_cell_count", DEFAULT_SMALL_CELL_COUNT)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PrivacySettingsError(
            f"{path}: small_cell_count must be a whole number ≥ 1 (1 disables it), got {value!r}"
        )
    return PrivacySettings(small_cell_count=value)
