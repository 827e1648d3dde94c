"""PROCESS Model 4 beyond one mediator: parallel mediators, covariates by equation, Monte Carlo CIs,
bootstrapped coefficients, standardized coefficients, CR2, against R (lm, lavaan, clubSandwich;
tests/reference/process_model4.R) and plain loops over resamples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from fidelitymed.errors import ConfigError
from fidelitymed.seeding import root_sequence
from fidelitymed.stats import bootstrap as bs
from fidelitymed.stats.mediation import mediate
from fidelitymed.stats.process import montecarlo

REF = Path(__file__).parent / "reference"
MEDS = ["alliance", "hope"]
COVS = ["age", "ace"]
TOL = 1e-8
SETTINGS = {"all": dict(), "mediators": dict(covariates_in="mediators"), "outcome": dict(covariates_in="outcome"),
            "map": dict(covariate_map={"age": ["mediators"], "ace": "outcome"})}


@pytest.fixture(scope="module")
def ref():
    return json.loads((REF / "process_model4.json").read_text())


@pytest.fixture(scope="module")
def data():
    return pd.read_csv(REF / "process_model4.csv")


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("hc", [None, "HC3"])
def test_equations_against_r_lm(data, ref, setting, hc):
    res = mediate(data, "fidelity", MEDS, "qol", covariates=COVS, n_boot=0, hc=hc, **SETTINGS[setting])
    fits = {"alliance": res.mediator_models[0], "hope": res.mediator_models[1], "outcome": res.outcome_model,
            "total": res.total_model}
    for key, fit in fits.items():
        r = ref["lm"][setting][key]
        assert list(fit.names[1:]) == r["names"][1:]
        np.testing.assert_allclose(fit.coef, r["coef"], rtol=TOL)
        np.testing.assert_allclose(fit.se, r["se_hc3" if hc else "se"], rtol=TOL)
        assert fit.r2 == pytest.approx(r["r2"], rel=TOL)
    d = res.to_dict()
    assert d["paths"]["a"]["hope"]["coef"] == pytest.approx(ref["lm"][setting]["hope"]["coef"][1], rel=TOL)
    assert d["paths"]["b"]["hope"]["coef"] == pytest.approx(ref["lm"][setting]["outcome"]["coef"][3], rel=TOL)
    assert res.total_reported == (setting == "all")
    text = res.summary()
    if setting == "all":
        assert "TOTAL EFFECT MODEL" in text
    else:
        assert "DIRECT AND INDIRECT EFFECTS OF X ON Y" in text and "TOTAL EFFECT MODEL" not in text
        assert any("not the sum of the direct and indirect" in n for n in res.notes)


def test_path_covariance_and_delta_method_against_lavaan(data, ref):
    """Our joint covariance of (a1, a2, b1, b2, c') -- the one the Monte Carlo CI draws from -- against
    lavaan's ML covariance (n denominators; residual covariance of the mediators free), and the
    delta-method SEs of the specific, total and contrast indirect effects built from it."""
    lv = ref["lavaan_fit"]
    res = mediate(data, "fidelity", MEDS, "qol", covariates=COVS, n_boot=0)
    n = res.n
    assert n == lv["n"]
    mean, V = montecarlo.path_covariance(_design(data), res.mediator_models, res.outcome_model, 2)
    # OLS divides the residual SS by n - p, lavaan's ML by n: rescale each equation's block
    scale = np.array([(n - 4) / n] * 2 + [(n - 6) / n] * 3)
    V_ml = V * np.sqrt(np.outer(scale, scale))
    for j, key in enumerate(("a1", "a2", "b1", "b2", "cp")):
        # lavaan's optimizer stops at ~1e-6 relative (the model is saturated, so ML = OLS estimates)
        assert mean[j] == pytest.approx(lv[key]["est"], abs=1e-4 * lv[key]["se"])
        assert np.sqrt(V_ml[j, j]) == pytest.approx(lv[key]["se"], rel=1e-4)
    assert V_ml[0, 1] == pytest.approx(lv["cov_a1_a2"], rel=1e-4)
    a1, a2, b1, b2 = mean[:4]
    grads = {"ind1": [b1, 0, a1, 0], "ind2": [0, b2, 0, a2], "total": [b1, b2, a1, a2],
             "contrast": [b1, -b2, a1, -a2]}
    d = res.to_dict()
    effects = {"ind1": d["indirect"]["alliance"]["effect"], "ind2": d["indirect"]["hope"]["effect"],
               "total": d["indirect"]["total"]["effect"]}
    for key, g in grads.items():
        g = np.array(g)
        assert np.sqrt(g @ V_ml[:4, :4] @ g) == pytest.approx(lv[key]["se"], rel=1e-4)
        if key in effects:
            assert effects[key] == pytest.approx(lv[key]["est"], abs=1e-4 * lv[key]["se"])


def _design(data, **kw):
    from fidelitymed.stats.process.design import prepare

    return prepare(data, "fidelity", MEDS, "qol", COVS, (), None, **kw)


def test_cr2_paths_against_clubsandwich(data, ref):
    res = mediate(data, "fidelity", "alliance", "qol", covariates=["age"], cluster="site", hc="CR2", n_boot=0)
    r = ref["cr2"]
    d = res.to_dict()["paths"]
    for path, j in (("c_prime", 1), ("b", 2)):
        assert d[path]["se"] == pytest.approx(r["se"][j], rel=1e-7)
        assert d[path]["df"] == pytest.approx(r["df"][j], rel=1e-6)
        assert d[path]["p"] == pytest.approx(r["p"][j], rel=1e-5)
    assert res.outcome_model.cov_type == "CR2" and "df" in d["a"]
    assert any("Only 6 clusters supply X" in n for n in res.notes)


# --------------------------------------------------------------------------- bootstrap vs plain loop


def _block_indices(seed, n, n_boot):
    seq = root_sequence(seed)
    sizes = [min(bs.BLOCK_SIZE, n_boot - k * bs.BLOCK_SIZE) for k in range(-(-n_boot // bs.BLOCK_SIZE))]
    return np.concatenate([bs.resample_indices(bs.block_generator(seq, k), n, s) for k, s in enumerate(sizes)])


@pytest.mark.parametrize("setting", ["all", "map"])
def test_parallel_bootstrap_equals_plain_loop(data, setting):
    kw = SETTINGS[setting]
    res = mediate(data, "fidelity", MEDS, "qol", covariates=COVS, n_boot=600, seed=8, save_boot=True,
                  contrast=True, boot_coefficients=True, **kw)
    assert res.n_boot_failed == 0
    med_cov = ["age", "ace"] if setting == "all" else ["age"]
    out_cov = ["age", "ace"] if setting == "all" else ["ace"]
    idx = _block_indices(8, len(data), 600)
    cols = list(res.boot_draws.columns)
    draws = res.boot_draws.to_numpy()
    coefs = {"alliance": [], "hope": [], "outcome": [], "total": []}
    one = np.ones(len(data))
    for r in range(600):  # the plain loop, test only
        s = data.iloc[idx[r]]
        Xm = np.column_stack([one, s["fidelity"], s[med_cov]])
        am = [np.linalg.lstsq(Xm, s[m], rcond=None)[0] for m in MEDS]
        Xo = np.column_stack([one, s["fidelity"], s[MEDS], s[out_cov]])
        bo = np.linalg.lstsq(Xo, s["qol"], rcond=None)[0]
        bt = np.linalg.lstsq(np.column_stack([one, s["fidelity"], s[out_cov]]), s["qol"], rcond=None)[0]
        for key, v in zip(coefs, (*am, bo, bt)):
            coefs[key].append(v)
        a = np.array([am[0][1], am[1][1]])
        b = bo[2:4]
        sx, sy = s["fidelity"].std(ddof=1), s["qol"].std(ddof=1)
        ab = a * b
        expect = {"c_prime": bo[1], "a:alliance": a[0], "a:hope": a[1], "b:alliance": b[0], "b:hope": b[1],
                  "ab": ab.sum(), "ab_ps": ab.sum() / sy, "ab_std": ab.sum() * sx / sy,
                  "ab:alliance": ab[0], "ab:hope": ab[1], "ab_ps:alliance": ab[0] / sy, "ab_ps:hope": ab[1] / sy,
                  "ab_std:alliance": ab[0] * sx / sy, "ab_std:hope": ab[1] * sx / sy,
                  "contrast:alliance - hope": ab[0] - ab[1]}
        assert set(expect) == set(cols)
        np.testing.assert_allclose(draws[r], [expect[c] for c in cols], rtol=1e-10, atol=1e-13)
    table = res.to_dict()["boot_coefficients"]
    for key, rows in coefs.items():
        rows = np.array(rows)
        got = table[key]
        np.testing.assert_allclose([v["boot_mean"] for v in got.values()], rows.mean(axis=0), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose([v["boot_se"] for v in got.values()], rows.std(axis=0, ddof=1), rtol=1e-9)
        lo, hi = np.quantile(rows, [0.025, 0.975], axis=0)
        np.testing.assert_allclose([v["boot_ci_low"] for v in got.values()], lo, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose([v["boot_ci_high"] for v in got.values()], hi, rtol=1e-9, atol=1e-12)
    # the intervals of the indirect effects are the draws' percentiles
    d = res.to_dict()
    v = res.boot_draws["contrast:alliance - hope"].to_numpy()
    assert d["contrasts"]["alliance - hope"]["ci_low"] == pytest.approx(np.quantile(v, 0.025), rel=1e-12)
    assert d["contrasts"]["alliance - hope"]["boot_se"] == pytest.approx(v.std(ddof=1), rel=1e-12)


def test_absolute_contrasts_and_three_mediators(data):
    data = data.assign(m3=data["hope"] * 0.5 + np.random.default_rng(1).normal(size=len(data)))
    res = mediate(data, "fidelity", ["alliance", "hope", "m3"], "qol", n_boot=300, seed=2, save_boot=True,
                  contrast="absolute")
    d = res.to_dict()
    assert list(d["contrasts"]) == ["alliance - hope", "alliance - m3", "hope - m3"]
    spec = {m: d["indirect"][m]["effect"] for m in ("alliance", "hope", "m3")}
    assert d["contrasts"]["hope - m3"]["effect"] == pytest.approx(abs(spec["hope"]) - abs(spec["m3"]), rel=1e-12)
    assert d["indirect"]["total"]["effect"] == pytest.approx(sum(spec.values()), rel=1e-12)
    draws = res.boot_draws
    np.testing.assert_allclose(draws["contrast:alliance - m3"],
                               draws["ab:alliance"].abs() - draws["ab:m3"].abs(), rtol=1e-12)
    assert "differences between absolute values" in res.summary()


def test_dict_layout_for_parallel_mediators(data):
    res = mediate(data, "fidelity", MEDS, "qol", covariates=COVS, n_boot=200, seed=1, contrast=True,
                  standardized=True)
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert set(d["paths"]["a"]) == set(d["paths"]["b"]) == set(MEDS)
    assert set(d["paths"]["a"]["hope"]) == {"coef", "se", "t", "p", "ci_low", "ci_high"}
    assert list(d["models"]) == ["alliance", "hope", "outcome", "total"]
    for key in ("indirect", "indirect_partially_std", "indirect_std"):
        assert list(d[key]) == ["total", *MEDS]
        assert set(d[key]["total"]) == {"effect", "boot_se", "ci_low", "ci_high"}
    assert list(d["contrasts"]) == ["alliance - hope"]
    frame = res.to_frame()
    assert {"a:hope", "b:alliance", "indirect:total", "indirect_std:hope", "contrast:alliance - hope"} <= set(frame.index)
    text = res.summary()
    for heading in ("M1 : alliance", "M2 : hope", "TOTAL ", "(C1)", "Specific indirect effect contrast definition(s):",
                    "Standardized coefficients"):
        assert heading in text


def test_standardized_coefficients_are_ols_on_z_scores(data):
    res = mediate(data, "fidelity", MEDS, "qol", covariates=COVS, n_boot=0, standardized=True)
    z = data[["fidelity", *MEDS, "qol", *COVS]].apply(lambda c: (c - c.mean()) / c.std())
    ref = sm.OLS(z["qol"], sm.add_constant(z[["fidelity", *MEDS, *COVS]])).fit()
    got = res.to_dict()["standardized_coefficients"]["outcome"]
    np.testing.assert_allclose([got[c] for c in ["fidelity", *MEDS, *COVS]], ref.params.iloc[1:], rtol=1e-10)


def test_dichotomous_x_prints_partially_standardized(data):
    data = data.assign(high=(data["fidelity"] > data["fidelity"].median()).astype(int))
    res = mediate(data, "high", "alliance", "qol", n_boot=200, seed=1)
    text = res.summary()
    assert "c_ps" in text and "c'_ps" in text and "c_cs" not in text
    assert "Partially standardized indirect" in text and "Completely standardized indirect" not in text
    std = res.standardized_direct_total()
    assert std["c_ps"] == pytest.approx(res.paths["c"]["coef"] / data["qol"].std(), rel=1e-12)


# --------------------------------------------------------------------------- Monte Carlo


def test_monte_carlo_interval_is_percentiles_of_normal_path_draws(data):
    res = mediate(data, "fidelity", MEDS, "qol", covariates=COVS, ci="monte_carlo", n_mc=20000, seed=4,
                  save_boot=True, hc="HC3")
    d = res.to_dict()
    assert d["n_mc"] == 20000 and d["n_boot"] == 0 and set(d["indirect"]["total"]) == {"effect", "mc_se",
                                                                                       "ci_low", "ci_high"}
    draws = res.boot_draws
    mean, V = montecarlo.path_covariance(_design(data), res.mediator_models, res.outcome_model, 2)
    paths = draws[["a:alliance", "a:hope", "b:alliance", "b:hope", "c_prime"]].to_numpy()
    sd = np.sqrt(np.diag(V))
    assert np.all(np.abs(paths.mean(axis=0) - mean) < 4 * sd / np.sqrt(20000))
    corr = np.corrcoef(paths, rowvar=False)
    np.testing.assert_allclose(corr, V / np.outer(sd, sd), atol=0.03)  # SE of a correlation ~ 0.007
    np.testing.assert_allclose(paths.std(axis=0, ddof=1), sd, rtol=0.03)
    # the HC3 covariance: the diagonal is each fit's HC3 variance
    assert V[0, 0] == pytest.approx(res.mediator_models[0].vcov[1, 1], rel=1e-12)
    v = draws["ab:hope"].to_numpy()
    assert d["indirect"]["hope"]["ci_high"] == pytest.approx(np.quantile(v, 0.975), rel=1e-12)
    assert d["indirect"]["hope"]["mc_se"] == pytest.approx(v.std(ddof=1), rel=1e-12)
    again = mediate(data, "fidelity", MEDS, "qol", covariates=COVS, ci="monte_carlo", n_mc=20000, seed=4, hc="HC3")
    assert again.to_dict() == d
    for label in ("MC SE", "MC LLCI", "MC ULCI", "Monte Carlo confidence intervals"):
        assert label in res.summary()


def _mc_coverage(R: int, n: int, n_mc: int, seed: int, a=0.3, b=0.3) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for r in range(R):  # replicates (each one vectorized inside)
        x = rng.normal(size=n)
        m = a * x + rng.normal(size=n)
        y = b * m + 0.2 * x + rng.normal(size=n)
        res = mediate(pd.DataFrame({"x": x, "m": m, "y": y}), "x", "m", "y", ci="monte_carlo", n_mc=n_mc,
                      seed=r, n_boot=0)
        hits += res.indirect["ci_low"] <= a * b <= res.indirect["ci_high"]
    return hits / R


def test_monte_carlo_coverage_light():
    cov = _mc_coverage(R=300, n=150, n_mc=2000, seed=11)
    assert 0.91 <= cov <= 0.985, cov  # MC SE ~1.3 points at R = 300


@pytest.mark.slow
def test_monte_carlo_coverage_full():
    cov = _mc_coverage(R=3000, n=200, n_mc=5000, seed=12)
    assert 0.935 <= cov <= 0.965, cov  # MC SE ~0.4 points


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("kwargs, text", [
    (dict(m=[f"m{j}" for j in range(11)]), "at most 10"),
    (dict(m="alliance", contrast=True), "at least two mediators"),
    (dict(contrast="both"), "contrast"),
    (dict(covariate_map={"sex": ["outcome"]}), "not among the covariates"),
    (dict(covariate_map={"age": ["total"]}), "mediators"),
    (dict(covariates_in="y"), "covariates_in"),
    (dict(hc="CR2"), "needs cluster"),
    (dict(ci="monte_carlo", n_mc=0), "n_mc"),
    (dict(impute=5, boot_coefficients=True), "impute"),
])
def test_bad_options(data, kwargs, text):
    args = dict(data=data, x="fidelity", m=MEDS, y="qol", covariates=COVS, n_boot=0)
    args.update(kwargs)
    with pytest.raises(ConfigError, match=text):
        mediate(**args)


# --------------------------------------------------------------------------- published PROCESS output


def test_first_equation_against_published_process_output():
    """PROCESS for SAS 2.10 on Hayes' pmi data, two parallel mediators (tests/reference/process_pmi_published.json
    records the source; only the importZ equation of that output is legible there), to the 4 printed decimals."""
    pub = json.loads((REF / "process_pmi_published.json").read_text())
    pmi = pd.read_csv(REF / "pmi.csv")
    for col, (mean, sd) in pub["standardize"].items():
        pmi[f"{col}Z"] = (pmi[col] - mean) / sd
    res = mediate(pmi, "cond", ["importZ", "pmiZ"], "reactionZ", n_boot=0, process_compat=True)
    fit = res.mediator_models[0]
    ref = pub["importZ"]
    ms = fit.model_summary()
    for key, v in ref["model"].items():
        assert ms[key] == pytest.approx(v, abs=6e-5), key
    for name, label in (("constant", "constant"), ("cond", "cond")):
        got = fit.coef_of(label)
        for key, v in ref[name].items():
            assert got[key] == pytest.approx(v, abs=6e-5), (name, key)
    assert res.x_dichotomous and "c'_ps" in res.summary()
