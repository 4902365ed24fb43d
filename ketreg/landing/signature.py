"""A cheap signature of each export folder (file names, sizes, modification times), for noticing new or
changed exports without reading them. The content hash used for staging is computed later, once."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from ketreg.landing.discovery import EXPORT_ID, SITE_ID
from ketreg.landing.mapping import default_sites_dir, mapping_path
from ketreg.landing.safe_files import is_real_dir, list_dir


def export_signatures(
    landing: Path, settle_seconds: float = 0.0, sites_dir: Path | None = None, settling: set[str] | None = None
) -> dict[str, str]:
    """`{"site/export": signature}` for every export folder whose files have not changed for
    `settle_seconds` (a site still copying its files is left for the next look; its label is added to
    `settling` when given). A site's mapping file is part of its exports' signatures: a changed mapping
    changes what the files mean."""
    signatures: dict[str, str] = {}
    if not landing.is_dir():
        return signatures
    sites_dir = default_sites_dir() if sites_dir is None else sites_dir
    now = time.time()
    # lstat only: a link is never followed, even to look at its size (the scan rejects it by name).
    for site_dir in sorted(p for p in landing.iterdir() if is_real_dir(p) and SITE_ID.fullmatch(p.name)):
        mapping = mapping_path(sites_dir, site_dir.name)
        mapping_stat = f"mapping:{mapping.stat().st_size}:{mapping.stat().st_mtime_ns};" if mapping else ""
        for export_dir in (p for p in list_dir(site_dir) if EXPORT_ID.fullmatch(p.name)):
            # A linked export folder gets the signature of the link itself: a run then reports it as rejected,
            # and a change behind the link never triggers one.
            files = [p for p in list_dir(export_dir) if not p.name.startswith(".")] or [export_dir]
            stats = [(p.name, p.lstat()) for p in files]
            if stats and now - max(s.st_mtime for _, s in stats) < settle_seconds:
                if settling is not None:
                    settling.add(f"{site_dir.name}/{export_dir.name}")
                continue
            digest = hashlib.sha256(mapping_stat.encode())
            for name, stat in stats:
                digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
            signatures[f"{site_dir.name}/{export_dir.name}"] = digest.hexdigest()[:16]
    return signatures
