"""OLS fits and covariance estimators against statsmodels (and a hand formula for HC4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from fidelitymed.errors import ConfigError, FidelityMedError
from fidelitymed.stats.ols import fit_ols, process_t_quantile, t_quantile

TOL = 1e-8


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(20240601)
    n = 97
    X = sm.add_constant(rng.normal(size=(n, 4)) * [1, 10, 0.1, 3] + [0, 50, 0, 1])
    # heteroscedastic errors, so the HC variants really differ
    y = X @ [2.0, 0.5, 0.01, 3.0, -0.2] + rng.normal(size=n) * (0.5 + np.abs(X[:, 1]))
    groups = rng.integers(0, 9, size=n)
    return y, X, groups


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("cov_type", ["nonrobust", "HC0", "HC1", "HC2", "HC3"])
def test_against_statsmodels(data, cov_type):
    y, X, _ = data
    ref = sm.OLS(y, X).fit(cov_type=cov_type)
    res = fit_ols(y, X, cov_type=cov_type)
    _close(res.coef, ref.params)
    _close(res.se, ref.bse)
    _close(res.vcov, ref.cov_params())
    _close(res.r2, ref.rsquared)
    _close(res.mse, ref.mse_resid)
    _close(res.F, ref.fvalue)  # robust Wald F when cov_type is HC*, as PROCESS prints F(HCk)
    _close(res.F_p, ref.f_pvalue)
    assert (res.df1, res.df2) == (ref.df_model, ref.df_resid)
    ref_t = sm.OLS(y, X).fit(cov_type=cov_type, use_t=True)
    _close(res.p, ref_t.pvalues)
    _close(np.column_stack([res.ci_low, res.ci_high]), ref_t.conf_int(alpha=0.05))


def test_hc4_hand_formula(data):
    y, X, _ = data
    n, k = X.shape
    res = fit_ols(y, X, cov_type="HC4")
    XtXi = np.linalg.inv(X.T @ X)
    H = X @ XtXi @ X.T
    h = np.diag(H)
    e = y - H @ y
    delta = np.minimum(4.0, n * h / k)
    meat = X.T @ np.diag(e ** 2 / (1 - h) ** delta) @ X
    _close(res.vcov, XtXi @ meat @ XtXi)
    slopes = res.coef[1:]
    wald = slopes @ np.linalg.solve(res.vcov[1:, 1:], slopes) / (k - 1)
    _close(res.F, wald)


def test_cluster_cr1_against_statsmodels(data):
    y, X, groups = data
    ref = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    res = fit_ols(y, X, clusters=groups)
    assert res.cov_type == "CR1" and res.n_clusters == 9 and res.df2 == 8
    _close(res.se, ref.bse)
    _close(res.p, ref.pvalues)  # t with G - 1 df, as Stata
    _close(np.column_stack([res.ci_low, res.ci_high]), ref.conf_int())
    ref_f = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": groups})
    _close(res.F, ref_f.fvalue)
    _close(res.F_p, ref_f.f_pvalue)  # F(k - 1, G - 1)


def test_r_and_summary_fields(data):
    y, X, _ = data
    res = fit_ols(y, pd.DataFrame(X, columns=["const", "a", "b", "c", "d"]))
    ref = sm.OLS(y, X).fit()
    _close(res.r, np.sqrt(ref.rsquared))
    assert res.names == ("const", "a", "b", "c", "d")
    frame = res.to_frame()
    assert list(frame.columns) == ["coeff", "se", "t", "p", "LLCI", "ULCI"]
    _close(frame.loc["b", "t"], ref.tvalues[2])
    d = res.to_dict()
    assert set(d["model"]) == {"r", "r2", "mse", "F", "df1", "df2", "p"}
    assert "Model Summary" in res.summary() and "constant" in res.summary()
    with pytest.raises((AttributeError, TypeError)):
        res.coef = None  # frozen
    with pytest.raises(ValueError):
        res.coef[0] = 1.0  # read-only array


def test_process_t_approximation():
    # values from PROCESS v4.3.1 listed in shared/reference/process-model4.md
    assert process_t_quantile(0.95, 5) == pytest.approx(2.5741, abs=5e-05)
    assert process_t_quantile(0.95, 20) == pytest.approx(2.08608, abs=5e-06)
    for df in (140, 300, 1000):
        assert abs(process_t_quantile(0.95, df) - stats.t.ppf(0.975, df)) < 5e-6
    assert t_quantile(0.95, 20) == pytest.approx(2.085963447, abs=1e-9)


def test_bad_inputs():
    rng = np.random.default_rng(1)
    x = rng.normal(size=10)
    X = np.column_stack([np.ones(10), x, 3 * x])
    with pytest.raises(FidelityMedError, match="x2"):
        fit_ols(rng.normal(size=10), X)
    with pytest.raises(FidelityMedError, match="more rows"):
        fit_ols(rng.normal(size=3), np.column_stack([np.ones(3), rng.normal(size=(3, 2))]))
    with pytest.raises(ConfigError):
        fit_ols(x, X[:, :2], cov_type="HC5")
    with pytest.raises(ConfigError):
        fit_ols(x, X[:, :2], conf=95)
