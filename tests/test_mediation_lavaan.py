"""PROCESS Model 4 paths against lavaan's structural-equation fit of the same path model.

Reference: tests/reference/mediation_lavaan.R (lavaan ML with observed covariates, listwise).
lavaan's ML standard errors use the n denominator, OLS's the n - k of each equation, so ours are
rescaled by sqrt((n - k) / n) before comparison; the indirect effect's lavaan SE is the
first-order delta-method (Sobel) SE.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from fidelitymed.stats.mediation import mediate

REF = Path(__file__).parent / "reference"
COVARIATES = ["age", "gender", "housing", "employment", "education", "ace", "site", "long_hosp", "qol_baseline"]


@pytest.fixture(scope="module")
def fitted():
    ref = json.loads((REF / "mediation_lavaan.json").read_text())
    data = pd.read_csv(REF / "mediation_lm.csv")
    res = mediate(data, "fidelity", "alliance", "qol", covariates=COVARIATES, categorical=["site"],
                  n_boot=0, normal=True)
    return ref, res


def test_paths_equal_lavaan(fitted):
    ref, res = fitted
    paths = res.to_dict()["paths"]
    assert res.to_dict()["n"] == ref["n"]
    for ours, theirs in (("a", "a"), ("b", "b"), ("c_prime", "cp")):
        assert paths[ours]["coef"] == pytest.approx(ref[theirs]["est"], rel=1e-6)
    assert res.to_dict()["indirect"]["effect"] == pytest.approx(ref["ab"]["est"], rel=1e-6)


def test_standard_errors_equal_lavaan_ml(fitted):
    ref, res = fitted
    n = res.to_dict()["n"]
    paths = res.to_dict()["paths"]
    k_mediator = len(res.mediator_model.coef)
    k_outcome = len(res.outcome_model.coef)
    se_a = paths["a"]["se"] * math.sqrt((n - k_mediator) / n)
    se_b = paths["b"]["se"] * math.sqrt((n - k_outcome) / n)
    se_cp = paths["c_prime"]["se"] * math.sqrt((n - k_outcome) / n)
    assert se_a == pytest.approx(ref["a"]["se"], rel=1e-5)
    assert se_b == pytest.approx(ref["b"]["se"], rel=1e-5)
    assert se_cp == pytest.approx(ref["cp"]["se"], rel=1e-5)
    a, b = paths["a"]["coef"], paths["b"]["coef"]
    assert math.sqrt(a**2 * se_b**2 + b**2 * se_a**2) == pytest.approx(ref["ab"]["se"], rel=1e-5)
    # a and b come from separate equations: lavaan's sampling covariance is zero, which the
    # rubin_mc pooling scheme assumes.
    assert abs(ref["cov_ab"]) < 1e-12


def test_normal_theory_test_is_second_order_sobel(fitted):
    _, res = fitted
    paths = res.to_dict()["paths"]
    a, b, se_a, se_b = paths["a"]["coef"], paths["b"]["coef"], paths["a"]["se"], paths["b"]["se"]
    expected = math.sqrt(a**2 * se_b**2 + b**2 * se_a**2 + se_a**2 * se_b**2)
    assert res.normal_test["se"] == pytest.approx(expected, rel=1e-12)
