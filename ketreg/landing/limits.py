"""Bounds on the work one export may cost (`config/limits.yaml`, the single source of these numbers).

The landing folder is written by the sites and untrusted: every reader checks a file against these limits
before parsing it, and a file above one rejects its own export only (`LimitExceeded`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from ketreg.package_data import config_file

DEFAULT_LIMITS_FILE = config_file("limits.yaml")
LIMITS_VARIABLE = "KETREG_LIMITS_FILE"


class LimitsError(ValueError):
    """The limits file is missing a limit or holds an impossible one (a usage error, exit 2)."""


class LimitExceeded(ValueError):
    """A file of an export is above one of the limits; its export is rejected with this message."""


@dataclass(frozen=True)
class LandingLimits:
    """The limits of `config/limits.yaml`; every field is documented there."""

    max_file_bytes: int
    max_rows: int
    max_header_columns: int
    max_line_bytes: int
    max_cell_chars: int
    max_workbook_uncompressed_bytes: int
    max_workbook_compression_ratio: int
    max_mapping_bytes: int
    source: str = "config/limits.yaml"

    def exceeded(self, where: str, what: str, found: int | str | None, name: str) -> LimitExceeded:
        """The rejection for a file above limit `name` (`found`: how far it went, when it was measured)."""
        shown = "" if found is None else (f" ({found:,})" if isinstance(found, int) else f" ({found})")
        return LimitExceeded(
            f"{where}: {what}{shown} is above the registry's limit of {getattr(self, name):,} ({name} in "
            f"{self.source}); check the export, or ask the registry team to raise the limit"
        )


def load_limits(path: Path | str | None = None) -> LandingLimits:
    """The limits of `path`, else of $KETREG_LIMITS_FILE, else `config/limits.yaml`."""
    path = Path(path or os.environ.get(LIMITS_VARIABLE) or DEFAULT_LIMITS_FILE)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LimitsError(f"limits file {path} cannot be read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise LimitsError(f"limits file {path} is not readable YAML") from exc
    if not isinstance(raw, dict):
        raise LimitsError(f"limits file {path}: expected one limit per line, as in {DEFAULT_LIMITS_FILE.name}")
    values: dict[str, int] = {}
    for spec in fields(LandingLimits):
        if spec.name == "source":
            continue
        value = raw.get(spec.name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise LimitsError(
                f"limits file {path}: {spec.name} must be a whole number above 0 (got {value!r:.40}); "
                f"compare with {DEFAULT_LIMITS_FILE}"
            )
        values[spec.name] = value
    unknown = sorted(str(k) for k in raw if k not in values)
    if unknown:
        raise LimitsError(f"limits file {path}: unknown setting(s) {', '.join(unknown)[:200]}")
    label = "config/limits.yaml" if path.resolve() == DEFAULT_LIMITS_FILE else str(path)
    return LandingLimits(**values, source=label)
