"""The OLS equations of PROCESS Model 4 and their bootstrap from one moment matrix.

Equations (Hayes 2022, ch. 5 for parallel mediators; PROCESS Model 4):

* mediator ``j``: ``M_j = i_j + a_j X + covariates(mediators)``
* outcome:       ``Y = i_Y + c' X + sum_j b_j M_j + covariates(outcome)``
* total:         ``Y = i_T + c X + covariates(outcome)``

Every resample's coefficients come from the packed moment matrix of the standardized columns
``Z = [1, C, X, M_1..M_k, Y]`` (:func:`fidelitymed.stats.bootstrap.run_bootstrap`).  For
columns ordered ``[predictors..., responses...]`` the Cholesky factor ``L`` of the moment matrix
gives the regression of any later column ``r`` on the first ``p`` columns by back-substitution of
``L[:p, :p]' beta = L[r, :p]`` (Golub & Van Loan 2013, sec. 5.3); only the trailing coefficients
that are needed are computed.  With every covariate in every equation one factor of
``[1, C, X, M..., Y]`` gives all equations (the mediator and total equations regress later columns
on a prefix); with covariates by equation, the mediator equations get a second factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import bootstrap as bs
from ..ols import OLSResult, fit_ols
from .design import Design

__all__ = ["MomentLayout", "fit_equations", "standardized_frame", "make_statistic", "boot_columns",
           "coefficient_columns", "mediator_cross_covariance"]


def fit_equations(design: Design, x: str, mediators: tuple[str, ...], *, cov_type: str, conf: float,
                  process_compat: bool, outcome: bool = True):
    """OLS fits: a tuple of mediator equations, and (if ``outcome``) the outcome and total equations."""
    n = design.n
    ones = np.ones((n, 1))
    names = np.array(design.covariate_names, dtype=object)
    C_med, names_med = design.covariates_of("mediators"), tuple(names[design.in_mediators])
    C_out, names_out = design.covariates_of("outcome"), tuple(names[design.in_outcome])
    kw = dict(cov_type=cov_type, clusters=design.clusters, conf=conf, process_compat=process_compat)
    X_med = np.column_stack([ones, design.x, C_med])
    meds = tuple(fit_ols(design.M[:, j], X_med, names=("constant", x, *names_med), **kw)
                 for j in range(len(mediators)))
    if not outcome:
        return meds, None, None
    out = fit_ols(design.y, np.column_stack([ones, design.x, design.M, C_out]),
                  names=("constant", x, *mediators, *names_out), **kw)
    tot = fit_ols(design.y, np.column_stack([ones, design.x, C_out]), names=("constant", x, *names_out), **kw)
    return meds, out, tot


def mediator_cross_covariance(design: Design, fits: tuple[OLSResult, ...], x_index: int = 1) -> np.ndarray:
    """Joint (k x k) sampling covariance of the ``a`` paths of the parallel mediator equations.

    The equations share one design, so ``Cov(a_j, a_l)`` is the (X, X) element of
    ``(D'D)^-1 D' diag(e_j e_l w) D (D'D)^-1`` (the seemingly-unrelated-regressions identity; ``w``
    the HC weights; classical: ``s_jl (D'D)^-1`` with ``s_jl = e_j'e_l / (n - p)``; CR1: the
    cluster sums of the scores).  The diagonal equals each fit's own variance of ``a``.
    """
    k = len(fits)
    n = design.n
    D = np.column_stack([np.ones(n), design.x, design.covariates_of("mediators")])
    p = D.shape[1]
    E = np.column_stack([f.resid for f in fits])
    Q, R = np.linalg.qr(D)
    Rinv = np.linalg.solve(R, np.eye(p))
    bread = Rinv @ Rinv.T
    cov_type = fits[0].cov_type
    if cov_type == "nonrobust":
        S = E.T @ E / (n - p)
        return S * bread[x_index, x_index]
    g = bread[x_index] @ D.T  # row of (D'D)^-1 D' for the X coefficient: a_j - a = g @ e_j
    if cov_type.startswith("HC"):
        h = np.einsum("ij,ij->i", Q, Q)
        w = {"HC0": np.ones(n), "HC1": np.full(n, n / (n - p)), "HC2": 1.0 / (1.0 - h),
             "HC3": 1.0 / (1.0 - h) ** 2, "HC4": 1.0 / (1.0 - h) ** np.minimum(4.0, n * h / p)}[cov_type]
        G = E * g[:, None]
        return (G * w[:, None]).T @ G
    codes, uniques = pd.factorize(pd.Series(np.asarray(design.clusters)))
    scores = np.zeros((len(uniques), k))
    np.add.at(scores, codes, E * g[:, None])
    G_ = len(uniques)
    V = scores.T @ scores
    if cov_type == "CR1":
        V *= G_ / (G_ - 1.0) * (n - 1.0) / (n - p)
        return V
    # CR2 and others: keep each fit's own variance, correlations from the unadjusted cluster scores
    sd = np.sqrt(np.diag(V))
    own = np.array([f.vcov[x_index, x_index] for f in fits])
    return V / np.outer(sd, sd) * np.sqrt(np.outer(own, own))


# ---------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class MomentLayout:
    """Positions in ``Z = [1, C, X, M_1..M_k, Y]`` and which covariate columns enter which equation."""

    n_cov: int
    k: int
    med_cov: tuple[int, ...]
    out_cov: tuple[int, ...]

    @property
    def ix(self) -> int:
        return self.n_cov + 1

    @property
    def im(self) -> tuple[int, ...]:
        return tuple(range(self.ix + 1, self.ix + 1 + self.k))

    @property
    def iy(self) -> int:
        return self.ix + self.k + 1

    @property
    def out_order(self) -> tuple[int, ...]:
        return (0, *self.out_cov, self.ix, *self.im, self.iy)

    @property
    def med_order(self) -> tuple[int, ...]:
        return (0, *self.med_cov, self.ix, *self.im)

    @property
    def shared(self) -> bool:
        """The mediator equations read the outcome factor (same covariates in both)."""
        return self.med_cov == self.out_cov

    @classmethod
    def of(cls, design: Design) -> "MomentLayout":
        cols = np.arange(design.C.shape[1]) + 1
        return cls(int(design.C.shape[1]), int(design.M.shape[1]), tuple(int(c) for c in cols[design.in_mediators]),
                   tuple(int(c) for c in cols[design.in_outcome]))


def standardized_frame(design: Design) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``Z`` (ones, then columns centred and scaled by full-sample mean and SD), centres and SDs.

    Standardizing keeps every resample's normal equations well conditioned (raw moments of, e.g.,
    age ~ 40 would square the condition number).
    """
    raw = np.column_stack([design.C, design.x, design.M, design.y])
    centre = raw.mean(axis=0)
    spread = raw.std(axis=0, ddof=1)
    return np.column_stack([np.ones(design.n), (raw - centre) / spread]), centre, spread


def _trailing_coefs(L: np.ndarray, r: int, p: int, first: int) -> list[np.ndarray]:
    """Coefficients ``first..p-1`` of column ``r`` regressed on columns ``0..p-1`` (positions of ``L``).

    Back-substitution from the last coefficient; the earlier ones are not needed for later ones.
    """
    beta: dict[int, np.ndarray] = {}
    for j in range(p - 1, first - 1, -1):
        acc = L[r, j]
        for i in range(j + 1, p):
            acc = acc - L[i, j] * beta[i]
        beta[j] = acc / L[j, j]
    return [beta[j] for j in range(first, p)]


def coefficient_columns(names_med, names_out, mediators, x) -> list[tuple[str, str]]:
    """(equation, coefficient) of every regression coefficient, in PROCESS order, for ``boot_coefficients``."""
    cols = [(m, name) for m in mediators for name in ("constant", x, *names_med)]
    cols += [("outcome", name) for name in ("constant", x, *mediators, *names_out)]
    cols += [("total", name) for name in ("constant", x, *names_out)]
    return cols


def contrast_pairs(mediators) -> list[tuple[int, int]]:
    """PROCESS's pairwise contrasts of specific indirect effects: (1,2), (1,3), ..., (k-1,k)."""
    k = len(mediators)
    return [(i, j) for i in range(k) for j in range(i + 1, k)]


def boot_columns(mediators: tuple[str, ...], contrast: str | None, with_std: bool = True) -> tuple[str, ...]:
    """Columns of the bootstrap (or Monte Carlo) draws.

    One mediator: ``a, b, c_prime, ab, ab_ps, ab_std`` (as ever).  ``k >= 2``: ``c_prime``,
    ``a:<m>``, ``b:<m>``, the total indirect effect ``ab, ab_ps, ab_std``, the specific ones
    ``ab:<m>``, ``ab_ps:<m>``, ``ab_std:<m>``, then ``contrast:<m_i> - <m_j>``.
    """
    if len(mediators) == 1:
        return ("a", "b", "c_prime", "ab", "ab_ps", "ab_std") if with_std else ("a", "b", "c_prime", "ab")
    cols = ["c_prime", *(f"a:{m}" for m in mediators), *(f"b:{m}" for m in mediators)]
    kinds = ("ab", "ab_ps", "ab_std") if with_std else ("ab",)
    cols += list(kinds)
    for kind in kinds:
        cols += [f"{kind}:{m}" for m in mediators]
    if contrast:
        cols += [f"contrast:{mediators[i]} - {mediators[j]}" for i, j in contrast_pairs(mediators)]
    return tuple(cols)


def indirect_columns(a: np.ndarray, b: np.ndarray, c_prime: np.ndarray, sd_x, sd_y, contrast: str | None,
                     with_std: bool = True) -> np.ndarray:
    """Draw columns (see :func:`boot_columns`) from paths ``a``, ``b`` (k, N) and ``c'`` (N,)."""
    k = a.shape[0]
    ab = a * b
    if k == 1:
        cols = [a[0], b[0], c_prime, ab[0]]
        if with_std:
            cols += [ab[0] / sd_y, ab[0] * sd_x / sd_y]
        return np.column_stack(cols)
    total = ab.sum(axis=0)
    cols = [c_prime, *a, *b, total]
    if with_std:
        cols += [total / sd_y, total * sd_x / sd_y]
    cols += list(ab)
    if with_std:
        cols += list(ab / sd_y) + list(ab * sd_x / sd_y)
    if contrast:
        f = np.abs if contrast == "absolute" else (lambda v: v)
        cols += [f(ab[i]) - f(ab[j]) for i, j in contrast_pairs(range(k))]
    return np.column_stack(cols)


def mediator_paths(packed: np.ndarray, index: np.ndarray, layout: MomentLayout, scale: np.ndarray,
                   tol: float, L_out: np.ndarray | None = None, coefficients: bool = False):
    """``a`` (k, N) in raw units (and the full standardized coefficients per mediator), and ``ok``.

    ``scale`` holds the full-sample SDs of the columns of ``Z`` after the ones.
    """
    if layout.shared and L_out is not None:
        L, ok = L_out, np.ones(packed.shape[-1], dtype=bool)
    else:
        order = np.array(layout.med_order)
        L, ok = bs._cholesky_batch(packed, tol, n_check=len(order) - layout.k, index=index[np.ix_(order, order)])
    px = len(layout.med_cov) + 1  # position of X in the factor
    sx = scale[layout.ix - 1]
    a = np.stack([_trailing_coefs(L, px + 1 + j, px + 1, px)[0] * (scale[layout.im[j] - 1] / sx)
                  for j in range(layout.k)])
    full = None
    if coefficients:
        full = [_trailing_coefs(L, px + 1 + j, px + 1, 0) for j in range(layout.k)]
    return a, ok, L, full


def make_statistic(scale: np.ndarray, layout: MomentLayout, contrast: str | None = None,
                   coefficients: tuple[np.ndarray, np.ndarray] | None = None, tol: float = bs.TOLERANCE):
    """The Model 4 statistic on batch-last packed moments of ``Z`` (see :func:`boot_columns`).

    ``scale`` = full-sample SDs of the columns of ``Z`` after the ones.  With ``coefficients``
    (``(centre, spread)`` of those columns), every regression coefficient of every equation is
    appended in raw units (:func:`coefficient_columns` order).
    """
    sy = scale[layout.iy - 1]
    sx = scale[layout.ix - 1]

    def statistic(packed: np.ndarray, index: np.ndarray):
        order = np.array(layout.out_order)
        q = len(order)
        # Y is not a regressor: only the columns up to the last mediator must be non-singular.
        L, ok = bs._cholesky_batch(packed, tol, n_check=q - 1, index=index[np.ix_(order, order)])
        a, ok_m, L_med, med_full = mediator_paths(packed, index, layout, scale, tol, L_out=L,
                                                  coefficients=coefficients is not None)
        ok &= ok_m
        px = len(layout.out_cov) + 1
        trail = _trailing_coefs(L, q - 1, q - 1, px)  # c', b_1..b_k (standardized)
        c_prime = trail[0] * (sy / sx)
        b = np.stack([trail[1 + j] * (sy / scale[layout.im[j] - 1]) for j in range(layout.k)])
        n_b = packed[index[0, 0]]
        var_x = (packed[index[layout.ix, layout.ix]] - packed[index[0, layout.ix]] ** 2 / n_b) / (n_b - 1.0)
        syy = packed[index[layout.iy, layout.iy]]
        var_y = (syy - packed[index[0, layout.iy]] ** 2 / n_b) / (n_b - 1.0)
        ok &= var_y > tol * syy / (n_b - 1.0)  # PROCESS rejects a resample with constant Y
        with np.errstate(invalid="ignore", divide="ignore"):
            sd_x = sx * np.sqrt(np.maximum(var_x, 0.0))
            sd_y = sy * np.sqrt(np.where(ok, var_y, 1.0))
        values = indirect_columns(a, b, c_prime, sd_x, sd_y, contrast)
        if coefficients is not None:
            centre, spread = coefficients
            extra = []
            for j, beta in enumerate(med_full):
                extra += _raw_coefficients(beta, (0, *layout.med_cov, layout.ix), layout.im[j], centre, spread,
                                           len(layout.med_cov))
            beta_out = _trailing_coefs(L, q - 1, q - 1, 0)
            extra += _raw_coefficients(beta_out, order[:-1], layout.iy, centre, spread, len(layout.out_cov))
            beta_tot = _trailing_coefs(L, q - 1, px + 1, 0)
            extra += _raw_coefficients(beta_tot, (0, *layout.out_cov, layout.ix), layout.iy, centre, spread,
                                       len(layout.out_cov))
            values = np.column_stack([values, *extra])
        return values, ok

    return statistic


def _raw_coefficients(beta_s, predictors, response, centre, spread, n_cov: int) -> list[np.ndarray]:
    """Coefficients on standardized columns ``(1, covariates..., X, M...)`` -> raw units in PROCESS
    order (constant, X, M..., covariates); ``n_cov`` = number of covariates among the predictors."""
    s_r = spread[response - 1]
    slopes = [beta_s[i] * (s_r / spread[col - 1]) for i, col in enumerate(predictors) if i > 0]
    const = centre[response - 1] + s_r * beta_s[0]
    for slope, col in zip(slopes, predictors[1:]):
        const = const - slope * centre[col - 1]
    return [const, *slopes[n_cov:], *slopes[:n_cov]]
