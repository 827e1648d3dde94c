"""hierarchical_regression against statsmodels OLS, anova_lm and compare_f_test."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

from fidelitymed.errors import ConfigError
from fidelitymed.stats.regression import hierarchical_regression


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 311
    d = pd.DataFrame({
        "age": rng.normal(40, 12, n), "gender": rng.integers(0, 2, n), "housing": rng.integers(0, 2, n),
        "employment": rng.integers(0, 2, n), "education": rng.integers(1, 4, n), "ace": rng.integers(0, 11, n),
        "site": rng.choice(["S1", "S2", "S3", "S4", "S5", "S6", "S7"], n),
        "long_hospitalization": rng.integers(0, 2, n), "baseline": rng.normal(80, 15, n)})
    d["qoli20_9m"] = 0.5 * d["baseline"] + rng.normal(0, 12, n)
    d["rprs_13.5m"] = 60 + 0.15 * d["qoli20_9m"] + 2 * (d["site"] == "S3") + rng.normal(0, 14, n)
    d.loc[rng.choice(n, 9, replace=False), "qoli20_9m"] = np.nan
    d.loc[rng.choice(n, 5, replace=False), "age"] = np.nan
    return d


COVS = ["age", "gender", "housing", "employment", "education", "ace", "site", "long_hospitalization", "baseline"]


def test_matches_anova_lm(data):
    res = hierarchical_regression(data, "rprs_13.5m", [COVS, ["qoli20_9m"]], categorical=["site"])
    d = data.rename(columns={"rprs_13.5m": "alliance"}).dropna(subset=["alliance", *COVS, "qoli20_9m"])
    f1 = "alliance ~ " + " + ".join(c if c != "site" else "C(site)" for c in COVS)
    m1 = smf.ols(f1, d).fit()
    m2 = smf.ols(f1 + " + qoli20_9m", d).fit()
    assert res.n == len(d) == int(m2.nobs)
    assert res.n_dropped == len(data) - len(d)
    b1, b2 = res.blocks
    # block 1 against the intercept-only model = the overall F test of model 1
    assert b1.r2 == pytest.approx(m1.rsquared, rel=1e-10)
    assert b1.f_change == pytest.approx(m1.fvalue, rel=1e-9)
    assert b1.p == pytest.approx(m1.f_pvalue, rel=1e-8)
    assert (b1.df1, b1.df2) == (int(m1.df_model), int(m1.df_resid))
    table = anova_lm(m1, m2)
    assert b2.f_change == pytest.approx(table["F"].iloc[1], rel=1e-9)
    assert b2.p == pytest.approx(table["Pr(>F)"].iloc[1], rel=1e-8)
    assert b2.df1 == int(table["df_diff"].iloc[1]) == 1
    assert b2.df2 == int(m2.df_resid)
    f, p, df = m2.compare_f_test(m1)
    assert b2.f_change == pytest.approx(f, rel=1e-9) and b2.p == pytest.approx(p, rel=1e-8)
    assert b2.r2 == pytest.approx(m2.rsquared, rel=1e-10)
    assert b2.delta_r2 == pytest.approx(m2.rsquared - m1.rsquared, rel=1e-9)
    assert b2.adj_r2 == pytest.approx(m2.rsquared_adj, rel=1e-10)
    # Cohen's f2 of the block: delta R2 / (1 - R2 of the model including it)
    assert b2.f2 == pytest.approx((m2.rsquared - m1.rsquared) / (1 - m2.rsquared), rel=1e-9)
    assert b2.f2 == pytest.approx(b2.f_change * b2.df1 / b2.df2, rel=1e-9)
    # final coefficients equal statsmodels'
    assert res.coefficients.loc["qoli20_9m", "coef"] == pytest.approx(m2.params["qoli20_9m"], rel=1e-9)
    assert res.coefficients.loc["qoli20_9m", "se"] == pytest.approx(m2.bse["qoli20_9m"], rel=1e-9)
    assert res.coefficients.loc["site[S3]", "coef"] == pytest.approx(m2.params["C(site)[T.S3]"], rel=1e-9)
    lo, hi = m2.conf_int().loc["qoli20_9m"]
    assert res.coefficients.loc["qoli20_9m", "ci_low"] == pytest.approx(lo, rel=1e-9)
    assert res.coefficients.loc["qoli20_9m", "ci_high"] == pytest.approx(hi, rel=1e-9)


def test_three_blocks_multi_df(data):
    res = hierarchical_regression(data, "rprs_13.5m", [["age", "gender"], ["site"], ["qoli20_9m", "baseline"]],
                                  categorical=["site"])
    d = data.dropna(subset=["rprs_13.5m", "age", "gender", "site", "qoli20_9m", "baseline"]).rename(
        columns={"rprs_13.5m": "alliance"})
    m1 = smf.ols("alliance ~ age + gender", d).fit()
    m2 = smf.ols("alliance ~ age + gender + C(site)", d).fit()
    m3 = smf.ols("alliance ~ age + gender + C(site) + qoli20_9m + baseline", d).fit()
    table = anova_lm(m1, m2, m3)
    assert [b.df1 for b in res.blocks] == [2, 6, 2]
    # anova_lm scales every F by the largest model's residual variance; SPSS's F change uses the
    # error of the model that contains the block, so compare against pairwise tests.
    f2, p2, _ = m2.compare_f_test(m1)
    f3, p3, _ = m3.compare_f_test(m2)
    assert res.blocks[1].f_change == pytest.approx(f2, rel=1e-9)
    assert res.blocks[1].p == pytest.approx(p2, rel=1e-8)
    assert res.blocks[2].f_change == pytest.approx(f3, rel=1e-9)
    assert res.blocks[2].f_change == pytest.approx(table["F"].iloc[2], rel=1e-9)  # the last one agrees
    assert res.blocks[2].p == pytest.approx(p3, rel=1e-8)


def test_outputs(data):
    res = hierarchical_regression(data, "rprs_13.5m", [COVS, ["qoli20_9m"]], categorical=["site"])
    d = res.to_dict()
    json.dumps(d)
    assert set(d["blocks"][0]) >= {"block", "predictors", "r2", "delta_r2", "f_change", "df1", "df2", "p", "f2"}
    assert d["blocks"][0]["predictors"] == COVS
    frame = res.to_frame()
    assert list(frame["block"]) == [1, 2]
    assert "F chg" in res.summary()


def test_errors(data):
    with pytest.raises(ConfigError, match="not numeric"):
        hierarchical_regression(data, "rprs_13.5m", [["site"]])
    with pytest.raises(ConfigError, match="more than one block"):
        hierarchical_regression(data, "rprs_13.5m", [["age"], ["age"]])
    with pytest.raises(ConfigError, match="redundant"):
        hierarchical_regression(data.assign(age2=data["age"] * 2), "rprs_13.5m", [["age"], ["age2"]])
    with pytest.raises(ConfigError, match="not in the data"):
        hierarchical_regression(data, "rprs_13.5m", [["nope"]])


def test_pooled_matches_mice_D2_and_pool():
    from pathlib import Path

    from fidelitymed.stats.regression import pool_hierarchical

    ref_dir = Path(__file__).parent / "reference"
    ref = json.loads((ref_dir / "hierarchical_mi.json").read_text())
    long = pd.read_csv(ref_dir / "hierarchical_mi.csv")
    fits = [hierarchical_regression(d, "alliance", [["age", "gender", "site", "base"], ["out9"]], categorical=["site"])
            for _, d in long.groupby(".imp", sort=True)]
    pooled = pool_hierarchical(fits)
    assert pooled.imputations == ref["m"] == 5
    b1, b2 = pooled.blocks
    for ours, theirs in ((b1, ref["block1"]), (b2, ref["block2"])):
        assert ours.r2 == pytest.approx(theirs["r2"], rel=1e-9)
        assert ours.f_change == pytest.approx(theirs["F"], rel=1e-7)
        assert ours.df1 == theirs["df1"]
        assert ours.df2 == pytest.approx(theirs["df2"], rel=1e-7)
        assert ours.p == pytest.approx(theirs["p"], rel=1e-6)
    assert b2.adj_r2 == pytest.approx(ref["block2"]["adj_r2"], rel=1e-9)
    assert b2.delta_r2 == pytest.approx(ref["block2"]["r2"] - ref["block1"]["r2"], rel=1e-9)
    names = {"(Intercept)": "constant", "siteB": "site[B]", "siteC": "site[C]"}
    for row in ref["coefficients"]:
        term = names.get(row["term"], row["term"])
        got = pooled.coefficients.loc[term]
        assert got["coef"] == pytest.approx(row["estimate"], rel=1e-9)
        assert got["se"] == pytest.approx(row["std_error"], rel=1e-9)
        assert got["df"] == pytest.approx(row["df"], rel=1e-6)
        assert got["p"] == pytest.approx(row["p"], rel=1e-6, abs=1e-15)
    d = pooled.to_dict()
    json.dumps(d)
    assert d["imputations"] == 5 and "D2" in d["pooling"]
    with pytest.raises(ConfigError):
        pool_hierarchical(fits[:1])
