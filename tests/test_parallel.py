"""fidelitymed.parallel: every backend and worker count gives bit-identical, ordered results."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fidelitymed import parallel
from fidelitymed.blas import blas_threads
from fidelitymed.errors import ClusterError, ConfigError
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


@pytest.mark.parametrize("backend", ["serial", "processes"])
def test_scheduler_needs_the_dask_backend(backend):
    # `fidelitymed run --backend serial --scheduler X` passes both through: an error, not dask
    with pytest.raises(ConfigError, match="needs the dask backend"):
        parallel.Executor(backend, scheduler="tcp://127.0.0.1:8786")


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


# ----------------------------------------------------------------- one BLAS thread in every task

def test_every_task_runs_on_one_blas_thread():
    from parallel_tasks import blas_threads_task

    before = blas_threads()
    tasks = parallel.make_tasks({(i,): None for i in range(4)}, seeded=False)
    for backend in ("serial", "processes", "dask"):
        seen = parallel.map(blas_threads_task, tasks, backend=backend, workers=2)
        assert all(seen) and all(n == 1 for threads in seen for n in threads.values()), (backend, seen)
    assert blas_threads() == before          # the caller's own setting is restored


def test_process_pool_keeps_its_workers_for_a_map_without_context():
    from parallel_tasks import context_task, pid_task

    tasks = parallel.make_tasks({(i,): None for i in range(4)}, seeded=False)
    with parallel.Executor("processes", workers=2) as ex:
        first = ex.map(context_task, tasks, context={"run": 1})
        second = ex.map(context_task, tasks, context={"run": 2})
        assert {ctx["run"] for _, ctx in first} == {1} and {ctx["run"] for _, ctx in second} == {2}
        pool = ex._pool
        third = set(ex.map(pid_task, tasks))
        # no context to install: the pool of the last map runs it (no new pool, no new processes).
        # Which of its workers take the tasks is the OS's choice, so the test compares with the
        # pool's processes, not with the workers that happened to run the second map.
        assert ex._pool is pool and third <= set(pool._processes)


@pytest.mark.parametrize("backend", ["serial", "processes", "dask"])
def test_start_map_returns_at_once_and_gives_what_map_gives(tasks, backend):
    from parallel_tasks import sleepy_task

    serial = parallel.map(parallel.example_task, tasks)
    with parallel.Executor(backend, workers=2) as ex:
        ex.map(sleepy_task, parallel.make_tasks({(0,): 0.0}, seeded=False))   # workers up
        slow = parallel.make_tasks({(i,): 0.3 for i in range(4)}, seeded=False)
        start = time.perf_counter()
        with ex.start_map(sleepy_task, slow) as pending:
            returned = time.perf_counter() - start
            results = pending.results()
        waited = time.perf_counter() - start
        if backend != "serial":          # serially the tasks run inside start_map
            assert returned < 0.25 < waited
        assert len(results) == 4 and pending.results() is results
        got = ex.start_map(parallel.example_task, tasks).results()
    for a, b in zip(got, serial, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["serial", "processes", "dask"])
def test_on_result_sees_each_result_as_it_arrives_before_its_progress(tasks, backend):
    seen: dict[int, np.ndarray] = {}
    seen_at_progress: list[int] = []
    with parallel.Executor(backend, workers=2) as ex:
        got = ex.map(parallel.example_task, tasks, on_result=lambda i, result: seen.setdefault(i, result),
                     progress=lambda done, total, key: seen_at_progress.append(len(seen)))
        pending = ex.start_map(parallel.example_task, tasks[:3], on_result=lambda i, result: seen.pop(i))
        assert len(pending.results()) == 3
    assert sorted(seen) == list(range(3, len(tasks)))     # each index once; the second map popped 0-2
    for i, result in seen.items():
        np.testing.assert_array_equal(result, got[i])
    assert seen_at_progress == list(range(1, len(tasks) + 1))


def test_an_error_in_on_result_stops_the_map_and_cancels_its_waiting_tasks():
    from parallel_tasks import sleepy_task

    def refuse(index, result):
        raise RuntimeError(f"on_result refused task {index}")

    with parallel.Executor("processes", workers=1) as ex:
        ex.map(sleepy_task, parallel.make_tasks({(0,): 0.0}, seeded=False))
        slow = parallel.make_tasks({(i,): 0.2 for i in range(10)}, seeded=False)
        start = time.perf_counter()
        with pytest.raises(RuntimeError, match="on_result refused task 0"):
            ex.map(sleepy_task, slow, on_result=refuse)
        assert len(ex.map(sleepy_task, parallel.make_tasks({(0,): 0.0}, seeded=False))) == 1
        # ~0.6 s: the first task, the one running and the one already queued; not the 2 s of all ten
        assert time.perf_counter() - start < 1.3


def test_an_error_while_a_map_is_pending_cancels_its_waiting_tasks():
    from parallel_tasks import sleepy_task

    with parallel.Executor("processes", workers=1) as ex:
        ex.map(sleepy_task, parallel.make_tasks({(0,): 0.0}, seeded=False))
        slow = parallel.make_tasks({(i,): 0.2 for i in range(10)}, seeded=False)
        with pytest.raises(RuntimeError, match="while pooling"):
            with ex.start_map(sleepy_task, slow) as pending:
                raise RuntimeError("while pooling")
        assert sum(f.cancelled() for f in pending._futures) >= 6   # one runs, the next ones may be queued
        start = time.perf_counter()
        assert len(ex.map(sleepy_task, parallel.make_tasks({(0,): 0.0}, seeded=False))) == 1
        assert time.perf_counter() - start < 1.5   # not behind the ten cancelled tasks


def test_starting_a_process_executor_starts_the_fork_server_but_no_pool(tasks):
    """``start()`` launches the fork server (its import of the analysis overlaps the caller's
    work before the first map) without waiting for it; workers come only with a map."""
    import multiprocessing
    from multiprocessing import forkserver

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork server on this platform")
    with parallel.Executor("processes", workers=2) as ex:
        started = time.perf_counter()
        ex.start()
        assert time.perf_counter() - started < 1.0       # the preload (seconds) is not waited for
        assert forkserver._forkserver._forkserver_pid is not None
        assert ex._pool is None
        results = ex.map(parallel.example_task, tasks)
    assert all(np.array_equal(a, b) for a, b in zip(results, parallel.map(parallel.example_task, tasks)))


def test_process_workers_inherit_the_preloaded_modules_frozen_out_of_the_garbage_collector():
    """The fork server freezes what it imported (``fidelitymed._preload``), so a worker's
    collections do not walk, or copy on write, the ~190,000 inherited module objects."""
    import multiprocessing

    from parallel_tasks import frozen_objects_task

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork server on this platform")
    with parallel.Executor("processes", workers=1) as ex:
        frozen = ex.map(frozen_objects_task, parallel.make_tasks({(0,): None}, seeded=False))[0]
    assert frozen > 50_000


def test_single_thread_nests_and_restores():
    from fidelitymed.blas import single_thread

    before = blas_threads()

    @single_thread()
    def inner():
        return blas_threads()

    with single_thread():
        assert set(inner().values()) == {1}
        assert set(blas_threads().values()) == {1}   # the inner exit did not lift the outer pin
    assert blas_threads() == before


# ----------------------------------------------------------------- Dask failures: one-line errors

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text
    return text


def test_unreachable_scheduler_is_a_quick_one_line_error():
    from parallel_tasks import sleepy_task

    address = f"tcp://127.0.0.1:{_free_port()}"          # nothing listens there
    start = time.monotonic()
    with pytest.raises(ClusterError, match="cannot reach the dask scheduler") as info:
        parallel.map(sleepy_task, parallel.make_tasks({(1,): 0.0}, seeded=False), backend="dask",
                     scheduler=address)
    assert time.monotonic() - start < 15                 # 5 s connect timeout, not distributed's 30 s
    assert address in _one_line(info.value)


@pytest.fixture
def empty_scheduler():
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, dashboard_address=None, host="127.0.0.1") as cluster:
        yield cluster.scheduler_address


def test_scheduler_without_workers(empty_scheduler):
    from parallel_tasks import sleepy_task

    start = time.monotonic()
    with pytest.raises(ClusterError, match="has no workers") as info:
        with parallel.Executor("dask", scheduler=empty_scheduler, worker_timeout=1) as ex:
            ex.map(sleepy_task, parallel.make_tasks({(1,): 0.0}, seeded=False))
    assert time.monotonic() - start < 10
    _one_line(info.value)


def test_last_worker_lost_mid_run(empty_scheduler):
    from parallel_tasks import sleepy_task

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", empty_scheduler, "--no-nanny",
                               "--nthreads", "1", "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from distributed import Client

        with Client(empty_scheduler, set_as_default=False) as client:   # the worker process is up
            client.wait_for_workers(1, timeout=60)
        tasks = parallel.make_tasks({(i,): 0.5 for i in range(20)}, seeded=False)
        started = []

        def kill_after_first(done, total, key):
            if not started:
                started.append(key)
                threading.Timer(0.2, worker.kill).start()

        start = time.monotonic()
        with pytest.raises(ClusterError, match="lost all its workers") as info:
            with parallel.Executor("dask", scheduler=empty_scheduler, worker_timeout=2) as ex:
                ex.map(sleepy_task, tasks, progress=kill_after_first)
        assert started and time.monotonic() - start < 30
        _one_line(info.value)
    finally:
        worker.kill()
        worker.wait(timeout=30)


def test_task_that_kills_its_workers():
    import dask
    from parallel_tasks import dying_task

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with pytest.raises(ClusterError, match=r"task \('boom',\) was running on workers that died 1 time ") as info:
            parallel.map(dying_task, parallel.make_tasks({("boom",): None}, seeded=False), backend="dask",
                         workers=1)
    _one_line(info.value)


# ----------------------------------------------------------------- pool workers die with their owner

OWNER = """
import sys, time
from fidelitymed import parallel
from parallel_tasks import sleepy_task

if __name__ == "__main__":
    with parallel.Executor("processes", workers=2) as ex:
        pids = ex.map(sleepy_task, parallel.make_tasks({(i,): 0.3 for i in range(2)}, seeded=False))
        print(" ".join(map(str, sorted(set(pids)))), flush=True)
        ex.map(sleepy_task, parallel.make_tasks({(i,): 60.0 for i in range(4)}, seeded=False))
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\tZ" not in next(line for line in state.splitlines() if line.startswith("State:"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pool_workers_exit_when_the_owner_is_killed(tmp_path):
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    owner = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert pids and all(_alive(p) for p in pids)
        time.sleep(0.5)                                  # the workers are now inside the 60 s tasks
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids), "pool workers outlived the killed owner"
    finally:
        owner.kill()
        for pid in pids if "pids" in locals() else []:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_cli_scheduler_with_another_backend_is_one_line_exit_2(tmp_path, capsys):
    from fidelitymed.cli import main
    from fidelitymed.simulate import demo_study_path

    code = main(["run", str(demo_study_path()), "--out", str(tmp_path / "out"), "--backend", "serial",
                 "--scheduler", "tcp://127.0.0.1:8786", "--no-impute", "--n-boot", "50", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "needs the dask backend" in err
    assert not (tmp_path / "out").exists()


def test_release_freed_memory_is_a_safe_no_op_when_the_allocator_is_left_alone(monkeypatch):
    from fidelitymed import heap

    big = np.ones(40_000_000 // 8)  # a freed 40 MB block: the heap may hand it back
    del big
    assert isinstance(heap.release_freed_memory(), bool)
    monkeypatch.setenv("FIDELITYMED_MALLOC", "default")
    assert heap.release_freed_memory() is False


def test_objects_frozen_keeps_the_objects_of_entry_out_of_collections_and_restores_the_collector():
    import gc

    from fidelitymed import heap

    if gc.get_freeze_count():
        gc.unfreeze()   # another test's leftover; this one needs a collector nobody froze
    with heap.objects_frozen():
        assert gc.get_freeze_count() > 0
        made_inside = [[]]
        made_inside[0].append(made_inside)   # a cycle made in the block: collected as usual
        del made_inside
        assert gc.collect() >= 1
        with heap.objects_frozen():          # an enclosing freeze is left alone
            frozen = gc.get_freeze_count()
        assert gc.get_freeze_count() == frozen
    assert gc.get_freeze_count() == 0
    gc.freeze()                              # the program froze objects itself: not unfrozen here
    try:
        ours = gc.get_freeze_count()
        with heap.objects_frozen():
            pass
        assert gc.get_freeze_count() == ours
    finally:
        gc.unfreeze()
    gc.disable()                             # no collector: nothing is frozen
    try:
        with heap.objects_frozen():
            assert gc.get_freeze_count() == 0
    finally:
        gc.enable()
