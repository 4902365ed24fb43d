"""A cheap signature of each export folder (file names, sizes, modification times), for noticing new or
changed exports without reading them. The content hash used for staging is computed later, once."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from ketreg.landing.discovery import EXPORT_ID, SITE_ID
from ketreg.landing.mapping import default_sites_dir, mapping_path


def export_signatures(landing: Path, settle_seconds: float = 0.0, sites_dir: Path | None = None) -> dict[str, str]:
    """`{"site/export": signature}` for every export folder whose files have not changed for
    `settle_seconds` (a site still copying its files is left for the next look). A site's mapping file
    is part of its exports' signatures: a changed mapping changes what the files mean."""
    signatures: dict[str, str] = {}
    if not landing.is_dir():
        return signatures
    sites_dir = default_sites_dir() if sites_dir is None else sites_dir
    now = time.time()
    for site_dir in sorted(p for p in landing.iterdir() if p.is_dir() and SITE_ID.match(p.name)):
        mapping = mapping_path(sites_dir, site_dir.name)
        mapping_stat = f"mapping:{mapping.stat().st_size}:{mapping.stat().st_mtime_ns};" if mapping else ""
        for export_dir in sorted(p for p in site_dir.iterdir() if p.is_dir() and EXPORT_ID.match(p.name)):
            files = sorted(p for p in export_dir.iterdir() if p.is_file() and not p.name.startswith("."))
            stats = [(p.name, p.stat()) for p in files]
            if stats and now - max(s.st_mtime for _, s in stats) < settle_seconds:
                continue
            digest = hashlib.sha256(mapping_stat.encode())
            for name, stat in stats:
                digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
            signatures[f"{site_dir.name}/{export_dir.name}"] = digest.hexdigest()[:16]
    return signatures
