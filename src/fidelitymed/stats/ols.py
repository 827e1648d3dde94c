"""Ordinary least squares with classical, heteroscedasticity-consistent and cluster-robust covariances.

One function, :func:`fit_ols`, returns an immutable :class:`OLSResult` holding what PROCESS prints
for each equation: coefficients with SE, t, p and CI, and the model summary R, R², MSE, F, df1,
df2, p.  With a robust covariance the model F is the Wald F of all slopes computed with that
covariance, as in PROCESS (Hayes 2022, Appendix A) and statsmodels.

Covariance estimators (``e`` residuals, ``h`` leverages, ``k`` parameters, ``n`` rows):

==========  =====================================================================================
nonrobust   ``MSE (X'X)^-1``
HC0         ``(X'X)^-1 X' diag(e^2) X (X'X)^-1`` (White 1980)
HC1         HC0 ``* n / (n - k)`` (MacKinnon & White 1985)
HC2         ``e^2 / (1 - h)``
HC3         ``e^2 / (1 - h)^2`` (Davidson & MacKinnon 1993)
HC4         ``e^2 / (1 - h)^delta``, ``delta = min(4, n h / k)`` (Cribari-Neto 2004; PROCESS, sandwich)
CR1         ``G/(G-1) (n-1)/(n-k) (X'X)^-1 [sum_g X_g'e_g e_g'X_g] (X'X)^-1`` (Stata, statsmodels,
            ``sandwich::vcovCL(type = "HC1")``); t and F use ``G - 1`` denominator df, as Stata does
==========  =====================================================================================

References
----------
Hayes, A. F. (2022). *Introduction to Mediation, Moderation, and Conditional Process Analysis*
(3rd ed.). Guilford.
Hayes, A. F., & Cai, L. (2007). Using heteroskedasticity-consistent standard error estimators in
OLS regression. *Behavior Research Methods, 39*, 709-722.
Bell, R. M., & McCaffrey, D. F. (2002). Bias reduction in standard errors for linear regression
with multi-stage samples. *Survey Methodology, 28*, 169-181.
Pustejovsky, J. E., & Tipton, E. (2018). Small-sample methods for cluster-robust variance
estimation and hypothesis testing in fixed effects models. *Journal of Business & Economic
Statistics, 36*, 672-683.
Cameron, A. C., & Miller, D. L. (2015). A practitioner's guide to cluster-robust inference.
*Journal of Human Resources, 50*, 317-372.
Odeh, R. E., & Evans, J. O. (1974). Algorithm AS 70: The percentage points of the normal
distribution. *Applied Statistics, 23*, 96-97.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special

from ..errors import ConfigError, FidelityMedError
from .distributions import f_sf, t_sf

__all__ = ["COV_TYPES", "OLSResult", "cluster_robust_cr2", "fit_ols", "process_t_quantile", "t_quantile"]

COV_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3", "HC4", "CR1")

# Odeh & Evans (1974) rational approximation of the normal quantile, as used by PROCESS.
_OE_P = (-0.322232431088, -1.0, -0.342242088547, -0.0204231210245, -0.453642210148e-4)
_OE_Q = (0.0993484626060, 0.588581570495, 0.531103462366, 0.103537752850, 0.0038560700634)


def process_t_quantile(conf: float, df: float) -> float:
    """PROCESS v4's approximation of the two-sided ``conf`` t quantile with ``df`` degrees of freedom.

    ``z`` comes from the Odeh & Evans (1974) approximation at ``p = (1 - conf)/2``; then
    ``t = sqrt(df (exp((df - 5/6) (z / (df - 2/3 + .11/df))^2) - 1))`` (Hayes 2022, PROCESS for R
    v4.3.1).  It differs from the exact quantile only at small ``df`` (df = 5: 2.5741 vs 2.5706).
    """
    p = (1.0 - conf) / 2.0
    y = np.sqrt(-2.0 * np.log(p))
    p0, p1, p2, p3, p4 = _OE_P
    q0, q1, q2, q3, q4 = _OE_Q
    z = y + ((((y * p4 + p3) * y + p2) * y + p1) * y + p0) / ((((y * q4 + q3) * y + q2) * y + q1) * y + q0)
    return float(np.sqrt(df * (np.exp((df - 5.0 / 6.0) * (z / (df - 2.0 / 3.0 + 0.11 / df)) ** 2) - 1.0)))


def t_quantile(conf: float, df: float, process_compat: bool = False) -> float:
    """Two-sided critical t value: exact or PROCESS's approximation.

    Exact is :func:`scipy.special.stdtrit`, the function behind :func:`scipy.stats.t.ppf` (same
    values), called directly: the distribution object's argument checks cost ~0.1 ms per call.
    """
    if process_compat:
        return process_t_quantile(conf, df)
    return float(special.stdtrit(df, 0.5 + conf / 2.0))


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)  # arrays and frames have no single truth value
class OLSResult:
    """An OLS fit: coefficients, covariance, and the model summary PROCESS prints.

    Arrays are read-only.  ``to_frame()`` gives the coefficient table, ``to_dict()`` a JSON-safe
    dict, ``summary()`` PROCESS-style text.
    """

    names: tuple[str, ...]
    coef: np.ndarray
    vcov: np.ndarray
    cov_type: str
    n: int
    conf: float
    df_resid: int  # denominator df of t and F: n - k, or G - 1 with clusters
    ssr: float
    tss: float
    tval: float
    n_clusters: int | None = None
    process_compat: bool = False
    resid: np.ndarray = field(repr=False, default=None)

    @property
    def k(self) -> int:
        """Number of coefficients (intercept included)."""
        return len(self.names)

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.vcov))

    @property
    def t(self) -> np.ndarray:
        return self.coef / self.se

    @property
    def p(self) -> np.ndarray:
        return 2.0 * t_sf(np.abs(self.t), self.df_resid)

    @property
    def ci_low(self) -> np.ndarray:
        return self.coef - self.tval * self.se

    @property
    def ci_high(self) -> np.ndarray:
        return self.coef + self.tval * self.se

    @property
    def r2(self) -> float:
        return 1.0 - self.ssr / self.tss

    @property
    def r(self) -> float:
        return float(np.sqrt(max(self.r2, 0.0)))

    @property
    def mse(self) -> float:
        """Residual variance SSE / (n - k) (always n - k, also with clusters)."""
        return self.ssr / (self.n - self.k)

    @property
    def df1(self) -> int:
        return self.k - 1

    @property
    def df2(self) -> int:
        return self.df_resid

    @property
    def F(self) -> float:
        """Wald F of all slopes with this fit's covariance (the classical F when nonrobust)."""
        if self.k < 2:
            return float("nan")
        if self.n_clusters is not None and self.df1 > self.n_clusters - 1:
            # the CR1 covariance has rank <= G - 1: no Wald F of more slopes (Stata reports none)
            return float("nan")
        b = self.coef[1:]
        V = self.vcov[1:, 1:]
        return float(b @ np.linalg.solve(V, b) / self.df1)

    @property
    def F_p(self) -> float:
        F = self.F
        return float(f_sf(F, self.df1, self.df2)) if np.isfinite(F) else float("nan")

    def coef_of(self, name: str) -> dict[str, float]:
        """``coef, se, t, p, ci_low, ci_high`` of one coefficient."""
        j = self.names.index(name)
        return {"coef": float(self.coef[j]), "se": float(self.se[j]), "t": float(self.t[j]),
                "p": float(self.p[j]), "ci_low": float(self.ci_low[j]), "ci_high": float(self.ci_high[j])}

    def model_summary(self) -> dict[str, float]:
        """``r, r2, mse, F, df1, df2, p`` as in PROCESS's "Model Summary"."""
        return {"r": self.r, "r2": float(self.r2), "mse": float(self.mse), "F": self.F,
                "df1": int(self.df1), "df2": int(self.df2), "p": self.F_p}

    def to_frame(self) -> pd.DataFrame:
        """Coefficient table with columns coeff, se, t, p, LLCI, ULCI (PROCESS's labels)."""
        return pd.DataFrame({"coeff": self.coef, "se": self.se, "t": self.t, "p": self.p,
                             "LLCI": self.ci_low, "ULCI": self.ci_high}, index=list(self.names))

    def to_dict(self) -> dict:
        return {"cov_type": self.cov_type, "n": int(self.n), "conf": float(self.conf),
                "coefficients": {name: self.coef_of(name) for name in self.names},
                "model": self.model_summary(),
                **({"n_clusters": int(self.n_clusters)} if self.n_clusters is not None else {})}

    @property
    def se_label(self) -> str:
        return "se" if self.cov_type == "nonrobust" else f"se({self.cov_type})"

    @property
    def F_label(self) -> str:
        return "F" if self.cov_type == "nonrobust" else f"F({self.cov_type})"

    def summary(self) -> str:
        """PROCESS-style "Model Summary" and "Model" tables."""
        ms = self.model_summary()
        lines = ["Model Summary",
                 f"{'R':>10}{'R-sq':>10}{'MSE':>10}{self.F_label:>10}{'df1':>10}{'df2':>10}{'p':>10}",
                 f"{ms['r']:10.4f}{ms['r2']:10.4f}{ms['mse']:10.4f}{ms['F']:10.4f}"
                 f"{ms['df1']:10.4f}{ms['df2']:10.4f}{ms['p']:10.4f}",
                 "", "Model"]
        width = max(12, max(len(n) for n in self.names) + 2)
        lines.append(" " * width + f"{'coeff':>10}{self.se_label:>10}{'t':>10}{'p':>10}{'LLCI':>10}{'ULCI':>10}")
        frame = self.to_frame()
        for name, row in frame.iterrows():
            label = "constant" if name == "const" else name
            lines.append(f"{label:<{width}}" + "".join(f"{v:10.4f}" for v in row.to_numpy()))
        return "\n".join(lines)


def _as_matrix(X) -> tuple[np.ndarray, tuple[str, ...]]:
    if isinstance(X, pd.DataFrame):
        return X.to_numpy(dtype=np.float64), tuple(str(c) for c in X.columns)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError("X must be 2-dimensional")
    return X, tuple(f"x{j}" for j in range(X.shape[1]))


def fit_ols(
    y,
    X,
    *,
    names: Sequence[str] | None = None,
    cov_type: str = "nonrobust",
    clusters=None,
    conf: float = 0.95,
    process_compat: bool = False,
) -> OLSResult:
    """Fit ``y = X b + e`` by least squares (QR) and estimate the covariance of ``b``.

    Parameters
    ----------
    y : array-like or pandas.Series, shape (n,)
    X : array-like or pandas.DataFrame, shape (n, k)
        Design matrix; its first column must be the constant (PROCESS's "constant") so that R² and
        the model F are the centred ones.
    names : sequence of str, optional
        Coefficient names (default: DataFrame columns, else ``x0, x1, ...``).
    cov_type : {"nonrobust", "HC0", "HC1", "HC2", "HC3", "HC4", "CR1"}
        Covariance estimator (see the module docstring).  ``"CR1"`` needs ``clusters``.
    clusters : array-like, shape (n,), optional
        Cluster labels; giving them implies ``cov_type="CR1"``.
    conf : float, default 0.95
        Confidence level of the coefficient intervals.
    process_compat : bool, default False
        Use PROCESS's approximate t quantile (:func:`process_t_quantile`) for the intervals.

    Returns
    -------
    OLSResult

    Raises
    ------
    FidelityMedError
        Fewer rows than coefficients or a rank-deficient design.
    """
    if cov_type not in COV_TYPES:
        raise ConfigError(f"cov_type must be one of {', '.join(COV_TYPES)}; got {cov_type!r}")
    if clusters is not None:
        cov_type = "CR1"
    elif cov_type == "CR1":
        raise ConfigError("cov_type='CR1' needs cluster labels (clusters=...)")
    if not 0.0 < conf < 1.0:
        raise ConfigError(f"conf must lie strictly between 0 and 1; got {conf!r}")
    Xm, default_names = _as_matrix(X)
    yv = np.asarray(y, dtype=np.float64).ravel()
    n, k = Xm.shape
    if yv.shape[0] != n:
        raise ValueError(f"y has {yv.shape[0]} rows, X has {n}")
    names = tuple(names) if names is not None else default_names
    if n <= k:
        raise FidelityMedError(f"{n} complete rows but {k} parameters to estimate; need more rows than parameters")

    Q, R = np.linalg.qr(Xm)
    diag = np.abs(np.diag(R))
    scale = np.linalg.norm(Xm, axis=0)
    bad = np.flatnonzero(diag <= 1e-10 * np.where(scale > 0, scale, 1.0))
    if bad.size:
        raise FidelityMedError(f"predictor {names[bad[0]]!r} is constant or perfectly collinear with the "
                               "predictors before it")
    coef = np.linalg.solve(R, Q.T @ yv)
    resid = yv - Xm @ coef
    Rinv = np.linalg.solve(R, np.eye(k))
    bread = Rinv @ Rinv.T  # (X'X)^-1
    ssr = float(resid @ resid)
    tss = float(((yv - yv.mean()) ** 2).sum())
    df_resid = n - k
    n_clusters = None
    if cov_type == "nonrobust":
        vcov = bread * (ssr / df_resid)
    elif cov_type.startswith("HC"):
        h = np.einsum("ij,ij->i", Q, Q)
        e2 = resid ** 2
        if cov_type == "HC0":
            omega = e2
        elif cov_type == "HC1":
            omega = e2 * n / (n - k)
        elif cov_type == "HC2":
            omega = e2 / (1.0 - h)
        elif cov_type == "HC3":
            omega = e2 / (1.0 - h) ** 2
        else:  # HC4
            omega = e2 / (1.0 - h) ** np.minimum(4.0, n * h / k)
        meat = (Xm * omega[:, None]).T @ Xm
        vcov = bread @ meat @ bread
    else:  # CR1
        codes, uniques = pd.factorize(pd.Series(np.asarray(clusters)), use_na_sentinel=True)
        if (codes < 0).any():
            raise FidelityMedError("cluster labels contain missing values")
        G = len(uniques)
        if G < 2:
            raise FidelityMedError("cluster-robust standard errors need at least 2 clusters")
        scores = np.zeros((G, k))
        np.add.at(scores, codes, Xm * resid[:, None])
        meat = scores.T @ scores
        vcov = bread @ meat @ bread * (G / (G - 1.0) * (n - 1.0) / (n - k))
        df_resid = G - 1
        n_clusters = G
    vcov = (vcov + vcov.T) / 2.0
    return OLSResult(names=names, coef=_readonly(coef), vcov=_readonly(vcov), cov_type=cov_type, n=n,
                     conf=float(conf), df_resid=int(df_resid), ssr=ssr, tss=tss,
                     tval=t_quantile(conf, df_resid, process_compat), n_clusters=n_clusters,
                     process_compat=process_compat, resid=_readonly(resid))


def cluster_robust_cr2(X: np.ndarray, resid: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bell-McCaffrey CR2 cluster-robust covariance of OLS coefficients with Satterthwaite df.

    ``V = M [sum_g X_g' A_g e_g e_g' A_g X_g] M`` with ``M = (X'X)^-1`` and the adjustment
    ``A_g = (I - H_gg)^(-1/2)`` (symmetric inverse square root; eigenvalues <= 1e-12 count as 0),
    the "working independence" CR2 of R's ``clubSandwich::vcovCR(lm_fit, cluster, type = "CR2")``.
    The df of coefficient ``k`` is the Satterthwaite approximation ``2 E^2 / Var`` of
    ``c' V c`` under a working model of independent homoscedastic errors (Bell & McCaffrey 2002;
    Pustejovsky & Tipton 2018, eq. 11), as ``clubSandwich::coef_test(..., test = "Satterthwaite")``:
    with ``u_g = A_g X_g M c`` and ``w_g = X_g' u_g`` the Gram matrix of the cluster terms is
    ``diag(u_g' u_g) - W M W'`` and ``df = trace^2 / sum of squares``.

    Parameters
    ----------
    X : ndarray, shape (n, p)
        Design matrix of the OLS fit (full column rank).
    resid : ndarray, shape (n,)
        OLS residuals.
    clusters : ndarray, shape (n,)
        Cluster labels (any hashable values; at least 2 clusters).

    Returns
    -------
    cov : ndarray, shape (p, p)
    df : ndarray, shape (p,)

    Notes
    -----
    All clusters are processed at once: cluster blocks are zero-padded to the largest cluster
    size (a zero row of ``X`` gives an identity block of ``I - H_gg`` that the adjustment leaves
    alone), so the eigendecompositions run as one batched call.
    """
    X = np.asarray(X, dtype=np.float64)
    e = np.asarray(resid, dtype=np.float64).ravel()
    n, p = X.shape
    codes, uniques = pd.factorize(pd.Series(np.asarray(clusters)), use_na_sentinel=True)
    if (codes < 0).any():
        raise FidelityMedError("cluster labels contain missing values")
    G = len(uniques)
    if G < 2:
        raise FidelityMedError("cluster-robust standard errors need at least 2 clusters")
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=G)
    n_max = int(sizes.max())
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    slot = np.arange(n) - np.repeat(starts, sizes)  # position of each sorted row inside its cluster
    Xp = np.zeros((G, n_max, p))
    ep = np.zeros((G, n_max))
    Xp[codes[order], slot] = X[order]
    ep[codes[order], slot] = e[order]

    M = np.linalg.inv(X.T @ X)
    M = (M + M.T) / 2.0
    B = np.eye(n_max) - Xp @ M @ Xp.transpose(0, 2, 1)  # I - H_gg, identity on the padding
    lam, vec = np.linalg.eigh(B)
    inv_sqrt = np.where(lam > 1e-12, 1.0 / np.sqrt(np.where(lam > 1e-12, lam, 1.0)), 0.0)
    A = (vec * inv_sqrt[:, None, :]) @ vec.transpose(0, 2, 1)

    AX = A @ Xp  # (G, n_max, p): A_g X_g
    scores = np.einsum("gip,gi->gp", AX, ep)  # X_g' A_g e_g
    cov = M @ (scores.T @ scores) @ M
    cov = (cov + cov.T) / 2.0

    U = AX @ M  # (G, n_max, p): column k is u_g for coefficient k
    own = np.einsum("gik,gik->gk", U, U)  # u_g' u_g
    W = np.einsum("gip,gik->gpk", Xp, U)  # w_g = X_g' u_g, per coefficient k
    cross = np.einsum("gpk,pq,hqk->kgh", W, M, W)  # w_g' M w_h
    gram = -cross
    idx = np.arange(G)
    gram[:, idx, idx] += own.T
    trace = np.einsum("kgg->k", gram)
    df = trace ** 2 / np.einsum("kgh,kgh->k", gram, gram)
    return cov, df
