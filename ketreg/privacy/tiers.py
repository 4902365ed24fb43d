"""Where each privacy tier's output is, for the end of a run (docs/privacy.md)."""

from __future__ import annotations

from pathlib import Path

from ketreg.reports.site_folders import SITES_FOLDER


def tier_locations(analyst_db: Path, work_db: Path, reports_dir: Path, releases: Path | str) -> str:
    """Plain-text lines naming each tier, who gets it and where it is (`releases`: where `ketreg release`
    freezes releases, as the app resolves it)."""
    sites = reports_dir / SITES_FOLDER
    site_folders = sorted(p.name for p in sites.iterdir() if p.is_dir()) if sites.is_dir() else []
    if len(site_folders) > 6:  # a registry of many sites: the first few and how many
        site_folders = [*site_folders[:3], f"… {len(site_folders)} sites"]
    return "\n".join([
        "",
        "Privacy tiers (docs/privacy.md):",
        f"  registry team only — working store, site ids and raw values:  {work_db}",
        f"  analysts — pseudonymous rows, quarantine as counts:            {analyst_db}",
        f"  each site's data manager — its own records only:               {sites}/<site_id>/ "
        f"({', '.join(site_folders) or 'none yet'})",
        f"  shareable — figures with small cells suppressed:               {releases}/<name>/aggregates/ "
        "(ketreg release NAME)",
    ])
