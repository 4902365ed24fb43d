"""Each site's data-manager folder, `<reports>/sites/<site_id>/`: that site's quarantined rows (its own ids,
line numbers, raw values, every reason), its rejected exports, its protocol deviations (with its own infusion
ids), the notices and columns that were not read, and a "what to fix" page; as CSV, one Excel workbook and
HTML. Every query is filtered on the one site, and nothing pseudonymous is written there, so a site's folder
can neither show another site's records nor be joined with the analysts' file.

A full rewrite builds the whole `sites/` folder aside and swaps it in; after some sites' new exports only their
folders are rewritten (each built aside and swapped in) and a site that left the registry loses its folder."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ketreg.incremental.sites import record_sites, sites_to_rebuild
from ketreg.landing.discovery import SITE_ID
from ketreg.reports.private_files import private_folder, write_private_csv, write_private_text, write_private_xlsx
from ketreg.reports.site_page import Table, render_site_page
from ketreg.staging.fix_list import in_fixing_order

SITES_FOLDER = "sites"
# The folders' entry in the working store's record of what was built from which sites' rows.
LEDGER_NAME = "reports.site_folders"
PAGE_FILE = "index.html"

# What each file holds: (file stem, columns, query with $sites). Each query reads the rows of a batch of sites
# (site_id first, ordered by site first), split per site in Python; the working store only.
_OF_THE_SITES = "site_id IN (SELECT unnest($sites))"
TABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "quarantine": (
        ("export_id", "is_current_export", "file_name", "source_line", "record_id", "column", "rule", "message",
         "raw_values"),
        f"""SELECT q.site_id, q.export_id, q.is_current_export, q.file_name, q.source_line, q.record_id, r."column",
                   r.rule, r.message, q.raw_values
            FROM site_private.quarantine AS q, unnest(q.reasons) AS u (r)
            WHERE q.{_OF_THE_SITES}
            ORDER BY q.site_id, q.is_current_export DESC, q.export_id DESC, q.file_name, q.source_line, r."column",
                     r.rule""",
    ),
    "rejected_exports": (
        ("export_id", "rejection_reason"),
        f"""SELECT site_id, export_id, rejection_reason FROM site_private.exports
            WHERE {_OF_THE_SITES} AND status = 'rejected' ORDER BY site_id, export_id DESC""",
    ),
    "deviations": (
        ("export_id", "file_name", "source_line", "infusion_id", "infusion_number", "deviation", "measure",
         "observed", "protocol_limit"),
        f"""SELECT d.site_id, d.export_id, d.source_file, d.source_line, k.infusion_id, d.infusion_number,
                   d.deviation, d.measure, d.observed, d.protocol_limit
            FROM registry.protocol_deviations AS d
            LEFT JOIN keys.infusion_keys AS k USING (site_id, export_id, infusion_key)
            WHERE d.{_OF_THE_SITES}
            ORDER BY d.site_id, d.source_line, d.deviation""",
    ),
    "notices": (
        ("export_id", "notice"),
        f"""SELECT site_id, export_id, unnest(notices) AS notice FROM site_private.exports
            WHERE {_OF_THE_SITES} ORDER BY site_id, export_id DESC""",
    ),
    "columns_not_read": (
        ("export_id", "file_name", "kind", "column_name"),
        f"""SELECT site_id, export_id, file_name, 'identifier-like: remove it from the export' AS kind,
                   unnest(identifier_columns_dropped) AS column_name
            FROM site_private.file_columns WHERE {_OF_THE_SITES}
            UNION ALL
            SELECT site_id, export_id, file_name, 'not in the contract', unnest(ignored_columns)
            FROM site_private.file_columns WHERE {_OF_THE_SITES}
            ORDER BY site_id, export_id DESC, file_name, kind, column_name""",
    ),
    "exports": (
        ("export_id", "status", "is_current", "rows_read", "rows_accepted", "rows_quarantined"),
        f"""SELECT e.site_id, e.export_id, e.status, e.is_current, coalesce(sum(f.rows_read), 0),
                   coalesce(sum(f.rows_accepted), 0), coalesce(sum(f.rows_quarantined), 0)
            FROM site_private.exports AS e
            LEFT JOIN registry.file_counts AS f USING (site_id, export_id)
            WHERE e.{_OF_THE_SITES}
            GROUP BY ALL ORDER BY e.site_id, e.export_id DESC""",
    ),
}
# Sites read by one query. One query per site read the whole quarantine's raw values each time (a site's rows
# are spread over the table): at 100 sites × 5,000 patients 8.8 s of the step's 40 CPU seconds, 2.1 s ten sites
# at a time (benchmarks/README.md, issue 13). Ten sites' rows are held at once.
SITES_PER_QUERY = 10


@dataclass(frozen=True)
class SiteFolder:
    site_id: str
    path: Path
    quarantined_rows: int  # rows of the current export
    rejected_exports: int
    deviations: int


def _tables_of_sites(con: duckdb.DuckDBPyConnection, sites: list[str]) -> Iterator[tuple[str, dict[str, Table]]]:
    """Each site of `sites` with its tables (rows as the site's own query would return them), in order."""
    for start in range(0, len(sites), SITES_PER_QUERY):
        batch = sites[start:start + SITES_PER_QUERY]
        tables: dict[str, dict[str, Table]] = {site_id: {} for site_id in batch}
        for name, (columns, query) in TABLES.items():
            rows: dict[str, list[tuple[Any, ...]]] = {site_id: [] for site_id in batch}
            for row in con.execute(query, {"sites": batch}).fetchall():
                rows[row[0]].append(row[1:])
            for site_id in batch:
                tables[site_id][name] = (columns, rows[site_id])
        yield from tables.items()


def _write_site(site_id: str, data: dict[str, Table], folder: Path, generated: str) -> None:
    # Discovery admits only these ids, so a folder name can never climb out of sites/; checked again here.
    if not SITE_ID.fullmatch(site_id):
        raise ValueError(f"site id {site_id!r} is not a safe folder name ({SITE_ID.pattern})")
    private_folder(folder)
    # Root causes first, each followed by the rows quarantined because of it (ketreg/staging/fix_list.py).
    columns, rows = data["quarantine"]
    data["quarantine"] = (columns, in_fixing_order(rows, columns))
    for name, (columns, rows) in data.items():
        write_private_csv(folder / f"{name}.csv", columns, rows)
    write_private_xlsx(folder / "what_to_fix.xlsx", data)
    write_private_text(folder / PAGE_FILE, render_site_page(site_id, data, generated))


# What each site's folder holds, counted the way its files list them (a quarantined row is listed once per
# reason; a row of the current export counts once), for every site on record.
_SUMMARY = """
    SELECT e.site_id,
           (SELECT count(DISTINCT (q.file_name, q.source_line)) FROM site_private.quarantine AS q
            WHERE q.site_id = e.site_id AND q.is_current_export AND len(q.reasons) > 0),
           count(*) FILTER (e.status = 'rejected'),
           (SELECT count(*) FROM registry.protocol_deviations AS d WHERE d.site_id = e.site_id)
    FROM site_private.exports AS e
    GROUP BY e.site_id ORDER BY e.site_id"""


def _sites_on_record(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [s for (s,) in con.execute("SELECT DISTINCT site_id FROM site_private.exports ORDER BY 1").fetchall()]


def folder_summaries(con: duckdb.DuckDBPyConnection, reports_dir: Path) -> list[SiteFolder]:
    """What each site's folder holds, for every site on record."""
    return [SiteFolder(site_id, reports_dir / SITES_FOLDER / site_id, quarantined, rejected, deviations)
            for site_id, quarantined, rejected, deviations in con.execute(_SUMMARY).fetchall()]


def _generated() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def write_site_folders(con: duckdb.DuckDBPyConnection, reports_dir: Path) -> list[SiteFolder]:
    """Write `<reports_dir>/sites/<site_id>/` for every site on record; returns what each holds."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    target = reports_dir / SITES_FOLDER
    building = reports_dir / f".{SITES_FOLDER}.building"
    old = reports_dir / f".{SITES_FOLDER}.old"
    for leftover in (building, old):
        shutil.rmtree(leftover, ignore_errors=True)
    private_folder(building)
    generated = _generated()
    for site_id, data in _tables_of_sites(con, _sites_on_record(con)):
        _write_site(site_id, data, building / site_id, generated)
    if target.exists():
        target.rename(old)
    building.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return folder_summaries(con, reports_dir)


def rewrite_site_folders(con: duckdb.DuckDBPyConnection, reports_dir: Path, sites: list[str]) -> list[SiteFolder]:
    """Rewrite the folders of `sites` only (each built aside and swapped in), remove those of the ones no longer
    on record, and leave every other site's folder as it is, byte for byte; returns what every folder holds."""
    target = reports_dir / SITES_FOLDER
    on_record = set(_sites_on_record(con))
    generated = _generated()
    # In the order of `sites`, read a batch at a time as the loop reaches them.
    tables = _tables_of_sites(con, [site_id for site_id in sites if site_id in on_record])
    for site_id in sites:
        if not SITE_ID.fullmatch(site_id):
            raise ValueError(f"site id {site_id!r} is not a safe folder name ({SITE_ID.pattern})")
        building, old = target / f".{site_id}.building", target / f".{site_id}.old"
        for leftover in (building, old):
            shutil.rmtree(leftover, ignore_errors=True)
        if site_id in on_record:
            _write_site(site_id, next(tables)[1], building, generated)
        if (target / site_id).exists():
            (target / site_id).rename(old)
        if site_id in on_record:
            building.rename(target / site_id)
        shutil.rmtree(old, ignore_errors=True)
    return folder_summaries(con, reports_dir)


def write_changed_site_folders(
    con: duckdb.DuckDBPyConnection, reports_dir: Path, shared_digest: str, run_id: str
) -> tuple[list[SiteFolder], list[str] | None]:
    """Bring the sites' folders up to date: rewrite only the folders of sites whose staged rows changed since
    they were written (or that left the registry, or whose folder is missing), or all of them when the code,
    protocol, mappings or key changed (`shared_digest`). A site's folder is made from that site's rows only, so
    this gives the folders a full rewrite would. Returns what every folder holds, and the sites rewritten (None:
    all)."""
    target = reports_dir / SITES_FOLDER
    sites = sites_to_rebuild(con, LEDGER_NAME, shared_digest, run_id, built=target.is_dir())
    if sites is None:
        folders = write_site_folders(con, reports_dir)
    else:
        missing = [s for s in _sites_on_record(con) if not (target / s).is_dir()]
        sites = sorted(set(sites) | set(missing))
        folders = rewrite_site_folders(con, reports_dir, sites)
    record_sites(con, LEDGER_NAME, shared_digest, run_id)
    return folders, sites
