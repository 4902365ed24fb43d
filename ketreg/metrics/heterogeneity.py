"""Between-site heterogeneity of the responder rate: a random-effects meta-analysis of the sites' logit
responder rates (DerSimonian–Laird with τ² = max(0, ·), and REML), with Cochran's Q, I², τ² and the 95 %
prediction interval of a new site's rate (Higgins, Thompson & Spiegelhalter 2009: t with k − 2 df); and the
between-site intra-class correlation of response with its F-based confidence interval (for the design effect).

Why not statsmodels' `combine_effects` alone: its DL leaves a negative τ² untruncated (I² below 0 and
"random-effects" weights 1/(v + τ²) with τ² < 0); the tests check the figures here against it where τ² > 0 and
against the textbook formulas everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import optimize, stats

from ketreg.metrics.estimand import estimand_for, treated

SCHEMA = {
    "metric": pl.String,
    "method": pl.String,
    "sites": pl.Int64,
    "pooled_estimate": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "tau2": pl.Float64,
    "i2": pl.Float64,
    "q": pl.Float64,
    "pi_low": pl.Float64,
    "pi_high": pl.Float64,
}
DIGITS = 12  # published estimates rounded to 12 significant digits: identical on every run


@dataclass(frozen=True)
class Pooled:
    """A random-effects pooled logit and its heterogeneity statistics."""

    method: str
    sites: int
    mean: float
    se: float
    tau2: float
    i2: float
    q: float
    pi_low: float | None
    pi_high: float | None


def logit_effects(responders: np.ndarray, patients: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each site's logit responder rate and its variance 1/r + 1/(n − r); a site where all or none responded
    gets 0.5 added to responders and non-responders (the usual continuity correction) so it keeps its weight."""
    responders = responders.astype(float)
    patients = patients.astype(float)
    corrected = (responders == 0) | (responders == patients)
    r = np.where(corrected, responders + 0.5, responders)
    n = np.where(corrected, patients + 1.0, patients)
    return np.log(r / (n - r)), 1 / r + 1 / (n - r)


def _q_statistic(y: np.ndarray, v: np.ndarray) -> tuple[float, float, float]:
    w = 1 / v
    fixed = float((w * y).sum() / w.sum())
    q = float((w * (y - fixed) ** 2).sum())
    c = float(w.sum() - (w**2).sum() / w.sum())
    return q, c, fixed


def _pooled(method: str, y: np.ndarray, v: np.ndarray, tau2: float, q: float, alpha: float) -> Pooled:
    k = y.size
    w = 1 / (v + tau2)
    mean = float((w * y).sum() / w.sum())
    se = math.sqrt(1 / w.sum())
    # I² as τ² over τ² plus the typical within-site variance (Higgins & Thompson 2002); for DL it equals
    # (Q − df)/Q truncated at 0.
    w0 = 1 / v
    typical = (k - 1) * w0.sum() / (w0.sum() ** 2 - (w0**2).sum()) if k > 1 else float("nan")
    i2 = tau2 / (tau2 + typical) if k > 1 and tau2 + typical > 0 else 0.0
    pi_low = pi_high = None
    if k >= 3:
        spread = float(stats.t.ppf(1 - alpha / 2, k - 2)) * math.sqrt(tau2 + se**2)
        pi_low, pi_high = mean - spread, mean + spread
    return Pooled(method, k, mean, se, tau2, i2, q, pi_low, pi_high)


def dersimonian_laird(y: np.ndarray, v: np.ndarray, alpha: float = 0.05) -> Pooled:
    """DerSimonian–Laird (1986): τ² = max(0, (Q − (k − 1)) / C)."""
    q, c, _ = _q_statistic(y, v)
    tau2 = max(0.0, (q - (y.size - 1)) / c) if c > 0 else 0.0
    return _pooled("DL", y, v, tau2, q, alpha)


def restricted_ml(y: np.ndarray, v: np.ndarray, alpha: float = 0.05) -> Pooled:
    """REML τ²: the maximiser over τ² ≥ 0 of the restricted log-likelihood
    −½ Σ log(vᵢ + τ²) − ½ log Σ 1/(vᵢ + τ²) − ½ Σ (yᵢ − μ̂)²/(vᵢ + τ²) (Viechtbauer 2005)."""
    q, _, _ = _q_statistic(y, v)

    def negative_restricted_loglik(tau2: float) -> float:
        w = 1 / (v + tau2)
        mean = (w * y).sum() / w.sum()
        return 0.5 * (np.log(v + tau2).sum() + math.log(w.sum()) + (w * (y - mean) ** 2).sum())

    if y.size < 2:
        return _pooled("REML", y, v, 0.0, q, alpha)
    upper = max(10.0, 10 * float(np.var(y, ddof=1)))
    best = optimize.minimize_scalar(negative_restricted_loglik, bounds=(0.0, upper), method="bounded",
                                    options={"xatol": 1e-12, "maxiter": 500})
    tau2 = float(best.x)
    # The bounded search stops a hair above 0 when the maximum is at the boundary.
    if negative_restricted_loglik(0.0) <= negative_restricted_loglik(tau2):
        tau2 = 0.0
    return _pooled("REML", y, v, tau2, q, alpha)


def _expit(value: float | None) -> float | None:
    return None if value is None else 1 / (1 + math.exp(-value))


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(f"{value:.{DIGITS}g}")


def heterogeneity_rows(metric: str, responders: np.ndarray, patients: np.ndarray, alpha: float = 0.05) -> list[dict]:
    """The DL and REML rows of metrics.site_heterogeneity for one responder definition (estimates as
    proportions); sites without treated patients are left out, and fewer than two sites give no pooling."""
    keep = patients > 0
    responders, patients = responders[keep], patients[keep]
    if responders.size < 2:
        return [{"metric": metric, "method": method, "sites": int(responders.size)} for method in ("DL", "REML")]
    y, v = logit_effects(responders, patients)
    z = float(stats.norm.isf(alpha / 2))
    rows = []
    for pooled in (dersimonian_laird(y, v, alpha), restricted_ml(y, v, alpha)):
        rows.append({
            "metric": metric, "method": pooled.method, "sites": pooled.sites,
            "pooled_estimate": _round(_expit(pooled.mean)),
            "ci_low": _round(_expit(pooled.mean - z * pooled.se)),
            "ci_high": _round(_expit(pooled.mean + z * pooled.se)),
            "tau2": _round(pooled.tau2), "i2": _round(pooled.i2), "q": _round(pooled.q),
            "pi_low": _round(_expit(pooled.pi_low)), "pi_high": _round(_expit(pooled.pi_high)),
        })
    return rows


def site_heterogeneity(by_site: dict[str, pl.DataFrame], alpha: float = 0.05) -> pl.DataFrame:
    """metrics.site_heterogeneity from per-definition frames of (site_id, patients, responders)."""
    rows: list[dict] = []
    for metric, frame in by_site.items():
        frame = frame.sort("site_id")
        rows += heterogeneity_rows(metric, frame["responders"].to_numpy(), frame["patients"].to_numpy(), alpha)
    return pl.DataFrame(rows, schema=SCHEMA)


def heterogeneity_from_outcomes(outcomes: pl.DataFrame, alpha: float = 0.05) -> pl.DataFrame:
    """metrics.site_heterogeneity from metrics.patient_outcomes: the study definition (`responder_rate`) always,
    the primary estimand (`sustained_responder_rate`, missing = not a responder) when it is built."""
    patients = treated(outcomes)
    estimand = estimand_for(outcomes)
    definitions = {"responder_rate": "responder"}
    if estimand.primary:
        definitions["sustained_responder_rate"] = estimand.responder_column
    return site_heterogeneity({
        metric: patients.group_by("site_id").agg(
            pl.len().alias("patients"), pl.col(column).fill_null(False).sum().alias("responders"))
        for metric, column in definitions.items()
    }, alpha)


@dataclass(frozen=True)
class SiteIcc:
    """Between-site ICC of a binary outcome (one-way ANOVA) with its F-based confidence interval."""

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    sites: int
    patients: int


def site_icc_interval(site_sizes: list[int], site_responders: list[int], alpha: float = 0.05) -> SiteIcc:
    """ICC(1) = (MSB − MSW)/(MSB + (n₀ − 1)·MSW) with n₀ the size-adjusted mean site size, and the interval
    from F = MSB/MSW: (F/F_u − 1)/(F/F_u + n₀ − 1) to (F·F_u' − 1)/(F·F_u' + n₀ − 1), F_u the 1 − α/2 quantile of
    F(k − 1, N − k) and F_u' of F(N − k, k − 1) (Searle 1971; Donner 1986 for unequal sizes). Estimate and bounds
    are truncated at 0: a negative ICC means no detectable clustering."""
    pairs = [(n, r) for n, r in zip(site_sizes, site_responders, strict=True) if n > 0]
    k, total = len(pairs), sum(n for n, _ in pairs)
    if k < 2 or total - k < 1:
        return SiteIcc(None, None, None, k, total)
    overall = sum(r for _, r in pairs) / total
    msb = sum(n * (r / n - overall) ** 2 for n, r in pairs) / (k - 1)
    msw = sum(r * (1 - r / n) for n, r in pairs) / (total - k)
    n0 = (total - sum(n * n for n, _ in pairs) / total) / (k - 1)
    if msw <= 0 or msb + (n0 - 1) * msw <= 0:
        return SiteIcc(None, None, None, k, total)
    f = msb / msw
    upper_quantile = stats.f.ppf(1 - alpha / 2, k - 1, total - k)
    lower_quantile = stats.f.ppf(1 - alpha / 2, total - k, k - 1)
    low_f, high_f = f / upper_quantile, f * lower_quantile
    estimate = (msb - msw) / (msb + (n0 - 1) * msw)
    low = (low_f - 1) / (low_f + n0 - 1)
    high = (high_f - 1) / (high_f + n0 - 1)
    return SiteIcc(_round(max(0.0, estimate)), _round(max(0.0, low)), _round(min(1.0, max(0.0, high))), k, total)
