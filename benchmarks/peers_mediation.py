"""Time the peer implementations of PROCESS Model 4 on one CSV; print JSON (run by bench_mediation.py).

Runs in its own virtualenv (benchmarks/.venv-peers) because the peers pin older stacks.  Usage:
    .venv-peers/bin/python peers_mediation.py DATA.csv N_BOOT REPS [SLOW_BOOT]
    .venv-peers/bin/python peers_mediation.py --variant DATA.csv N_BOOT REPS M1,M2,... Y LOGIT(0|1)
The second form times pyprocessmacro alone on one Model 4 variant (parallel mediators, logistic Y)
and prints the indirect effects it estimates, one per mediator.
pingouin and statsmodels' Mediation refit per resample (linear cost in resamples); with SLOW_BOOT they
run that many resamples and their time is scaled to N_BOOT (reported as extrapolated).
The CSV has columns fidelity, alliance, qol and the already dummy-coded covariates (all others).
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")


def best_of(fn, reps):
    times, value = [], None
    for _ in range(reps):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return min(times), value


def variant(path: str, n_boot: int, reps: int, mediators: list[str], y: str, logit: bool) -> None:
    d = pd.read_csv(path)
    covs = [c for c in d.columns if c not in ("fidelity", y, *mediators) and not c.startswith("_")]
    from pyprocessmacro import Process

    def run():
        p = Process(data=d, model=4, x="fidelity", m=mediators if len(mediators) > 1 else mediators[0], y=y,
                    controls=covs, boot=n_boot, seed=1, suppr_init=True, logit=logit, percent=True)
        return [float(v) for v in np.ravel(p.indirect_model.estimation_results["effect"])]

    t, ab = best_of(run, reps)
    print(json.dumps({"pyprocessmacro": {"seconds": t, "ab": ab, "reps": reps}}))


def main() -> None:
    if sys.argv[1] == "--variant":
        _, _, path, n_boot, reps, meds, y, logit = sys.argv
        variant(path, int(n_boot), int(reps), meds.split(","), y, logit == "1")
        return
    path, n_boot, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sm_boot = int(sys.argv[4]) if len(sys.argv) > 4 else n_boot
    pg_boot = sm_boot
    d = pd.read_csv(path)
    covs = [c for c in d.columns if c not in ("fidelity", "alliance", "qol")]
    out = {}

    from pyprocessmacro import Process

    def run_ppm():
        p = Process(data=d, model=4, x="fidelity", m="alliance", y="qol", controls=covs, boot=n_boot, seed=1,
                    suppr_init=True)
        return float(np.ravel(p.indirect_model.estimation_results["effect"])[0])

    t, ab = best_of(run_ppm, reps)
    out["pyprocessmacro"] = {"seconds": t, "ab": ab, "reps": reps}

    import pingouin as pg

    def run_pg():
        r = pg.mediation_analysis(data=d, x="fidelity", m="alliance", y="qol", covar=covs, n_boot=pg_boot, seed=1)
        return float(r.loc[r["path"] == "Indirect", "coef"].iloc[0])

    t, ab = best_of(run_pg, max(1, reps // 2))
    out["pingouin"] = {"seconds": t * n_boot / pg_boot, "ab": ab, "reps": max(1, reps // 2),
                       "extrapolated_from": pg_boot if pg_boot != n_boot else None}

    import statsmodels.api as sm
    from statsmodels.stats.mediation import Mediation

    def run_sm():
        np.random.seed(1)
        exog_y = sm.add_constant(d[["fidelity", "alliance", *covs]])
        exog_m = sm.add_constant(d[["fidelity", *covs]])
        med = Mediation(sm.OLS(d["qol"], exog_y), sm.OLS(d["alliance"], exog_m), "fidelity", "alliance")
        res = med.fit(method="bootstrap", n_rep=sm_boot)
        return float(np.mean(res.ACME_avg))  # statsmodels reports the mean over resamples

    t, ab = best_of(run_sm, 1)
    out["statsmodels"] = {"seconds": t * n_boot / sm_boot, "ab": ab, "reps": 1,
                          "extrapolated_from": sm_boot if sm_boot != n_boot else None}
    out["versions"] = {"numpy": np.__version__, "pandas": pd.__version__, "pingouin": pg.__version__,
                       "statsmodels": sm.__version__ if hasattr(sm, "__version__") else None}
    try:
        from importlib.metadata import version

        out["versions"]["pyprocessmacro"] = version("PyProcessMacro")
    except Exception:  # pragma: no cover
        pass
    print(json.dumps(out))


if __name__ == "__main__":
    main()
