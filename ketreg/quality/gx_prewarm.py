"""Great Expectations imported beside the run instead of in the quality step: importing it costs 3–5 s of CPU,
and on a 2-core machine a second process does that while the run's first steps (landing, staging, registry,
metrics) work, so the quality step finds it ready. The validations then run in that process, through the same
`GxSession` the step would otherwise open in its own process.

`ketreg run` starts one for runs that certainly validate (a rebuild, a first run: `prewarmed_great_expectations`)
when a core is free (`core_to_spare`); the quality step takes it (`open_session`) and ends it once its Data Docs
are written. Without one — busy cores, tests, `dagster dev`, incremental runs that may skip the quality step, a
process that has imported Great Expectations already — the session runs in the step's own process.

The process is a fresh interpreter (`python -m ketreg.quality.gx_prewarm`: nothing of the run's state, no
inherited connections or threads, no re-run of the caller's main script); it reads pickled calls on its stdin,
receives each part's DataFrame that way, and answers with counts only."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ketreg.quality.gx_session import ExpectationSpec, GxSession

_prewarmed: subprocess.Popen[bytes] | None = None  # the started process, until the quality step takes it


class RemoteSession:
    """A `GxSession` in the prewarmed process: the same methods, each call run there and its result returned.
    A failure there is raised here as a RuntimeError with the process's traceback."""

    def __init__(self, process: subprocess.Popen[bytes], data_docs_dir: Path | None, run_name: str) -> None:
        self._process = process
        self._call("open", data_docs_dir, run_name)

    def _call(self, method: str, *args: Any) -> Any:
        assert self._process.stdin is not None and self._process.stdout is not None
        try:
            pickle.dump((method, args), self._process.stdin)
            self._process.stdin.flush()
            succeeded, value = pickle.load(self._process.stdout)
        except (BrokenPipeError, EOFError) as exc:
            raise RuntimeError(
                f"the Great Expectations process ended unexpectedly (exit code {self._process.wait()})"
            ) from exc
        if not succeeded:
            raise RuntimeError(f"Great Expectations failed ({method}) in its process:\n{value}")
        return value

    def add_suite(self, table: str, expectations: list[ExpectationSpec]) -> None:
        self._call("add_suite", table, expectations)

    def validate(self, table: str, name: str, frame: Any) -> list[int]:
        result: list[int] = self._call("validate", table, name, frame)
        return result

    def build_docs(self) -> None:
        self._call("build_docs")


def _start() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ketreg.quality.gx_prewarm"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )


def _stop(process: subprocess.Popen[bytes], unused: bool = False) -> None:
    """End of input: the process returns once it has answered what it was sent. One no step took (the run failed
    before its quality step) is ended at once rather than waited for until its import is done."""
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()
    if unused:
        process.kill()
    process.wait()


def core_to_spare() -> bool:
    """Whether a core would otherwise idle (1-minute load average at most the cores less one). A second process
    pays only then: with the cores busy, importing beside the run takes CPU from it and saves no time (measured on
    2 cores at load 3.4–4.2: 1.3 s more CPU, no shorter run)."""
    return os.getloadavg()[0] <= (os.cpu_count() or 1) - 1


@contextmanager
def prewarmed_great_expectations(enabled: bool = True) -> Iterator[None]:
    """While the block runs, a process that imports Great Expectations waits for the quality step (when `enabled`
    and this process has not imported it already); the process ends with the block if no step took it."""
    global _prewarmed
    if not enabled or "great_expectations" in sys.modules:
        yield
        return
    process = _start()
    _prewarmed = process
    try:
        yield
    finally:
        untaken = _prewarmed is process
        _prewarmed = None
        if untaken:
            _stop(process, unused=True)


@contextmanager
def open_session(data_docs_dir: Path | None, run_name: str) -> Iterator[GxSession | RemoteSession]:
    """A Great Expectations session: in the prewarmed process when one is waiting (taken: one quality step per
    run), else in this process. The prewarmed process ends with the block, freeing its memory."""
    global _prewarmed
    process, _prewarmed = _prewarmed, None
    if process is None:
        yield GxSession(data_docs_dir, run_name)
        return
    try:
        yield RemoteSession(process, data_docs_dir, run_name)
    finally:
        _stop(process)


def _serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """The prewarmed process: import Great Expectations, then run the calls it is sent on one session until its
    input ends."""
    import great_expectations  # noqa: F401  (the point of this process: imported before the first call arrives)

    session: GxSession | None = None
    while True:
        try:
            method, args = pickle.load(requests)
        except EOFError:
            return
        try:
            if method == "open":
                session, value = GxSession(*args), None
            elif session is None:
                raise RuntimeError(f"{method}: no session is open")
            else:
                value = getattr(session, method)(*args)
            reply = (True, value)
        except Exception:
            reply = (False, traceback.format_exc())
        pickle.dump(reply, replies)
        replies.flush()


if __name__ == "__main__":
    # Ctrl-C stops the run, whose end closes this process's input: no traceback of an interrupted import here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The replies get their own copy of stdout; whatever the libraries print goes to stderr instead.
    _replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(sys.stdin.buffer, _replies)
    _replies.close()
    # Every reply is written: skip the interpreter's teardown (1.5 s of freeing Great Expectations' objects, which
    # the quality step would wait for), the operating system frees the process's memory at once.
    os._exit(0)
