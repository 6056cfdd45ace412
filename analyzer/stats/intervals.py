"""Statistical methods behind the verdicts: score intervals, block bootstrap, Holm, sample size.

Pure functions over numbers and numpy arrays; no I/O, no clock. Each names its source:

- :func:`ratio_score_ci`: score interval for a ratio of two proportions, Miettinen and Nurminen,
  "Comparative analysis of two rates", Stat. Med. 4 (1985) 213-226 (the constrained maximum
  likelihood of Farrington and Manning, Stat. Med. 9 (1990) 1447-1454, eq. for the risk ratio);
  ``correction=False`` gives Koopman's (Biometrics 40, 1984) uncorrected score interval.
- :func:`wilson_ci`: Wilson's score interval for one proportion (JASA 22, 1927).
- :func:`dispersion`: Pearson chi-square over-dispersion of per-unit loss counts (McCullagh and
  Nelder, GLM 2nd ed. §4.5.2), the bursty-loss correction of methodology-notes §4 (RFC 3357).
- :func:`politis_white_block`: automatic block length, Politis and White, Econometric Reviews
  23(1) 2004, corrected by Patton, Politis and White, Econometric Reviews 28(4) 2009.
- :func:`nbb_weights`: non-overlapping block bootstrap (Carlstein, Ann. Stat. 14, 1986) as
  multinomial block multiplicities, so a replicate is a weighted merge of block rollups.
- :func:`holm`: Holm's step-down adjustment (Scand. J. Stat. 6, 1979).
- :func:`loss_sample_size`: n per period for the ratio test of methodology-notes §4 (log-ratio
  normal approximation, the formula and table verified there).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Z_975 = 1.959963984540054  # standard normal 0.975 quantile
Z_80 = 0.8416212335729143  # standard normal 0.80 quantile (power 0.8)
FloatArray = npt.NDArray[np.float64]


def norm_cdf(z: float) -> float:
    """Standard normal distribution function."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


@dataclass(frozen=True, slots=True)
class Interval:
    """A point estimate, a two-sided 95% interval and the two one-sided p-values against a
    threshold: ``p_below`` for H1 "value < threshold", ``p_above`` for H1 "value > threshold"."""

    point: float
    low: float
    high: float
    p_below: float = 1.0
    p_above: float = 1.0


# --- score intervals -------------------------------------------------------------------------


def _constrained_p0(x1: float, n1: float, x0: float, n0: float, r: float) -> float:
    """MLE of the baseline proportion under p1 = r * p0 (Farrington-Manning 1990): the smaller
    root of ``r N p^2 - (r n1 + x1 + n0 + r x0) p + (x1 + x0) = 0``."""
    a = r * (n1 + n0)
    b = -(r * n1 + x1 + n0 + r * x0)
    c = x1 + x0
    disc = max(b * b - 4 * a * c, 0.0)
    return (-b - math.sqrt(disc)) / (2 * a)


def ratio_score_z(x1: float, n1: float, x0: float, n0: float, r: float,
                  correction: bool = True) -> float:
    """Score statistic for H0: p1/p0 = r (Miettinen-Nurminen 1985 eq. 7; Koopman without the
    N/(N-1) variance correction). Decreasing in r."""
    p0t = _constrained_p0(x1, n1, x0, n0, r)
    p1t = r * p0t
    var = p1t * (1 - p1t) / n1 + r * r * p0t * (1 - p0t) / n0
    if correction:
        var *= (n1 + n0) / (n1 + n0 - 1)
    diff = x1 / n1 - r * x0 / n0
    if var <= 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / math.sqrt(var)


def _solve_decreasing(func: Callable[[float], float], target: float, lo: float,
                      hi: float) -> float:
    """Bisection on log scale for the r where decreasing ``func(r) == target``."""
    a, b = math.log(lo), math.log(hi)
    for _ in range(200):
        mid = (a + b) / 2
        if func(math.exp(mid)) > target:
            a = mid
        else:
            b = mid
        if b - a < 1e-12:
            break
    return math.exp((a + b) / 2)


def _t_cdf(df: int) -> Callable[[float], float]:
    """Student's t CDF with ``df`` degrees of freedom (``scipy.special.stdtr``: the values of
    ``scipy.stats.t.cdf``, without importing scipy.stats, ~0.8 s)."""
    from scipy.special import stdtr

    return lambda v: float(stdtr(df, v))


def ratio_score_ci(x1: float, n1: float, x0: float, n0: float, threshold: float | None = None,
                   correction: bool = True, df: int | None = None) -> Interval:
    """95% score interval for p1/p0 (current/baseline), with one-sided p-values at
    ``threshold`` (Miettinen-Nurminen 1985). Counts may be fractional (effective counts after
    the dispersion correction). With ``df`` (blocks - 1 behind an estimated dispersion) the
    score statistic is referred to Student's t instead of the normal, as for a quasi-likelihood
    scale estimated from df degrees of freedom (McCullagh-Nelder §9.2.4). Requires x0 > 0 (a
    ratio over zero baseline loss is undefined)."""
    if x0 <= 0 or n0 <= 0 or n1 <= 0:
        raise ValueError("ratio_score_ci needs baseline losses and both sample sizes > 0")
    point = (x1 / n1) / (x0 / n0)

    def z(r: float) -> float:
        return ratio_score_z(x1, n1, x0, n0, r, correction)

    crit = Z_975
    cdf: Callable[[float], float] = norm_cdf
    if df is not None:
        from scipy.special import stdtrit  # = scipy.stats.t.ppf(p, df), imported in 0.2 s

        crit = float(stdtrit(df, 0.975))
        cdf = _t_cdf(df)
    low = 0.0 if x1 <= 0 else _solve_decreasing(z, crit, 1e-12, point)
    high = _solve_decreasing(z, -crit, max(point, 1e-12), 1e12)
    p_below = p_above = 1.0
    if threshold is not None:
        zt = z(threshold)
        p_below, p_above = cdf(zt), 1 - cdf(zt)
    return Interval(point, low, high, p_below, p_above)


def wilson_ci(x: float, n: float, threshold: float | None = None) -> Interval:
    """Wilson score 95% interval for one proportion x/n (Wilson 1927), p-values at threshold."""
    if n <= 0:
        raise ValueError("wilson_ci needs n > 0")
    p, z2 = x / n, Z_975 * Z_975
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_975 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    p_below = p_above = 1.0
    if threshold is not None and 0 < threshold < 1:
        zt = (p - threshold) / math.sqrt(threshold * (1 - threshold) / n)
        p_below, p_above = norm_cdf(zt), 1 - norm_cdf(zt)
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), p_below, p_above)


def zero_loss_upper(n: float) -> float:
    """95% upper bound on a loss ratio after 0 losses in n packets: 1 - 0.05**(1/n) (~3/n)."""
    return 1 - 0.05 ** (1 / n) if n > 0 else 1.0


def dispersion(lost: Sequence[float] | FloatArray, sent: Sequence[float] | FloatArray) -> float:
    """Over-dispersion phi >= 1 of per-unit loss counts: Pearson X^2 / (k - 1) against a common
    ratio (McCullagh-Nelder §4.5.2). Divide counts by phi to get effective counts."""
    x = np.asarray(lost, dtype=np.float64)
    n = np.asarray(sent, dtype=np.float64)
    keep = n > 0
    x, n = x[keep], n[keep]
    if len(x) < 2:
        return 1.0
    p = float(x.sum() / n.sum())
    if p <= 0 or p >= 1:
        return 1.0
    chi2 = float((((x - n * p) ** 2) / (n * p * (1 - p))).sum())
    return max(1.0, chi2 / (len(x) - 1))


# --- block bootstrap -------------------------------------------------------------------------


def _flat_top(t: FloatArray) -> FloatArray:
    """Politis-Romano trapezoidal flat-top lag window."""
    a = np.abs(t)
    return np.where(a <= 0.5, 1.0, np.where(a <= 1.0, 2.0 * (1.0 - a), 0.0))


def politis_white_block(series: Sequence[float] | FloatArray) -> int:
    """Optimal circular-block length (Politis-White 2004 with the 2009 correction), rounded up,
    in units of the series' spacing; 1 for short or constant series."""
    x = np.asarray(series, dtype=np.float64)
    n = len(x)
    if n < 8 or float(np.std(x)) == 0.0:
        return 1
    x = x - x.mean()
    k_n = max(5, math.ceil(math.sqrt(math.log10(n))))
    m_max = math.ceil(math.sqrt(n)) + k_n
    b_max = math.ceil(min(3 * math.sqrt(n), n / 3))
    lags = min(m_max + k_n, n - 1)
    acov = np.array([float(x[: n - k] @ x[k:]) / n for k in range(lags + 1)])
    rho = acov[1:] / acov[0]
    bound = 2.0 * math.sqrt(math.log10(n) / n)
    m_hat = m_max
    for m in range(1, m_max + 1):
        if m + k_n > lags:
            break
        if np.all(np.abs(rho[m: m + k_n]) < bound):
            m_hat = m
            break
    big_m = min(2 * m_hat, m_max, lags)
    k = np.arange(-big_m, big_m + 1)
    lam = _flat_top(k / big_m) if big_m > 0 else np.ones(1)
    gam = acov[np.abs(k)]
    g = float((lam * np.abs(k) * gam).sum())
    d_cb = (4.0 / 3.0) * float((lam * gam).sum()) ** 2
    if d_cb <= 0:
        return 1
    b = (2 * g * g / d_cb) ** (1 / 3) * n ** (1 / 3)
    return int(min(max(1, math.ceil(b)), b_max))


def nbb_weights(n_blocks: int, replicates: int, rng: np.random.Generator) -> FloatArray:
    """Multiplicity of each of ``n_blocks`` blocks in each replicate (B x k): a non-overlapping
    block bootstrap draws k blocks uniformly with replacement (Carlstein 1986)."""
    if n_blocks <= 0:
        return np.zeros((replicates, 0))
    draws = rng.integers(0, n_blocks, size=(replicates, n_blocks))
    flat = (draws + (np.arange(replicates) * n_blocks)[:, None]).ravel()
    counts = np.bincount(flat, minlength=replicates * n_blocks)
    return counts.reshape(replicates, n_blocks).astype(np.float64)


def percentile_interval(point: float, reps: FloatArray, threshold: float | None = None,
                        widen: float = 1.0) -> Interval:
    """Percentile interval of bootstrap replicates (2.5%, 97.5%; RFC 2330 §11.3 inverted-CDF
    ranks), widened by the factor ``widen`` (the sketch's relative error gamma), with one-sided
    p-values (count + 1) / (B + 1) against the threshold."""
    finite = np.sort(reps[np.isfinite(reps)])
    b = len(finite)
    if b == 0:
        return Interval(point, math.nan, math.nan)
    low = float(finite[max(0, math.ceil(0.025 * b) - 1)]) / widen
    high = float(finite[max(0, math.ceil(0.975 * b) - 1)]) * widen
    p_below = p_above = 1.0
    if threshold is not None:
        p_below = (float((finite * widen >= threshold).sum()) + 1) / (b + 1)
        p_above = (float((finite / widen <= threshold).sum()) + 1) / (b + 1)
    return Interval(point, low, high, p_below, p_above)


# --- multiplicity and sample size ------------------------------------------------------------


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values, in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: (pvalues[i], i))
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def loss_sample_size(p0: float, p1: float, threshold: float, phi: float = 1.0) -> float | None:
    """Packets per period to decide R = p1/p0 against ``threshold`` at one-sided alpha 0.025 and
    power 0.8 (methodology-notes §4): ((z.975 + z.8) / ln(threshold/R))^2 * ((1-p0)/p0 +
    (1-p1)/p1) * phi. None when R equals the threshold (no sample size decides it) or p1 = 0
    (use the zero-loss bound instead)."""
    if p0 <= 0 or p1 <= 0:
        return None
    r = p1 / p0
    gap = math.log(threshold / r)
    if abs(gap) < 1e-9:
        return None
    return ((Z_975 + Z_80) / gap) ** 2 * ((1 - p0) / p0 + (1 - p1) / p1) * phi


def bootstrap_sample_factor(interval: Interval, threshold: float) -> float | None:
    """How many times the current sample size would decide a ratio (or level) against the
    threshold at power 0.8, from the log-scale standard error of the bootstrap interval."""
    if not (interval.low > 0 and interval.high > 0 and interval.point > 0):
        return None
    se = (math.log(interval.high) - math.log(interval.low)) / (2 * Z_975)
    gap = abs(math.log(threshold / interval.point))
    if gap < 1e-9:
        return None
    return max(1.0, ((Z_975 + Z_80) * se / gap) ** 2)
