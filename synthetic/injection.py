"""Choose the rows of an export that receive a fault, hand out the kinds in turn, and apply them."""

from dataclasses import dataclass

import numpy as np
import polars as pl

from .contract import TABLES
from .faults import DUPLICATE_ID, FAULT_KINDS, FaultContext, Values, duplicated_rows
from .writer import as_text

HEADER_LINE = 1
FIRST_DATA_LINE = 2


@dataclass(frozen=True, slots=True)
class FileFault:
    """One injected fault: the file, its 1-based line (the header is line 1), the kind and the column."""

    table: str
    source_line: int
    kind: str
    column: str
    duplicates_line: int | None = None  # for a duplicate id: the earlier line whose id it repeats


class FaultCycle:
    """Hands out the fault kinds of each file in turn, separately per export.

    Counting per export makes every kind appear in the earlier and in the newest exports once there are
    enough rows; the earlier exports start half-way round, so small runs still cover every kind overall.
    """

    def __init__(self) -> None:
        self._next: dict[tuple[int, str], int] = {}

    def take(self, export_index: int, table: str, count: int) -> np.ndarray:
        """The next `count` kinds (indices into FAULT_KINDS[table]) for one file of one export."""
        kinds = len(FAULT_KINDS[table])
        start = self._next.get((export_index, table), 0 if export_index else kinds // 2)
        self._next[(export_index, table)] = start + count
        return (start + np.arange(count)) % kinds


def _choose_rows(rng: np.random.Generator, rows: int, error_rate: float) -> np.ndarray:
    # Rounding at random keeps the expected share at `error_rate` with little spread, so small files still
    # get their share. Row 0 stays intact: a duplicate id always has an earlier row to copy.
    expected = error_rate * max(rows - 1, 0)
    count = min(int(expected) + int(rng.random() < expected - int(expected)), max(rows - 1, 0))
    return np.sort(rng.choice(np.arange(1, rows), count, replace=False)) if count else np.zeros(0, np.int64)


def _apply(frame: pl.DataFrame, updates: dict[str, list[tuple[np.ndarray, Values]]]) -> pl.DataFrame:
    columns = []
    for column, parts in updates.items():
        text = as_text(frame[column]) if frame[column].dtype != pl.String else frame[column].clone()
        rows = np.concatenate([part_rows for part_rows, _ in parts])
        values = pl.Series([value for _, part_values in parts for value in part_values], dtype=pl.String)
        columns.append(text.scatter(rows, values).alias(column))
    return frame.with_columns(columns) if columns else frame


def _intact_ids(ids: pl.Series, intact: np.ndarray, faulty: np.ndarray) -> set[str]:
    """Ids on intact rows that no faulty row carries (a duplicate fault copies an intact row's id)."""
    return {i for i in ids.gather(intact).to_list() if i is not None} - set(ids.gather(faulty).to_list())


def inject_row_faults(
    tables: dict[str, pl.DataFrame],
    error_rate: float,
    rng: np.random.Generator,
    cycle: FaultCycle,
    export_index: int,
) -> tuple[dict[str, pl.DataFrame], list[FileFault]]:
    """Give about `error_rate` of the data rows of every file one fault each; return the files and faults."""
    tables = dict(tables)
    faults: list[FileFault] = []
    clean_patients: frozenset[str] = frozenset()
    clean_infusion_ids = clean_infusion_patients = np.zeros(0, dtype=object)
    for table in TABLES:
        frame = tables[table]
        rows = _choose_rows(rng, frame.height, error_rate)
        kinds = cycle.take(export_index, table, rows.size)
        intact = np.setdiff1d(np.arange(frame.height), rows, assume_unique=True)
        context = FaultContext(rng, intact, clean_patients, clean_infusion_ids, clean_infusion_patients)
        updates: dict[str, list[tuple[np.ndarray, Values]]] = {}
        for index, kind in enumerate(FAULT_KINDS[table]):
            chosen = rows[kinds == index]
            if not chosen.size:
                continue
            done, mutation = kind.mutate(frame, chosen, context)
            for column, values in mutation.items():
                updates.setdefault(column, []).append((done, values))
            originals = duplicated_rows(intact, done) if kind.kind == DUPLICATE_ID else [None] * done.size
            faults += [
                FileFault(
                    table,
                    int(row) + FIRST_DATA_LINE,
                    kind.kind,
                    kind.column,
                    None if original is None else int(original) + FIRST_DATA_LINE,
                )
                for row, original in zip(done, originals, strict=True)
            ]
        frame = tables[table] = _apply(frame, updates)

        # Later files aim references at rows known to be sound, so that a reference fault breaks only the
        # rule it names.
        if table == "patients":
            clean_patients = frozenset(_intact_ids(frame["patient_id"], intact, rows))
        elif table == "infusions":
            sound = _intact_ids(frame["infusion_id"], intact, rows)
            candidates = frame[intact].filter(
                pl.col("infusion_id").is_in(list(sound)) & pl.col("patient_id").is_in(list(clean_patients))
            )
            clean_infusion_ids = candidates["infusion_id"].to_numpy()
            clean_infusion_patients = candidates["patient_id"].to_numpy()
    faults.sort(key=lambda fault: (TABLES.index(fault.table), fault.source_line))
    return tables, faults


def drop_required_column(tables: dict[str, pl.DataFrame]) -> tuple[dict[str, pl.DataFrame], FileFault]:
    """Leave `max_rate_mg_h` out of infusions.csv: the pipeline must reject the whole export."""
    column = "max_rate_mg_h"
    tables = {**tables, "infusions": tables["infusions"].drop(column)}
    return tables, FileFault("infusions", HEADER_LINE, "missing_required_column", column)
