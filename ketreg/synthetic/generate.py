"""Generate the landing folders of a synthetic multi-site registry, with an exact manifest of its faults."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from .contract import CONTRACT_VERSION, TABLES, file_name
from .injection import FaultCycle, FileFault, add_identifier_column, drop_required_column, inject_row_faults
from .site import CLINICAL_STREAM, simulate_site, site_rng
from .sites import site_id
from .snapshot import snapshot
from .timeline import EXPORTS
from .writer import MANIFEST_NAME, previous_exports, remove_exports, write_export, write_manifest


@dataclass(frozen=True)
class GenerationSummary:
    """What `generate_landing` wrote."""

    out_dir: Path
    sites: list[str]
    exports: list[tuple[str, str]]  # (site_id, export_id), in the order written
    rows_written: dict[str, int]  # data rows per table, over all exports
    faults_injected: int  # entries in the manifest, including the two whole-file faults
    manifest_path: Path


def _check(sites: int, patients_per_site: int, seed: int, error_rate: float) -> None:
    if sites < 1:
        raise ValueError(f"sites must be at least 1, got {sites}")
    if patients_per_site < 1:
        raise ValueError(f"patients_per_site must be at least 1, got {patients_per_site}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if not 0.0 <= error_rate <= 1.0:
        raise ValueError(f"error_rate is a probability per data row: 0 … 1, got {error_rate}")


def _with_faults(
    tables: dict[str, pl.DataFrame],
    seed: int,
    error_rate: float,
    cycle: FaultCycle,
    site_index: int,
    sites: int,
    export_index: int,
) -> tuple[dict[str, pl.DataFrame], list[FileFault]]:
    """One export's tables with its faults: row faults, or for two chosen exports a whole-file fault."""
    if site_index == sites - 1 and export_index == 0:
        # The last site's earlier export is rejected whole, so its rows carry no faults of their own: a
        # test can expect every listed row to be quarantined.
        tables, fault = drop_required_column(tables)
        return tables, [fault]
    rng = site_rng(seed, site_index, CLINICAL_STREAM + 1 + export_index)
    tables, found = inject_row_faults(tables, error_rate, rng, cycle, export_index)
    if site_index == 0 and export_index == len(EXPORTS) - 1:
        tables, fault = add_identifier_column(tables)
        found.insert(0, fault)
    return tables, found


def _manifest_entry(sid: str, export_id: str, fault: FileFault) -> dict[str, str | int]:
    entry: dict[str, str | int] = {
        "site_id": sid,
        "export_id": export_id,
        "file": file_name(fault.table),
        "source_line": fault.source_line,
        "kind": fault.kind,
        "column": fault.column,
    }
    if fault.duplicates_line is not None:
        # The pipeline flags every copy of a repeated id, so tests need the first copy's line as well.
        entry["duplicates_line"] = fault.duplicates_line
    return entry


def generate_landing(
    out_dir: Path,
    sites: int = 4,
    patients_per_site: int = 60,
    seed: int = 7,
    error_rate: float = 0.0,
) -> GenerationSummary:
    """Write `<out_dir>/<site_id>/<export_id>/*.csv` for every site and export, and the fault manifest.

    The same arguments always produce byte-identical files. With `error_rate` 0 every row is valid; above 0
    about that share of data rows get one fault each, the last site's earlier export lacks a required
    column and the first site's newest patients.csv carries a patient-name column. An earlier run's
    files are overwritten and its exports this run does not write are removed; nothing else in `out_dir`
    is touched.
    """
    _check(sites, patients_per_site, seed, error_rate)
    out_dir = Path(out_dir)
    manifest_path = out_dir / MANIFEST_NAME
    earlier_run = previous_exports(manifest_path)
    site_ids = [site_id(index, sites) for index in range(sites)]
    exports: list[dict[str, Any]] = []
    rows_written = dict.fromkeys(TABLES, 0)
    faults: list[tuple[str, str, FileFault]] = []
    cycle = FaultCycle()
    for index, sid in enumerate(site_ids):
        history = simulate_site(seed, index, patients_per_site)
        for export_index, export in enumerate(EXPORTS):
            tables = snapshot(history, export.cutoff)
            if error_rate > 0:
                tables, found = _with_faults(tables, seed, error_rate, cycle, index, sites, export_index)
            else:
                found = []
            write_export(out_dir / sid / export.export_id, tables)
            rows = {table: frame.height for table, frame in tables.items()}
            for table, count in rows.items():
                rows_written[table] += count
            exports.append({"site_id": sid, "export_id": export.export_id, "rows": rows})
            faults += [(sid, export.export_id, fault) for fault in found]

    remove_exports(out_dir, earlier_run - {(e["site_id"], e["export_id"]) for e in exports})
    header = {
        "generator": "ketreg.synthetic",
        "contract_version": CONTRACT_VERSION,
        "arguments": {
            "sites": sites,
            "patients_per_site": patients_per_site,
            "seed": seed,
            "error_rate": error_rate,
        },
        "exports": exports,
        "rows_written": rows_written,
        "faults_injected": len(faults),
    }
    write_manifest(manifest_path, header, (_manifest_entry(*fault) for fault in faults))
    return GenerationSummary(
        out_dir=out_dir,
        sites=site_ids,
        exports=[(e["site_id"], e["export_id"]) for e in exports],
        rows_written=rows_written,
        faults_injected=len(faults),
        manifest_path=manifest_path,
    )
