"""Build the tables of the `metrics` schema: the SQL ones from `sql/metrics/`, and write the ones computed in
Python (regression, sample sizes) from data frames."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence

import duckdb
import polars as pl

from ketreg.incremental.sites import record_sites, run_site_scoped, sites_to_rebuild
from ketreg.warehouse.connection import sql_text
from ketreg.warehouse.transaction import transaction
from schemas.protocol import MetricSettings, Protocol

# Every table of the metrics schema, in the order they are built; each is an asset `metrics/<name>`.
METRIC_TABLES = ("patient_outcomes", "registry_metrics", "response_predictors", "study_planning", "patient_flow")


def t_quantile_975(degrees_of_freedom: int) -> float:
    """The 97.5th percentile of Student's t: the two-sided 95 % interval of a mean (DuckDB has no t quantile)."""
    from scipy import stats  # imported here: scipy.stats costs every Dagster process ~1 s otherwise

    return float(stats.t.ppf(0.975, degrees_of_freedom))


def prepare_metrics(con: duckdb.DuckDBPyConnection) -> None:
    """The schema the metrics live in (published to analysts as `metrics.<table>`), and the functions their SQL
    calls beyond DuckDB's own."""
    con.execute("CREATE SCHEMA IF NOT EXISTS metrics")
    con.execute("CREATE SCHEMA IF NOT EXISTS metrics_partial")
    # Already registered on this connection when it builds a second table (DuckDB cannot register a name twice).
    with contextlib.suppress(duckdb.NotImplementedException):
        con.create_function("t_quantile_975", t_quantile_975, ["BIGINT"], "DOUBLE", side_effects=False)


# Tables added up from per-site partial sums: the SQL table they are summed from (see PER_SITE_METRIC_TABLES).
SUMMED_FROM = {"registry_metrics": "site_tallies"}


_FINAL_ORDER_BY = re.compile(r"\nORDER BY [^;()]*;?\s*$")


def _unordered(query: str) -> str:
    """A query file's text without its closing ORDER BY (it orders rows for a reader; counted, their order means
    nothing, and sorting six million infusions by text keys cost seconds)."""
    unordered, found = _FINAL_ORDER_BY.subn("", query.strip())
    if not found:
        raise ValueError("expected the query to end with its ORDER BY")
    return unordered


def time_to_event_tallies_sql() -> str:
    """The statement that builds metrics_partial.time_to_event_tallies: the query of
    sql/metrics/time_to_event_tallies.sql over the relief episodes and treatment courses, whose queries (one
    source of truth for what is an event and what is censored) it is given as CTEs."""
    episodes, courses = (_unordered(sql_text(f"metrics/{name}.sql"))
                         for name in ("relief_episodes", "treatment_courses"))
    return (f"CREATE OR REPLACE TABLE metrics_partial.time_to_event_tallies AS\n"
            f"WITH relief_episodes AS (\n{episodes}\n),\n\ntreatment_courses AS (\n{courses}\n)\n\n"
            f"{sql_text('metrics/time_to_event_tallies.sql').strip().removesuffix(';')};\n")


def table_sql(name: str) -> str:
    """The SQL that (re)builds the table `name` of the metrics layer: its file `sql/metrics/<name>.sql`, or for
    the time-to-event tallies, that file's query composed with the two it reads."""
    if name == "time_to_event_tallies":
        return time_to_event_tallies_sql()
    return sql_text(f"metrics/{name}.sql")


def _run(con: duckdb.DuckDBPyConnection, text: str, parameters: Mapping[str, object]) -> None:
    """Execute `text` with the `$name` parameters it uses."""
    used = {name: value for name, value in parameters.items() if f"${name}" in text}
    con.execute(text, used) if used else con.execute(text)


def build_sql_table(
    con: duckdb.DuckDBPyConnection, name: str, protocol: Protocol, settings: MetricSettings,
    partial_sums_current: bool = False,
) -> int:
    """(Re)build `metrics.<name>` with `sql/metrics/<name>.sql` inside one transaction; returns its row count.
    A table summed from per-site partial sums (SUMMED_FROM) gets them rebuilt whole first, in the same
    transaction, unless the caller brought them up to date (`partial_sums_current`)."""
    prepare_metrics(con)
    parameters = {**protocol.as_sql_parameters(), **settings.as_sql_parameters()}
    with transaction(con):
        if name in SUMMED_FROM and not partial_sums_current:
            _run(con, table_sql(SUMMED_FROM[name]), parameters)
        _run(con, table_sql(name), parameters)
    ((rows,),) = con.execute(f"SELECT count(*) FROM metrics.{name}").fetchall()
    return rows


# Tables with one row per patient (or per infusion), each made from that patient's site's rows only: rebuilt for
# the sites whose registry rows changed (delete + insert, ketreg/incremental/sites.py), and the registry-wide
# figures then combined from them.
PER_SITE_METRIC_TABLES = {
    "patient_outcomes": "metrics.patient_outcomes",
    # Working store only: each site's partial sums of metrics.registry_metrics (sql/metrics/site_tallies.sql).
    "site_tallies": "metrics_partial.site_tallies",
    # Working store only: each site's counts per day behind metrics.time_to_event
    # (sql/metrics/time_to_event_tallies.sql).
    "time_to_event_tallies": "metrics_partial.time_to_event_tallies",
}


def build_sql_table_for_changed_sites(
    con: duckdb.DuckDBPyConnection, name: str, protocol: Protocol, settings: MetricSettings, shared_digest: str,
    run_id: str,
) -> list[str] | None:
    """Like `build_sql_table` for a PER_SITE_METRIC_TABLES table, but rebuild only the rows of the sites whose
    staged rows changed since it was last built, in one transaction. Returns the sites rebuilt, or None when
    the table was rebuilt whole (first build, or code, protocol, metric settings, key or mappings changed:
    `shared_digest`, which covers the protocol file the metric settings are read from)."""
    prepare_metrics(con)
    table = PER_SITE_METRIC_TABLES[name]
    sites = sites_to_rebuild(con, table, shared_digest, run_id)
    parameters = {**protocol.as_sql_parameters(), **settings.as_sql_parameters()}
    with transaction(con):
        if sites is None:
            _run(con, table_sql(name), parameters)
        elif sites:
            run_site_scoped(con, table_sql(name), parameters, sites)
        record_sites(con, table, shared_digest, run_id)
    return sites


def write_table(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> int:
    """Replace `metrics.<name>` with the rows of `frame` (its column types become the table's)."""
    prepare_metrics(con)
    con.register("_metric_frame", frame)
    try:
        con.execute(f"CREATE OR REPLACE TABLE metrics.{name} AS SELECT * FROM _metric_frame")
    finally:
        con.unregister("_metric_frame")
    return frame.height


def overall_metrics(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    """metric → (numerator, denominator, estimate, ci_low, ci_high, unit) of the overall rows."""
    rows = con.execute(
        "SELECT metric, numerator, denominator, estimate, ci_low, ci_high, unit FROM metrics.registry_metrics "
        "WHERE stratum_type = 'overall'"
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


# The order a full build writes a table's rows in (its SQL's ORDER BY). Rows rebuilt per site are appended, so
# readers ask for this order: the models then see their rows as after a full rebuild, and give the same bits.
_ROW_ORDER = {"patient_outcomes": "site_id, patient_key"}


def read_table(
    con: duckdb.DuckDBPyConnection, name: str, columns: Sequence[str] = (), ordered: bool = True
) -> pl.DataFrame:
    """Every row of `metrics.<name>` (only `columns` when given) as a polars frame, in the order a full build
    writes them (in any order when not `ordered`: for readers whose results do not depend on it)."""
    order = f" ORDER BY {_ROW_ORDER[name]}" if name in _ROW_ORDER and ordered else ""
    selected = ", ".join(columns) if columns else "*"
    return con.sql(f"SELECT {selected} FROM metrics.{name}{order}").pl()
