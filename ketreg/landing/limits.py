"""Bounds on the work one export may cost (`config/limits.yaml`, the single source of these numbers).

The landing folder is written by the sites and untrusted: every reader checks a file against these limits
before parsing it, and a file above one rejects its own export only (`LimitExceeded`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from ketreg import environment
from ketreg.package_data import config_file
from schemas.yaml_source import read_yaml, validate

DEFAULT_LIMITS_FILE = config_file("limits.yaml")
LIMITS_VARIABLE = environment.LIMITS_FILE


_Limit = Annotated[StrictInt, Field(gt=0)]  # a bool is not a limit: StrictInt refuses `true`


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


class LimitsFile(BaseModel):
    """`config/limits.yaml` as a typed model: every limit a whole number above 0, no unknown settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_file_bytes: _Limit
    max_rows: _Limit
    max_header_columns: _Limit
    max_line_bytes: _Limit
    max_cell_chars: _Limit
    max_workbook_uncompressed_bytes: _Limit
    max_workbook_compression_ratio: _Limit
    max_mapping_bytes: _Limit


def load_limits(path: Path | str | None = None) -> LandingLimits:
    """The limits of `path`, else of $KETREG_LIMITS_FILE, else `config/limits.yaml`."""
    path = Path(path or environment.value(LIMITS_VARIABLE) or DEFAULT_LIMITS_FILE)
    source = read_yaml(path, "limits file", LimitsError)
    if not isinstance(source.data, dict):
        raise LimitsError(f"limits file {path}: expected one limit per line, as in {DEFAULT_LIMITS_FILE.name}")
    checked = validate(LimitsFile, source, "limits file", LimitsError,
                       hint=f"every limit is a whole number above 0; compare with {DEFAULT_LIMITS_FILE}")
    label = "config/limits.yaml" if path.resolve() == DEFAULT_LIMITS_FILE.resolve() else str(path)
    return LandingLimits(**checked.model_dump(), source=label)
