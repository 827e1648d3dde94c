"""Multiple imputation by chained equations with predictive mean matching (MICE-PMM).

The engine follows R ``mice`` (van Buuren & Groothuis-Oudshoorn 2011; van Buuren 2018,
*Flexible Imputation of Missing Data*, 2nd ed., sections 3.4 and 4.5):

* each incomplete variable (a *target*) is regressed on its predictors among the cases where
  it is observed, with a tiny ridge penalty (``ridge * diag(X'X)``, ``mice``'s 1e-5) for
  stability with many correlated items;
* a Bayesian draw of the regression parameters: ``sigma* = sqrt(RSS / chi2(df))``,
  ``beta* = beta_hat + sigma* L^-T z`` with ``L L' = X'X + ridge`` (``mice``'s ``.norm.draw``);
* **type-1 matching** (van Buuren 2018, section 3.4.2): observed cases are predicted with
  ``beta_hat``, missing cases with ``beta*``; each missing case takes the observed value of a
  donor drawn at random among the ``d = 5`` closest predicted means (``mice``'s default);
* chains start from random draws of the observed values and cycle over the targets
  ``iterations`` times; *passive* variables (scale means of the current items, dummies of
  categorical codes) are refreshed right after the variable they depend on changes
  (``mice``'s passive imputation).

Because every imputed value is copied from an observed case, item values always stay among
the values observed for that item -- hence inside the instrument's valid set.

A target may also be a *block* of columns copied together from the donor (matched on a block
score). The PGI uses this: its ratings and points are weighted by the points a client spent
on areas the client nominated, so single-item models make no sense; a client whose PGI cannot
be scored gets the whole (scorable) form of a donor matched on the PGI index.

All ``m`` chains run in lockstep on stacked ``(chain, case, variable)`` arrays, but each chain
draws only from its own generator, keyed by its chain number
(:func:`fidelitymed.seeding.child_sequence` with key ``("impute", k)``), and every linear
algebra step works per chain: chain ``k`` is bit-identical whether it is computed alone, in any
group of chains, in any order, on any backend.

Item-level imputation of longitudinal questionnaires (:func:`impute_interviews`) works on the
wide client x (item, wave) table; each item's model uses a documented predictor subset (see
:func:`interview_predictors`) in the spirit of Gottschall, West & Enders (2012) and ``mice``'s
``quickpred``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..blas import single_thread
from ..errors import ConfigError, StudyDataError, DataIssue
from ..seeding import SeedLike, child_sequence, root_sequence

__all__ = [
    "impute_items",
    "impute_frame",
    "impute_interviews",
    "interview_predictors",
    "MultipleImputation",
    "ImputedInterviews",
    "MissingDiagnostics",
    "ConvergenceTrace",
    "chain_groups",
    "DEFAULT_DONORS",
    "DEFAULT_RIDGE",
]

DEFAULT_DONORS = 5        # mice: pmm donors = 5
DEFAULT_RIDGE = 1e-5      # mice: ridge = 1e-05
# memory budget for the stacked chain arrays; chains are processed in groups that fit
_CHUNK_CELLS = 4_000_000
# from this many cases a linear-time radix sort beats numpy's comparison sort (measured: 2.7x at
# 19,000 keys, 2x at 4,500, slower below ~1,000); both return the same order of unique keys
_RADIX_FROM = 2_000


# ======================================================================================= engine
@dataclass(frozen=True)
class _Target:
    """One imputation model: match on column ``y``, copy the columns ``copy`` from the donor."""

    label: str
    y: int
    copy: tuple[int, ...]
    predictors: tuple[int, ...]
    missing: np.ndarray          # (n,) bool over the original rows: the cases imputed
    passives: tuple[int, ...]    # indices into the passive list refreshed after this target
    observed: np.ndarray | None = None   # cases used to fit and as donors (default: ~missing)


@dataclass(frozen=True)
class _Passive:
    """A derived column: row mean of ``members`` (kind 'mean') or ``members[0] == level`` ('eq')."""

    column: int
    kind: str
    members: tuple[int, ...]
    level: float = 0.0


def _refresh(values: np.ndarray, passive: _Passive) -> None:
    # values is laid out (chain, variable, case): one variable is a contiguous row
    if passive.kind == "mean":
        values[:, passive.column, :] = values[:, list(passive.members), :].mean(axis=1)
    else:
        values[:, passive.column, :] = (values[:, passive.members[0], :] == passive.level)


@dataclass(frozen=True)
class _ItemRun:
    """Consecutive targets that are the items of one scale at one wave, fitted from one Gram.

    Every target of the run imputes one column of ``columns`` from all the others, on the same
    rows ``rows`` (observed for it or missing and imputed), and changes nothing else in
    ``columns``. So one cross-product matrix ``G`` of ``[1, columns]`` over ``rows``, formed
    once per run and iteration, serves every target: its ``X'X`` and ``X'y`` are ``G`` less the
    contribution of its own missing rows, and after it imputes, ``G`` is brought up to date by
    the change in its column (a rank-2 update). That replaces a gather and an ``n p^2`` product
    per item by one per scale -- the cost that grows with the number of clients.
    """

    targets: tuple[int, ...]
    columns: np.ndarray                  # value columns, in the block's order after the intercept
    rows: np.ndarray                     # cases the run works on (observed or imputed for each target)
    y_pos: dict[int, int]                # target -> block position of its column (intercept = 0)
    predictor_pos: dict[int, np.ndarray]  # target -> block positions of [intercept, predictors]
    observed_pos: dict[int, np.ndarray]   # target -> positions in ``rows`` where it is observed
    missing_pos: dict[int, np.ndarray]    # target -> positions in ``rows`` where it is imputed

    @cached_property
    def packed(self) -> _PackedRun:
        """The run's per-item positions, concatenated in item order, for the compiled kernel."""
        def flat(parts):
            arrays = [np.asarray(parts[t], dtype=np.intp) for t in self.targets]
            starts = np.concatenate([[0], np.cumsum([a.size for a in arrays])]).astype(np.intp)
            return np.concatenate(arrays).astype(np.intp), starts

        cols, cols_start = flat(self.predictor_pos)
        obs, obs_start = flat(self.observed_pos)
        mis, mis_start = flat(self.missing_pos)
        y_pos = np.array([self.y_pos[t] for t in self.targets], dtype=np.intp)
        return _PackedRun(y_pos, cols, cols_start, obs, obs_start, mis, mis_start)


class _PackedRun(NamedTuple):
    y_pos: np.ndarray
    cols: np.ndarray
    cols_start: np.ndarray
    obs: np.ndarray
    obs_start: np.ndarray
    mis: np.ndarray
    mis_start: np.ndarray


def _item_runs(targets: Sequence[_Target], passives: Sequence[_Passive], observed: Sequence[np.ndarray],
               member_of: Mapping[int, Sequence[int]]) -> dict[int, _ItemRun]:
    """The runs of :class:`_ItemRun` among ``targets`` (unshared data: none), by first target."""
    def shape(t: int):
        target = targets[t]
        if target.copy != (target.y,) or target.y in target.predictors or not target.missing.any():
            return None
        cols = frozenset((target.y, *target.predictors))
        if len(cols) != len(target.predictors) + 1:
            return None
        # the columns it refreshes (its scale score) must lie outside the block
        if any(passives[j].column in cols for j in member_of.get(target.y, ())):
            return None
        return cols, (observed[t] | target.missing)

    runs: dict[int, _ItemRun] = {}
    t = 0
    while t < len(targets):
        first = shape(t)
        end = t + 1
        while first is not None and end < len(targets):
            nxt = shape(end)
            if nxt is None or nxt[0] != first[0] or not np.array_equal(nxt[1], first[1]) \
                    or (observed[end] & targets[end].missing).any():
                break
            end += 1
        if first is not None and end - t >= 2 and not (observed[t] & targets[t].missing).any():
            members = tuple(range(t, end))
            columns = np.array(sorted(first[0]), dtype=np.intp)
            at = {c: i + 1 for i, c in enumerate(columns)}
            rows = np.flatnonzero(first[1])
            runs[t] = _ItemRun(
                members, columns, rows,
                {k: at[targets[k].y] for k in members},
                {k: np.array([0, *(at[c] for c in targets[k].predictors)], dtype=np.intp) for k in members},
                {k: np.flatnonzero(observed[k][rows]) for k in members},
                {k: np.flatnonzero(targets[k].missing[rows]) for k in members})
        t = end
    return runs


def _run_chains(base: np.ndarray, targets: Sequence[_Target], passives: Sequence[_Passive],
                seeds: Sequence[np.random.SeedSequence], *, iterations: int, donors: int, ridge: float,
                rows: np.ndarray | None = None, trace_groups: Sequence[tuple[int, np.ndarray]] = ()
                ) -> tuple[np.ndarray, np.ndarray]:
    """Run one MICE-PMM chain per seed, in lockstep, on ``base`` (n x q, NaN = missing).

    ``rows`` (K x n ints), if given, makes chain k work on the resampled data ``base[rows[k]]``
    (bootstrap-then-impute). ``trace_groups`` are (column, rows-of-interest mask) pairs whose
    mean over the rows of interest is recorded after every iteration.

    Returns the completed ``(K, n, q)`` array and the trace ``(groups, iterations, K)``.
    """
    n_chains = len(seeds)
    n, q = base.shape
    gens = [np.random.Generator(np.random.PCG64(s)) for s in seeds]
    observed = [~t.missing if t.observed is None else t.observed for t in targets]
    if rows is None:
        values = np.ascontiguousarray(np.broadcast_to(base.T, (n_chains, q, n)))
        miss = [np.broadcast_to(t.missing, (n_chains, n)) for t in targets]
        obs = [np.broadcast_to(o, (n_chains, n)) for o in observed]
        trace_masks = [np.broadcast_to(mask, (n_chains, n)) for _, mask in trace_groups]
    else:
        values = np.ascontiguousarray(np.swapaxes(base[rows], 1, 2))
        miss = [t.missing[rows] for t in targets]
        obs = [o[rows] for o in observed]
        trace_masks = [mask[rows] for _, mask in trace_groups]
    n_obs = np.stack([o.sum(axis=1) for o in obs], axis=1) if targets else np.zeros((n_chains, 0), int)
    n_mis = np.stack([mk.sum(axis=1) for mk in miss], axis=1) if targets else np.zeros((n_chains, 0), int)
    if targets and (n_obs == 0).any():
        k, t = np.argwhere(n_obs == 0)[0]
        raise StudyDataError(column=targets[t].label, value=None,
                             expected="at least one observed value to impute from (all values are missing)")
    mis_rows = [np.flatnonzero(mk.any(axis=0)) for mk in miss]
    # without resampling all chains share the observed cases: fit on those rows only
    shared_obs = [np.flatnonzero(observed[t]) if rows is None else None for t in range(len(targets))]
    member_of: dict[int, list[int]] = {}
    for j, pv in enumerate(passives):
        for c in pv.members:
            member_of.setdefault(c, []).append(j)
    passive_at = {pv.column: j for j, pv in enumerate(passives)}
    runs = _item_runs(targets, passives, observed, member_of) if rows is None else {}
    run_of = {t: run for run in runs.values() for t in run.targets}
    block = gram = None

    # -- initialisation: each missing cell gets a random observed value of its target
    for k, gen in enumerate(gens):
        u = gen.random(int(n_mis[k].sum()))
        start = 0
        for t, target in enumerate(targets):
            where_mis = np.flatnonzero(miss[t][k])
            if where_mis.size == 0:
                continue
            where_obs = np.flatnonzero(obs[t][k])
            pick = where_obs[np.minimum((u[start:start + where_mis.size] * where_obs.size).astype(np.int64),
                                        where_obs.size - 1)]
            start += where_mis.size
            for c in target.copy:
                values[k, c, where_mis] = values[k, c, pick]
    for passive in passives:
        _refresh(values, passive)
    dirty: set[int] = set()

    def clean(columns) -> None:
        for c in columns:
            j = passive_at.get(c)
            if j is not None and j in dirty:
                _refresh(values, passives[j])
                dirty.discard(j)

    n_pred = np.array([len(t.predictors) + 1 for t in targets], dtype=np.int64)
    z_start = np.concatenate([[0], np.cumsum(n_pred)])
    trace = np.full((len(trace_groups), iterations, n_chains), np.nan)
    for it in range(iterations):
        # per chain and iteration, all draws at once: chi-square per target, normals, uniforms
        df = np.maximum(n_obs - n_pred[None, :], 1)
        chi = np.empty((n_chains, len(targets)))
        z = np.empty((n_chains, int(n_pred.sum())))
        u = []
        for k, gen in enumerate(gens):
            chi[k] = gen.chisquare(df[k]) if len(targets) else chi[k]
            z[k] = gen.standard_normal(z.shape[1])
            u.append(gen.random(int(n_mis[k].sum())))
        u_offset = np.zeros(n_chains, dtype=np.int64)
        z_offset = 0
        for t, target in enumerate(targets):
            p = int(n_pred[t])
            zt = z[:, z_offset:z_offset + p, None]
            z_offset += p
            if mis_rows[t].size == 0:
                continue
            run = run_of.get(t)
            if run is not None:
                if t == run.targets[0]:
                    clean(run.columns)
                    block, gram = _run_block(values, run)
                    first, stop = t, run.targets[-1] + 1
                    width = n_mis[:, first:stop].sum(axis=1)
                    _run_items(values, block, gram, run, z[:, z_start[first]:z_start[stop]], chi[:, first:stop],
                               np.stack([u[k][u_offset[k]:u_offset[k] + width[k]] for k in range(n_chains)]),
                               ridge=ridge, donors=donors)
                dirty.update(member_of.get(target.y, ()))
                u_offset += n_mis[:, t]
                continue
            clean((target.y, *target.predictors))
            x = np.empty((n_chains, p, n))
            x[:, 0, :] = 1.0
            x[:, 1:, :] = values[:, list(target.predictors), :]
            y = values[:, target.y, :]
            if shared_obs[t] is not None:
                xo = x[:, :, shared_obs[t]]
                xtx = np.matmul(xo, np.swapaxes(xo, 1, 2))
                xty = np.matmul(xo, y[:, shared_obs[t], None])
            else:
                xw = x * obs[t][:, None, :]
                xtx = np.matmul(xw, np.swapaxes(x, 1, 2))
                xty = np.matmul(xw, np.where(obs[t], y, 0.0)[:, :, None])
            diag = np.einsum("kii->ki", xtx)    # a writeable view: the ridge goes into xtx
            # a predictor that is constant 0 in a bootstrap resample still gets a penalty
            diag += ridge * np.maximum(diag, 1e-8 * diag.max(axis=1, keepdims=True))
            coef, deviation = _fit_and_draw(xtx, xty, zt)          # (K, p, 1) each
            fitted = np.matmul(np.swapaxes(x, 1, 2), coef)[:, :, 0]
            rss = np.sum(np.where(obs[t], y - fitted, 0.0) ** 2, axis=1)
            sigma = np.sqrt(rss / chi[:, t])
            # beta* = beta_hat + sigma* L^-T z has covariance sigma*^2 (X'X + ridge)^-1
            beta_star = coef + sigma[:, None, None] * deviation
            # the cases to impute as (chain, row) pairs, ordered by chain then row
            sel_k, sel_i = np.nonzero(miss[t][:, mis_rows[t]])
            rows_i = mis_rows[t][sel_i]
            # elementwise products summed over p: the same arithmetic whatever the chain group
            pred_mis = (x[sel_k, :, rows_i] * beta_star[sel_k, :, 0]).sum(axis=1)
            u_pairs = np.concatenate([u[k][u_offset[k]:u_offset[k] + n_mis[k, t]] for k in range(n_chains)])
            donor_rows = _match(fitted, obs[t], n_obs[:, t], sel_k, pred_mis, u_pairs, donors)
            for c in target.copy:
                values[sel_k, c, rows_i] = values[sel_k, c, donor_rows]
                dirty.update(member_of.get(c, ()))
            u_offset += n_mis[:, t]
        clean(list(passive_at))
        for g, (column, _) in enumerate(trace_groups):
            mask = trace_masks[g]
            with np.errstate(invalid="ignore", divide="ignore"):
                trace[g, it] = np.where(mask, values[:, column, :], 0.0).sum(axis=1) / mask.sum(axis=1)
    return np.swapaxes(values, 1, 2), trace


def _fit_and_draw(xtx: np.ndarray, xty: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``beta_hat = (X'X)^-1 X'y`` and ``L^-T z`` (``L L' = X'X``) per chain, each ``(K, p, 1)``."""
    from ._kernels import normal_draw

    n_chains, p = xty.shape[:2]
    coef, deviation = np.empty((n_chains, p)), np.empty((n_chains, p))
    if not normal_draw(np.ascontiguousarray(xtx), np.ascontiguousarray(xty[:, :, 0]),
                       np.ascontiguousarray(z[:, :, 0]), coef, deviation):
        raise np.linalg.LinAlgError("an imputation model's X'X is not positive definite")
    return coef[:, :, None], deviation[:, :, None]


def _run_block(values: np.ndarray, run: _ItemRun) -> tuple[np.ndarray, np.ndarray]:
    """``[1, columns]`` over the run's rows, per chain ``(K, b, r)``, and its Gram ``(K, b, b)``."""
    n_chains = values.shape[0]
    block = np.empty((n_chains, run.columns.size + 1, run.rows.size))
    block[:, 0, :] = 1.0
    block[:, 1:, :] = np.take(np.take(values, run.columns, axis=1), run.rows, axis=2)
    return block, np.matmul(block, np.swapaxes(block, 1, 2))


def _run_items(values: np.ndarray, block: np.ndarray, gram: np.ndarray, run: _ItemRun, z: np.ndarray,
               chi: np.ndarray, u: np.ndarray, *, ridge: float, donors: int) -> None:
    """Every item of an :class:`_ItemRun`: the same draws and matches as the general path, from the Gram.

    One compiled call (:func:`fidelitymed.stats._kernels.run_update`) for the whole run: at a
    few hundred cases the two dozen numpy calls per item it replaced cost more in fixed
    overhead than in arithmetic, and at many thousands one chain's block stays in the cache
    across the run's items. ``z`` (K, sum p), ``chi`` (K, items) and ``u`` (K, sum missing)
    hold the run's draws in item order. Updates ``values``, ``block`` and ``gram`` in place.
    """
    from ._kernels import run_update

    packed = run.packed
    if not run_update(values, block, gram, run.columns, run.rows, packed.y_pos, packed.cols, packed.cols_start,
                      packed.obs, packed.obs_start, packed.mis, packed.mis_start, np.ascontiguousarray(z),
                      np.ascontiguousarray(chi, dtype=np.float64), np.ascontiguousarray(u, dtype=np.float64),
                      float(ridge), int(donors), _RADIX_FROM):
        raise np.linalg.LinAlgError("an imputation model's X'X is not positive definite")


def _sorted_order(keyed: np.ndarray) -> np.ndarray:
    """``argsort(keyed, axis=1, kind="stable")``, the same on every CPU
    (:func:`fidelitymed.stats._kernels.stable_order`: a sort of unique 64-bit keys)."""
    from ._kernels import stable_order_rows

    values = np.ascontiguousarray(keyed, dtype=np.float64)
    order = np.empty(values.shape, dtype=np.intp)
    stable_order_rows(values, order, _RADIX_FROM)
    return order


def _match(fitted: np.ndarray, obs: np.ndarray | None, n_obs: np.ndarray, pair_chain: np.ndarray,
           pred_mis: np.ndarray, u: np.ndarray, donors: int) -> np.ndarray:
    """Type-1 PMM donor rows, one per (chain, missing case) pair, among the ``donors`` nearest.

    The ``d`` nearest predicted means lie within ``d`` places of the insertion point in the
    sorted observed predictions, so only ``2d`` candidates are examined per case; the donor is
    candidate ``floor(u * d)`` of the ``d`` nearest (``u`` uniform, one per pair).
    """
    n_chains, n = fitted.shape
    keyed = fitted if obs is None else np.where(obs, fitted, np.inf)
    order = _sorted_order(keyed)
    sorted_fit = np.take_along_axis(keyed, order, axis=1)
    bounds = np.searchsorted(pair_chain, np.arange(n_chains + 1))
    pos = np.empty(pred_mis.shape, dtype=np.int64)
    for k in range(n_chains):
        lo, hi = bounds[k], bounds[k + 1]
        if hi > lo:
            pos[lo:hi] = np.searchsorted(sorted_fit[k, : n_obs[k]], pred_mis[lo:hi])
    width = 2 * donors
    n_obs_p = n_obs[pair_chain]
    start = np.clip(pos - donors, 0, np.maximum(n_obs_p - width, 0))
    cand = start[:, None] + np.arange(width)[None, :]
    valid = cand < n_obs_p[:, None]
    cand = np.minimum(cand, n - 1)
    dist = np.where(valid, np.abs(sorted_fit[pair_chain[:, None], cand] - pred_mis[:, None]), np.inf)
    nearest = np.argsort(dist, axis=1, kind="stable")[:, :donors]
    d_eff = np.minimum(donors, n_obs_p)
    which = np.minimum((u * d_eff).astype(np.int64), d_eff - 1)
    pairs = np.arange(pred_mis.size)
    return order[pair_chain, cand[pairs, nearest[pairs, which]]]


def _chunks(n_chains: int, n: int, q: int) -> list[slice]:
    size = max(1, _CHUNK_CELLS // max(1, n * q))
    return [slice(i, min(i + size, n_chains)) for i in range(0, n_chains, size)]


def _chain_ids(m: int, chains: Sequence[int] | None) -> list[int]:
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ConfigError(f"m (number of imputations) must be a positive integer; got {m!r}")
    ids = list(range(m)) if chains is None else [int(c) for c in chains]
    bad = [c for c in ids if not 0 <= c < m]
    if bad:
        raise ConfigError(f"chains must be in 0..{m - 1}; got {bad}")
    return ids


def chain_groups(m: int, groups: int) -> list[list[int]]:
    """Split chains ``0..m-1`` into ``groups`` contiguous, near-equal groups (none empty).

    Each group is one task for a worker (``impute_*(..., chains=group)``): chains are keyed by
    their number, so any grouping gives the same completed data sets, and the chains inside a
    group still run vectorized in lockstep.
    """
    ids = _chain_ids(m, None)
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ConfigError(f"groups must be a positive integer; got {groups!r}")
    return [part.tolist() for part in np.array_split(np.asarray(ids), min(int(groups), len(ids)))]


def _check_settings(iterations: int, donors: int, ridge: float) -> None:
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ConfigError(f"iterations must be a positive integer; got {iterations!r}")
    if isinstance(donors, bool) or not isinstance(donors, (int, np.integer)) or donors < 1:
        raise ConfigError(f"donors must be a positive integer; got {donors!r}")
    if not (isinstance(ridge, (int, float)) and 0 <= ridge < 1):
        raise ConfigError(f"ridge must be a number in [0, 1); got {ridge!r}")


# ===================================================================================== results
@dataclass(frozen=True)
class ConvergenceTrace:
    """Mean of the imputed values per iteration and chain (``mice``'s ``plot(imp)`` numbers).

    ``means`` has one row per (variable, iteration, chain). ``rhat`` is the Gelman-Rubin
    potential scale reduction over the second half of the iterations (Gelman & Rubin 1992),
    one per variable; values near 1 mean the chains mix.
    """

    means: pd.DataFrame
    rhat: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        return self.means.copy()

    def to_dict(self) -> dict[str, Any]:
        return {"means": _records(self.means), "rhat": _records(self.rhat)}

    @staticmethod
    def combine(parts: Sequence[ConvergenceTrace], chains: Sequence[Sequence[int]]) -> ConvergenceTrace:
        """The trace of all chains from the traces of chain groups (``chains[i]``: the chains of ``parts[i]``).

        R-hat is recomputed over all chains: identical to the trace of one call imputing every
        chain, because each chain's iteration means do not depend on its group.
        """
        if len(parts) != len(chains) or not parts:
            raise ConfigError("ConvergenceTrace.combine needs one chain list per part (and at least one part)")
        labels = parts[0].rhat.drop(columns="rhat")
        n_groups = len(labels)
        arrays = []
        for part, ids in zip(parts, chains, strict=True):
            n_chains = len(ids)
            n_it = len(part.means) // max(n_groups * n_chains, 1)
            arrays.append(part.means["mean"].to_numpy(dtype=float).reshape(n_groups, n_it, n_chains))
        every = [int(c) for ids in chains for c in ids]
        return _convergence(np.concatenate(arrays, axis=2), labels, every)

    def summary(self) -> str:
        if self.rhat.empty:
            return "Convergence: no imputed variables."
        worst = self.rhat.sort_values("rhat", ascending=False).head(5)
        lines = ["Convergence of the imputation chains (Gelman-Rubin R-hat, 2nd half of iterations):"]
        for rec in worst.to_dict("records"):
            label = " ".join(f"{rec[c]:g} m" if isinstance(rec[c], float) else str(rec[c])
                             for c in self.rhat.columns if c != "rhat")
            lines.append(f"  {label:<30s} R-hat = {rec['rhat']:.3f}")
        return "\n".join(lines)


def _rhat(trace: np.ndarray) -> np.ndarray:
    """Gelman-Rubin R-hat per group from a (groups, iterations, chains) array (2nd half)."""
    g, n_it, k = trace.shape
    if n_it < 4 or k < 2:
        return np.full(g, np.nan)
    half = trace[:, n_it // 2:, :]
    n_draws = half.shape[1]
    chain_means = half.mean(axis=1)
    b = n_draws * chain_means.var(axis=1, ddof=1)
    w = half.var(axis=1, ddof=1).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        var_plus = (n_draws - 1) / n_draws * w + b / n_draws
        return np.sqrt(var_plus / w)


def _convergence(trace: np.ndarray, labels: pd.DataFrame, chains: Sequence[int]) -> ConvergenceTrace:
    g, n_it, k = trace.shape
    rec = labels.iloc[np.repeat(np.arange(g), n_it * k)].reset_index(drop=True)
    rec["iteration"] = np.tile(np.repeat(np.arange(1, n_it + 1), k), g)
    rec["chain"] = np.tile(np.asarray(chains), g * n_it)
    rec["mean"] = trace.reshape(-1)
    rhat = labels.reset_index(drop=True).copy()
    rhat["rhat"] = _rhat(trace)
    return ConvergenceTrace(means=rec, rhat=rhat)


class _CompletedSets:
    """Sequence behaviour of a result holding ``datasets`` (one per imputation) and their ``chains``."""

    datasets: tuple[pd.DataFrame, ...]
    chains: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.datasets)

    def __getitem__(self, i: int) -> pd.DataFrame:
        return self.datasets[i]

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return iter(self.datasets)

    def to_frame(self) -> pd.DataFrame:
        """All completed data sets stacked, with an ``.imp`` column (chain number), like ``mice::complete(long)``."""
        return pd.concat([d.assign(**{".imp": c}) for c, d in zip(self.chains, self.datasets)],
                         ignore_index=True)


@dataclass(frozen=True)
class MultipleImputation(_CompletedSets):
    """``m`` completed copies of a data set (a sequence of DataFrames) plus diagnostics."""

    datasets: tuple[pd.DataFrame, ...]
    chains: tuple[int, ...]
    m: int
    iterations: int
    donors: int
    seed: int | None
    missing: pd.DataFrame              # per column: n, n_missing, share
    convergence: ConvergenceTrace
    predictors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"m": self.m, "chains": list(self.chains), "iterations": self.iterations, "donors": self.donors,
                "seed": self.seed, "missing": _records(self.missing), "convergence": self.convergence.to_dict()}

    def summary(self) -> str:
        miss = self.missing
        total = miss["n_missing"].sum() / max(miss["n"].sum(), 1)
        lines = [f"Multiple imputation (MICE, predictive mean matching, d={self.donors}): m={self.m}, "
                 f"{self.iterations} iterations, {int((miss['n_missing'] > 0).sum())} incomplete variables, "
                 f"{100 * total:.1f}% of cells missing."]
        return "\n".join([*lines, self.convergence.summary()])


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in frame.to_dict("records"):
        clean = {}
        for key, val in rec.items():
            if isinstance(val, (np.floating, float)):
                val = None if not math.isfinite(float(val)) else float(val)
            elif isinstance(val, np.integer):
                val = int(val)
            elif isinstance(val, np.bool_):
                val = bool(val)
            clean[str(key)] = val
        out.append(clean)
    return out


def _seed_value(seed: SeedLike) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, np.random.SeedSequence):
        ent = seed.entropy
        return int(ent) if isinstance(ent, (int, np.integer)) else None
    return int(seed)


# ============================================================================ generic frame API
def _numeric_block(frame: pd.DataFrame, columns: Sequence[str], what: str) -> np.ndarray:
    missing_cols = [c for c in columns if c not in frame.columns]
    if missing_cols:
        raise StudyDataError([DataIssue(None, None, c, None, f"a column of the data ({what})")
                              for c in missing_cols])
    block = frame.loc[:, list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    raw = frame.loc[:, list(columns)].to_numpy(dtype=object)
    bad = ~pd.isna(raw) & np.isnan(block)
    if bad.any():
        raise StudyDataError([DataIssue(None, int(i) + 2, columns[j], raw[i, j], f"a number ({what})")
                              for i, j in np.argwhere(bad)])
    return block


def impute_items(frame: pd.DataFrame, columns: Sequence[str], predictors: Mapping[str, Sequence[str]] | None = None,
                 *, m: int = 20, iterations: int = 10, seed: SeedLike = None, donors: int = DEFAULT_DONORS,
                 ridge: float = DEFAULT_RIDGE, passive: Mapping[str, Sequence[str]] | None = None,
                 chains: Sequence[int] | None = None, key: Sequence[int | str] = ("impute",)
                 ) -> MultipleImputation:
    """Impute the missing values of ``columns`` by MICE with predictive mean matching.

    Parameters
    ----------
    frame : DataFrame
        Numeric data, one row per unit. Columns other than ``columns`` may serve as predictors
        (they must then be complete).
    columns : sequence of str
        Variables to impute (complete ones are left as they are).
    predictors : mapping, optional
        ``column -> predictor names`` (columns of ``frame`` or names in ``passive``). Default:
        every other column of ``columns`` and every complete column of ``frame``.
    m, iterations : int
        Number of imputations (chains) and of MICE cycles per chain (``mice``: ``m``, ``maxit``).
    seed : int or SeedSequence, optional
        Chain ``k`` uses :func:`fidelitymed.seeding.child_sequence` ``(seed, key + (k,))``.
    donors : int
        PMM donor pool size ``d`` (``mice`` default 5).
    ridge : float
        Ridge penalty as a multiple of ``diag(X'X)`` (``mice`` default 1e-5).
    passive : mapping, optional
        ``name -> member columns``: derived predictors equal to the row mean of the members'
        current values (e.g. a scale score), refreshed after each member is imputed.
    chains : sequence of int, optional
        Compute only these chains (0-based, < m); each is identical to the same chain of the
        full run. Lets a task runner spread the m chains over workers.

    Returns
    -------
    MultipleImputation
        Sequence of the completed DataFrames (same index and columns as ``frame``).

    References
    ----------
    van Buuren, S. (2018). *Flexible Imputation of Missing Data* (2nd ed.). CRC. Sections 3.4, 4.5.
    van Buuren, S. & Groothuis-Oudshoorn, K. (2011). mice. *J. Stat. Softw.* 45(3).
    """
    _check_settings(iterations, donors, ridge)
    ids = _chain_ids(m, chains)
    columns = list(dict.fromkeys(columns))
    passive = dict(passive or {})
    others = [c for c in frame.columns if c not in columns]
    block_cols = _numeric_block(frame, columns, "a variable to impute")
    names = list(columns)
    extra = [c for c in others if predictors is None or any(c in list(v) for v in predictors.values())]
    extra_block = _numeric_block(frame, extra, "a predictor") if extra else np.empty((len(frame), 0))
    incomplete_extra = [c for j, c in enumerate(extra) if np.isnan(extra_block[:, j]).any()]
    if predictors is None:
        extra = [c for c in extra if c not in incomplete_extra]
        extra_block = _numeric_block(frame, extra, "a predictor") if extra else np.empty((len(frame), 0))
    elif incomplete_extra:
        raise StudyDataError([DataIssue(None, None, c, None, "a complete predictor (or list it among the "
                                                              "columns to impute)") for c in incomplete_extra])
    names += extra
    base = np.column_stack([block_cols, extra_block]) if extra else block_cols
    for pname, members in passive.items():
        bad = [c for c in members if c not in names]
        if bad:
            raise ConfigError(f"passive {pname!r}: members {bad} are not columns of the data")
    col_of = {c: j for j, c in enumerate(names)}
    q0 = len(names)
    passive_list = []
    for j, (pname, members) in enumerate(passive.items()):
        col_of[pname] = q0 + j
        passive_list.append(_Passive(q0 + j, "mean", tuple(col_of[c] for c in members)))
    base = np.column_stack([base, np.full((len(frame), len(passive_list)), np.nan)]) if passive_list else base
    # passives of complete members are fixed: compute them once here
    for pv in passive_list:
        base[:, pv.column] = base[:, list(pv.members)].mean(axis=1)

    targets = []
    used: dict[str, tuple[str, ...]] = {}
    for c in columns:
        miss = np.isnan(base[:, col_of[c]])
        if not miss.any():
            continue
        if predictors is not None and c in predictors:
            preds = list(dict.fromkeys(predictors[c]))
        else:
            preds = [o for o in names if o != c] + list(passive)
        preds = [pr for pr in preds if pr != c and not (pr in passive and c in passive[pr])]
        bad = [pr for pr in preds if pr not in col_of]
        if bad:
            raise ConfigError(f"predictors of {c!r}: {bad} are neither columns of the data nor passive names")
        refresh = tuple(j for j, (pn, mem) in enumerate(passive.items()) if c in mem)
        targets.append(_Target(c, col_of[c], (col_of[c],), tuple(col_of[pr] for pr in preds), miss, refresh))
        used[c] = tuple(preds)
    trace_groups = [(t.y, t.missing) for t in targets]
    values, trace = _run_all(base, targets, passive_list, seed, ids, key, iterations, donors, ridge, trace_groups)
    datasets = []
    for k in range(len(ids)):
        out = frame.copy()
        completed = values[k][:, [col_of[c] for c in columns]]
        for j, c in enumerate(columns):
            if np.isnan(block_cols[:, j]).any():
                out[c] = completed[:, j]
        datasets.append(out)
    n_missing = np.isnan(block_cols).sum(axis=0)
    missing = pd.DataFrame({"variable": columns, "n": len(frame), "n_missing": n_missing,
                            "share": n_missing / max(len(frame), 1)})
    labels = pd.DataFrame({"variable": [t.label for t in targets]})
    return MultipleImputation(tuple(datasets), tuple(ids), int(m), int(iterations), int(donors), _seed_value(seed),
                              missing, _convergence(trace, labels, ids), used)


def _run_all(base, targets, passives, seed, ids, key, iterations, donors, ridge, trace_groups, rows=None,
             stacked=True):
    """All chains ``ids`` in memory-bounded groups: the completed ``(K, n, q)`` array and the trace.

    ``stacked=False`` returns the completed data as a list of one ``(n, q)`` array per chain
    instead, without the copy that stacks them, so a caller can drop each chain once it is used.
    """
    seeds = [child_sequence(root_sequence(seed) if seed is not None else _fresh(seed), (*key, k)) for k in ids]
    n, q = base.shape
    parts, traces = [], []
    # thousands of small (50 x 300) products: a multi-threaded BLAS only adds contention (and digits)
    with single_thread():
        for sl in _chunks(len(ids), n, q):
            v, tr = _run_chains(base, targets, passives, seeds[sl], iterations=iterations, donors=donors,
                                ridge=ridge, rows=None if rows is None else rows[sl], trace_groups=trace_groups)
            parts.append(v)
            traces.append(tr)
            del v
    trace = np.concatenate(traces, axis=2)
    if not stacked:
        return [chain for part in parts for chain in part], trace
    return np.concatenate(parts, axis=0), trace




def _fresh(seed):
    # seed None: fresh entropy once per call, shared by the chains (each still has its own child)
    return root_sequence(seed)


def impute_frame(data: pd.DataFrame, columns: Sequence[str] | None = None, *, categorical: Sequence[str] = (),
                 m: int = 20, iterations: int = 10, seed: SeedLike = None, donors: int = DEFAULT_DONORS,
                 ridge: float = DEFAULT_RIDGE, chains: Sequence[int] | None = None,
                 key: Sequence[int | str] = ("impute",)) -> MultipleImputation:
    """Scale-level MICE-PMM of a flat, already-scored data set (one row per client).

    Every incomplete column of ``columns`` (default: all) is imputed from all the others;
    ``categorical`` columns enter the other models as dummies (first level = reference) and,
    when incomplete, are imputed by PMM on their codes, so an imputed code is always an
    observed level (``mice`` would use ``polyreg``; PMM keeps the engine single and the codes
    valid).
    """
    columns = list(data.columns if columns is None else columns)
    categorical = list(categorical)
    bad = [c for c in categorical if c not in columns]
    if bad:
        raise ConfigError(f"categorical {bad} are not among the columns to impute {columns}")
    _check_settings(iterations, donors, ridge)
    ids = _chain_ids(m, chains)
    base, targets, passives, dummy_cols, codes = _frame_engine(data, columns, categorical)
    q0 = len(columns)
    trace_groups = [(t.y, t.missing) for t in targets]
    values, trace = _run_all(base, targets, passives, seed, ids, key, iterations, donors, ridge, trace_groups)
    datasets = []
    original = data.loc[:, columns]
    for k in range(len(ids)):
        out = data.copy()
        for j, c in enumerate(columns):
            if not np.isnan(base[:, j]).any():
                continue
            col = values[k][:, j]
            if c in codes:
                out[c] = pd.Series(np.asarray(codes[c], dtype=object)[col.astype(int)], index=data.index).astype(
                    original[c].dtype if original[c].notna().any() else object)
            else:
                out[c] = col
        datasets.append(out)
    n_missing = np.isnan(base[:, :q0]).sum(axis=0)
    missing = pd.DataFrame({"variable": columns, "n": len(data), "n_missing": n_missing,
                            "share": n_missing / max(len(data), 1)})
    labels = pd.DataFrame({"variable": [t.label for t in targets]})
    used = {t.label: tuple(columns[i] if i < q0 else f"{columns[passives[i - q0].members[0]]}="
                           f"{codes[columns[passives[i - q0].members[0]]][int(passives[i - q0].level)]}"
                           for i in t.predictors) for t in targets}
    return MultipleImputation(tuple(datasets), tuple(ids), int(m), int(iterations), int(donors), _seed_value(seed),
                              missing, _convergence(trace, labels, ids), used)


def _frame_engine(data: pd.DataFrame, columns: Sequence[str], categorical: Sequence[str]):
    """The engine inputs of :func:`impute_frame` (used by bootstrap-then-impute)."""
    columns = list(columns)
    frame = data.loc[:, columns].copy()
    codes: dict[str, list[Any]] = {}
    for c in categorical:
        levels = sorted(pd.unique(frame[c].dropna()), key=lambda v: (str(type(v)), v))
        codes[c] = levels
        frame[c] = frame[c].map({lv: float(i) for i, lv in enumerate(levels)})
    base = _numeric_block(frame, columns, "a variable to impute")
    q0 = len(columns)
    passives: list[_Passive] = []
    dummy_cols: dict[str, list[int]] = {}
    for c in categorical:
        j = columns.index(c)
        dummy_cols[c] = []
        for lv in range(1, len(codes[c])):
            passives.append(_Passive(q0 + len(passives), "eq", (j,), float(lv)))
            dummy_cols[c].append(passives[-1].column)
    if passives:
        base = np.column_stack([base, np.full((len(frame), len(passives)), np.nan)])
        for pv in passives:
            col = base[:, pv.members[0]]
            base[:, pv.column] = np.where(np.isnan(col), np.nan, (col == pv.level).astype(float))
    targets = []
    for j, c in enumerate(columns):
        miss = np.isnan(base[:, j])
        if not miss.any():
            continue
        preds = []
        for j2, c2 in enumerate(columns):
            if c2 == c:
                continue
            preds += dummy_cols[c2] if c2 in dummy_cols else [j2]
        refresh = tuple(i for i, pv in enumerate(passives) if pv.members[0] == j)
        targets.append(_Target(c, j, (j,), tuple(preds), miss, refresh))
    return base, targets, passives, dummy_cols, codes


# =========================================================================== interview tables
_SCORE_METRIC = "item mean"   # passive scale scores inside the chains (linear in the total: same fit)


@dataclass(frozen=True)
class MissingDiagnostics:
    """Missing data at the scale level (the paper: "at the scale level, 11.6% ... missing").

    A scale is missing at a wave when its scoring rule cannot score it
    (:func:`fidelitymed.instruments.scoring.score_instrument`; e.g. QOLI-20 with more than 20%
    of its items missing), including the waves a client was not interviewed at all.
    ``by_scale`` has one row per instrument x wave: ``instrument, month, n_expected,
    n_missing, share``; ``overall_share`` = total missing / total expected; ``by_item`` gives
    the share of missing item values per instrument x wave among the clients.
    """

    by_scale: pd.DataFrame
    overall_share: float
    by_item: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        return self.by_scale.copy()

    def to_dict(self) -> dict[str, Any]:
        return {"by_scale": _records(self.by_scale), "overall_share": float(self.overall_share),
                "by_item": _records(self.by_item)}

    def summary(self) -> str:
        lines = [f"Missing at the scale level: {100 * self.overall_share:.1f}% overall"]
        for rec in self.by_scale.to_dict("records"):
            lines.append(f"  {rec['instrument']:<7s} {rec['month']:>5g} m  "
                         f"{rec['n_missing']:>4d}/{rec['n_expected']:<4d} ({100 * rec['share']:.1f}%)")
        return "\n".join(lines)


@dataclass(frozen=True)
class ImputedInterviews(_CompletedSets):
    """``m`` completed interview tables (a sequence of DataFrames) and their diagnostics.

    ``datasets[k]`` has the columns of the input interviews and one row per client x
    scheduled wave: the input rows (in input order, items completed) followed by rows for the
    client x wave pairs the input lacked (key columns set, other non-item columns empty).
    ``auxiliary[k]`` is the completed client-level auxiliary table (covariates and analysis
    variables used as predictors), indexed by client.
    """

    datasets: tuple[pd.DataFrame, ...]
    auxiliary: tuple[pd.DataFrame, ...]
    chains: tuple[int, ...]
    m: int
    iterations: int
    donors: int
    seed: int | None
    missing: MissingDiagnostics
    convergence: ConvergenceTrace
    predictors: Mapping[str, tuple[str, ...]]

    def to_dict(self) -> dict[str, Any]:
        n_pred = [len(v) for v in self.predictors.values()]
        return {"method": f"item-level MICE-PMM, m={self.m}", "m": self.m, "chains": list(self.chains),
                "iterations": self.iterations, "donors": self.donors, "seed": self.seed,
                "n_models": len(self.predictors),
                "predictors_per_model": {"min": min(n_pred, default=0), "max": max(n_pred, default=0)},
                "missing": self.missing.to_dict(), "convergence": self.convergence.to_dict()}

    def summary(self) -> str:
        return "\n".join([f"Item-level multiple imputation (MICE, PMM d={self.donors}): m={self.m}, "
                          f"{self.iterations} iterations, {len(self.predictors)} imputation models",
                          self.missing.summary(), self.convergence.summary()])


def _imputable_items(instrument: str, scoring) -> list[str]:
    from ..instruments.scoring import instrument_declarations

    # unscored items (the Hope Scale's fillers) are never scored: left as they are
    return list(instrument_declarations(scoring)[instrument].scored_items)


def interview_predictors(item: str, instrument: str, wave: float, blocks: Sequence[tuple[str, float]],
                         items_of: Mapping[tuple[str, float], Sequence[str]],
                         auxiliary: Sequence[str]) -> list[str]:
    """The predictors of one item's imputation model (wide names ``<item>@<wave>``).

    The rule (after Gottschall, West & Enders 2012, who impute items from the other items of
    their scale plus scale scores of the other scales; and ``mice::quickpred``'s aim of a
    few strong predictors per model):

    1. the other items of the same instrument at the same wave;
    2. the current scale score (item mean) of every other instrument x wave -- this carries
       the same scale at the other waves (the strongest auxiliary for longitudinal data)
       and the other outcomes and the mediator;
    3. every auxiliary variable: the client covariates and the analysis variables (fidelity
       exposure), so the imputation model is congenial with the mediation models.

    An instrument a client did not answer at all at a wave is imputed as a block (the whole
    answer pattern of a donor matched on the scale score); these block models, the PGI (always
    a block) and incomplete auxiliary variables use 2 and 3 only.
    """
    own = [f"{c}@{wave:g}" for c in items_of.get((instrument, wave), ()) if c != item]
    scores = [f"{inst}@{w:g}" for inst, w in blocks if (inst, w) != (instrument, wave)]
    return own + scores + list(auxiliary)


def impute_interviews(interviews: pd.DataFrame, clients: pd.DataFrame, config=None, *, m: int | None = None,
                      iterations: int = 10, seed: SeedLike = None, auxiliary: pd.DataFrame | None = None,
                      covariates: Sequence[str] | None = None, categorical: Sequence[str] | None = None,
                      donors: int = DEFAULT_DONORS, ridge: float = DEFAULT_RIDGE,
                      chains: Sequence[int] | None = None) -> ImputedInterviews:
    """Item-level MICE-PMM of a study's interviews; returns ``m`` completed interview tables.

    Works on the wide client x (item, wave) table so each wave's items borrow strength from the
    client's other waves. Every scheduled client x wave is completed, including interviews
    that never took place; instruments not scheduled at a wave and the Hope fillers are left
    as they are. Re-score the completed tables with
    :func:`fidelitymed.instruments.scoring.score_interviews`.

    Parameters
    ----------
    interviews : DataFrame
        Long table, one row per client x wave (``client``, ``wave``, item columns).
    clients : DataFrame
        One row per client (``client`` column); its ``covariates`` enter every model.
    config : StudyConfig, optional
        Schedule, scoring settings (missing codes, prorating), covariates, ``imputations``
        and ``seed`` (defaults: the paper's; see :mod:`fidelitymed.study.config`).
    m : int, optional
        Number of imputations (default ``config.analysis.imputations``, 20).
    iterations : int
        MICE cycles per chain.
    seed : int, optional
        Default ``config.analysis.seed``. Chain ``k`` uses the key ``("impute", k)``.
    auxiliary : DataFrame, optional
        Client-level analysis variables (e.g. fidelity exposure per wave and window, site),
        indexed by client or with a ``client`` column. Incomplete ones are imputed too.
    covariates, categorical : sequence of str, optional
        Client columns used as predictors (default: ``config.analysis.covariates`` found in
        ``clients``) and those to dummy-code (default ``config.analysis.categorical``).
    chains : sequence of int, optional
        Compute only these chains (0-based); identical to the same chains of a full run.

    Returns
    -------
    ImputedInterviews

    References
    ----------
    Gottschall, A. C., West, S. G. & Enders, C. K. (2012). A comparison of item-level and
    scale-level multiple imputation for questionnaire batteries. *Multivariate Behav. Res.* 47, 1-25.
    van Buuren, S. (2018). *Flexible Imputation of Missing Data* (2nd ed.), ch. 6-7.
    """
    from ..instruments.scoring import instrument_declarations, item_ranges, score_instrument

    if config is None:
        from ..study.config import default_config

        config = default_config()
    scoring = config.scoring
    m = int(config.analysis.imputations if m is None else m)
    seed = config.analysis.seed if seed is None else seed
    _check_settings(iterations, donors, ridge)
    ids = _chain_ids(m, chains)
    for name, frame in (("interviews", interviews), ("clients", clients)):
        if "client" not in frame.columns:
            raise StudyDataError(file=name, column="client", expected="a client id column")
    if "wave" not in interviews.columns:
        raise StudyDataError(file="interviews", column="wave", expected="the wave (months) of each interview")
    dup = interviews.duplicated(["client", "wave"], keep="first")
    if dup.any():
        rows = np.flatnonzero(dup.to_numpy())
        raise StudyDataError([DataIssue("interviews", int(r) + 2, "wave", interviews["wave"].iloc[r],
                                        "one interview per client and wave") for r in rows])
    client_ids = pd.Index(pd.unique(clients["client"]))
    unknown = ~interviews["client"].isin(client_ids)
    if unknown.any():
        rows = np.flatnonzero(unknown.to_numpy())
        raise StudyDataError([DataIssue("interviews", int(r) + 2, "client", interviews["client"].iloc[r],
                                        "a client listed in clients") for r in rows])
    n = len(client_ids)
    waves = sorted(float(w) for w in config.schedule)
    client_instruments = instrument_declarations(scoring)   # built-in and declared (issue 14)
    blocks = [(inst, w) for w in waves for inst in config.schedule[w] if inst in client_instruments]
    ranges = item_ranges(scoring)
    wave_of = interviews["wave"].astype(float)

    # --- wide item table, analysed-score missingness and the engine's columns
    names: list[str] = []
    columns: list[np.ndarray] = []
    items_of: dict[tuple[str, float], list[str]] = {}
    scale_missing: dict[tuple[str, float], np.ndarray] = {}
    item_missing_share: list[dict[str, Any]] = []
    wave_rows: dict[float, tuple[np.ndarray, np.ndarray]] = {}   # wave -> (input row positions, client positions)
    for w in waves:
        pos = np.flatnonzero((wave_of == w).to_numpy())
        wave_rows[w] = (pos, client_ids.get_indexer(interviews["client"].iloc[pos]))
    score_col = {inst: config.analysis.score_column(inst) for inst in client_instruments}
    for inst, w in blocks:
        pos, cpos = wave_rows[w]
        sub = interviews.iloc[pos]
        imp_items = _imputable_items(inst, scoring)
        absent = [c for c in imp_items if c not in interviews.columns]
        if absent:
            raise StudyDataError([DataIssue("interviews", None, c, None, f"an item column of {inst} "
                                            f"(scheduled at {w:g} months)") for c in absent])
        scored = score_instrument(inst, sub, scoring)
        analysed = np.full(n, np.nan)
        analysed[cpos] = scored[score_col[inst]].to_numpy(dtype=float)
        scale_missing[(inst, w)] = np.isnan(analysed)
        items_of[(inst, w)] = imp_items
        for c in imp_items:
            low, high, codes = ranges[c]
            raw = pd.to_numeric(sub[c], errors="coerce").to_numpy(dtype=float, copy=True)
            if codes:
                raw[np.isin(raw, codes)] = np.nan
            col = np.full(n, np.nan)
            col[cpos] = raw
            names.append(f"{c}@{w:g}")
            columns.append(col)
        block = np.column_stack(columns[-len(imp_items):])
        item_missing_share.append({"instrument": inst, "month": w, "n_items": len(imp_items),
                                   "share": float(np.isnan(block).mean())})
        if inst == "pgi":
            names.append(f"pgi@{w:g}")
            columns.append(analysed)

    # --- auxiliary variables: client covariates + caller's analysis variables
    cl = clients.drop_duplicates("client").set_index("client").reindex(client_ids)
    if covariates is None:
        covariates = [c for c in config.analysis.covariates if c in cl.columns]
    if categorical is None:
        categorical = list(config.analysis.categorical)
    aux = cl.loc[:, [c for c in covariates if c in cl.columns]].copy()
    missing_cov = [c for c in covariates if c not in cl.columns]
    if missing_cov:
        raise StudyDataError([DataIssue("clients", None, c, None, "a covariate column") for c in missing_cov])
    if auxiliary is not None:
        extra = auxiliary.set_index("client") if "client" in auxiliary.columns else auxiliary
        extra = extra.reindex(client_ids)
        aux = pd.concat([aux, extra.loc[:, [c for c in extra.columns if c not in aux.columns]]], axis=1)
    categorical = [c for c in categorical if c in aux.columns]
    aux_codes: dict[str, list[Any]] = {}
    for c in categorical:
        levels = sorted(pd.unique(aux[c].dropna()), key=lambda v: (str(type(v)), v))
        aux_codes[c] = levels
        aux[c] = aux[c].map({lv: float(i) for i, lv in enumerate(levels)})
    aux_names = list(aux.columns)
    aux_block = _numeric_block(aux.reset_index(drop=True), aux_names, "an auxiliary variable") \
        if aux_names else np.empty((n, 0))
    item_count = len(names)
    names += aux_names
    columns += [aux_block[:, j] for j in range(aux_block.shape[1])]
    col_of = {c: j for j, c in enumerate(names)}

    # passive columns: scale scores (item means) and dummies of categorical auxiliaries
    passives: list[_Passive] = []
    passive_names: list[str] = []
    score_name: dict[tuple[str, float], str] = {}
    for inst, w in blocks:
        label = f"{inst}@{w:g}"
        score_name[(inst, w)] = label
        if inst == "pgi":
            continue    # the PGI index is a copied column of its block, not a passive
        passives.append(_Passive(len(names) + len(passives), "mean",
                                 tuple(col_of[f"{c}@{w:g}"] for c in items_of[(inst, w)])))
        passive_names.append(label)
    dummy_names: dict[str, list[str]] = {}
    for c in categorical:
        dummy_names[c] = []
        for lv in range(1, len(aux_codes[c])):
            passives.append(_Passive(len(names) + len(passives), "eq", (col_of[c],), float(lv)))
            passive_names.append(f"{c}={aux_codes[c][lv]}")
            dummy_names[c].append(passive_names[-1])
    for j, pname in enumerate(passive_names):
        col_of[pname] = len(names) + j
    base = np.column_stack(columns + [np.full(n, np.nan)] * len(passives))
    columns = sub = block = scored = None  # the base holds them now (a large study's chains need the room)
    for pv in passives:
        if pv.kind == "mean":
            base[:, pv.column] = base[:, list(pv.members)].mean(axis=1)
        else:
            col = base[:, pv.members[0]]
            base[:, pv.column] = np.where(np.isnan(col), np.nan, (col == pv.level).astype(float))
    aux_predictors = []
    for c in aux_names:
        aux_predictors += dummy_names.get(c, [c])
    passive_index = {pv.column: i for i, pv in enumerate(passives)}

    # --- targets in visit order: wave by wave, instrument by instrument, then auxiliaries
    targets: list[_Target] = []
    used: dict[str, tuple[str, ...]] = {}
    for inst, w in blocks:
        if inst == "pgi":
            label = f"pgi@{w:g}"
            miss = scale_missing[(inst, w)]
            if miss.any():
                preds = [score_name[b] for b in blocks if b != (inst, w)] + aux_predictors
                copy = tuple(col_of[f"{c}@{w:g}"] for c in items_of[(inst, w)]) + (col_of[label],)
                targets.append(_Target(label, col_of[label], copy, tuple(col_of[p] for p in preds), miss, ()))
                used[label] = tuple(preds)
            continue
        score = score_name[(inst, w)]
        refresh = (passive_index[col_of[score]],)
        item_idx = [col_of[f"{c}@{w:g}"] for c in items_of[(inst, w)]]
        # a client not interviewed (no item answered) gets the whole answer pattern of a donor
        # matched on the scale score; item-by-item models would feed imputed items into each
        # other and the chains would drift for dozens of iterations (van Buuren 2018, 6.5.2)
        none_answered = np.isnan(base[:, item_idx]).all(axis=1)
        for c in items_of[(inst, w)]:
            label = f"{c}@{w:g}"
            observed = ~np.isnan(base[:, col_of[label]])
            miss = ~observed & ~none_answered
            if not miss.any():
                continue
            preds = interview_predictors(c, inst, w, blocks, items_of, aux_predictors)
            targets.append(_Target(label, col_of[label], (col_of[label],), tuple(col_of[p] for p in preds),
                                   miss, refresh, observed))
            used[label] = tuple(preds)
        if none_answered.any():
            preds = [score_name[b] for b in blocks if b != (inst, w)] + aux_predictors
            targets.append(_Target(score, col_of[score], tuple(item_idx), tuple(col_of[p] for p in preds),
                                   none_answered, refresh, ~none_answered))
            used[score] = tuple(preds)
    for c in aux_names:
        miss = np.isnan(base[:, col_of[c]])
        if not miss.any():
            continue
        others = [p for p in aux_predictors if p != c and p not in dummy_names.get(c, [])]
        preds = [score_name[b] for b in blocks] + others
        refresh = tuple(i for i, pv in enumerate(passives) if pv.kind == "eq" and pv.members[0] == col_of[c])
        targets.append(_Target(c, col_of[c], (col_of[c],), tuple(col_of[p] for p in preds), miss, refresh))
        used[c] = tuple(preds)

    trace_groups = [(col_of[score_name[b]], scale_missing[b]) for b in blocks if scale_missing[b].any()]
    trace_labels = pd.DataFrame([{"instrument": b[0], "month": b[1]} for b in blocks if scale_missing[b].any()],
                                columns=["instrument", "month"])
    values, trace = _run_all(base, targets, passives, seed, ids, ("impute",), iterations, donors, ridge,
                             trace_groups, stacked=False)

    # --- back to the long format
    present = pd.MultiIndex.from_arrays([interviews["client"], wave_of])
    needed = pd.MultiIndex.from_product([client_ids, waves])
    absent_pairs = needed[~needed.isin(present)]
    if len(absent_pairs):
        added = interviews.iloc[:0].reindex(range(len(absent_pairs)))
        added["client"] = pd.Series(absent_pairs.get_level_values(0), dtype=interviews["client"].dtype)
        added["wave"] = pd.Series(absent_pairs.get_level_values(1), dtype=float).astype(interviews["wave"].dtype)
        template = pd.concat([interviews.reset_index(drop=True), added], ignore_index=True)
    else:
        template = interviews.reset_index(drop=True)
    t_wave = template["wave"].astype(float).to_numpy()
    t_client = client_ids.get_indexer(template["client"])
    item_cols = sorted({c for (inst, w) in blocks for c in items_of[(inst, w)]})
    for c in item_cols:  # float64, as the completed values written into them (ints, nullable, text digits)
        if template[c].dtype != np.float64:
            template[c] = template[c].to_numpy(dtype=float, na_value=np.nan)
    # Each completed table's item columns are written into one float block and set into a copy of
    # the template at once, and each chain's completed array is dropped once its table is made:
    # column-by-column assignment held each table twice (its per-column arrays, then their
    # consolidation), and all chains were held to the end (20,000 clients: ~70 MB a table, ~85 MB
    # a chain).
    item_at = {c: j for j, c in enumerate(item_cols)}
    wave_rows = [(np.flatnonzero(t_wave == w), inst, w) for inst, w in blocks]
    datasets, aux_sets = [], []
    for k in range(len(ids)):
        chain = values[k]
        values[k] = None
        filled = template[item_cols].to_numpy(dtype=float, na_value=np.nan, copy=True)  # never a view
        for rows, inst, w in wave_rows:
            cpos = t_client[rows]
            for c in items_of[(inst, w)]:
                filled[rows, item_at[c]] = chain[cpos, col_of[f"{c}@{w:g}"]]
        out = template.copy()
        out.loc[:, item_cols] = filled
        del filled
        datasets.append(out)
        a = pd.DataFrame(chain[:, item_count:item_count + len(aux_names)], index=client_ids, columns=aux_names)
        for c in categorical:
            a[c] = np.asarray(aux_codes[c], dtype=object)[a[c].to_numpy().astype(int)]
        aux_sets.append(a)
        del chain

    by_scale = pd.DataFrame([{"instrument": inst, "month": w, "n_expected": n,
                              "n_missing": int(scale_missing[(inst, w)].sum()),
                              "share": float(scale_missing[(inst, w)].mean()) if n else 0.0} for inst, w in blocks],
                            columns=["instrument", "month", "n_expected", "n_missing", "share"])
    total = by_scale["n_expected"].sum()
    diag = MissingDiagnostics(by_scale, float(by_scale["n_missing"].sum() / total) if total else 0.0,
                              pd.DataFrame(item_missing_share))
    return ImputedInterviews(tuple(datasets), tuple(aux_sets), tuple(ids), m, int(iterations), int(donors),
                             _seed_value(seed), diag, _convergence(trace, trace_labels, ids), used)
