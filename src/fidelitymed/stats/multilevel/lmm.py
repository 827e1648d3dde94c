"""Linear mixed models with nested random intercepts, fitted by profiled (RE)ML as lme4 does.

The model for ``L`` nested grouping levels (outermost first, e.g. team, then case manager within
team) is ``y = X b + sum_l Z_l u_l + e`` with ``u_l ~ N(0, s_l^2 I)`` and ``e ~ N(0, s^2 I)`` —
lme4's ``y ~ X + (1 | team/case_manager)``.  As in lme4 (Bates, Maechler, Bolker & Walker 2015,
sec. 3) the parameters optimised are the relative standard deviations ``theta_l = s_l / s >= 0``;
``b`` and ``s^2`` are profiled out, so the search runs over 1-3 dimensions.

For nested random intercepts the relative marginal covariance ``V = I + sum_l theta_l^2 Z_l Z_l'``
is block diagonal with a recursive structure, so every quantity the criterion needs comes from
the Woodbury identity and the matrix determinant lemma applied level by level, from the innermost
units up: a unit with children summaries ``c = 1'V^-1 1``, ``s = 1'V^-1 W`` (``W = [X y]``) gains
``theta^2 1 1'`` and becomes ``c / (1 + theta^2 c)``, ``s / (1 + theta^2 c)``, while ``W'V^-1 W``
loses ``theta^2 s's / (1 + theta^2 c)`` and ``log|V|`` gains ``log(1 + theta^2 c)``.  One evaluation
costs a few products of (units x p) matrices; no n x n matrix is formed.

Criteria (lme4's ``deviance``/``REMLcrit``), with ``r^2(theta)`` the generalised residual sum of
squares and ``p`` fixed effects::

    ML    log|V| + n (1 + log(2 pi r^2 / n))
    REML  log|V| + log|X'V^-1 X| + (n - p) (1 + log(2 pi r^2 / (n - p)))

Denominator degrees of freedom of each fixed effect follow Satterthwaite as lmerTest computes
them (Kuznetsova, Brockhoff & Christensen 2017): ``df = 2 C_jj^2 / (g' A g)`` with ``C`` the
covariance of the fixed effects as a function of the variance parameters on the standard-deviation
scale ``(s_1, ..., s_L, s)``, ``g`` its gradient and ``A = 2 H^+`` the asymptotic covariance of the
variance parameters from the Hessian ``H`` of the (RE)ML deviance (Moore-Penrose inverse on the
positive eigenvalues).  Derivatives are central differences of the closed-form criterion.

References
----------
Bates, D., Maechler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models
using lme4. *Journal of Statistical Software, 67*(1), 1-48.
Kuznetsova, A., Brockhoff, P. B., & Christensen, R. H. B. (2017). lmerTest package: tests in
linear mixed effects models. *Journal of Statistical Software, 82*(13), 1-26.
Satterthwaite, F. E. (1946). An approximate distribution of estimates of variance components.
*Biometrics Bulletin, 2*, 110-114.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from ...blas import single_thread
from ...errors import FidelityMedError
from ..distributions import t_sf

__all__ = ["NestedGroups", "NestedLMMBatch", "NestedLMMFit", "fit_nested_lmm", "fit_nested_lmm_batch",
           "fit_nested_lmm_many", "fits_from_statistics", "equation_statistics"]

_LOG_2PI = math.log(2.0 * math.pi)
#: lme4's isSingular() tolerance on theta
SINGULAR_TOL = 1e-4


@dataclass(frozen=True, eq=False)
class NestedGroups:
    """Integer codes of the units of each nesting level and the parent of every unit.

    Level ``l`` units are the distinct combinations of the first ``l + 1`` grouping columns, so a
    case-manager id only needs to be unique within its team (lme4's ``team/case_manager``).
    """

    names: tuple[str, ...]
    codes: tuple[np.ndarray, ...]  # per level: unit code of each row
    parents: tuple[np.ndarray, ...]  # per level l >= 1: code of the level-(l-1) parent of each unit
    sizes: tuple[int, ...]  # number of units per level

    @classmethod
    def from_columns(cls, columns: Sequence[np.ndarray], names: Sequence[str]) -> "NestedGroups":
        codes, parents, sizes = [], [], []
        for level, col in enumerate(columns):
            label_code, labels = pd.factorize(pd.Series(np.asarray(col)).astype(str).to_numpy(), sort=True)
            # units ordered as the joined labels "outer\x1finner" sort: by the parent's unit, then by
            # the label (the separator sorts before any character), in integers
            key = label_code if not level else codes[level - 1].astype(np.int64) * len(labels) + label_code
            code, uniques = pd.factorize(key, sort=True)
            codes.append(code.astype(np.intp))
            sizes.append(len(uniques))
            if level:
                parent = np.empty(len(uniques), dtype=np.intp)
                parent[code] = codes[level - 1]
                parents.append(parent)
        return cls(tuple(names), tuple(codes), tuple(parents), tuple(sizes))


class _Criterion:
    """Sufficient statistics of one or ``R`` problems on the same rows and groups (one design for
    many responses, or a design per response) and the closed-form criteria.

    Every method takes parameter points of shape ``(R, S, ...)`` — ``S`` points for each of the
    ``R`` problems (``R = 1`` for a single response) — and evaluates all of them in one pass, so a
    finite-difference stencil, a line search, or the fits of many simulated data sets cost one
    set of numpy calls.  ``psi = theta^2`` (variance ratios) is the internal parameter: the
    criterion is smooth in it, with a meaningful gradient on the boundary ``psi = 0``, and
    analytic slightly below 0, so central differences are valid there.
    """

    def __init__(self, WtW: np.ndarray, inner_sums: np.ndarray, n: int, groups: NestedGroups):
        """From each problem's ``W'W`` (R, k, k) and innermost units' sums of ``W`` (R, U, k),
        ``W = [X, y]`` (:func:`shared_design_statistics`, :func:`equation_statistics`)."""
        R, U, k = inner_sums.shape
        self.n, self.p = int(n), k - 1
        self.inner_counts = np.bincount(groups.codes[-1], minlength=U).astype(np.float64)
        self.WtW = WtW[:, None]  # (R, 1, k, k): broadcasts against the S points of each problem
        # dense 0/1 maps child -> parent (a few dozen units: a matmul beats np.add.at) of the levels
        # above the innermost, whose units reach their parents through count_to_parent below
        self.up = []
        for level, parent in enumerate(groups.parents[:-1], start=1):
            P = np.zeros((groups.sizes[level - 1], groups.sizes[level]))
            P[parent, np.arange(groups.sizes[level])] = 1.0
            self.up.append(P)
        self.n_levels = len(groups.sizes)
        # The innermost units' sums s_u do not depend on the variance ratios, and a unit's weight
        # f_u = 1 / (1 + psi c_u) only on its row count c_u: units of equal count are summed once,
        # here. sum_u f_u s_u s_u' is then a product over the D distinct counts (a dozen for 65 case
        # managers) instead of the U units, and so are the parents' sums sum_u f_u s_u and counts.
        counts, unit_count = np.unique(self.inner_counts, return_inverse=True)
        D = counts.size
        self.unit_counts = counts  # (D,)
        self.units_of_count = np.bincount(unit_count, minlength=D).astype(np.float64)
        products = np.einsum("rui,ruj->ruij", inner_sums, inner_sums).reshape(R, U, k * k)
        of_count = np.zeros((D, U))
        of_count[unit_count, np.arange(U)] = 1.0
        self.count_products = of_count @ products  # (R, D, k^2)
        if self.n_levels > 1:
            V = groups.sizes[-2]
            parent = groups.parents[-1]
            # (count, parent) slot of each unit
            of_slot = np.zeros((D * V, U))
            of_slot[unit_count * V + parent, np.arange(U)] = 1.0
            self.count_to_parent = (of_slot @ inner_sums).reshape(R, D, V * k)
            self.counts_to_parent = (of_slot @ self.inner_counts).reshape(D, V)  # rows of count-d units per parent

    @staticmethod
    def batch_size(R: int, p: int, groups: NestedGroups, points: int) -> int:
        """Problems per batch that keep the largest arrays of :meth:`reduce` near 32 MB.

        ``points`` is the most points one evaluation asks for (the start grid).
        """
        k, U = p + 1, groups.sizes[-1]
        V = groups.sizes[-2] if len(groups.sizes) > 1 else 0
        per_problem = U * k * k + points * (U + k * k + V * k)
        return int(max(1, min(R, (4 << 20) // max(per_problem, 1))))

    def reduce(self, psi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``log|V|`` (R, S), ``W'V^-1 W`` (R, S, p+1, p+1) and validity at variance ratios ``psi`` (R, S, L)."""
        shape = psi.shape[:-1]
        k = self.p + 1
        Q = np.broadcast_to(self.WtW, shape + (k, k)).copy()
        innermost = self.n_levels - 1
        t2 = psi[..., innermost][..., None]
        denom = 1.0 + t2 * self.unit_counts  # (R, S, D)
        ok = (denom > 0).all(axis=-1)
        denom = np.where(denom > 0, denom, 1.0)
        logdet = np.log(denom) @ self.units_of_count
        f = 1.0 / denom
        Q -= t2[..., None] * (f @ self.count_products).reshape(Q.shape)
        if innermost:
            c = f @ self.counts_to_parent  # (R, S, V)
            s = (f @ self.count_to_parent).reshape(shape + (c.shape[-1], k))
            for level in range(innermost - 1, -1, -1):
                t2 = psi[..., level][..., None]
                denom = 1.0 + t2 * c
                ok &= (denom > 0).all(axis=-1)
                denom = np.where(denom > 0, denom, 1.0)
                logdet += np.log(denom).sum(axis=-1)
                f = 1.0 / denom
                sf = s * f[..., None]
                Q -= t2[..., None] * (np.swapaxes(s, -1, -2) @ sf)
                if level:
                    P = self.up[level - 1]
                    c, s = (c * f) @ P.T, P @ sf
        return logdet, Q, ok

    def solve(self, psi: np.ndarray, with_beta: bool = False):
        """``log|V|``, Cholesky factors of ``X'V^-1 X``, ``b`` (``None`` unless ``with_beta``),
        ``r^2``, validity, per point.

        One Cholesky factor of the whole ``W'V^-1 W`` (``W = [X, y]``) holds everything the
        criteria need: its leading block is the factor of ``X'V^-1 X``, its last row ``z = L^-1
        X'V^-1 y`` and the square of its last diagonal entry ``r^2 = y'V^-1 y - z'z``, so no
        triangular solve runs per point (Bates et al. 2015, sec. 3.4, on the same blocked factor).
        """
        logdet, Q, ok = self.reduce(psi)
        p = self.p
        try:
            L_full = np.linalg.cholesky(Q)
        except np.linalg.LinAlgError:  # some point not positive definite: factor point by point
            flat, ok_flat = Q.reshape(-1, p + 1, p + 1), ok.reshape(-1)
            L_full = np.empty_like(flat)
            for i in range(flat.shape[0]):
                try:
                    L_full[i] = np.linalg.cholesky(flat[i])
                except np.linalg.LinAlgError:
                    L_full[i], ok_flat[i] = np.eye(p + 1), False
            L_full, ok = L_full.reshape(Q.shape), ok_flat.reshape(ok.shape)
        L = L_full[..., :p, :p]
        r2 = L_full[..., p, p] ** 2
        ok &= r2 > 0
        beta = None
        if with_beta:
            z = L_full[..., p, :p]
            beta = np.linalg.solve(np.swapaxes(L, -1, -2), z[..., None])[..., 0]
        return logdet, L, beta, np.where(ok, r2, 1.0), ok

    def _logdet_x(self, L: np.ndarray) -> np.ndarray:
        return 2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(axis=-1)

    def profiled(self, psi: np.ndarray, reml: bool) -> np.ndarray:
        """lme4's profiled deviance (ML) or REML criterion at variance ratios ``psi`` (R, S, L)."""
        logdet, L, _, r2, ok = self.solve(psi)
        if reml:
            dof = self.n - self.p
            dev = logdet + self._logdet_x(L) + dof * (1.0 + _LOG_2PI + np.log(r2 / dof))
        else:
            dev = logdet + self.n * (1.0 + _LOG_2PI + np.log(r2 / self.n))
        return np.where(ok, dev, np.inf)

    def unprofiled(self, varpar: np.ndarray, reml: bool) -> np.ndarray:
        """lmerTest's ``devfun_vp``: the deviance at standard deviations ``(s_1..s_L, s)`` (R, S, L+1)."""
        sigma2 = varpar[..., -1] ** 2
        logdet, L, _, r2, ok = self.solve((varpar[..., :-1] / varpar[..., -1:]) ** 2)
        dev = logdet + r2 / sigma2 + self.n * (_LOG_2PI + np.log(sigma2))
        if reml:
            dev += self._logdet_x(L) - self.p * (_LOG_2PI + np.log(sigma2))
        return np.where(ok, dev, np.inf)

    def cov_beta(self, varpar: np.ndarray) -> np.ndarray:
        """``s^2 (X'V^-1 X)^-1`` (R, S, p, p) at standard deviations ``varpar`` (R, S, L+1)."""
        _, L, _, _, _ = self.solve((varpar[..., :-1] / varpar[..., -1:]) ** 2)
        Linv = np.linalg.inv(L)
        return (varpar[..., -1] ** 2)[..., None, None] * (np.swapaxes(Linv, -1, -2) @ Linv)


def shared_design_statistics(X: np.ndarray, Y: np.ndarray, groups: NestedGroups) -> tuple[np.ndarray, np.ndarray]:
    """:class:`_Criterion`'s statistics of R responses ``Y`` (R, n) on one design ``X`` (n, p), in
    one product for all of them (simulated data sets)."""
    n, p = X.shape
    k, R, U = p + 1, Y.shape[0], groups.sizes[-1]
    WtW = np.empty((R, k, k))
    WtW[:, :p, :p] = X.T @ X
    WtW[:, :p, p] = WtW[:, p, :p] = Y @ X
    WtW[:, p, p] = np.einsum("ri,ri->r", Y, Y)
    sums = np.zeros((U, p + R))
    np.add.at(sums, groups.codes[-1], np.column_stack([X, Y.T]))
    inner_sums = np.empty((R, U, k))
    inner_sums[:, :, :p] = sums[:, :p]
    inner_sums[:, :, p] = sums[:, p:].T
    return WtW, inner_sums


def equation_statistics(y: np.ndarray, X: np.ndarray, groups: NestedGroups) -> tuple[np.ndarray, np.ndarray]:
    """``W'W`` (k, k) and the innermost units' sums of ``W`` (U, k), ``W = [X, y]``: all that the
    criterion reads of one equation, so a batch of equations need not hold their designs.

    Computed equation by equation by the same calls, so an equation's fit has the same digits
    alone and in any batch.
    """
    W = np.column_stack([X, y])
    sums = np.zeros((groups.sizes[-1], W.shape[1]))
    np.add.at(sums, groups.codes[-1], W)
    return W.T @ W, sums


def _stencil_offsets(k: int) -> np.ndarray:
    """Multipliers of the steps: centre, +e_i, -e_i, then (+,+), (+,-), (-,+), (-,-) per pair i > j."""
    E = np.eye(k)
    rows = [np.zeros(k), *E, *(-E)]
    for i in range(k):
        for j in range(i):
            rows += [E[i] + E[j], E[i] - E[j], -E[i] + E[j], -E[i] - E[j]]
    return np.array(rows)


def _stencil(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Central-difference gradient and Hessian points (R, S, k) around ``x`` (R, k) with steps ``h`` (R, k)."""
    return x[:, None, :] + _stencil_offsets(x.shape[-1])[None] * h[:, None, :]


def _grad_hess(values: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``f(x)`` (R,), gradient (R, k) and Hessian (R, k, k), error O(h^2), from ``f`` at the
    :func:`_stencil` points (R, S)."""
    k = h.shape[-1]
    f0, plus, minus = values[:, 0], values[:, 1:k + 1], values[:, k + 1:2 * k + 1]
    g = (plus - minus) / (2.0 * h)
    H = np.zeros(h.shape + (k,))
    idx = np.arange(k)
    H[:, idx, idx] = (plus - 2.0 * f0[:, None] + minus) / h ** 2
    pos = 2 * k + 1
    for i in range(k):
        for j in range(i):
            a, b, c, d = (values[:, pos + q] for q in range(4))
            H[:, i, j] = H[:, j, i] = (a - b - c + d) / (4.0 * h[:, i] * h[:, j])
            pos += 4
    return f0, g, H


_LINE_STEPS = 0.5 ** np.arange(12)
#: start grid per variance ratio: the criterion is concave in psi far above the optimum (it grows
#: like log psi), where Newton steps are poor, so the search starts at the best grid point
_GRID = np.array([0.0, 0.001, 0.003, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0])


def _start(objective, R: int, L: int) -> np.ndarray:
    """The best point of a log-spaced grid (with 0) of variance ratios per problem, in one batch."""
    grid = np.stack(np.meshgrid(*([_GRID] * L), indexing="ij"), axis=-1).reshape(-1, L)
    values = objective(np.broadcast_to(grid, (R, *grid.shape)))
    return grid[np.argmin(values, axis=1)].copy()


def _minimize(objective, psi: np.ndarray, max_iter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Projected Newton search for ``min objective(psi)`` over ``psi >= 0`` for R problems at once.

    ``psi`` is (R, L).  Each iteration evaluates, in one batch, a backtracking line search along
    the Newton direction and the central-difference stencil around the full step, which is the
    next iterate whenever the full step is accepted (near the optimum, always).  Newton runs in
    log(psi) for clearly interior coordinates (the criterion is close to linear in log psi far
    from the optimum) and in psi near the bound.  A coordinate on the bound whose gradient points
    outward stays there (the active set); a Hessian that is not positive definite is replaced by
    its absolute eigenvalues.  Convergence is quadratic near the optimum, so the variance
    components end far more exact than the 1e-4 relative asked of them.  Returns ``psi`` and a
    per-problem convergence flag.
    """
    psi = psi.astype(np.float64).copy()
    R, L = psi.shape
    rows = np.arange(R)
    eye = np.eye(L)
    done = np.zeros(R, dtype=bool)
    converged = np.zeros(R, dtype=bool)

    def steps(point):
        return 1e-3 * np.maximum(point, 1e-2)

    h = steps(psi)
    f0, g, H = _grad_hess(objective(_stencil(psi, h)), h)
    n_line = _LINE_STEPS.size
    for _ in range(max_iter):
        free = ~((psi <= 0.0) & (g >= 0.0))
        fixed = ~free.any(axis=1) & ~done
        converged |= fixed
        done |= fixed
        if done.all():
            break
        logc = psi > 1e-3
        scale = np.where(logc, psi, 1.0)
        g_t = g * scale
        H_t = H * scale[:, :, None] * scale[:, None, :] + eye * np.where(logc, g_t, 0.0)[:, None, :]
        both = free[:, :, None] & free[:, None, :]
        H_t = np.where(both, H_t, eye)
        g_t = np.where(free, g_t, 0.0)
        evals, evecs = np.linalg.eigh(H_t)
        floor = 1e-8 * np.maximum(1.0, np.abs(evals).max(axis=1, keepdims=True))
        evals = np.maximum(np.abs(evals), floor)
        direction = -((evecs / evals[:, None, :]) @ (np.swapaxes(evecs, 1, 2) @ g_t[:, :, None]))[:, :, 0]
        direction = np.where(free, np.clip(direction, -20.0, 20.0), 0.0)
        t = _LINE_STEPS[None, :, None] * direction[:, None, :]
        candidates = np.where(logc[:, None, :], psi[:, None, :] * np.exp(np.where(logc[:, None, :], t, 0.0)),
                              np.maximum(psi[:, None, :] + t, 0.0))
        h_next = steps(candidates[:, 0])
        values = objective(np.concatenate([candidates, _stencil(candidates[:, 0], h_next)], axis=1))
        line, around = values[:, :n_line], values[:, n_line:]
        best = np.argmin(line, axis=1)
        improved = (line[rows, best] < f0) & ~done
        stalled = ~improved & ~done  # at the optimum, up to rounding: the Newton step is tiny
        newton_step = np.max(np.abs(candidates[:, 0] - psi), axis=1)
        converged |= stalled & ((newton_step < 1e-6 * np.maximum(1.0, psi.max(axis=1)))
                                | (np.max(np.abs(np.where(free, g, 0.0)), axis=1) < 1e-5))
        done |= stalled
        new = candidates[rows, best]
        step = np.max(np.abs(new - psi), axis=1)
        psi = np.where(improved[:, None], new, psi)
        # The step, not the decrease (rounding-limited near 1e-13 of a criterion ~10^3), decides:
        # after a full Newton step of size d the error is O(d^2).
        tol = np.where(best == 0, 1e-7, 1e-10) * np.maximum(1.0, psi.max(axis=1))
        small = improved & (step < tol)
        converged |= small
        done |= small
        full = improved & (best == 0)
        f0n, gn, Hn = _grad_hess(around, h_next)
        f0 = np.where(full, f0n, f0)
        g = np.where(full[:, None], gn, g)
        H = np.where(full[:, None, None], Hn, H)
        partial = improved & (best != 0) & ~done
        if partial.any():
            h = steps(psi)
            f0p, gp, Hp = _grad_hess(objective(_stencil(psi, h)), h)
            f0 = np.where(partial, f0p, f0)
            g = np.where(partial[:, None], gp, g)
            H = np.where(partial[:, None, None], Hp, H)
    return psi, converged


def _optimum(crit: _Criterion, R: int, L: int, reml: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """REML/ML optimum ``psi`` (R, L), criterion (R,) and convergence flags (R,) of R problems."""

    def objective(points):
        return crit.profiled(points, reml)

    psi, converged = _minimize(objective, _start(objective, R, L))
    deviance = objective(psi[:, None, :])[:, 0]
    # The criterion need not be unimodal: check the boundary faces (each variance, then all, at 0)
    # in one batch and search again from a face that is lower.
    faces = np.concatenate([np.where(np.arange(L) == level, 0.0, psi)[:, None, :] for level in range(L)]
                           + [np.zeros((R, 1, L))], axis=1)
    face_values = objective(faces)
    lower = face_values.min(axis=1) < deviance - 1e-8
    if lower.any():
        start = np.where(lower[:, None], faces[np.arange(R), np.argmin(face_values, axis=1)], psi)
        other, other_converged = _minimize(objective, start)
        other_dev = objective(other[:, None, :])[:, 0]
        better = lower & (other_dev < deviance)
        psi = np.where(better[:, None], other, psi)
        deviance = np.where(better, other_dev, deviance)
        converged = np.where(better, other_converged, converged)
    return psi, deviance, converged


@dataclass(frozen=True, eq=False)
class NestedLMMFit:
    """A fitted nested random-intercept model (arrays read-only).

    ``variances`` are the random-intercept variances of ``group_names`` (outermost first),
    ``deviance`` is lme4's REML criterion (``reml=True``) or ML deviance, ``log_likelihood`` is
    ``-deviance / 2`` (what ``logLik()`` reports for either fit).
    """

    names: tuple[str, ...]
    coef: np.ndarray
    vcov: np.ndarray
    df: np.ndarray
    group_names: tuple[str, ...]
    n_groups: tuple[int, ...]
    variances: tuple[float, ...]
    residual_variance: float
    theta: tuple[float, ...]
    deviance: float
    reml: bool
    n: int
    converged: bool

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.vcov))

    @property
    def t(self) -> np.ndarray:
        return self.coef / self.se

    @property
    def p(self) -> np.ndarray:
        return 2.0 * t_sf(np.abs(self.t), self.df)

    @property
    def log_likelihood(self) -> float:
        return -0.5 * self.deviance

    @property
    def singular(self) -> bool:
        """lme4's ``isSingular()``: some relative standard deviation below 1e-4."""
        return any(t < SINGULAR_TOL for t in self.theta)

    def variance_components(self) -> dict[str, float]:
        """``{group: variance, ..., "residual": variance}``."""
        out = {g: float(v) for g, v in zip(self.group_names, self.variances)}
        out["residual"] = float(self.residual_variance)
        return out

    def coef_of(self, name: str, conf: float = 0.95) -> dict[str, float]:
        """``coef, se, df, t, p, ci_low, ci_high`` of one fixed effect (t interval with its df)."""
        j = self.names.index(name)
        coef, se, df = float(self.coef[j]), float(np.sqrt(self.vcov[j, j])), float(self.df[j])
        # scipy.stats.t's own _ppf/_sf, called without its per-call argument machinery (a fit asks for
        # every path, once per imputation)
        q = float(special.stdtrit(df, 0.5 + conf / 2.0))
        p = float(2.0 * special.stdtr(df, -abs(coef / se)))
        return {"coef": coef, "se": se, "df": df, "t": coef / se, "p": p,
                "ci_low": coef - q * se, "ci_high": coef + q * se}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"coef": self.coef, "se": self.se, "df": self.df, "t": self.t, "p": self.p},
                            index=list(self.names))


def _readonly(a) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


def fit_nested_lmm(y: np.ndarray, X: np.ndarray, groups: NestedGroups, *, names: Sequence[str] | None = None,
                   reml: bool = True) -> NestedLMMFit:
    """Fit ``y ~ X + (1 | g1) + (1 | g1:g2) + ...`` by profiled REML (or ML), as ``lme4::lmer``.

    Parameters
    ----------
    y : ndarray, shape (n,)
    X : ndarray, shape (n, p)
        Fixed-effects design including the intercept column; full column rank.
    groups : NestedGroups
        One to three nested grouping levels, outermost first.
    names : sequence of str, optional
        Fixed-effect names.
    reml : bool, default True
        Restricted maximum likelihood (lme4's default) or maximum likelihood.

    Returns
    -------
    NestedLMMFit
        Fixed effects with covariance ``s^2 (X'V^-1 X)^-1`` and lmerTest's Satterthwaite df,
        variance components, the (RE)ML criterion.

    Notes
    -----
    A projected Newton search over the variance ratios ``theta^2 >= 0`` from the best point of a
    start grid, then a check of the boundary faces (see :func:`_minimize`); a variance on its
    boundary is exactly 0, as lme4 reports it.
    """
    return fit_nested_lmm_many([y], [X], groups, names=None if names is None else [names], reml=reml)[0]


def fit_nested_lmm_many(ys: Sequence[np.ndarray], Xs: Sequence[np.ndarray], groups: NestedGroups, *,
                        names: Sequence[Sequence[str]] | None = None, reml: bool = True) -> list[NestedLMMFit]:
    """:func:`fit_nested_lmm` of several equations on the same rows and groups, in one search.

    Parameters
    ----------
    ys : sequence of ndarray, each shape (n,)
    Xs : sequence of ndarray, each shape (n, p)
        One design per response, all with the same ``n`` and ``p`` (e.g. the outcome equations of
        the models of one data set).
    groups : NestedGroups
    names : sequence of sequence of str, optional
        Fixed-effect names of each equation.
    reml : bool, default True

    Returns
    -------
    list of NestedLMMFit
        Each equation's fit; its digits are those of the equation fitted alone (every statistic
        is computed problem by problem, by the same calls, in any batch).
    """
    if len(ys) != len(Xs):
        raise FidelityMedError(f"{len(ys)} responses for {len(Xs)} designs")
    if not len(ys):
        return []
    statistics, n = [], None
    for y, X in zip(ys, Xs, strict=True):
        y, X = np.asarray(y, dtype=np.float64).ravel(), np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] != y.size or (n is not None and X.shape[0] != n):
            raise FidelityMedError(f"each design must be (n, p) with one row per response value, the same n for "
                                   f"all; got {X.shape} for {y.size} values")
        n = X.shape[0]
        statistics.append(equation_statistics(y, X, groups))
    return fits_from_statistics(statistics, n, groups, names=names, reml=reml)


def fits_from_statistics(statistics: Sequence[tuple[np.ndarray, np.ndarray]], n: int, groups: NestedGroups, *,
                         names: Sequence[Sequence[str]] | None = None, reml: bool = True) -> list[NestedLMMFit]:
    """:func:`fit_nested_lmm_many` from each equation's :func:`equation_statistics` (same ``p``)."""
    if not statistics:
        return []
    shapes = {wtw.shape for wtw, _ in statistics}
    if len(shapes) != 1:
        raise FidelityMedError(f"the equations of one batch need as many fixed effects; got W'W shapes {sorted(shapes)}")
    WtW = np.stack([wtw for wtw, _ in statistics])
    inner_sums = np.stack([sums for _, sums in statistics])
    if names is None:
        names = [tuple(f"x{j}" for j in range(WtW.shape[-1] - 1))] * len(statistics)
    batch = _fit_statistics(WtW, inner_sums, n, groups, reml=reml)
    fits = []
    for r, eq_names in enumerate(names):
        fits.append(NestedLMMFit(
            names=tuple(eq_names), coef=_readonly(batch.coef[r]), vcov=_readonly(batch.vcov[r]),
            df=_readonly(batch.df[r]), group_names=tuple(groups.names), n_groups=tuple(groups.sizes),
            variances=tuple(float(v) for v in batch.variances[r]),
            residual_variance=float(batch.residual_variance[r]),
            theta=tuple(float(t) for t in np.sqrt(batch.psi[r])), deviance=float(batch.deviance[r]),
            reml=bool(reml), n=int(batch.n), converged=bool(batch.converged[r])))
    return fits


@dataclass(frozen=True, eq=False)
class NestedLMMBatch:
    """Fits of ``R`` responses with the same design and groups (arrays with a leading R axis)."""

    coef: np.ndarray  # (R, p)
    vcov: np.ndarray  # (R, p, p)
    df: np.ndarray  # (R, p) Satterthwaite
    psi: np.ndarray  # (R, L) variance ratios theta^2
    variances: np.ndarray  # (R, L)
    residual_variance: np.ndarray  # (R,)
    deviance: np.ndarray  # (R,)
    converged: np.ndarray  # (R,)
    n: int

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diagonal(self.vcov, axis1=1, axis2=2))


@single_thread()  # one BLAS thread: the same digits under any thread count
def fit_nested_lmm_batch(Y: np.ndarray, X: np.ndarray, groups: NestedGroups, *, reml: bool = True) -> NestedLMMBatch:
    """:func:`fit_nested_lmm` for ``R`` responses ``Y`` (R, n) at once (e.g. simulated data sets).

    All R searches run together: every criterion evaluation is one batch over problems and points,
    so there is no Python loop per data set.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.atleast_2d(np.asarray(Y, dtype=np.float64))
    if X.ndim not in (2, 3) or (X.ndim == 3 and X.shape[0] != Y.shape[0]):
        raise FidelityMedError(f"X must be (n, p) or one (n, p) design per response, (R, n, p); got {X.shape} "
                               f"for {Y.shape[0]} responses")
    n, p = X.shape[-2:]
    if Y.shape[1] != n:
        raise FidelityMedError(f"responses have {Y.shape[1]} rows, X has {n}")
    if X.ndim == 2:
        WtW, inner_sums = shared_design_statistics(X, Y, groups)
    else:
        WtW, inner_sums = (np.stack(a) for a in zip(*(equation_statistics(y, Xr, groups)
                                                       for y, Xr in zip(Y, X, strict=True))))
    return _fit_statistics(WtW, inner_sums, n, groups, reml=reml)


def _fit_statistics(WtW: np.ndarray, inner_sums: np.ndarray, n: int, groups: NestedGroups, *,
                   reml: bool = True) -> NestedLMMBatch:
    """:func:`fit_nested_lmm_batch` from the problems' statistics (:func:`equation_statistics`,
    stacked: ``WtW`` (R, k, k), ``inner_sums`` (R, U, k)) of ``n`` rows each."""
    R, _, k = inner_sums.shape
    p, L = k - 1, len(groups.sizes)
    if not 1 <= L <= 3:
        raise FidelityMedError(f"nested random intercepts need 1-3 grouping levels; got {L}")
    if n <= p:
        raise FidelityMedError(f"{n} rows but {p} fixed effects")
    # problems are independent, so the batch is cut where its arrays would grow past memory
    size = _Criterion.batch_size(R, p, groups, points=_GRID.size ** L)
    chunks = [_fit_batch(_Criterion(WtW[i:i + size], inner_sums[i:i + size], n, groups), reml)
              for i in range(0, R, size)]
    if len(chunks) == 1:
        return chunks[0]
    fields = ("coef", "vcov", "df", "psi", "variances", "residual_variance", "deviance", "converged")
    return NestedLMMBatch(**{f: np.concatenate([getattr(c, f) for c in chunks]) for f in fields}, n=int(n))


def _fit_batch(crit: _Criterion, reml: bool) -> NestedLMMBatch:
    n, p = crit.n, crit.p
    R, L = crit.WtW.shape[0], crit.n_levels
    psi, deviance, converged = _optimum(crit, R, L, reml)
    _, _, beta, r2, _ = crit.solve(psi[:, None, :], with_beta=True)
    beta, r2 = beta[:, 0], r2[:, 0]
    sigma2 = r2 / (n - p if reml else n)
    sigma = np.sqrt(sigma2)
    varpar = np.column_stack([np.sqrt(psi) * sigma[:, None], sigma])
    cov = crit.cov_beta(varpar[:, None, :])[:, 0]
    cov = (cov + np.swapaxes(cov, 1, 2)) / 2.0
    df = _satterthwaite(crit, varpar, cov, reml)
    return NestedLMMBatch(coef=beta, vcov=cov, df=df, psi=psi, variances=psi * sigma2[:, None],
                          residual_variance=sigma2, deviance=deviance, converged=converged, n=int(n))


def _satterthwaite(crit: _Criterion, varpar: np.ndarray, cov: np.ndarray, reml: bool) -> np.ndarray:
    """lmerTest's Satterthwaite df (R, p) of every fixed effect (see the module docstring)."""
    R, k = varpar.shape
    sigma = varpar[:, -1:]
    # Steps of 1e-3 (relative) with one Richardson extrapolation against 2e-3: smaller steps lose
    # more to rounding of a criterion near 10^3 than they gain in truncation error.
    h = 1e-3 * np.maximum(np.abs(varpar), 1e-2 * sigma)
    points = [_stencil(varpar, h), _stencil(varpar, 2.0 * h)]
    values = crit.unprofiled(np.concatenate(points, axis=1), reml)
    m = points[0].shape[1]
    H = (4.0 * _grad_hess(values[:, :m], h)[2] - _grad_hess(values[:, m:], 2.0 * h)[2]) / 3.0
    evals, evecs = np.linalg.eigh(H)
    inv = np.where(evals > 1e-6, 1.0 / np.where(evals > 1e-6, evals, 1.0), 0.0)  # lmerTest: pseudo-inverse
    A = 2.0 * (evecs * inv[:, None, :]) @ np.swapaxes(evecs, 1, 2)
    E = np.eye(k)[None] * h[:, None, :]  # (R, k, k): row i is h_i e_i
    shifted = np.concatenate([varpar[:, None] + E, varpar[:, None] - E, varpar[:, None] + 2 * E,
                              varpar[:, None] - 2 * E], axis=1)
    diag = np.diagonal(crit.cov_beta(shifted), axis1=-2, axis2=-1)  # (R, 4k, p)
    g1 = (diag[:, :k] - diag[:, k:2 * k]) / (2.0 * h[:, :, None])
    g2 = (diag[:, 2 * k:3 * k] - diag[:, 3 * k:]) / (4.0 * h[:, :, None])
    grads = (4.0 * g1 - g2) / 3.0  # (R, k params, p coefficients)
    denom = np.einsum("rip,rij,rjp->rp", grads, A, grads)
    return 2.0 * np.diagonal(cov, axis1=1, axis2=2) ** 2 / denom
