"""Time the whole study by stage against its arithmetic floor, serially and on worker processes.

Runs :func:`fidelitymed.run_study` on the embedded demo study (m = 20, 5,000 resamples, 8
models x 3 windows = 480 model tasks), or on a simulated study of ``--clients N``, once per
backend, and prints a stage table (load, imputation, models, ICCs, outputs, other), the
floor, the ratio to the floor and the speed-up over serial.

The floor is the arithmetic the study cannot avoid: one moment-product GEMM per model task,
(n_boot x n) @ (n x 171) -- the resample count matrix times the 171 distinct cross-products of
a model's 18 columns -- timed in this same run (median of 7 before and 7 after the runs), times the number of model
tasks. Timing in the same run makes the ratio meaningful on a loaded machine; the absolute
seconds are not.

Memory (:class:`RunMemory`): the peak over the run of the summed PSS of this process, the fork
server and the workers, sampled together with psutil (the memory the run takes), and of their
summed RSS (which counts shared pages once per process); and this process's own peak
(``resource.getrusage``). The sampling is not free: ~1 CPU s of a demo run on either backend,
which a serial run takes from the idle second core and a 2-process run from its workers, so
``--no-memory`` times the speed-up without it.

    .venv/bin/python benchmarks/bench_study.py                      # demo, serial + 2 processes
    .venv/bin/python benchmarks/bench_study.py --quick              # m = 5, 1,000 resamples
    .venv/bin/python benchmarks/bench_study.py --report --repeat 3  # fastest of 3 interleaved runs each
    .venv/bin/python benchmarks/bench_study.py --report --repeat 3 --no-memory  # the speed-up, unsampled
    .venv/bin/python benchmarks/bench_study.py --clients 20000 --imputations 5 --backends processes
    .venv/bin/python benchmarks/bench_study.py --pooling boot_mi --backends processes
    .venv/bin/python benchmarks/bench_study.py --pooling boot_mi --boot-mi-resamples 40 --backends dask --workers 4

Not a test: run it when the machine is quiet.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

#: the stage table's columns: name -> the run_study timings they sum
STAGES = {
    "load": ("load", "exposure + frame"),
    # on processes with the report the trajectories are drawn while the workers impute: one stage
    "imputation": ("imputation", "imputation + study figures"),
    "models": ("mediation models",),
    "multilevel": ("multilevel models",),
    "ICCs": ("ICCs",),
    "boot-MI": ("boot_mi",),
    "outputs": ("outputs",),
}
MOMENT_COLUMNS = 171


def _diff(x, y, path=""):
    if isinstance(x, dict) and isinstance(y, dict):
        for k in x:
            yield from _diff(x[k], y.get(k), f"{path}.{k}")
    elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
        for i, (u, v) in enumerate(zip(x, y)):
            yield from _diff(u, v, f"{path}[{i}]")
    elif json.dumps(x) != json.dumps(y):
        yield path, x, y


def gemm_times_elsewhere(n_boot: int, n: int, repeats: int = 7) -> list[float]:
    """:func:`gemm_times` in a fresh process: its arrays (1.6 GB at 20,000 clients) must not count
    in this process's peak memory, which is the study's."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(gemm_times, n_boot, n, repeats).result()


def gemm_times(n_boot: int, n: int, repeats: int = 7) -> list[float]:
    """Seconds of ``repeats`` (n_boot x n) @ (n x 171) float64 products (the per-model floor)."""
    import numpy as np

    rng = np.random.default_rng(0)
    counts = rng.poisson(1.0, size=(n_boot, n)).astype(float)
    moments = rng.standard_normal((n, MOMENT_COLUMNS))
    counts @ moments                                    # warm up BLAS
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        counts @ moments
        times.append(time.perf_counter() - start)
    return times


def _rss_pss(proc) -> tuple[int, int]:
    """(RSS, PSS) in bytes of a psutil process, from smaps_rollup (Linux >= 4.14), else (RSS, RSS)."""
    try:
        with open(f"/proc/{proc.pid}/smaps_rollup", "rb") as f:
            fields = dict(line.split(b":", 1) for line in f.read().splitlines()[1:] if b":" in line)
        return int(fields[b"Rss"].split()[0]) * 1024, int(fields[b"Pss"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        rss = proc.memory_info().rss
        return rss, rss


class RunMemory:
    """Peak memory of the whole run: this process and all its descendants (the fork server and
    the pool workers, which are its grandchildren and which ``RUSAGE_CHILDREN`` never sees),
    sampled together every ``interval`` seconds.

    Two sums: resident sets (RSS; counts the pages the workers share with the fork server once
    per process) and proportional set sizes (PSS; counts each shared page once in all -- the
    memory the run takes from the machine).  Both come from ``/proc/<pid>/smaps_rollup`` (one
    short read per process; psutil's ``memory_full_info`` parses the whole ``smaps``, which took
    a noticeable share of a core at this interval), RSS alone from psutil where it is missing.
    """

    def __init__(self, interval: float = 0.25) -> None:
        self.interval, self._stop = interval, threading.Event()
        self.peak_rss_mb = self.peak_pss_mb = self.peak_workers_rss_mb = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(self.interval):
            rss = pss = children_rss = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    proc_rss, proc_pss = _rss_pss(proc)
                except (psutil.Error, OSError):
                    continue
                rss += proc_rss
                pss += proc_pss
                if proc.pid != me.pid:
                    children_rss += proc_rss
            self.peak_rss_mb = max(self.peak_rss_mb, rss / 2**20)
            self.peak_pss_mb = max(self.peak_pss_mb, pss / 2**20)
            self.peak_workers_rss_mb = max(self.peak_workers_rss_mb, children_rss / 2**20)

    def __enter__(self) -> RunMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def own_peak_mb() -> float:
    """Peak RSS of this process (``resource.getrusage``; Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stage_row(timings: dict[str, float]) -> dict[str, float]:
    row = {name: sum(timings.get(k, 0.0) for k in keys) for name, keys in STAGES.items()}
    known = {k for keys in STAGES.values() for k in keys}
    row["other"] = sum(v for k, v in timings.items() if k not in known)
    return row


def _with_resamples(study_path: Path, folder: Path, resamples: int) -> Path:
    """A copy of the study whose study.yaml sets ``analysis.boot_mi_resamples``."""
    import shutil

    import yaml

    source = Path(study_path)
    source_dir = source.parent if source.is_file() else source
    yaml_path = source if source.is_file() else source / "study.yaml"
    shutil.copytree(source_dir, folder)
    config = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    config.setdefault("analysis", {})["boot_mi_resamples"] = int(resamples)
    target = folder / yaml_path.name
    target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="m = 5 and 1,000 resamples")
    parser.add_argument("--imputations", type=int, default=None)
    parser.add_argument("--n-boot", type=int, default=None)
    parser.add_argument("--clients", type=int, default=None,
                        help="simulate a study of this many clients (default: the demo study, 311)")
    parser.add_argument("--pooling", default=None, help="override analysis.pooling (stacked, rubin_mc, boot_mi)")
    parser.add_argument("--backends", default="serial,processes",
                        help="comma-separated backends to time (default: serial,processes)")
    parser.add_argument("--workers", default="2",
                        help="worker count, or comma-separated counts each timed in turn (e.g. 1,2,4)")
    parser.add_argument("--report", action="store_true", help="also render the HTML report (timed in 'outputs')")
    parser.add_argument("--boot-mi-resamples", type=int, default=None,
                        help="analysis.boot_mi_resamples of the study (default: the study's, 200); with "
                             "--pooling boot_mi, fewer resamples time the speed-up over workers sooner")
    parser.add_argument("--no-memory", action="store_true",
                        help="time without the memory sampler: its reads of /proc/<pid>/smaps_rollup cost "
                             "~1 CPU s of a demo run on either backend (measured), which a serial run takes "
                             "from the idle second core and a 2-process run from its workers")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time every backend N times, in interleaved rounds; the ratios then use each "
                             "backend's fastest run (a shared machine's speed drifts within minutes)")
    args = parser.parse_args(argv)

    from fidelitymed import parallel
    from fidelitymed.pipeline import run_study
    from fidelitymed.simulate import demo_study_path, simulate_study

    m = args.imputations or (5 if args.quick else 20)
    n_boot = args.n_boot or (1000 if args.quick else 5000)
    rows = []
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.clients:
            start = time.perf_counter()
            study_path = simulate_study(Path(tmp) / "study", seed=1, n_clients=args.clients).path
            print(f"simulated {args.clients} clients in {time.perf_counter() - start:.1f} s")
        else:
            study_path = demo_study_path()
        if args.boot_mi_resamples:
            study_path = _with_resamples(study_path, Path(tmp) / "resamples", args.boot_mi_resamples)
        from fidelitymed.study.schema import load_study

        n_clients = len(load_study(study_path, impute=False).clients)
        gemm_before = gemm_times_elsewhere(n_boot, n_clients)   # n of the models is at most the clients
        counts = [int(w) for w in str(args.workers).split(",")]
        runs = [(b, w) for _ in range(max(1, args.repeat)) for b in args.backends.split(",")
                for w in ([1] if b == "serial" else counts)]
        for run_index, (backend, workers) in enumerate(runs):
            ex = parallel.Executor(backend, workers=workers)
            start = time.perf_counter()
            memory = None if args.no_memory else RunMemory()
            with ex, (memory or contextlib.nullcontext()):
                if backend == "dask":
                    ex._ensure_client()          # cluster start-up timed separately
                started = time.perf_counter() - start
                results = run_study(study_path, out=str(Path(tmp) / f"{backend}-{workers}-{run_index}"), executor=ex,
                                    imputations=m, n_boot=n_boot, pooling=args.pooling, report=args.report)
            total = time.perf_counter() - start
            d = results.to_dict()
            d["manifest"].pop("executor")
            same = None
            if reference is None:
                reference = d
            else:
                diffs = list(_diff(reference, d))
                same = not diffs
                for path, x, y in diffs[:3]:
                    print(f"  {backend} differs at {path}: {x!r} vs {y!r} ({len(diffs)} values differ)")
            rows.append((backend, workers, total, started, stage_row(results.timings), same))
            if memory is None:
                print(f"  {backend}: {total:.1f} s (memory not sampled)", flush=True)
            else:
                print(f"  {backend}: {total:.1f} s; peak memory of the whole run (this process, fork server and "
                      f"workers, sampled together): {memory.peak_pss_mb:.0f} MiB PSS, {memory.peak_rss_mb:.0f} MiB "
                      f"summed RSS (workers alone {memory.peak_workers_rss_mb:.0f} MiB RSS; this process's own "
                      f"peak so far {own_peak_mb():.0f} MiB)", flush=True)
        n = int(reference["mediation"][0]["n"])
        n_models = len(reference["mediation"])

    tasks = n_models * m
    import numpy as np

    # timed before and after the runs: the median of both sets is less at the mercy of one busy moment
    times = (gemm_before if n == n_clients else []) + gemm_times_elsewhere(n_boot, n)
    gemm = float(np.median(times))
    floor = tasks * gemm
    print(f"study: n = {n}, m = {m}, {n_boot} resamples, {n_models} models -> {tasks} model bootstraps "
          f"({m} tasks: the models of a data set share its resamples), "
          f"pooling {reference['mediation'][0].get('pooling')}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at the end")
    print(f"floor: {tasks} x GEMM ({n_boot} x {n}) @ ({n} x {MOMENT_COLUMNS}) = {tasks} x {gemm * 1000:.2f} ms "
          f"= {floor:.2f} s (median of {len(times)} timed in this run)")
    head = (f"{'backend':<10} {'workers':>7} {'total s':>8} {'x floor':>8} "
            + " ".join(f"{s:>10}" for s in (*STAGES, "other")))
    print(head)
    print("-" * len(head))
    for backend, workers, total, started, stages, same in rows:
        cells = " ".join(f"{stages[s]:>10.2f}" for s in (*STAGES, "other"))
        flag = "" if same is None else ("  identical to the first" if same else "  DIFFERS from the first")
        extra = f"  (+{started:.1f} s cluster start)" if started > 0.05 else ""
        print(f"{backend:<10} {workers:>7} {total:>8.2f} {total / floor:>8.1f} {cells}{flag}{extra}")
    if args.repeat > 1:
        best = {}
        for row in rows:
            if (row[0], row[1]) not in best or row[2] < best[(row[0], row[1])][2]:
                best[(row[0], row[1])] = row
        print(f"fastest of {args.repeat} runs each:")
        for (backend, workers), row in best.items():
            print(f"{backend:<10} {workers:>7} {row[2]:>8.2f} {row[2] / floor:>8.1f}  (runs: "
                  + ", ".join(f"{r[2]:.1f}" for r in rows if (r[0], r[1]) == (backend, workers)) + " s)")
        rows = list(best.values())
    serial = next((r for r in rows if r[0] == "serial"), None)
    if serial is not None:
        for backend, workers, total, *_ in rows:
            if backend != "serial":
                print(f"{backend} x{workers}: {serial[2] / total:.2f}x the serial speed")
    for backend in dict.fromkeys(r[0] for r in rows):
        same = [r for r in rows if r[0] == backend]
        if len(same) > 1:
            one = same[0]
            print(f"{backend}: " + ", ".join(f"{w} workers {one[2] / t:.2f}x"
                                             + (f" (boot-MI stage {one[4]['boot-MI'] / st['boot-MI']:.2f}x)"
                                                if st["boot-MI"] > 0 else "")
                                             for _, w, t, _, st, _ in same[1:])
                  + f" the speed of {one[1]} worker(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
