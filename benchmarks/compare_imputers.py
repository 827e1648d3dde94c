"""Item-level multiple imputation of the demo study: fidelitymed vs statsmodels, scikit-learn, miceforest.

Run:  .venv/bin/python benchmarks/compare_imputers.py [--m 20] [--iterations 10] [--peer-m 2]
                                                       [--peer-iterations 3] [--skip miceforest,...]

Peers are local benchmark tools only (``pip install scikit-learn miceforest``), not package
dependencies. What is measured, on the embedded demo study (311 clients, 5 waves):

* **data**: the wide client x (item, wave) table -- every scored item of QOLI-20, Hope, MCAS,
  ACE and RPRS at its scheduled waves (PGI excluded for the peers: its areas are optional, so a
  column-wise imputer cannot know which cells are structurally empty) -- plus the client
  covariates and site dummies: 201 item columns + 9 covariates.
* **amputation** (known truth): on top of the demo's own missing data, the 9-month interview
  of 10% of the clients who have one is deleted, more often for clients with low baseline
  QOLI-20 (MAR), and 3% of the remaining observed item values are deleted at random.
* **speed**: wall and CPU seconds for ``m`` imputations with ``iterations`` cycles. Peers that
  are too slow for m = 20 x 10 on this machine are run with ``--peer-m`` x ``--peer-iterations``
  and the time is extrapolated linearly (marked "extrap.").
* **validity**: share of imputed item values that are not a valid scale point of the item
  (integer within the codebook range) -- as returned, before any rounding.
* **fit / plausibility** on the amputated cells: RMSE of the item values (after rounding and
  clipping the continuous imputers, as a user would before scoring); RMSE and bias of the
  QOLI-20 total at 9 months of the clients whose interview was deleted; and the correlation of
  that total with the 4.5-month RPRS total (before amputation vs. after imputation).

The machine is shared: timings are noisy. The lead reruns this script for the README table.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from importlib.resources import files

import numpy as np
import pandas as pd

from fidelitymed.instruments.codebook import load_codebook
from fidelitymed.instruments.scoring import item_ranges
from fidelitymed.stats.impute import impute_interviews
from fidelitymed.study.schema import load_study

INSTRUMENTS = ("qoli20", "hope", "mcas", "ace", "rprs")


def wide_items(interviews: pd.DataFrame, clients: pd.Index, schedule) -> pd.DataFrame:
    cb = load_codebook()
    cols = {}
    for w, names in schedule.items():
        sub = interviews[interviews["wave"] == w].set_index("client").reindex(clients)
        for inst in names:
            if inst not in INSTRUMENTS:
                continue
            items = list(cb[inst]["items"])
            if inst == "hope":
                items = [c for c in items if c not in cb["hope"]["fillers"]]
            for c in items:
                v = pd.to_numeric(sub[c], errors="coerce")
                if inst == "qoli20":
                    v = v.where(~v.isin([8, 9]))
                cols[f"{c}@{w:g}"] = v.to_numpy(dtype=float)
    return pd.DataFrame(cols, index=clients)


def amputate(study, rng):
    """(amputated interviews, truth wide table, mask of amputated cells, deleted 9m clients)."""
    iv = study.interviews.copy()
    clients = pd.Index(study.clients["client"])
    truth = wide_items(iv, clients, study.config.schedule)
    base = truth[[f"qoli_{k}@0" for k in range(1, 21)]].mean(axis=1)
    nine = iv.index[(iv["wave"] == 9)]
    has_q = iv.loc[nine, "qoli_1"].notna()
    cand = nine[has_q.to_numpy()]
    b = base.reindex(iv.loc[cand, "client"]).to_numpy()
    b = np.where(np.isnan(b), np.nanmean(b), b)
    p = 1 / (1 + np.exp(-(np.log(0.1 / 0.9) - 1.2 * (b - b.mean()) / b.std())))
    drop = cand[rng.random(len(cand)) < p]
    deleted = pd.Index(iv.loc[drop, "client"])
    iv = iv.drop(index=drop).reset_index(drop=True)
    item_cols = [c for c in iv.columns if c.split("_")[0] in ("qoli", "hope", "mcas", "ace", "rprs")]
    vals = iv[item_cols].to_numpy(dtype=float, copy=True)
    hit = (rng.random(vals.shape) < 0.03) & ~np.isnan(vals)
    vals[hit] = np.nan
    iv[item_cols] = vals
    after = wide_items(iv, clients, study.config.schedule)
    mask = after.isna() & truth.notna()
    return iv, truth, mask, deleted


def covariates(study) -> pd.DataFrame:
    cl = study.clients.set_index("client")
    site = study.clients[["client", "team"]].merge(study.teams[["team", "site"]], on="team").set_index("client")["site"]
    cov = cl[["age", "gender", "housing", "employment", "education", "long_hospitalization"]].astype(float)
    dummies = pd.get_dummies(site, prefix="site", drop_first=True).astype(float)
    return pd.concat([cov, dummies.reindex(cov.index)], axis=1)


def valid_share(completed: pd.DataFrame, mask: pd.DataFrame, ranges) -> float:
    bad = total = 0
    for col in mask.columns:
        rows = mask[col].to_numpy()
        if not rows.any():
            continue
        item = col.split("@")[0]
        low, high, _ = ranges[item]
        v = completed[col].to_numpy()[rows]
        bad += int(((v != np.round(v)) | (v < low) | (v > high) | np.isnan(v)).sum())
        total += rows.sum()
    return bad / max(total, 1)


def fit_metrics(completed: pd.DataFrame, truth: pd.DataFrame, mask: pd.DataFrame, deleted, ranges) -> dict:
    rounded = completed.copy()
    for col in rounded.columns:
        if "@" in col:
            low, high, _ = ranges[col.split("@")[0]]
            rounded[col] = np.clip(np.round(rounded[col]), low, high)
    errs = [(rounded[c].to_numpy() - truth[c].to_numpy())[mask[c].to_numpy()] for c in mask.columns]
    item_rmse = float(np.sqrt(np.mean(np.concatenate(errs) ** 2)))
    q9 = [f"qoli_{k}@9" for k in range(1, 21)]
    total_true = truth.loc[deleted, q9].sum(axis=1, min_count=20)
    total_imp = rounded.loc[deleted, q9].sum(axis=1)
    ok = total_true.notna()
    diff = (total_imp - total_true)[ok]
    r4 = [f"rprs_{k}@4.5" for k in range(1, 25)]
    r_true = pd.concat([truth[q9].sum(axis=1, min_count=20), truth[r4].mean(axis=1)], axis=1).dropna().corr().iloc[0, 1]
    r_imp = np.corrcoef(rounded[q9].sum(axis=1), rounded[r4].mean(axis=1))[0, 1]
    return {"item_rmse": item_rmse, "qoli9_rmse": float(np.sqrt(np.mean(diff ** 2))), "qoli9_bias": float(diff.mean()),
            "r_qoli9_rprs45": float(r_imp), "r_true": float(r_true)}


def run_ours(study, iv, m, iterations, seed):
    aux = study.clients[["client", "team"]].merge(study.teams[["team", "site"]], on="team")[["client", "site"]]
    res = impute_interviews(iv, study.clients, study.config, m=m, iterations=iterations, seed=seed, auxiliary=aux)
    clients = pd.Index(study.clients["client"])
    return [wide_items(d, clients, study.config.schedule) for d in res]


def run_statsmodels(frame, m, iterations, seed):
    """MICEData with our predictor rule (same scale-wave items + covariates): with its default
    (every other column, ~200 predictors) the OLS fits fail on this table (SVD does not converge)."""
    from statsmodels.imputation.mice import MICEData

    names = {c: f"v{i}" for i, c in enumerate(frame.columns)}
    data = frame.rename(columns=names).reset_index(drop=True)
    np.random.seed(seed)   # MICEData draws from numpy's global state
    imp = MICEData(data)
    covs = [names[c] for c in frame.columns if "@" not in c]
    for col in frame.columns:
        if "@" not in col or not frame[col].isna().any():
            continue
        inst, wave = col.split("_")[0], col.split("@")[1]
        same = [names[c] for c in frame.columns if c != col and c.split("_")[0] == inst and c.endswith(f"@{wave}")]
        imp.set_imputer(names[col], formula=" + ".join(same + covs))
    out = []
    for _ in range(m):
        imp.update_all(iterations)
        out.append(imp.data.rename(columns={v: k for k, v in names.items()}).set_index(frame.index))
    return out


def run_sklearn(frame, m, iterations, seed):
    import sklearn.experimental.enable_iterative_imputer  # noqa: F401  (registers IterativeImputer)
    from sklearn.impute import IterativeImputer

    out = []
    for k in range(m):
        imp = IterativeImputer(sample_posterior=True, max_iter=iterations, random_state=seed + k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = imp.fit_transform(frame.to_numpy())
        out.append(pd.DataFrame(arr, index=frame.index, columns=frame.columns))
    return out


def run_sklearn_nearest(frame, m, iterations, seed, n_features=40):
    import sklearn.experimental.enable_iterative_imputer  # noqa: F401  (registers IterativeImputer)
    from sklearn.impute import IterativeImputer

    out = []
    for k in range(m):
        imp = IterativeImputer(sample_posterior=True, max_iter=iterations, random_state=seed + k,
                               n_nearest_features=n_features)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = imp.fit_transform(frame.to_numpy())
        out.append(pd.DataFrame(arr, index=frame.index, columns=frame.columns))
    return out


def run_miceforest(frame, m, iterations, seed):
    import miceforest as mf

    data = frame.reset_index(drop=True).copy()
    data.columns = [c.replace("@", "_at_").replace(".", "_") for c in data.columns]
    kernel = mf.ImputationKernel(data, num_datasets=m, random_state=seed)
    kernel.mice(iterations)
    out = []
    for k in range(m):
        d = kernel.complete_data(dataset=k)
        d.columns = frame.columns
        d.index = frame.index
        out.append(d)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--m", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--peer-m", type=int, default=2)
    ap.add_argument("--peer-iterations", type=int, default=3)
    ap.add_argument("--skip", default="")
    ap.add_argument("--seed", type=int, default=20241126)
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    study = load_study(files("fidelitymed") / "data" / "demo")
    rng = np.random.default_rng(args.seed)
    iv, truth, mask, deleted = amputate(study, rng)
    clients = pd.Index(study.clients["client"])
    items = wide_items(iv, clients, study.config.schedule)
    frame = pd.concat([items, covariates(study)], axis=1)
    ranges = item_ranges(study.config.scoring)
    print(f"demo study: {len(clients)} clients, {items.shape[1]} item columns + {frame.shape[1] - items.shape[1]} "
          f"covariates; {items.isna().to_numpy().mean():.1%} of item cells missing after amputation "
          f"({int(mask.to_numpy().sum())} amputated cells, {len(deleted)} deleted 9-month interviews); "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    methods = [("fidelitymed MICE-PMM", lambda mm, it: run_ours(study, iv, mm, it, args.seed), False),
               ("statsmodels MICEData", lambda mm, it: run_statsmodels(frame, mm, it, args.seed), True),
               ("sklearn IterativeImputer", lambda mm, it: run_sklearn(frame, mm, it, args.seed), True),
               ("sklearn IterativeImputer (40 nearest)", lambda mm, it: run_sklearn_nearest(frame, mm, it, args.seed),
                True),
               ("miceforest", lambda mm, it: run_miceforest(frame, mm, it, args.seed), True)]
    rows = []
    for name, fn, is_peer in methods:
        key = name.split()[0].lower()
        if key in skip or name in skip:
            continue
        mm, it = (args.peer_m, args.peer_iterations) if is_peer else (args.m, args.iterations)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            sets = fn(mm, it)
        except Exception as exc:  # a peer failing is a result too
            rows.append({"method": name, "error": f"{type(exc).__name__}: {exc}"[:120]})
            continue
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        scale = (args.m * args.iterations) / (mm * it)
        met = [fit_metrics(s, truth, mask, deleted, ranges) for s in sets]
        rows.append({
            "method": name, "run": f"m={mm} x {it} it", "wall_s": wall, "cpu_s": cpu,
            f"wall_m{args.m}x{args.iterations}_s": wall * scale,
            f"cpu_m{args.m}x{args.iterations}_s": cpu * scale,
            "extrapolated": scale != 1,
            "invalid_share": float(np.mean([valid_share(s[items.columns], mask, ranges) for s in sets])),
            **{k: float(np.mean([d[k] for d in met])) for k in met[0]},
        })
        print(f"  {name}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
