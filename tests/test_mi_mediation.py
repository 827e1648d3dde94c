"""mediate_imputed: Model 4 with multiple imputation -- agreement with mediate, schemes, sanity."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from fidelitymed.errors import ConfigError
from fidelitymed.seeding import generator, root_sequence
from fidelitymed.stats.mediation import mediate
from fidelitymed.stats.mi_mediation import _batched_indirect, _boot_mi, mediate_imputed


def _data(rng, n=200, a=0.4, b=0.5, c=0.1, miss=0.25):
    x = rng.normal(size=n)
    age = rng.normal(40, 10, n)
    site = rng.integers(1, 4, n)
    m = a * x + 0.01 * age + rng.normal(size=n)
    y = b * m + c * x + 0.2 * (site == 2) + rng.normal(size=n)
    frame = pd.DataFrame({"fid": x, "alliance": m, "qol": y, "age": age, "site": site})
    if miss:
        # MAR on x: higher fidelity -> alliance missing more often
        p_m = miss * 2 / (1 + np.exp(-x))
        frame.loc[rng.random(n) < p_m, "alliance"] = np.nan
        frame.loc[rng.random(n) < miss * 0.6, "qol"] = np.nan
        frame.loc[rng.random(n) < 0.05, "site"] = np.nan
    return frame


KW = dict(covariates=["age", "site"], categorical=["site"])


def test_complete_data_reduce_to_mediate():
    frame = _data(np.random.default_rng(1), miss=0)
    pooled = mediate_imputed(frame, "fid", "alliance", "qol", impute=3, pool="stacked", n_boot=300, seed=5, **KW)
    single = mediate(frame, "fid", "alliance", "qol", n_boot=0, **KW)
    for path in ("a", "b", "c_prime", "c"):
        assert pooled.paths[path]["coef"] == pytest.approx(single.paths[path]["coef"], rel=1e-12)
        assert pooled.paths[path]["se"] == pytest.approx(single.paths[path]["se"], rel=1e-12)
        # B = 0: riv = 0 and mice's fmi = 2 / (df + 3)
        assert pooled.paths[path]["riv"] == 0
        assert pooled.paths[path]["fmi"] == pytest.approx(2 / (pooled.paths[path]["df"] + 3))
        assert pooled.paths[path]["p"] == pytest.approx(single.paths[path]["p"], rel=0.02, abs=1e-12)
    for key in ("r2", "mse"):
        assert pooled.models["outcome"][key] == pytest.approx(single.models["outcome"][key], rel=1e-9)
    assert pooled.models["outcome"]["F"] == pytest.approx(single.models["outcome"]["F"], rel=1e-9)
    assert pooled.indirect["effect"] == pytest.approx(single.ab, rel=1e-12)
    # stacked draws = the three per-imputation bootstraps with their keyed seeds
    root = root_sequence(5)
    from fidelitymed.seeding import child_sequence
    draws = np.concatenate([mediate(frame, "fid", "alliance", "qol", n_boot=300, save_boot=True,
                                    seed=child_sequence(root, ("boot", k)), **KW).boot_draws["ab"] for k in range(3)])
    assert pooled.indirect["ci_low"] == pytest.approx(np.percentile(draws, 2.5))
    assert pooled.indirect["ci_high"] == pytest.approx(np.percentile(draws, 97.5))


@pytest.mark.parametrize("pool", ["stacked", "rubin_mc", "boot_mi"])
def test_schemes_run_reproducibly(pool):
    frame = _data(np.random.default_rng(2))
    kw = dict(impute=4, pool=pool, n_boot=200, seed=9, boot_mi_resamples=60, **KW)
    first = mediate_imputed(frame, "fid", "alliance", "qol", **kw)
    second = mediate_imputed(frame, "fid", "alliance", "qol", **kw)
    d = first.to_dict()
    assert d == second.to_dict()
    assert set(d) == set(mediate(frame.dropna(), "fid", "alliance", "qol", n_boot=0, **KW).to_dict()) | {
        "imputations", "pooling"}
    assert d["imputations"] == 4 and d["pooling"] == pool and d["seed"] == 9 and d["n_dropped"] == 0
    assert d["n"] == len(frame)
    lo, hi = d["indirect"]["ci_low"], d["indirect"]["ci_high"]
    assert lo < d["indirect"]["effect"] < hi
    json.dumps(d)
    assert "Imputations: 4" in first.summary()


def test_batched_indirect_against_statsmodels():
    rng = np.random.default_rng(3)
    k, n = 4, 50
    values = rng.normal(size=(k, n, 5))
    values[:, :, 4] = rng.integers(0, 2, (k, n))        # a dummy covariate
    got = _batched_indirect(values, 0, 1, 2, [3, 4])
    for i in range(k):
        v = values[i]
        a = sm.OLS(v[:, 1], sm.add_constant(v[:, [0, 3, 4]])).fit().params[1]
        b = sm.OLS(v[:, 2], sm.add_constant(v[:, [0, 1, 3, 4]])).fit().params[2]
        sx, sy = v[:, 0].std(ddof=1), v[:, 2].std(ddof=1)
        np.testing.assert_allclose(got[i], [a * b, a * b / sy, a * b * sx / sy], rtol=1e-9)
    values[0, :, 4] = 0.0                                 # singular design -> NaN, not a crash
    assert np.isnan(_batched_indirect(values, 0, 1, 2, [3, 4])[0]).all()


def test_boot_mi_resamples_are_case_resamples():
    # without missing values imputation is the identity: each boot_mi replicate must be the
    # Model 4 estimate on resample r of the clients (indices from the keyed generator)
    frame = _data(np.random.default_rng(4), n=60, miss=0)
    cols = ["fid", "alliance", "qol", "age", "site"]
    root = root_sequence(21)
    est, failed = _boot_mi(frame, cols, "fid", "alliance", "qol", ["age", "site"], ["site"], 5, 2, 3, 5, root)
    idx = generator(root, ("boot_mi", "resample")).integers(0, len(frame), size=(5, len(frame)))
    assert failed == 0
    for r in range(5):
        res = mediate(frame.iloc[idx[r]].reset_index(drop=True), "fid", "alliance", "qol", n_boot=0, **KW)
        np.testing.assert_allclose(est[r], [res.ab, res.indirect_partially_std["effect"],
                                            res.indirect_std["effect"]], rtol=1e-8)


def test_argument_errors():
    frame = _data(np.random.default_rng(5))
    with pytest.raises(ConfigError, match="impute"):
        mediate_imputed(frame, "fid", "alliance", "qol", impute=1)
    with pytest.raises(ConfigError, match="pool must be one of"):
        mediate_imputed(frame, "fid", "alliance", "qol", pool="mean")
    with pytest.raises(ConfigError, match="unknown column"):
        mediate_imputed(frame, "fid", "alliance", "QOL")
    with pytest.raises(ConfigError, match="covariates"):
        mediate_imputed(frame, "fid", "alliance", "qol", categorical=["site"])
    frame["team"] = np.where(np.arange(len(frame)) % 7 == 0, np.nan, 1.0)
    with pytest.raises(ConfigError, match="cluster column"):
        mediate_imputed(frame, "fid", "alliance", "qol", cluster="team")


@pytest.mark.parametrize("reps", [pytest.param(12, id="light"),
                                  pytest.param(200, id="full", marks=pytest.mark.slow)])
def test_mar_paths_unbiased_and_indirect_covers(reps):
    rng = np.random.default_rng(77)
    a_true, b_true = 0.4, 0.5
    a_est, cover_a, cover_ab = [], [], {"stacked": [], "rubin_mc": []}
    for r in range(reps):
        frame = _data(rng, n=250)
        for pool in ("stacked", "rubin_mc"):
            res = mediate_imputed(frame, "fid", "alliance", "qol", impute=5, pool=pool, n_boot=300, seed=r, **KW)
            cover_ab[pool].append(res.indirect["ci_low"] <= a_true * b_true <= res.indirect["ci_high"])
        a_est.append(res.paths["a"]["coef"])
        cover_a.append(res.paths["a"]["ci_low"] <= a_true <= res.paths["a"]["ci_high"])
    a_est = np.array(a_est)
    mc_se = a_est.std(ddof=1) / np.sqrt(reps)
    assert abs(a_est.mean() - a_true) < 4 * mc_se + 0.01
    floor = 0.75 if reps < 50 else 0.91
    assert np.mean(cover_a) >= floor
    for pool, hits in cover_ab.items():
        assert np.mean(hits) >= floor, pool
