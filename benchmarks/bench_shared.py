"""Benchmark: the study's models of one data set, one ``mediate`` each vs ``mediate_many`` (shared resamples).

The pipeline fits every model of an imputed data set (outcome x wave pair x fidelity window: 24 on
the demo study) on that data set's resamples.  One ``mediate`` per model computes its own moment
product per block of resamples, (T x n) @ (n x 500) with T = 171 cross-products; ``mediate_many``
draws and counts the resamples once and computes one product over the union of the models'
columns.  This script takes the first imputed data set of the demo study (or of a simulated study
of ``--clients N``), times both ways on one thread (as inside a worker), checks that they give
the same draws, and prints the ratio and the arithmetic of both.

    .venv/bin/python benchmarks/bench_shared.py                   # demo study, n = 311
    .venv/bin/python benchmarks/bench_shared.py --clients 20000   # simulated, 20,000 clients

Not a test: run it when the machine is quiet.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("FIDELITYMED_THREADS", "1")  # one thread, as in a worker of the run's executor

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=None, help="simulate a study of this many clients")
    parser.add_argument("--boot", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    from fidelitymed import demo_study_path, load_study, simulate_study
    from fidelitymed.pipeline import mediation_models, prepare_frames, study_models
    from fidelitymed.stats.mediation import mediate, mediate_many
    from fidelitymed.stats.process.design import prepare
    from fidelitymed.stats.process.linear import standardized_frame
    from fidelitymed.stats.process.model4 import _union_columns

    with tempfile.TemporaryDirectory() as tmp:
        path = (simulate_study(Path(tmp) / "study", seed=1, n_clients=args.clients).path if args.clients
                else demo_study_path())
        study = load_study(path)
        start = time.perf_counter()
        frame = prepare_frames(study, impute=True, m=1).frames[0]
        print(f"one imputed data set in {time.perf_counter() - start:.1f} s")
    models = mediation_models(study_models(study.config))
    designs = [prepare(frame, s["x"], [s["m"]] if isinstance(s["m"], str) else s["m"], s["y"], s["covariates"],
                       s["categorical"], None) for s in models]
    Zs = [standardized_frame(d)[0] for d in designs]
    union, _ = _union_columns(Zs)
    n = designs[0].n
    t_each = sum(Z.shape[1] * (Z.shape[1] + 1) // 2 for Z in Zs)
    t_union = union.shape[1] * (union.shape[1] + 1) // 2
    print(f"n = {n}, {len(models)} models, {args.boot} resamples; moment rows: {t_each} summed over the models "
          f"({t_each // len(models)} each) vs {t_union} for the union of {union.shape[1]} columns "
          f"({t_each / t_union:.1f}x less arithmetic)")

    def each():
        return [mediate(frame, **s, n_boot=args.boot, seed=7, save_boot=True) for s in models]

    def shared():
        return mediate_many(frame, models, n_boot=args.boot, seed=7, save_boot=True)

    times = {"one mediate per model": [], "mediate_many": []}
    for _ in range(args.reps):
        for name, fn in (("one mediate per model", each), ("mediate_many", shared)):
            start = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - start)
            if name == "mediate_many":
                got = out
            else:
                ref = out
    worst = max(float(np.max(np.abs(a.boot_draws.to_numpy() - b.boot_draws.to_numpy())
                             / np.maximum(np.abs(b.boot_draws.to_numpy()), 1e-12))) for a, b in zip(got, ref))
    best = {k: min(v) for k, v in times.items()}
    for name, t in best.items():
        print(f"{name:<24} {t:8.2f} s   ({t / len(models) * 1000:7.1f} ms per model; best of {args.reps})")
    print(f"mediate_many is {best['one mediate per model'] / best['mediate_many']:.2f}x faster; "
          f"largest relative difference of a draw: {worst:.1e}")


if __name__ == "__main__":
    main()
