"""Nested random-intercept REML/ML engine and multilevel mediation against stored lme4/lmerTest fits.

Reference: tests/reference/multilevel_lme4.R (lme4 with tight optimizer tolerances, lmerTest
Satterthwaite df) on the data made by tests/reference/multilevel_data.py.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fidelitymed.stats.multilevel import NestedGroups, fit_nested_lmm

REF_DIR = Path(__file__).parent / "reference"
LME4 = json.loads((REF_DIR / "multilevel_lme4.json").read_text())
MODELS = [k for k in LME4 if k != "meta"]


def _read(name: str) -> pd.DataFrame:
    d = pd.read_csv(REF_DIR / f"multilevel_{name}.csv", dtype={"team": str, "case_manager": str})
    for v in ("x_client", "alliance", "fidelity"):  # cluster-mean centring at the team, as the R script
        d[f"{v}_between"] = d.groupby("team")[v].transform("mean")
        d[f"{v}_within"] = d[v] - d[f"{v}_between"]
    return d


DATA = {"study": _read("study"), "boundary": _read("boundary")}


def _fit_reference(name: str):
    ref = LME4[name]
    d = DATA[ref["data"]]
    lhs, rhs = (s.strip() for s in ref["fixed"].split("~"))
    terms = [t.strip() for t in rhs.split("+")]
    X = np.column_stack([np.ones(len(d))] + [d[t].to_numpy(float) for t in terms])
    levels = ["team", "case_manager"] if "case_manager" in ref["random"] else ["team"]
    groups = NestedGroups.from_columns([d[c].to_numpy() for c in levels], levels)
    return fit_nested_lmm(d[lhs].to_numpy(float), X, groups, names=["(Intercept)", *terms], reml=ref["reml"]), ref


def _reference_variances(ref) -> list[float]:
    keys = ["team", "case_manager:team"] if "case_manager:team" in ref["variance"] else ["team"]
    return [ref["variance"][k] for k in keys] + [ref["variance"]["Residual"]]


@pytest.mark.parametrize("name", MODELS)
def test_engine_matches_lme4_and_lmertest(name):
    fit, ref = _fit_reference(name)
    assert fit.names == tuple(ref["terms"])
    np.testing.assert_allclose(fit.coef, ref["coef"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fit.se, ref["se"], rtol=1e-5)
    np.testing.assert_allclose(fit.vcov, ref["vcov"], rtol=1e-5, atol=1e-9)
    variances = [*fit.variances, fit.residual_variance]
    np.testing.assert_allclose(variances, _reference_variances(ref), rtol=1e-4, atol=1e-10)
    np.testing.assert_allclose(fit.df, ref["df"], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(fit.p, ref["p"], rtol=1e-4, atol=1e-12)
    assert fit.deviance == pytest.approx(ref["deviance"], abs=1e-6)
    assert fit.log_likelihood == pytest.approx(ref["log_likelihood"], abs=1e-6)
    # our optimum is at least as good as lme4's with its default tolerances
    assert fit.deviance <= ref["default_deviance"] + 1e-9
    assert fit.singular == ref["singular"]


def test_boundary_fit_is_singular_with_variances_exactly_zero():
    fit, ref = _fit_reference("boundary_m")
    assert ref["singular"] and fit.singular
    assert fit.variances == (0.0, 0.0)
    # with both variances at 0 the model is OLS: lmerTest's df is n - p
    np.testing.assert_allclose(fit.df, len(DATA["boundary"]) - 3, rtol=1e-6)


def test_engine_equals_ols_when_variances_vanish():
    """At the boundary the fixed effects and their covariance are the OLS ones (statsmodels)."""
    import statsmodels.api as sm

    fit, ref = _fit_reference("boundary_m")
    d = DATA["boundary"]
    ols = sm.OLS(d["alliance"].to_numpy(float), sm.add_constant(d[["x_client", "site"]].to_numpy(float))).fit()
    np.testing.assert_allclose(fit.coef, ols.params, rtol=1e-10)
    np.testing.assert_allclose(fit.vcov, ols.cov_params(), rtol=1e-8)


def test_three_levels_reduce_to_two_when_the_middle_level_is_the_inner_one():
    """A third level identical to the second (one client group per case manager) carries no extra
    variance: the two-level REML optimum is a point of the three-level criterion, and the total of
    the two inner variances equals the two-level case-manager variance."""
    d = DATA["study"]
    X = np.column_stack([np.ones(len(d)), d["fidelity"], d["site"]])
    y = d["alliance"].to_numpy(float)
    two = fit_nested_lmm(y, X, NestedGroups.from_columns([d["team"], d["case_manager"]], ["team", "cm"]))
    three = fit_nested_lmm(y, X, NestedGroups.from_columns([d["team"], d["case_manager"], d["case_manager"]],
                                                           ["team", "cm", "cm2"]))
    assert three.deviance == pytest.approx(two.deviance, abs=1e-7)
    assert three.variances[0] == pytest.approx(two.variances[0], rel=1e-5)
    assert three.variances[1] + three.variances[2] == pytest.approx(two.variances[1], rel=1e-5)
    np.testing.assert_allclose(three.coef, two.coef, rtol=1e-6)


def test_row_order_does_not_matter():
    fit, _ = _fit_reference("y_on_xm")
    d = DATA["study"].sample(frac=1.0, random_state=5)
    X = np.column_stack([np.ones(len(d)), d["fidelity"], d["alliance"], d["site"]])
    groups = NestedGroups.from_columns([d["team"].to_numpy(), d["case_manager"].to_numpy()], ["team", "case_manager"])
    shuffled = fit_nested_lmm(d["outcome"].to_numpy(float), X, groups)
    np.testing.assert_allclose(shuffled.coef, fit.coef, rtol=1e-7)
    np.testing.assert_allclose(shuffled.df, fit.df, rtol=1e-6)
