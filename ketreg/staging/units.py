"""Per-export work units: each export read and validated on its own (no database touched) into an immutable,
content-addressed folder of Parquet files under the working area; then one step loads the units into the
working store. Units of different exports run in parallel processes (pipelines/staging_fanout.py); no two
processes ever write one DuckDB file, and the result equals the serial path's (tests/test_staging_units.py).

The reading and validation are staging's own (`validate_batch` with a batch of one export), not a copy."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import duckdb
import polars as pl

from ketreg.landing.discovery import LandingExport
from ketreg.staging.stage import (
    StagedBatch,
    StagingReport,
    export_fingerprint,
    staged_fingerprints,
    validate_batch,
    validation_fingerprint,
    write_staged,
)
from schemas.protocol import Protocol
from schemas.tables import TABLES

UNITS_FOLDER = "staging_units"
_REPORT = "report.json"


def unit_id(export: LandingExport, rules_fingerprint: str) -> str:
    """The unit's address: the export's name, its files' content and the rules. Same input, same unit."""
    return hashlib.sha256(
        f"{export.label}:{export_fingerprint(export, rules_fingerprint)}".encode()
    ).hexdigest()[:32]


def stage_unit(export: LandingExport, protocol: Protocol, units_dir: Path, rules_fingerprint: str = "") -> Path:
    """Validate one export into `units_dir/<unit_id>/` (one Parquet file per staging table, and the export's
    report), written aside and renamed into place. An existing unit is immutable and reused as it is."""
    rules = rules_fingerprint or validation_fingerprint(protocol)
    final = units_dir / unit_id(export, rules)
    if final.is_dir():
        return final
    report = StagingReport()
    staged = validate_batch([export], protocol, rules, report)
    temporary = units_dir / f".{final.name}.{os.getpid()}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    for name, frame in staged.frames().items():
        frame.write_parquet(temporary / f"{name}.parquet")
    (temporary / _REPORT).write_text(json.dumps(report.__dict__, sort_keys=True), encoding="utf-8")
    try:
        os.rename(temporary, final)
    except OSError:
        if not final.is_dir():  # not another process that wrote the same unit first
            raise
        shutil.rmtree(temporary, ignore_errors=True)
    return final


def read_unit(unit: Path) -> tuple[StagedBatch, StagingReport]:
    """The frames and report a unit holds."""
    frames = {path.stem: pl.read_parquet(path) for path in unit.glob("*.parquet")}
    staged = StagedBatch(
        accepted={table.name: frames[table.name] for table in TABLES},
        quarantine=frames["quarantine"], file_counts=frames["file_counts"], exports=frames["exports"],
    )
    return staged, StagingReport(**json.loads((unit / _REPORT).read_text(encoding="utf-8")))


def load_units(
    con: duckdb.DuckDBPyConnection, units: list[tuple[LandingExport, Path]], protocol: Protocol
) -> StagingReport:
    """Bring staging in line with the landing folder from the exports' units, as `stage_landing` does from the
    files: exports no longer in the landing dropped, new or changed ones replaced, unchanged ones left alone;
    in one transaction."""
    rules = validation_fingerprint(protocol)
    staged = staged_fingerprints(con)
    report = StagingReport()
    in_landing = {(e.site_id, e.export_id) for e, _ in units}
    gone = sorted(set(staged) - in_landing)
    report.removed = [f"{site}/{export}" for site, export in gone]
    keys, batches = list(gone), []
    for export, unit in units:
        if staged.get((export.site_id, export.export_id)) == export_fingerprint(export, rules):
            report.unchanged.append(export.label)
            continue
        batch, unit_report = read_unit(unit)
        keys.append((export.site_id, export.export_id))
        batches.append(batch)
        report.staged += unit_report.staged
        report.rejected.update(unit_report.rejected)
        for table, rows in unit_report.rows_read.items():
            report.rows_read[table] = report.rows_read.get(table, 0) + rows
        for table, rows in unit_report.rows_quarantined.items():
            report.rows_quarantined[table] = report.rows_quarantined.get(table, 0) + rows
    write_staged(con, keys, batches)
    return report
