"""Power and sample size: noncentral-F regression power (G*Power's convention) and Monte Carlo
power for the indirect effect of a single-mediator model.

Regression
----------
:func:`power_regression` and :func:`sample_size_regression` compute the power of the F test of
``n_tested`` coefficients in a multiple regression with ``n_predictors`` predictors as G*Power
does (Faul, Erdfelder, Buchner & Lang 2009, "Linear multiple regression: fixed model, R²
increase"): numerator df ``n_tested``, denominator df ``N - n_predictors - 1`` and noncentrality
``lambda = f2 * N`` with the *total* sample size. ``pwr::pwr.f2.test`` and statsmodels'
``FTestPowerF2`` use ``lambda = f2 * (u + v + 1)`` instead, which agrees only when every
predictor is tested (Cohen 1988, ch. 9 discusses both).

Mediation
---------
:func:`power_mediation` simulates the standardized single-mediator model

    X ~ N(0, 1),  W_k ~ N(0, 1) (k = 1..n_covariates, independent of X)
    M = a X + sum_k g_M W_k + e_M
    Y = c' X + b M + sum_k g_Y W_k + e_Y

with error variances chosen so that var(M) = var(Y) = 1, hence a, b and c' are standardized
(partial) coefficients. With ``effects="unit_residual"`` a, b and c' are instead raw coefficients
and both error variances are 1 (var(M) = 1 + a², var(Y) = (c' + ab)² + b² + 1), the set-up of
the MacKinnon-group simulation studies; a path of .14 / .39 / .59 then explains a²/(1 + a²) =
2% / 13% / 26% of var(M), Cohen's (1988) small / medium / large R². The covariates jointly explain ``covariates_r2`` of the variance of M and
of Y (``g_M = sqrt(r2/k)``, ``g_Y = sqrt(r2/k) (1 - b)`` so that corr(W_k, M)² = corr(W_k, Y)² =
r2/k) and enter both analysis equations, as PROCESS' ``cov=`` does. Clustering adds a random
intercept to each equation: the clients are split into ``n_clusters`` clusters as evenly as
possible and a share ``icc`` of each equation's error variance is between clusters (a residual,
conditional ICC; the unconditional ICC of M is ``icc (1 - a² - r2)``). X is a client-level
variable unless ``x_level="cluster"`` (one value per cluster, as the study's team fidelity).
With clusters, the bootstrap resamples whole clusters and the joint-significance and Monte Carlo
methods use cluster-robust (CR1) standard errors with ``n_clusters - 1`` df, so that the
analysis respects the design it is planned for.

Each replicate's indirect effect ``a*b`` is tested by the percentile bootstrap or the BCa
bootstrap (Efron 1987), the Monte Carlo CI (MacKinnon, Lockwood & Williams 2004; Preacher &
Selig 2012) or joint significance of a and b (MacKinnon et al. 2002); power is the share of
replicates whose CI excludes 0 (or both paths are significant). This is the design of Fritz &
MacKinnon (2007), whose Table 3 (percentile bootstrap, alpha = .05, c' = 0) gives N = 558 for
a = b = .14 and N = 162 for a = b = .26 for 0.80 power, with raw paths and unit residual
variances (``effects="unit_residual"``; docs/power.md compares).

Everything is vectorized: replicates come in blocks, all replicates x resamples of a block are
reduced to moment matrices by one batched matrix product of resample counts with per-observation
cross products, and the regressions are solved from those moments in a batch. Randomness is
keyed by ``(N, block)`` (and the resample sub-block) through :mod:`fidelitymed.seeding`, so a
seed gives identical results for any executor, number of workers or grouping of blocks into
tasks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from ..blas import single_thread
from ..errors import ConfigError
from ..seeding import SeedLike, child_sequence, root_sequence
from ..study.io import json_safe
from .bootstrap import index_counts, moment_matrices, percentile_interval, solve_from_moments

__all__ = [
    "RegressionPowerResult",
    "RegressionSampleSizeResult",
    "MediationPowerResult",
    "MediationSampleSizeResult",
    "power_regression",
    "sample_size_regression",
    "power_mediation",
    "sample_size_mediation",
    "MEDIATION_METHODS",
    "MEDIATION_EFFECTS",
]

MEDIATION_METHODS = ("percentile", "bca", "monte_carlo", "joint")
MEDIATION_EFFECTS = ("standardized", "unit_residual")

# Fixed units of randomness. A replicate block is the seed unit (and the task); the bootstrap
# of a block is drawn in sub-blocks of resamples so memory stays bounded at about
# 40 bytes * _REP_BLOCK * _BOOT_BLOCK * N (e.g. 56 MB at N = 558). Changing either changes the random numbers,
# so they are constants, not options.
_REP_BLOCK = 25
_BOOT_BLOCK = 100

# Largest N the sample-size searches consider.
_N_MAX = 10_000_000


# ----------------------------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------------------------

def _check_prob(name: str, value: float) -> float:
    value = float(value)
    if not (0.0 < value < 1.0) or math.isnan(value):
        raise ConfigError(f"{name} must be strictly between 0 and 1; got {value!r}")
    return value


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not float(value).is_integer():
        raise ConfigError(f"{name} must be an integer >= {minimum}; got {value!r}")
    value = int(value)
    if value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return value


# ----------------------------------------------------------------------------------------------
# regression power (G*Power convention)
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RegressionPowerResult:
    """Power of the F test of ``n_tested`` coefficients (G*Power convention, lambda = f2 * N)."""

    f2: float
    n: int
    n_predictors: int
    n_tested: int
    alpha: float
    df1: int
    df2: int
    noncentrality: float
    f_critical: float
    power: float

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.to_dict()])

    def summary(self) -> str:
        return "\n".join([
            "Power of the F test in multiple regression (G*Power convention, lambda = f2 * N)",
            f"  effect size f2          {self.f2:.4f}",
            f"  alpha                   {self.alpha:.4f}",
            f"  total sample size N     {self.n}",
            f"  predictors / tested     {self.n_predictors} / {self.n_tested}",
            f"  noncentrality lambda    {self.noncentrality:.4f}",
            f"  critical F({self.df1}, {self.df2})      {self.f_critical:.4f}",
            f"  power                   {self.power:.4f}",
        ])


@dataclass(frozen=True)
class RegressionSampleSizeResult:
    """Smallest total N whose G*Power-convention F-test power reaches ``target_power``."""

    f2: float
    target_power: float
    n_predictors: int
    n_tested: int
    alpha: float
    n: int
    achieved_power: float
    power_at_n_minus_1: float | None
    df1: int
    df2: int
    noncentrality: float
    f_critical: float

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.to_dict()])

    def summary(self) -> str:
        return "\n".join([
            "Sample size for the F test in multiple regression (G*Power convention, lambda = f2 * N)",
            f"  effect size f2          {self.f2:.4f}",
            f"  alpha                   {self.alpha:.4f}",
            f"  target power            {self.target_power:.4f}",
            f"  predictors / tested     {self.n_predictors} / {self.n_tested}",
            f"  total sample size N     {self.n}",
            f"  noncentrality lambda    {self.noncentrality:.4f}",
            f"  critical F({self.df1}, {self.df2})      {self.f_critical:.4f}",
            f"  actual power            {self.achieved_power:.4f}",
        ])


def _check_regression_args(f2: float, n_predictors: int, n_tested: int,
                           alpha: float) -> tuple[float, int, int, float]:
    f2 = float(f2)
    if not (f2 >= 0.0) or math.isinf(f2):
        raise ConfigError(f"f2 must be a finite number >= 0; got {f2!r}")
    n_predictors = _check_int("n_predictors", n_predictors, 1)
    n_tested = _check_int("n_tested", n_tested, 1)
    if n_tested > n_predictors:
        raise ConfigError(f"n_tested must be <= n_predictors ({n_predictors}); got {n_tested}")
    alpha = _check_prob("alpha", alpha)
    return f2, n_predictors, n_tested, alpha


def _regression_power_value(f2: float, n: int, n_predictors: int, n_tested: int,
                            alpha: float) -> tuple[float, float, float, int, int]:
    df1 = n_tested
    df2 = n - n_predictors - 1
    lam = f2 * n
    f_crit = float(stats.f.isf(alpha, df1, df2))
    power = float(stats.ncf.sf(f_crit, df1, df2, lam)) if lam > 0 else alpha
    return power, lam, f_crit, df1, df2


def power_regression(f2: float, n: int, n_predictors: int, n_tested: int = 1,
                     alpha: float = 0.05) -> RegressionPowerResult:
    """Power of the F test of ``n_tested`` of ``n_predictors`` regression coefficients.

    Parameters
    ----------
    f2 : float
        Cohen's effect size f² of the tested set: ``R²_increase / (1 - R²_full)`` (for one
        standardized path β with no other predictors, ``β² / (1 - β²)``).
    n : int
        Total sample size N.
    n_predictors : int
        Predictors in the full model (tested ones included; the intercept not counted).
    n_tested : int, default 1
        Predictors whose coefficients are tested together (numerator df).
    alpha : float, default 0.05

    Returns
    -------
    RegressionPowerResult

    Notes
    -----
    ``df1 = n_tested``, ``df2 = N - n_predictors - 1``, ``lambda = f2 * N`` and power
    ``= P(F'(df1, df2, lambda) > F_crit)``, as G*Power 3 (Faul et al. 2009) computes it.
    G*Power manual example: f2 = .1111, 5 predictors all tested, N = 110 gives lambda =
    12.2210, F_crit(5, 104) = 2.3017, power = .7518.

    References
    ----------
    Cohen, J. (1988). *Statistical power analysis for the behavioral sciences* (2nd ed.), ch. 9.
    Faul, F., Erdfelder, E., Buchner, A., & Lang, A.-G. (2009). Statistical power analyses using
    G*Power 3.1. *Behavior Research Methods, 41*, 1149-1160.
    """
    f2, n_predictors, n_tested, alpha = _check_regression_args(f2, n_predictors, n_tested, alpha)
    n = _check_int("n", n, n_predictors + 2)
    power, lam, f_crit, df1, df2 = _regression_power_value(f2, n, n_predictors, n_tested, alpha)
    return RegressionPowerResult(f2=f2, n=n, n_predictors=n_predictors, n_tested=n_tested,
                                 alpha=alpha, df1=df1, df2=df2, noncentrality=lam,
                                 f_critical=f_crit, power=power)


def _smallest_n(power_at: Callable[[int], float], target: float, n_min: int, n_max: int,
                what: str) -> int:
    """Smallest integer N in [n_min, n_max] with power_at(N) >= target, power increasing in N."""
    if power_at(n_min) >= target:
        return n_min
    lo, hi = n_min, max(n_min + 1, 2 * n_min)
    while power_at(hi) < target:
        lo, hi = hi, 2 * hi
        if hi > n_max:
            if power_at(n_max) < target:
                raise ConfigError(f"{what}: power {target} is not reached below N = {n_max}; "
                                  "expected a larger effect size or a lower target power")
            hi = n_max
            break
    # invariant: power_at(lo) < target <= power_at(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if power_at(mid) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def sample_size_regression(f2: float, power: float = 0.8, n_predictors: int = 1,
                           n_tested: int = 1, alpha: float = 0.05) -> RegressionSampleSizeResult:
    """Smallest total N at which the F test of ``n_tested`` coefficients reaches ``power``.

    Uses the same convention as :func:`power_regression` (G*Power: ``lambda = f2 * N``). Power
    increases with N (lambda grows and the critical F falls), so the smallest N is found by
    doubling and integer bisection.

    Parameters
    ----------
    f2 : float
        Cohen's f² of the tested set (> 0).
    power : float, default 0.8
        Target power.
    n_predictors, n_tested, alpha
        As in :func:`power_regression`.

    Returns
    -------
    RegressionSampleSizeResult
        ``n`` is the smallest N with power >= target; ``power_at_n_minus_1`` shows the power
        one client fewer (None when ``n`` is the smallest estimable N).
    """
    f2, n_predictors, n_tested, alpha = _check_regression_args(f2, n_predictors, n_tested, alpha)
    target = _check_prob("power", power)
    if f2 <= 0.0 and target > alpha:
        raise ConfigError(f"f2 must be > 0 to reach power {target}; got {f2!r}")

    def power_at(n: int) -> float:
        return _regression_power_value(f2, n, n_predictors, n_tested, alpha)[0]

    n_min = n_predictors + 2
    n = _smallest_n(power_at, target, n_min, _N_MAX, "sample_size_regression")
    achieved, lam, f_crit, df1, df2 = _regression_power_value(f2, n, n_predictors, n_tested, alpha)
    before = power_at(n - 1) if n > n_min else None
    return RegressionSampleSizeResult(f2=f2, target_power=target, n_predictors=n_predictors,
                                      n_tested=n_tested, alpha=alpha, n=n,
                                      achieved_power=achieved, power_at_n_minus_1=before,
                                      df1=df1, df2=df2, noncentrality=lam, f_critical=f_crit)


# ----------------------------------------------------------------------------------------------
# Monte Carlo power for the indirect effect
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Design:
    """Population model of :func:`power_mediation` (see the module docstring)."""

    a: float
    b: float
    c_prime: float
    covariates_r2: float
    n_covariates: int  # 0 when covariates_r2 == 0
    icc: float
    n_clusters: int | None
    g_m: float  # effect of each covariate on M
    g_y: float  # direct effect of each covariate on Y
    var_e_m: float  # error variance of M (within + between clusters)
    var_e_y: float
    x_level: str = "client"  # or "cluster": X constant within a cluster (e.g. team fidelity)
    effects: str = "standardized"  # or "unit_residual": raw paths, var(e_M) = var(e_Y) = 1

    @property
    def n_columns(self) -> int:
        """Columns of the design matrix Z = [1, X, W_1..W_k, M, Y]."""
        return 4 + self.n_covariates

    @property
    def m_predictors(self) -> list[int]:
        return [0, 1] + list(range(2, 2 + self.n_covariates))

    @property
    def y_predictors(self) -> list[int]:
        return self.m_predictors + [2 + self.n_covariates]

    @property
    def m_col(self) -> int:
        return 2 + self.n_covariates

    @property
    def y_col(self) -> int:
        return 3 + self.n_covariates

    def describe(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "c_prime": self.c_prime,
                "covariates_r2": self.covariates_r2, "n_covariates": self.n_covariates,
                "icc": self.icc, "n_clusters": self.n_clusters, "x_level": self.x_level,
                "effects": self.effects}


def _make_design(a: float, b: float, c_prime: float, covariates_r2: float, n_covariates: int,
                 icc: float, n_clusters: int | None, x_level: str = "client",
                 effects: str = "standardized") -> _Design:
    if effects not in MEDIATION_EFFECTS:
        raise ConfigError(f"effects must be one of {', '.join(MEDIATION_EFFECTS)}; got {effects!r}")
    a, b, c_prime = float(a), float(b), float(c_prime)
    for name, value in (("a", a), ("b", b), ("c_prime", c_prime)):
        if effects == "standardized" and not (-1.0 < value < 1.0):
            raise ConfigError(f"{name} is a standardized path and must lie in (-1, 1); got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number; got {value!r}")
    r2 = float(covariates_r2)
    if not (0.0 <= r2 < 1.0):
        raise ConfigError(f"covariates_r2 must lie in [0, 1); got {covariates_r2!r}")
    if effects == "unit_residual" and r2 > 0:
        # the covariates' share of var(M) and var(Y) is defined for the standardized model only
        raise ConfigError(f"effects = 'unit_residual' supports covariates_r2 = 0 only; got {r2!r} "
                          "(use effects = 'standardized' with covariates)")
    k = _check_int("n_covariates", n_covariates, 1) if r2 > 0 else 0
    icc = float(icc)
    if not (0.0 <= icc < 1.0):
        raise ConfigError(f"icc must lie in [0, 1); got {icc!r}")
    if n_clusters is not None:
        n_clusters = _check_int("n_clusters", n_clusters, 3)
    elif icc > 0:
        raise ConfigError(f"icc = {icc} needs n_clusters (the number of clusters); got None")
    if x_level not in ("client", "cluster"):
        raise ConfigError(f"x_level must be 'client' or 'cluster'; got {x_level!r}")
    if x_level == "cluster" and n_clusters is None:
        raise ConfigError("x_level = 'cluster' needs n_clusters (the number of clusters); got None")
    if effects == "unit_residual":
        return _Design(a=a, b=b, c_prime=c_prime, covariates_r2=0.0, n_covariates=0, icc=icc,
                       n_clusters=n_clusters, g_m=0.0, g_y=0.0, var_e_m=1.0, var_e_y=1.0,
                       x_level=x_level, effects=effects)
    var_e_m = 1.0 - a * a - r2
    if var_e_m <= 0:
        raise ConfigError(f"a² + covariates_r2 must be < 1 so that var(M) = 1; got "
                          f"{a * a:.4f} + {r2:.4f}")
    explained_y = b * b + c_prime * c_prime + 2 * a * b * c_prime + r2 * (1 - b * b)
    var_e_y = 1.0 - explained_y
    if var_e_y <= 0:
        raise ConfigError("b, c_prime, a and covariates_r2 explain more than all of var(Y) "
                          f"(b² + c'² + 2abc' + r2(1 - b²) = {explained_y:.4f}); expected < 1")
    g_m = math.sqrt(r2 / k) if k else 0.0
    g_y = g_m * (1.0 - b)
    return _Design(a=a, b=b, c_prime=c_prime, covariates_r2=r2, n_covariates=k, icc=icc,
                   n_clusters=n_clusters, g_m=g_m, g_y=g_y, var_e_m=var_e_m, var_e_y=var_e_y,
                   x_level=x_level)


def _cluster_layout(n: int, n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """Cluster of each client (as even as possible, contiguous) and each cluster's first row."""
    sizes = np.full(n_clusters, n // n_clusters, dtype=np.int64)
    sizes[: n % n_clusters] += 1
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return np.repeat(np.arange(n_clusters), sizes), starts


_SEED_PREFIX = ("power-mediation",)


def _block_seed(root: np.random.SeedSequence, n: int, block: int) -> np.random.SeedSequence:
    """The stream of replicate block ``block`` at sample size ``n`` (as parallel.make_tasks keys it)."""
    return child_sequence(root, _SEED_PREFIX + (int(n), int(block)))


def _rng(block_seed: np.random.SeedSequence, *key: int | str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(child_sequence(block_seed, key)))


def _simulate_block(design: _Design, n: int, reps: int,
                    block_seed: np.random.SeedSequence) -> np.ndarray:
    """Data of one replicate block: Z with columns [1, X, W_1..W_k, M, Y], shape (reps, n, p).

    Each stream (data, cluster effects, resamples, Monte Carlo draws) has its own key under the
    block's seed, so a smaller (last) block is a prefix of a full one.
    """
    k = design.n_covariates
    shocks = _rng(block_seed, "data").standard_normal((reps, n, k + 3))
    x = shocks[..., 0]
    if design.x_level == "cluster":
        # a cluster-level exposure (the study's team fidelity): one value per cluster
        cluster_of, _ = _cluster_layout(n, design.n_clusters)
        x = _rng(block_seed, "x").standard_normal((reps, design.n_clusters))[:, cluster_of]
    w_sum = shocks[..., 1:1 + k].sum(axis=-1) if k else 0.0
    e_m = shocks[..., 1 + k]
    e_y = shocks[..., 2 + k]
    if design.n_clusters is not None and design.icc > 0:
        cluster_of, _ = _cluster_layout(n, design.n_clusters)
        u = _rng(block_seed, "clusters").standard_normal((reps, design.n_clusters, 2))
        within, between = math.sqrt(1 - design.icc), math.sqrt(design.icc)
        e_m = within * e_m + between * u[:, cluster_of, 0]
        e_y = within * e_y + between * u[:, cluster_of, 1]
    m = design.a * x + design.g_m * w_sum + math.sqrt(design.var_e_m) * e_m
    y = design.c_prime * x + design.b * m + design.g_y * w_sum + math.sqrt(design.var_e_y) * e_y
    z = np.empty((reps, n, design.n_columns))
    z[..., 0] = 1.0
    z[..., 1] = x
    if k:
        z[..., 2:2 + k] = shocks[..., 1:1 + k]
    z[..., design.m_col] = m
    z[..., design.y_col] = y
    return z


# -- batched least squares from moment matrices (the kernel of stats/bootstrap.py) -------------

def _paths_from_moments(moments: np.ndarray, design: _Design) -> tuple[np.ndarray, np.ndarray]:
    """a (X -> M) and b (M -> Y | X, W) from moment matrices Z'WZ of shape (..., p, p).

    A singular system (possible only for degenerate resamples of tiny samples) gives NaN.
    """
    coef_m, _ = solve_from_moments(moments, design.m_predictors, design.m_col)
    coef_y, _ = solve_from_moments(moments, design.y_predictors, design.y_col)
    return coef_m[..., 1], coef_y[..., -1]


def _draw_indices(rng: np.random.Generator, units: int, reps: int, size: int) -> np.ndarray:
    """Resample indices (reps, size, units), uniform on 0..units-1.

    Drawn with ``Generator.integers`` (Lemire's bounded integers), about ten times faster
    than :func:`fidelitymed.stats.bootstrap.resample_indices`' ``floor(u * n)``: a power
    simulation needs the distribution of the resamples, not PROCESS' individual draws.
    """
    return rng.integers(0, units, size=(reps, size, units))


def _row_quantiles(sorted_draws: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Linear-interpolation quantiles (numpy's default, Hyndman & Fan type 7) of each row of
    ``sorted_draws`` at its own probability ``q`` -- the per-replicate levels of BCa."""
    n_draws = sorted_draws.shape[-1]
    pos = np.clip(q, 0.0, 1.0) * (n_draws - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_draws - 1)
    frac = pos - lo
    take = np.take_along_axis
    return (take(sorted_draws, lo[..., None], -1)[..., 0] * (1 - frac)
            + take(sorted_draws, hi[..., None], -1)[..., 0] * frac)


def _percentile_bounds(draws: np.ndarray, conf: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile limits of each row of ``draws`` (replicates x resamples)."""
    if np.isnan(draws).any():
        tail = (1.0 - conf) / 2.0
        lo, hi = np.nanquantile(draws, [tail, 1.0 - tail], axis=-1)
        return lo, hi
    return percentile_interval(draws.T, conf)


def _bca_bounds(draws: np.ndarray, estimate: np.ndarray, jackknife: np.ndarray,
                conf: float) -> tuple[np.ndarray, np.ndarray]:
    """BCa limits of each row (Efron 1987; Efron & Tibshirani 1993, 14.3).

    The same interval as :func:`fidelitymed.stats.bootstrap.bca_interval` (z0 with ties counted
    half, jackknife acceleration, linear quantiles), vectorized over replicates: that function
    loops over its columns, which here would be a loop per replicate.
    """
    n_draws = draws.shape[-1]
    share = ((draws < estimate[..., None]).sum(-1) + (draws <= estimate[..., None]).sum(-1)) / (
        2.0 * n_draws)
    z0 = special.ndtri(share)
    dev = jackknife.mean(axis=-1, keepdims=True) - jackknife
    num = (dev ** 3).sum(axis=-1)
    den = 6.0 * (dev ** 2).sum(axis=-1) ** 1.5
    accel = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    z = special.ndtri(1.0 - (1.0 - conf) / 2.0)
    z_lo = z0 + (z0 - z) / (1.0 - accel * (z0 - z))
    z_hi = z0 + (z0 + z) / (1.0 - accel * (z0 + z))
    ordered = np.sort(draws, axis=-1)
    # z0 = +-inf (all draws on one side of the estimate) gives level 0 or 1: the extreme draw
    lo = _row_quantiles(ordered, np.nan_to_num(special.ndtr(z_lo), nan=0.0))
    hi = _row_quantiles(ordered, np.nan_to_num(special.ndtr(z_hi), nan=1.0))
    return lo, hi


def _ols_inference(z: np.ndarray, moments: np.ndarray, design: _Design, predictors: list[int],
                   response: int, path: int,
                   cluster_starts: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Estimate, SE and df of one coefficient per replicate (OLS, or CR1 with clusters)."""
    g = moments[..., predictors, :][..., :, predictors]
    h = moments[..., predictors, response]
    coef, _ = solve_from_moments(moments, predictors, response)
    g_inv = np.linalg.inv(g)
    n, p = z.shape[-2], len(predictors)
    if cluster_starts is None:
        sse = moments[..., response, response] - np.einsum("rp,rp->r", coef, h)
        var = sse / (n - p) * g_inv[..., path, path]
        df = n - p
    else:
        xs = z[..., predictors]
        resid = z[..., response] - np.einsum("rnp,rp->rn", xs, coef)
        scores = np.add.reduceat(xs * resid[..., None], cluster_starts, axis=1)
        meat = np.einsum("rjp,rjq->rpq", scores, scores)
        n_cl = len(cluster_starts)
        factor = n_cl / (n_cl - 1) * (n - 1) / (n - p)
        row = g_inv[..., path, :]
        var = factor * np.einsum("rp,rpq,rq->r", row, meat, row)
        df = n_cl - 1
    return coef[..., path], np.sqrt(var), df


@dataclass(frozen=True)
class _BlockSpec:
    design: _Design
    n: int
    reps: int
    method: str
    n_boot: int
    conf: float
    alpha: float


def _run_block_task(task) -> tuple[np.ndarray, np.ndarray]:
    """:mod:`fidelitymed.parallel` task function: one replicate block."""
    return _run_block(task.payload, task.seed)


def _run_block(task: _BlockSpec, block_seed: np.random.SeedSequence
               ) -> tuple[np.ndarray, np.ndarray]:
    """Decisions (reject H0: ab = 0) and estimates ab for the replicates of one block."""
    design, n, reps = task.design, task.n, task.reps
    z = _simulate_block(design, n, reps, block_seed)
    full = np.matmul(z.swapaxes(1, 2), z)  # (reps, p, p)
    a_hat, b_hat = _paths_from_moments(full, design)
    estimate = a_hat * b_hat
    clustered = design.n_clusters is not None
    cluster_of, starts = _cluster_layout(n, design.n_clusters) if clustered else (None, None)

    if task.method in ("joint", "monte_carlo"):
        path_b = len(design.y_predictors) - 1
        a_est, se_a, df_a = _ols_inference(z, full, design, design.m_predictors, design.m_col, 1,
                                           starts)
        b_est, se_b, df_b = _ols_inference(z, full, design, design.y_predictors, design.y_col,
                                           path_b, starts)
        if task.method == "joint":
            p_a = 2 * stats.t.sf(np.abs(a_est / se_a), df_a)
            p_b = 2 * stats.t.sf(np.abs(b_est / se_b), df_b)
            return (p_a < task.alpha) & (p_b < task.alpha), estimate
        # Monte Carlo CI: a and b come from different equations, so their sampling covariance
        # is 0 and independent normal draws are the MVN draws of PROCESS' mc= option.
        draws = _rng(block_seed, "mc").standard_normal((reps, task.n_boot, 2))
        ab = ((a_est[:, None] + se_a[:, None] * draws[..., 0])
              * (b_est[:, None] + se_b[:, None] * draws[..., 1]))
        lo, hi = _percentile_bounds(ab, task.conf)
        return (lo > 0) | (hi < 0), estimate

    # Bootstrap: resample clients, or whole clusters in a clustered design. All replicates x
    # resamples of a sub-block are one batched product counts @ row outer products.
    n_units = n if cluster_of is None else design.n_clusters
    boot = np.empty((reps, task.n_boot))
    for sub, first in enumerate(range(0, task.n_boot, _BOOT_BLOCK)):
        size = min(_BOOT_BLOCK, task.n_boot - first)
        idx = _draw_indices(_rng(block_seed, "boot", sub), n_units, reps, size)
        counts = index_counts(idx, n_units)
        if cluster_of is not None:
            counts = counts[..., cluster_of]  # a cluster's count weights each of its clients
        a_b, b_b = _paths_from_moments(moment_matrices(z, counts), design)
        boot[:, first:first + size] = a_b * b_b
    if task.method == "percentile":
        lo, hi = _percentile_bounds(boot, task.conf)
    else:
        # jackknife (leave one client, or cluster, out) by downdating the full moments
        outer = z[..., :, None] * z[..., None, :]  # (reps, n, p, p)
        if starts is not None:
            outer = np.add.reduceat(outer, starts, axis=1)
        a_j, b_j = _paths_from_moments(full[:, None] - outer, design)
        lo, hi = _bca_bounds(boot, estimate, a_j * b_j, task.conf)
    return (lo > 0) | (hi < 0), estimate


# -- running blocks through the executor -------------------------------------------------------

def _binomial_summary(successes: int, trials: int, level: float = 0.95
                      ) -> tuple[float, float, float, float]:
    """Proportion, its binomial SE and the Clopper-Pearson (exact) interval."""
    prop = successes / trials
    se = math.sqrt(prop * (1 - prop) / trials)
    tail = (1 - level) / 2
    lo = 0.0 if successes == 0 else float(stats.beta.ppf(tail, successes, trials - successes + 1))
    hi = 1.0 if successes == trials else float(stats.beta.ppf(1 - tail, successes + 1,
                                                              trials - successes))
    return prop, se, lo, hi


def _run_blocks(specs: Sequence[tuple[int, _BlockSpec]], root: np.random.SeedSequence,
                executor: Any, workers: int | None,
                progress: Callable[[int, int], None] | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Run (block, spec) pairs serially or through :mod:`fidelitymed.parallel`, in order."""
    from .. import parallel

    tasks = parallel.make_tasks({(spec.n, block): spec for block, spec in specs}, seed=root,
                                prefix=_SEED_PREFIX)
    callback = None if progress is None else (lambda done, total, key: progress(done, total))
    if executor is None or isinstance(executor, str):
        return parallel.map(_run_block_task, tasks, backend=executor or "serial", workers=workers,
                            progress=callback)
    return executor.map(_run_block_task, tasks, progress=callback)


def _block_specs(design: _Design, n: int, n_rep: int, method: str, n_boot: int, conf: float,
                 alpha: float) -> list[tuple[int, _BlockSpec]]:
    out = []
    for block, first in enumerate(range(0, n_rep, _REP_BLOCK)):
        reps = min(_REP_BLOCK, n_rep - first)
        out.append((block, _BlockSpec(design=design, n=n, reps=reps, method=method,
                                      n_boot=n_boot, conf=conf, alpha=alpha)))
    return out


def _check_mediation_args(method: str, n_boot: int, n_rep: int, conf: float,
                          alpha: float) -> tuple[str, int, int, float, float]:
    if method not in MEDIATION_METHODS:
        raise ConfigError(f"method must be one of {', '.join(MEDIATION_METHODS)}; got {method!r}")
    n_boot = _check_int("n_boot", n_boot, 100)
    n_rep = _check_int("n_rep", n_rep, 1)
    conf = _check_prob("conf", conf)
    alpha = _check_prob("alpha", alpha)
    return method, n_boot, n_rep, conf, alpha


def _check_n(n: Any, design: _Design) -> int:
    minimum = 3 + len(design.y_predictors)
    if design.n_clusters is not None:
        minimum = max(minimum, design.n_clusters)
    return _check_int("n", n, minimum)


@dataclass(frozen=True)
class MediationPowerResult:
    """Monte Carlo power of a test of the indirect effect ``a*b`` at one sample size.

    ``power`` is the share of ``n_rep`` replicates that rejected ``ab = 0``; ``se`` its binomial
    Monte Carlo SE and ``ci_low``/``ci_high`` its Clopper-Pearson 95% interval.
    """

    a: float
    b: float
    c_prime: float
    n: int
    method: str
    n_rep: int
    n_boot: int
    conf: float
    alpha: float
    covariates_r2: float
    n_covariates: int
    icc: float
    n_clusters: int | None
    x_level: str
    rejections: int
    power: float
    se: float
    ci_low: float
    ci_high: float
    mean_indirect: float
    sd_indirect: float
    seed_entropy: int
    backend: str = "serial"
    effects: str = "standardized"

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.to_dict()])

    def _repr_html_(self) -> str:
        return self.to_frame()._repr_html_()

    def summary(self) -> str:
        test = {"percentile": f"percentile bootstrap CI ({self.conf:.0%}, B = {self.n_boot})",
                "bca": f"BCa bootstrap CI ({self.conf:.0%}, B = {self.n_boot})",
                "monte_carlo": f"Monte Carlo CI ({self.conf:.0%}, {self.n_boot} draws)",
                "joint": f"joint significance of a and b (alpha = {self.alpha})"}[self.method]
        lines = [
            "Monte Carlo power for the indirect effect (single-mediator model, "
            f"{_EFFECTS_LABEL[self.effects]})",
            f"  a = {self.a:.4f}   b = {self.b:.4f}   c' = {self.c_prime:.4f}   ab = "
            f"{self.a * self.b:.4f}",
            f"  N = {self.n}",
        ]
        if self.covariates_r2 > 0:
            lines.append(f"  covariates: {self.n_covariates}, explaining {self.covariates_r2:.3f} of "
                         "var(M) and var(Y)")
        if self.n_clusters is not None:
            lines.append(f"  clusters: {self.n_clusters}, residual ICC {self.icc:.3f} in M and Y "
                         "(cluster bootstrap / CR1 SEs)"
                         + ("; X measured per cluster" if self.x_level == "cluster" else ""))
        lines += [
            f"  test: {test}",
            f"  replicates: {self.n_rep}   seed entropy: {self.seed_entropy}",
            f"  power = {self.power:.4f}   MC SE = {self.se:.4f}   95% CI [{self.ci_low:.4f}, "
            f"{self.ci_high:.4f}]",
            f"  mean estimate of ab = {self.mean_indirect:.4f} (SD over replicates "
            f"{self.sd_indirect:.4f})",
        ]
        return "\n".join(lines)


_EFFECTS_LABEL = {"standardized": "standardized paths",
                  "unit_residual": "raw paths, unit residual variances"}


def _power_result(design: _Design, n: int, method: str, n_rep: int, n_boot: int, conf: float,
                  alpha: float, root: np.random.SeedSequence, backend: str,
                  outputs: Sequence[tuple[np.ndarray, np.ndarray]]) -> MediationPowerResult:
    reject = np.concatenate([o[0] for o in outputs])
    estimate = np.concatenate([o[1] for o in outputs])
    power, se, lo, hi = _binomial_summary(int(reject.sum()), n_rep)
    return MediationPowerResult(
        a=design.a, b=design.b, c_prime=design.c_prime, n=n, method=method, n_rep=n_rep,
        n_boot=0 if method == "joint" else n_boot, conf=conf, alpha=alpha,
        covariates_r2=design.covariates_r2, n_covariates=design.n_covariates, icc=design.icc,
        n_clusters=design.n_clusters, x_level=design.x_level, rejections=int(reject.sum()), power=power, se=se,
        ci_low=lo, ci_high=hi, mean_indirect=float(estimate.mean()),
        sd_indirect=float(estimate.std(ddof=1)) if n_rep > 1 else float("nan"),
        seed_entropy=int(root.entropy), backend=backend, effects=design.effects)


def _backend_name(executor: Any) -> str:
    if executor is None:
        return "serial"
    if isinstance(executor, str):
        return executor
    return str(getattr(executor, "backend", type(executor).__name__))


@single_thread()  # one BLAS thread: the same digits under any thread count
def power_mediation(a: float, b: float, n: int, c_prime: float = 0.0, method: str = "percentile",
                    n_boot: int = 1000, n_rep: int = 1000, conf: float = 0.95,
                    alpha: float = 0.05, seed: SeedLike = None, covariates_r2: float = 0.0,
                    n_covariates: int = 1, icc: float = 0.0, n_clusters: int | None = None,
                    x_level: str = "client", executor: Any = None, workers: int | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    effects: str = "standardized") -> MediationPowerResult:
    """Monte Carlo power to detect the indirect effect ``a*b`` of a single-mediator model.

    Parameters
    ----------
    a, b : float
        Paths X -> M and M -> Y (given X): standardized, in (-1, 1), or raw coefficients with
        ``effects="unit_residual"``.
    n : int
        Sample size (clients).
    c_prime : float, default 0
        Direct effect X -> Y (standardized, or raw with ``effects="unit_residual"``).
    method : {"percentile", "bca", "monte_carlo", "joint"}
        Test of ``ab``: percentile or BCa bootstrap CI, Monte Carlo CI, or joint significance
        of a and b (t tests at ``alpha``).
    n_boot : int, default 1000
        Bootstrap resamples (or Monte Carlo draws) per replicate.
    n_rep : int, default 1000
        Simulated data sets. The Monte Carlo SE of the power is ``sqrt(p(1-p)/n_rep)``
        (<= 0.016 at 1000).
    conf : float, default 0.95
        Confidence level of the CI methods.
    alpha : float, default 0.05
        Level of the joint-significance t tests.
    seed : int, SeedSequence or None
        Root seed; ``None`` draws fresh entropy (reported as ``seed_entropy``).
    covariates_r2 : float, default 0
        Variance of M and of Y that the covariates explain (they are independent of X and
        included in both analysis equations).
    n_covariates : int, default 1
        How many covariates share ``covariates_r2`` (equally).
    icc : float, default 0
        Residual intraclass correlation of M and of Y (random intercepts); needs ``n_clusters``.
    n_clusters : int or None
        Clusters (e.g. case managers or teams) the ``n`` clients are spread over as evenly as
        possible. When given, the analysis is cluster-aware (cluster bootstrap, CR1 SEs).
    x_level : {"client", "cluster"}, default "client"
        ``"cluster"`` makes X a cluster-level exposure (one value per cluster, e.g. team
        fidelity); needs ``n_clusters``. Power for ``a`` is then bounded by the number of
        clusters, however many clients they hold.
    executor : None, "serial", "processes", "dask" or :class:`fidelitymed.parallel.Executor`
        Where replicate blocks run; results do not depend on it.
    workers : int or None
        Worker count when ``executor`` is a backend name.
    progress : callable or None
        ``progress(done, total)`` after each block of replicates.
    effects : {"standardized", "unit_residual"}, default "standardized"
        How a, b and c' are scaled. ``"standardized"``: var(X) = var(M) = var(Y) = 1 (the error
        variances absorb the rest). ``"unit_residual"``: X ~ N(0, 1), M = aX + e_M,
        Y = c'X + bM + e_Y with var(e_M) = var(e_Y) = 1 (raw coefficients, as in the
        simulations of MacKinnon et al. 2002 and, by their effect-size choices, Fritz &
        MacKinnon 2007); the standardized paths are then smaller, e.g. a_std = a / sqrt(1 + a²).
        Needs ``covariates_r2 = 0``.

    Returns
    -------
    MediationPowerResult

    Notes
    -----
    Model and analysis are described in the module docstring. Replicates are simulated in
    blocks of 25; all resamples of a block are reduced to moment matrices by one batched matrix
    product, and the BCa jackknife is computed by downdating the full-sample moments.

    References
    ----------
    Fritz, M. S., & MacKinnon, D. P. (2007). Required sample size to detect the mediated effect.
    *Psychological Science, 18*, 233-239.
    Schoemann, A. M., Boulton, A. J., & Short, S. D. (2017). Determining power and sample size
    for simple and complex mediation models. *Social Psychological and Personality Science, 8*,
    379-386.
    Efron, B. (1987). Better bootstrap confidence intervals. *JASA, 82*, 171-185.
    MacKinnon, D. P., Lockwood, C. M., & Williams, J. (2004). Confidence limits for the indirect
    effect. *Multivariate Behavioral Research, 39*, 99-128.
    """
    design = _make_design(a, b, c_prime, covariates_r2, n_covariates, icc, n_clusters, x_level,
                          effects)
    method, n_boot, n_rep, conf, alpha = _check_mediation_args(method, n_boot, n_rep, conf, alpha)
    n = _check_n(n, design)
    root = root_sequence(seed)
    specs = _block_specs(design, n, n_rep, method, n_boot, conf, alpha)
    outputs = _run_blocks(specs, root, executor, workers, progress)
    return _power_result(design, n, method, n_rep, n_boot, conf, alpha, root,
                         _backend_name(executor), outputs)


# -- sample size for the indirect effect -------------------------------------------------------

@dataclass(frozen=True)
class MediationSampleSizeResult:
    """Sample size for a target Monte Carlo power of the indirect-effect test.

    The power at each evaluated N is simulated (``curve``); a probit curve in log N is fitted
    to all replicates by maximum likelihood (binomial GLM), and ``n`` is the smallest integer N
    whose fitted power reaches ``target_power``. ``n_ci_low``/``n_ci_high`` is the 95% interval
    of the N solving the fitted curve (delta method on log N) — the Monte Carlo uncertainty of N.
    """

    a: float
    b: float
    c_prime: float
    method: str
    target_power: float
    n: int
    n_exact: float
    n_se: float
    n_ci_low: float
    n_ci_high: float
    fitted_power_at_n: float
    fitted_power_at_n_minus_1: float
    probit_intercept: float
    probit_slope: float
    probit_cov: tuple[tuple[float, float], tuple[float, float]]
    start_n: int
    curve: tuple[MediationPowerResult, ...] = field(repr=False)

    def fitted_power(self, n: Any) -> np.ndarray:
        """Fitted power Φ(β0 + β1 log N) at ``n`` (scalar or array)."""
        n = np.asarray(n, dtype=float)
        return stats.norm.cdf(self.probit_intercept + self.probit_slope * np.log(n))

    def fitted_band(self, n: Any, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise ``level`` band of the fitted power (delta method on the probit scale)."""
        n = np.atleast_1d(np.asarray(n, dtype=float))
        design = np.column_stack([np.ones_like(n), np.log(n)])
        eta = design @ np.array([self.probit_intercept, self.probit_slope])
        se = np.sqrt(np.einsum("ij,jk,ik->i", design, np.asarray(self.probit_cov), design))
        z = stats.norm.ppf(0.5 + level / 2)
        return stats.norm.cdf(eta - z * se), stats.norm.cdf(eta + z * se)

    def to_frame(self) -> pd.DataFrame:
        """One row per simulated N (power, MC SE, CI) with the fitted power."""
        frame = pd.DataFrame([r.to_dict() for r in self.curve])
        frame = frame[["n", "n_rep", "rejections", "power", "se", "ci_low", "ci_high"]]
        frame["fitted_power"] = self.fitted_power(frame["n"].to_numpy())
        return frame.sort_values("n").reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "curve"}
        first = self.curve[0]
        out.update(n_rep_per_n=first.n_rep, n_boot=first.n_boot, conf=first.conf,
                   alpha=first.alpha, covariates_r2=first.covariates_r2,
                   n_covariates=first.n_covariates, icc=first.icc, n_clusters=first.n_clusters,
                   x_level=first.x_level, seed_entropy=first.seed_entropy,
                   effects=first.effects)
        out["curve"] = self.to_frame().to_dict(orient="records")
        return json_safe(out)

    def _repr_html_(self) -> str:
        return self.to_frame()._repr_html_()

    def summary(self) -> str:
        first = self.curve[0]
        lines = [
            "Sample size for the indirect effect (Monte Carlo power, fitted probit curve in log N)",
            f"  a = {self.a:.4f}   b = {self.b:.4f}   c' = {self.c_prime:.4f}   method: {self.method}"
            + ("" if self.method == "joint" else f" (B = {first.n_boot}, conf {first.conf:.0%})")
            + ("" if first.effects == "standardized" else f"; {_EFFECTS_LABEL[first.effects]}"),
            f"  target power {self.target_power:.2f}; {first.n_rep} replicates at each of "
            f"{len(self.curve)} sample sizes (seed entropy {first.seed_entropy})",
            f"  N = {self.n}   (solution {self.n_exact:.1f}, MC SE {self.n_se:.1f}, "
            f"95% CI [{self.n_ci_low:.0f}, {self.n_ci_high:.0f}])",
            f"  fitted power at N: {self.fitted_power_at_n:.4f}; at N - 1: "
            f"{self.fitted_power_at_n_minus_1:.4f}",
            "",
            "       N   power   MC SE   95% CI            fitted",
        ]
        for row in self.to_frame().itertuples():
            lines.append(f"  {row.n:6d}  {row.power:.4f}  {row.se:.4f}  [{row.ci_low:.4f}, "
                         f"{row.ci_high:.4f}]  {row.fitted_power:.4f}")
        return "\n".join(lines)


def _analytic_start(design: _Design, target: float, alpha: float) -> int:
    """N at which the joint test's power, approximated as P(a sig.) * P(b sig.), reaches target.

    Uses the noncentral F of :func:`power_regression` for each path (partial f²:
    a²/(1 - a² - r2) and b²(1 - a² - r2)/var(e_Y); a² and b² with unit residual variances);
    the percentile bootstrap needs a little
    more (Fritz & MacKinnon 2007, Table 3), so this is only the centre of the first grid.
    """
    k = design.n_covariates
    f2_a = design.a ** 2 / design.var_e_m
    f2_b = design.b ** 2 * design.var_e_m / design.var_e_y

    def joint(n: int) -> float:
        pa = _regression_power_value(f2_a, n, 1 + k, 1, alpha)[0]
        pb = _regression_power_value(f2_b, n, 2 + k, 1, alpha)[0]
        return pa * pb

    n_min = 4 + k if design.n_clusters is None else max(4 + k, design.n_clusters)
    return _smallest_n(joint, target, n_min, _N_MAX, "sample_size_mediation")


def _fit_probit(ns: np.ndarray, successes: np.ndarray, trials: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """ML probit fit of power on log N (binomial GLM); coefficients and their covariance."""
    import statsmodels.api as sm

    exog = np.column_stack([np.ones(len(ns)), np.log(ns)])
    endog = np.column_stack([successes, trials - successes])
    fit = sm.GLM(endog, exog, family=sm.families.Binomial(link=sm.families.links.Probit())).fit()
    return np.asarray(fit.params), np.asarray(fit.cov_params())


@single_thread()  # one BLAS thread: the same digits under any thread count
def sample_size_mediation(a: float, b: float, power: float = 0.8, c_prime: float = 0.0,
                          method: str = "percentile", n_boot: int = 1000, n_rep: int = 1000,
                          conf: float = 0.95, alpha: float = 0.05, seed: SeedLike = None,
                          covariates_r2: float = 0.0, n_covariates: int = 1, icc: float = 0.0,
                          n_clusters: int | None = None, x_level: str = "client",
                          grid: Sequence[int] | None = None,
                          max_rounds: int = 3, executor: Any = None, workers: int | None = None,
                          progress: Callable[[int, int], None] | None = None,
                          effects: str = "standardized") -> MediationSampleSizeResult:
    """Sample size N for a target power of the indirect-effect test, with its MC uncertainty.

    Power is simulated (:func:`power_mediation`, ``n_rep`` replicates each) on a grid of N
    around an analytic start (the joint test's power approximated by the product of the two
    paths' noncentral-F powers); a probit curve in log N is fitted by maximum likelihood to all
    replicates and solved for ``power``. If the solution falls outside the simulated range, a
    new grid around it is added (at most ``max_rounds`` grids). The Monte Carlo uncertainty of
    N comes from the fit's covariance (delta method on log N).

    Parameters
    ----------
    a, b, power
        Paths (standardized, or raw with ``effects="unit_residual"``) and target power.
    grid : sequence of int, optional
        The sample sizes of the first round (default: the analytic start times 0.8, 0.9, 1,
        1.1, 1.2, 1.35).
    max_rounds : int, default 3
    Other parameters
        As in :func:`power_mediation`. With ``n_clusters`` the number of clusters stays fixed
        and clusters grow with N.

    Returns
    -------
    MediationSampleSizeResult
        ``n`` is the smallest integer whose *fitted* power reaches the target.

    References
    ----------
    Fritz, M. S., & MacKinnon, D. P. (2007). Required sample size to detect the mediated effect.
    *Psychological Science, 18*, 233-239.
    """
    design = _make_design(a, b, c_prime, covariates_r2, n_covariates, icc, n_clusters, x_level,
                          effects)
    method, n_boot, n_rep, conf, alpha = _check_mediation_args(method, n_boot, n_rep, conf, alpha)
    target = _check_prob("power", power)
    max_rounds = _check_int("max_rounds", max_rounds, 1)
    if design.a == 0 or design.b == 0:
        raise ConfigError(f"a = {design.a} and b = {design.b}: with a zero path the power stays "
                          f"at or below alpha and never reaches {target}; expected non-zero a and b")
    root = root_sequence(seed)
    start = _analytic_start(design, target, alpha)
    n_floor = 3 + len(design.y_predictors)
    if design.n_clusters is not None:
        n_floor = max(n_floor, design.n_clusters)

    def around(center: float) -> list[int]:
        return sorted({max(n_floor, int(round(center * f))) for f in (0.8, 0.9, 1.0, 1.1, 1.2, 1.35)})

    pending = sorted({_check_n(g, design) for g in grid}) if grid is not None else around(start)
    results: dict[int, MediationPowerResult] = {}
    backend = _backend_name(executor)
    for _round in range(max_rounds):
        todo = [n for n in pending if n not in results]
        specs = [spec for n in todo for spec in _block_specs(design, n, n_rep, method, n_boot,
                                                             conf, alpha)]
        outputs = _run_blocks(specs, root, executor, workers, progress) if specs else []
        per_n = len(_block_specs(design, 1, n_rep, method, n_boot, conf, alpha)) if todo else 0
        for i, n in enumerate(todo):
            results[n] = _power_result(design, n, method, n_rep, n_boot, conf, alpha, root,
                                       backend, outputs[i * per_n:(i + 1) * per_n])
        ns = np.array(sorted(results))
        succ = np.array([results[n].rejections for n in ns], dtype=float)
        trials = np.array([results[n].n_rep for n in ns], dtype=float)
        fitted = False
        if 0 < succ.sum() < trials.sum():
            params, cov = _fit_probit(ns, succ, trials)
            fitted = params[1] > 0
        if fitted:
            log_n = (stats.norm.ppf(target) - params[0]) / params[1]
            if ns.min() <= math.exp(log_n) <= ns.max():
                break
            # extrapolated: simulate around the solution (bounded step)
            center = float(np.clip(math.exp(log_n), ns.min() / 2, ns.max() * 2))
        else:
            # all-or-nothing power on the grid: move towards the target
            center = ns.max() * 2 if succ.sum() / trials.sum() < target else ns.min() / 2
        pending = around(center)
    if not fitted:
        raise ConfigError("sample_size_mediation: the simulated power did not bracket the target "
                          f"{target} (N {ns.min()}..{ns.max()}); pass a wider `grid` or more rounds")
    z_t = stats.norm.ppf(target)
    log_n = (z_t - params[0]) / params[1]
    gradient = np.array([-1.0 / params[1], -(z_t - params[0]) / params[1] ** 2])
    se_log = float(math.sqrt(gradient @ cov @ gradient))
    n_exact = math.exp(log_n)
    n_int = max(n_floor, math.ceil(n_exact - 1e-9))
    z = stats.norm.ppf(0.975)

    def fitted_at(n: float) -> float:
        return float(stats.norm.cdf(params[0] + params[1] * math.log(n)))

    return MediationSampleSizeResult(
        a=design.a, b=design.b, c_prime=design.c_prime, method=method, target_power=target,
        n=n_int, n_exact=n_exact, n_se=n_exact * se_log,
        n_ci_low=math.exp(log_n - z * se_log), n_ci_high=math.exp(log_n + z * se_log),
        fitted_power_at_n=fitted_at(n_int), fitted_power_at_n_minus_1=fitted_at(max(n_int - 1, 1)),
        probit_intercept=float(params[0]), probit_slope=float(params[1]),
        probit_cov=((float(cov[0, 0]), float(cov[0, 1])), (float(cov[1, 0]), float(cov[1, 1]))),
        start_n=start, curve=tuple(results[n] for n in sorted(results)))
