"""Generate the landing folders of a synthetic multi-site registry, with an exact manifest of its faults."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from .contract import CONTRACT_VERSION, TABLES, file_name
from .injection import FaultCycle, FileFault, drop_required_column, inject_row_faults
from .shapes import SHAPES, ShapeWritten, write_shape
from .site import CLINICAL_STREAM, simulate_site, site_rng
from .sites import site_id
from .snapshot import snapshot
from .timeline import EXPORTS
from .writer import MANIFEST_NAME, previous_exports, remove_exports, write_manifest

# A rate sent per kg for a patient whose weight the export lacks: the pipeline must quarantine the row.
RATE_WITHOUT_WEIGHT = "rate_per_kg_without_weight"


@dataclass(frozen=True)
class GenerationSummary:
    """What `generate_landing` wrote."""

    out_dir: Path
    sites: list[str]
    exports: list[tuple[str, str]]  # (site_id, export_id), in the order written
    rows_written: dict[str, int]  # data rows per table, over all exports
    faults_injected: int  # entries in the manifest, including the two whole-file faults
    manifest_path: Path


def _check(sites: int, patients_per_site: int, seed: int, error_rate: float, shapes: Sequence[str]) -> None:
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown or not shapes:
        raise ValueError(f"shapes must be some of {', '.join(SHAPES)}, got {list(shapes)}")
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
    """One export's tables with its faults: row faults, or for one chosen export a whole-file fault.
    No export carries an identifier-like column: a site's pre-flight refuses one (tests plant it themselves)."""
    if site_index == sites - 1 and export_index == 0:
        # The last site's earlier export is rejected whole, so its rows carry no faults of their own: a
        # test can expect every listed row to be quarantined.
        tables, fault = drop_required_column(tables)
        return tables, [fault]
    rng = site_rng(seed, site_index, CLINICAL_STREAM + 1 + export_index)
    tables, found = inject_row_faults(tables, error_rate, rng, cycle, export_index)
    return tables, found


def shaped_site_id(index: int, sites: int, shape: str) -> str:
    """`site_01` for a canonical site; `site_02_semicolon` etc. for the others (their mapping file's name)."""
    plain = site_id(index, sites)
    return plain if shape == "canonical" else f"{plain}_{shape}"


def _manifest_entry(sid: str, export_id: str, fault: FileFault, written: ShapeWritten) -> dict[str, str | int]:
    # Lines are the site's own: of its file or sheet (REDCap: of the one flat file). `file` stays the
    # contract's file name, as the quarantine names it; `source_file` is where the site wrote the row.
    line = fault.source_line if fault.source_line < 2 else written.line(fault.table, fault.source_line - 2)
    entry: dict[str, str | int] = {
        "site_id": sid,
        "export_id": export_id,
        "file": file_name(fault.table),
        "source_line": line,
        "kind": fault.kind,
        "column": fault.column,
    }
    if written.files.get(fault.table, file_name(fault.table)) != file_name(fault.table):
        entry["source_file"] = written.files[fault.table]
    if fault.duplicates_line is not None:
        # The pipeline flags every copy of a repeated id, so tests need the first copy's line as well.
        entry["duplicates_line"] = written.line(fault.table, fault.duplicates_line - 2)
    return entry


def _rows_without_weight(found: list[FileFault], written: ShapeWritten) -> list[FileFault]:
    """Rows of a per-kg site whose rate could not be written per kg, unless they carry a fault already."""
    faulty = {(f.table, f.source_line) for f in found}
    return [
        FileFault(table, int(row) + 2, RATE_WITHOUT_WEIGHT, "initial_rate_mg_h")
        for table, rows in written.rows_without_weight.items()
        for row in rows
        if (table, int(row) + 2) not in faulty
    ]


def generate_landing(
    out_dir: Path,
    sites: int = 4,
    patients_per_site: int = 60,
    seed: int = 7,
    error_rate: float = 0.0,
    shapes: Sequence[str] = ("canonical",),
) -> GenerationSummary:
    """Write `<out_dir>/<site_id>/<export_id>/*.csv` for every site and export, and the fault manifest.

    The same arguments always produce byte-identical files. With `error_rate` 0 every row is valid; above 0
    about that share of data rows get one fault each, the last site's earlier export lacks a required
    column and the first site's newest patients.csv carries a patient-name column. An earlier run's
    files are overwritten and its exports this run does not write are removed; nothing else in `out_dir`
    is touched.

    `shapes` are handed to the sites in turn (see `synthetic.shapes`): a non-canonical site is named
    `site_NN_<shape>` and needs its mapping file `sites/site_NN_<shape>.yaml` to be read. A site sending
    rates per kg records every weight; a patient whose weight its export still lacks (a weight back-filled
    later) gets a fault `rate_per_kg_without_weight` in the manifest.
    """
    _check(sites, patients_per_site, seed, error_rate, shapes)
    out_dir = Path(out_dir)
    manifest_path = out_dir / MANIFEST_NAME
    earlier_run = previous_exports(manifest_path)
    site_shapes = [shapes[index % len(shapes)] for index in range(sites)]
    site_ids = [shaped_site_id(index, sites, shape) for index, shape in enumerate(site_shapes)]
    exports: list[dict[str, Any]] = []
    rows_written = dict.fromkeys(TABLES, 0)
    faults: list[tuple[str, str, FileFault]] = []
    cycle = FaultCycle()
    for index, sid in enumerate(site_ids):
        shape = site_shapes[index]
        history = simulate_site(seed, index, patients_per_site, weighs_everyone=shape == "semicolon")
        for export_index, export in enumerate(EXPORTS):
            tables = snapshot(history, export.cutoff)
            if error_rate > 0:
                tables, found = _with_faults(tables, seed, error_rate, cycle, index, sites, export_index)
            else:
                found = []
            written = write_shape(shape, out_dir / sid / export.export_id, tables, sid)
            if not any(f.kind == "missing_required_column" for f in found):
                found = found + _rows_without_weight(found, written)
            rows = {table: frame.height for table, frame in tables.items()}
            for table, count in rows.items():
                rows_written[table] += count
            exports.append({"site_id": sid, "export_id": export.export_id, "rows": rows})
            faults += [(sid, export.export_id, fault, written) for fault in found]

    remove_exports(out_dir, earlier_run - {(e["site_id"], e["export_id"]) for e in exports})
    header = {
        "generator": "synthetic",
        "contract_version": CONTRACT_VERSION,
        "arguments": {
            "sites": sites,
            "patients_per_site": patients_per_site,
            "seed": seed,
            "error_rate": error_rate,
            **({"shapes": list(shapes)} if tuple(shapes) != ("canonical",) else {}),
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
