"""Each site's data-manager folder, `<reports>/sites/<site_id>/`: that site's quarantined rows (its own ids,
line numbers, raw values, every reason), its rejected exports, its protocol deviations (with its own infusion
ids), the notices and columns that were not read, and a "what to fix" page; as CSV, one Excel workbook and
HTML. Every query is filtered on the one site, and nothing pseudonymous is written there, so a site's folder
can neither show another site's records nor be joined with the analysts' file.

The whole `sites/` folder is built aside and swapped in, so a site that left the registry loses its folder."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ketreg.landing.discovery import SITE_ID
from ketreg.reports.private_files import private_folder, write_private_csv, write_private_text, write_private_xlsx
from ketreg.reports.site_page import render_site_page
from ketreg.staging.fix_list import in_fixing_order

SITES_FOLDER = "sites"
PAGE_FILE = "index.html"

# What each file holds: (file stem, columns, query with $site). Queries read the working store only.
TABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "quarantine": (
        ("export_id", "is_current_export", "file_name", "source_line", "record_id", "column", "rule", "message",
         "raw_values"),
        """SELECT q.export_id, q.is_current_export, q.file_name, q.source_line, q.record_id, r."column", r.rule,
                  r.message, q.raw_values
           FROM site_private.quarantine AS q, unnest(q.reasons) AS u (r)
           WHERE q.site_id = $site
           ORDER BY q.is_current_export DESC, q.export_id DESC, q.file_name, q.source_line, r."column", r.rule""",
    ),
    "rejected_exports": (
        ("export_id", "rejection_reason"),
        """SELECT export_id, rejection_reason FROM site_private.exports
           WHERE site_id = $site AND status = 'rejected' ORDER BY export_id DESC""",
    ),
    "deviations": (
        ("export_id", "file_name", "source_line", "infusion_id", "infusion_number", "deviation", "measure",
         "observed", "protocol_limit"),
        """SELECT d.export_id, d.source_file, d.source_line, k.infusion_id, d.infusion_number, d.deviation,
                  d.measure, d.observed, d.protocol_limit
           FROM registry.protocol_deviations AS d
           LEFT JOIN keys.infusion_keys AS k USING (site_id, export_id, infusion_key)
           WHERE d.site_id = $site
           ORDER BY d.source_line, d.deviation""",
    ),
    "notices": (
        ("export_id", "notice"),
        """SELECT export_id, unnest(notices) AS notice FROM site_private.exports
           WHERE site_id = $site ORDER BY export_id DESC""",
    ),
    "columns_not_read": (
        ("export_id", "file_name", "kind", "column_name"),
        """SELECT export_id, file_name, 'identifier-like: remove it from the export' AS kind,
                  unnest(identifier_columns_dropped) AS column_name
           FROM site_private.file_columns WHERE site_id = $site
           UNION ALL
           SELECT export_id, file_name, 'not in the contract', unnest(ignored_columns)
           FROM site_private.file_columns WHERE site_id = $site
           ORDER BY export_id DESC, file_name, kind, column_name""",
    ),
    "exports": (
        ("export_id", "status", "is_current", "rows_read", "rows_accepted", "rows_quarantined"),
        """SELECT e.export_id, e.status, e.is_current, coalesce(sum(f.rows_read), 0),
                  coalesce(sum(f.rows_accepted), 0), coalesce(sum(f.rows_quarantined), 0)
           FROM site_private.exports AS e
           LEFT JOIN registry.file_counts AS f USING (site_id, export_id)
           WHERE e.site_id = $site
           GROUP BY ALL ORDER BY e.export_id DESC""",
    ),
}


@dataclass(frozen=True)
class SiteFolder:
    site_id: str
    path: Path
    quarantined_rows: int  # rows of the current export
    rejected_exports: int
    deviations: int


def _fetch(con: duckdb.DuckDBPyConnection, query: str, site_id: str) -> list[tuple[Any, ...]]:
    return con.execute(query, {"site": site_id}).fetchall()


def _write_site(con: duckdb.DuckDBPyConnection, site_id: str, folder: Path, generated: str) -> SiteFolder:
    private_folder(folder)
    data = {name: (columns, _fetch(con, query, site_id)) for name, (columns, query) in TABLES.items()}
    # Root causes first, each followed by the rows quarantined because of it (ketreg/staging/fix_list.py).
    columns, rows = data["quarantine"]
    data["quarantine"] = (columns, in_fixing_order(rows, columns))
    for name, (columns, rows) in data.items():
        write_private_csv(folder / f"{name}.csv", columns, rows)
    write_private_xlsx(folder / "what_to_fix.xlsx", data)
    write_private_text(folder / PAGE_FILE, render_site_page(site_id, data, generated))
    current_quarantined = len({
        (row[2], row[3]) for row in data["quarantine"][1] if row[1]  # (file, line) of the current export
    })
    return SiteFolder(
        site_id, folder, current_quarantined, len(data["rejected_exports"][1]), len(data["deviations"][1])
    )


def write_site_folders(con: duckdb.DuckDBPyConnection, reports_dir: Path) -> list[SiteFolder]:
    """Write `<reports_dir>/sites/<site_id>/` for every site on record; returns what each holds."""
    sites = [s for (s,) in con.execute("SELECT DISTINCT site_id FROM site_private.exports ORDER BY 1").fetchall()]
    reports_dir.mkdir(parents=True, exist_ok=True)
    target = reports_dir / SITES_FOLDER
    building = reports_dir / f".{SITES_FOLDER}.building"
    old = reports_dir / f".{SITES_FOLDER}.old"
    for leftover in (building, old):
        shutil.rmtree(leftover, ignore_errors=True)
    private_folder(building)
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    written = []
    for site_id in sites:
        # Discovery admits only these ids, so a folder name can never climb out of sites/; checked again here.
        if not SITE_ID.fullmatch(site_id):
            raise ValueError(f"site id {site_id!r} is not a safe folder name ({SITE_ID.pattern})")
        written.append(_write_site(con, site_id, building / site_id, generated))
    if target.exists():
        target.rename(old)
    building.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return [SiteFolder(f.site_id, target / f.site_id, f.quarantined_rows, f.rejected_exports, f.deviations)
            for f in written]
