"""Staging in work units for parallel processes: the exports to (re)stage are split into shares of about equal
file bytes, one per worker; each worker reads and validates its share (no database touched) in batches of about
BATCH_BYTES, each batch written as an immutable, content-addressed folder of Parquet files (a unit) under the
working area; then one process loads the units into the working store in one transaction. No two processes
ever write one DuckDB file, and the staged rows equal the serial path's (tests/test_staging_units.py).

The reading and validation are staging's own (`validate_batch`, `export_batches`), not a copy. The units hold
staged rows (site patient ids among them), so they are private like the working store (0600 / 0700)."""

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
    export_batches,
    export_bytes,
    export_fingerprint,
    staged_fingerprints,
    validate_batch,
    validation_fingerprint,
    write_staged,
)
from ketreg.warehouse.file_modes import private_umask
from schemas.protocol import Protocol
from schemas.tables import TABLES

UNITS_FOLDER = "staging_units"
_REPORT = "report.json"


def exports_to_stage(
    exports: list[LandingExport], staged: dict[tuple[str, str], str], rules_fingerprint: str
) -> list[LandingExport]:
    """The exports whose files or rules differ from what staging holds (`staged_fingerprints`)."""
    return [e for e in exports if staged.get((e.site_id, e.export_id)) != export_fingerprint(e, rules_fingerprint)]


def plan_shares(exports: list[LandingExport], workers: int) -> list[list[LandingExport]]:
    """At most `workers` shares of about equal file bytes: the largest export goes to the lightest share, and
    so on down. Each share in label order; the same exports always give the same shares."""
    shares: list[list[LandingExport]] = [[] for _ in range(max(1, min(workers, len(exports))))]
    loads = [0] * len(shares)
    for export in sorted(exports, key=lambda e: (-export_bytes(e), e.label)):
        lightest = loads.index(min(loads))
        shares[lightest].append(export)
        loads[lightest] += export_bytes(export)
    return [sorted(share, key=lambda e: e.label) for share in shares if share]


def unit_id(batch: list[LandingExport], rules_fingerprint: str) -> str:
    """The unit's address: its exports' names, their files' content and the rules. Same input, same unit."""
    text = "\n".join(sorted(f"{e.label}:{export_fingerprint(e, rules_fingerprint)}" for e in batch))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def stage_unit(batch: list[LandingExport], protocol: Protocol, units_dir: Path, rules_fingerprint: str = "") -> Path:
    """Validate a batch of exports into `units_dir/<unit_id>/` (one Parquet file per staging table, and the
    batch's report), written aside and renamed into place. An existing unit is immutable and reused as it is."""
    rules = rules_fingerprint or validation_fingerprint(protocol)
    final = units_dir / unit_id(batch, rules)
    if final.is_dir():
        return final
    report = StagingReport()
    staged = validate_batch(batch, protocol, rules, report)
    temporary = units_dir / f".{final.name}.{os.getpid()}.tmp"
    with private_umask():
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


def stage_share(share: list[LandingExport], protocol: Protocol, units_dir: Path, rules_fingerprint: str) -> list[Path]:
    """One worker's share, in batches of about BATCH_BYTES as the serial path stages: its units, in order."""
    return [stage_unit(batch, protocol, units_dir, rules_fingerprint) for batch in export_batches(share)]


def read_unit(unit: Path) -> tuple[StagedBatch, StagingReport]:
    """The frames and report a unit holds."""
    frames = {path.stem: pl.read_parquet(path) for path in unit.glob("*.parquet")}
    staged = StagedBatch(
        accepted={table.name: frames[table.name] for table in TABLES},
        quarantine=frames["quarantine"], file_counts=frames["file_counts"], exports=frames["exports"],
    )
    return staged, _unit_report(unit)


def _unit_report(unit: Path) -> StagingReport:
    return StagingReport(**json.loads((unit / _REPORT).read_text(encoding="utf-8")))


def _unit_exports(unit: Path) -> list[tuple[str, str]]:
    frame = pl.read_parquet(unit / "exports.parquet", columns=["site_id", "export_id"])
    return list(frame.iter_rows())


def load_units(
    con: duckdb.DuckDBPyConnection, exports: list[LandingExport], units: list[Path]
) -> StagingReport:
    """Bring staging in line with the landing folder (`exports`, as scanned when the units were planned) from
    the units: exports no longer in the landing dropped, the units' exports replaced, the others left alone;
    in one transaction, DuckDB reading the units' Parquet files."""
    staged = staged_fingerprints(con)
    in_landing = {(e.site_id, e.export_id) for e in exports}
    gone = sorted(set(staged) - in_landing)
    report = StagingReport(removed=[f"{site}/{export}" for site, export in gone])
    covered: set[tuple[str, str]] = set()
    for unit in units:
        covered.update(_unit_exports(unit))
        report = report.followed_by(_unit_report(unit))
    report.unchanged = [e.label for e in exports if (e.site_id, e.export_id) not in covered]
    write_staged(con, [*gone, *sorted(covered)], parquet_units=units)
    return report


def remove_loaded_units(units_dir: Path) -> None:
    """Drop the units once staging holds their rows (derived data: the working area keeps no second copy of
    staging). Units of a load that failed stay, and the next run reuses them."""
    if not units_dir.is_dir():
        return
    for entry in units_dir.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
