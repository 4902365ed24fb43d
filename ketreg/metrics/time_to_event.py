"""Time-to-event metrics: Kaplan–Meier curves for the duration of relief per infusion and for time on treatment,
and Aalen–Johansen cumulative incidence of discontinuation by reason (the reasons compete with each other).

The event times come from `sql/metrics/relief_episodes.sql` and `sql/metrics/treatment_courses.sql` (they say
what is an event and what is censored, and why). The pipeline does not read them episode by episode: each site's
counts per day (`sql/metrics/time_to_event_tallies.sql`, rebuilt only for the sites whose rows changed) are added
up, and the curves fitted on those counts — both estimators depend on their subjects only through the numbers of
events, censorings and subjects at risk on each day, so the tables are bit for bit those of a fit on every
episode (`time_to_event_tables`; tested). Kaplan–Meier uses lifelines (Greenwood variance, log(−log)
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


# metrics_partial.time_to_event_tallies (sql/metrics/time_to_event_tallies.sql): per site, endpoint, status, day,
# event and reason, the episodes and (of them, each patient's first analysed one) the patients.
TALLY_SCHEMA = {
    "site_id": pl.String,
    "endpoint": pl.String,
    "status": pl.String,
    "time_days": pl.Int64,
    "event": pl.Boolean,
    "reason": pl.String,
    "episodes": pl.Int64,
    "patients": pl.Int64,
}


def read_tallies(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every site's time-to-event tallies (a few rows per site and day), in TALLY_SCHEMA's types."""
    return con.sql("SELECT * FROM metrics_partial.time_to_event_tallies").pl().cast(TALLY_SCHEMA).select(
        list(TALLY_SCHEMA))


def tallies_from_rows(episodes: pl.DataFrame, courses: pl.DataFrame) -> pl.DataFrame:
    """The tallies of sql/metrics/time_to_event_tallies.sql, counted from the episodes' and courses' rows."""
    first = (
        pl.col("time_days").is_not_null()
        & (pl.int_range(pl.len()).over("patient_key", order_by=["time_days", "infusion_key"], nulls_last=True) == 0)
    )
    relief = episodes.select(
        "site_id", pl.lit(RELIEF).alias("endpoint"), "status", "time_days", pl.col("relief_ended").alias("event"),
        pl.lit(None, pl.String).alias("reason"), first.alias("first_of_patient"),
    )
    treatment = courses.select(
        "site_id", pl.lit(TIME_ON_TREATMENT).alias("endpoint"), "status", "time_days",
        pl.col("discontinued").alias("event"), pl.col("reason").cast(pl.String), pl.lit(True).alias("first_of_patient"),
    )
    frames = [frame.cast({"time_days": pl.Int64, "event": pl.Boolean}) for frame in (relief, treatment)]
    return pl.concat(frames).group_by("site_id", "endpoint", "status", "time_days", "event", "reason").agg(
        pl.len().cast(pl.Int64).alias("episodes"), pl.col("first_of_patient").sum().cast(pl.Int64).alias("patients"),
    ).select(list(TALLY_SCHEMA))


def kaplan_meier(
    times: np.ndarray, events: np.ndarray, alpha: float = 0.05, counts: np.ndarray | None = None
) -> tuple[list[dict], dict]:
    """The Kaplan–Meier curve (one row per distinct time, from 0) and the median with its 95 % CI; `counts`: how
    many subjects each (time, event) row stands for (one each when not given). lifelines fits from its table of
    subjects, events and censorings per time, which it builds by adding up each row's weight (one, unless given):
    whole numbers, exact in any order, so counted rows give the same table, and the same bits, as every subject's
    own row (tested)."""
    # Imported here: lifelines takes about 2 s to import, which every Dagster process and `ketreg run`'s
    # summary would otherwise pay.
    from lifelines import KaplanMeierFitter
    from lifelines.utils import median_survival_times

    weights = None if counts is None else np.asarray(counts, dtype=np.float64)
    fitter = KaplanMeierFitter(alpha=alpha).fit(times, event_observed=events, weights=weights)
    table = fitter.event_table
    band = fitter.confidence_interval_
    # Whole columns as arrays: reading the frames cell by cell (.iloc) took half the step's time.
    columns = zip(table.index.to_numpy(), table["at_risk"].to_numpy(), table["observed"].to_numpy(),
                  table["censored"].to_numpy(), fitter.survival_function_.iloc[:, 0].to_numpy(),
                  band.iloc[:, 0].to_numpy(), band.iloc[:, 1].to_numpy(), strict=True)
    rows = [{
        "time_days": float(time),
        "at_risk": int(at_risk),
        "events": int(observed),
        "censored": int(censored),
        "survival": _round(float(survival)),
        "ci_low": _round(float(low)),
        "ci_high": _round(float(high)),
    } for time, at_risk, observed, censored, survival, low, high in columns]
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


def cumulative_incidence(
    times: np.ndarray, causes: np.ndarray, cause: int, alpha: float = 0.05, counts: np.ndarray | None = None
) -> list[dict]:
    """Aalen–Johansen cumulative incidence of `cause` (causes: 0 censored, 1… competing causes), one row per
    distinct time from 0, with a log(−log) 95 % interval from statsmodels' standard error; `counts`: how many
    subjects each (time, cause) row stands for (one each when not given)."""
    counts = np.ones(times.size, dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
    distinct, position = np.unique(times, return_inverse=True)
    subjects = np.bincount(position, weights=counts, minlength=distinct.size).astype(np.int64)
    at_risk = np.cumsum(subjects[::-1])[::-1]
    events = np.bincount(position, weights=counts * (causes == cause), minlength=distinct.size).astype(np.int64)
    censored = np.bincount(position, weights=counts * (causes == 0), minlength=distinct.size).astype(np.int64)
    incidence = np.zeros(distinct.size)
    se = np.zeros(distinct.size)
    if (causes[counts > 0] > 0).any():
        # Imported here, as scipy in `_z` and lifelines in `kaplan_meier`: the run summary reads this module for
        # its relief line, and a run whose metrics were skipped would otherwise import statsmodels (1.4 s) for it.
        from statsmodels.duration.survfunc import CumIncidenceRight

        with warnings.catch_warnings():
            # statsmodels divides 0/0 at times where nobody is left at risk; those rows repeat the last value.
            warnings.simplefilter("ignore", RuntimeWarning)
            # One row per subject: statsmodels gives no standard error for weighted rows. Its sums are counts
            # of rows per time (whole numbers, exact in any order), so the rows' order does not change a bit.
            fit = CumIncidenceRight(np.repeat(times, counts), np.repeat(causes, counts))
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
        "time_days": 0.0, "at_risk": int(counts.sum()), "events": 0, "censored": 0,
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
    from scipy import stats

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
    cumulative incidence of discontinuation by reason overall: fitted on every episode's own row. The pipeline
    fits the same curves on the sites' tallies (`time_to_event_tables_from_tallies`); this is what they are
    tested against."""
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


def time_to_event_tables_from_tallies(
    tallies: pl.DataFrame, alpha: float = 0.05
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The tables of `time_to_event_tables` from the sites' tallies (TALLY_SCHEMA) instead of every episode:
    each curve is fitted on the counts of its stratum's sites added up per day."""
    curves: list[dict] = []
    summaries: list[dict] = []
    for endpoint in (RELIEF, TIME_ON_TREATMENT):
        analysed = tallies.filter((pl.col("endpoint") == endpoint) & pl.col("time_days").is_not_null())
        for stratum_type, stratum, part in _strata(analysed):
            shared = {"endpoint": endpoint, "stratum_type": stratum_type, "stratum": stratum}
            per_day = part.group_by("time_days", "event").agg(pl.col("episodes").sum()).sort("time_days", "event")
            events = per_day["event"].to_numpy().astype(bool)
            counts = per_day["episodes"].to_numpy()
            summary = {**shared, "patients": int(part["patients"].sum()), "events": int(counts[events].sum()),
                       "median_days": None, "ci_low": None, "ci_high": None}
            if per_day.height:
                rows, median = kaplan_meier(per_day["time_days"].cast(pl.Float64).to_numpy(), events, alpha, counts)
                curves += [{**shared, **row} for row in rows]
                summary.update(median)
            summaries.append(summary)
    courses = tallies.filter(pl.col("endpoint") == TIME_ON_TREATMENT)
    reasons = sorted(courses.filter(pl.col("event"))["reason"].drop_nulls().unique().to_list())
    codes = {reason: index for index, reason in enumerate(reasons, start=1)}
    cause = pl.col("reason").replace_strict(codes, default=0, return_dtype=pl.Int64).fill_null(0).alias("cause")
    per_cause = courses.group_by("time_days", cause).agg(pl.col("episodes").sum()).sort("time_days", "cause")
    times = per_cause["time_days"].cast(pl.Float64).to_numpy()
    causes = per_cause["cause"].to_numpy()
    counts = per_cause["episodes"].to_numpy()
    for reason, code in codes.items():
        shared = {"endpoint": DISCONTINUATION, "stratum_type": "reason", "stratum": reason}
        rows = cumulative_incidence(times, causes, code, alpha, counts)
        curves += [{**shared, **row} for row in rows]
        summaries.append({**shared, "patients": int(counts.sum()), "events": int(counts[causes == code].sum()),
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
