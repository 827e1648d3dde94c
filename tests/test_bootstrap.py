"""The vectorized bootstrap kernel against plain per-resample loops, numpy and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from fidelitymed.errors import FidelityMedError
from fidelitymed.stats import bootstrap as bs


def _design(rng, n=60, p=5):
    X = rng.normal(size=(n, p - 2))
    y = X @ rng.normal(size=p - 2) + rng.normal(size=n)
    return np.column_stack([np.ones(n), X, y])


def test_index_counts_matches_per_row_bincount():
    rng = np.random.default_rng(1)
    idx = bs.resample_indices(rng, 37, 50)
    assert idx.shape == (50, 37) and idx.min() >= 0 and idx.max() < 37
    counts = bs.index_counts(idx, 37)
    expected = np.array([np.bincount(row, minlength=37) for row in idx], dtype=float)
    np.testing.assert_array_equal(counts, expected)
    assert counts.dtype == np.float64
    np.testing.assert_array_equal(counts.sum(axis=1), 37)
    # batched replicates x resamples
    idx3 = rng.integers(0, 37, size=(3, 4, 37))
    c3 = bs.index_counts(idx3, 37)
    assert c3.shape == (3, 4, 37)
    np.testing.assert_array_equal(c3[2, 1], np.bincount(idx3[2, 1], minlength=37))


def test_resample_indices_are_uniform():
    rng = np.random.default_rng(2)
    counts = np.bincount(bs.resample_indices(rng, 10, 20_000).ravel(), minlength=10)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_moment_matrices_equal_loop_over_resamples():
    rng = np.random.default_rng(3)
    Z = _design(rng)
    idx = bs.resample_indices(rng, len(Z), 40)
    M = bs.moment_matrices(Z, bs.index_counts(idx, len(Z)))
    for b in range(40):  # the reference loop lives only in the test
        Zb = Z[idx[b]]
        np.testing.assert_allclose(M[b], Zb.T @ Zb, rtol=1e-12, atol=1e-10)


def test_moment_matrices_batched_replicates():
    rng = np.random.default_rng(4)
    Z = np.stack([_design(rng, n=25) for _ in range(3)])  # (R, n, p)
    idx = rng.integers(0, 25, size=(3, 6, 25))
    M = bs.moment_matrices(Z, bs.index_counts(idx, 25))
    assert M.shape == (3, 6, 5, 5)
    for r in range(3):
        for b in range(6):
            Zb = Z[r][idx[r, b]]
            np.testing.assert_allclose(M[r, b], Zb.T @ Zb, rtol=1e-12, atol=1e-10)


def test_solve_from_moments_equals_lstsq_loop():
    rng = np.random.default_rng(5)
    Z = _design(rng, n=50, p=6)
    idx = bs.resample_indices(rng, 50, 30)
    M = bs.moment_matrices(Z, bs.index_counts(idx, 50))
    coef, ok = bs.solve_from_moments(M, [0, 1, 2, 3, 4], 5)
    assert ok.all()
    for b in range(30):
        Zb = Z[idx[b]]
        ref = np.linalg.lstsq(Zb[:, :5], Zb[:, 5], rcond=None)[0]
        np.testing.assert_allclose(coef[b], ref, rtol=1e-10, atol=1e-12)
    # a sub-model, with predictors in another order
    coef2, _ = bs.solve_from_moments(M, [2, 0, 4], 1)
    for b in range(5):
        Zb = Z[idx[b]]
        ref = np.linalg.lstsq(Zb[:, [2, 0, 4]], Zb[:, 1], rcond=None)[0]
        np.testing.assert_allclose(coef2[b], ref, rtol=1e-10, atol=1e-12)


def test_solve_from_moments_flags_singular_and_constant_response():
    rng = np.random.default_rng(6)
    n = 20
    x = rng.normal(size=n)
    Z = np.column_stack([np.ones(n), x, 2 * x + 1, rng.normal(size=n), np.full(n, 3.0)])
    M = bs.moment_matrices(Z, np.ones((1, n)))
    _, ok = bs.solve_from_moments(M, [0, 1, 2], 3)
    assert not ok[0]  # column 2 = 2*x + 1 is collinear with the intercept and x
    _, ok = bs.solve_from_moments(M, [0, 1], 4)
    assert not ok[0]  # constant response (PROCESS rejects zero-variance Y)
    coef, ok = bs.solve_from_moments(M, [0, 1], 3)
    assert ok[0] and np.isfinite(coef).all()
    # scale-aware: multiplying the data by 1e-8 changes nothing
    Zs = Z * 1e-8
    Zs[:, 0] = 1.0
    _, ok = bs.solve_from_moments(bs.moment_matrices(Zs, np.ones((1, n))), [0, 1, 3], 2)
    assert ok[0]


def _ols_statistic(packed, index):
    """Intercept and slope of column 2 on [1, column 1], from packed batch-last moments."""
    M = np.moveaxis(packed[index], -1, 0)
    coef, ok = bs.solve_from_moments(M, [0, 1], 2)
    return coef, ok


def test_run_bootstrap_equals_loop_and_is_chunk_invariant():
    rng = np.random.default_rng(7)
    n = 40
    x = rng.normal(size=n)
    Z = np.column_stack([np.ones(n), x, 0.5 * x + rng.normal(size=n)])
    seed = np.random.SeedSequence(123)
    run = bs.run_bootstrap(Z, _ols_statistic, 1234, seed, return_indices=True)
    assert run.draws.shape == (1234, 2) and run.n_failed == 0
    for b in range(0, 1234, 7):
        Zb = Z[run.indices[b]]
        ref = np.linalg.lstsq(Zb[:, :2], Zb[:, 2], rcond=None)[0]
        np.testing.assert_allclose(run.draws[b], ref, rtol=1e-10, atol=1e-12)
    for chunk in (1, 500, 1000, 10_000):
        other = bs.run_bootstrap(Z, _ols_statistic, 1234, np.random.SeedSequence(123), chunk_size=chunk)
        np.testing.assert_array_equal(other.draws, run.draws)
    other = bs.run_bootstrap(Z, _ols_statistic, 1234, 124)
    assert not np.array_equal(other.draws, run.draws)


def test_singular_resamples_are_redrawn_and_counted():
    rng = np.random.default_rng(8)
    n = 30
    dummy = np.zeros(n)
    dummy[:2] = 1.0  # absent from roughly 13% of resamples -> singular X'X
    x = rng.normal(size=n)
    Z = np.column_stack([np.ones(n), x, dummy, x + dummy + rng.normal(size=n)])

    def stat(packed, index):
        return bs.solve_from_moments(np.moveaxis(packed[index], -1, 0), [0, 1, 2], 3)

    run = bs.run_bootstrap(Z, stat, 2000, 9, return_indices=True)
    assert np.isfinite(run.draws).all()
    assert 100 < run.n_failed < 600  # P(no dummy row) = (28/30)^30 ~ 0.126
    assert (run.indices < 2).any(axis=1).all()  # every accepted resample contains a dummy case
    again = bs.run_bootstrap(Z, stat, 2000, 9, chunk_size=500)
    np.testing.assert_array_equal(again.draws, run.draws)
    assert again.n_failed == run.n_failed


def test_hopeless_bootstrap_raises():
    Z = _design(np.random.default_rng(10), n=30, p=4)

    def never_ok(packed, index):
        return np.zeros((packed.shape[-1], 1)), np.zeros(packed.shape[-1], dtype=bool)

    with pytest.raises(FidelityMedError, match="singular"):
        bs.run_bootstrap(Z, never_ok, 500, 1)


def test_percentile_linear_is_numpy_percentile():
    draws = np.random.default_rng(11).normal(size=(999, 3))
    lo, hi = bs.percentile_interval(draws, 0.9)
    np.testing.assert_allclose(lo, np.percentile(draws, 5, axis=0), rtol=1e-14)
    np.testing.assert_allclose(hi, np.percentile(draws, 95, axis=0), rtol=1e-14)


def test_percentile_process_order_statistics():
    draws = np.random.default_rng(12).permutation(np.arange(1.0, 5001.0))
    lo, hi = bs.percentile_interval(draws, 0.95, rule="process")
    assert (lo, hi) == (125.0, 4876.0)  # Hayes (2022): 125th and 4,876th of 5,000
    lo, hi = bs.percentile_interval(np.arange(1.0, 1001.0), 0.90, rule="process")
    assert (lo, hi) == (50.0, 951.0)


def test_bca_interval_matches_scipy():
    rng_data = np.random.default_rng(13)
    x = rng_data.exponential(size=40)
    res = stats.bootstrap((x,), np.mean, n_resamples=3000, method="BCa", confidence_level=0.95,
                          rng=np.random.default_rng(99), vectorized=True)
    idx = np.random.default_rng(99).integers(0, 40, (3000, 40))  # scipy's own resampling
    draws = x[idx].mean(axis=1)
    jack = (x.sum() - x) / 39.0
    lo, hi = bs.bca_interval(draws, x.mean(), jack, 0.95)
    np.testing.assert_allclose([lo, hi], [res.confidence_interval.low, res.confidence_interval.high],
                               rtol=1e-12)


def test_bc_interval_hand_formula():
    rng = np.random.default_rng(14)
    draws = rng.normal(0.3, 1.0, size=4000)
    est = 0.1
    lo, hi = bs.bc_interval(draws, est, 0.95)
    share = ((draws < est).sum() + (draws <= est).sum()) / (2 * 4000)
    z0 = stats.norm.ppf(share)
    z = stats.norm.ppf(0.975)
    ref = np.quantile(draws, stats.norm.cdf([2 * z0 - z, 2 * z0 + z]))
    np.testing.assert_allclose([lo, hi], ref, rtol=1e-12)
    # PROCESS rule: strict share and order statistics round(B p) and trunc(B p) + 1
    lo_p, hi_p = bs.bc_interval(draws, est, 0.95, rule="process")
    z0p = stats.norm.ppf((draws < est).mean())
    s = np.sort(draws)
    assert lo_p == s[int(np.rint(4000 * stats.norm.cdf(2 * z0p - z))) - 1]
    assert hi_p == s[int(np.trunc(4000 * stats.norm.cdf(2 * z0p + z)))]


def test_bca_without_skew_and_bias_is_percentile():
    draws = np.linspace(-1, 1, 2001)
    jack = np.linspace(-1, 1, 51)  # symmetric -> zero acceleration
    lo, hi = bs.bca_interval(draws, 0.0, jack, 0.9)
    plo, phi = bs.percentile_interval(draws, 0.9)
    np.testing.assert_allclose([lo, hi], [plo, phi], rtol=1e-12)


def test_jackknife_moments():
    Z = _design(np.random.default_rng(15), n=12, p=4)
    J = bs.jackknife_moments(Z)
    for i in (0, 5, 11):
        Zi = np.delete(Z, i, axis=0)
        np.testing.assert_allclose(J[i], Zi.T @ Zi, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n, size, step_elements", [(37, 101, 1 << 15), (37, 101, 100), (311, 500, 1 << 15),
                                                    (3, 7, 1), (1, 5, 1), (4001, 9, 1 << 15)])
def test_fused_block_counts_equal_plain_draws(monkeypatch, n, size, step_elements):
    """Drawn and counted in cache-sized steps, a block keeps exactly the stream of resample_indices."""
    monkeypatch.setattr(bs, "_STEP_ELEMENTS", step_elements)
    seed = np.random.SeedSequence(2024)
    idx = bs.resample_indices(bs.block_generator(seed, 3), n, size)
    counts = np.full((size, n), -1.0)
    got_idx = np.full((size, n), -1, dtype=np.intp)
    bs._draw_block_counts(seed, 3, size, n, counts, got_idx)
    np.testing.assert_array_equal(got_idx, idx)
    ref = np.array([np.bincount(row, minlength=n) for row in idx], dtype=float)  # plain loop, test only
    np.testing.assert_array_equal(counts, ref)
    assert counts.sum(axis=1).tolist() == [n] * size


@pytest.mark.parametrize("chunk_elements", [2 * 500 * 311, 500 * 311, None])
def test_run_bootstrap_bit_identical_across_chunks_with_many_columns(monkeypatch, chunk_elements):
    """p = 17 as in the study's mediation model: wide enough for BLAS to take width-dependent paths.

    A small ``_CHUNK_ELEMENTS`` makes the moment products one or two blocks wide, so the chunks
    below hold 1-5 products (before, one product per chunk gave last-bit differences).
    """
    from fidelitymed.stats.mediation import _make_statistic

    if chunk_elements is not None:
        monkeypatch.setattr(bs, "_CHUNK_ELEMENTS", chunk_elements)
    rng = np.random.default_rng(11)
    n, p = 311, 17
    Z = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    stat = _make_statistic(np.ones(3))
    ref = bs.run_bootstrap(Z, stat, 2300, 5, return_indices=True)
    for chunk in (1, 1000, 1500, 2000, 2300, 10_000):
        other = bs.run_bootstrap(Z, stat, 2300, 5, chunk_size=chunk)
        np.testing.assert_array_equal(other.draws, ref.draws)
    for b in range(0, 2300, 229):  # and each draw is the plain fit of its resample
        Zb = Z[ref.indices[b]]
        a = np.linalg.lstsq(Zb[:, :p - 2], Zb[:, p - 2], rcond=None)[0][-1]
        cp, bb = np.linalg.lstsq(Zb[:, :p - 1], Zb[:, p - 1], rcond=None)[0][-2:]
        np.testing.assert_allclose(ref.draws[b, :4], [a, bb, cp, a * bb], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("threads", [1, 2, 3, 7])
def test_run_bootstrap_bit_identical_across_thread_counts(threads):
    """Chunks spread over threads: the same draws, failures and indices as one thread, bit for bit."""
    from fidelitymed.stats.mediation import _make_statistic

    rng = np.random.default_rng(12)
    n, p = 311, 17
    Z = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    Z[:, 1] = (rng.uniform(size=n) < 0.02).astype(float)  # a rare dummy: some resamples are redrawn
    stat = _make_statistic(np.ones(3))
    ref = bs.run_bootstrap(Z, stat, 5000, 8, threads=1, return_indices=True)
    assert ref.n_failed > 0
    got = bs.run_bootstrap(Z, stat, 5000, 8, threads=threads, return_indices=True)
    np.testing.assert_array_equal(got.draws, ref.draws)
    np.testing.assert_array_equal(got.indices, ref.indices)
    assert got.n_failed == ref.n_failed


def test_resample_threads_is_one_inside_executor_tasks(monkeypatch):
    from fidelitymed import blas, parallel

    monkeypatch.setenv("FIDELITYMED_THREADS", "3")
    assert blas.resample_threads() == 3
    with blas.in_task():
        assert blas.resample_threads() == 1
    assert blas.resample_threads() == 3
    seen = parallel.map(lambda task: blas.resample_threads(), [parallel.Task(key=("t", 0), payload=None)],
                        backend="serial")
    assert seen == [1]
    monkeypatch.setenv("FIDELITYMED_THREADS", "not a number")
    assert blas.resample_threads() == 1
    monkeypatch.delenv("FIDELITYMED_THREADS")
    assert blas.resample_threads() >= 1


def test_compiled_cholesky_equals_lapack_and_flags_singular():
    """The batched kernel against numpy's LAPACK Cholesky, one matrix at a time (test-only loop)."""
    rng = np.random.default_rng(13)
    q, N = 9, 300  # N not a multiple of the kernel's tile
    A = rng.normal(size=(N, 40, q))
    S = np.einsum("bni,bnj->bij", A, A)
    S[5, :, 3] = S[5, 3, :] = 2.0 * S[5, :, 2]  # column 3 = 2 x column 2: singular
    S[5, 3, 3] = 4.0 * S[5, 2, 2]
    L, ok = bs._cholesky_batch(np.ascontiguousarray(np.moveaxis(S, 0, -1)), bs.TOLERANCE)
    assert not ok[5] and ok.sum() == N - 1
    tril = np.tril_indices(q)
    for b in np.flatnonzero(ok):
        np.testing.assert_allclose(L[:, :, b][tril], np.linalg.cholesky(S[b])[tril], rtol=1e-12, atol=1e-12)
    # packed storage read through an index map gives the same factor
    packed = np.ascontiguousarray(np.moveaxis(S, 0, -1)[np.triu_indices(q)])
    L2, ok2 = bs._cholesky_batch(packed, bs.TOLERANCE, index=bs.triangle_index(q))
    np.testing.assert_array_equal(ok2, ok)
    np.testing.assert_array_equal(L2[:, :, ok][tril], L[:, :, ok][tril])
    # n_check: a singular last column is accepted when only the first q-1 are checked
    _, ok3 = bs._cholesky_batch(np.ascontiguousarray(np.moveaxis(S[:, :4, :4], 0, -1)), bs.TOLERANCE, n_check=3)
    assert ok3[5]


def test_column_outer_products_are_the_row_products_transposed_bit_for_bit():
    """The bootstrap's (T, n) products are written row block by row block, with no (n, T) temporary."""
    rng = np.random.default_rng(12)
    for p in (1, 2, 7, 34):
        Z = rng.normal(size=(257, p))
        got = bs._column_outer_products(Z)
        assert got.flags.c_contiguous
        assert np.array_equal(got, np.ascontiguousarray(bs._row_outer_products(Z).T))
