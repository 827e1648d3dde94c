"""Rubin's rules and the indirect-effect pooling schemes, against R mice, statsmodels and hand formulas."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.imputation.mice import MICE

from fidelitymed.errors import ConfigError
from fidelitymed.seeding import generator
from fidelitymed.stats.mediation import mediate
from fidelitymed.stats.pooling import (barnard_rubin_df, pool_mediation, pool_r2, pool_wald, rubin,
                                       rubin_mc_draws)

REF = Path(__file__).parent / "reference"
MODELS = {"mediator": ("m", ["x", "w"]), "outcome": ("y", ["x", "m", "w"])}


@pytest.fixture(scope="module")
def reference():
    return json.loads((REF / "mice_pool.json").read_text())


@pytest.fixture(scope="module")
def fits():
    data = pd.read_csv(REF / "mice_pool_data.csv")
    out = {}
    for name, (y, xs) in MODELS.items():
        out[name] = [sm.OLS(d[y], sm.add_constant(d[xs])).fit() for _, d in data.groupby(".imp")]
    return out


@pytest.mark.parametrize("model", list(MODELS))
def test_rubin_equals_mice_pool(model, fits, reference):
    ref = reference["models"][model]
    fl = fits[model]
    pooled = rubin(np.stack([f.params.to_numpy() for f in fl]), np.stack([f.bse.to_numpy() ** 2 for f in fl]),
                   dfcom=fl[0].df_resid, conf=0.95)
    table = pd.DataFrame(ref["pooled"])
    for ours, theirs in (("estimate", "estimate"), ("ubar", "ubar"), ("b", "b"), ("t_var", "t"),
                         ("dfcom", "dfcom"), ("df", "df"), ("riv", "riv"), ("lambda_", "lambda"), ("fmi", "fmi")):
        np.testing.assert_allclose(getattr(pooled, ours), table[theirs], rtol=1e-9, err_msg=ours)
    summ = pd.DataFrame(ref["summary"])
    for ours, theirs in (("se", "std_error"), ("statistic", "statistic"), ("p", "p_value"),
                         ("ci_low", "ci_low"), ("ci_high", "ci_high")):
        np.testing.assert_allclose(getattr(pooled, ours), summ[theirs], rtol=1e-8, err_msg=ours)
    assert pooled.m == 5


@pytest.mark.parametrize("model", list(MODELS))
def test_model_pooling_equals_mice(model, fits, reference):
    ref = reference["models"][model]
    fl = fits[model]
    assert pool_r2([f.rsquared for f in fl]) == pytest.approx(ref["r_squared"], rel=1e-10)
    coefs = np.stack([f.params.to_numpy()[1:] for f in fl])
    vcovs = np.stack([f.cov_params().to_numpy()[1:, 1:] for f in fl])
    small = pool_wald(coefs, vcovs, dfcom=fl[0].df_resid)
    large = pool_wald(coefs, vcovs)
    for got, want in ((small, ref["D1"]), (large, ref["D1_large_sample"])):
        assert got["F"] == pytest.approx(want["statistic"], rel=1e-10)
        assert got["df1"] == want["df1"]
        assert got["df2"] == pytest.approx(want["df2"], rel=1e-10)
        assert got["p"] == pytest.approx(want["p"], rel=1e-9)
        assert got["riv"] == pytest.approx(want["riv"], rel=1e-10)


def test_rubin_against_statsmodels_combine(fits):
    fl = fits["outcome"]
    obj = MICE.__new__(MICE)
    obj.results_list = fl
    obj.exog_names = list(fl[0].params.index)
    obj.endog_names = "y"
    obj.model_class = sm.OLS
    combined = MICE.combine(obj)
    pooled = rubin(np.stack([f.params.to_numpy() for f in fl]), np.stack([f.bse.to_numpy() ** 2 for f in fl]))
    np.testing.assert_allclose(pooled.estimate, combined.params, rtol=1e-12)
    np.testing.assert_allclose(pooled.t_var, np.diag(combined.cov_params()), rtol=1e-10)
    np.testing.assert_allclose(pooled.lambda_, combined.frac_miss_info, rtol=1e-10)


def test_rubin_hand_formulas():
    q = [1.0, 1.4, 0.8, 1.2]
    u = [0.04, 0.05, 0.03, 0.04]
    m = 4
    qbar = sum(q) / m
    ubar = sum(u) / m
    b = sum((qi - qbar) ** 2 for qi in q) / (m - 1)
    t = ubar + (1 + 1 / m) * b
    lam = (1 + 1 / m) * b / t
    dfold = (m - 1) / lam ** 2
    dfcom = 30
    dfobs = (dfcom + 1) / (dfcom + 3) * dfcom * (1 - lam)
    df = dfold * dfobs / (dfold + dfobs)
    r = rubin(q, u, dfcom=dfcom)
    assert r.estimate[0] == pytest.approx(qbar)
    assert r.t_var[0] == pytest.approx(t)
    assert r.df[0] == pytest.approx(df)
    assert r.p[0] == pytest.approx(2 * stats.t.sf(qbar / t ** 0.5, df))
    assert r.ci_high[0] == pytest.approx(qbar + stats.t.ppf(0.975, df) * t ** 0.5)
    # infinite complete-data df gives the classic Rubin (1987) df
    assert rubin(q, u).df[0] == pytest.approx(dfold)


def test_barnard_rubin_zero_between_variance_matches_mice_floor():
    # mice floors lambda at 1e-4: B = 0 gives a large but finite df
    df = barnard_rubin_df(5, 0.0, 1.0, dfcom=50)
    lam = 1e-4
    dfold = 4 / lam ** 2
    dfobs = 51 / 53 * 50 * (1 - lam)
    assert df == pytest.approx(dfold * dfobs / (dfold + dfobs))


def test_rubin_needs_two_imputations():
    with pytest.raises(ConfigError, match="at least 2"):
        rubin([1.0], [0.1])


# ----------------------------------------------------------------------- mediation pooling
@pytest.fixture(scope="module")
def med_results():
    rng = np.random.default_rng(11)
    n = 150
    x = rng.normal(size=n)
    cov = rng.normal(size=n)
    out = []
    mm = 0.4 * x + 0.2 * cov + rng.normal(size=n)
    y = 0.5 * mm + 0.1 * x + rng.normal(size=n)
    miss = rng.random(n) < 0.3
    for k in range(5):   # "completed" data sets that differ in the missing rows of m
        mk = mm.copy()
        mk[miss] = 0.4 * x[miss] + rng.normal(size=miss.sum())
        d = pd.DataFrame({"x": x, "m": mk, "y": y, "c": cov})
        out.append(mediate(d, "x", "m", "y", covariates=["c"], n_boot=400, seed=k, save_boot=True))
    return out


def test_pooled_paths_are_rubin_of_the_fits(med_results):
    res = pool_mediation(med_results, "stacked")
    a = [r.mediator_model.coef[1] for r in med_results]
    va = [r.mediator_model.vcov[1, 1] for r in med_results]
    ref = rubin(a, va, dfcom=med_results[0].mediator_model.df_resid)
    assert res.paths["a"]["coef"] == pytest.approx(ref.estimate[0])
    assert res.paths["a"]["se"] == pytest.approx(ref.se[0])
    assert res.paths["a"]["df"] == pytest.approx(ref.df[0])
    b = [r.outcome_model.coef[2] for r in med_results]
    vb = [r.outcome_model.vcov[2, 2] for r in med_results]
    assert res.paths["b"]["p"] == pytest.approx(rubin(b, vb, dfcom=med_results[0].outcome_model.df_resid).p[0])


def test_stacked_is_percentiles_of_all_draws(med_results):
    res = pool_mediation(med_results, "stacked")
    draws = np.concatenate([r.boot_draws["ab"].to_numpy() for r in med_results])
    assert res.indirect["effect"] == pytest.approx(np.mean([r.ab for r in med_results]))
    assert res.indirect["ci_low"] == pytest.approx(np.percentile(draws, 2.5))
    assert res.indirect["ci_high"] == pytest.approx(np.percentile(draws, 97.5))
    assert res.indirect["boot_se"] == pytest.approx(np.std(draws, ddof=1))
    assert res.draws == 5 * 400
    d = res.to_dict()
    assert set(d) == set(med_results[0].to_dict()) | {"imputations", "pooling"}
    assert d["imputations"] == 5 and d["pooling"] == "stacked"
    json.dumps(d)


def test_rubin_mc_against_direct_numpy(med_results):
    res = pool_mediation(med_results, "rubin_mc", n_boot=20000, seed=3)
    m = len(med_results)
    a = np.array([r.paths["a"]["coef"] for r in med_results])
    b = np.array([r.paths["b"]["coef"] for r in med_results])
    se_a = np.array([r.paths["a"]["se"] for r in med_results])
    se_b = np.array([r.paths["b"]["se"] for r in med_results])
    between = np.cov(np.vstack([a, b]))
    total = np.diag([np.mean(se_a ** 2), np.mean(se_b ** 2)]) + (1 + 1 / m) * between
    mean = np.array([a.mean(), b.mean()])
    z = generator(3, ("rubin_mc",)).standard_normal((20000, 2))
    draws = mean + z @ np.linalg.cholesky(total).T
    prod = draws[:, 0] * draws[:, 1]
    assert res.indirect["effect"] == pytest.approx(a.mean() * b.mean())
    assert res.indirect["ci_low"] == pytest.approx(np.percentile(prod, 2.5))
    assert res.indirect["ci_high"] == pytest.approx(np.percentile(prod, 97.5))
    _, qbar, t_cov = rubin_mc_draws(med_results, 10, 3)
    np.testing.assert_allclose(t_cov, total)
    # the MC distribution of a*b has the moments of a product of normals (Aroian/Goodman):
    # E = mu_a mu_b + cov_ab; Var = mu_a^2 s_b^2 + mu_b^2 s_a^2 + s_a^2 s_b^2 + 2 mu_a mu_b c + c^2
    sa2, sb2, c = total[0, 0], total[1, 1], total[0, 1]
    var = mean[0] ** 2 * sb2 + mean[1] ** 2 * sa2 + sa2 * sb2 + 2 * mean[0] * mean[1] * c + c ** 2
    assert res.indirect["boot_se"] == pytest.approx(np.sqrt(var), rel=0.03)


def test_pool_errors(med_results):
    with pytest.raises(ConfigError, match="pool must be one of"):
        pool_mediation(med_results, "average")
    no_draws = [mediate(pd.DataFrame({"x": [1.0, 2, 3, 4, 5, 6], "m": [2.0, 1, 4, 3, 6, 5],
                                      "y": [1.0, 3, 2, 5, 4, 7]}), "x", "m", "y", n_boot=0)] * 2
    with pytest.raises(ConfigError, match="save_boot=True"):
        pool_mediation(no_draws, "stacked")
    with pytest.raises(ConfigError, match="per-resample"):
        pool_mediation(med_results, "boot_mi")
    with pytest.raises(ConfigError, match="at least 2"):
        pool_mediation(med_results[:1], "stacked")


def test_stacked_draws_are_read_by_column_name():
    """The stacked pooling reads the named draws from the frame's block, in the asked order."""
    from fidelitymed.stats.pooling import _draw_columns

    draws = pd.DataFrame(np.arange(12.0).reshape(4, 3), columns=["ab", "contrast:1-2", "ab_std"])
    np.testing.assert_array_equal(_draw_columns(draws, ["ab", "contrast:1-2", "ab_std"]), draws.to_numpy())
    np.testing.assert_array_equal(_draw_columns(draws, ["ab_std", "ab"]), draws[["ab_std", "ab"]].to_numpy())
    with pytest.raises(KeyError, match="'ab2'"):
        _draw_columns(draws, ["ab", "ab2"])
