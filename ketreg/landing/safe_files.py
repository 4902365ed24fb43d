"""Open only what a site may send: regular files and folders physically inside the export folder.

A symbolic link (to a file or a folder), a device, a FIFO or a socket is never opened: `lstat` names what it
is, and files are opened with O_NOFOLLOW (a link swapped in after the check is refused by the kernel) and
O_NONBLOCK (a FIFO swapped in cannot hang the run), then checked again on the open descriptor. Readers that
need a path (polars, DuckDB) are given `/proc/self/fd/N` of the checked descriptor, so they read exactly the
file that was checked.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import BinaryIO

from ketreg.landing.limits import LandingLimits

LANDING_DOC = "docs/security.md"
# How many trailing components of a file's path are the site's to write, and so are opened one by one
# without following links: 3 in the landing folder (`<site>/<export>/<file>`); 1 for `ketreg check-export`,
# whose export folder is the site's own choice on its own machine.
_LINK_FREE_LEVELS: ContextVar[int] = ContextVar("link_free_levels", default=1)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)


class NotARegularEntry(ValueError):
    """A landing entry the registry does not read (a link, a device, …); the message says what it is."""


def _kind(mode: int) -> str | None:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return None


def entry_problem(path: Path, want_dir: bool) -> str | None:
    """Why `path` is not a real folder (`want_dir`) or a real file, without following links; None if it is."""
    try:
        mode = path.lstat().st_mode
    except OSError as exc:
        return f"cannot be inspected ({exc.strerror})"
    kind = _kind(mode)
    if kind is not None:
        return (f"is {kind}; the registry reads only {'folders' if want_dir else 'files'} stored in the landing "
                f"folder itself (no links, devices or pipes) and did not open it ({LANDING_DOC})")
    if want_dir and not stat.S_ISDIR(mode):
        return "is a file, not a folder"
    if not want_dir and not stat.S_ISREG(mode):
        return "is a folder, not a file"
    return None


def is_real_dir(path: Path) -> bool:
    return entry_problem(path, want_dir=True) is None


def is_real_file(path: Path) -> bool:
    return entry_problem(path, want_dir=False) is None


def list_dir(path: Path) -> list[Path]:
    """The entries of a real folder (an empty list for a link or anything else)."""
    if not is_real_dir(path):
        return []
    return sorted(path.iterdir())


@contextmanager
def link_free_levels(levels: int) -> Iterator[None]:
    """Inside, `open_landing_file` opens the last `levels` components of a path without following links."""
    token = _LINK_FREE_LEVELS.set(levels)
    try:
        yield
    finally:
        _LINK_FREE_LEVELS.reset(token)


def _open_without_links(path: Path) -> int:
    """Open `path`, walking its last components with O_NOFOLLOW from the folder above them: a site folder or
    export folder swapped for a link after the scan is refused by the kernel, not followed."""
    levels = max(1, min(_LINK_FREE_LEVELS.get(), len(path.parts) - 1))
    names = path.parts[-levels:]
    dir_fd = os.open(Path(*path.parts[:-levels]) if len(path.parts) > levels else Path("."), _DIR_FLAGS)
    try:
        for name in names[:-1]:
            next_fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = next_fd
        return os.open(names[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0),
                       dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


def _first_problem(path: Path) -> str | None:
    levels = max(1, min(_LINK_FREE_LEVELS.get(), len(path.parts) - 1))
    for depth in range(levels - 1, -1, -1):
        entry = path.parents[depth - 1] if depth else path
        problem = entry_problem(entry, want_dir=depth > 0)
        if problem is not None:
            return f"({entry.name}) {problem}" if depth else problem
    return None


@contextmanager
def open_landing_file(path: Path, where: str, limits: LandingLimits) -> Iterator[BinaryIO]:
    """The checked file opened for binary reading; raises NotARegularEntry for anything but a regular file
    (or a path through a linked folder) and LimitExceeded for a file above `max_file_bytes`."""
    try:
        fd = _open_without_links(path)
    except OSError as exc:
        problem = _first_problem(path) or f"cannot be opened ({exc.strerror})"
        raise NotARegularEntry(f"{where} {problem}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularEntry(f"{where} is {_kind(info.st_mode) or 'not a regular file'}; not read")
        if info.st_nlink > 1:
            # A hard link is a second name for a file stored elsewhere (another site's export, a key file).
            raise NotARegularEntry(
                f"{where} is a hard link ({info.st_nlink} names for one file); send a copy of the file, not a "
                f"link ({LANDING_DOC})"
            )
        if info.st_size > limits.max_file_bytes:
            raise limits.exceeded(where, "the file's size in bytes", info.st_size, "max_file_bytes")
        os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def fd_path(handle: BinaryIO, fallback: Path) -> str:
    """A path naming exactly the open file, for libraries that only take paths."""
    proc = f"/proc/self/fd/{handle.fileno()}"
    return proc if os.path.exists(proc) else str(fallback)
