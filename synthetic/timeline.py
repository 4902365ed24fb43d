"""The fixed calendar of the synthetic registry.

Nothing here reads the wall clock: every date hangs on the calendar dates below, so a seed fixes every byte.
"""

from dataclasses import dataclass
from datetime import date

import numpy as np

# Patients start treatment in this window; the data end on DATA_END (the last day of the newest export).
FIRST_INFUSION_FROM = np.datetime64("2024-01-01", "D")
FIRST_INFUSION_TO = np.datetime64("2026-09-30", "D")
DATA_END = np.datetime64("2026-10-31", "D")

MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class Export:
    """One snapshot a site sends: everything that happened before `cutoff`, named by its cutoff date."""

    export_id: str
    cutoff: date


# Two snapshots per site, in time order: a site re-exports everything it holds each month.
EXPORTS: tuple[Export, ...] = (
    Export("2026-10-01", date(2026, 10, 1)),
    Export("2026-11-01", date(2026, 11, 1)),
)


def business_days(days: np.ndarray, roll: str = "forward") -> np.ndarray:
    """Move weekend days to the nearest working day (infusion suites and clinics work weekdays)."""
    return np.busday_offset(days.astype("datetime64[D]"), 0, roll=roll)


def at(days: np.ndarray, minute_of_day: np.ndarray) -> np.ndarray:
    """Timestamps as integer minutes since 1970-01-01, from a day and the minute of that day."""
    return days.astype("datetime64[D]").astype(np.int64) * MINUTES_PER_DAY + minute_of_day


def day_of(minutes: np.ndarray) -> np.ndarray:
    """The calendar day of timestamps given as minutes since 1970-01-01."""
    return (minutes // MINUTES_PER_DAY).astype("datetime64[D]")
