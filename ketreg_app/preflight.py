"""`ketreg check-export`: the pre-flight a site runs before sending an export.

It reads the folder exactly as a registry run would (the site's mapping, then the contract's schemas, with
the same functions) and touches no registry: protocol deviations come from the registry's own SQL, run on a
throw-away in-memory database. The report says, per file, how many rows would be accepted and quarantined
and why, with example rows by the site's own line numbers.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from ketreg.landing.discovery import LandingExport, scan_export
from ketreg.landing.exports import read_export
from ketreg.landing.limits import LandingLimits
from ketreg.landing.mapping import default_sites_dir, mapping_path
from ketreg.landing.reader import UnreadableFile
from ketreg.registry.build import build_table, prepare
from ketreg.staging.fix_list import CASCADE_RULE, FixItem, fix_list, flatten
from ketreg.staging.stage import validate_tables
from ketreg.staging.tables import ensure_staging_tables
from schemas.protocol import Protocol

EXIT_CLEAN, EXIT_QUARANTINE, EXIT_UNUSABLE = 0, 1, 2
EXAMPLES_PER_REASON = 3


@dataclass
class FileReport:
    table: str
    file_name: str  # the contract's file, as the registry's quarantine names it
    source: str  # where the site wrote it: its file or `workbook[sheet]`
    rows_read: int
    rows_accepted: int
    rows_quarantined: int
    reasons: list[dict[str, Any]] = field(default_factory=list)  # rule, column, rows, examples


@dataclass
class ExportCheck:
    site_id: str
    export_id: str
    path: str
    mapping: str | None
    rejection: str | None = None
    # The site's own values behind a rejection (e.g. values a mapping does not cover): shown here, at the
    # site, and never stored by the registry.
    site_detail: str | None = None
    notices: list[str] = field(default_factory=list)
    files: list[FileReport] = field(default_factory=list)
    deviations: list[dict[str, Any]] = field(default_factory=list)  # deviation, infusions, examples
    # Columns that look like direct patient identifiers, per file of the site ({file, columns}). The registry
    # would not read them, but the file would already have left the hospital: the pre-flight refuses it.
    identifier_columns: list[dict[str, Any]] = field(default_factory=list)
    # With `--all`: every quarantined row, root causes first with the rows they took along (ketreg.staging.fix_list).
    fix_list: list[FixItem] | None = None
    broken_mapping: str | None = None  # the site's mapping file, when it exists but cannot be used

    @property
    def exit_code(self) -> int:
        if self.rejection is not None:
            return EXIT_UNUSABLE
        if self.identifier_columns or any(f.rows_quarantined for f in self.files):
            return EXIT_QUARANTINE
        return EXIT_CLEAN

    @property
    def status(self) -> str:
        if self.rejection is None and self.identifier_columns:
            return "identifier_columns_present"
        return {EXIT_CLEAN: "clean", EXIT_QUARANTINE: "rows_would_be_quarantined", EXIT_UNUSABLE: "unusable"}[
            self.exit_code
        ]

    def as_json(self) -> str:
        return json.dumps(
            {
                "site_id": self.site_id, "export_id": self.export_id, "path": self.path, "mapping": self.mapping,
                "status": self.status, "exit_code": self.exit_code,
                "rejection": [_problem(part) for part in self.rejection_parts()],
                "site_detail": self.site_detail,
                "notices": [_problem(notice) for notice in self.notices],
                "identifier_columns": self.identifier_columns,
                "files": [vars(f) for f in self.files], "deviations": self.deviations,
                **({"quarantined_rows": [item.as_dict() for item in self.fix_list]} if self.fix_list is not None
                   else {}),
            },
            indent=2, ensure_ascii=False,
        )

    def rejection_parts(self) -> list[str]:
        """Each reason the export would be rejected for (the registry joins them with "; ")."""
        if self.rejection is None:
            return []
        return [part.strip() for part in re.split(rf"; (?={re.escape(self.site_id)}/)", self.rejection)]

    def as_text(self) -> str:
        lines = [
            f"Export {self.site_id}/{self.export_id} ({self.path})",
            f"Read with {self.mapping}" if self.mapping else
            f"Mapping file {self.broken_mapping} cannot be used (the problems are listed below)" if self.broken_mapping
            else "Read as the canonical contract (no mapping file)",
        ]
        if self.identifier_columns:
            lines += ["", "REMOVE THESE COLUMNS BEFORE SENDING: they look like direct patient identifiers "
                      "(names, record numbers, dates of birth, contact details), which must not leave the hospital:"]
            lines += [f"  - {entry['file']}: {', '.join(entry['columns'])}" for entry in self.identifier_columns]
        if self.rejection is not None:
            lines += ["", "UNUSABLE: the registry would reject the whole export:"]
            lines += [f"  - {part}" for part in self.rejection_parts()]
            if self.site_detail:
                lines += ["", "Your values behind it (shown only here, never sent to the registry):",
                          *[f"  - {part.strip()}" for part in self.site_detail.split("; ")]]
        if self.files:
            lines += ["", f"{'file':<22} {'from':<36} {'read':>7} {'accepted':>9} {'quarantined':>12}"]
            for f in self.files:
                lines.append(
                    f"{f.file_name:<22} {f.source:<36} {f.rows_read:>7} {f.rows_accepted:>9} {f.rows_quarantined:>12}"
                )
            for f in self.files:
                if not f.reasons:
                    continue
                lines += ["", f"{f.file_name} (from {f.source}): {f.rows_quarantined} row(s) would be quarantined"]
                for reason in f.reasons:
                    lines.append(f"  {reason['rule']} on {reason['column']}: {reason['rows']} row(s)")
                    for example in reason["examples"]:
                        record = f" {example['record_id']}" if example["record_id"] else ""
                        lines.append(f"    line {example['source_line']}{record}: {example['message']}")
        if self.fix_list:
            sources = {f.file_name: f.source for f in self.files}
            lines += ["", "Every quarantined row, root causes first (rows quarantined because of a row are indented "
                      "beneath it; fixing that row brings them back):"]
            for depth, item in flatten(self.fix_list):
                record = f" {item.record_id}" if item.record_id else ""
                why = "; ".join(reason["message"] for reason in item.reasons)
                lines.append(f"{'  ' * (depth + 1)}{sources.get(item.file_name, item.file_name)} line "
                             f"{item.source_line}{record}: {why}")
        elif any(f.rows_quarantined for f in self.files):
            lines += ["", f"(At most {EXAMPLES_PER_REASON} example lines per reason: `--all` lists every row.)"]
        if self.deviations:
            lines += ["", "Protocol deviations (valid rows, kept and recorded by the registry):"]
            for deviation in self.deviations:
                lines.append(f"  {deviation['deviation']}: {deviation['infusions']} infusion(s)")
                for example in deviation["examples"]:
                    lines.append(
                        f"    line {example['source_line']}: {example['measure']} {example['observed']:g} "
                        f"(protocol limit {example['protocol_limit']:g})"
                    )
        if self.notices:
            lines += ["", "Notices (the export is still usable):"] + [f"  - {n}" for n in self.notices]
        verdict = {
            EXIT_CLEAN: "CLEAN: every row would be accepted.",
            EXIT_QUARANTINE: "Rows would be quarantined: fix them at the lines above and check again.",
            EXIT_UNUSABLE: "UNUSABLE: fix the problems above and check again.",
        }[self.exit_code]
        if self.exit_code == EXIT_QUARANTINE and self.identifier_columns:
            verdict = "DO NOT SEND: remove these columns before sending (listed above), then check again."
        return "\n".join([*lines, "", verdict])


def _reasons(quarantined: pl.DataFrame) -> list[dict[str, Any]]:
    if quarantined.height == 0:
        return []
    long = quarantined.select("source_line", "record_id", pl.col("reasons")).explode("reasons").unnest("reasons")
    summary = []
    for (rule, column), group in long.sort("source_line").group_by(["rule", "column"], maintain_order=True):
        summary.append({
            "rule": rule, "column": column, "rows": group.height,
            "examples": group.head(EXAMPLES_PER_REASON).select("source_line", "record_id", "message").to_dicts(),
        })
    # A row quarantined because of its parent is a consequence: the faults to fix come first.
    return sorted(summary, key=lambda r: (r["rule"] == CASCADE_RULE, -r["rows"], r["rule"], r["column"]))


def _problem(message: str) -> dict[str, Any]:
    """A rejection reason or notice as an object: where (site/export[/file]), the file, and the message."""
    where, _, what = message.partition(": ")
    if not what or "/" not in where:
        return {"where": None, "file": None, "message": message}
    parts = where.split("/", 2)
    return {"where": where, "file": parts[2] if len(parts) == 3 else None, "message": what}


def _deviations(export_id: str, site_id: str, accepted: dict[str, pl.DataFrame],
                protocol: Protocol) -> list[dict[str, Any]]:
    """The registry's protocol deviations of the accepted rows, from its own SQL in a throw-away database."""
    con = duckdb.connect(":memory:")
    try:
        ensure_staging_tables(con)
        for name, frame in accepted.items():
            con.register("_frame", frame)
            con.execute(f"INSERT INTO staging.{name} BY NAME SELECT * FROM _frame")
            con.unregister("_frame")
        con.execute("INSERT INTO staging.exports VALUES (?, ?, 'check', 'accepted', NULL, [])", [site_id, export_id])
        # A random key: the pseudonyms of this throw-away database are never seen or kept.
        prepare(con, secrets.token_hex(16), protocol)
        for name in ("exports", "patients", "infusions", "protocol_deviations"):
            build_table(con, name, protocol)
        found = con.sql(
            "SELECT deviation, measure, observed, protocol_limit, source_line FROM registry.protocol_deviations"
        ).pl()
    finally:
        con.close()
    summary = []
    for (deviation,), group in found.sort("source_line").group_by("deviation", maintain_order=True):
        summary.append({
            "deviation": deviation, "infusions": group.height,
            "examples": group.head(EXAMPLES_PER_REASON).select(
                "source_line", "measure", "observed", "protocol_limit"
            ).to_dicts(),
        })
    return sorted(summary, key=lambda d: (-d["infusions"], d["deviation"]))


def _identifier_columns(export: LandingExport) -> list[dict[str, Any]]:
    """The identifier-like columns of each file, found by the registry's own rule (schemas/identifiers.py)
    when the export was scanned (canonical) or read (mapped)."""
    found: dict[str, list[str]] = {}
    for export_file in export.files.values():
        if export_file.identifier_columns:
            columns = found.setdefault(export_file.path.name, [])
            columns += [c for c in export_file.identifier_columns if c not in columns]
    return [{"file": name, "columns": columns} for name, columns in sorted(found.items())]


def check_export(
    path: Path, site_id: str, protocol: Protocol, sites_dir: Path | None = None,
    limits: LandingLimits | None = None, all_rows: bool = False,
) -> ExportCheck:
    """What a registry run would do with the export in `path` from `site_id`; with `all_rows`, every
    quarantined row as the site's fix list."""
    export = scan_export(site_id, path, sites_dir, limits)
    report = ExportCheck(
        site_id, export.export_id, str(path), export.mapping.label if export.mapping else None,
        rejection=export.rejection, notices=list(export.notices),
    )
    found = mapping_path(default_sites_dir() if sites_dir is None else sites_dir, site_id)
    if export.mapping is None and found is not None:
        report.broken_mapping = f"sites/{found.name}"
    if export.rejection is not None:
        report.identifier_columns = _identifier_columns(export)
        return report
    try:
        read = read_export(export)
    except UnreadableFile as exc:  # every kind of read error arrives as this, with a bounded message
        report.rejection = str(exc)
        report.site_detail = exc.site_detail
        return report
    report.notices += read.notices
    report.identifier_columns = _identifier_columns(export)
    raw_by_table = {name: [frame] for name, frame in read.frames.items()}
    extra = {name: [f] for name, f in read.failures.items()}
    accepted: dict[str, pl.DataFrame] = {}
    quarantined: list[dict[str, Any]] = []
    for table, raw, result in validate_tables(raw_by_table, extra, protocol):
        if table.name not in read.frames:
            continue
        accepted[table.name] = result.accepted
        if all_rows:
            quarantined += result.quarantined.select("file_name", "source_line", "record_id", "reasons").to_dicts()
        report.files.append(FileReport(
            table.name, table.file_name, read.sources.get(table.name, table.file_name), raw.height,
            result.accepted.height, result.quarantined.height, _reasons(result.quarantined),
        ))
    report.deviations = _deviations(export.export_id, site_id, accepted, protocol)
    if all_rows:
        report.fix_list = fix_list(quarantined)
    return report
