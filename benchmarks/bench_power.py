"""Benchmark: Monte Carlo power of the indirect effect, fidelitymed against per-replicate peers.

Prints, in one run:

1. throughput -- replicates x bootstrap resamples per second for the percentile bootstrap at
   N = 162 (a = b = .26), serially and on the process backend;
2. the Fritz & MacKinnon (2007, Table 3) cells -- N for 0.80 power with the percentile bootstrap,
   alpha = .05, c' = 0, for a = b = .26 (published: 162) and a = b = .14 (published: 558), with
   raw paths and unit residual variances (``effects="unit_residual"``, their set-up; see
   docs/power.md), the Monte Carlo SE and 95% interval of our N, the power at the published N,
   and the time;
3. the peers -- a plain loop over ``pingouin.mediation_analysis`` (bias-corrected bootstrap CI) and
   over ``pyprocessmacro.Process(model=4)`` (percentile CI), one call per simulated data set, run
   on a few replicates only and *extrapolated* linearly to the same work; ratios side by side.

Run:  .venv/bin/python benchmarks/bench_power.py [--quick] [--n-rep 1000] [--n-boot 1000]
Peers: ``pip install pingouin pyprocessmacro`` (the ``bench`` extra); a missing peer is reported
and skipped. Timings on a shared machine are noisy: rerun before quoting.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import time
import warnings

import numpy as np
import pandas as pd

import fidelitymed
from fidelitymed.stats import power as P

PUBLISHED = {0.26: 162, 0.14: 558}


def _timed(func, *args, **kwargs):
    start = time.perf_counter()
    out = func(*args, **kwargs)
    return out, time.perf_counter() - start


def _peer_data(n: int, reps: int, seed: int) -> list[pd.DataFrame]:
    # the same standardized model as power_mediation (a = b = .26, c' = 0)
    design = P._make_design(0.26, 0.26, 0.0, 0.0, 1, 0.0, None)
    z = P._simulate_block(design, n, reps, P._block_seed(fidelitymed.seeding.root_sequence(seed),
                                                         n, 0))
    return [pd.DataFrame(z[r][:, 1:4], columns=["x", "m", "y"]) for r in range(reps)]


def _pingouin_loop(frames, n_boot):
    import pingouin as pg

    hits = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, df in enumerate(frames):  # the peer's way: one call per simulated data set
            res = pg.mediation_analysis(data=df, x="x", m="m", y="y", n_boot=n_boot, seed=i)
            row = res.loc[res["path"] == "Indirect"].iloc[0]
            hits += bool(row["CI2.5"] > 0 or row["CI97.5"] < 0)
    return hits


def _processmacro_loop(frames, n_boot):
    from pyprocessmacro import Process

    hits = 0
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for i, df in enumerate(frames):
            proc = Process(data=df, model=4, x="x", y="y", m=["m"], boot=n_boot, seed=i + 1,
                           suppr_init=True)
            summary = proc.indirect_model.coeff_summary()
            lo, hi = summary["BootLLCI"].iloc[0], summary["BootULCI"].iloc[0]
            hits += bool(lo > 0 or hi < 0)
    return hits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-rep", type=int, default=1000, help="replicates per N (ours)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--peer-reps", type=int, default=10, help="replicates run by each peer")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2007)
    parser.add_argument("--quick", action="store_true", help="small run (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_rep, args.n_boot, args.peer_reps = 200, 500, 3
    R, B = args.n_rep, args.n_boot

    print(f"fidelitymed {fidelitymed.__version__} | numpy {np.__version__} | "
          f"python {platform.python_version()} | {os.cpu_count()} CPUs | R = {R}, B = {B}")

    # 1. throughput ------------------------------------------------------------------------
    rows = []
    power_mediation = fidelitymed.power_mediation
    power_mediation(0.26, 0.26, 162, n_rep=25, n_boot=100, seed=1)  # warm-up (imports)
    res_serial, t_serial = _timed(power_mediation, 0.26, 0.26, 162, n_rep=R, n_boot=B,
                                  seed=args.seed)
    res_proc, t_proc = _timed(power_mediation, 0.26, 0.26, 162, n_rep=R, n_boot=B,
                              seed=args.seed, executor="processes", workers=args.workers)
    assert res_proc.rejections == res_serial.rejections  # same seed, same answer
    rows.append(("fidelitymed, serial", R, t_serial, R * B / t_serial, res_serial.power))
    rows.append((f"fidelitymed, processes x{args.workers}", R, t_proc, R * B / t_proc,
                 res_proc.power))
    for method in ("bca", "monte_carlo", "joint"):
        res, t = _timed(power_mediation, 0.26, 0.26, 162, method=method, n_rep=R, n_boot=B,
                        seed=args.seed)
        rows.append((f"fidelitymed, serial, {method}", R, t,
                     (R * B if method != "joint" else R) / t, res.power))

    # 3. peers (before the long cells, so their numbers sit next to ours) -------------------
    peers: dict[str, dict[int, float]] = {}
    for name, loop in (("pingouin.mediation_analysis loop (BC CI)", _pingouin_loop),
                       ("pyprocessmacro Process loop (percentile CI)", _processmacro_loop)):
        try:
            for n in (162, 558):
                hits, t = _timed(loop, _peer_data(n, args.peer_reps, args.seed), B)
                peers.setdefault(name, {})[n] = t / args.peer_reps
                if n == 162:
                    per_rep = t / args.peer_reps
                    rows.append((name + f" [ran {args.peer_reps} reps]", R, per_rep * R,
                                 B / per_rep, hits / args.peer_reps))
        except ImportError as exc:
            print(f"peer skipped: {name}: {exc}")

    table = pd.DataFrame(rows, columns=["run", "replicates", "seconds (peers: extrapolated)",
                                        "reps x resamples / s", "power"])
    table["ratio vs fidelitymed serial"] = table["seconds (peers: extrapolated)"] / t_serial
    print("\n1. Power at N = 162, a = b = .26, c' = 0, percentile bootstrap unless named "
          "(peers extrapolated from their few replicates to R):")
    with pd.option_context("display.width", 160, "display.max_colwidth", 60,
                           "display.float_format", "{:,.3f}".format):
        print(table.to_string(index=False))

    # 2. Fritz & MacKinnon cells --------------------------------------------------------------
    print("\n2. Fritz & MacKinnon (2007, Table 3): N for 0.80 power, percentile bootstrap, "
          "alpha = .05, c' = 0, raw paths with unit residual variances")
    cells = []
    for path in (0.26, 0.14):
        res, t = _timed(fidelitymed.sample_size_mediation, path, path, power=0.8,
                        method="percentile", n_rep=R, n_boot=B, seed=args.seed,
                        executor="processes", workers=args.workers, effects="unit_residual")
        published = PUBLISHED[path]
        at_pub = float(res.fitted_power(published))
        low, high = res.fitted_band(published)
        n_sims = sum(r.n_rep for r in res.curve)
        # peers: their per-replicate time at the published N times the same replicates
        peer_cell = {name: per_rep[published] * n_sims for name, per_rep in peers.items()}
        cells.append({
            "a = b": path, "published N": published, "our N": res.n,
            "MC SE of N": round(res.n_se, 1),
            "95% CI of N": f"[{res.n_ci_low:.0f}, {res.n_ci_high:.0f}]",
            "z (ours - published)": round((res.n_exact - published) / res.n_se, 2),
            "fitted power at published N": f"{at_pub:.3f} [{float(low[0]):.3f}, {float(high[0]):.3f}]",
            "grid Ns": len(res.curve), "replicates": n_sims,
            f"seconds (processes x{args.workers})": round(t, 1),
            **{f"{name.split()[0]} s (extrapolated)": round(v, 0) for name, v in peer_cell.items()},
            **{f"ratio {name.split()[0]}": round(v / t, 1) for name, v in peer_cell.items()},
        })
        print(res.summary())
        print()
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(cells).to_string(index=False))
    print("\nPeers ran only a few replicates each; their times are per-replicate times x the "
          "same number of replicates (linear extrapolation). pingouin's CI is bias-corrected, "
          "pyprocessmacro's percentile; the work per replicate (B resamples of n = 162) is the same.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
