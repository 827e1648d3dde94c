"""Coverage of the 95% CI of ab under stacked, rubin_mc and boot_mi on MAR data (a seeded simulation).

Each replicate draws a flat data set from a known PROCESS Model 4 (x -> m -> y, covariate z),
deletes m and y at random given the always-observed x and z (MAR, about 30% each), and
analyses it with :func:`fidelitymed.stats.mi_mediation.mediate_imputed` under each scheme,
plus Boot-MI pooled by von Hippel & Bartlett's (2021) rule (the study pipeline's rule; the
flat API's ``boot_mi`` takes percentile limits of the per-resample means). Used by
``tests/test_boot_mi_study.py`` (light in CI, full with ``--runslow``) and, run as a script,
prints the table of ``docs/imputation.md``:

    .venv/bin/python tests/coverage_sim.py --replicates 500
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

from fidelitymed.seeding import child_sequence, generator
from fidelitymed.stats import impute as _imp
from fidelitymed.stats.boot_mi import boot_mi_pool
from fidelitymed.stats.mi_mediation import mediate_imputed

A, B_PATH, C_PRIME = 0.4, 0.35, 0.1
TRUE_AB = A * B_PATH
SCHEMES = ("stacked", "rubin_mc", "boot_mi (percentile)", "boot_mi (von Hippel)")


def make_data(seed, n: int) -> pd.DataFrame:
    rng = generator(seed, ("data",))
    x, z = rng.standard_normal(n), rng.standard_normal(n)
    m = A * x + 0.3 * z + rng.standard_normal(n)
    y = B_PATH * m + C_PRIME * x + 0.3 * z + rng.standard_normal(n)
    expit = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    m_miss = rng.random(n) < expit(-1.0 + 1.0 * x)          # MAR on x
    y_miss = rng.random(n) < expit(-1.0 + 1.0 * z - 0.5 * x)  # MAR on z and x
    return pd.DataFrame({"x": x, "z": z, "m": np.where(m_miss, np.nan, m), "y": np.where(y_miss, np.nan, y)})


def boot_mi_von_hippel(data: pd.DataFrame, resamples: int, per: int, seed, iterations: int = 10):
    """Boot-MI of ab pooled by von Hippel & Bartlett (2021): all B x M chains in one vectorized run."""
    cols = ["x", "m", "y", "z"]
    base, targets, passives, _, _ = _imp._frame_engine(data, cols, [])
    n = base.shape[0]
    idx = generator(seed, ("boot_mi", "resample")).integers(0, n, size=(resamples, n))
    values, _ = _imp._run_all(base, targets, passives, seed, list(range(resamples * per)), ("boot_mi",), iterations,
                              _imp.DEFAULT_DONORS, _imp.DEFAULT_RIDGE, [], rows=np.repeat(idx, per, axis=0))
    x, m, y, z = (values[:, :, j] for j in range(4))
    ones = np.ones_like(x)

    def slope(design, target, which):
        xtx = np.einsum("kni,knj->kij", design, design)
        xty = np.einsum("kni,kn->ki", design, target)
        return np.linalg.solve(xtx, xty[:, :, None])[:, which, 0]

    a = slope(np.stack([ones, x, z], axis=2), m, 1)
    b = slope(np.stack([ones, x, m, z], axis=2), y, 2)
    return boot_mi_pool((a * b).reshape(resamples, per))


def replicate(r: int, seed: int, n: int, m_imp: int, n_boot: int, resamples: int) -> dict[str, tuple[float, float, float]]:
    """(estimate, ci_low, ci_high) of ab per scheme for replicate ``r``."""
    rep = child_sequence(seed, ("replicate", r))
    data = make_data(rep, n)
    out = {}
    for scheme in ("stacked", "rubin_mc", "boot_mi"):
        kw = {"boot_mi_resamples": resamples} if scheme == "boot_mi" else {}
        res = mediate_imputed(data, "x", "m", "y", covariates=["z"], impute=m_imp, pool=scheme, n_boot=n_boot,
                              seed=child_sequence(rep, ("analysis", scheme)), **kw)
        name = "boot_mi (percentile)" if scheme == "boot_mi" else scheme
        out[name] = (res.indirect["effect"], res.indirect["ci_low"], res.indirect["ci_high"])
    vh = boot_mi_von_hippel(data, resamples, 2, child_sequence(rep, ("analysis", "von_hippel")))
    out["boot_mi (von Hippel)"] = (float(vh.estimate), float(vh.ci_low), float(vh.ci_high))
    return out


def _replicate_task(task, context):
    return replicate(task.payload, **context)


def coverage_table(replicates: int, seed: int = 2024, n: int = 200, m_imp: int = 10, n_boot: int = 1000,
                   resamples: int = 200, backend: str = "serial", workers: int = 1) -> pd.DataFrame:
    """One row per scheme: coverage of the true ab, mean width, bias, mean estimate, replicates.

    Replicates are independent tasks (each seeded by its number), so any backend gives the same table.
    """
    from fidelitymed import parallel

    tasks = parallel.make_tasks({("replicate", r): r for r in range(replicates)}, seeded=False)
    context = {"seed": seed, "n": n, "m_imp": m_imp, "n_boot": n_boot, "resamples": resamples}
    rows = {s: [] for s in SCHEMES}
    for result in parallel.map(_replicate_task, tasks, backend=backend, workers=workers, context=context):
        for scheme, vals in result.items():
            rows[scheme].append(vals)
    table = []
    for scheme, vals in rows.items():
        arr = np.array(vals)
        covered = (arr[:, 1] <= TRUE_AB) & (TRUE_AB <= arr[:, 2])
        cov = covered.mean()
        table.append({"scheme": scheme, "coverage": cov,
                      "mc_se": float(np.sqrt(cov * (1 - cov) / len(arr))),
                      "mean_width": float((arr[:, 2] - arr[:, 1]).mean()),
                      "bias": float(arr[:, 0].mean() - TRUE_AB), "replicates": len(arr)})
    return pd.DataFrame(table)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicates", type=int, default=500)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--imputations", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--workers", type=int, default=1, help="local worker processes")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    table = coverage_table(args.replicates, seed=args.seed, n=args.n, m_imp=args.imputations,
                           backend="processes" if args.workers > 1 else "serial", workers=args.workers)
    print(f"n = {args.n}, m = {args.imputations}, true ab = {TRUE_AB:.3f}, {args.replicates} replicates, "
          f"{time.perf_counter() - start:.0f} s")
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
