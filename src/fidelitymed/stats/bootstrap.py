"""Vectorized nonparametric bootstrap for linear models: resample counts, moment matrices, batched solves.

A bootstrap of an OLS statistic never needs the resampled rows themselves: every coefficient,
residual sum of squares and standard deviation of a resample follows from its moment matrix
``sum_i w_bi z_i z_i'`` of the data columns ``z = [1, x_1, ..., y]``, where ``w_bi`` counts how
often row ``i`` was drawn into resample ``b``.  For all ``B`` resamples these matrices come from
the matrix product ``W @ O`` of the ``(B, n)`` count matrix with the ``(n, p(p+1)/2)`` row-wise
outer products (one BLAS call per block of 500 resamples), and the
systems are then solved in a batch (a Cholesky factorisation written over the batch axis, reading
the packed triangles in place).  This replaces the per-resample loop of PROCESS (Hayes 2022, Appendix A)
and of most peers by a handful of BLAS calls.

Seeding.  Resample indices are drawn in fixed-size *blocks* of :data:`BLOCK_SIZE` resamples; the
generator of block ``k`` is the keyed child ``("resample", k)`` of the task's
:class:`numpy.random.SeedSequence` (:func:`fidelitymed.seeding.child_sequence`).  A singular
resample is redrawn from the block's own keyed children ``("redraw", k, round)``.  Each block is
one moment product, and blocks are taken in memory-bounded *chunks* (one call of the statistic
each), which threads may process side by side; because no stream depends on the chunking, and the
moment products have the same shape whatever the chunk (BLAS may round a column differently in a
product of another width), results are bit-identical for one seed whatever the chunk size and the
number of threads.  (Not necessarily across BLAS builds.)

Several models on the same resamples.  The streams depend on the seed and ``n`` only, so models
of the same cases bootstrapped with one seed resample the same cases.
:func:`start_shared_bootstrap` uses that for a group of models (``fidelitymed.mediate_many``):
each block is drawn, counted and multiplied once, over the union of the models' columns, and each
model's statistic reads its moments through its own rows of the union's packed triangle.

References
----------
Efron, B., & Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*. Chapman & Hall
(percentile, BC and BCa intervals, jackknife acceleration; ch. 13-14).
Hayes, A. F. (2022). *Introduction to Mediation, Moderation, and Conditional Process Analysis*
(3rd ed.). Guilford (PROCESS v4: resampling, rejection of singular resamples, order-statistic
percentile rule).
Golub, G. H., & Van Loan, C. F. (2013). *Matrix Computations* (4th ed.), sec. 4.2 (Cholesky)
and sec. 5.3 (normal equations via the Cholesky factor of the augmented cross-product matrix).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np
from scipy import special

from .. import blas
from ..errors import FidelityMedError
from ..heap import retain_freed_memory
from ..seeding import SeedLike, child_sequence, root_sequence

__all__ = [
    "BLOCK_SIZE",
    "TOLERANCE",
    "BootstrapRun",
    "as_packed",
    "bc_interval",
    "bca_interval",
    "block_generator",
    "index_counts",
    "jackknife_moments",
    "moment_matrices",
    "moment_triangles",
    "percentile_interval",
    "resample_indices",
    "run_bootstrap",
    "start_bootstrap",
    "start_shared_bootstrap",
    "PendingBootstrap",
    "solve_from_moments",
    "triangle_index",
]

#: Resamples per RNG block.  Fixed, so a seed gives the same draws for any chunk size.
BLOCK_SIZE = 500

#: Smallest accepted Cholesky pivot ratio ``d_j / S_jj`` (the share of a column's second moment not
#: explained by the columns before it).  A resample with a smaller ratio is singular or so
#: ill-conditioned that its coefficients would keep fewer than ~6 significant digits.  It plays
#: the role of PROCESS's "eigenvalue of X'X <= 2e-12" but does not depend on the units of the data.
TOLERANCE = 1e-10

# Target number of float64 elements (~32 MB) of the packed moments (T x chunk) and of the statistic's
# batch-last work arrays (about 2T x chunk for a Cholesky factor) per processing chunk.
_CHUNK_ELEMENTS = 1 << 22
# With several models on one chunk (mediate_many), each of them reads the chunk's packed moments
# again: at most this many elements of them (2 MB, within a core's cache) per chunk. The demo's 24
# models (T = 595) then take one RNG block per chunk instead of four: 5-8 % faster per data set in
# interleaved timings, alone and with two processes at once (one mediate, a single reader, is
# faster with the larger chunk: at n = 3,110, 82 ms against 93 ms with chunks of a quarter).
_SHARED_CHUNK_ELEMENTS = 1 << 18


# --------------------------------------------------------------------------- resampling plans


def _index_draws(rng: np.random.Generator, count: int, n: int) -> np.ndarray:
    """``count`` row indices in ``[0, n)`` as uint64: ``floor(u * n)`` for 32-bit uniforms ``u``.

    Each raw 64-bit output of the bit generator gives two 32-bit words ``w``; the index is
    ``(w * n) >> 32`` (Lemire's multiply-shift without the rejection step).  A row's probability
    then deviates from ``1/n`` by less than ``n / 2**32`` relative -- the granularity of PROCESS's
    ``trunc(runif(n) * n)`` with R's 32-bit uniforms -- and half the random bits of a double are
    needed, which is the largest cost of a bootstrap after the moment product.
    """
    raw = rng.bit_generator.random_raw((count + 1) // 2)
    x = np.multiply(raw.view(np.uint32)[:count], np.uint64(n), dtype=np.uint64)  # widen and scale in one pass
    x >>= np.uint64(32)
    return x


def resample_indices(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """Row indices of ``n_boot`` nonparametric bootstrap resamples of ``n`` rows.

    Each index is ``floor(u * n)`` with ``u`` a 32-bit uniform on [0, 1) -- as PROCESS's
    ``trunc(runif(n) * n)`` (Hayes 2022) -- drawn for all resamples at once (see
    :func:`_index_draws`).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    n : int
        Number of rows in the data (below 2**32).
    n_boot : int
        Number of resamples.

    Returns
    -------
    numpy.ndarray of int, shape (n_boot, n)
        ``indices[b]`` lists the rows of resample ``b`` (with repetitions).
    """
    if n < 1 or n_boot < 0 or n >= 2 ** 32:
        raise ValueError(f"need 1 <= n < 2**32 and n_boot >= 0; got n={n}, n_boot={n_boot}")
    return _index_draws(rng, n_boot * n, n).view(np.int64).reshape(n_boot, n).astype(np.intp, copy=False)


def index_counts(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each row occurs in each resample (the bootstrap weight matrix).

    Computed with one :func:`numpy.bincount` over indices offset by ``n * b``, without a loop over
    resamples.

    Parameters
    ----------
    indices : numpy.ndarray of int, shape (..., n_draws)
        Row indices per resample, values in ``[0, n)``; leading axes are batch axes.
    n : int
        Number of rows.

    Returns
    -------
    numpy.ndarray of float64, shape (..., n)
        ``counts[..., b, i]`` = number of times row ``i`` was drawn into resample ``b``.
    """
    indices = np.asarray(indices)
    lead = indices.shape[:-1]
    flat = indices.reshape(-1, indices.shape[-1]) if indices.ndim else indices.reshape(1, 1)
    n_rows = flat.shape[0]
    offsets = (np.arange(n_rows, dtype=np.intp) * n)[:, None]
    counts = np.bincount((flat + offsets).ravel(), minlength=n_rows * n)
    return counts.reshape(*lead, n).astype(np.float64)


def block_generator(seed: SeedLike, block: int, kind: str = "resample", round: int | None = None) -> np.random.Generator:
    """The generator of RNG block ``block``.

    ``kind="resample"`` draws the block's resamples; ``kind="redraw"`` with ``round`` r draws the
    replacements of its singular resamples in redraw round r.  Keyed children of ``seed``
    (:func:`fidelitymed.seeding.child_sequence`), so block ``k`` draws the same indices whatever
    else is computed, in whatever order.
    """
    key = (kind, int(block)) if round is None else (kind, int(block), int(round))
    return np.random.Generator(np.random.PCG64(child_sequence(seed, key)))


# --------------------------------------------------------------------------- moment matrices


def triangle_index(p: int) -> np.ndarray:
    """``(p, p)`` map from matrix position to the column of the packed upper triangle.

    The packed triangle lists ``(i, j)``, ``i <= j``, in the order of :func:`numpy.triu_indices`.
    """
    rows, cols = np.triu_indices(p)
    index = np.empty((p, p), dtype=np.intp)
    index[rows, cols] = np.arange(rows.size)
    index[cols, rows] = np.arange(rows.size)
    return index


def _row_outer_products(Z: np.ndarray) -> np.ndarray:
    """Row-wise products ``z_ij * z_ik`` for ``j <= k``: shape (..., n, p(p+1)/2)."""
    rows, cols = np.triu_indices(Z.shape[-1])
    return Z[..., rows] * Z[..., cols]


def _column_outer_products(Z: np.ndarray) -> np.ndarray:
    """:func:`_row_outer_products` of a 2-D ``Z``, transposed and C-contiguous: shape (p(p+1)/2, n).

    Written one row of the triangle's blocks at a time, so no (n, p(p+1)/2) temporary is held
    beside it (at 20,000 cases and a 34-column union, two of 95 MB).  The same products, bit for bit.
    """
    ZT = np.ascontiguousarray(Z.T)
    p, n = ZT.shape
    out = np.empty((p * (p + 1) // 2, n))
    start = 0
    for i in range(p):  # triu_indices order: (i, i), (i, i + 1), ..., (i, p - 1)
        np.multiply(ZT[i], ZT[i:], out=out[start:start + p - i])
        start += p - i
    return out


def moment_triangles(Z: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Packed upper triangles of the weighted moment matrices ``sum_i w_bi z_i z_i'``.

    Parameters
    ----------
    Z : numpy.ndarray, shape (n, p) or (R, n, p)
        Data columns (include a column of ones for an intercept).  Centre and scale them by
        full-sample statistics first so the normal equations stay well conditioned.
    weights : numpy.ndarray, shape (B, n) or (R, B, n)
        Resample counts (or any row weights), e.g. from :func:`index_counts`.

    Returns
    -------
    numpy.ndarray, shape (B, p(p+1)/2) or (R, B, p(p+1)/2)
        One matrix product ``weights @ outer`` (batched over ``R``); see :func:`triangle_index`.
    """
    Z = np.asarray(Z, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if Z.shape[-2] != weights.shape[-1]:
        raise ValueError(f"Z has {Z.shape[-2]} rows but weights have {weights.shape[-1]} columns")
    return np.matmul(weights, _row_outer_products(Z))


def moment_matrices(Z: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted moment (cross-product) matrices ``sum_i w_bi z_i z_i'`` of all resamples.

    Parameters
    ----------
    Z : numpy.ndarray, shape (n, p) or (R, n, p)
        Data columns; with a batch axis ``R`` (e.g. simulation replicates), ``weights`` must
        carry the same leading axis.
    weights : numpy.ndarray, shape (B, n) or (R, B, n)
        Resample counts or weights.

    Returns
    -------
    numpy.ndarray, shape (B, p, p) or (R, B, p, p)
        Symmetric moment matrices, from one matrix product over the upper triangle.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> Z = np.column_stack([np.ones(5), rng.normal(size=5)])
    >>> counts = index_counts(resample_indices(rng, 5, 3), 5)
    >>> moment_matrices(Z, counts).shape
    (3, 2, 2)
    """
    p = np.asarray(Z).shape[-1]
    return moment_triangles(Z, weights)[..., triangle_index(p)]


def jackknife_moments(Z: np.ndarray) -> np.ndarray:
    """Moment matrices of the ``n`` leave-one-out samples: full moments minus each row's outer product.

    Returns
    -------
    numpy.ndarray, shape (n, p, p)
    """
    Z = np.asarray(Z, dtype=np.float64)
    full = Z.T @ Z
    return full[None, :, :] - Z[:, :, None] * Z[:, None, :]


# --------------------------------------------------------------------------- batched solves


def _cholesky_batch(S: np.ndarray, tol: float, n_check: int | None = None,
                    index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cholesky factors of ``q x q`` matrices stored batch-last.

    ``S`` has shape (q, q, N); or, with ``index`` (a (q, q) map such as :func:`triangle_index`),
    ``S`` is packed storage (T, N) and element ``(i, j)`` is row ``index[i, j]`` -- the moment
    triangles come out of the matrix product in that form, so no square copy is made.

    Left-looking column Cholesky over the batch axis, compiled
    (:func:`fidelitymed.stats._kernels.cholesky_packed`; it releases the GIL, so threads factor
    chunks side by side).  Returns ``L`` (q, q, N; the upper triangle is left uninitialised) and
    ``ok`` (N,) where ``ok`` is False when a pivot ratio ``d_j / S_jj`` of one of the first
    ``n_check`` columns (all by default) falls to ``tol`` or below (column ``j`` lies, up to
    ``tol``, in the span of the columns before it).  Rejected systems get a placeholder pivot so
    that no NaN or warning arises; their factor is meaningless.
    """
    from ._kernels import cholesky_packed

    if index is None:
        q, _, N = S.shape
        packed = np.ascontiguousarray(S, dtype=np.float64).reshape(q * q, N)
        index = np.arange(q * q).reshape(q, q)
    else:
        q = index.shape[0]
        packed = np.ascontiguousarray(S, dtype=np.float64)
        N = packed.shape[-1]
    n_check = q if n_check is None else n_check
    L = np.empty((q, q, N))  # only the lower triangle is written and read
    ok = np.empty(N, dtype=bool)
    cholesky_packed(packed, np.ascontiguousarray(index, dtype=np.int64), float(tol), int(n_check), L, ok)
    return L, ok


def solve_from_moments(
    moments: np.ndarray,
    predictors: Sequence[int],
    response: int,
    *,
    intercept: int | None = 0,
    tol: float = TOLERANCE,
) -> tuple[np.ndarray, np.ndarray]:
    """OLS coefficients of column ``response`` on columns ``predictors``, from moment matrices.

    Factors the augmented matrix ``[[X'X, X'y], [y'X, y'y]]`` of every resample by a batched
    Cholesky decomposition and back-substitutes (Golub & Van Loan 2013, sec. 5.3).

    Parameters
    ----------
    moments : numpy.ndarray, shape (..., p, p)
        Moment matrices, e.g. from :func:`moment_matrices`; any leading batch axes.
    predictors : sequence of int
        Columns of the regressors (include the constant column for an intercept).
    response : int
        Column of the dependent variable.
    intercept : int or None, default 0
        Column holding the constant 1; used to reject resamples in which the response has zero
        variance (as PROCESS does).  ``None`` skips that check.
    tol : float, default :data:`TOLERANCE`
        Scale-free singularity threshold on the Cholesky pivot ratios of the regressors (the
        "tolerance" ``1 - R^2`` of each regressor on the ones before it, relative to its
        uncentred second moment).

    Returns
    -------
    coef : numpy.ndarray, shape (..., len(predictors))
        Coefficients in the order of ``predictors``; NaN where ``ok`` is False.
    ok : numpy.ndarray of bool, shape (...)
        False for singular or ill-conditioned systems and for a constant response.
    """
    moments = np.asarray(moments, dtype=np.float64)
    predictors = [int(j) for j in predictors]
    k = len(predictors)
    order = predictors + [int(response)]
    lead = moments.shape[:-2]
    sub = moments[..., order, :][..., :, order].reshape(-1, k + 1, k + 1)
    S = np.ascontiguousarray(np.moveaxis(sub, 0, -1))  # (q, q, N)
    L, ok = _cholesky_batch(S[:k, :k, :], tol)
    # Augmented last row: L11 l = X'y; back-substitution of L11' beta = l.
    rhs = S[:k, k, :].copy()
    for j in range(k):
        if j:
            rhs[j] -= np.einsum("kn,kn->n", L[j, :j, :], rhs[:j])
        rhs[j] /= L[j, j, :]
    beta = np.empty_like(rhs)
    for j in range(k - 1, -1, -1):
        acc = rhs[j].copy()
        if j + 1 < k:
            acc -= np.einsum("kn,kn->n", L[j + 1 :, j, :], beta[j + 1 :])
        beta[j] = acc / L[j, j, :]
    if intercept is not None:
        m = moments.reshape(-1, *moments.shape[-2:])
        n_w = m[:, intercept, intercept]
        syy = m[:, response, response]
        centred = syy - m[:, intercept, response] ** 2 / np.where(n_w > 0, n_w, 1.0)
        ok &= centred > tol * syy
    ok &= np.all(np.isfinite(beta), axis=0)
    coef = np.where(ok, beta, np.nan).T.reshape(*lead, k)
    return coef, ok.reshape(lead)


# --------------------------------------------------------------------------- the driver


@dataclass(frozen=True)
class BootstrapRun:
    """Draws of a bootstrap statistic.

    Attributes
    ----------
    draws : numpy.ndarray, shape (n_boot, q)
        One row per accepted resample, in resample order.
    n_failed : int
        Resamples rejected as singular and redrawn.
    indices : numpy.ndarray or None
        The row indices actually used, shape (n_boot, n), if requested (tests and audits).
    """

    draws: np.ndarray
    n_failed: int
    indices: np.ndarray | None = None


Statistic = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def as_packed(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """View batch-last square matrices (q, q, N) as packed storage ``(q*q, N)`` with its index map."""
    q = S.shape[0]
    return np.ascontiguousarray(S).reshape(q * q, -1), np.arange(q * q).reshape(q, q)


def _block_draws(seed: np.random.SeedSequence, block: int, size: int, n: int, kind: str = "resample",
                 round: int | None = None) -> np.ndarray:
    """Flat uint64 row indices of one RNG block of ``size`` resamples (as :func:`resample_indices`
    gives them for the block's generator)."""
    return _index_draws(block_generator(seed, block, kind, round), size * n, n)


def _block_counts(flat: np.ndarray, n: int, out: np.ndarray) -> None:
    """Resample counts (b, n) into ``out`` from one block's flat indices (overwritten).

    :func:`index_counts` fused with the draw: the offsets ``n * b`` are added in place.
    """
    b = out.shape[0]
    flat.reshape(b, n)[...] += (np.arange(b, dtype=np.uint64) * np.uint64(n))[:, None]
    out[...] = np.bincount(flat.view(np.int64), minlength=b * n).reshape(b, n)


#: Indices drawn and counted per step of a block (about 1 MB of 32-bit words): a whole block at
#: n = 3,110 is 1.6 million indices, and drawing it in one go costs cache misses and page faults of
#: the fresh arrays; at n = 311 a block is a few steps.
_STEP_ELEMENTS = 1 << 18


def _draw_block_counts(seed: np.random.SeedSequence, block: int, size: int, n: int, out: np.ndarray,
                       indices: np.ndarray | None = None) -> None:
    """Counts (size, n) of RNG block ``block`` into ``out`` (and its indices into ``indices``).

    The same draws as :func:`_block_draws` (so as :func:`resample_indices` on the block's
    generator), taken in steps of an even number of resamples: the bit generator's raw words are
    consumed in the same order, so the stream does not depend on the step.  Each step's words are
    scaled to indices and counted by one compiled pass (:func:`fidelitymed.stats._kernels.count_draws`)
    while they are in cache.
    """
    from ._kernels import count_draws

    bitgen = block_generator(seed, block).bit_generator
    step = max(2, (_STEP_ELEMENTS // n) & ~1)  # even, so every step but the last uses whole raw words
    no_indices = np.empty((0, n), dtype=np.intp)
    for s in range(0, size, step):
        m = min(step, size - s)
        words = bitgen.random_raw((m * n + 1) // 2).view(np.uint32)
        count_draws(words, n, out[s:s + m], no_indices if indices is None else indices[s:s + m])


def _packed_moments(outer_T: np.ndarray, flat: np.ndarray, n: int) -> np.ndarray:
    """Packed moment triangles (T, b) of the resamples given by flat indices (b * n,)."""
    counts = np.empty((flat.size // n, n))
    _block_counts(flat, n, counts)
    return outer_T @ counts.T  # (T, b): each row contiguous over resamples


def start_bootstrap(
    Z: np.ndarray,
    statistic: Statistic,
    n_boot: int,
    seed: SeedLike,
    *,
    chunk_size: int | None = None,
    return_indices: bool = False,
    with_counts: bool = False,
    threads: int | None = None,
) -> PendingBootstrap:
    """Start a bootstrap of a statistic of the moment matrix of ``Z`` (see :func:`run_bootstrap`).

    With more than one thread the chunks are submitted to worker threads and this returns at once,
    so the caller can fit its point estimates meanwhile; :meth:`PendingBootstrap.result` waits.
    With one thread the bootstrap runs when the result is asked for.  Same arguments as
    :func:`run_bootstrap`.
    """
    Z = np.asarray(Z, dtype=np.float64)
    return start_shared_bootstrap(Z, [(range(Z.shape[1]), statistic)], n_boot, seed, chunk_size=chunk_size,
                                  return_indices=return_indices, with_counts=with_counts, threads=threads)


def start_shared_bootstrap(
    Z: np.ndarray,
    models: Sequence[tuple[Sequence[int], Statistic]],
    n_boot: int,
    seed: SeedLike,
    *,
    chunk_size: int | None = None,
    return_indices: bool = False,
    with_counts: bool = False,
    threads: int | None = None,
) -> PendingBootstrap:
    """Bootstrap several statistics, each of the moments of some columns of ``Z``, on the same resamples.

    Every model ``(columns, statistic)`` gets exactly the resamples that :func:`start_bootstrap`
    of ``Z[:, columns]`` with the same ``seed`` would give it (the streams depend on the seed and
    ``n`` only), redraws of its own singular resamples included.  The moments of all of them come
    from one product per block over the union ``Z``: for models that share most of their columns
    (one data set, several outcomes or exposure windows) that is a fraction of the arithmetic of
    one product per model, and the resamples are drawn and counted once.  Each statistic reads its
    moments in place, through the rows of the union's packed triangle that its columns select.

    Parameters
    ----------
    Z : numpy.ndarray, shape (n, p)
        The union of the models' data columns, centred and scaled as each model's statistic expects.
    models : sequence of (columns, statistic)
        Positions in ``Z`` of a model's columns, in the order its statistic reads them (see
        :func:`run_bootstrap` for the statistic's signature), and the statistic.
    n_boot, seed, chunk_size, with_counts, threads
        As in :func:`run_bootstrap`; the chunk size is taken from the union's triangle.
    return_indices : bool, default False
        As in :func:`run_bootstrap`; with one model only (redraws make the indices per model).

    Returns
    -------
    PendingBootstrap
        :meth:`PendingBootstrap.results` gives one :class:`BootstrapRun` per model, in order.
    """
    retain_freed_memory()  # the work arrays below are freed and allocated again on every call
    Z = np.asarray(Z, dtype=np.float64)
    n, p = Z.shape
    if return_indices and len(models) != 1:
        raise ValueError("return_indices needs a single model: redraws make the indices per model")
    seed = root_sequence(seed)
    outer_T = _column_outer_products(Z)
    tri = triangle_index(p)
    indexed = [(tri[np.ix_(np.asarray(cols, dtype=np.intp), np.asarray(cols, dtype=np.intp))], statistic)
               for cols, statistic in models]
    # One moment product per RNG block, written into the chunk's packed moments: BLAS may round a
    # column differently in a product of another width (kernel edges, small-matrix paths), so
    # products of fixed shape are what makes the result bit-identical across chunk sizes and
    # thread counts.  A (171 x 311) @ (311 x 500) product runs within 10 % of the full BLAS rate.
    if chunk_size is None:
        # bound the packed moments (T x chunk) and the statistic's factor (~2T x chunk) held at once
        chunk_size = _CHUNK_ELEMENTS // (3 * outer_T.shape[0])
        if len(models) > 1:
            chunk_size = min(chunk_size, _SHARED_CHUNK_ELEMENTS // outer_T.shape[0])
    blocks_per_chunk = max(1, int(chunk_size) // BLOCK_SIZE)
    n_blocks = -(-n_boot // BLOCK_SIZE)
    threads = max(1, blas.resample_threads() if threads is None else int(threads))
    if threads > 1:  # at least one chunk per thread
        blocks_per_chunk = min(blocks_per_chunk, -(-n_blocks // threads))
    all_idx = np.empty((n_boot, n), dtype=np.intp) if return_indices else None

    def chunk(first: int) -> list[tuple[np.ndarray, int]]:
        return _bootstrap_chunk(outer_T, indexed, seed, n, n_boot,
                                range(first, min(n_blocks, first + blocks_per_chunk)), with_counts, all_idx)

    starts = range(0, n_blocks, blocks_per_chunk)
    return PendingBootstrap(chunk, starts, all_idx, threads=min(threads, len(starts)), n_models=len(models))


def run_bootstrap(
    Z: np.ndarray,
    statistic: Statistic,
    n_boot: int,
    seed: SeedLike,
    *,
    chunk_size: int | None = None,
    return_indices: bool = False,
    with_counts: bool = False,
    threads: int | None = None,
) -> BootstrapRun:
    """Bootstrap a statistic of the moment matrix of ``Z`` without a loop over resamples.

    Parameters
    ----------
    Z : numpy.ndarray, shape (n, p)
        Data columns (ones column included), already centred and scaled by the caller.
    statistic : callable
        ``statistic(packed, index) -> (values, ok)``: ``packed`` (T, b) holds the moment matrices
        of a batch of ``b`` resamples in packed storage, element ``(i, j)`` in row
        ``index[i, j]`` (``index`` = :func:`triangle_index` of ``p``); ``values`` has shape (b, q)
        and ``ok`` (b,) is False for a resample that must be redrawn.
    n_boot : int
        Number of accepted resamples.
    seed : int, numpy.random.SeedSequence or None
        Root of the keyed block streams (see the module docstring).
    chunk_size : int, optional
        Resamples per processing chunk (one call of ``statistic``), rounded down to whole RNG
        blocks (at least one); by default about :data:`_CHUNK_ELEMENTS` elements of the packed
        moments and the statistic's work arrays (3T x chunk), and no more than an equal share of
        the blocks per thread.  Counts exist for one block at a time.  Does not change the result.
    return_indices : bool, default False
        Also return the (n_boot, n) indices used (memory-heavy; for tests).
    with_counts : bool, default False
        Call ``statistic(packed, index, counts)`` with the chunk's (b, n) resample counts too (for
        statistics that are not functions of the moments, e.g. a weighted logistic fit).  The
        counts of the whole chunk are then held at once: pass a ``chunk_size`` that bounds them.
    threads : int, optional
        Threads that process chunks side by side (each on one BLAS thread); by default
        :func:`fidelitymed.blas.resample_threads` (the available cores, or 1 inside a task of
        :mod:`fidelitymed.parallel`, whose workers already fill the cores).  Does not change the
        result.

    Returns
    -------
    BootstrapRun

    Raises
    ------
    FidelityMedError
        If a block needs more redraws than it has resamples (PROCESS's limit of ``2 * boot``
        attempts, applied per block): the data are too sparse for a bootstrap, e.g. a dummy
        with one or two cases.
    """
    return start_bootstrap(Z, statistic, n_boot, seed, chunk_size=chunk_size, return_indices=return_indices,
                           with_counts=with_counts, threads=threads).result()


_pool_lock = threading.Lock()
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, threads, pool)


def _thread_pool(threads: int) -> ThreadPoolExecutor:
    """The process's bootstrap threads (kept between calls: starting threads costs ~0.1 ms per call).

    A child made by ``fork`` inherits the object but not its threads, so the pool is keyed by pid.
    """
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] < threads:
            if _pool is not None and _pool[0] == os.getpid():
                _pool[2].shutdown(wait=False)  # a wider pool replaces it; running chunks finish
            _pool = (os.getpid(), threads, ThreadPoolExecutor(threads, thread_name_prefix="fidelitymed-bootstrap"))
        return _pool[2]


class PendingBootstrap:
    """A bootstrap in progress: :meth:`result` waits for its chunks and collects the draws.

    Each chunk's draws, products and statistic are the same whichever thread computes them (one
    BLAS thread each, keyed streams per block), so threads change the speed only.  While chunks
    run on worker threads, every BLAS library stays on one thread (:func:`fidelitymed.blas.single_thread`).
    """

    def __init__(self, chunk: Callable[[int], list[tuple[np.ndarray, int]]], starts: range,
                 indices: np.ndarray | None, threads: int, n_models: int = 1):
        self._chunk = chunk
        self._starts = starts
        self._indices = indices
        self._n_models = n_models
        self._futures = None
        self._pin = None
        if threads > 1:
            self._pin = blas.single_thread()
            self._pin.__enter__()
            pool = _thread_pool(threads)
            self._futures = [pool.submit(chunk, first) for first in starts]

    def result(self) -> BootstrapRun:
        """Wait for every chunk (re-raising the first error) and return the :class:`BootstrapRun`."""
        if self._n_models != 1:
            raise ValueError(f"this bootstrap has {self._n_models} models: use results()")
        return self.results()[0]

    def results(self) -> list[BootstrapRun]:
        """Wait for every chunk and return one :class:`BootstrapRun` per model, in order."""
        if self._futures is None:
            with blas.single_thread():
                parts = [self._chunk(first) for first in self._starts]
        else:
            try:
                parts = [future.result() for future in self._futures]
            finally:
                self.cancel()
        if not parts:
            return [BootstrapRun(draws=np.empty((0, 0)), n_failed=0, indices=self._indices)
                    for _ in range(self._n_models)]
        runs = []
        for j in range(self._n_models):
            model_parts = [part[j] for part in parts]
            out = model_parts[0][0] if len(parts) == 1 else np.concatenate([values for values, _ in model_parts])
            runs.append(BootstrapRun(draws=out, n_failed=int(sum(failed for _, failed in model_parts)),
                                     indices=self._indices))
        return runs

    def cancel(self) -> None:
        """Drop chunks not yet started, wait for the running ones and release the BLAS pin."""
        if self._futures is not None:
            for future in self._futures:
                future.cancel()
            wait(self._futures)
        if self._pin is not None:
            pin, self._pin = self._pin, None
            pin.__exit__(None, None, None)


def _bootstrap_chunk(outer_T: np.ndarray, models: Sequence[tuple[np.ndarray, Statistic]],
                     seed: np.random.SeedSequence, n: int, n_boot: int, blocks: range, with_counts: bool,
                     all_idx: np.ndarray | None) -> list[tuple[np.ndarray, int]]:
    """Per model (``(index, statistic)``): draws and number of redrawn resamples of the RNG blocks ``blocks``."""
    sizes = [min(BLOCK_SIZE, n_boot - k * BLOCK_SIZE) for k in blocks]
    lo = blocks.start * BLOCK_SIZE
    total = sum(sizes)
    packed = np.empty((outer_T.shape[0], total))  # (T, total): rows contiguous over resamples
    # one block's counts at a time (the whole chunk's when the statistic reads them)
    chunk_counts = np.empty((total, n)) if with_counts else None
    counts = np.empty((min(total, BLOCK_SIZE), n)) if not with_counts else None
    start = 0
    for k, size in zip(blocks, sizes):
        buf = counts[:size] if chunk_counts is None else chunk_counts[start:start + size]
        _draw_block_counts(seed, k, size, n, buf, None if all_idx is None else all_idx[lo + start:lo + start + size])
        np.matmul(outer_T, buf.T, out=packed[:, start:start + size])
        start += size
    # Freed before the statistic allocates its factor, so the heap can reuse the memory: a
    # larger peak makes malloc hand it back to the OS at the end of each call, and the next
    # call pays thousands of page faults (measured: ~4 ms of a 20 ms call at n = 311).  ``buf``
    # is a view of it: it goes too (at 20,000 cases the block's counts are 80 MB).
    del counts, buf
    out = []
    for index, statistic in models:
        if with_counts:
            values, ok = statistic(packed, index, chunk_counts)
        else:
            values, ok = statistic(packed, index)
        values = np.array(values, dtype=np.float64)
        n_failed = 0 if ok.all() else _redraw(outer_T, index, statistic, seed, n, blocks, sizes, lo, values, ok,
                                              with_counts, all_idx)
        out.append((values, n_failed))
    return out


def _redraw(outer_T: np.ndarray, index: np.ndarray, statistic: Statistic, seed: np.random.SeedSequence, n: int,
            blocks: range, sizes: list[int], lo: int, values: np.ndarray, ok: np.ndarray, with_counts: bool,
            all_idx: np.ndarray | None) -> int:
    """Replace a model's singular resamples in ``values`` (in place); returns how many were redrawn.

    Per block from that block's own keyed stream, so chunking cannot matter.
    """
    n_failed = 0
    start = 0
    for k, size in zip(blocks, sizes):
        bad = np.flatnonzero(~ok[start:start + size]) + start
        attempt = 0
        attempts = 0
        while bad.size:
            attempts += bad.size
            n_failed += bad.size
            if attempts > size:
                raise FidelityMedError(
                    f"bootstrap: more than half of the resamples in a block were singular "
                    f"({attempts} rejections in {size} resamples); a predictor is (nearly) "
                    "constant in many resamples, e.g. a dummy with very few cases")
            # one keyed stream per (block, round): the redraws do not depend on chunking
            new = _block_draws(seed, k, bad.size, n, "redraw", attempt)
            attempt += 1
            if all_idx is not None:
                new_idx = new.reshape(bad.size, n).astype(np.intp)
            if with_counts:
                new_counts = np.empty((bad.size, n))
                _block_counts(new.copy(), n, new_counts)
                new_vals, new_ok = statistic(outer_T @ new_counts.T, index, new_counts)
            else:
                new_vals, new_ok = statistic(_packed_moments(outer_T, new, n), index)
            values[bad[new_ok]] = new_vals[new_ok]
            if all_idx is not None:
                all_idx[lo + bad[new_ok]] = new_idx[new_ok]
            bad = bad[~new_ok]
        start += size
    return n_failed


# --------------------------------------------------------------------------- intervals


def _alpha(conf: float) -> float:
    if not 0.0 < conf < 1.0:
        raise ValueError(f"conf must lie strictly between 0 and 1; got {conf!r}")
    return 1.0 - conf


def _process_order_stats(B: int, lower_p: np.ndarray, upper_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PROCESS's 0-based order statistics: ``round(B*p_lo)`` and ``trunc(B*p_hi) + 1`` (1-based),
    clamped to ``1..B`` (PROCESS instead raises B; we never change the user's B)."""
    lo = np.rint(B * lower_p).astype(np.intp)  # R's round(): half to even, as np.rint
    hi = np.trunc(B * upper_p).astype(np.intp) + 1
    return np.clip(lo, 1, B) - 1, np.clip(hi, 1, B) - 1


def percentile_interval(draws: np.ndarray, conf: float = 0.95, rule: str = "linear") -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap confidence limits.

    Parameters
    ----------
    draws : numpy.ndarray, shape (B,) or (B, q)
        Bootstrap draws; columns are separate statistics.
    conf : float, default 0.95
        Confidence level in (0, 1).
    rule : {"linear", "process"}
        ``"linear"``: the ``(1-conf)/2`` and ``(1+conf)/2`` quantiles with linear interpolation
        between order statistics (:func:`numpy.quantile`, Hyndman & Fan type 7).
        ``"process"``: PROCESS v4's order statistics (Hayes 2022): lower = the
        ``round(B*(1-c)/2)``-th, upper = the ``trunc(B*c + B*(1-c)/2) + 1``-th smallest draw
        (``c`` = conf), e.g. the 125th and 4876th of 5,000 at 95%.  The level is formed as
        PROCESS forms it from a percentage, so the floating-point rounding matches too.

    Returns
    -------
    (lower, upper) : numpy.ndarray
        Scalars (0-d) for 1-D draws, else shape (q,).
    """
    alpha = _alpha(conf)
    draws = np.asarray(draws, dtype=np.float64)
    if rule == "linear":
        q = np.quantile(draws, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0, method="linear")
        return q[0], q[1]
    if rule == "process":
        B = draws.shape[0]
        pct = conf * 100.0
        tail = (1.0 - pct / 100.0) / 2.0
        lo, hi = _process_order_stats(B, np.asarray(tail), np.asarray(pct / 100.0 + tail))
        s = np.sort(draws, axis=0)
        return s[lo], s[hi]
    raise ValueError(f"rule must be 'linear' or 'process'; got {rule!r}")


def _quantile_at(draws: np.ndarray, probs_lo: np.ndarray, probs_hi: np.ndarray, rule: str):
    """Per-column quantiles at column-specific levels."""
    draws = draws.reshape(draws.shape[0], -1)
    lo = np.empty(draws.shape[1])
    hi = np.empty(draws.shape[1])
    s = np.sort(draws, axis=0)
    B = draws.shape[0]
    for j in range(draws.shape[1]):  # loop over statistics (a handful), not resamples
        if rule == "linear":
            lo[j], hi[j] = np.quantile(s[:, j], [probs_lo[j], probs_hi[j]], method="linear")
        elif rule == "process":
            i_lo, i_hi = _process_order_stats(B, probs_lo[j], probs_hi[j])
            lo[j], hi[j] = s[i_lo, j], s[i_hi, j]
        else:
            raise ValueError(f"rule must be 'linear' or 'process'; got {rule!r}")
    return lo, hi


def _bias_z0(draws: np.ndarray, estimate: np.ndarray, ties: str) -> np.ndarray:
    if ties == "split":  # Efron & Tibshirani (1993, eq. 14.14) with ties counted half, as scipy does
        share = ((draws < estimate).sum(axis=0) + (draws <= estimate).sum(axis=0)) / (2.0 * draws.shape[0])
    else:  # PROCESS: share of draws strictly below the estimate
        share = (draws < estimate).mean(axis=0)
    return special.ndtri(share)


def bc_interval(draws: np.ndarray, estimate, conf: float = 0.95, rule: str = "linear"):
    """Bias-corrected (BC) percentile interval, without acceleration (Efron & Tibshirani 1993, 14.3).

    ``z0 = Phi^-1(share of draws below the estimate)``; the limits are the draws' quantiles at
    ``Phi(2 z0 -+ z_{1-alpha/2})``.  With ``rule="process"`` the share counts draws strictly below
    the estimate and the order statistics are PROCESS's ``round(B p_lo)`` and ``trunc(B p_hi)+1``.

    Returns
    -------
    (lower, upper) : numpy.ndarray
    """
    alpha = _alpha(conf)
    draws = np.asarray(draws, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    z0 = np.atleast_1d(_bias_z0(draws, est, "strict" if rule == "process" else "split"))
    z = special.ndtri(1.0 - alpha / 2.0)
    lo, hi = _quantile_at(draws, special.ndtr(2 * z0 - z), special.ndtr(2 * z0 + z), rule)
    shape = np.broadcast_shapes(draws.shape[1:], est.shape)
    return lo.reshape(shape), hi.reshape(shape)


def bca_interval(draws: np.ndarray, estimate, jackknife_values: np.ndarray, conf: float = 0.95,
                 rule: str = "linear"):
    """Bias-corrected and accelerated (BCa) bootstrap interval (Efron 1987; Efron & Tibshirani 1993, 14.3).

    Parameters
    ----------
    draws : numpy.ndarray, shape (B,) or (B, q)
        Bootstrap draws.
    estimate : float or numpy.ndarray, shape (q,)
        Full-sample estimate.
    jackknife_values : numpy.ndarray, shape (n,) or (n, q)
        Leave-one-out estimates; the acceleration is
        ``a = sum(d^3) / (6 * sum(d^2)^1.5)`` with ``d = mean(jack) - jack``.
    conf : float, default 0.95
    rule : {"linear", "process"}
        How a level is turned into a limit (see :func:`percentile_interval`).

    Returns
    -------
    (lower, upper) : numpy.ndarray
        Limits at ``Phi(z0 + (z0 + z_q) / (1 - a (z0 + z_q)))`` for ``z_q = -+ z_{1-alpha/2}``;
        ``z0`` counts ties as half (as :func:`scipy.stats.bootstrap` does).
    """
    alpha = _alpha(conf)
    draws = np.asarray(draws, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    jack = np.asarray(jackknife_values, dtype=np.float64)
    z0 = np.atleast_1d(_bias_z0(draws, est, "split"))
    d = jack.mean(axis=0) - jack
    num = (d ** 3).sum(axis=0)
    den = 6.0 * (d ** 2).sum(axis=0) ** 1.5
    accel = np.atleast_1d(np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0))
    z = special.ndtri(1.0 - alpha / 2.0)
    z_lo = z0 + (z0 - z) / (1.0 - accel * (z0 - z))
    z_hi = z0 + (z0 + z) / (1.0 - accel * (z0 + z))
    lo, hi = _quantile_at(draws, special.ndtr(z_lo), special.ndtr(z_hi), rule)
    shape = np.broadcast_shapes(draws.shape[1:], est.shape)
    return lo.reshape(shape), hi.reshape(shape)
