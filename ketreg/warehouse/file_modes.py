"""File modes of what the pipeline writes. The working store holds the site id ↔ pseudonym map, so it (and
DuckDB's write-ahead log beside it, which DuckDB re-creates at every checkpoint) is private to the account
that runs the registry (0600); the analysts' file and the cross-site reports keep the modes the account's
umask gives, as before. Data-manager folders set their own modes (0640 / 0750, ketreg/reports/private_files.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PRIVATE_FILE = 0o600


def _process_umask() -> int:
    current = os.umask(0o077)
    os.umask(current)
    return current


# The account's umask when ketreg was imported, before `private_umask` ever narrowed it.
SHARED_UMASK = _process_umask()


@contextmanager
def private_umask() -> Iterator[None]:
    """Files created inside are 0600 (folders 0700), whoever creates them (DuckDB's WAL included). The
    umask is per process: the pipeline's steps run one after another in one process, so nothing else is
    creating files meanwhile except the step itself, whose shared outputs `share` fixes afterwards."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def make_private(path: Path) -> None:
    """0600, if the file exists."""
    if path.exists():
        path.chmod(PRIVATE_FILE)


def share(path: Path, recursive: bool = True) -> None:
    """Give `path` (a file, or a folder and, if `recursive`, everything in it) the modes the account's umask
    would have given, undoing `private_umask` for outputs meant for others (the analysts' file, reports)."""
    if not path.exists():
        return
    for item in [path, *(path.rglob("*") if recursive and path.is_dir() else [])]:
        if item.is_symlink():
            continue
        item.chmod((0o777 if item.is_dir() else 0o666) & ~SHARED_UMASK)
