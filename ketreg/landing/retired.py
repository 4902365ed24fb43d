"""Retiring a site on purpose: the only way a site's data may leave the published registry.

A site folder that holds a file named `RETIRED` (`<landing>/<site_id>/RETIRED`, its text the reason) is
retired: its exports are not read, and the publish guard lets its data leave the registry. `ketreg run
--retire-site SITE` does the same for one run. Without either, a run that would drop a site refuses to publish,
so an unmounted share, a wrong landing path or a folder deleted by mistake never empties the registry.
"""

from __future__ import annotations

from pathlib import Path

TOMBSTONE = "RETIRED"


def tombstoned_sites(landing: Path) -> dict[str, str]:
    """`{site_id: reason}` of every site folder of `landing` holding a `RETIRED` file (reason: its first
    line, at most 200 characters; the file is the operator's, but its text is still not trusted to be short)."""
    retired: dict[str, str] = {}
    if not landing.is_dir():
        return retired
    for site_dir in sorted(landing.iterdir()):
        tombstone = site_dir / TOMBSTONE
        if site_dir.is_dir() and not site_dir.is_symlink() and tombstone.is_file() and not tombstone.is_symlink():
            with tombstone.open("rb") as handle:
                first = handle.read(200).decode("utf-8", errors="replace").splitlines()
            retired[site_dir.name] = first[0].strip() if first else ""
    return retired


def retired_sites(landing: Path, retire: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The sites retired for a run: tombstoned in the landing folder or named with `--retire-site`."""
    return sorted({*tombstoned_sites(landing), *retire})


def landing_is_empty(landing: Path) -> bool:
    """True when the folder holds nothing but hidden entries: nothing a site sent, so most likely an
    unmounted share or a wrong path rather than a registry that should become empty."""
    return not any(not entry.name.startswith(".") for entry in landing.iterdir())
