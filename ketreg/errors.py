"""Errors that are the operator's to fix (a path, a flag, a configuration file): the command line prints them
as one line and exits 2, never with a traceback."""

from __future__ import annotations

import os
from pathlib import Path


class UsageError(Exception):
    """Bad usage or configuration; the message says what is wrong and how to fix it."""


def writable_file_location(path: Path, what: str) -> None:
    """Raise UsageError unless a file can be created at `path`: the nearest folder that exists on its way is
    a writable folder (nothing is created here), so a wrong `--db` fails before a run starts instead of deep
    inside it."""
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder; give the path of a DuckDB file")
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{what} {path}: its folder cannot be created ({existing} is not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: the folder {existing} is not writable")


def existing_folder(path: Path, what: str) -> Path:
    """`path` if it is a folder, else UsageError naming it."""
    if not path.is_dir():
        raise UsageError(f"{what} {path} is not a folder")
    return path
