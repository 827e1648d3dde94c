"""Task functions for tests/test_parallel.py, in a module of their own so worker processes import them."""

from __future__ import annotations

import os
import time

from fidelitymed.blas import blas_threads


def blas_threads_task(task) -> dict[str, int]:
    """The BLAS thread counts a task sees while it runs."""
    return blas_threads()


def sleepy_task(task) -> int:
    """Sleep ``task.payload`` seconds; return the worker's process id."""
    time.sleep(task.payload)
    return os.getpid()


def dying_task(task) -> None:
    """Kill the worker process that runs it (as the kernel's OOM killer would)."""
    os._exit(1)


def context_task(task, context) -> tuple[int, object]:
    """The worker's process id and the shared context it holds."""
    return os.getpid(), context


def pid_task(task) -> int:
    """The worker's process id."""
    return os.getpid()


def frozen_objects_task(task) -> int:
    """How many objects the worker's garbage collector has frozen (``gc.get_freeze_count``)."""
    import gc

    return gc.get_freeze_count()
