"""Compiled inner loops (numba) for the one step numpy cannot do at memory speed.

Counting bootstrap draws -- turning a resample's ``n`` random row indices into the row's count
vector -- is a scatter-increment: :func:`numpy.bincount` needs the indices offset per resample,
a 64-bit key array and a second pass, and was the largest cost of a bootstrap after the moment
product (7.8 ms of a 23 ms ``mediate`` at n = 311; 72 of 162 ms at n = 3,110).  The compiled
loop reads each 32-bit word once, scales it to an index and increments the count in the
resample's row, which stays in the L1 cache (``benchmarks/bench_mediation.py`` prints the
phases).  The arithmetic is the same as the numpy path it replaced (``floor(w * n / 2**32)``,
Lemire 2019 without rejection), so the draws are identical.

Kernels are compiled on first use and cached on disk (numba's ``cache=True``: next to this file,
or in the user's cache folder when the installation is read-only); they release the GIL.

References
----------
Lam, S. K., Pitrou, A., & Seibert, S. (2015). Numba: a LLVM-based Python JIT compiler.
*Proceedings of the Second Workshop on the LLVM Compiler Infrastructure in HPC*, 1-6.
Lemire, D. (2019). Fast random integer generation in an interval. *ACM Transactions on Modeling
and Computer Simulation*, 29(1), 3.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["cholesky_packed", "count_draws", "normal_draw", "radix_sort_rows", "run_update", "stable_order",
           "stable_order_rows"]


@numba.njit(nogil=True, cache=True, boundscheck=False)
def count_draws(words: np.ndarray, n: int, counts: np.ndarray, indices: np.ndarray) -> None:  # pragma: no cover - compiled
    """Counts of ``counts.shape[0]`` resamples of ``n`` rows from 32-bit uniform words.

    Parameters
    ----------
    words : numpy.ndarray of uint32, shape (>= b * n,)
        Random words, resample ``r`` taking ``words[r*n:(r+1)*n]``; word ``w`` draws row
        ``(w * n) >> 32``.
    n : int
        Rows of the data (below 2**32).
    counts : numpy.ndarray of float64, shape (b, n)
        Overwritten with how often each row is drawn into each resample.
    indices : numpy.ndarray of intp, shape (b, n) or (0, n)
        Also receives the drawn rows when it has ``b`` rows (tests and audits).
    """
    nn = np.uint64(n)
    shift = np.uint64(32)
    keep = indices.shape[0] > 0
    for r in range(counts.shape[0]):
        row = counts[r]
        row[:] = 0.0
        base = r * n
        for j in range(n):
            k = (np.uint64(words[base + j]) * nn) >> shift
            row[k] += 1.0
            if keep:
                indices[r, j] = k


#: Resamples factored together in a local, contiguous factor (q x q x 128 doubles, 296 KB at q = 17,
#: in the L2 cache); 64 to 512 ran alike.
_TILE = 128


@numba.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
def cholesky_packed(packed: np.ndarray, index: np.ndarray, tol: float, n_check: int,
                    L: np.ndarray, ok: np.ndarray) -> None:  # pragma: no cover - compiled
    """Cholesky factors of ``N`` symmetric ``q x q`` matrices in batch-last packed storage.

    Left-looking Cholesky (Golub & Van Loan 2013, alg. 4.2.1) vectorized over the batch axis, in
    tiles of :data:`_TILE` matrices.  Element ``(i, j)`` of matrix ``b`` is
    ``packed[index[i, j], b]``.  ``L`` (q, q, N) receives the lower triangle; ``ok[b]`` is False
    when a pivot ratio ``d_j / S_jj`` of one of the first ``n_check`` columns is ``<= tol``, or the
    pivot is not finite, or ``S_jj <= 0``; such a matrix gets the placeholder pivot 1 so that no
    NaN arises.  Each element is ``S_ij - sum_k L_ik L_jk`` with the sum taken over ``k`` in order,
    in IEEE double arithmetic (no fused multiply-add), so results do not depend on the tile, the
    batch size or the CPU's vector width.
    """
    q = index.shape[0]
    N = packed.shape[1]
    tile = np.empty((q, q, _TILE))
    acc = np.empty(_TILE)
    for t0 in range(0, N, _TILE):
        w = min(N, t0 + _TILE) - t0
        for b in range(w):
            ok[t0 + b] = True
        for j in range(q):
            for i in range(j, q):
                for b in range(w):
                    acc[b] = 0.0
                for k in range(j):
                    l_i = tile[i, k]
                    l_j = tile[j, k]
                    for b in range(w):
                        acc[b] += l_i[b] * l_j[b]
                r = index[i, j]
                if i == j:
                    for b in range(w):
                        d = packed[r, t0 + b]
                        pivot = d - acc[b]
                        good = (pivot > tol * d) and (d > 0.0) and np.isfinite(pivot)
                        if j < n_check and not good:
                            ok[t0 + b] = False
                        tile[j, j, b] = np.sqrt(pivot) if good else 1.0
                else:
                    for b in range(w):
                        tile[i, j, b] = (packed[r, t0 + b] - acc[b]) / tile[j, j, b]
        for i in range(q):
            for j in range(i + 1):
                for b in range(w):
                    L[i, j, t0 + b] = tile[i, j, b]


@numba.njit(nogil=True, cache=True, boundscheck=False)
def radix_sort_rows(keys: np.ndarray) -> None:  # pragma: no cover - compiled
    """Sort each row of a 2-D uint64 array in place (least-significant-digit radix, 8-bit digits).

    Predictive mean matching sorts the observed cases' predicted means once per target, chain
    and iteration (:func:`fidelitymed.stats.impute._sorted_order`); numpy's comparison sort
    costs ~35 ns per key at 20,000 cases, most of an item's update.  Eight counting passes
    are linear in the rows, and a pass whose digit is the same in every key (the sign and
    exponent bytes of predicted means on one scale mostly are) is skipped.  Sorting is exact:
    the keys are unique, so the result is the one sorted order whatever the algorithm.
    """
    n = keys.shape[1]
    buffer = np.empty(n, dtype=np.uint64)
    counts = np.empty(256, dtype=np.int64)
    for r in range(keys.shape[0]):
        source = keys[r]
        target = buffer
        in_row = True
        for digit in range(8):
            shift = np.uint64(8 * digit)
            counts[:] = 0
            for j in range(n):
                counts[(source[j] >> shift) & np.uint64(255)] += 1
            if counts[(source[0] >> shift) & np.uint64(255)] == n:
                continue                      # one value of this digit: the pass would not move a key
            total = 0
            for b in range(256):
                c = counts[b]
                counts[b] = total
                total += c
            for j in range(n):
                b = (source[j] >> shift) & np.uint64(255)
                target[counts[b]] = source[j]
                counts[b] += 1
            source, target = target, source
            in_row = not in_row
        if not in_row:
            keys[r, :] = source


@numba.njit(nogil=True, cache=True, boundscheck=False)
def stable_order(values: np.ndarray, order: np.ndarray, normalized: np.ndarray, keys: np.ndarray,
                 radix_from: int) -> None:  # pragma: no cover - compiled
    """``order`` = ``argsort(values, kind="stable")`` through a sort of unique 64-bit keys.

    Each value's order-preserving bit pattern (``-0.0`` first made ``0.0``) keeps its high bits
    and takes its position in the low ``ceil(log2 n)`` bits, so equal values stay in position
    order and the keys are unique: every sort algorithm, on every CPU, gives the same order.
    Values closer than ``2**(bits - 52)`` relative are also ordered by position (predictive mean
    matching then compares exact values within a window of candidates).  :func:`radix_sort_rows`
    from ``radix_from`` values, numba's sort below; ``normalized`` and ``keys`` are scratch of
    ``values``' length.
    """
    n = values.shape[0]
    bits = 1
    while (1 << bits) < n:
        bits += 1
    low = np.uint64((1 << bits) - 1)
    sign = np.uint64(1) << np.uint64(63)
    for o in range(n):
        normalized[o] = values[o] + 0.0
    raw = normalized.view(np.uint64)
    for o in range(n):
        r = raw[o]
        ordered = ~r if (r & sign) != 0 else r | sign
        keys[o] = (ordered & ~low) | np.uint64(o)
    if n >= radix_from:
        radix_sort_rows(keys.reshape((1, n)))
    else:
        keys.sort()
    for o in range(n):
        order[o] = np.int64(keys[o] & low)


@numba.njit(nogil=True, cache=True, boundscheck=False)
def stable_order_rows(values: np.ndarray, order: np.ndarray, radix_from: int) -> None:  # pragma: no cover
    """:func:`stable_order` of each row of a 2-D array."""
    n = values.shape[1]
    normalized = np.empty(n)
    keys = np.empty(n, dtype=np.uint64)
    for r in range(values.shape[0]):
        stable_order(values[r], order[r], normalized, keys, radix_from)


@numba.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
def _cholesky_draw(xtx: np.ndarray, xty: np.ndarray, z: np.ndarray, L: np.ndarray, work: np.ndarray,
                   coef: np.ndarray, deviation: np.ndarray) -> bool:  # pragma: no cover - compiled
    """``L L' = X'X``, ``coef = (X'X)^-1 X'y`` and ``deviation = L^-T z`` of one ``p x p`` system.

    Left-looking Cholesky (Golub & Van Loan 2013, alg. 4.2.1) and three triangular solves, sums
    in index order; ``L`` and ``work`` are scratch.  False when ``X'X`` is not positive definite.
    """
    p = xty.shape[0]
    for j in range(p):
        for i in range(j, p):
            s = xtx[i, j]
            for m in range(j):
                s -= L[i, m] * L[j, m]
            if i == j:
                if not (s > 0.0) or not np.isfinite(s):
                    return False
                L[j, j] = np.sqrt(s)
            else:
                L[i, j] = s / L[j, j]
    for i in range(p):                       # L w = X'y
        s = xty[i]
        for m in range(i):
            s -= L[i, m] * work[m]
        work[i] = s / L[i, i]
    for i in range(p - 1, -1, -1):           # L' coef = w ;  L' deviation = z
        s = work[i]
        d = z[i]
        for m in range(i + 1, p):
            s -= L[m, i] * coef[m]
            d -= L[m, i] * deviation[m]
        coef[i] = s / L[i, i]
        deviation[i] = d / L[i, i]
    return True


@numba.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
def normal_draw(xtx: np.ndarray, xty: np.ndarray, z: np.ndarray, coef: np.ndarray,
                deviation: np.ndarray) -> bool:  # pragma: no cover - compiled
    """Least-squares coefficients and the Bayesian draw's deviation of ``K`` small systems.

    For each chain ``k``: the Cholesky factor ``L L' = X'X`` (Golub & Van Loan 2013, alg.
    4.2.1), ``coef = (X'X)^-1 X'y`` by two triangular solves and ``deviation = L^-T z``, so
    that ``beta* = coef + sigma* deviation`` has covariance ``sigma*^2 (X'X)^-1`` (``mice``'s
    ``.norm.draw``; van Buuren 2018, alg. 3.1).  One factorisation replaces numpy's LU solve,
    Cholesky and second solve: three LAPACK calls per target whose fixed cost exceeded their
    arithmetic at ``p`` = 40.  Sums run in index order in IEEE double arithmetic (no fused
    multiply-add), the same on every CPU.  Returns False when a matrix is not positive definite.
    """
    n_chains, p = xty.shape
    L = np.empty((p, p))
    work = np.empty(p)
    for k in range(n_chains):
        if not _cholesky_draw(xtx[k], xty[k], z[k], L, work, coef[k], deviation[k]):
            return False
    return True


@numba.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
def _item_step(block: np.ndarray, gram: np.ndarray, cols: np.ndarray, jy: int, obs_pos: np.ndarray,
               mis_pos: np.ndarray, z: np.ndarray, chi: float, u: np.ndarray, ridge: float,
               donors: int, new: np.ndarray, radix_from: int) -> bool:  # pragma: no cover - compiled
    """One MICE-PMM step of one item of a scale, for one chain, from the scale's Gram.

    ``block`` (b, r) holds ``[1, scale columns]`` over the scale's rows and ``gram`` (b, b) its
    cross-products; the item is block row ``jy``, its predictors the rows ``cols`` (intercept
    first), observed at ``obs_pos`` and imputed at ``mis_pos``.  ``X'X`` and ``X'y`` are the
    Gram less the imputed rows, with the ridge (``mice``'s); then ``beta_hat`` and the draw
    ``beta* = beta_hat + sigma* L^-T z`` with ``sigma* = sqrt(RSS / chi)``, predicted means,
    and type-1 matching -- the donor is candidate ``floor(u * d)`` of the ``d = donors``
    observed cases nearest in predicted mean (van Buuren 2018, 3.4), with the order of
    :func:`stable_order` and the candidate window of :func:`fidelitymed.stats.impute._match`.
    ``new`` (n_mis,) receives the imputed values; ``block`` and ``gram`` are brought up to date
    (rank-2 update).  Returns False when ``X'X`` is not positive definite.
    """
    b = block.shape[0]
    p = cols.shape[0]
    n_obs = obs_pos.shape[0]
    n_mis = mis_pos.shape[0]
    width = 2 * donors
    d_eff = min(donors, n_obs)
    xtx = np.empty((p, p))
    xty = np.empty(p)
    L = np.empty((p, p))
    work = np.empty(p)
    coef = np.empty(p)
    dev = np.empty(p)
    n_rows = block.shape[1]
    fitted_all = np.empty(n_rows)
    fitted = np.empty(n_obs)
    pred = np.empty(n_mis)
    keys = np.empty(n_obs, dtype=np.uint64)
    order = np.empty(n_obs, dtype=np.int64)
    sorted_fit = np.empty(n_obs)
    cand = np.empty(width, dtype=np.int64)
    dist = np.empty(width)
    rank = np.empty(width, dtype=np.int64)
    shift = np.empty(b)
    normalized = np.empty(n_obs)
    gathered = np.empty((n_mis, b))
    lower = np.empty((b, b))
    # the imputed rows of the block, gathered once into a row-major copy, and their
    # cross-products: each sum still runs over the rows in order (the same bits as one
    # accumulator per entry), but the entries of a row accumulate side by side, so the adds
    # are not waiting on one another and the block's columns are not re-read per entry
    for i in range(n_mis):
        at = mis_pos[i]
        for c in range(b):
            gathered[i, c] = block[c, at]
    for x in range(b):
        for y in range(x + 1):
            lower[x, y] = 0.0
    for i in range(n_mis):
        row = gathered[i]
        for x in range(b):
            v = row[x]
            target_row = lower[x]
            for y in range(x + 1):
                target_row[y] += v * row[y]
    # X'X and X'y over the observed rows: the Gram less the imputed rows
    for a in range(p):
        ca = cols[a]
        for c in range(a + 1):
            cc = cols[c]
            v = gram[ca, cc] - (lower[ca, cc] if ca >= cc else lower[cc, ca])
            xtx[a, c] = v
            xtx[c, a] = v
        xty[a] = gram[ca, jy] - (lower[ca, jy] if ca >= jy else lower[jy, ca])
    top = xtx[0, 0]
    for a in range(1, p):
        top = max(top, xtx[a, a])
    for a in range(p):
        xtx[a, a] += ridge * max(xtx[a, a], 1e-8 * top)
    # Cholesky, beta_hat and L^-T z
    if not _cholesky_draw(xtx, xty, z, L, work, coef, dev):
        return False
    # predicted means of the observed cases (beta_hat) and residual sum of squares
    # over all the scale's rows, contiguous (the compiler vectorizes it), then the observed ones
    for o in range(n_rows):
        fitted_all[o] = 0.0
    for a in range(p):
        row = block[cols[a]]
        w = coef[a]
        for o in range(n_rows):
            fitted_all[o] += w * row[o]
    for o in range(n_obs):
        fitted[o] = fitted_all[obs_pos[o]]
    rss = 0.0
    for o in range(n_obs):
        e = block[jy, obs_pos[o]] - fitted[o]
        rss += e * e
    sigma = np.sqrt(rss / chi)
    for a in range(p):
        dev[a] = coef[a] + sigma * dev[a]        # now beta*
    for i in range(n_mis):
        row = gathered[i]
        s = 0.0
        for a in range(p):
            s += dev[a] * row[cols[a]]
        pred[i] = s
    stable_order(fitted, order, normalized, keys, radix_from)
    for o in range(n_obs):
        sorted_fit[o] = fitted[order[o]]
    for i in range(n_mis):
        target = pred[i]
        pos = np.searchsorted(sorted_fit, target)
        start = min(max(pos - donors, 0), max(n_obs - width, 0))
        for j in range(width):
            c = start + j
            if c < n_obs:
                cand[j] = c
                dist[j] = abs(sorted_fit[c] - target)
            else:
                cand[j] = n_obs - 1
                dist[j] = np.inf
            rank[j] = j
        for j in range(1, width):                # stable insertion sort of the candidates
            r = rank[j]
            m = j - 1
            while m >= 0 and dist[rank[m]] > dist[r]:
                rank[m + 1] = rank[m]
                m -= 1
            rank[m + 1] = r
        which = min(int(u[i] * d_eff), d_eff - 1)
        donor = obs_pos[order[cand[rank[which]]]]
        new[i] = block[jy, donor]
    # the Gram follows the imputed column: G[j, :] and G[:, j] by sum change * row, G[j, j] + sum change^2
    for c in range(b):
        shift[c] = 0.0
    squares = 0.0
    for i in range(n_mis):
        row = gathered[i]
        change = new[i] - row[jy]
        squares += change * change
        for c in range(b):
            shift[c] += change * row[c]
    for c in range(b):
        gram[jy, c] += shift[c]
    for c in range(b):
        gram[c, jy] += shift[c]
    gram[jy, jy] += squares
    for i in range(n_mis):
        block[jy, mis_pos[i]] = new[i]
    return True


@numba.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
def run_update(values: np.ndarray, block: np.ndarray, gram: np.ndarray, value_columns: np.ndarray,
               rows: np.ndarray, y_pos: np.ndarray, cols: np.ndarray, cols_start: np.ndarray,
               obs: np.ndarray, obs_start: np.ndarray, mis: np.ndarray, mis_start: np.ndarray,
               z: np.ndarray, chi: np.ndarray, u: np.ndarray, ridge: float, donors: int,
               radix_from: int) -> bool:  # pragma: no cover - compiled
    """The MICE-PMM steps of every item of a scale, for every chain, from the scale's Gram.

    Item ``t`` of the run is block row ``y_pos[t]``; its predictor rows, observed and imputed
    positions are ``cols``, ``obs`` and ``mis`` between ``*_start[t]`` and ``*_start[t + 1]``,
    and so are its normals ``z[k]``, its uniforms ``u[k]`` (by ``mis_start``) and its
    chi-square ``chi[k, t]`` for chain ``k``.  Each chain takes the items in order
    (:func:`_item_step`), then the next chain: the chains are independent, so this gives the
    same draws as item by item over all chains, while one chain's block stays in the core's
    cache across its items instead of every chain's block being read once per item (at 20,000
    clients a block is ~8 MB).  ``block`` (K, b, r) and ``gram`` (K, b, b) are brought up to
    date, and each imputed value is written to ``values[k, value_columns[y_pos[t] - 1],
    rows[mis]]``.  Returns False when an ``X'X`` is not positive definite (the caller raises).
    """
    n_chains = block.shape[0]
    n_items = y_pos.shape[0]
    new = np.empty(mis.shape[0])
    for k in range(n_chains):
        for t in range(n_items):
            m0, m1 = mis_start[t], mis_start[t + 1]
            mis_t = mis[m0:m1]
            jy = y_pos[t]
            if not _item_step(block[k], gram[k], cols[cols_start[t]:cols_start[t + 1]], jy,
                              obs[obs_start[t]:obs_start[t + 1]], mis_t,
                              z[k, cols_start[t]:cols_start[t + 1]], chi[k, t], u[k, m0:m1], ridge, donors,
                              new[m0:m1], radix_from):
                return False
            column = value_columns[jy - 1]
            for i in range(m1 - m0):
                values[k, column, rows[mis_t[i]]] = new[m0 + i]
    return True
