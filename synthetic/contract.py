"""The canonical site-export contract v1 as the generator writes it: files, column order, code lists.

Everything is read from the pipeline's schemas, the single source of truth: generated files still test
those schemas, because what is generated (and which faults) is decided here, not there.
"""

from schemas import enums
from schemas.tables import CONTRACT_VERSION as _CONTRACT_VERSION
from schemas.tables import TABLES as _TABLES

CONTRACT_VERSION = int(_CONTRACT_VERSION)

# Column order of every file (the contract fixes it; a file is read by header, but people read it too).
COLUMNS: dict[str, tuple[str, ...]] = {table.name: table.columns for table in _TABLES}
TABLES: tuple[str, ...] = tuple(COLUMNS)

SEXES = enums.SEX
CANCER_TYPES = enums.CANCER_TYPES
CNP_ETIOLOGIES = enums.CNP_ETIOLOGIES
STOP_REASONS = enums.STOP_REASONS
TIMEPOINTS = enums.TIMEPOINTS
AE_CATEGORIES = enums.AE_CATEGORIES
# Every term belongs to one body-system category; a site may leave the category empty (it is derived).
AE_TERM_CATEGORY: dict[str, str] = enums.AE_TERM_CATEGORY
AE_TERMS: tuple[str, ...] = enums.AE_TERMS
AE_ACTIONS = enums.AE_ACTIONS
AE_OUTCOMES = enums.AE_OUTCOMES
DISPOSITION_STATUSES = enums.DISPOSITION_STATUSES
DISPOSITION_REASONS = enums.DISPOSITION_REASONS


def file_name(table: str) -> str:
    """The file a table is written to inside an export folder."""
    return f"{table}.csv"
