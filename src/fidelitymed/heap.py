"""Keep freed work arrays in the process heap instead of returning them to the OS at once.

A bootstrap allocates and frees the same few work arrays (resample counts, packed moments,
Cholesky factors; 0.5-30 MB each) hundreds of times per study.  glibc's malloc serves blocks
above its *mmap threshold* (128 KB, raised dynamically up to 32 MB) with fresh ``mmap`` pages and
gives the memory of a shrinking heap back above its *trim threshold*, so the next call touches
new pages: thousands of page faults per ``mediate`` call, measured at 1.5-8 ms of a 12-25 ms
call at n = 311 (``benchmarks/bench_mediation.py``).  :func:`retain_freed_memory` sets both
thresholds once (``mallopt``; M_MMAP_THRESHOLD 32 MB, M_TRIM_THRESHOLD 128 MB), so such blocks are
reused from the heap.  The price is resident memory: a process may keep up to 128 MB of freed
memory for reuse.

Where a stage ends whose memory the next stage will not reuse (the imputation of a large study:
hundreds of MB of chains and re-scored tables per worker), :func:`release_freed_memory` hands the
freed memory back at once (``malloc_trim``), so what the workers hold while the models run is what
they use.

Only glibc is affected; elsewhere (macOS, musl, Windows) this does nothing.  Set
``FIDELITYMED_MALLOC=default`` to leave the allocator alone.  It changes speed, never results.

Python's cyclic garbage collector is the other cost of a long run: each full collection walks
every object alive -- the ~190,000 objects of numpy, pandas, scipy, matplotlib and numba among
them -- although none of those dies during the run. :func:`objects_frozen` keeps the objects that
exist when a run starts out of its collections until it ends (``gc.freeze`` / ``gc.unfreeze``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import os
import threading
from collections.abc import Iterator

__all__ = ["objects_frozen", "release_freed_memory", "retain_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest dynamic threshold (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 128 * 1024 * 1024

_lock = threading.Lock()
_done = False


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def release_freed_memory() -> bool:
    """Return the heap's free memory to the OS now (glibc ``malloc_trim(0)``); True if any was released.

    For the end of a stage whose work arrays the next stage does not reuse.  Takes a few
    milliseconds per GB of heap; does nothing when ``FIDELITYMED_MALLOC=default`` or off glibc.
    """
    if os.environ.get("FIDELITYMED_MALLOC", "").strip().lower() == "default":
        return False
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    return bool(trim(0))


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True if they were set.

    Idempotent and cheap after the first call.  Does nothing when ``FIDELITYMED_MALLOC=default``,
    when the user set ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` themselves, or when
    the C library is not glibc.
    """
    global _done
    if _done:
        return False
    with _lock:
        if _done:
            return False
        _done = True
        if os.environ.get("FIDELITYMED_MALLOC", "").strip().lower() == "default":
            return False
        if any(v in os.environ for v in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
            return False
        mallopt = getattr(_libc(), "mallopt", None)
        if mallopt is None:
            return False
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        mallopt.restype = ctypes.c_int
        return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


@contextlib.contextmanager
def objects_frozen() -> Iterator[None]:
    """Leave the objects alive at entry out of the garbage collector's passes until the block ends.

    The study run wraps itself in this. Measured on the demo study, the full collections in the
    process that runs it took 1.03 s serially and 0.50 s on two worker processes without it, and
    0.61 s and 0.34 s with it. Objects made inside the block are collected as
    usual, and the frozen ones return to the oldest generation at exit (``gc.unfreeze``), so
    garbage among them is collected later rather than never. A program that froze objects itself
    (``gc.get_freeze_count() > 0``, also an enclosing call of this) or disabled the collector is
    left as it is.
    """
    if gc.get_freeze_count() or not gc.isenabled():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
