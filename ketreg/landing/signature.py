"""A cheap signature of each export folder (file names, sizes, modification times), for noticing new or
changed exports without reading them. The content hash used for staging is computed later, once."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from ketreg.landing.discovery import EXPORT_ID, SITE_ID


def export_signatures(landing: Path, settle_seconds: float = 0.0) -> dict[str, str]:
    """`{"site/export": signature}` for every export folder whose files have not changed for
    `settle_seconds` (a site still copying its files is left for the next look)."""
    signatures: dict[str, str] = {}
    if not landing.is_dir():
        return signatures
    now = time.time()
    for site_dir in sorted(p for p in landing.iterdir() if p.is_dir() and SITE_ID.match(p.name)):
        for export_dir in sorted(p for p in site_dir.iterdir() if p.is_dir() and EXPORT_ID.match(p.name)):
            files = sorted(p for p in export_dir.iterdir() if p.is_file() and not p.name.startswith("."))
            stats = [(p.name, p.stat()) for p in files]
            if stats and now - max(s.st_mtime for _, s in stats) < settle_seconds:
                continue
            digest = hashlib.sha256()
            for name, stat in stats:
                digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
            signatures[f"{site_dir.name}/{export_dir.name}"] = digest.hexdigest()[:16]
    return signatures
