"""Pooling analyses of multiply imputed data: Rubin's rules and three schemes for the indirect effect.

Coefficients (the paths ``a``, ``b``, ``c'``, ``c``) are pooled with Rubin's (1987) rules and the
Barnard & Rubin (1999) small-sample degrees of freedom, exactly as R ``mice::pool`` does
(van Buuren 2018, section 5.2): ``Qbar`` = mean estimate, ``Ubar`` = mean squared SE,
``B`` = between-imputation variance, ``T = Ubar + (1 + 1/m) B``, ``riv = (1 + 1/m) B / Ubar``,
``lambda = (1 + 1/m) B / T``, ``fmi = (riv + 2 / (df + 3)) / (riv + 1)``, and t tests and CIs
on ``df``. The model F tests are pooled with the D1 statistic (multivariate Wald with the
pooled covariance; Li, Raghunathan & Rubin 1991; Reiter 2007 df, as ``mice::D1``) and
R-squared with Fisher's z (Harel 2009).

The indirect effect ``ab`` has no usable SE, so Rubin's rules do not apply directly. Schemes:

``stacked``
    Bootstrap within each completed data set (``B`` resamples each) and take percentile
    limits over all ``m x B`` draws; point estimate = mean of the ``m`` estimates. Closest to
    what the paper did (PROCESS bootstraps run on imputed data); simple; the stacked draws mix
    within- and between-imputation variability. Schomaker & Heumann (2018) found such
    MI-then-bootstrap intervals can be somewhat conservative or anti-conservative depending on
    the amount of missing information; use ``boot_mi`` to check.
``boot_mi``
    Resample the incomplete data first, impute each resample a few times, average the
    estimates per resample, percentile limits over resamples (Schomaker & Heumann 2018, "Boot
    MI"; Bartlett & Hughes 2020 show bootstrap-then-impute stays valid under uncongenial or
    misspecified imputation models). Point estimate = the MI estimate of the original data.
    Costs ``B x M`` imputations (see :func:`fidelitymed.stats.mi_mediation.mediate_imputed`).
``rubin_mc``
    Monte Carlo CI (Selig & Preacher 2008; MacKinnon, Lockwood & Williams 2004): draw
    ``(a, b)`` from a normal with the Rubin-pooled means and covariance
    ``T = Ubar + (1 + 1/m) B`` (``Ubar`` diagonal -- ``a`` and ``b`` come from separate OLS
    equations -- and ``B`` the full between-imputation covariance), percentile limits of the
    products. Cheap (no bootstrap per imputation); assumes normal ``a`` and ``b``.

References
----------
Rubin, D. B. (1987). *Multiple Imputation for Nonresponse in Surveys*. Wiley.
Barnard, J. & Rubin, D. B. (1999). Small-sample degrees of freedom with multiple imputation.
*Biometrika* 86, 948-955.
Li, K. H., Raghunathan, T. E. & Rubin, D. B. (1991). Large-sample significance levels from
multiply imputed data using moment-based statistics and an F reference distribution. *JASA* 86, 1065-1073.
Harel, O. (2009). The estimation of R^2 and adjusted R^2 in incomplete data sets using multiple
imputation. *J. Appl. Stat.* 36, 1109-1118.
Schomaker, M. & Heumann, C. (2018). Bootstrap inference when using multiple imputation.
*Stat. Med.* 37, 2252-2266.
Bartlett, J. W. & Hughes, R. A. (2020). Bootstrap inference for multiple imputation under
uncongeniality and misspecification. *Stat. Methods Med. Res.* 29, 3533-3546.
Selig, J. P. & Preacher, K. J. (2008). Monte Carlo method for assessing mediation [computer software].
van Buuren, S. (2018). *Flexible Imputation of Missing Data* (2nd ed.). CRC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..seeding import SeedLike, generator
from .distributions import f_sf, t_ppf, t_sf

__all__ = ["SCHEMES", "RubinPooled", "rubin", "barnard_rubin_df", "pool_wald", "pool_r2",
           "PooledMediationResult", "pool_mediation", "rubin_mc_draws"]

SCHEMES = ("stacked", "boot_mi", "rubin_mc")
_PATH_KEYS = ("coef", "se", "t", "p", "ci_low", "ci_high")
_INDIRECT_KEYS = ("effect", "boot_se", "ci_low", "ci_high")
_RUBIN_KEYS = ("df", "ubar", "b", "t_var", "riv", "lambda", "fmi")


# ====================================================================================== Rubin
def _shifted_moments(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample covariance (ddof 1) over rows, computed about the first row.

    Shifting by a data value (the "shifted data" algorithm; Chan, Golub & LeVeque 1983) leaves
    both statistics unchanged in exact arithmetic, makes them exact when every row is the same
    (complete data: every imputation's estimate is bitwise equal, so ``B`` is exactly 0 and
    ``Qbar`` exactly that estimate -- ``np.var`` gives ~1e-33 from the rounded mean) and avoids
    cancellation when the spread is small relative to the values.
    """
    ref = q[0]
    d = q - ref
    shift = d.mean(axis=0)
    dev = d - shift
    return ref + shift, dev.T @ dev / (q.shape[0] - 1)


def barnard_rubin_df(m: int, b, t, dfcom=np.inf) -> np.ndarray:
    """Barnard & Rubin (1999) degrees of freedom, as ``mice:::barnard.rubin``.

    ``lambda = (1 + 1/m) B / T`` (floored at 1e-4, as mice does, so ``B = 0`` gives a large
    finite df), ``df_old = (m - 1) / lambda^2``,
    ``df_obs = (dfcom + 1) / (dfcom + 3) * dfcom * (1 - lambda)``, result
    ``df_old * df_obs / (df_old + df_obs)`` (``df_old`` when ``dfcom`` is infinite).
    """
    b = np.asarray(b, dtype=float)
    t = np.asarray(t, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = np.maximum((1.0 + 1.0 / m) * b / t, 1e-4)
        dfold = (m - 1) / lam ** 2
        dfcom = np.asarray(dfcom, dtype=float)
        dfobs = (dfcom + 1.0) / (dfcom + 3.0) * dfcom * (1.0 - lam)
        return np.where(np.isinf(dfcom), dfold, dfold * dfobs / (dfold + dfobs))


@dataclass(frozen=True)
class RubinPooled:
    """Rubin-pooled scalar parameters (arrays, one entry per parameter). See :func:`rubin`."""

    m: int
    estimate: np.ndarray
    ubar: np.ndarray
    b: np.ndarray
    t_var: np.ndarray
    dfcom: np.ndarray
    df: np.ndarray
    riv: np.ndarray
    lambda_: np.ndarray
    fmi: np.ndarray
    conf: float

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(self.t_var)

    @property
    def statistic(self) -> np.ndarray:
        return self.estimate / self.se

    @property
    def p(self) -> np.ndarray:
        return 2.0 * t_sf(np.abs(self.statistic), self.df)

    @property
    def ci_low(self) -> np.ndarray:
        return self.estimate - t_ppf(0.5 + self.conf / 2.0, self.df) * self.se

    @property
    def ci_high(self) -> np.ndarray:
        return self.estimate + t_ppf(0.5 + self.conf / 2.0, self.df) * self.se

    def to_frame(self, names: Sequence[str] | None = None) -> pd.DataFrame:
        """Columns as ``summary(mice::pool(...))`` plus the pooling quantities of ``pool()$pooled``."""
        frame = pd.DataFrame({"estimate": self.estimate, "std_error": self.se, "statistic": self.statistic,
                              "df": self.df, "p_value": self.p, "ci_low": self.ci_low, "ci_high": self.ci_high,
                              "m": self.m, "ubar": self.ubar, "b": self.b, "t": self.t_var, "dfcom": self.dfcom,
                              "riv": self.riv, "lambda": self.lambda_, "fmi": self.fmi},
                             index=None if names is None else list(names))
        return frame


def rubin(estimates, variances, dfcom=np.inf, conf: float = 0.95) -> RubinPooled:
    """Rubin's rules for scalar parameters with Barnard-Rubin df (``mice::pool``, rule "rubin1987").

    Parameters
    ----------
    estimates, variances : array_like, shape (m,) or (m, k)
        Per-imputation estimates and squared standard errors (rows = imputations).
    dfcom : float or array_like (k,)
        Complete-data residual df (``n - p`` for OLS); ``inf`` for large-sample df.
    conf : float
        Level of the t-based confidence intervals.
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    if q.ndim == 1:
        q = q[:, None]
        u = u[:, None]
    if q.shape != u.shape:
        raise ConfigError(f"estimates {q.shape} and variances {u.shape} must have the same shape")
    m = q.shape[0]
    if m < 2:
        raise ConfigError(f"Rubin's rules need at least 2 imputations; got {m}")
    qbar, between = _shifted_moments(q)
    ubar = u.mean(axis=0)
    b = np.diagonal(between).copy()
    t = ubar + (1.0 + 1.0 / m) * b
    dfcom = np.broadcast_to(np.asarray(dfcom, dtype=float), qbar.shape).copy()
    df = barnard_rubin_df(m, b, t, dfcom)
    with np.errstate(invalid="ignore", divide="ignore"):
        riv = (1.0 + 1.0 / m) * b / ubar
        lam = (1.0 + 1.0 / m) * b / t
        fmi = (riv + 2.0 / (df + 3.0)) / (riv + 1.0)
    return RubinPooled(m, qbar, ubar, b, t, dfcom, df, riv, lam, fmi, float(conf))


def pool_wald(coefs, vcovs, dfcom: float | None = None) -> dict[str, float]:
    """The D1 test that all ``k`` parameters are 0 (Li, Raghunathan & Rubin 1991).

    ``D1 = Qbar' Ubar^-1 Qbar / (k (1 + r1))`` with ``r1 = (1 + 1/m) tr(B Ubar^-1) / k``, F
    reference with ``k`` and ``v`` df. Without ``dfcom``: ``v = 4 + (t - 4) (1 + (1 - 2/t) / r1)^2``
    when ``t = k (m - 1) > 4``, else ``t (1 + 1/k) (1 + 1/r1)^2 / 2``. With the complete-data
    ``dfcom``: Reiter's (2007) small-sample ``v`` -- as ``mice::D1`` / ``mitml::testModels``
    compute them (van Buuren 2018, 5.3.1).

    Reiter, J. P. (2007). Small-sample degrees of freedom for multi-component significance
    tests with multiple imputation for missing data. *Biometrika* 94, 502-508.
    """
    q = np.asarray(coefs, dtype=float)
    v = np.asarray(vcovs, dtype=float)
    m, k = q.shape
    qbar, b = _shifted_moments(q)
    ubar = v.mean(axis=0)
    r1 = float((1.0 + 1.0 / m) * np.trace(b @ np.linalg.inv(ubar)) / k)
    d1 = float(qbar @ np.linalg.solve((1.0 + r1) * ubar, qbar) / k)
    t = k * (m - 1)
    if dfcom is not None and np.isfinite(dfcom) and t > 4:
        a = r1 * t / (t - 2.0)
        vstar = (dfcom + 1.0) / (dfcom + 3.0) * dfcom
        c0 = 1.0 / (t - 4.0)
        c1 = vstar - 2.0 * (1.0 + a)
        c2 = vstar - 4.0 * (1.0 + a)
        z = (1.0 / c2 + c0 * (a ** 2 * c1 / ((1.0 + a) ** 2 * c2))
             + c0 * (8.0 * a ** 2 * c1 / ((1.0 + a) * c2 ** 2) + 4.0 * a ** 2 / ((1.0 + a) * c2))
             + c0 * (4.0 * a ** 2 / (c2 * c1) + 16.0 * a ** 2 * c1 / c2 ** 3) + c0 * (8.0 * a ** 2 / c2 ** 2))
        v1 = 4.0 + 1.0 / z
    elif r1 <= 0:
        v1 = np.inf
    elif t > 4:
        v1 = 4.0 + (t - 4.0) * (1.0 + (1.0 - 2.0 / t) / r1) ** 2
    else:
        v1 = t * (1.0 + 1.0 / k) * (1.0 + 1.0 / r1) ** 2 / 2.0
    p = float(f_sf(d1, k, v1))
    return {"F": d1, "df1": int(k), "df2": float(v1), "p": p, "riv": r1}


def pool_r2(r2) -> float:
    """Pooled R-squared: mean Fisher z of ``sqrt(R2)``, back-transformed and squared (Harel 2009)."""
    r = np.sqrt(np.clip(np.asarray(r2, dtype=float), 0.0, 1.0 - 1e-15))
    return float(np.tanh(np.arctanh(r).mean()) ** 2)


# ============================================================================ pooled mediation
def _jf(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else None


@dataclass(frozen=True)
class PooledMediationResult:
    """PROCESS Model 4 pooled over ``m`` imputations. Immutable.

    ``to_dict()`` has every key of :meth:`MediationResult.to_dict` -- with Rubin-pooled paths
    (each path also carries ``df, ubar, b, t_var, riv, lambda, fmi``) and D1-pooled model
    tests -- plus ``imputations`` (m) and ``pooling`` (the indirect-effect scheme).
    """

    x: str
    m: str
    y: str
    covariates: tuple[str, ...]
    n: int
    n_dropped: int
    conf: float
    imputations: int
    pooling: str
    paths: dict[str, dict[str, float]]
    models: dict[str, dict[str, float]]
    indirect: dict[str, float]
    indirect_partially_std: dict[str, float]
    indirect_std: dict[str, float]
    n_boot: int
    n_boot_failed: int
    seed: Any
    draws: int                                # indirect-effect draws behind the CI
    results: tuple[Any, ...] = field(default=(), repr=False)
    notes: tuple[str, ...] = ()
    #: parallel mediators (k >= 2): paths a/b and the indirect blocks are keyed by mediator, as in
    #: MediationResult; ``contrasts`` as there
    mediators: tuple[str, ...] = ()
    contrasts: dict[str, dict[str, float]] | None = None

    @property
    def ab(self) -> float:
        return float((self.indirect if len(self.mediators) < 2 else self.indirect["total"])["effect"])

    def _flat_paths(self):
        for name, d in self.paths.items():
            if "coef" in d:
                yield name, d
            else:
                for m, v in d.items():
                    yield f"{name}:{m}", v

    def _flat_indirect(self):
        for name in ("indirect", "indirect_partially_std", "indirect_std"):
            d = getattr(self, name)
            if "effect" in d:
                yield name, d
            else:
                for m, v in d.items():
                    yield f"{name}:{m}", v
        for name, v in (self.contrasts or {}).items():
            yield f"contrast:{name}", v

    def to_dict(self) -> dict[str, Any]:
        def block(d):
            if "effect" in d:
                return {k: _jf(d[k]) for k in _INDIRECT_KEYS}
            return {m: {k: _jf(v[k]) for k in _INDIRECT_KEYS} for m, v in d.items()}

        def path(v):
            if "coef" in v:
                return {kk: _jf(vv) for kk, vv in v.items()}
            return {m: {kk: _jf(vv) for kk, vv in pv.items()} for m, pv in v.items()}

        out = {
            "n": int(self.n),
            "n_dropped": int(self.n_dropped),
            "paths": {k: path(v) for k, v in self.paths.items()},
            "models": {k: {kk: (int(vv) if kk == "df1" else _jf(vv)) for kk, vv in v.items()}
                       for k, v in self.models.items()},
            "indirect": block(self.indirect),
            "indirect_partially_std": block(self.indirect_partially_std),
            "indirect_std": block(self.indirect_std),
            "n_boot": int(self.n_boot),
            "n_boot_failed": int(self.n_boot_failed),
            "seed": self.seed,
            "imputations": int(self.imputations),
            "pooling": self.pooling,
        }
        if self.contrasts is not None:
            out["contrasts"] = {name: {k: _jf(v[k]) for k in _INDIRECT_KEYS} for name, v in self.contrasts.items()}
        return out

    def to_frame(self) -> pd.DataFrame:
        rows = {}
        for name, d in self._flat_paths():
            rows[name] = [d["coef"], d["se"], d["t"], d["df"], d["p"], d["ci_low"], d["ci_high"], d["fmi"]]
        for name, d in self._flat_indirect():
            rows[name] = [d["effect"], d["boot_se"], np.nan, np.nan, np.nan, d["ci_low"], d["ci_high"], np.nan]
        frame = pd.DataFrame.from_dict(rows, orient="index",
                                       columns=["estimate", "se", "t", "df", "p", "ci_low", "ci_high", "fmi"])
        frame.index.name = "effect"
        return frame.astype(float)

    def summary(self) -> str:
        conf_pct = 100 * self.conf
        lines = ["*" * 74, "fidelitymed mediate: PROCESS Model 4 (Hayes 2022), multiple imputation", "*" * 74,
                 f"    Y  : {self.y}", f"    X  : {self.x}", f"    M  : {self.m}"]
        if self.covariates:
            lines += ["", "Covariates:", " " + " ".join(self.covariates)]
        lines += ["", f"Sample size: {self.n}   Imputations: {self.imputations}   "
                      f"Indirect-effect pooling: {self.pooling}", "",
                  "Paths (Rubin's rules, Barnard-Rubin df):",
                  f"{'':10}{'coeff':>10}{'se':>10}{'t':>10}{'df':>9}{'p':>9}{'LLCI':>10}{'ULCI':>10}{'fmi':>8}"]
        for name, d in self._flat_paths():
            lines.append(f"{name:<10}{d['coef']:10.4f}{d['se']:10.4f}{d['t']:10.4f}{d['df']:9.1f}{d['p']:9.4f}"
                         f"{d['ci_low']:10.4f}{d['ci_high']:10.4f}{d['fmi']:8.3f}")
        lines += ["", "Model tests (D1, Li, Raghunathan & Rubin 1991; R2 pooled by Fisher z, Harel 2009):",
                  f"{'':10}{'R-sq':>10}{'MSE':>10}{'F':>10}{'df1':>6}{'df2':>10}{'p':>9}"]
        for name, d in self.models.items():
            lines.append(f"{name:<10}{d['r2']:10.4f}{d['mse']:10.4f}{d['F']:10.4f}{int(d['df1']):6d}"
                         f"{d['df2']:10.1f}{d['p']:9.4f}")

        def fmt(v):
            return f"{v:10.4f}" if v is not None and np.isfinite(v) else f"{'.':>10}"

        lines += ["", f"Indirect effect of X on Y through M ({self.pooling}; {self.draws} draws):",
                  f"{'':24}{'Effect':>10}{'BootSE':>10}{'BootLLCI':>10}{'BootULCI':>10}"]
        if len(self.mediators) < 2:
            rows = (("ab", self.indirect), ("partially standardized", self.indirect_partially_std),
                    ("completely standardized", self.indirect_std))
        else:
            labels = {"indirect": "ab", "indirect_partially_std": "ab_ps", "indirect_std": "ab_std"}
            rows = [(f"{labels.get(n.split(':')[0], 'contrast')}:{n.split(':', 1)[1]}", d)
                    for n, d in self._flat_indirect()]
        for title, d in rows:
            lines.append(f"{title:<24}" + "".join(fmt(d[k]) for k in _INDIRECT_KEYS))
        lines += ["", f"Level of confidence for all confidence intervals: {conf_pct:.4f}"]
        for note in self.notes:
            lines += [f"NOTE: {note}"]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.summary()


def _path_parts(res) -> dict[str, tuple[Any, int]]:
    """Each path's (OLS fit, coefficient index) in a MediationResult (``a:<m>``, ``b:<m>`` for k >= 2)."""
    if getattr(res, "k", 1) == 1:
        return {"a": (res.mediator_model, res.mediator_model.names.index(res.x)),
                "b": (res.outcome_model, res.outcome_model.names.index(res.m)),
                "c_prime": (res.outcome_model, res.outcome_model.names.index(res.x)),
                "c": (res.total_model, res.total_model.names.index(res.x))}
    parts = {f"a:{m}": (f, f.names.index(res.x)) for m, f in zip(res.mediators, res.mediator_models)}
    parts.update({f"b:{m}": (res.outcome_model, res.outcome_model.names.index(m)) for m in res.mediators})
    parts.update(c_prime=(res.outcome_model, res.outcome_model.names.index(res.x)),
                 c=(res.total_model, res.total_model.names.index(res.x)))
    return parts


def pool_paths(results: Sequence[Any], conf: float) -> tuple[dict[str, dict[str, float]], RubinPooled]:
    """Rubin-pooled ``a, b, c_prime, c`` (``a:<m>``, ``b:<m>``, ... with parallel mediators) of MediationResults."""
    names = tuple(_path_parts(results[0]))
    est = np.empty((len(results), len(names)))
    var = np.empty((len(results), len(names)))
    dfcom = np.empty(len(names))
    for i, res in enumerate(results):
        parts = _path_parts(res)
        for j, name in enumerate(names):
            fit, idx = parts[name]
            est[i, j] = fit.coef[idx]
            var[i, j] = fit.vcov[idx, idx]
            dfcom[j] = fit.df_resid
    pooled = rubin(est, var, dfcom=dfcom, conf=conf)
    out = {}
    for j, name in enumerate(names):
        out[name] = {"coef": float(pooled.estimate[j]), "se": float(pooled.se[j]),
                     "t": float(pooled.statistic[j]), "p": float(pooled.p[j]),
                     "ci_low": float(pooled.ci_low[j]), "ci_high": float(pooled.ci_high[j]),
                     "df": float(pooled.df[j]), "ubar": float(pooled.ubar[j]), "b": float(pooled.b[j]),
                     "t_var": float(pooled.t_var[j]), "riv": float(pooled.riv[j]),
                     "lambda": float(pooled.lambda_[j]), "fmi": float(pooled.fmi[j])}
    return out, pooled


def pool_models(results: Sequence[Any]) -> dict[str, dict[str, float]]:
    """Pooled model summaries: R2 (Harel), MSE (mean), F test of all slopes (D1, Reiter df)."""
    out = {}
    first = results[0]
    if getattr(first, "k", 1) == 1:
        equations = [("mediator", [r.mediator_model for r in results])]
    else:
        equations = [(m, [r.mediator_models[j] for r in results]) for j, m in enumerate(first.mediators)]
    equations += [("outcome", [r.outcome_model for r in results]), ("total", [r.total_model for r in results])]
    for key, fits in equations:
        r2 = pool_r2([f.r2 for f in fits])
        wald = pool_wald(np.stack([f.coef[1:] for f in fits]), np.stack([f.vcov[1:, 1:] for f in fits]),
                         dfcom=float(fits[0].df_resid))
        out[key] = {"r": float(np.sqrt(r2)), "r2": r2, "mse": float(np.mean([f.mse for f in fits])),
                    "F": wald["F"], "df1": wald["df1"], "df2": wald["df2"], "p": wald["p"]}
    return out


def rubin_mc_draws(results: Sequence[Any], n_draws: int, seed: SeedLike,
                   key: Sequence[int | str] = ("rubin_mc",)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Monte Carlo draws of ``(a, b)`` from ``N(Qbar, T)`` (Rubin-pooled mean and covariance).

    ``T = Ubar + (1 + 1/m) B`` where ``Ubar = diag(mean se_a^2, mean se_b^2)`` (``a`` and ``b``
    come from separate OLS equations, so their within-imputation covariance is 0) and ``B`` is
    the 2 x 2 sample covariance of the per-imputation ``(a, b)``. Draws are
    ``Qbar + z L'`` with ``L L' = T`` and ``z`` = ``generator(seed, key).standard_normal((n_draws, 2))``.

    Returns ``(draws (n_draws, 2), qbar (2,), T (2, 2))``.
    """
    m = len(results)
    ab = np.empty((m, 2))
    u = np.empty((m, 2))
    for i, res in enumerate(results):
        parts = _path_parts(res)
        for j, name in enumerate(("a", "b")):
            fit, idx = parts[name]
            ab[i, j] = fit.coef[idx]
            u[i, j] = fit.vcov[idx, idx]
    qbar, between = _shifted_moments(ab)
    t_cov = np.diag(u.mean(axis=0)) + (1.0 + 1.0 / m) * between
    z = generator(seed, key).standard_normal((int(n_draws), 2))
    return qbar + z @ np.linalg.cholesky(t_cov).T, qbar, t_cov


def _interval(draws: np.ndarray, conf: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = 1.0 - conf
    q = np.quantile(draws, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0, method="linear")
    return q[0], q[1]


def _draw_columns(draws: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """``draws[columns].to_numpy()`` read from the frame's one float block: a pandas column
    selection per imputation and model cost 0.3 s of the demo study's pooling."""
    if list(draws.columns) == columns:
        return draws.to_numpy()
    positions = draws.columns.get_indexer(columns)
    if (positions < 0).any():
        raise KeyError(f"{[c for c, i in zip(columns, positions) if i < 0]} not among the bootstrap draws' "
                       f"columns {list(draws.columns)}")
    return draws.to_numpy()[:, positions]


def _stacked(results, columns, n_boot, n_boot_failed, notes) -> tuple[np.ndarray, int, int]:
    """The ``stacked`` draws of ``columns`` over all imputations, the reported n_boot and failures (adds the note)."""
    missing = [i for i, r in enumerate(results) if r.boot_draws is None]
    if missing:
        raise ConfigError("pool='stacked' needs the bootstrap draws of every imputation: fit them with "
                          f"mediate(..., save_boot=True, n_boot>0) (imputations {missing} have none)")
    first = results[0]
    draws = np.concatenate([_draw_columns(r.boot_draws, list(columns)) for r in results])
    notes.append(f"indirect effects: percentile limits over the {draws.shape[0]} stacked bootstrap draws "
                 f"({len(results)} imputations x {first.n_boot}); estimate = mean over imputations")
    n_failed = int(sum(r.n_boot_failed for r in results)) + int(n_boot_failed)
    return draws, int(first.n_boot if n_boot is None else n_boot), n_failed


def _sd_scale(results: Sequence[Any]) -> tuple[float, float]:
    """Pooled SDs of X and Y: root mean of the per-imputation variances."""
    sd_x = float(np.sqrt(np.mean([r.sd_x ** 2 for r in results])))
    sd_y = float(np.sqrt(np.mean([r.sd_y ** 2 for r in results])))
    return sd_x, sd_y


def pool_mediation(results: Sequence[Any], pool: str = "stacked", *, n_boot: int | None = None,
                   seed: SeedLike = None, conf: float | None = None, boot_mi_estimates: np.ndarray | None = None,
                   n_boot_failed: int = 0, notes: Sequence[str] = (),
                   report_seed: Any = None) -> PooledMediationResult:
    """Pool per-imputation :class:`~fidelitymed.stats.mediation.MediationResult` objects.

    Parameters
    ----------
    results : sequence of MediationResult
        One per completed data set, all the same model. ``stacked`` needs them fitted with
        ``save_boot=True``.
    pool : {"stacked", "boot_mi", "rubin_mc"}
        The indirect-effect scheme (module docstring). Paths are always Rubin-pooled.
    n_boot : int, optional
        ``rubin_mc``: number of Monte Carlo draws (default: the per-imputation ``n_boot``, or
        5,000). For the other schemes, reported only (default: per-imputation ``n_boot`` or the
        number of ``boot_mi`` resamples).
    seed : int or SeedSequence, optional
        ``rubin_mc``: draws come from ``generator(seed, ("rubin_mc",))``. Reported in ``seed``.
    conf : float, optional
        Default: the results' ``conf``.
    boot_mi_estimates : ndarray (R, 3), optional
        ``boot_mi``: per-resample averages of ``ab``, partially and completely standardized ``ab``.
    report_seed : optional
        The value reported as ``seed`` (default: ``seed`` when it is an int).
    """
    if pool not in SCHEMES:
        raise ConfigError(f"pool must be one of {', '.join(SCHEMES)}; got {pool!r}")
    results = list(results)
    if len(results) < 2:
        raise ConfigError(f"pooling needs at least 2 imputations; got {len(results)}")
    first = results[0]
    if getattr(first, "binary_y", False):
        raise ConfigError("pooling across imputations is for continuous outcomes; a dichotomous Y "
                          "(logistic equations) is not pooled yet")
    if getattr(first, "k", 1) > 1:
        return _pool_parallel(results, pool, n_boot=n_boot, seed=seed, conf=conf, n_boot_failed=n_boot_failed,
                              notes=notes, report_seed=report_seed)
    conf = float(first.conf if conf is None else conf)
    paths, _ = pool_paths(results, conf)
    models = pool_models(results)
    sd_x, sd_y = _sd_scale(results)
    notes = list(notes)
    if pool == "stacked":
        draws, n_boot_rep, n_failed = _stacked(results, ["ab", "ab_ps", "ab_std"], n_boot, n_boot_failed, notes)
        point = np.array([[r.indirect["effect"], r.indirect_partially_std["effect"], r.indirect_std["effect"]]
                          for r in results]).mean(axis=0)
    elif pool == "rubin_mc":
        n_mc = int(n_boot if n_boot is not None else (first.n_boot or 5000))
        ab_draws, qbar, _ = rubin_mc_draws(results, n_mc, seed)
        prod = ab_draws[:, 0] * ab_draws[:, 1]
        draws = np.column_stack([prod, prod / sd_y, prod * sd_x / sd_y])
        ab = qbar[0] * qbar[1]
        point = np.array([ab, ab / sd_y, ab * sd_x / sd_y])
        n_boot_rep = n_mc
        n_failed = int(n_boot_failed)
        notes.append(f"indirect effects: Monte Carlo CI from {n_mc} draws of (a, b) ~ N(pooled a, b; Rubin "
                     "covariance); estimate = pooled a x pooled b")
    else:
        if boot_mi_estimates is None:
            raise ConfigError("pool='boot_mi' needs the per-resample estimates (use mediate_imputed)")
        draws = np.asarray(boot_mi_estimates, dtype=float)
        draws = draws[np.isfinite(draws).all(axis=1)]
        point = np.array([[r.indirect["effect"], r.indirect_partially_std["effect"], r.indirect_std["effect"]]
                          for r in results]).mean(axis=0)
        n_boot_rep = int(draws.shape[0] if n_boot is None else n_boot)
        n_failed = int(n_boot_failed)
    lo, hi = _interval(draws, conf)
    se = draws.std(axis=0, ddof=1) if draws.shape[0] > 1 else np.full(3, np.nan)
    blocks = [{"effect": float(point[j]), "boot_se": float(se[j]), "ci_low": float(lo[j]),
               "ci_high": float(hi[j])} for j in range(3)]
    return PooledMediationResult(
        x=first.x, m=first.m, y=first.y, covariates=tuple(first.covariates), n=int(first.n),
        n_dropped=int(first.n_dropped), conf=conf, imputations=len(results), pooling=pool, paths=paths,
        models=models, indirect=blocks[0], indirect_partially_std=blocks[1], indirect_std=blocks[2],
        n_boot=n_boot_rep, n_boot_failed=n_failed,
        seed=report_seed if report_seed is not None else (seed if isinstance(seed, (int, np.integer)) else None),
        draws=int(draws.shape[0]),
        results=tuple(results), notes=tuple(notes))


def _nest(flat: dict[str, Any], mediators: Sequence[str], prefix: str) -> dict[str, Any]:
    return {"total": flat[prefix], **{m: flat[f"{prefix}:{m}"] for m in mediators}}


def _parallel_mc_draws(results: Sequence[Any], n_draws: int, seed: SeedLike,
                       key: Sequence[int | str] = ("rubin_mc",)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draws of ``(a_1..a_k, b_1..b_k)`` from ``N(Qbar, Ubar + (1 + 1/m) B)`` (parallel mediators).

    Within an imputation, the ``a`` of different mediators covary through the mediators'
    residual correlation (``corr(e_j, e_l) se_j se_l``: exact for classical SEs, whose mediator
    equations share one design), the ``b`` block is the outcome fit's covariance, and ``a`` and
    ``b`` are uncorrelated; ``B`` is the between-imputation covariance of the 2k estimates.
    """
    m = len(results)
    k = results[0].k
    q = np.empty((m, 2 * k))
    U = np.zeros((2 * k, 2 * k))
    for i, res in enumerate(results):
        q[i, :k] = [f.coef[1] for f in res.mediator_models]
        idx = [res.outcome_model.names.index(name) for name in res.mediators]
        q[i, k:] = np.asarray(res.outcome_model.coef)[idx]
        se_a = np.array([np.sqrt(f.vcov[1, 1]) for f in res.mediator_models])
        corr = np.corrcoef(np.column_stack([f.resid for f in res.mediator_models]), rowvar=False)
        U[:k, :k] += corr * np.outer(se_a, se_a) / m
        U[k:, k:] += np.asarray(res.outcome_model.vcov)[np.ix_(idx, idx)] / m
    qbar, between = _shifted_moments(q)
    t_cov = U + (1.0 + 1.0 / m) * between
    z = generator(seed, key).standard_normal((int(n_draws), 2 * k))
    w, V = np.linalg.eigh(t_cov)
    return qbar + z @ (V * np.sqrt(np.clip(w, 0.0, None))).T, qbar, t_cov


def _pool_parallel(results, pool, *, n_boot, seed, conf, n_boot_failed, notes, report_seed) -> PooledMediationResult:
    """:func:`pool_mediation` for parallel mediators (k >= 2): the same schemes, every indirect effect."""
    from .process.linear import boot_columns, indirect_columns

    first = results[0]
    mediators = tuple(first.mediators)
    k = len(mediators)
    conf = float(first.conf if conf is None else conf)
    flat, _ = pool_paths(results, conf)
    paths = {"a": {m: flat[f"a:{m}"] for m in mediators}, "b": {m: flat[f"b:{m}"] for m in mediators},
             "c_prime": flat["c_prime"], "c": flat["c"]}
    models = pool_models(results)
    sd_x, sd_y = _sd_scale(results)
    columns = [c for c in boot_columns(mediators, first.contrast) if c.startswith(("ab", "contrast:"))]
    notes = list(notes)

    def points(res):
        d = res.to_dict()
        out = {}
        for kind, block in (("ab", "indirect"), ("ab_ps", "indirect_partially_std"), ("ab_std", "indirect_std")):
            out[kind] = d[block]["total"]["effect"]
            out.update({f"{kind}:{m}": d[block][m]["effect"] for m in mediators})
        out.update({f"contrast:{name}": v["effect"] for name, v in (d.get("contrasts") or {}).items()})
        return np.array([out[c] for c in columns])

    if pool == "stacked":
        draws, n_boot_rep, n_failed = _stacked(results, columns, n_boot, n_boot_failed, notes)
        point = np.mean([points(r) for r in results], axis=0)
    elif pool == "rubin_mc":
        n_mc = int(n_boot if n_boot is not None else (first.n_boot or 5000))
        ab_draws, qbar, _ = _parallel_mc_draws(results, n_mc, seed)
        full = boot_columns(mediators, first.contrast)
        keep = [full.index(c) for c in columns]
        draws = indirect_columns(ab_draws[:, :k].T, ab_draws[:, k:].T, np.zeros(n_mc), sd_x, sd_y,
                                 first.contrast)[:, keep]
        point = indirect_columns(qbar[:k, None], qbar[k:, None], np.zeros(1), sd_x, sd_y, first.contrast)[0, keep]
        n_boot_rep = n_mc
        n_failed = int(n_boot_failed)
        notes.append(f"indirect effects: Monte Carlo CI from {n_mc} draws of (a_1..a_k, b_1..b_k) ~ N(pooled "
                     "paths; Rubin covariance); estimates = products of the pooled paths")
    else:
        raise ConfigError("pool='boot_mi' is available for one mediator; use 'stacked' or 'rubin_mc'")
    lo, hi = _interval(draws, conf)
    se = draws.std(axis=0, ddof=1) if draws.shape[0] > 1 else np.full(len(columns), np.nan)
    blocks = {c: {"effect": float(point[j]), "boot_se": float(se[j]), "ci_low": float(lo[j]),
                  "ci_high": float(hi[j])} for j, c in enumerate(columns)}
    contrasts = None
    if first.contrast:
        contrasts = {c.split(":", 1)[1]: blocks[c] for c in columns if c.startswith("contrast:")}
    return PooledMediationResult(
        x=first.x, m=first.m, y=first.y, covariates=tuple(first.covariates), n=int(first.n),
        n_dropped=int(first.n_dropped), conf=conf, imputations=len(results), pooling=pool, paths=paths,
        models=models, indirect=_nest(blocks, mediators, "ab"), indirect_partially_std=_nest(blocks, mediators, "ab_ps"),
        indirect_std=_nest(blocks, mediators, "ab_std"), n_boot=n_boot_rep, n_boot_failed=n_failed,
        seed=report_seed if report_seed is not None else (seed if isinstance(seed, (int, np.integer)) else None),
        draws=int(draws.shape[0]), results=tuple(results), notes=tuple(notes), mediators=mediators,
        contrasts=contrasts)
