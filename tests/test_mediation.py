"""mediate() (PROCESS Model 4) against statsmodels, plain loops over resamples and hand formulas."""

from __future__ import annotations

import json
from importlib.resources import files

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from fidelitymed.errors import ConfigError, FidelityMedError, StudyDataError
from fidelitymed.seeding import root_sequence
from fidelitymed.stats import bootstrap as bs
from fidelitymed.stats.mediation import BOOT_COLUMNS, MediationResult, _make_statistic, mediate

COVS = ["age", "gender", "housing", "employment", "education", "ace", "site", "long_hosp", "qol_baseline"]
TOL = 1e-8


@pytest.fixture(scope="module")
def example() -> pd.DataFrame:
    return pd.read_csv(files("fidelitymed") / "data" / "mediation_example.csv")


@pytest.fixture(scope="module")
def result(example) -> MediationResult:
    return mediate(example, "fidelity", "alliance", "qol", covariates=COVS, categorical=["site"],
                   n_boot=600, seed=42, save_boot=True, normal=True)


def _formulas():
    rhs = " + ".join(c if c != "site" else "C(site)" for c in COVS)
    return (f"alliance ~ fidelity + {rhs}", f"qol ~ fidelity + alliance + {rhs}", f"qol ~ fidelity + {rhs}")


@pytest.mark.parametrize("hc", [None, "HC0", "HC1", "HC2", "HC3"])
def test_paths_and_models_match_statsmodels(example, hc):
    res = mediate(example, "fidelity", "alliance", "qol", covariates=COVS, categorical=["site"], n_boot=0, hc=hc)
    complete = example.dropna(subset=["fidelity", "alliance", "qol", *COVS])
    assert res.n == len(complete) and res.n_dropped == len(example) - len(complete) == 8
    d = res.to_dict()
    cov_type = hc or "nonrobust"
    for key, formula, var in zip(("mediator", "outcome", "total"), _formulas(), ("fidelity", "alliance", "fidelity")):
        ref = smf.ols(formula, complete).fit(cov_type=cov_type, use_t=True)
        m = d["models"][key]
        np.testing.assert_allclose([m["r2"], m["mse"], m["F"], m["p"]],
                                   [ref.rsquared, ref.mse_resid, ref.fvalue, ref.f_pvalue], rtol=TOL, atol=1e-12)
        assert (m["df1"], m["df2"]) == (ref.df_model, ref.df_resid)
    refs = [smf.ols(f, complete).fit(cov_type=cov_type, use_t=True) for f in _formulas()]
    for path, ref, var in (("a", refs[0], "fidelity"), ("b", refs[1], "alliance"),
                           ("c_prime", refs[1], "fidelity"), ("c", refs[2], "fidelity")):
        p = d["paths"][path]
        ci = ref.conf_int().loc[var]
        np.testing.assert_allclose(
            [p["coef"], p["se"], p["t"], p["p"], p["ci_low"], p["ci_high"]],
            [ref.params[var], ref.bse[var], ref.tvalues[var], ref.pvalues[var], ci[0], ci[1]], rtol=TOL, atol=1e-12)
    # full coefficient vectors in PROCESS order (constant, X, [M], covariates) for Rubin pooling
    assert res.outcome_model.names[:3] == ("constant", "fidelity", "alliance")
    assert "site[T.2]" in res.outcome_model.names and "site[T.1]" not in res.outcome_model.names
    np.testing.assert_allclose(res.outcome_model.vcov[2, 2], refs[1].cov_params().loc["alliance", "alliance"], rtol=TOL)


def test_cluster_cr1_matches_statsmodels(example):
    res = mediate(example, "fidelity", "alliance", "qol", covariates=["age", "ace"], cluster="site", n_boot=0)
    complete = example.dropna(subset=["fidelity", "alliance", "qol", "age", "ace"])
    ref = smf.ols("qol ~ fidelity + alliance + age + ace", complete).fit(
        cov_type="cluster", cov_kwds={"groups": complete["site"]}, use_t=True)
    b = res.paths["b"]
    np.testing.assert_allclose([b["se"], b["p"]], [ref.bse["alliance"], ref.pvalues["alliance"]], rtol=TOL)
    assert res.cov_type == "CR1" and any("Cluster-robust" in n for n in res.notes)


def test_bootstrap_equals_plain_loop_over_same_indices(example, result):
    """Regenerate the keyed block streams and refit each resample by lstsq in a loop (test only)."""
    cols = ["fidelity", "alliance", "qol", *COVS]
    data = example.dropna(subset=cols).reset_index(drop=True)
    dummies = pd.get_dummies(data["site"], prefix="site", drop_first=True, dtype=float)
    C = np.column_stack([data[[c for c in COVS if c != "site"]].to_numpy(float), dummies.to_numpy()])
    x, m, y = (data[c].to_numpy(float) for c in ("fidelity", "alliance", "qol"))
    n = len(data)
    seq = root_sequence(42)
    idx = np.concatenate([bs.resample_indices(bs.block_generator(seq, k), n, s)
                          for k, s in ((0, 500), (1, 100))])
    assert result.n_boot_failed == 0
    draws = result.boot_draws.to_numpy()
    assert list(result.boot_draws.columns) == list(BOOT_COLUMNS) and draws.shape == (600, 6)
    ones = np.ones(n)
    for r in range(600):
        i = idx[r]
        Xm = np.column_stack([ones[i], x[i], C[i]])
        Xy = np.column_stack([ones[i], x[i], m[i], C[i]])
        a = np.linalg.lstsq(Xm, m[i], rcond=None)[0][1]
        cp, b = np.linalg.lstsq(Xy, y[i], rcond=None)[0][1:3]
        sx, sy = x[i].std(ddof=1), y[i].std(ddof=1)
        np.testing.assert_allclose(draws[r], [a, b, cp, a * b, a * b / sy, a * b * sx / sy], rtol=1e-10, atol=1e-13)


def test_indirect_effects_and_intervals(result):
    d = result.to_dict()
    draws = result.boot_draws
    a, b = d["paths"]["a"]["coef"], d["paths"]["b"]["coef"]
    assert d["indirect"]["effect"] == pytest.approx(a * b, rel=1e-12)
    assert d["indirect_std"]["effect"] == pytest.approx(a * b * result.sd_x / result.sd_y, rel=1e-12)
    assert d["indirect_partially_std"]["effect"] == pytest.approx(a * b / result.sd_y, rel=1e-12)
    for key, col in (("indirect", "ab"), ("indirect_partially_std", "ab_ps"), ("indirect_std", "ab_std")):
        v = draws[col].to_numpy()
        assert d[key]["boot_se"] == pytest.approx(np.std(v, ddof=1), rel=1e-12)
        np.testing.assert_allclose([d[key]["ci_low"], d[key]["ci_high"]], np.percentile(v, [2.5, 97.5]), rtol=1e-12)
    # normal theory (second-order, Aroian) test from the path SEs
    sa, sb = d["paths"]["a"]["se"], d["paths"]["b"]["se"]
    se = np.sqrt(a ** 2 * sb ** 2 + b ** 2 * sa ** 2 + sa ** 2 * sb ** 2)
    assert result.normal_test["se"] == pytest.approx(se, rel=1e-12)
    assert result.normal_test["p"] == pytest.approx(2 * stats.norm.sf(a * b / se), rel=1e-10)


def test_process_compat_order_statistics_and_t(example):
    res = mediate(example, "fidelity", "alliance", "qol", covariates=["age", "ace"], n_boot=5000, seed=7,
                  save_boot=True, process_compat=True)
    ab = np.sort(res.boot_draws["ab"].to_numpy())
    assert res.indirect["ci_low"] == ab[124] and res.indirect["ci_high"] == ab[4875]  # 125th, 4876th
    exact = mediate(example, "fidelity", "alliance", "qol", covariates=["age", "ace"], n_boot=0)
    # df = n - 5 ~ 300: PROCESS's t approximation agrees with the exact quantile to ~1e-6
    assert res.paths["a"]["ci_low"] == pytest.approx(exact.paths["a"]["ci_low"], rel=1e-5)
    assert res.paths["a"]["ci_low"] != exact.paths["a"]["ci_low"]


def test_bca_against_hand_formula_with_jackknife_loop(example):
    cols = ["fidelity", "alliance", "qol", "age"]
    res = mediate(example, "fidelity", "alliance", "qol", covariates=["age"], n_boot=2000, seed=3,
                  ci="bca", save_boot=True)
    data = example.dropna(subset=cols)
    x, m, y, age = (data[c].to_numpy(float) for c in cols)
    n = len(data)
    jack = np.empty(n)
    for i in range(n):  # leave-one-out loop, test only
        keep = np.arange(n) != i
        ones = np.ones(n - 1)
        a = np.linalg.lstsq(np.column_stack([ones, x[keep], age[keep]]), m[keep], rcond=None)[0][1]
        b = np.linalg.lstsq(np.column_stack([ones, x[keep], m[keep], age[keep]]), y[keep], rcond=None)[0][2]
        jack[i] = a * b
    draws = res.boot_draws["ab"].to_numpy()
    est = res.ab
    z0 = stats.norm.ppf(((draws < est).sum() + (draws <= est).sum()) / (2 * len(draws)))
    dj = jack.mean() - jack
    acc = (dj ** 3).sum() / (6 * (dj ** 2).sum() ** 1.5)
    z = stats.norm.ppf(0.975)
    levels = [stats.norm.cdf(z0 + (z0 + q) / (1 - acc * (z0 + q))) for q in (-z, z)]
    np.testing.assert_allclose([res.indirect["ci_low"], res.indirect["ci_high"]], np.quantile(draws, levels),
                               rtol=1e-9)


def test_seed_reproducible_and_keyed(example):
    kw = dict(covariates=["age"], n_boot=700)
    r1 = mediate(example, "fidelity", "alliance", "qol", seed=5, **kw)
    r2 = mediate(example, "fidelity", "alliance", "qol", seed=5, **kw)
    r3 = mediate(example, "fidelity", "alliance", "qol", seed=6, **kw)
    assert r1.to_dict() == r2.to_dict() and r1.to_dict() != r3.to_dict()
    child = np.random.SeedSequence(5).spawn(3)[2]
    r4 = mediate(example, "fidelity", "alliance", "qol", seed=child, **kw)
    assert r4.to_dict()["seed"] == {"entropy": 5, "spawn_key": [2]}
    r5 = mediate(example, "fidelity", "alliance", "qol", seed=None, **kw)
    again = mediate(example, "fidelity", "alliance", "qol", seed=r5.to_dict()["seed"], **kw)
    assert again.to_dict()["indirect"] == r5.to_dict()["indirect"]
    assert "Random seed" in r5.summary() and "Custom seed" in r1.summary()


def test_to_dict_keys_and_json(result):
    d = result.to_dict()
    assert set(d) == {"n", "n_dropped", "paths", "models", "indirect", "indirect_partially_std", "indirect_std",
                      "n_boot", "n_boot_failed", "seed"}
    assert set(d["paths"]) == {"a", "b", "c_prime", "c"}
    assert all(set(v) == {"coef", "se", "t", "p", "ci_low", "ci_high"} for v in d["paths"].values())
    assert set(d["models"]) == {"mediator", "outcome", "total"}
    assert all(set(v) == {"r", "r2", "mse", "F", "df1", "df2", "p"} for v in d["models"].values())
    for k in ("indirect", "indirect_partially_std", "indirect_std"):
        assert set(d[k]) == {"effect", "boot_se", "ci_low", "ci_high"}
    assert (d["n_boot"], d["seed"]) == (600, 42)
    json.dumps(d, allow_nan=False)
    frame = result.to_frame()
    assert list(frame.index) == ["a", "b", "c_prime", "c", "indirect", "indirect_partially_std", "indirect_std"]
    assert "<table" in result._repr_html_()
    text = result.summary()
    for heading in ("OUTCOME VARIABLE:", "Model Summary", "TOTAL EFFECT MODEL", "Indirect effect(s) of X on Y:",
                    "Completely standardized indirect effect(s)", "Normal theory test", "ANALYSIS NOTES AND ERRORS",
                    "site[T.6]", "deleted due to missing data"):
        assert heading in text
    with pytest.raises((AttributeError, TypeError)):
        result.n = 3


def test_no_bootstrap_and_small_boot(example):
    d = mediate(example, "fidelity", "alliance", "qol", n_boot=0).to_dict()
    assert d["indirect"]["boot_se"] is None and d["indirect"]["ci_low"] is None and d["n_boot"] == 0
    small = mediate(example, "fidelity", "alliance", "qol", n_boot=200, seed=1)
    assert small.n_boot == 200 and any("200 bootstrap" in n for n in small.notes)


def test_singular_resamples_redrawn(example):
    data = example.dropna(subset=["fidelity", "alliance", "qol"]).iloc[:60].copy()
    data["rare"] = 0
    data.iloc[:3, data.columns.get_loc("rare")] = 1  # absent from ~5% of resamples
    res = mediate(data, "fidelity", "alliance", "qol", covariates=["rare"], n_boot=2000, seed=11, save_boot=True)
    assert res.n_boot_failed > 0 and np.isfinite(res.boot_draws.to_numpy()).all()
    assert any("singular" in n for n in res.notes)


@pytest.mark.parametrize("kwargs, err, text", [
    (dict(x="nope"), ConfigError, "nope"),
    (dict(covariates=["agee"]), ConfigError, "agee"),
    (dict(categorical=["site"]), ConfigError, "site"),
    (dict(n_boot=-1), ConfigError, "n_boot"),
    (dict(n_boot=2.5), ConfigError, "n_boot"),
    (dict(conf=95), ConfigError, "conf"),
    (dict(conf=1.0), ConfigError, "conf"),
    (dict(hc=7), ConfigError, "hc"),
    (dict(ci="bca2"), ConfigError, "ci"),
    (dict(hc=3, cluster="site"), ConfigError, "not both"),
    (dict(covariates=["const"]), StudyDataError, "const"),
    (dict(covariates=["age", "age2"]), FidelityMedError, "age2"),
    (dict(covariates=["word"]), StudyDataError, "word"),
])
def test_bad_input(example, kwargs, err, text):
    data = example.copy()
    data["const"] = 3.0
    data["age2"] = 2 * data["age"] + 1
    data["word"] = data["age"].astype(object)
    data.loc[5, "word"] = "forty"
    args = dict(data=data, x="fidelity", m="alliance", y="qol", n_boot=0)
    args.update(kwargs)
    with pytest.raises(err, match=text):
        mediate(**args)


def test_non_numeric_names_row(example):
    data = example.copy()
    data["qol"] = data["qol"].astype(object)
    data.loc[9, "qol"] = "n/a?"
    with pytest.raises(StudyDataError) as info:
        mediate(data, "fidelity", "alliance", "qol", n_boot=0)
    assert info.value.column == "qol" and info.value.value == "n/a?" and info.value.row == 11


def test_non_numeric_cells_counted_in_full(example):
    data = example.copy()
    data["qol"] = data["qol"].astype(object)
    bad_rows = [3, 9, 14, 20, 27, 33, 41]
    for i in bad_rows:
        data.loc[i, "qol"] = "n/a"
    with pytest.raises(StudyDataError) as info:
        mediate(data, "fidelity", "alliance", "qol", n_boot=0)
    message = str(info.value)
    assert message.startswith("7 problems in the data:") and message.endswith("... and 2 more")
    assert [issue.row for issue in info.value.issues] == [i + 2 for i in bad_rows]
    assert message.count("expected a number") == 5


def test_too_few_rows(example):
    with pytest.raises(FidelityMedError, match="more rows than parameters"):
        mediate(example.iloc[:12], "fidelity", "alliance", "qol", covariates=COVS, categorical=["site"], n_boot=0)


# ------------------------------------------------------------------- coverage simulation


def _coverage(R: int, n: int, B: int, seed: int, a=0.4, b=0.4, chunk=50) -> float:
    """Share of replicates whose 95% percentile CI of ab covers a*b.

    Replicates x resamples are batched through the same kernel as mediate (moment matrices of
    [1, X, M, Y] and the mediation statistic); there is no loop over replicates or resamples, only
    over memory-bounded groups of replicates.
    """
    rng = np.random.default_rng(seed)
    stat = _make_statistic(np.ones(3))
    hits = 0
    for start in range(0, R, chunk):
        r = min(chunk, R - start)
        x = rng.normal(size=(r, n))
        m = a * x + rng.normal(size=(r, n))
        y = b * m + 0.2 * x + rng.normal(size=(r, n))
        Z = np.stack([np.ones((r, n)), x, m, y], axis=-1)  # (r, n, 4)
        counts = bs.index_counts(bs.resample_indices(rng, n, r * B).reshape(r, B, n), n)
        M = bs.moment_matrices(Z, counts)  # (r, B, 4, 4)
        values, ok = stat(*bs.as_packed(np.moveaxis(M.reshape(r * B, 4, 4), 0, -1)))
        assert ok.all()
        ab = values[:, 3].reshape(r, B)
        lo, hi = bs.percentile_interval(ab.T, 0.95)
        hits += int(((lo <= a * b) & (a * b <= hi)).sum())
    return hits / R


def test_coverage_light():
    cov = _coverage(R=400, n=100, B=1000, seed=2024)
    assert 0.92 <= cov <= 0.98, cov  # MC SE ~1.1 points at R = 400 (got 0.950); the full run asserts 93-97%


@pytest.mark.slow
def test_coverage_full():
    cov = _coverage(R=4000, n=200, B=2000, seed=99)
    assert 0.93 <= cov <= 0.97, cov  # MC SE ~0.35 points (got 0.945)


# ------------------------------------------------------------------- stored R output (lm + sandwich)

R_REF = __import__("pathlib").Path(__file__).parent / "reference"


@pytest.mark.parametrize("cov_type", ["nonrobust", "HC0", "HC1", "HC2", "HC3", "HC4", "CR1"])
def test_against_r_lm_sandwich(cov_type):
    """tests/reference/mediation_lm.R: lm(), sandwich::vcovHC (HC0-HC4), vcovCL(type = "HC1")."""
    ref = json.loads((R_REF / "mediation_lm.json").read_text())
    data = pd.read_csv(R_REF / "mediation_lm.csv")
    if cov_type == "CR1":
        res = mediate(data, "fidelity", "alliance", "qol", covariates=["age", "ace"], cluster="site", n_boot=0)
        fits = {"outcome_cl": res.outcome_model}
    else:
        res = mediate(data, "fidelity", "alliance", "qol", covariates=COVS, categorical=["site"], n_boot=0,
                      hc=None if cov_type == "nonrobust" else cov_type)
        fits = {"mediator": res.mediator_model, "outcome": res.outcome_model, "total": res.total_model}
        # CR1 SEs of the full models too (their Wald F is undefined: 15 slopes, 6 clusters)
    for key, fit in fits.items():
        r = ref[key]
        assert fit.n == r["n"] and len(fit.names) == len(r["names"])
        np.testing.assert_allclose(fit.coef, r["coef"], rtol=TOL)
        np.testing.assert_allclose(fit.se, r["se"][cov_type], rtol=TOL)
        np.testing.assert_allclose([fit.r2, fit.mse], [r["r2"], r["mse"]], rtol=TOL)
        F_ref = r["F"] if cov_type == "nonrobust" else r["F_robust"][cov_type]
        np.testing.assert_allclose(fit.F, F_ref, rtol=TOL)
    if cov_type == "nonrobust":
        assert (res.models["outcome"]["df1"], res.models["outcome"]["df2"]) == (ref["outcome"]["df1"], ref["outcome"]["df2"])


def test_cr1_full_model_se_against_r():
    ref = json.loads((R_REF / "mediation_lm.json").read_text())
    data = pd.read_csv(R_REF / "mediation_lm.csv")
    res = mediate(data, "fidelity", "alliance", "qol", covariates=[c for c in COVS if c != "site"] + ["site"],
                  categorical=["site"], cluster="site", n_boot=0)
    # same columns as R's formula, site dummies after ace: reorder ours by name
    names = list(res.outcome_model.names)
    order = [names.index(n) for n in ["constant", "fidelity", "alliance", "age", "gender", "housing", "employment",
                                       "education", "ace"]]
    np.testing.assert_allclose(res.outcome_model.se[order], ref["outcome"]["se"]["CR1"][:9], rtol=TOL)
    assert ref["outcome"]["F_robust"]["CR1"] is None and np.isnan(res.outcome_model.F)
