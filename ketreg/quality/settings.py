"""The quality settings file (`config/quality.yaml`): outcome-completeness thresholds and the Dagster URL."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from ketreg.package_data import config_file

DEFAULT_QUALITY_FILE = config_file("quality.yaml")


class QualitySettingsError(ValueError):
    """The quality settings file is missing a setting or holds an impossible one."""


@dataclass(frozen=True)
class QualitySettings:
    # table → column → share of rows that must carry a value
    outcome_completeness: dict[str, dict[str, float]]
    dagster_url: str


def load_quality_settings(path: Path | str | None = None) -> QualitySettings:
    """Read and check the quality settings (the registry's default file when no path is given)."""
    path = Path(path) if path else DEFAULT_QUALITY_FILE
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    completeness = raw.get("outcome_completeness") or {}
    for table, columns in completeness.items():
        for column, share in columns.items():
            if not 0 <= float(share) <= 1:
                raise QualitySettingsError(
                    f"{path}: outcome_completeness.{table}.{column} must be a share between 0 and 1, got {share}"
                )
    return QualitySettings(
        outcome_completeness={t: {c: float(s) for c, s in cols.items()} for t, cols in completeness.items()},
        # Where this registry's Dagster UI runs: KETREG_DAGSTER_URL (a deployment's own address) over the file;
        # empty means no UI to link to, and the dashboard shows no Dagster links.
        dagster_url=os.environ.get("KETREG_DAGSTER_URL", str(raw.get("dagster_url") or "")).strip().rstrip("/"),
    )
