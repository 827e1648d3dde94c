"""One BLAS thread for the statistical kernels, so results do not depend on the thread count.

A multi-threaded BLAS splits a matrix product into blocks whose partial sums it adds in an
order set by the number of threads, so the same product rounds differently under 1, 2 or 4
threads (seen as a 15th-digit difference in a bootstrap interval between a serial run in a
2-thread parent and a process-pool run in 1-thread workers). fidelitymed therefore runs its
statistics with one BLAS thread and gets its speed from running independent tasks in
parallel (:mod:`fidelitymed.parallel`), which is also the faster split for its many small
products.

:func:`single_thread` is both a context manager and a decorator::

    from fidelitymed import blas

    with blas.single_thread():
        fit = ...

    @blas.single_thread()
    def mediate(...): ...

It limits every BLAS library loaded in the process (numpy's and scipy's OpenBLAS builds are
separate libraries) through :mod:`threadpoolctl` and restores the previous limits on exit.
Nesting is free: only the outermost entry changes the limits (about 20 microseconds), so
public entry points and the per-task wrapper of :mod:`fidelitymed.parallel` can all use it.
The limit is process-wide (BLAS libraries have no per-thread setting); concurrent users in one
process share it and the last one out restores the original limits.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

__all__ = ["single_thread", "blas_threads", "in_task", "resample_threads"]

_lock = threading.Lock()
_depth = 0
_limiter: Any = None
_controller: Any = None


def _get_controller():
    # Building a ThreadpoolController scans the loaded libraries (~1 ms); one per process is
    # enough once numpy's and scipy's BLAS are loaded, which importing scipy.linalg ensures.
    global _controller
    if _controller is None:
        import scipy.linalg  # noqa: F401  (loads scipy's own OpenBLAS before the scan)
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


class single_thread(contextlib.ContextDecorator):  # noqa: N801 - used like a function
    """Run the block (or the decorated function) with every BLAS library on one thread."""

    def __enter__(self) -> single_thread:
        global _depth, _limiter
        with _lock:
            if _depth == 0:
                _limiter = _get_controller().limit(limits=1, user_api="blas")
            _depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        global _depth, _limiter
        with _lock:
            _depth -= 1
            if _depth == 0:
                limiter, _limiter = _limiter, None
                limiter.restore_original_limits()


_task_flag = threading.local()


@contextlib.contextmanager
def in_task():
    """Mark the running thread as executing a task of :mod:`fidelitymed.parallel`.

    The executors run as many tasks at once as there are cores, so a statistic inside a task
    must not start threads of its own (:func:`resample_threads` is then 1).
    """
    previous = getattr(_task_flag, "active", False)
    _task_flag.active = True
    try:
        yield
    finally:
        _task_flag.active = previous


def resample_threads() -> int:
    """Threads a bootstrap may use to process its resample chunks side by side.

    1 inside a task of :mod:`fidelitymed.parallel` (see :func:`in_task`); otherwise the
    environment variable ``FIDELITYMED_THREADS`` when set, else the cores this process may run
    on.  Each thread runs its chunks on one BLAS thread and the chunks' draws come from keyed
    streams, so the number of threads changes the speed, never the result.
    """
    if getattr(_task_flag, "active", False):
        return 1
    value = os.environ.get("FIDELITYMED_THREADS", "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def blas_threads() -> dict[str, int]:
    """``{library file name: threads}`` of every BLAS library loaded now (for tests and reports)."""
    from pathlib import Path

    from threadpoolctl import threadpool_info

    return {Path(info["filepath"]).name: int(info["num_threads"])
            for info in threadpool_info() if info.get("user_api") == "blas"}
