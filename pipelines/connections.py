"""The run's connections, as Dagster resources apart from its settings (pipelines/resources.py): the working
DuckDB store every step reads and writes, and the optional PostgreSQL publish target. They say where and how a
run works, never what it builds: none of their fields is an input of the run (pipelines/skipping.py), so a new
memory budget or another server leaves the registry as it is.

The environment reaches them from `ketreg.environment` only, as for the settings."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb

from ketreg import environment
from ketreg.warehouse import connection


def default_work_db(analyst_db: Path | str) -> Path:
    """Where the working store lives unless told: `<analysts' stem>_work.duckdb` beside the analysts' file."""
    analyst = Path(analyst_db)
    # Named <stem>_work so its DuckDB catalog name never collides with the schemas inside it.
    return analyst.with_name(f"{analyst.stem}_work.duckdb")


class WorkingStore(dg.ConfigurableResource):
    """The pipeline's private DuckDB file (staging, registry, metrics, quality, the incremental ledger). It
    admits one writer: every step opens it in the run's own process (`in_process_executor`)."""

    # The file; `WorkingStore.beside(analyst_db)` (what `ketreg run` and the daemon's defaults use) puts it
    # beside the analysts' file.
    path: str
    # DuckDB's memory budget ("1GB", "512MB"; beyond it DuckDB spills to disk) and its worker threads;
    # empty / 0 = $KETREG_DUCKDB_MEMORY_LIMIT / $KETREG_DUCKDB_THREADS, else 512MB and one per core.
    memory_limit: str = ""
    threads: int = 0

    @classmethod
    def beside(cls, analyst_db: Path | str, path: Path | str = "", memory_limit: str = "", threads: int = 0
               ) -> "WorkingStore":
        """The store at `path`, else at its default place beside the analysts' file `analyst_db`."""
        return cls(path=str(path or default_work_db(analyst_db)), memory_limit=memory_limit, threads=threads)

    @property
    def file(self) -> Path:
        return Path(self.path)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection, closed on exit (ketreg/warehouse/connection.py)."""
        # The fields win; unset, the environment's budget (read when the connection opens, as before).
        memory_limit = self.memory_limit or environment.value(environment.DUCKDB_MEMORY_LIMIT, "")
        threads = self.threads or int(environment.value(environment.DUCKDB_THREADS, "0") or "0")
        with connection.connect(self.file, memory_limit, threads) as con:
            yield con


class PostgresTarget(dg.ConfigurableResource):
    """Also publish to PostgreSQL (docs/deployment.md; publish/postgres_registry). Unset, the run publishes the
    DuckDB analysts' file only."""

    # A postgresql:// URL without a password (PGPASSWORD or ~/.pgpass hold it); empty = no PostgreSQL publish.
    url: str = ""
    # Site roles are <prefix><site_id>; each reads only its own site's rows of `site_private`.
    site_role_prefix: str = "ketreg_site_"
