"""Imported once in the fork server, so every worker process starts with the analysis loaded.

A ``processes`` executor starts fresh workers whenever a map brings a new shared context (the
imputation, then the model fits), and each fresh worker spent 1-2 s importing numpy, scipy,
pandas and matplotlib and loading the compiled kernels from numba's cache before its first task
(``benchmarks/bench_study.py``: about 3 s of the demo study on two cores).  The fork server
imports this module before it forks any worker (:func:`multiprocessing.set_forkserver_preload`),
so the workers inherit the modules and the compiled kernels instead.  Nothing here reads user
data or changes global state beyond the imports and freezing them out of the garbage collector.
"""

from __future__ import annotations

import gc

import numpy as np

from .report import figures as _figures  # noqa: F401  (matplotlib, PIL)
from .stats import _kernels, bootstrap as _bootstrap, impute as _impute, mediation as _mediation  # noqa: F401
from .stats.multilevel import mediate_multilevel as _mediate_multilevel  # noqa: F401


def _warm_kernels() -> None:
    """Call each compiled kernel once with the argument types the analysis passes."""
    rng = np.random.default_rng(0)
    n_chains, rows, width = 1, 12, 4
    block = np.ones((n_chains, width, rows))
    block[:, 1:, :] = rng.random((n_chains, width - 1, rows))
    gram = np.matmul(block, np.swapaxes(block, 1, 2))
    cols = np.array([0, 2, 3], dtype=np.intp)
    observed, missing = np.arange(2, rows, dtype=np.intp), np.arange(2, dtype=np.intp)
    z = rng.standard_normal((n_chains, cols.size))
    values = np.ascontiguousarray(block[:, 1:, :])
    starts = np.array([0, cols.size], dtype=np.intp)
    _kernels.run_update(values, block, gram, np.arange(width - 1, dtype=np.intp), np.arange(rows, dtype=np.intp),
                        np.array([1], dtype=np.intp), cols, starts, observed,
                        np.array([0, observed.size], dtype=np.intp), missing,
                        np.array([0, missing.size], dtype=np.intp), z, np.ones((n_chains, 1)),
                        rng.random((n_chains, missing.size)), 1e-5, 5, _impute._RADIX_FROM)
    xtx = np.ascontiguousarray(gram[:, :3, :3])
    _kernels.normal_draw(xtx, np.ascontiguousarray(gram[:, :3, 3]), z, np.empty((n_chains, 3)),
                         np.empty((n_chains, 3)))
    _impute._sorted_order(rng.random((1, 8)))
    # the bootstrap's kernels, through a small mediation (also its numpy paths)
    x = rng.standard_normal(40)
    m = 0.3 * x + rng.standard_normal(40)
    y = 0.3 * m + rng.standard_normal(40)
    import pandas as pd

    from .blas import in_task

    # as inside a task: on this thread only -- the fork server must not start a thread pool
    with in_task():
        _mediation.mediate(pd.DataFrame({"x": x, "m": m, "y": y}), "x", "m", "y", n_boot=600, seed=0)


try:
    _warm_kernels()
except Exception:  # noqa: BLE001 - warming is an optimisation; a worker compiles on first use instead
    pass

# The ~190,000 objects imported above live as long as every worker. Frozen, the workers' garbage
# collections skip them (the CPython documentation of gc.freeze recommends it before fork):
# measured on the demo study, each worker spent 0.30-0.35 s in collections without it and
# 0.10-0.11 s with it, and a collection no longer writes into the inherited pages, which would
# copy them into every worker. No gc.collect() first: it finds ~20 objects here and costs 0.1 s
# before the first worker can start.
gc.freeze()
