"""PROCESS Model 4 with a dichotomous Y: logistic outcome and total equations against R glm
(tests/reference/process_model4.R) and statsmodels Logit; the batched Newton-Raphson bootstrap
against a plain loop over resamples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from fidelitymed.errors import ConfigError, FidelityMedError, StudyDataError
from fidelitymed.seeding import root_sequence
from fidelitymed.stats import bootstrap as bs
from fidelitymed.stats.mediation import mediate
from fidelitymed.stats.process import logistic

REF = Path(__file__).parent / "reference"
MEDS = ["alliance", "hope"]


@pytest.fixture(scope="module")
def ref():
    return json.loads((REF / "process_model4.json").read_text())["glm"]


@pytest.fixture(scope="module")
def data():
    return pd.read_csv(REF / "process_model4.csv")


@pytest.fixture(scope="module")
def result(data):
    return mediate(data, "fidelity", MEDS, "employed", covariates=["age"], n_boot=400, seed=5, save_boot=True,
                   boot_coefficients=True)


def test_logistic_equations_against_r_glm(result, ref):
    for key, fit in (("outcome", result.outcome_model), ("total", result.total_model)):
        r = ref[key]
        assert list(fit.names[1:]) == r["names"][1:]
        np.testing.assert_allclose(fit.coef, r["coef"], rtol=1e-9)
        np.testing.assert_allclose(fit.se, r["se"], rtol=1e-7)
        np.testing.assert_allclose(fit.z, r["z"], rtol=1e-7)
        np.testing.assert_allclose(fit.p, r["p"], rtol=1e-6)
        ms = fit.model_summary()
        ll, ll0, n = r["loglik"], r["loglik_null"], result.n
        assert ms["neg2ll"] == pytest.approx(-2 * ll, rel=1e-10)
        assert ms["model_ll"] == pytest.approx(2 * (ll - ll0), rel=1e-8)
        assert ms["mcfadden"] == pytest.approx(1 - ll / ll0, rel=1e-8)
        cs = 1 - np.exp(2 * (ll0 - ll) / n)
        assert ms["cox_snell"] == pytest.approx(cs, rel=1e-8)
        assert ms["nagelkerke"] == pytest.approx(cs / (1 - np.exp(2 * ll0 / n)), rel=1e-8)
        assert ms["p"] == pytest.approx(stats.chi2.sf(2 * (ll - ll0), fit.k - 1), rel=1e-7)


def test_logistic_equations_against_statsmodels(data, result):
    X = sm.add_constant(data[["fidelity", *MEDS, "age"]])
    sm_fit = sm.Logit(data["employed"], X).fit(disp=0, method="newton", tol=1e-12, maxiter=100)
    fit = result.outcome_model
    np.testing.assert_allclose(fit.coef, sm_fit.params, rtol=1e-9)
    np.testing.assert_allclose(fit.se, sm_fit.bse, rtol=1e-7)
    ci = sm_fit.conf_int()
    np.testing.assert_allclose(fit.ci_low, ci[0], rtol=1e-7)
    ms = fit.model_summary()
    assert ms["mcfadden"] == pytest.approx(sm_fit.prsquared, rel=1e-9)
    assert ms["model_ll"] == pytest.approx(sm_fit.llr, rel=1e-9)
    assert ms["p"] == pytest.approx(sm_fit.llr_pvalue, rel=1e-6)
    d = result.to_dict()
    assert set(d["paths"]["c_prime"]) == {"coef", "se", "z", "p", "ci_low", "ci_high"}
    assert d["paths"]["b"]["hope"]["coef"] == pytest.approx(sm_fit.params["hope"], rel=1e-9)
    assert "indirect_std" not in d and "indirect_partially_std" not in d
    assert d["y_coding"] == {"0": 0.0, "1": 1.0}
    assert set(d["models"]["outcome"]) == {"neg2ll", "model_ll", "df", "p", "mcfadden", "cox_snell", "nagelkerke"}
    json.dumps(d, allow_nan=False)


def test_batched_newton_equals_plain_loop():
    """newton_batch over 300 weight vectors vs. a loop of statsmodels Logit fits on the resampled rows."""
    rng = np.random.default_rng(3)
    n = 200
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 3))])
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(X @ [0.2, 0.8, -0.5, 0.3])))).astype(float)
    idx = bs.resample_indices(rng, n, 300)
    W = bs.index_counts(idx, n)
    D, centre, spread = logistic._standardize(X)
    beta, ok, its = logistic.newton_batch(D, y, W, np.zeros(4))
    assert ok.all() and its.max() < logistic.MAX_ITER
    raw = logistic._to_raw(beta, centre, spread)
    for b in range(300):  # plain loop, test only
        ref = sm.Logit(y[idx[b]], X[idx[b]]).fit(disp=0, method="newton", tol=1e-14, maxiter=100)
        np.testing.assert_allclose(raw[b], ref.params, rtol=1e-10, atol=1e-12)


def test_bootstrap_equals_plain_loop(data, result):
    n = result.n
    seq = root_sequence(5)
    idx = np.concatenate([bs.resample_indices(bs.block_generator(seq, 0), n, 400)])
    assert result.n_boot_failed == 0
    draws = result.boot_draws
    assert list(draws.columns) == ["c_prime", "a:alliance", "a:hope", "b:alliance", "b:hope", "ab", "ab:alliance",
                                   "ab:hope"]
    one = np.ones(n)
    out_rows = []
    for r in range(0, 400):  # plain loop: OLS by lstsq, logistic by statsmodels, test only
        s = data.iloc[idx[r]]
        Xm = np.column_stack([one, s["fidelity"], s["age"]])
        a = [np.linalg.lstsq(Xm, s[m], rcond=None)[0][1] for m in MEDS]
        Xo = np.column_stack([one, s["fidelity"], s[MEDS], s["age"]])
        lo = sm.Logit(s["employed"].to_numpy(float), Xo).fit(disp=0, method="newton", tol=1e-14, maxiter=100)
        out_rows.append(lo.params)
        b = lo.params[2:4]
        expect = [lo.params[1], a[0], a[1], b[0], b[1], a[0] * b[0] + a[1] * b[1], a[0] * b[0], a[1] * b[1]]
        np.testing.assert_allclose(draws.iloc[r].to_numpy(), expect, rtol=1e-9, atol=1e-12)
    got = result.to_dict()["boot_coefficients"]["outcome"]
    np.testing.assert_allclose([v["boot_mean"] for v in got.values()], np.mean(out_rows, axis=0), rtol=1e-9)


def test_separated_resamples_are_redrawn_and_counted(data):
    d = data.iloc[:120].copy()
    d["rare"] = 0.0
    # two cases with rare = 1, both employed: resamples that hold them (and no rare = 1 with employed = 0)
    # are quasi-separated -- the rare coefficient runs off to infinity
    hit = d.index[d["employed"] == 1][:2]
    d.loc[hit, "rare"] = 1.0
    d.loc[d.index[d["employed"] == 0][0], "rare"] = 1.0  # the full sample is not separated
    res = mediate(d, "fidelity", "alliance", "employed", covariates=["rare"], n_boot=1000, seed=3, save_boot=True)
    assert res.n_boot_failed > 0 and np.isfinite(res.boot_draws.to_numpy()).all()
    assert any("non-convergent/separated" in n for n in res.notes)


def test_full_sample_separation_and_options(data):
    d = data.copy()
    d["sep"] = d["employed"] + 0.0 * d["age"]
    d["employed2"] = d["employed"]
    with pytest.raises(FidelityMedError, match="separates"):
        mediate(d.assign(emp=(d["alliance"] > 60).astype(int)), "fidelity", "alliance", "emp", n_boot=0)
    with pytest.raises(ConfigError, match="bca"):
        mediate(d, "fidelity", "alliance", "employed", n_boot=100, ci="bca")
    with pytest.raises(StudyDataError, match="dichotomous"):
        mediate(d, "fidelity", "alliance", "qol", n_boot=0, binary_y=True)
    ols = mediate(d, "fidelity", "alliance", "employed", n_boot=0, binary_y=False)
    assert ols.outcome_model.cov_type == "nonrobust" and not ols.binary_y


def test_y_coded_from_any_two_values_and_summary(data):
    d = data.assign(status=np.where(data["employed"] == 1, 7, 3))
    res = mediate(d, "fidelity", "alliance", "status", n_boot=200, seed=1, ci="monte_carlo", n_mc=1000)
    ref = mediate(data, "fidelity", "alliance", "employed", n_boot=200, seed=1, ci="monte_carlo", n_mc=1000)
    assert res.to_dict()["paths"] == ref.to_dict()["paths"]
    assert res.to_dict()["y_coding"] == {"0": 3.0, "1": 7.0}
    text = res.summary()
    for heading in ("Coding of binary Y", "-2LL", "ModelLL", "McFadden", "CoxSnell", "Nagelkrk", "MC LLCI",
                    "DIRECT AND INDIRECT EFFECTS OF X ON Y", "log-odds scale"):
        assert heading in text
    assert "TOTAL EFFECT MODEL" not in text and "standardized indirect" not in text
