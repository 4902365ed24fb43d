"""Time-to-event metrics: Kaplan–Meier curves for the duration of relief per infusion and for time on treatment,
and Aalen–Johansen cumulative incidence of discontinuation by reason (the reasons compete with each other).

The event times come from `sql/metrics/relief_episodes.sql` and `sql/metrics/treatment_courses.sql` (they say
what is an event and what is censored, and why). Kaplan–Meier uses lifelines (Greenwood variance, log(−log)
95 % pointwise intervals, median CI by inverting them); the cumulative incidence uses statsmodels'
`CumIncidenceRight`, which handles tied days exactly — lifelines' AalenJohansenFitter breaks ties by random
jitter, which would make the published figures change from run to run. The tests check both against the other
library.
"""

from __future__ import annotations

import math
import warnings

import duckdb
import numpy as np
import polars as pl
from scipy import stats
from statsmodels.duration.survfunc import CumIncidenceRight

from ketreg.warehouse.connection import sql_text

CURVE_SCHEMA = {
    "endpoint": pl.String,
    "stratum_type": pl.String,
    "stratum": pl.String,
    "time_days": pl.Float64,
    "at_risk": pl.Int64,
    "events": pl.Int64,
    "censored": pl.Int64,
    "survival": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
}
SUMMARY_SCHEMA = {
    "endpoint": pl.String,
    "stratum_type": pl.String,
    "stratum": pl.String,
    "patients": pl.Int64,
    "events": pl.Int64,
    "median_days": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
}
RELIEF = "relief_duration"
TIME_ON_TREATMENT = "time_on_treatment"
DISCONTINUATION = "discontinuation_cumulative_incidence"
# Published estimates are rounded here: the libraries' last bits depend on summation order, and an analyst's
# query must give the same digits on every run (12 significant digits are far beyond any clinical meaning).
DIGITS = 12


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{DIGITS}g}")


def relief_episodes(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """One row per cohort infusion: time_days, relief_ended, status (see sql/metrics/relief_episodes.sql)."""
    return con.sql(sql_text("metrics/relief_episodes.sql")).pl()


def treatment_courses(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """One row per treated cohort patient: time_days, discontinued, reason, status."""
    return con.sql(sql_text("metrics/treatment_courses.sql")).pl()


def _for_curves(con: duckdb.DuckDBPyConnection, sql_file: str, keys: tuple[str, ...],
                columns: tuple[str, ...]) -> pl.DataFrame:
    """The query's rows with only what the curves read, each pseudonymous key replaced by its rank: the keys
    are long text, and at a hundred sites (6 M infusions) the full rows alone took about a gigabyte in memory.
    Ranks keep the keys' order, so the rows sort as they would by key and the tables come out identical."""
    query = sql_text(sql_file).strip().removesuffix(";")
    ranks = ", ".join(f"dense_rank() OVER (ORDER BY {key}) AS {key}" for key in keys)
    return con.sql(f"SELECT site_id, {ranks}, {', '.join(columns)} FROM ({query}\n)").pl()


def relief_episodes_for_curves(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """`relief_episodes` as `time_to_event_tables` reads it (keys as ranks), with each episode's status."""
    return _for_curves(con, "metrics/relief_episodes.sql", ("patient_key", "infusion_key"),
                       ("time_days", "relief_ended", "status"))


def treatment_courses_for_curves(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """`treatment_courses` as `time_to_event_tables` reads it (keys as ranks)."""
    return _for_curves(con, "metrics/treatment_courses.sql", ("patient_key",), ("time_days", "discontinued", "reason"))


def kaplan_meier(times: np.ndarray, events: np.ndarray, alpha: float = 0.05) -> tuple[list[dict], dict]:
    """The Kaplan–Meier curve (one row per distinct time, from 0) and the median with its 95 % CI."""
    # Imported here: lifelines takes about 2 s to import, which every Dagster process and `ketreg run`'s
    # summary would otherwise pay.
    from lifelines import KaplanMeierFitter
    from lifelines.utils import median_survival_times

    fitter = KaplanMeierFitter(alpha=alpha).fit(times, event_observed=events)
    table = fitter.event_table
    survival = fitter.survival_function_.iloc[:, 0]
    band = fitter.confidence_interval_
    rows = []
    for position, time in enumerate(table.index):
        rows.append({
            "time_days": float(time),
            "at_risk": int(table["at_risk"].iloc[position]),
            "events": int(table["observed"].iloc[position]),
            "censored": int(table["censored"].iloc[position]),
            "survival": _round(float(survival.iloc[position])),
            "ci_low": _round(float(band.iloc[position, 0])),
            "ci_high": _round(float(band.iloc[position, 1])),
        })
    median_ci = median_survival_times(band)
    summary = {
        "median_days": _finite(fitter.median_survival_time_),
        "ci_low": _finite(median_ci.iloc[0, 0]),
        "ci_high": _finite(median_ci.iloc[0, 1]),
    }
    return rows, summary


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def cumulative_incidence(times: np.ndarray, causes: np.ndarray, cause: int, alpha: float = 0.05) -> list[dict]:
    """Aalen–Johansen cumulative incidence of `cause` (causes: 0 censored, 1… competing causes), one row per
    distinct time from 0, with a log(−log) 95 % interval from statsmodels' standard error."""
    distinct = np.unique(times)
    at_risk = np.array([(times >= t).sum() for t in distinct])
    events = np.array([((times == t) & (causes == cause)).sum() for t in distinct])
    censored = np.array([((times == t) & (causes == 0)).sum() for t in distinct])
    incidence = np.zeros(distinct.size)
    se = np.zeros(distinct.size)
    if (causes > 0).any():
        with warnings.catch_warnings():
            # statsmodels divides 0/0 at times where nobody is left at risk; those rows repeat the last value.
            warnings.simplefilter("ignore", RuntimeWarning)
            fit = CumIncidenceRight(times, causes)
        fitted_times = np.asarray(fit.times)
        values = np.asarray(fit.cinc[cause - 1])
        errors = np.asarray(fit.cinc_se[cause - 1])
        # statsmodels reports the cumulative incidence at each event time; between them it is flat.
        positions = np.searchsorted(fitted_times, distinct, side="right") - 1
        has = positions >= 0
        incidence[has] = values[positions[has]]
        se[has] = errors[positions[has]]
    z = _z(alpha)
    rows = [{
        "time_days": 0.0, "at_risk": int(times.size), "events": 0, "censored": 0,
        "survival": 0.0, "ci_low": None, "ci_high": None,
    }] if distinct.size == 0 or distinct[0] > 0 else []
    for time, n, d, c, value, error in zip(distinct, at_risk, events, censored, incidence, se, strict=True):
        low, high = _loglog_interval(float(value), float(error), z)
        rows.append({
            "time_days": float(time), "at_risk": int(n), "events": int(d), "censored": int(c),
            "survival": _round(float(value)), "ci_low": _round(low), "ci_high": _round(high),
        })
    return rows


def _z(alpha: float) -> float:
    return float(stats.norm.isf(alpha / 2))


def _loglog_interval(value: float, se: float, z: float) -> tuple[float | None, float | None]:
    """The interval F^exp(±z·se/(F·log F)) that stays inside 0–1 (Kalbfleisch–Prentice transform for F)."""
    if not 0 < value < 1 or not math.isfinite(se) or se <= 0:
        return (None, None) if value == 0 else (value, value)
    spread = z * se / (value * abs(math.log(value)))
    return value ** math.exp(spread), value ** math.exp(-spread)


def _first_reach(rows: list[dict], level: float) -> float | None:
    for row in rows:
        if row["survival"] is not None and row["survival"] >= level:
            return row["time_days"]
    return None


def _strata(frame: pl.DataFrame) -> list[tuple[str, str, pl.DataFrame]]:
    strata = [("overall", "all", frame)]
    for site in sorted(frame["site_id"].unique().to_list()):
        strata.append(("site", site, frame.filter(pl.col("site_id") == site)))
    return strata


def time_to_event_tables(
    episodes: pl.DataFrame, courses: pl.DataFrame, alpha: float = 0.05
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """metrics.time_to_event (curves) and metrics.time_to_event_summary (medians), overall and by site; the
    cumulative incidence of discontinuation by reason overall."""
    curves: list[dict] = []
    summaries: list[dict] = []
    analysed = episodes.filter(pl.col("time_days").is_not_null()).sort("site_id", "patient_key", "infusion_key")
    courses = courses.sort("site_id", "patient_key")
    for endpoint, frame, event_column in ((RELIEF, analysed, "relief_ended"),
                                          (TIME_ON_TREATMENT, courses, "discontinued")):
        for stratum_type, stratum, part in _strata(frame):
            shared = {"endpoint": endpoint, "stratum_type": stratum_type, "stratum": stratum}
            events = part[event_column].cast(pl.Boolean).to_numpy().astype(bool)
            summary = {**shared, "patients": part["patient_key"].n_unique(), "events": int(events.sum()),
                       "median_days": None, "ci_low": None, "ci_high": None}
            if part.height:
                rows, median = kaplan_meier(part["time_days"].cast(pl.Float64).to_numpy(), events, alpha)
                curves += [{**shared, **row} for row in rows]
                summary.update(median)
            summaries.append(summary)
    reasons = sorted(courses.filter(pl.col("discontinued"))["reason"].drop_nulls().unique().to_list())
    codes = {reason: index for index, reason in enumerate(reasons, start=1)}
    causes = courses.select(pl.col("reason").replace_strict(codes, default=0).fill_null(0))["reason"].to_numpy()
    times = courses["time_days"].cast(pl.Float64).to_numpy()
    for reason, code in codes.items():
        shared = {"endpoint": DISCONTINUATION, "stratum_type": "reason", "stratum": reason}
        rows = cumulative_incidence(times, causes, code, alpha)
        curves += [{**shared, **row} for row in rows]
        # The "median" of a cumulative incidence: the first day half the patients have stopped for this reason.
        summaries.append({**shared, "patients": courses.height, "events": int((causes == code).sum()),
                          "median_days": _first_reach(rows, 0.5), "ci_low": None, "ci_high": None})
    return pl.DataFrame(curves, schema=CURVE_SCHEMA), pl.DataFrame(summaries, schema=SUMMARY_SCHEMA)


def median_relief_line(con: duckdb.DuckDBPyConnection) -> str | None:
    """The run summary's line on relief duration (Kaplan–Meier, censoring counted), when the table is built."""
    built = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'metrics' "
                        "AND table_name = 'time_to_event_summary'").fetchall()[0][0]
    if not built:
        return None
    rows = con.execute("SELECT patients, events, median_days, ci_low, ci_high FROM metrics.time_to_event_summary "
                       f"WHERE endpoint = '{RELIEF}' AND stratum_type = 'overall'").fetchall()
    if not rows or rows[0][2] is None:
        return None
    patients, events, median, low, high = rows[0]
    interval = f"{low:g}–{'not reached' if high is None else f'{high:g}'}"
    return (f"  median relief per infusion (Kaplan–Meier, censored at the next infusion): {median:g} days "
            f"(95 % CI {interval}; {events} relief endings seen, {patients} patients)")
