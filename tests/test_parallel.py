"""fidelitymed.parallel: every backend and worker count gives bit-identical, ordered results."""

from __future__ import annotations

import numpy as np
import pytest

from fidelitymed import parallel
from fidelitymed.errors import ConfigError
from fidelitymed.seeding import child_sequence


@pytest.fixture(scope="module")
def tasks():
    data = np.random.default_rng(0).normal(size=57)
    payloads = {("model", name, window, imp): data * (1 + imp)
                for name in ("qoli20", "mcas") for window in (90, 180) for imp in range(3)}
    return parallel.make_tasks(payloads, seed=20241126)


def _reference(tasks):
    # Independent of parallel.map: each task's stream straight from seeding.child_sequence.
    out = []
    for task in tasks:
        rng = np.random.Generator(np.random.PCG64(child_sequence(20241126, task.key)))
        idx = rng.integers(0, task.payload.shape[0], size=(200, task.payload.shape[0]))
        out.append(task.payload[idx].mean(axis=1))
    return out


def test_serial_matches_keyed_streams(tasks):
    got = parallel.map(parallel.example_task, tasks)
    for a, b in zip(got, _reference(tasks), strict=True):
        np.testing.assert_array_equal(a, b)


def test_task_order_independent_of_submission_order(tasks):
    got = parallel.map(parallel.example_task, tasks)
    rev = parallel.map(parallel.example_task, list(reversed(tasks)))
    for a, b in zip(got, reversed(rev), strict=True):
        np.testing.assert_array_equal(a, b)


def test_processes_and_dask_identical_to_serial(tasks):
    serial = parallel.map(parallel.example_task, tasks)
    seen: list[tuple] = []
    procs = parallel.map(parallel.example_task, tasks, backend="processes", workers=2,
                         progress=lambda done, total, key: seen.append((done, total, key)))
    assert [s[0] for s in seen] == list(range(1, len(tasks) + 1))
    assert {s[2] for s in seen} == {t.key for t in tasks}
    with parallel.Executor("dask", workers=2) as ex:
        dask1 = ex.map(parallel.example_task, tasks)
        # second map on the same cluster, with a shared context shipped once per worker
        shared = np.arange(31, dtype=float)
        dask_ctx = ex.map(parallel.example_task, tasks, context=shared)
        # a container context travels whole, and is reused by the next map on the same executor
        boxed = {"data": shared, "other": [1, 2]}
        dask_box = ex.map(_boxed_task, tasks, context=boxed)
        dask_box2 = ex.map(_boxed_task, tasks, context=boxed)
    serial_ctx = parallel.map(parallel.example_task, tasks, context=shared)
    for s, d, d2 in zip(serial_ctx, dask_box, dask_box2, strict=True):
        np.testing.assert_array_equal(s, d)
        np.testing.assert_array_equal(s, d2)
    for s, p, d in zip(serial, procs, dask1, strict=True):
        np.testing.assert_array_equal(s, p)
        np.testing.assert_array_equal(s, d)
    for s, d in zip(serial_ctx, dask_ctx, strict=True):
        np.testing.assert_array_equal(s, d)
    assert ex._client is None and ex._cluster is None  # clean shutdown


def test_one_worker_equals_two(tasks):
    one = parallel.map(parallel.example_task, tasks, backend="processes", workers=1)
    two = parallel.map(parallel.example_task, tasks, backend="processes", workers=2)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


def _boxed_task(task, context):
    return parallel.example_task(task, context["data"])


def _boom(task):
    if task.key == ("b",):
        raise ValueError("bad task")
    return task.key


def test_error_names_the_task():
    tasks = parallel.make_tasks({("a",): 1, ("b",): 2}, seeded=False)
    with pytest.raises(ValueError) as info:
        parallel.map(_boom, tasks)
    assert "('b',)" in "".join(getattr(info.value, "__notes__", []))


def test_validation():
    with pytest.raises(ConfigError, match="backend"):
        parallel.Executor("threads")
    with pytest.raises(ConfigError, match="workers"):
        parallel.Executor("processes", workers=0)
    with pytest.raises(ConfigError, match="tcp://"):
        parallel.Executor("dask", scheduler="localhost:8786")
    with pytest.raises(ConfigError, match="duplicate"):
        parallel.make_tasks([(("a",), 1), (("a",), 2)], seed=1)
    with pytest.raises(ConfigError, match="no seed"):
        parallel.make_tasks({("a",): 1}, seeded=False)[0].rng()
    assert parallel.map(parallel.example_task, []) == []
    assert parallel.Executor("dask", scheduler="tcp://127.0.0.1:1").backend == "dask"


def test_prefix_changes_streams():
    a = parallel.make_tasks({("x",): None}, seed=5)[0]
    b = parallel.make_tasks({("x",): None}, seed=5, prefix=("impute",))[0]
    assert a.rng().integers(1 << 30) != b.rng().integers(1 << 30)


def test_rich_progress_callback_runs():
    tasks = parallel.make_tasks({(i,): np.ones(3) for i in range(3)}, seed=1)
    with parallel.rich_progress("t", total=3) as cb:
        out = parallel.map(parallel.example_task, tasks, progress=cb)
    with parallel.rich_progress("t", disable=True) as cb:
        cb(1, 1, ("x",))
    assert len(out) == 3
