"""The shareable part of a release, `releases/<name>/aggregates/`: the registry's figures with small cells
suppressed (`registry_metrics.csv`: the columns of metrics.registry_metrics plus `suppressed`) and the quality
dashboard's metric table and forest plot built from the same suppressed rows (`figures.html`). Nothing in it
is row-level: it is what may leave the registry team (docs/privacy.md)."""

from __future__ import annotations

from html import escape
from pathlib import Path

import duckdb

from ketreg.landing.discovery import file_sha256
from ketreg.privacy.shared_metrics import suppressed_metrics_frame
from ketreg.quality.dashboard import metrics_section

AGGREGATES_FOLDER = "aggregates"
METRICS_FILE = "registry_metrics.csv"
FIGURES_FILE = "figures.html"


def write_aggregates(database: Path, folder: Path, small_cell_count: int, title: str) -> dict[str, object]:
    """Write the suppressed figures of `database` (a registry file) into `folder`; returns what the release
    manifest records about them (the small-cell count used and each file's SHA-256)."""
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(database), read_only=True)
    try:
        has_metrics = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'metrics' AND table_name = 'registry_metrics'"
        ).fetchall()[0][0]
        if has_metrics:
            suppressed_metrics_frame(con, small_cell_count).write_csv(folder / METRICS_FILE)
        section = metrics_section(con, small_cell_count)
    finally:
        con.close()
    (folder / FIGURES_FILE).write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}: registry figures</title><style>"
        "body{font-family:system-ui,sans-serif;margin:0 24px 40px;color:#1a202c}"
        "table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #cbd5e0;padding:3px 6px}"
        "svg.chart{max-width:100%;height:auto;display:block}</style></head><body>"
        f"<h1>{escape(title)}</h1>{section}</body></html>",
        encoding="utf-8",
    )
    return {
        "small_cell_count": small_cell_count,
        "files": {path.name: file_sha256(path) for path in sorted(folder.iterdir()) if path.is_file()},
    }


def verify_aggregates(release_folder: Path, manifest: dict) -> list[str]:
    """Differences between a release's aggregates folder and what its manifest recorded."""
    expected = (manifest.get(AGGREGATES_FOLDER) or {}).get("files", {})
    folder = release_folder / AGGREGATES_FOLDER
    found = {p.name: file_sha256(p) for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}
    problems = []
    for name in sorted(set(expected) | set(found)):
        if name not in found:
            problems.append(f"{AGGREGATES_FOLDER}/{name}: in the manifest but missing")
        elif name not in expected:
            problems.append(f"{AGGREGATES_FOLDER}/{name}: not in the manifest")
        elif found[name] != expected[name]:
            problems.append(f"{AGGREGATES_FOLDER}/{name}: the file's SHA-256 differs from the manifest")
    return problems
