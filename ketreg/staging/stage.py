"""Stage exports: read each usable export's files, validate them in reference order, and replace the
export's staged rows, quarantine and counts inside one transaction per batch of exports."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from ketreg.landing.discovery import LandingExport
from ketreg.landing.exports import read_export
from ketreg.landing.reader import UnreadableFile
from ketreg.package_data import package_folder
from ketreg.warehouse.transaction import transaction
from schemas.parsing import concat_failures
from schemas.protocol import Protocol
from schemas.tables import TABLES, TABLES_BY_NAME, TableContract
from schemas.validation import ParentRows, TableValidation, validate_table

# Exports are validated in batches: large enough that per-call overhead vanishes, small enough that the
# batch's frames (text, typed, accepted, quarantined: about ten times the CSV bytes; 96 MB of CSV peaked at
# 1.2 GB RSS, 24 MB at 0.7 GB) leave room in the 1.5 GB budget for DuckDB's own memory limit.
BATCH_BYTES = 32 * 1024 * 1024

_VALIDATION_SOURCES = [
    *sorted(package_folder("schemas").glob("*.py")),
    *(package_folder("ketreg.landing") / name
      for name in ("reader.py", "mapping.py", "formats.py", "apply_mapping.py")),
]


def validation_fingerprint(protocol: Protocol) -> str:
    """Changes whenever the rules change (contract code or protocol), so every export is re-validated."""
    digest = hashlib.sha256(protocol.fingerprint.encode())
    for source in _VALIDATION_SOURCES:
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def export_fingerprint(export: LandingExport, rules_fingerprint: str) -> str:
    return f"{export.content_sha256[:32]}:{rules_fingerprint}"


@dataclass
class StagingReport:
    staged: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    rows_read: dict[str, int] = field(default_factory=dict)
    rows_quarantined: dict[str, int] = field(default_factory=dict)

    def followed_by(self, later: StagingReport) -> StagingReport:
        """This pass and a later one over the same landing as one report: what the later pass found unchanged
        because this one staged it counts as staged."""
        done = {*self.staged, *self.rejected}
        combined = StagingReport(
            staged=[*self.staged, *later.staged],
            unchanged=[label for label in later.unchanged if label not in done],
            removed=[*self.removed, *later.removed],
            rejected={**self.rejected, **later.rejected},
        )
        for counts in ("rows_read", "rows_quarantined"):
            for report in (self, later):
                for table, rows in getattr(report, counts).items():
                    getattr(combined, counts)[table] = getattr(combined, counts).get(table, 0) + rows
        return combined


def _referenced_columns(parent: TableContract) -> tuple[str, ...]:
    return tuple(
        sorted({
            column
            for child in TABLES
            for ref in child.references
            if ref.parent_table == parent.name
            for column in ref.parent_columns
        })
    )


def _empty_raw(table: TableContract) -> pl.DataFrame:
    schema = {"site_id": pl.String, "export_id": pl.String, "source_line": pl.Int64}
    schema.update({column: pl.String for column in table.columns})
    return pl.DataFrame(schema=schema)


def validate_tables(
    raw_by_table: dict[str, list[pl.DataFrame]], extra_by_table: dict[str, list[pl.DataFrame]], protocol: Protocol
) -> Iterator[tuple[TableContract, pl.DataFrame, TableValidation]]:
    """Validate the files of one or more exports in reference order (parents before children).

    `extra_by_table` holds failures found while reading (a mapped site's conversions), rows counted in the
    concatenation of that table's frames. Shared by staging and `ketreg check-export`."""
    parents: dict[str, ParentRows] = {}
    for table in TABLES:
        raw = pl.concat(raw_by_table[table.name]) if raw_by_table.get(table.name) else _empty_raw(table)
        extra = concat_failures(extra_by_table.get(table.name, []))
        result = validate_table(raw, table, protocol, parents, extra)
        referenced = _referenced_columns(table)
        if referenced and table.record_id:
            parents[table.name] = result.parent_rows(table.record_id, referenced)
        yield table, raw, result


def export_bytes(export: LandingExport) -> int:
    """The size of an export's files: the measure of its work and memory when staged."""
    return sum(f.size_bytes for f in export.files.values())


def export_batches(exports: list[LandingExport]) -> Iterator[list[LandingExport]]:
    """Consecutive exports in batches of about BATCH_BYTES of files (the last one smaller)."""
    batch: list[LandingExport] = []
    size = 0
    for export in exports:
        batch.append(export)
        size += export_bytes(export)
        if size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _counts(raw: pl.DataFrame, result: TableValidation, table: TableContract) -> pl.DataFrame:
    key = ["site_id", "export_id"]
    read = raw.group_by(key).agg(pl.len().cast(pl.Int64).alias("rows_read"))
    quarantined = result.quarantined.group_by(key).agg(pl.len().cast(pl.Int64).alias("rows_quarantined"))
    # Every row read is either accepted or quarantined (validate_table splits them), so the accepted count is
    # the difference: no third pass over the largest frame.
    return (
        read.join(quarantined, on=key, how="left")
        .with_columns(pl.col("rows_quarantined").fill_null(0))
        .select(*key, "rows_read", (pl.col("rows_read") - pl.col("rows_quarantined")).alias("rows_accepted"),
                "rows_quarantined", pl.lit(table.file_name).alias("file_name"))
    )


def _insert(con: duckdb.DuckDBPyConnection, target: str, frame: pl.DataFrame) -> None:
    if frame.height == 0:
        return
    con.register("_frame", frame)
    try:
        con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM _frame")
    finally:
        con.unregister("_frame")


def _delete_exports(con: duckdb.DuckDBPyConnection, keys: list[tuple[str, str]], tables: list[str]) -> None:
    if not keys:
        return
    con.register("_keys", pl.DataFrame(keys, schema=["site_id", "export_id"], orient="row"))
    try:
        for name in tables:
            con.execute(
                f"DELETE FROM staging.{name} WHERE (site_id, export_id) IN (SELECT (site_id, export_id) FROM _keys)"
            )
    finally:
        con.unregister("_keys")


_ALL_STAGING = [t.name for t in TABLES] + ["quarantine", "file_counts", "exports"]


@dataclass
class StagedBatch:
    """What staging writes for a batch of exports: accepted rows per table, quarantine, file counts, statuses."""

    accepted: dict[str, pl.DataFrame]
    quarantine: pl.DataFrame
    file_counts: pl.DataFrame
    exports: pl.DataFrame

    def frames(self) -> dict[str, pl.DataFrame]:
        """Every frame by its staging table's name."""
        return {**self.accepted, "quarantine": self.quarantine, "file_counts": self.file_counts,
                "exports": self.exports}


def validate_batch(
    batch: list[LandingExport], protocol: Protocol, rules_fingerprint: str, report: StagingReport
) -> StagedBatch:
    """Read and validate a batch of exports (one export is a batch of one): the frames staging stores.
    Touches no database, so per-export work units run it in parallel processes (ketreg/staging/units.py)."""
    raw_by_table: dict[str, list[pl.DataFrame]] = {t.name: [] for t in TABLES}
    # Conversion failures of mapped sites, with rows counted in the concatenated frame of the batch.
    extra_by_table: dict[str, list[pl.DataFrame]] = {t.name: [] for t in TABLES}
    rows_so_far: dict[str, int] = dict.fromkeys(raw_by_table, 0)
    statuses: list[dict] = []
    for export in batch:
        status: dict[str, Any] = {  # one row of staging.exports
            "site_id": export.site_id,
            "export_id": export.export_id,
            "fingerprint": export_fingerprint(export, rules_fingerprint),
            "status": "accepted",
            "rejection_reason": export.rejection,
            "notices": export.notices,
        }
        read = None
        if export.rejection is None:
            try:
                read = read_export(export)
            except UnreadableFile as exc:  # read_export turns every kind of read error into this
                status["rejection_reason"] = str(exc)
        if read is None:
            status["status"] = "rejected"
            report.rejected[export.label] = status["rejection_reason"]
        else:
            status["notices"] = [*export.notices, *read.notices]
            for name, frame in read.frames.items():
                failures = read.failures.get(name)
                if failures is not None and failures.height:
                    extra_by_table[name].append(failures.with_columns(pl.col("row") + rows_so_far[name]))
                raw_by_table[name].append(frame)
                rows_so_far[name] += frame.height
            report.staged.append(export.label)
        statuses.append(status)

    accepted: dict[str, pl.DataFrame] = {}
    quarantined: list[pl.DataFrame] = []
    counts: list[pl.DataFrame] = []
    for table, raw, result in validate_tables(raw_by_table, extra_by_table, protocol):
        accepted[table.name] = result.accepted
        quarantined.append(result.quarantined)
        counts.append(_counts(raw, result, table))
        report.rows_read[table.name] = report.rows_read.get(table.name, 0) + raw.height
        report.rows_quarantined[table.name] = report.rows_quarantined.get(table.name, 0) + result.quarantined.height

    file_meta = pl.DataFrame(
        [
            {
                "site_id": e.site_id,
                "export_id": e.export_id,
                "file_name": TABLES_BY_NAME[f.table].file_name,
                "file_sha256": f.sha256,
                "identifier_columns_dropped": f.identifier_columns,
                "ignored_columns": f.ignored_columns,
            }
            for e in batch
            for f in e.files.values()
        ],
        schema={
            "site_id": pl.String, "export_id": pl.String, "file_name": pl.String, "file_sha256": pl.String,
            "identifier_columns_dropped": pl.List(pl.String), "ignored_columns": pl.List(pl.String),
        },
    )
    # Starting from the files (not the rows) keeps a file with no data rows in the counts, as 0 read.
    file_counts = file_meta.join(pl.concat(counts), on=["site_id", "export_id", "file_name"], how="left").with_columns(
        pl.col("rows_read", "rows_accepted", "rows_quarantined").fill_null(0)
    )

    return StagedBatch(
        accepted=accepted,
        quarantine=pl.concat(quarantined),
        file_counts=file_counts,
        exports=pl.DataFrame(statuses, schema_overrides={"notices": pl.List(pl.String)}),
    )


def write_staged(
    con: duckdb.DuckDBPyConnection, keys: list[tuple[str, str]], staged: Iterable[StagedBatch] = (),
    parquet_units: Iterable[Path] = (),
) -> None:
    """Replace the staged rows of the exports `keys` (site_id, export_id) with `staged` and/or the rows of
    `parquet_units` (folders holding `<staging table>.parquet` for every staging table: the work units of
    ketreg/staging/units.py, read by DuckDB without passing through Python), in one transaction."""
    with transaction(con):
        _delete_exports(con, keys, _ALL_STAGING)
        for batch in staged:
            for name, frame in batch.accepted.items():
                _insert(con, f"staging.{name}", frame)
            _insert(con, "staging.quarantine", batch.quarantine)
            _insert(con, "staging.file_counts", batch.file_counts)
            _insert(con, "staging.exports", batch.exports)
        for unit in parquet_units:
            for name in _ALL_STAGING:
                con.execute(f"INSERT INTO staging.{name} BY NAME SELECT * FROM read_parquet(?)",
                            [str(unit / f"{name}.parquet")])


def _stage_batch(
    con: duckdb.DuckDBPyConnection,
    batch: list[LandingExport],
    protocol: Protocol,
    rules_fingerprint: str,
    report: StagingReport,
) -> None:
    staged = validate_batch(batch, protocol, rules_fingerprint, report)
    write_staged(con, [(e.site_id, e.export_id) for e in batch], [staged])


def staged_fingerprints(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], str]:
    """`{(site_id, export_id): fingerprint}` of every export staging holds: what a run compares the landing with."""
    return {
        (site, export): fingerprint
        for site, export, fingerprint in con.execute(
            "SELECT site_id, export_id, fingerprint FROM staging.exports"
        ).fetchall()
    }


def stage_landing(
    con: duckdb.DuckDBPyConnection, exports: list[LandingExport], protocol: Protocol
) -> StagingReport:
    """Bring staging in line with the landing folder: (re)stage new or changed exports, drop exports that
    are no longer there, leave unchanged ones alone."""
    rules = validation_fingerprint(protocol)
    staged = staged_fingerprints(con)
    report = StagingReport()
    in_landing = {(e.site_id, e.export_id) for e in exports}
    gone = sorted(set(staged) - in_landing)
    if gone:
        with transaction(con):
            _delete_exports(con, gone, _ALL_STAGING)
        report.removed = [f"{site}/{export}" for site, export in gone]
    to_stage = []
    for export in exports:
        if staged.get((export.site_id, export.export_id)) == export_fingerprint(export, rules):
            report.unchanged.append(export.label)
        else:
            to_stage.append(export)
    for batch in export_batches(to_stage):
        _stage_batch(con, batch, protocol, rules, report)
    return report
