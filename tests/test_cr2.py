"""CR2 cluster-robust covariance and Satterthwaite df against stored clubSandwich output."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fidelitymed.errors import FidelityMedError
from fidelitymed.stats.ols import cluster_robust_cr2, fit_ols

REF = Path(__file__).parent / "reference"
CR2 = json.loads((REF / "multilevel_cr2.json").read_text())
DATA = pd.read_csv(REF / "multilevel_study.csv", dtype={"team": str, "case_manager": str})
DATA["cm_id"] = DATA["team"] + ":" + DATA["case_manager"]


def _design(formula: str) -> tuple[np.ndarray, np.ndarray]:
    lhs, rhs = (s.strip() for s in formula.split("~"))
    terms = [t.strip() for t in rhs.split("+")]
    X = np.column_stack([np.ones(len(DATA))] + [DATA[t].to_numpy(float) for t in terms])
    return DATA[lhs].to_numpy(float), X


@pytest.mark.parametrize("model", [k for k in CR2 if k != "meta"])
def test_cr2_matches_clubsandwich(model):
    ref = CR2[model]
    y, X = _design(ref["formula"])
    fit = fit_ols(y, X)
    np.testing.assert_allclose(fit.coef, ref["coef"], rtol=1e-10)
    cov, df = cluster_robust_cr2(X, fit.resid, DATA[ref["cluster"]].to_numpy())
    ref_cov = np.asarray(ref["vcov"])
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-8, atol=1e-8 * np.abs(ref_cov).max())
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), ref["se"], rtol=1e-8)
    np.testing.assert_allclose(df, ref["df"], rtol=1e-6)


def test_cr2_with_singular_adjustment_block():
    """A cluster of one row with a cluster dummy makes I - H_gg singular: the pseudo-inverse root
    applies, and the result stays finite and symmetric (clubSandwich sets such eigenvalues to 0)."""
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(6), [1, 4, 5, 3, 6, 2])
    X = np.column_stack([np.ones(g.size), rng.normal(size=g.size), (g == 0).astype(float)])
    y = X @ [1.0, 0.5, 2.0] + rng.normal(size=g.size)
    resid = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    cov, df = cluster_robust_cr2(X, resid, g)
    assert np.all(np.isfinite(cov[:2, :2])) and np.allclose(cov, cov.T)
    assert np.all(df[:2] > 0)


def test_cr2_order_of_rows_does_not_matter():
    y, X = _design(CR2["y_on_xm"]["formula"])
    resid = fit_ols(y, X).resid
    perm = np.random.default_rng(1).permutation(len(y))
    cov, df = cluster_robust_cr2(X, resid, DATA["team"].to_numpy())
    cov_p, df_p = cluster_robust_cr2(X[perm], resid[perm], DATA["team"].to_numpy()[perm])
    np.testing.assert_allclose(cov_p, cov, rtol=1e-10)
    np.testing.assert_allclose(df_p, df, rtol=1e-10)


def test_cr2_needs_two_clusters():
    X = np.column_stack([np.ones(5), np.arange(5.0)])
    with pytest.raises(FidelityMedError, match="at least 2 clusters"):
        cluster_robust_cr2(X, np.zeros(5), np.zeros(5))
