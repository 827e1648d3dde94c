"""Logistic outcome equations of PROCESS Model 4 (dichotomous Y) and their batched bootstrap.

A 0/1 outcome is modelled as PROCESS does (Hayes 2022, sec. 14.6 and Appendix A): the outcome
and total equations by maximum-likelihood logistic regression (Newton-Raphson), coefficients with
SE, z, p and ``b +- z se`` intervals, and the model summary ``-2LL, ModelLL, df, p, McFadden,
CoxSnell, Nagelkrk``.  The indirect effect ``a b`` is a product of an OLS slope and a logit slope.

The bootstrap fits every resample's logistic equations at once: weighted Newton-Raphson with the
resample counts as case weights, all resamples of a chunk as one batch (``(B, n)`` linear
predictors, gradients ``(W (y - p)) D``, Hessians ``(W p (1 - p)) [d_i d_i']`` as one matrix product
over row-wise outer products, batched ``p x p`` solves), iterating only the resamples not yet
converged.  A resample that does not converge within :data:`MAX_ITER` steps (complete or
quasi-complete separation: the likelihood has no maximum) or whose Hessian is singular is
rejected, redrawn and counted, as PROCESS redraws singular resamples.

References
----------
Hayes, A. F. (2022). *Introduction to Mediation, Moderation, and Conditional Process Analysis* (3rd ed.).
McFadden, D. (1974); Cox, D. R., & Snell, E. J. (1989). *Analysis of Binary Data*; Nagelkerke, N. J. D. (1991).
A note on a general definition of the coefficient of determination. *Biometrika, 78*, 691-692.
Albert, A., & Anderson, J. A. (1984). On the existence of maximum likelihood estimates in logistic
regression models. *Biometrika, 71*, 1-10 (separation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special

from ...errors import FidelityMedError
from .. import bootstrap as bs
from ..distributions import chi2_sf, norm_ppf, norm_sf

__all__ = ["LogitResult", "fit_logit", "newton_batch", "MAX_ITER", "STEP_TOL"]

#: Newton-Raphson steps before a fit is declared non-convergent (separated).
MAX_ITER = 50
#: Convergence: largest absolute change of a coefficient on standardized predictors.
STEP_TOL = 1e-12
_TRI_TOL = bs.TOLERANCE


def _readonly(a) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class LogitResult:
    """A maximum-likelihood logistic regression: what PROCESS prints for a dichotomous Y."""

    names: tuple[str, ...]
    coef: np.ndarray
    vcov: np.ndarray
    n: int
    conf: float
    loglik: float
    loglik_null: float
    iterations: int
    cov_type: str = "ML"

    @property
    def k(self) -> int:
        return len(self.names)

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.vcov))

    @property
    def z(self) -> np.ndarray:
        return self.coef / self.se

    @property
    def p(self) -> np.ndarray:
        return 2.0 * norm_sf(np.abs(self.z))

    @property
    def zval(self) -> float:
        return float(norm_ppf(0.5 + self.conf / 2.0))

    @property
    def ci_low(self) -> np.ndarray:
        return self.coef - self.zval * self.se

    @property
    def ci_high(self) -> np.ndarray:
        return self.coef + self.zval * self.se

    @property
    def se_label(self) -> str:
        return "se"

    def coef_of(self, name: str) -> dict[str, float]:
        """``coef, se, z, p, ci_low, ci_high`` of one coefficient."""
        j = self.names.index(name)
        return {"coef": float(self.coef[j]), "se": float(self.se[j]), "z": float(self.z[j]),
                "p": float(self.p[j]), "ci_low": float(self.ci_low[j]), "ci_high": float(self.ci_high[j])}

    def model_summary(self) -> dict[str, float]:
        """``neg2ll`` (-2LL), ``model_ll`` (LR chi-square), ``df``, ``p``, McFadden, Cox-Snell, Nagelkerke R²."""
        ll, ll0, n = self.loglik, self.loglik_null, self.n
        lr = 2.0 * (ll - ll0)
        df = self.k - 1
        cox_snell = 1.0 - np.exp(-lr / n)
        return {"neg2ll": -2.0 * ll, "model_ll": lr, "df": int(df), "p": float(chi2_sf(lr, df)),
                "mcfadden": 1.0 - ll / ll0, "cox_snell": float(cox_snell),
                "nagelkerke": float(cox_snell / (1.0 - np.exp(2.0 * ll0 / n)))}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"coeff": self.coef, "se": self.se, "Z": self.z, "p": self.p,
                             "LLCI": self.ci_low, "ULCI": self.ci_high}, index=list(self.names))

    def to_dict(self) -> dict:
        return {"cov_type": self.cov_type, "n": int(self.n), "conf": float(self.conf),
                "coefficients": {name: self.coef_of(name) for name in self.names},
                "model": self.model_summary()}

    def summary(self) -> str:
        """PROCESS's "Model Summary" (-2LL ... Nagelkrk) and "Model" (coeff se Z p LLCI ULCI) tables."""
        ms = self.model_summary()
        lines = ["Model Summary",
                 "".join(f"{h:>10}" for h in ("-2LL", "ModelLL", "df", "p", "McFadden", "CoxSnell", "Nagelkrk")),
                 "".join(f"{ms[k]:10.4f}" for k in ("neg2ll", "model_ll", "df", "p", "mcfadden", "cox_snell",
                                                     "nagelkerke")),
                 "", "Model"]
        width = max(12, max(len(n) for n in self.names) + 2)
        lines.append(" " * width + "".join(f"{h:>10}" for h in ("coeff", "se", "Z", "p", "LLCI", "ULCI")))
        for name, row in self.to_frame().iterrows():
            lines.append(f"{name:<{width}}" + "".join(f"{v:10.4f}" for v in row.to_numpy()))
        return "\n".join(lines)


def _outer_T(D: np.ndarray) -> np.ndarray:
    rows, cols = np.triu_indices(D.shape[1])
    return np.ascontiguousarray((D[:, rows] * D[:, cols]).T)


def newton_batch(D: np.ndarray, y: np.ndarray, W: np.ndarray, start: np.ndarray, *,
                 max_iter: int = MAX_ITER, tol: float = STEP_TOL):
    """Weighted logistic ML fits of ``y`` on ``D`` for every row of weights ``W``, as one batch.

    Parameters
    ----------
    D : numpy.ndarray, shape (n, p)
        Design (constant first; standardize the other columns for conditioning).
    y : numpy.ndarray, shape (n,)
        0/1 outcome.
    W : numpy.ndarray, shape (B, n)
        Case weights per fit (bootstrap counts).
    start : numpy.ndarray, shape (p,)
        Starting coefficients (e.g. the full-sample fit), the same for every fit.

    Returns
    -------
    beta : numpy.ndarray, shape (B, p)
    ok : numpy.ndarray of bool, shape (B,)
        Converged (step below ``tol``) with a non-singular Hessian.
    iterations : numpy.ndarray of int, shape (B,)
    """
    B, n = W.shape
    p = D.shape[1]
    outer_T = _outer_T(D)
    tri = bs.triangle_index(p)
    beta = np.tile(np.asarray(start, dtype=np.float64), (B, 1))
    ok = np.zeros(B, dtype=bool)
    iterations = np.zeros(B, dtype=np.intp)
    active = np.arange(B)
    for it in range(max_iter):
        if active.size == 0:
            break
        Wa = W[active]
        eta = beta[active] @ D.T
        prob = special.expit(eta)
        grad = (Wa * (y - prob)) @ D  # (b, p)
        hess_packed = outer_T @ (Wa * (prob * (1.0 - prob))).T  # (T, b)
        L, good = bs._cholesky_batch(hess_packed, _TRI_TOL, index=tri)
        step = _chol_solve(L, grad.T)  # (p, b)
        step[:, ~good] = 0.0
        beta[active] += step.T
        iterations[active] = it + 1
        done = good & (np.abs(step).max(axis=0) < tol)
        failed = ~good | ~np.isfinite(step).all(axis=0)
        ok[active[done & ~failed]] = True
        active = active[~(done | failed)]
    return beta, ok, iterations


def _chol_solve(L: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``L L' x = rhs`` for batch-last lower factors ``L`` (q, q, N) and ``rhs`` (q, N)."""
    q = rhs.shape[0]
    z = np.empty_like(rhs)
    for j in range(q):
        acc = rhs[j].copy()
        for i in range(j):
            acc -= L[j, i] * z[i]
        z[j] = acc / L[j, j]
    x = np.empty_like(rhs)
    for j in range(q - 1, -1, -1):
        acc = z[j].copy()
        for i in range(j + 1, q):
            acc -= L[i, j] * x[i]
        x[j] = acc / L[j, j]
    return x


def _standardize(X: np.ndarray):
    centre = X[:, 1:].mean(axis=0)
    spread = X[:, 1:].std(axis=0, ddof=1)
    D = np.column_stack([np.ones(X.shape[0]), (X[:, 1:] - centre) / spread])
    return D, centre, spread


def _to_raw(beta_s: np.ndarray, centre: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Coefficients on ``[1, standardized columns]`` (..., p) -> raw units."""
    slopes = beta_s[..., 1:] / spread
    const = beta_s[..., :1] - (slopes * centre).sum(axis=-1, keepdims=True)
    return np.concatenate([const, slopes], axis=-1)


def fit_logit(y: np.ndarray, X: np.ndarray, *, names: Sequence[str], conf: float = 0.95) -> LogitResult:
    """Maximum-likelihood logistic regression of 0/1 ``y`` on ``X`` (constant first) by Newton-Raphson.

    The covariance is the inverse observed information ``(X' diag(p(1-p)) X)^-1`` (as R ``glm``
    and PROCESS).  Raises :class:`FidelityMedError` under separation (no finite maximum).
    """
    y = np.asarray(y, dtype=np.float64)
    D, centre, spread = _standardize(np.asarray(X, dtype=np.float64))
    p_bar = y.mean()
    start = np.zeros(D.shape[1])
    start[0] = np.log(p_bar / (1.0 - p_bar))
    beta_s, ok, its = newton_batch(D, y, np.ones((1, y.size)), start)
    if not ok[0]:
        raise FidelityMedError("the logistic regression of the dichotomous outcome does not converge: a predictor "
                               "separates the two outcome groups (completely or quasi-completely), so the "
                               "maximum-likelihood estimates do not exist")
    coef = _to_raw(beta_s[0], centre, spread)
    X = np.asarray(X, dtype=np.float64)
    prob = special.expit(X @ coef)
    info = (X * (prob * (1.0 - prob))[:, None]).T @ X
    vcov = np.linalg.inv(info)
    vcov = (vcov + vcov.T) / 2.0
    with np.errstate(divide="ignore"):
        ll = float(np.sum(y * np.log(prob) + (1.0 - y) * np.log1p(-prob)))
    ll0 = float(y.size * (p_bar * np.log(p_bar) + (1.0 - p_bar) * np.log(1.0 - p_bar)))
    return LogitResult(tuple(names), _readonly(coef), _readonly(vcov), int(y.size), float(conf), ll, ll0,
                       int(its[0]))


@dataclass(frozen=True)
class LogitBootstrap:
    """What a resample's logistic equations need: standardized designs and full-sample starts."""

    D_out: np.ndarray
    D_tot: np.ndarray
    y: np.ndarray
    start_out: np.ndarray
    start_tot: np.ndarray
    centre_out: np.ndarray = field(repr=False, default=None)
    spread_out: np.ndarray = field(repr=False, default=None)
    centre_tot: np.ndarray = field(repr=False, default=None)
    spread_tot: np.ndarray = field(repr=False, default=None)

    @classmethod
    def of(cls, X_out: np.ndarray, X_tot: np.ndarray, y: np.ndarray, out: LogitResult, tot: LogitResult):
        D_out, c_out, s_out = _standardize(X_out)
        D_tot, c_tot, s_tot = _standardize(X_tot)

        def to_std(coef, centre, spread):
            slopes = coef[1:] * spread
            return np.concatenate([[coef[0] + (coef[1:] * centre).sum()], slopes])

        return cls(D_out, D_tot, y, to_std(out.coef, c_out, s_out), to_std(tot.coef, c_tot, s_tot),
                   c_out, s_out, c_tot, s_tot)

    def fit(self, W: np.ndarray, total: bool):
        """Raw-unit coefficients (B, p) of the outcome (and total) equation per row of weights, and ``ok``."""
        beta, ok, _ = newton_batch(self.D_out, self.y, W, self.start_out)
        out = _to_raw(beta, self.centre_out, self.spread_out)
        tot = None
        if total:
            beta_t, ok_t, _ = newton_batch(self.D_tot, self.y, W, self.start_tot)
            tot = _to_raw(beta_t, self.centre_tot, self.spread_tot)
            ok &= ok_t
        return out, tot, ok
