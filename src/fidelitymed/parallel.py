"""One ``map`` over independent tasks: serially, on local processes, or on a Dask cluster.

Every unit of work of a study (imputation x model x window, or one replicate batch of a power
simulation) is a :class:`Task`: a *key* that names it and a *payload* it works on. Its random
stream is the :class:`numpy.random.SeedSequence` child of the analysis seed keyed by the task
(:func:`fidelitymed.seeding.child_sequence`), never by the order in which workers pick tasks
up. A task function that draws random numbers only from ``task.seed`` / ``task.rng()`` therefore
returns bit-identical results on every backend and any number of workers, and results are
always returned in task order.

Backends
--------
``"serial"``
    In this process, one task after another (the reference; no pickling).
``"processes"``
    A :class:`concurrent.futures.ProcessPoolExecutor` of ``workers`` processes (``forkserver``
    start method on POSIX, so it is safe inside threaded programs).
``"dask"``
    :mod:`dask.distributed`: a :class:`~distributed.LocalCluster` of ``workers`` single-threaded
    worker processes started (and closed) here, or an existing cluster with
    ``scheduler="tcp://HOST:PORT"`` (its workers must be able to import ``fidelitymed``; only the
    client is closed then, never the cluster).

Examples
--------
>>> from fidelitymed import parallel
>>> def draw(task):                       # module-level, so it pickles
...     return float(task.rng().normal() + task.payload)
>>> tasks = parallel.make_tasks({("m", i): i for i in range(4)}, seed=1)
>>> serial = parallel.map(draw, tasks)
>>> serial == parallel.map(draw, tasks, backend="processes", workers=2)  # doctest: +SKIP
True

Reuse one pool/cluster for several stages with the executor object::

    with parallel.Executor("dask", workers=2) as ex:
        imputed = ex.map(impute_one, imputation_tasks, progress=cb1)
        fitted = ex.map(fit_one, model_tasks, progress=cb2)

``ex.start_map(...)`` starts a map and returns a :class:`PendingMap` at once, so this process
can work while the workers do (the study run pools its single-level models meanwhile)::

    with ex.start_map(fit_multilevel, tasks) as pending:
        pooled = pool(fitted)          # here, while the workers fit
        multilevel = pending.results()

Determinism
-----------
Every task runs with one BLAS thread (:func:`fidelitymed.blas.single_thread`) on every backend,
including ``"serial"``: a multi-threaded BLAS rounds a product differently for each thread
count, so without the pin a serial run in a 2-thread process and a pool of 1-thread workers
would differ in the last digits. Parallelism comes from running tasks side by side; a task's
bootstrap starts no threads of its own (:func:`fidelitymed.blas.in_task`), while a bootstrap
called outside the executors spreads its resample chunks over the cores
(:func:`fidelitymed.blas.resample_threads`) with the same result.

Failures
--------
A Dask scheduler that does not answer within ``connect_timeout`` seconds (default 5), one with
no workers for ``worker_timeout`` seconds (default 20) -- at the start or after losing all its
workers mid-run -- and a task whose workers kept dying (``distributed.KilledWorker``) raise
:class:`fidelitymed.errors.ClusterError` with a one-line message. Local pool workers exit when
the process that started them dies (``PR_SET_PDEATHSIG`` on Linux, and a watchdog thread
polling the parent everywhere), so a killed analysis leaves no workers behind.

Progress: ``progress(done, total, key)`` is called in the calling process once per finished task
(in completion order). :func:`rich_progress` gives a ready-made rich progress bar callback.

Functions and payloads must be picklable for ``"processes"`` and ``"dask"`` (define task
functions at module level). ``context`` (an object shared by every task, e.g. the analysis
frame) is shipped once per worker rather than once per task; the function is then called as
``func(task, context)``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .blas import in_task, single_thread
from .errors import ClusterError, ConfigError
from .seeding import SeedLike, child_sequence

Backend = Literal["serial", "processes", "dask"]
BACKENDS: tuple[str, ...] = ("serial", "processes", "dask")
ProgressCallback = Callable[[int, int, tuple], None]

__all__ = ["BACKENDS", "Executor", "PendingMap", "Task", "example_task", "make_tasks", "map", "rich_progress"]


@dataclass(frozen=True)
class Task:
    """One independent unit of work.

    Attributes
    ----------
    key
        A tuple of ints/strings naming the task (e.g. ``("qoli20", 9, 180, 3)``); unique within one
        :func:`map` call. Keys are reported to progress callbacks and attached to errors.
    payload
        Whatever the task function needs (must pickle for the process/Dask backends).
    seed
        The task's own :class:`numpy.random.SeedSequence` (``child_sequence(root, key)``), or
        ``None`` for a task that draws no random numbers.
    """

    key: tuple
    payload: Any = None
    seed: np.random.SeedSequence | None = field(default=None, compare=False)

    def rng(self) -> np.random.Generator:
        """A PCG64 generator on the task's own stream."""
        if self.seed is None:
            raise ConfigError(f"task {self.key!r} has no seed; build tasks with make_tasks(..., seed=...)")
        return np.random.Generator(np.random.PCG64(self.seed))


def make_tasks(payloads: Mapping[tuple, Any] | Iterable[tuple[tuple, Any]], seed: SeedLike = None,
               *, prefix: Sequence[int | str] = (), seeded: bool = True) -> list[Task]:
    """Tasks from ``{key: payload}`` (or ``(key, payload)`` pairs), each seeded by its key.

    Parameters
    ----------
    payloads
        Keys are tuples of ints/strings (a scalar key is wrapped in a 1-tuple).
    seed
        The analysis seed (int, SeedSequence or None for fresh entropy, which is then the same
        root for all tasks of this call).
    prefix
        Prepended to every key when deriving the seed only (e.g. ``("bootstrap",)``) so two
        stages of one analysis never share streams even if their task keys coincide.
    seeded
        ``False`` builds tasks without a seed (deterministic work).
    """
    from .seeding import root_sequence

    items = payloads.items() if isinstance(payloads, Mapping) else payloads
    root = root_sequence(seed) if seeded else None
    tasks: list[Task] = []
    seen: set = set()
    for key, payload in items:
        key = key if isinstance(key, tuple) else (key,)
        if key in seen:
            raise ConfigError(f"duplicate task key {key!r}: every task needs its own key")
        seen.add(key)
        task_seed = child_sequence(root, tuple(prefix) + key) if seeded else None
        tasks.append(Task(key=key, payload=payload, seed=task_seed))
    return tasks


# --------------------------------------------------------------------------- worker side

_WORKER_CONTEXT: dict[str, Any] = {}
_PR_SET_PDEATHSIG = 1
_WATCHDOG_INTERVAL = 1.0


def _exit_with_parent(owner_pid: int) -> None:
    """End this worker process when ``owner_pid`` (the process that made the pool) dies.

    With the ``forkserver`` start method a worker's parent is the fork server, which exits when
    the owner dies; ``PR_SET_PDEATHSIG`` (Linux) then kills the worker at once. The watchdog
    thread covers every platform and the ``spawn`` method: it polls once a second whether the
    parent changed or the owner is gone, and exits the process without cleanup (it holds no
    resources of its own; its results would have nowhere to go).
    """
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    def owner_alive() -> bool:
        try:
            os.kill(owner_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # a live process of another user: cannot be our owner, but is alive
            return True
        return True

    def watch() -> None:
        while os.getppid() == parent and owner_alive():
            time.sleep(_WATCHDOG_INTERVAL)
        os._exit(1)

    if not owner_alive():  # the owner died before the signal was armed
        os._exit(1)
    threading.Thread(target=watch, name="fidelitymed-parent-watchdog", daemon=True).start()


def _process_context() -> multiprocessing.context.BaseContext:
    """The start method of worker processes: ``forkserver`` where the platform has it, else ``spawn``."""
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    mp_context = multiprocessing.get_context(method)
    if method == "forkserver":
        # the fork server imports the analysis once; its workers start with it loaded (this has
        # no effect once the fork server runs, e.g. started by another pool)
        mp_context.set_forkserver_preload(["fidelitymed._preload"])
    return mp_context


def start_fork_server() -> None:
    """Start the ``processes`` backend's fork server now, where the platform has one.

    It imports the analysis (~1.5 s on one core) in the background, overlapping with whatever
    the caller does before its first map (the study run: reading and scoring the data; the
    command line: its own imports as well); ``ensure_running()`` does not wait for it. Idempotent:
    a running fork server is kept.
    """
    if _process_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _init_process_worker(context: Any, owner_pid: int | None = None) -> None:
    if owner_pid is not None:
        _exit_with_parent(owner_pid)
    # One copy of the shared context per worker process instead of one per task.
    _WORKER_CONTEXT["value"] = context


def _run_in_process(func: Callable, task: Task, with_context: bool) -> Any:
    with single_thread(), in_task():
        if with_context:
            return func(task, _WORKER_CONTEXT["value"])
        return func(task)


def _run_with_context(func: Callable, task: Task, context: Any) -> Any:
    with single_thread(), in_task():
        return func(task, context)


def _call(func: Callable, task: Task) -> Any:
    with single_thread(), in_task():
        return func(task)


def _annotate(exc: BaseException, task: Task) -> BaseException:
    with contextlib.suppress(Exception):
        exc.add_note(f"in fidelitymed.parallel task {task.key!r}")
    return exc


_BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """One BLAS thread in worker processes started meanwhile (unless the user set the variables).

    ``workers`` processes each running a multi-threaded BLAS oversubscribe the cores; Dask's
    nanny does the same for its workers (``distributed.nanny.pre-spawn-environ``). Results do
    not depend on it: every task runs pinned to one thread (:func:`fidelitymed.blas.single_thread`).
    """
    saved = {k: os.environ.get(k) for k in _BLAS_THREAD_VARS}
    for k in _BLAS_THREAD_VARS:
        os.environ.setdefault(k, "1")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------- executor

class Executor:
    """A backend that runs :meth:`map` calls; a context manager that owns its pool/cluster.

    Parameters
    ----------
    backend
        ``"serial"``, ``"processes"`` or ``"dask"``.
    workers
        Number of worker processes (default: ``os.cpu_count()``; ignored by ``"serial"`` and when
        ``scheduler`` names an existing cluster).
    scheduler
        ``"tcp://HOST:PORT"`` of a running dask scheduler; only with ``backend="dask"``.
    connect_timeout
        Seconds to wait for the scheduler to answer (default 5).
    worker_timeout
        Seconds a Dask cluster may have no worker -- before the first task or after losing all of
        them -- before :meth:`map` gives up (default 20).

    The pool or cluster is started lazily by the first :meth:`map` and kept until :meth:`close`
    (or the end of the ``with`` block), so one pipeline run starts it only once.
    """

    def __init__(self, backend: Backend | str = "serial", workers: int | None = None,
                 scheduler: str | None = None, *, connect_timeout: float = 5.0,
                 worker_timeout: float = 20.0) -> None:
        if scheduler is not None:
            if backend != "dask":
                raise ConfigError(f"a scheduler ({scheduler!r}) needs the dask backend; got backend {backend!r} "
                                  "(use --backend dask, or drop --scheduler)")
            if not str(scheduler).startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://")):
                raise ConfigError(f"scheduler must be an address like 'tcp://HOST:PORT'; got {scheduler!r}")
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer))
                                    or workers < 1):
            raise ConfigError(f"workers must be a positive integer; got {workers!r}")
        self.backend: str = backend
        self.workers: int = int(workers) if workers is not None else (os.cpu_count() or 1)
        self.scheduler: str | None = scheduler
        self.connect_timeout = float(connect_timeout)
        self.worker_timeout = float(worker_timeout)
        self._pool: ProcessPoolExecutor | None = None
        self._pool_context_id: int | None = None
        self._cluster = None
        self._client = None
        self._scattered: tuple[Any, Any] | None = None

    # -- description used in manifests
    def describe(self) -> dict[str, Any]:
        """JSON-safe description (backend, workers, scheduler) for a results manifest."""
        return {"backend": self.backend,
                "workers": 1 if self.backend == "serial" else (None if self.scheduler else self.workers),
                "scheduler": self.scheduler}

    def __repr__(self) -> str:
        return f"Executor(backend={self.backend!r}, workers={self.workers}, scheduler={self.scheduler!r})"

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Executor:
        """Connect to the Dask scheduler (and wait for a worker) or start the local cluster now.

        :meth:`map` does this itself on first use; calling it early makes an unreachable or
        workerless cluster fail before any work is done. For ``"processes"`` it starts the fork
        server, which imports the analysis while the caller goes on (the pool itself starts with
        its shared context at the first map); a no-op for ``"serial"``.
        """
        if self.backend == "dask":
            self._ensure_client()
        elif self.backend == "processes":
            start_fork_server()
        return self

    def close(self) -> None:
        """Shut down the pool / client / local cluster (idempotent)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._pool_context_id = None
        self._scattered = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()
            self._cluster = None

    # -- the one operation
    def map(self, func: Callable[..., Any], tasks: Iterable[Task], *,
            progress: ProgressCallback | None = None, context: Any = None,
            on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
        """``[func(task) for task in tasks]`` (or ``func(task, context)``), in task order.

        The same as ``start_map(...).results()`` (:meth:`start_map`).

        Parameters
        ----------
        func
            The task function; module-level (picklable) for the process and Dask backends.
        tasks
            :class:`Task` objects (see :func:`make_tasks`).
        progress
            ``progress(done, total, key)``, called in this process after each finished task.
        context
            Optional object shared by all tasks, shipped once per worker. On ``"processes"`` a
            context other than the last map's starts new workers; a map without one runs on the
            workers already started.
        on_result
            ``on_result(index, result)``, called in this process as each task's result arrives
            (in the order the tasks finish; serially, in task order), before ``progress``: work
            on one result need not wait for the whole map. Its exception stops the map as a
            task's does.

        Raises
        ------
        Exception
            The first failing task's exception, re-raised here with a note naming its key.
        """
        return self.start_map(func, tasks, progress=progress, context=context, on_result=on_result).results()

    def start_map(self, func: Callable[..., Any], tasks: Iterable[Task], *,
                  progress: ProgressCallback | None = None, context: Any = None,
                  on_result: Callable[[int, Any], None] | None = None) -> PendingMap:
        """Start :meth:`map` on the workers and return at once; :meth:`PendingMap.results` waits.

        This process is free meanwhile (e.g. to pool what an earlier map returned). Use it as a
        context manager: leaving the ``with`` block by an exception cancels the tasks not yet
        started. ``"serial"`` runs the tasks here, now (there is no one else to run them).
        Arguments and errors as :meth:`map` (``on_result`` is called while
        :meth:`PendingMap.results` waits); the results are the same on every backend.
        """
        tasks = list(tasks)
        for task in tasks:
            if not isinstance(task, Task):
                raise ConfigError(f"parallel.map expects Task objects (see make_tasks); got {type(task).__name__}")
        if len({t.key for t in tasks}) != len(tasks):
            raise ConfigError("parallel.map: task keys must be unique")
        if not tasks:
            return PendingMap(lambda: [])
        if self.backend == "serial":
            done = self._map_serial(func, tasks, progress, context, on_result)
            return PendingMap(lambda: done)
        if self.backend == "processes":
            return self._map_processes(func, tasks, progress, context, on_result)
        return self._map_dask(func, tasks, progress, context, on_result)

    def _map_serial(self, func, tasks, progress, context, on_result=None) -> list[Any]:
        out: list[Any] = []
        total = len(tasks)
        for i, task in enumerate(tasks):
            try:
                with single_thread(), in_task():
                    out.append(func(task) if context is None else func(task, context))
            except Exception as exc:
                raise _annotate(exc, task)
            if on_result is not None:
                on_result(i, out[-1])
            if progress is not None:
                progress(i + 1, total, task.key)
        return out

    def _ensure_pool(self, context: Any) -> ProcessPoolExecutor:
        # A new shared context needs fresh workers (it is installed by the initializer); a map
        # without one runs on the workers there are: a fresh worker spends 1-2 s importing numpy,
        # scipy and matplotlib again.
        if self._pool is not None and context is not None and self._pool_context_id != id(context):
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                             mp_context=_process_context(),
                                             initializer=_init_process_worker,
                                             initargs=(context, os.getpid()))
            self._pool_context_id = id(context)
        return self._pool

    def _map_processes(self, func, tasks, progress, context, on_result=None) -> list[Any]:
        with _single_threaded_blas():
            # worker processes (and the forkserver they fork from) start during these submits
            pool = self._ensure_pool(context)
            with_context = context is not None
            futures = {pool.submit(_run_in_process, func, task, with_context): i for i, task in enumerate(tasks)}
        return PendingMap(lambda: self._collect(futures, tasks, progress, as_completed, on_result), futures)

    def _ensure_client(self):
        if self._client is None:
            from distributed import Client, LocalCluster

            if self.scheduler is not None:
                try:
                    self._client = Client(self.scheduler, set_as_default=False, timeout=self.connect_timeout)
                except (OSError, TimeoutError) as exc:
                    raise ClusterError(f"cannot reach the dask scheduler at {self.scheduler} within "
                                       f"{self.connect_timeout:g} s ({_first_line(exc)})") from None
                try:
                    self._client.wait_for_workers(1, timeout=self.worker_timeout)
                except (OSError, TimeoutError):
                    self.close()
                    raise ClusterError(f"the dask scheduler at {self.scheduler} has no workers (waited "
                                       f"{self.worker_timeout:g} s); start some with 'dask worker "
                                       f"{self.scheduler}'") from None
            else:
                # Single-threaded worker processes: the numerical work holds the GIL in places,
                # and one thread per worker keeps BLAS from oversubscribing the cores.
                self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                             dashboard_address=None, silence_logs=logging.ERROR)
                self._client = Client(self._cluster, set_as_default=False)
        return self._client

    def _map_dask(self, func, tasks, progress, context, on_result=None) -> list[Any]:
        client = self._ensure_client()
        if context is not None:
            # Wrapped in a list so a dict/list context travels as one object (scatter splits
            # containers); scattered once per context object and reused by later maps.
            if self._scattered is None or self._scattered[0] is not context:
                self._scattered = (context, client.scatter([context], broadcast=True, hash=False)[0])
            shared = self._scattered[1]
            futures_list = client.map(_run_with_context, [func] * len(tasks), tasks,
                                      context=shared, pure=False)
        else:
            futures_list = client.map(_call, [func] * len(tasks), tasks, pure=False)
        futures = {fut: i for i, fut in enumerate(futures_list)}
        where = f"the dask cluster at {self.scheduler}" if self.scheduler else "the local dask cluster"

        def completed(futs: list) -> Iterator:
            return _completed_dask(futs, where, self.worker_timeout)

        def collect() -> list[Any]:
            try:
                return self._collect(futures, tasks, progress, completed, on_result)
            finally:
                for fut in futures_list:
                    fut.release()

        return PendingMap(collect, futures)

    @staticmethod
    def _collect(futures: dict, tasks: list[Task], progress, completed, on_result=None) -> list[Any]:
        results: list[Any] = [None] * len(tasks)
        total = len(tasks)
        try:
            for done_count, fut in enumerate(completed(list(futures)), start=1):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except Exception as exc:
                    if type(exc).__name__ == "KilledWorker":
                        died = _retries()
                        raise ClusterError(f"task {tasks[i].key!r} was running on workers that died "
                                           f"{died} time{'s' if died > 1 else ''} (out of memory or "
                                           "killed?); no results") from None
                    raise _annotate(exc, tasks[i])
                if on_result is not None:
                    on_result(i, results[i])
                if progress is not None:
                    progress(done_count, total, tasks[i].key)
        except BaseException:
            for fut in futures:
                with contextlib.suppress(Exception):
                    fut.cancel()
            raise
        return results


class PendingMap:
    """A map under way (:meth:`Executor.start_map`); :meth:`results` waits for it.

    A context manager: an exception inside the ``with`` block (an interrupt included) cancels
    the tasks that have not started, so a run that stops does not leave the workers busy.
    """

    def __init__(self, collect: Callable[[], list[Any]], futures: Iterable[Any] = ()) -> None:
        self._collect = collect
        self._futures = list(futures)
        self._results: list[Any] | None = None

    def results(self) -> list[Any]:
        """The tasks' results in task order, once all have finished (the first failure raises)."""
        if self._results is None:
            self._results = self._collect()
        return self._results

    def cancel(self) -> None:
        """Cancel the tasks not started yet (those running finish; their results are dropped)."""
        for fut in self._futures:
            with contextlib.suppress(Exception):
                fut.cancel()

    def __enter__(self) -> PendingMap:
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        if exc_type is not None and self._results is None:
            self.cancel()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _retries() -> int:
    import dask

    return int(dask.config.get("distributed.scheduler.allowed-failures", 3)) + 1


def _completed_dask(futures: list, where: str, worker_timeout: float, poll: float = 0.02) -> Iterator:
    """Futures as they finish; :class:`ClusterError` once the cluster has had no worker for ``worker_timeout`` s.

    A scheduler keeps tasks waiting for workers forever, so the wait is watched here: while
    nothing finishes, the scheduler's worker count is asked once a second.
    """
    from distributed import as_completed

    client = futures[0].client
    # as_completed looks up "the current client"; ours is never the global default.
    with client.as_current():
        remaining = as_completed(futures)
        last_check = time.monotonic()
        workerless_since: float | None = None
        while not remaining.is_empty():
            batch = remaining.next_batch(block=False)
            if batch:
                yield from batch
                continue
            time.sleep(poll)
            now = time.monotonic()
            if now - last_check < 1.0:
                continue
            last_check = now
            try:
                n_workers = len(client.nthreads())
            except Exception as exc:
                raise ClusterError(f"lost the connection to {where} ({_first_line(exc)})") from None
            if n_workers:
                workerless_since = None
            elif workerless_since is None:
                workerless_since = now
            elif now - workerless_since >= worker_timeout:
                raise ClusterError(f"{where} lost all its workers and none came back within "
                                   f"{worker_timeout:g} s; no results")


def map(func: Callable[..., Any], tasks: Iterable[Task], *, backend: Backend | str = "serial",
        workers: int | None = None, scheduler: str | None = None,
        progress: ProgressCallback | None = None, context: Any = None) -> list[Any]:
    """Run ``func`` over ``tasks`` on one backend and return the results in task order.

    A one-shot :class:`Executor`: the pool or local cluster is started and cleanly shut down
    within the call. Use :class:`Executor` directly to reuse it across several calls.

    Parameters
    ----------
    func
        ``func(task)`` (or ``func(task, context)``), drawing random numbers only from
        ``task.seed`` / ``task.rng()``.
    tasks
        :class:`Task` objects, e.g. from :func:`make_tasks`.
    backend, workers, scheduler
        See :class:`Executor`.
    progress
        ``progress(done, total, key)`` after each finished task (see :func:`rich_progress`).
    context
        Optional object shared by every task.

    Returns
    -------
    list
        ``[func(t) for t in tasks]`` — identical on every backend.
    """
    with Executor(backend, workers=workers, scheduler=scheduler) as ex:
        return ex.map(func, tasks, progress=progress, context=context)


class _RichCallback:
    def __init__(self, progress, task_id) -> None:
        self._progress = progress
        self._task_id = task_id

    def __call__(self, done: int, total: int, key: tuple) -> None:
        self._progress.update(self._task_id, completed=done, total=total)


@contextlib.contextmanager
def rich_progress(description: str = "tasks", *, total: int | None = None, disable: bool = False,
                  console=None) -> Iterator[ProgressCallback]:
    """A rich progress bar as a ``progress`` callback for :func:`map`.

    >>> with rich_progress("models") as cb:            # doctest: +SKIP
    ...     results = map(fit, tasks, backend="processes", progress=cb)

    With ``disable=True`` a no-op callback is yielded (quiet runs).
    """
    if disable:
        yield lambda done, total, key: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as prog:
        task_id = prog.add_task(description, total=total)
        yield _RichCallback(prog, task_id)


def example_task(task: Task, context: Any = None) -> np.ndarray:
    """A small seeded bootstrap used by the tests, the benchmark and as a template.

    ``task.payload`` (or ``context`` when given) is a 1-D array; returns the means of 200
    bootstrap resamples drawn from the task's own stream (one vectorized draw, no Python loop).
    """
    data = np.asarray(context if context is not None else task.payload, dtype=float)
    idx = task.rng().integers(0, data.shape[0], size=(200, data.shape[0]))
    return data[idx].mean(axis=1)
