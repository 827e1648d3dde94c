"""Time the whole demo study: m = 20 imputations, 5,000 resamples, 8 models x 3 windows.

Runs :func:`fidelitymed.run_study` on the embedded demo study serially and on 2 workers
(local processes and a 2-worker Dask LocalCluster) and prints where the time goes (the
``timings`` of each stage) and whether the results agree. Target: under 60 s on the 2-core
machine. Not a test: run it when the machine is quiet.

    .venv/bin/python benchmarks/bench_study.py            # the full study (slow on a busy machine)
    .venv/bin/python benchmarks/bench_study.py --quick    # m = 5, 1,000 resamples
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _diff(x, y, path=""):
    if isinstance(x, dict) and isinstance(y, dict):
        for k in x:
            yield from _diff(x[k], y.get(k), f"{path}.{k}")
    elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
        for i, (u, v) in enumerate(zip(x, y)):
            yield from _diff(u, v, f"{path}[{i}]")
    elif json.dumps(x) != json.dumps(y):
        yield path, x, y


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="m = 5 and 1,000 resamples")
    parser.add_argument("--imputations", type=int, default=None)
    parser.add_argument("--n-boot", type=int, default=None)
    parser.add_argument("--backends", default="serial,processes,dask",
                        help="comma-separated backends to time (default: serial,processes,dask)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--report", action="store_true", help="also render the HTML report (timed as 'outputs')")
    args = parser.parse_args(argv)

    from fidelitymed import parallel
    from fidelitymed.pipeline import run_study
    from fidelitymed.simulate import demo_study_path

    m = args.imputations or (5 if args.quick else 20)
    n_boot = args.n_boot or (1000 if args.quick else 5000)
    print(f"demo study: m = {m}, {n_boot} resamples, 8 models x 3 windows = {24 * m} model tasks; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    rows = []
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            workers = 1 if backend == "serial" else args.workers
            ex = parallel.Executor(backend, workers=workers)
            start = time.perf_counter()
            with ex:
                if backend == "dask":
                    ex._ensure_client()          # cluster start-up timed separately
                started = time.perf_counter() - start
                results = run_study(demo_study_path(), out=str(Path(tmp) / backend), executor=ex,
                                    imputations=m, n_boot=n_boot, report=args.report)
            total = time.perf_counter() - start
            d = results.to_dict()
            d["manifest"].pop("executor")
            same = None
            if reference is None:
                reference = d
            else:
                diffs = list(_diff(reference, d))
                same = not diffs
                for path, x, y in diffs[:5]:
                    print(f"  {backend} differs at {path}: {x!r} vs {y!r}")
            rows.append((backend, workers, total, started, results.timings, same))

    stages = list(dict.fromkeys(k for r in rows for k in r[4]))
    head = f"{'backend':<10} {'workers':>7} {'total s':>8} {'startup':>8} " + " ".join(f"{s[:14]:>14}" for s in stages)
    print(head)
    print("-" * len(head))
    for backend, workers, total, started, timings, same in rows:
        cells = " ".join(f"{timings.get(s, 0.0):>14.2f}" for s in stages)
        flag = "" if same is None else ("  identical to serial" if same else "  DIFFERS from serial")
        print(f"{backend:<10} {workers:>7} {total:>8.2f} {started:>8.2f} {cells}{flag}")
    serial = next((r for r in rows if r[0] == "serial"), None)
    if serial is not None:
        per_task = serial[4].get("mediation models", 0.0) / (24 * m)
        print(f"\nserial: {per_task * 1000:.0f} ms per model task ({n_boot} resamples, n = 311)")
        for backend, workers, total, *_ in rows:
            if backend != "serial":
                print(f"{backend} x{workers}: {serial[2] / total:.2f}x the serial speed")
    best = min(r[2] for r in rows)
    print(f"fastest: {best:.1f} s (target < 60 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
