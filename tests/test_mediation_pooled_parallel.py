"""Parallel mediators with multiple imputation: Rubin-pooled paths, stacked and Monte Carlo indirect effects."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fidelitymed.errors import ConfigError
from fidelitymed.seeding import child_sequence, root_sequence
from fidelitymed.stats.mediation import mediate
from fidelitymed.stats.pooling import _parallel_mc_draws
from fidelitymed.stats.process import montecarlo
from fidelitymed.stats.process.design import prepare

MEDS = ["alliance", "hope"]
KW = dict(covariates=["age"])


def _data(rng, n=220, miss=0.2):
    x = rng.normal(size=n)
    age = rng.normal(40, 10, n)
    m1 = 0.4 * x + 0.01 * age + rng.normal(size=n)
    m2 = 0.3 * x + 0.3 * m1 + rng.normal(size=n)
    y = 0.5 * m1 + 0.2 * m2 + 0.1 * x + rng.normal(size=n)
    frame = pd.DataFrame({"fid": x, "alliance": m1, "hope": m2, "qol": y, "age": age})
    if miss:
        frame.loc[rng.random(n) < miss, "alliance"] = np.nan
        frame.loc[rng.random(n) < miss / 2, "qol"] = np.nan
    return frame


def test_complete_data_reduce_to_the_complete_analysis():
    frame = _data(np.random.default_rng(1), miss=0)
    pooled = mediate(frame, "fid", MEDS, "qol", impute=3, pool="stacked", n_boot=300, seed=5, contrast=True, **KW)
    single = mediate(frame, "fid", MEDS, "qol", n_boot=0, contrast=True, **KW)
    d, s = pooled.to_dict(), single.to_dict()
    for path in ("a", "b"):
        for m in MEDS:
            assert d["paths"][path][m]["coef"] == pytest.approx(s["paths"][path][m]["coef"], rel=1e-12)
            assert d["paths"][path][m]["se"] == pytest.approx(s["paths"][path][m]["se"], rel=1e-12)
    assert d["paths"]["c_prime"]["coef"] == pytest.approx(s["paths"]["c_prime"]["coef"], rel=1e-12)
    assert list(d["models"]) == ["alliance", "hope", "outcome", "total"]
    assert d["models"]["hope"]["r2"] == pytest.approx(s["models"]["hope"]["r2"], rel=1e-9)
    for m in ("total", *MEDS):
        assert d["indirect"][m]["effect"] == pytest.approx(s["indirect"][m]["effect"], rel=1e-12)
    # stacked limits = percentiles of the three per-imputation bootstraps with their keyed seeds
    root = root_sequence(5)
    draws = pd.concat([mediate(frame, "fid", MEDS, "qol", n_boot=300, save_boot=True, contrast=True,
                               seed=child_sequence(root, ("boot", k)), **KW).boot_draws for k in range(3)])
    for key, col in (("hope", "ab:hope"), ("total", "ab")):
        assert d["indirect"][key]["ci_low"] == pytest.approx(np.percentile(draws[col], 2.5), rel=1e-12)
    v = draws["contrast:alliance - hope"]
    assert d["contrasts"]["alliance - hope"]["ci_high"] == pytest.approx(np.percentile(v, 97.5), rel=1e-12)
    assert d["indirect_std"]["hope"]["boot_se"] == pytest.approx(draws["ab_std:hope"].std(ddof=1), rel=1e-9)
    json.dumps(d, allow_nan=False)
    assert {"a:hope", "indirect:total", "contrast:alliance - hope"} <= set(pooled.to_frame().index)
    assert "ab:hope" in pooled.summary()


def test_rubin_mc_within_covariance_is_the_joint_path_covariance():
    """With complete data B = 0, so T = Ubar: its a block (corr(e_j, e_l) se_j se_l) equals the SUR
    covariance Monte Carlo uses for one data set (exact for classical SEs), the b block the outcome fit's."""
    frame = _data(np.random.default_rng(2), miss=0)
    single = mediate(frame, "fid", MEDS, "qol", n_boot=0, **KW)
    _, qbar, t_cov = _parallel_mc_draws([single, single], 10, 1)
    design = prepare(frame, "fid", MEDS, "qol", ["age"], (), None)
    _, V = montecarlo.path_covariance(design, single.mediator_models, single.outcome_model, 2)
    np.testing.assert_allclose(t_cov, V[:4, :4], rtol=1e-10, atol=1e-16)
    np.testing.assert_allclose(qbar, [single.paths["a"][m]["coef"] for m in MEDS]
                               + [single.paths["b"][m]["coef"] for m in MEDS], rtol=1e-12)


def test_rubin_mc_and_stacked_run_reproducibly_with_missing_data():
    frame = _data(np.random.default_rng(3))
    for pool in ("stacked", "rubin_mc"):
        kw = dict(impute=4, pool=pool, n_boot=200, seed=9, contrast="absolute", **KW)
        first = mediate(frame, "fid", MEDS, "qol", **kw).to_dict()
        assert first == mediate(frame, "fid", MEDS, "qol", **kw).to_dict()
        assert first["imputations"] == 4 and list(first["indirect"]) == ["total", *MEDS]
        assert set(first["paths"]["a"]["hope"]) >= {"coef", "se", "df", "fmi"}
        tot = first["indirect"]["total"]
        assert tot["ci_low"] < tot["effect"] < tot["ci_high"]
    rm = mediate(frame, "fid", MEDS, "qol", impute=4, pool="rubin_mc", n_boot=200, seed=9, **KW).to_dict()
    prod = sum(rm["paths"]["a"][m]["coef"] * rm["paths"]["b"][m]["coef"] for m in MEDS)
    assert rm["indirect"]["total"]["effect"] == pytest.approx(prod, rel=1e-12)


def test_boot_mi_refused_for_parallel_mediators():
    frame = _data(np.random.default_rng(4))
    with pytest.raises(ConfigError, match="boot_mi"):
        mediate(frame, "fid", MEDS, "qol", impute=3, pool="boot_mi", n_boot=50, seed=1, **KW)
