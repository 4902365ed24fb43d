"""A child process for the interruption tests (test_atomicity.py): it runs one real step of ketreg — publishing
the analysts' file or staging the landing folder — on a real DuckDB connection wrapped so that it stops, just
before its N-th statement, prints `PAUSED <n>` and waits to be killed. `pause_at = replace` stops instead just
before the rename that publishes. When the step ends first, it prints `DONE <statements> <kind> <kind> …` (the
first word of each statement, so a test can choose a moment inside a transaction).

    python interrupted_step.py publish <work_db> <analyst_db> <pause_at>
    python interrupted_step.py stage <work_db> <landing> <pause_at>

Nothing of ketreg is replaced: the wrapper only counts statements and waits; every statement runs unchanged.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import duckdb


def _pause(where: str) -> None:
    print(f"PAUSED {where}", flush=True)
    time.sleep(600)  # the parent kills this process; it never wakes
    sys.exit(3)


class PausingConnection:
    """A DuckDB connection that waits before its N-th statement (execute, begin, commit, rollback)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, pause_at: int | None) -> None:
        self._con = con
        self._pause_at = pause_at
        self.statements = 0
        self.kinds: list[str] = []  # the first word of each statement (BEGIN, COMMIT, INSERT, …)

    def _count(self, kind: str) -> None:
        self.statements += 1
        self.kinds.append(kind.split(None, 1)[0].upper() if kind.strip() else "?")
        if self.statements == self._pause_at:
            _pause(str(self.statements))

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self._count(str(args[0]) if args else "?")
        return self._con.execute(*args, **kwargs)

    def begin(self) -> Any:
        self._count("BEGIN")
        return self._con.begin()

    def commit(self) -> Any:
        self._count("COMMIT")
        return self._con.commit()

    def rollback(self) -> Any:
        self._count("ROLLBACK")
        return self._con.rollback()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def main(step: str, work_db: str, target: str, pause_at: str) -> None:
    statement = None if pause_at == "replace" else int(pause_at)
    if pause_at == "replace":
        real_replace = os.replace

        def paused_replace(source: Any, destination: Any) -> None:
            _pause("replace")
            real_replace(source, destination)

        os.replace = paused_replace
    con = duckdb.connect(work_db)
    wrapped = PausingConnection(con, statement)
    if step == "publish":
        from ketreg.registry.publish import publish

        publish(wrapped, Path(target))  # type: ignore[arg-type]
    else:
        from ketreg.landing.discovery import scan_landing
        from ketreg.staging.stage import stage_landing
        from ketreg.staging.tables import ensure_staging_tables
        from schemas.protocol import load_protocol

        ensure_staging_tables(con)
        stage_landing(wrapped, scan_landing(Path(target)).exports, load_protocol())  # type: ignore[arg-type]
    con.close()
    print(f"DONE {wrapped.statements} {' '.join(wrapped.kinds)}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
