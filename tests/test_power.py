"""Power analysis: G*Power's regression power, Monte Carlo power for the indirect effect.

References used here: G*Power's manual example, scipy's noncentral F, R (``pf`` with
``ncp = f2 * N`` and ``pwr::pwr.f2.test``; tests/reference/power_regression.R -> .json),
statsmodels OLS (plain and cluster-robust) in plain per-replicate loops, the bootstrap kernel's
own BCa interval, and Fritz & MacKinnon (2007, Table 3).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

import fidelitymed
from fidelitymed.errors import ConfigError
from fidelitymed.seeding import root_sequence
from fidelitymed.stats import bootstrap as kernel
from fidelitymed.stats import power as P

REFERENCE = Path(__file__).parent / "reference" / "power_regression.json"


# ------------------------------------------------------------------------------ regression power

def test_gpower_manual_example():
    res = fidelitymed.power_regression(f2=0.1111, n=110, n_predictors=5, n_tested=5)
    assert (res.df1, res.df2) == (5, 104)
    assert res.noncentrality == pytest.approx(12.2210, abs=5e-05)
    assert res.f_critical == pytest.approx(2.3017, abs=5e-05)
    assert res.power == pytest.approx(0.7518, abs=5e-05)
    assert "0.7518" in res.summary()
    assert res.to_dict()["power"] == pytest.approx(0.7518, abs=5e-5)
    assert list(res.to_frame().columns)[:3] == ["f2", "n", "n_predictors"]


@pytest.mark.parametrize("f2,n,k,q,alpha", [(0.02, 311, 3, 1, 0.05), (0.15, 60, 4, 2, 0.01),
                                             (0.35, 30, 2, 2, 0.05), (0.0625, 500, 8, 1, 0.10)])
def test_power_equals_scipy_noncentral_f(f2, n, k, q, alpha):
    df2 = n - k - 1
    f_crit = stats.f.ppf(1 - alpha, q, df2)
    expected = 1 - stats.ncf.cdf(f_crit, q, df2, f2 * n)
    res = fidelitymed.power_regression(f2, n, k, q, alpha)
    assert res.power == pytest.approx(expected, rel=1e-10)
    assert res.f_critical == pytest.approx(f_crit, rel=1e-10)


def test_power_and_sample_size_against_r():
    ref = json.loads(REFERENCE.read_text())
    for case in ref["power"]:
        res = fidelitymed.power_regression(case["f2"], int(case["n"]), int(case["n_predictors"]),
                                           int(case["n_tested"]), case["alpha"])
        assert res.power == pytest.approx(case["power"], abs=1e-9), case
        assert res.f_critical == pytest.approx(case["f_crit"], rel=1e-9), case
        # pwr.f2.test's lambda = f2 (u + v + 1) agrees only when every predictor is tested
        if case["n_tested"] == case["n_predictors"]:
            assert case["power_pwr"] == pytest.approx(res.power, abs=1e-9)
    differ = [c for c in ref["power"] if c["n_tested"] < c["n_predictors"]]
    assert any(abs(c["power_pwr"] - c["power"]) > 1e-4 for c in differ)
    for case in ref["sample_size"]:
        res = fidelitymed.sample_size_regression(case["f2"], case["target"],
                                                 int(case["n_predictors"]),
                                                 int(case["n_tested"]), case["alpha"])
        assert res.n == case["n"], case


def test_sample_size_regression_is_smallest_and_monotone():
    res = fidelitymed.sample_size_regression(0.1111, 0.8, n_predictors=5, n_tested=5)
    assert res.achieved_power >= 0.8 > res.power_at_n_minus_1
    assert fidelitymed.power_regression(0.1111, res.n - 1, 5, 5).power < 0.8
    f2s = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5]
    ns = [fidelitymed.sample_size_regression(f2, 0.8, 3, 1).n for f2 in f2s]
    assert all(a > b for a, b in zip(ns, ns[1:]))
    targets = [0.5, 0.7, 0.8, 0.9, 0.95, 0.99]
    ns = [fidelitymed.sample_size_regression(0.05, t, 3, 1).n for t in targets]
    assert all(a < b for a, b in zip(ns, ns[1:]))
    # power increases with N, so the bisection's answer is the first crossing
    powers = [fidelitymed.power_regression(0.05, n, 3, 1).power for n in range(5, 400)]
    assert np.all(np.diff(powers) > 0)


@pytest.mark.parametrize("kwargs", [dict(f2=-0.1, n=50, n_predictors=2),
                                    dict(f2=0.1, n=3, n_predictors=2),
                                    dict(f2=0.1, n=50, n_predictors=2, n_tested=3),
                                    dict(f2=0.1, n=50, n_predictors=2, alpha=1.5)])
def test_regression_argument_errors(kwargs):
    with pytest.raises(ConfigError):
        fidelitymed.power_regression(**kwargs)


# ------------------------------------------------------------------------------ data generation

def test_simulated_population_is_standardized():
    design = P._make_design(0.3, 0.4, 0.2, 0.25, 2, 0.2, 40)
    z = P._simulate_block(design, 20_000, 3, root_sequence(11))
    frame = pd.DataFrame(z.reshape(-1, z.shape[-1])[:, 1:], columns=["x", "w1", "w2", "m", "y"])
    assert frame[["x", "m", "y"]].var().to_numpy() == pytest.approx([1, 1, 1], abs=0.03)
    # covariates jointly explain covariates_r2 of var(M) and var(Y)
    r2_m = frame[["w1", "w2"]].corrwith(frame["m"]).pow(2).sum()
    r2_y = frame[["w1", "w2"]].corrwith(frame["y"]).pow(2).sum()
    assert r2_m == pytest.approx(0.25, abs=0.02) and r2_y == pytest.approx(0.25, abs=0.02)
    fit_m = sm.OLS(frame["m"], sm.add_constant(frame[["x", "w1", "w2"]])).fit()
    fit_y = sm.OLS(frame["y"], sm.add_constant(frame[["x", "m", "w1", "w2"]])).fit()
    assert fit_m.params["x"] == pytest.approx(0.3, abs=0.02)
    assert fit_y.params["m"] == pytest.approx(0.4, abs=0.02)
    assert fit_y.params["x"] == pytest.approx(0.2, abs=0.02)
    # residual ICC of M: share of the residual variance between clusters (one-way ANOVA)
    cluster, _ = P._cluster_layout(20_000, 40)
    resid = fit_m.resid.to_numpy()[:20_000]
    groups = pd.Series(resid).groupby(cluster)
    k = 20_000 / 40
    msb = k * groups.mean().var()
    msw = groups.var().mean()
    icc = (msb - msw) / (msb + (k - 1) * msw)
    assert icc == pytest.approx(0.2, abs=0.08)


def test_unit_residual_generator_has_raw_paths_and_unit_error_variances():
    # effects="unit_residual": X ~ N(0, 1), M = aX + e_M, Y = c'X + bM + e_Y, var(e) = 1
    a, b, c = 0.3, 0.4, 0.2
    design = P._make_design(a, b, c, 0.0, 1, 0.0, None, effects="unit_residual")
    z = P._simulate_block(design, 40_000, 2, root_sequence(12))
    frame = pd.DataFrame(z.reshape(-1, z.shape[-1])[:, 1:], columns=["x", "m", "y"])
    expected_var = [1.0, 1 + a * a, (c + a * b) ** 2 + b * b + 1]
    assert frame.var().to_numpy() == pytest.approx(expected_var, rel=0.02)
    fit_m = sm.OLS(frame["m"], sm.add_constant(frame[["x"]])).fit()
    fit_y = sm.OLS(frame["y"], sm.add_constant(frame[["x", "m"]])).fit()
    assert fit_m.params["x"] == pytest.approx(a, abs=0.015)
    assert fit_y.params["m"] == pytest.approx(b, abs=0.015)
    assert fit_y.params["x"] == pytest.approx(c, abs=0.015)
    assert (fit_m.scale, fit_y.scale) == pytest.approx((1.0, 1.0), rel=0.02)
    # raw paths need not lie in (-1, 1); covariate shares are defined for standardized paths only
    assert P._make_design(1.5, 0.4, 0.0, 0.0, 1, 0.0, None, effects="unit_residual").a == 1.5
    with pytest.raises(ConfigError, match="unit_residual"):
        fidelitymed.power_mediation(0.3, 0.3, 100, covariates_r2=0.1, effects="unit_residual")
    with pytest.raises(ConfigError, match="effects"):
        fidelitymed.power_mediation(0.3, 0.3, 100, effects="raw")


def _exact_joint_power(a, b, n, effects, alpha=0.05, grid=600):
    """Exact power of the joint t tests of a and b (c' = 0), independent of fidelitymed: given
    S_xx ~ var(X) chi2(n-1) and the residual SS of M on X, RSS ~ var(e_M) chi2(n-2), a-hat is
    normal and independent of RSS, and t_b is noncentral t(n-3, b sqrt(RSS)/sd(e_Y)); the two
    chi-squares are integrated out on a grid of their quantiles."""
    sd_m, sd_y = ((math.sqrt(1 - a * a), math.sqrt(1 - b * b)) if effects == "standardized"
                  else (1.0, 1.0))
    u = (np.arange(grid) + 0.5) / grid
    sxx = stats.chi2.ppf(u, n - 1)[:, None]
    rss = sd_m ** 2 * stats.chi2.ppf(u, n - 2)[None, :]
    t_a, t_b = stats.t.isf(alpha / 2, n - 2), stats.t.isf(alpha / 2, n - 3)
    crit = t_a * np.sqrt(rss / (n - 2)) / sd_m  # |a-hat| / (sd_m / sqrt(sxx)) must exceed this
    shift = a * np.sqrt(sxx) / sd_m
    p_a = stats.norm.sf(crit - shift) + stats.norm.sf(crit + shift)
    ncp = b * np.sqrt(rss) / sd_y
    p_b = stats.nct.sf(t_b, n - 3, ncp) + stats.nct.sf(t_b, n - 3, -ncp)
    return float((p_a * p_b).mean())


@pytest.mark.parametrize("effects", ["standardized", "unit_residual"])
def test_joint_power_matches_exact_noncentral_t(effects):
    # Fritz & MacKinnon's medium cell: N = 162, a = b = .26
    exact = _exact_joint_power(0.26, 0.26, 162, effects)
    res = fidelitymed.power_mediation(0.26, 0.26, 162, method="joint", n_rep=4000, seed=5,
                                      effects=effects)
    assert res.effects == effects and res.to_dict()["effects"] == effects
    assert abs(res.power - exact) <= 3 * math.sqrt(exact * (1 - exact) / 4000), (res.power, exact)


def test_unit_residual_is_the_standardized_model_rescaled():
    # unit-residual data are the standardized model's data at a/sd(M), b sd(M)/sd(Y), column by
    # column rescaled; t tests and percentile CIs of ab are scale-free, so with the same seed the
    # decisions agree replicate by replicate
    a = b = 0.26
    sd_m, sd_y = math.sqrt(1 + a * a), math.sqrt((a * b) ** 2 + b * b + 1)
    for method in ("joint", "percentile"):
        raw = fidelitymed.power_mediation(a, b, 80, method=method, n_rep=50, n_boot=200, seed=8,
                                          effects="unit_residual")
        std = fidelitymed.power_mediation(a / sd_m, b * sd_m / sd_y, 80, method=method, n_rep=50,
                                          n_boot=200, seed=8)
        assert raw.rejections == std.rejections
        assert raw.mean_indirect == pytest.approx(std.mean_indirect * sd_y, rel=1e-9)
    assert "unit residual variances" in raw.summary()


def test_cluster_level_exposure():
    design = P._make_design(0.3, 0.3, 0.0, 0.0, 1, 0.1, 12, "cluster")
    z = P._simulate_block(design, 60, 4, root_sequence(3))
    cluster, _ = P._cluster_layout(60, 12)
    x = pd.DataFrame(z[..., 1].T).groupby(cluster)
    assert (x.nunique() == 1).all().all()  # one X per cluster
    kwargs = dict(a=0.3, b=0.3, n=240, method="joint", n_rep=200, seed=4, n_clusters=12)
    assert (fidelitymed.power_mediation(**kwargs, x_level="cluster").power
            < fidelitymed.power_mediation(**kwargs).power)
    with pytest.raises(ConfigError, match="x_level"):
        fidelitymed.power_mediation(0.3, 0.3, 100, x_level="cluster")


def test_mediation_argument_errors():
    with pytest.raises(ConfigError, match="n_clusters"):
        fidelitymed.power_mediation(0.3, 0.3, 100, icc=0.1)
    with pytest.raises(ConfigError, match="var"):
        fidelitymed.power_mediation(0.9, 0.3, 100, covariates_r2=0.3)
    with pytest.raises(ConfigError, match="method"):
        fidelitymed.power_mediation(0.3, 0.3, 100, method="sobel")
    with pytest.raises(ConfigError, match="zero path"):
        fidelitymed.sample_size_mediation(0.0, 0.3)


# ------------------------------------------------------------------ vectorized vs direct loops

def _block(method, design, n=40, reps=6, n_boot=200, seed=3, block=0):
    spec = P._BlockSpec(design=design, n=n, reps=reps, method=method, n_boot=n_boot, conf=0.95,
                        alpha=0.05)
    block_seed = P._block_seed(root_sequence(seed), n, block)
    z = P._simulate_block(design, n, reps, block_seed)
    return spec, block_seed, z


@pytest.mark.parametrize("clustered,x_level", [(False, "client"), (True, "client"),
                                               (True, "cluster")])
def test_joint_significance_matches_statsmodels_loop(clustered, x_level):
    design = P._make_design(0.25, 0.2, 0.1, 0.1 if clustered else 0.0, 1,
                            0.2 if clustered else 0.0, 8 if clustered else None, x_level)
    spec, block_seed, z = _block("joint", design, n=48, reps=25)
    reject, estimate = P._run_block(spec, block_seed)
    cluster, _ = P._cluster_layout(48, 8)
    expected, ab = [], []
    for r in range(z.shape[0]):  # the direct computation: one replicate at a time
        zr = z[r]
        xm, xy = zr[:, design.m_predictors], zr[:, design.y_predictors]
        if clustered:
            fm = sm.OLS(zr[:, design.m_col], xm).fit(cov_type="cluster",
                                                     cov_kwds={"groups": cluster}, use_t=True)
            fy = sm.OLS(zr[:, design.y_col], xy).fit(cov_type="cluster",
                                                     cov_kwds={"groups": cluster}, use_t=True)
        else:
            fm = sm.OLS(zr[:, design.m_col], xm).fit()
            fy = sm.OLS(zr[:, design.y_col], xy).fit()
        expected.append(fm.pvalues[1] < 0.05 and fy.pvalues[-1] < 0.05)
        ab.append(fm.params[1] * fy.params[-1])
    np.testing.assert_array_equal(reject, expected)
    np.testing.assert_allclose(estimate, ab, rtol=1e-10)
    assert 0 < np.sum(expected) < len(expected) or clustered  # the check discriminates


def test_monte_carlo_ci_matches_direct_loop():
    design = P._make_design(0.3, 0.3, 0.0, 0.0, 1, 0.0, None)
    spec, block_seed, z = _block("monte_carlo", design, n=60, reps=25, n_boot=500)
    reject, _ = P._run_block(spec, block_seed)
    draws = P._rng(block_seed, "mc").standard_normal((25, 500, 2))
    expected = []
    for r in range(25):
        fm = sm.OLS(z[r][:, 3 - 1], z[r][:, [0, 1]]).fit()
        fy = sm.OLS(z[r][:, 3], z[r][:, [0, 1, 2]]).fit()
        a, sa, b, sb = fm.params[1], fm.bse[1], fy.params[2], fy.bse[2]
        ab = [(a + sa * d[0]) * (b + sb * d[1]) for d in draws[r]]  # one draw at a time
        lo, hi = np.percentile(ab, [2.5, 97.5])
        expected.append(lo > 0 or hi < 0)
    np.testing.assert_array_equal(reject, expected)
    assert 0 < sum(expected) < 25


def test_percentile_bootstrap_matches_direct_loop():
    design = P._make_design(0.35, 0.35, 0.0, 0.0, 1, 0.0, None)
    spec, block_seed, z = _block("percentile", design, n=50, reps=4, n_boot=250)
    reject, _ = P._run_block(spec, block_seed)
    for r in range(4):
        draws = []
        for sub, first in enumerate(range(0, 250, P._BOOT_BLOCK)):
            size = min(P._BOOT_BLOCK, 250 - first)
            idx = P._rng(block_seed, "boot", sub).integers(0, 50, size=(4, size, 50))
            for rows in idx[r]:  # one resample at a time
                zb = z[r][rows]
                a = np.linalg.lstsq(zb[:, [0, 1]], zb[:, 2], rcond=None)[0][1]
                b = np.linalg.lstsq(zb[:, [0, 1, 2]], zb[:, 3], rcond=None)[0][2]
                draws.append(a * b)
        lo, hi = np.quantile(draws, [0.025, 0.975])
        assert reject[r] == (lo > 0 or hi < 0)


def test_bca_matches_kernel_interval_and_direct_jackknife():
    design = P._make_design(0.3, 0.3, 0.0, 0.0, 1, 0.0, None)
    rng = np.random.default_rng(5)
    draws = rng.normal(0.1, 0.05, size=(7, 400))
    estimate = rng.normal(0.1, 0.01, size=7)
    jack = rng.normal(0.1, 0.01, size=(7, 30)) + rng.exponential(0.01, size=(7, 30))
    lo, hi = P._bca_bounds(draws, estimate, jack, 0.95)
    for r in range(7):
        klo, khi = kernel.bca_interval(draws[r], estimate[r], jack[r], 0.95)
        assert lo[r] == pytest.approx(float(klo), rel=1e-12)
        assert hi[r] == pytest.approx(float(khi), rel=1e-12)
    # leave-one-out estimates from downdated moments equal refits without that row
    z = P._simulate_block(design, 20, 2, root_sequence(2))
    full = np.matmul(z.swapaxes(1, 2), z)
    a_j, b_j = P._paths_from_moments(full[:, None] - z[..., :, None] * z[..., None, :], design)
    for i in (0, 7, 19):
        zi = np.delete(z[1], i, axis=0)
        a = np.linalg.lstsq(zi[:, [0, 1]], zi[:, 2], rcond=None)[0][1]
        b = np.linalg.lstsq(zi[:, [0, 1, 2]], zi[:, 3], rcond=None)[0][2]
        assert a_j[1, i] * b_j[1, i] == pytest.approx(a * b, rel=1e-9)


# ------------------------------------------------------------------------- Monte Carlo power

@pytest.mark.parametrize("method", ["percentile", "monte_carlo", "joint"])
@pytest.mark.parametrize("a,b", [(0.0, 0.39), (0.39, 0.0)])
def test_power_under_a_zero_path_stays_at_or_below_alpha(method, a, b):
    res = fidelitymed.power_mediation(a, b, 100, method=method, n_rep=400, n_boot=400, seed=21)
    # one-sided binomial bound at alpha = .05 (3 MC SEs)
    assert res.power <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 400), res.summary()


def test_seed_gives_identical_results_on_every_backend():
    kwargs = dict(a=0.3, b=0.3, n=60, method="percentile", n_rep=60, n_boot=200, seed=5)
    serial = fidelitymed.power_mediation(**kwargs)
    again = fidelitymed.power_mediation(**kwargs, executor="serial")
    processes = fidelitymed.power_mediation(**kwargs, executor="processes", workers=2)
    dask = fidelitymed.power_mediation(**kwargs, executor="dask", workers=2)
    from fidelitymed import parallel

    with parallel.Executor("processes", workers=2) as ex:  # a reused pool, as a pipeline passes it
        reused = fidelitymed.power_mediation(**kwargs, executor=ex)
    for other in (again, processes, dask, reused):
        assert other.rejections == serial.rejections
        assert other.mean_indirect == serial.mean_indirect  # bit-identical
    other_seed = fidelitymed.power_mediation(**{**kwargs, "seed": 6})
    assert other_seed.mean_indirect != serial.mean_indirect


def test_sample_size_grid_points_equal_power_mediation():
    res = fidelitymed.sample_size_mediation(0.39, 0.39, power=0.8, method="joint", n_rep=400,
                                            seed=9)
    point = res.curve[len(res.curve) // 2]
    direct = fidelitymed.power_mediation(0.39, 0.39, point.n, method="joint", n_rep=400, seed=9)
    assert direct.rejections == point.rejections
    # the returned N is the smallest integer whose fitted power reaches the target
    assert res.fitted_power(res.n) >= 0.8 > res.fitted_power(res.n - 1)
    assert res.n_ci_low < res.n_exact < res.n_ci_high
    assert res.n == math.ceil(res.n_exact)
    frame = res.to_frame()
    assert frame["n"].is_monotonic_increasing and frame["fitted_power"].is_monotonic_increasing
    json.dumps(res.to_dict())
    # more power needs more clients; a larger effect needs fewer
    more = fidelitymed.sample_size_mediation(0.39, 0.39, power=0.9, method="joint", n_rep=400,
                                             seed=9)
    larger = fidelitymed.sample_size_mediation(0.59, 0.59, power=0.8, method="joint", n_rep=400,
                                               seed=9)
    assert larger.n < res.n < more.n


def test_fritz_mackinnon_medium_medium_light():
    # Fritz & MacKinnon (2007, Table 3): percentile bootstrap, a = b = .26, c' = 0 -> N = 162;
    # raw paths with unit residual variances (docs/power.md says why)
    res = fidelitymed.power_mediation(0.26, 0.26, 162, method="percentile", n_rep=1000,
                                      n_boot=1000, seed=2007, effects="unit_residual")
    # their N is itself an estimate: allow the MC error of a 1000-replicate power as well
    tolerance = 3 * math.sqrt(res.se ** 2 + 0.8 * 0.2 / 1000)
    assert abs(res.power - 0.80) <= tolerance, res.summary()


@pytest.mark.slow
@pytest.mark.parametrize("path,published", [(0.26, 162), (0.14, 558)])
def test_fritz_mackinnon_full(path, published):
    res = fidelitymed.sample_size_mediation(path, path, power=0.8, method="percentile",
                                            n_rep=2000, n_boot=1000, seed=2007,
                                            executor="processes", workers=2,
                                            effects="unit_residual")
    # the fitted power at the published N equals 0.80 within the MC error of our curve and of
    # a 1000-replicate estimate behind the published N
    low, high = res.fitted_band(published)
    se_fit = float(high[0] - low[0]) / (2 * 1.959964)
    gap = float(res.fitted_power(published)) - 0.8
    assert abs(gap) <= 3 * math.sqrt(se_fit ** 2 + 0.8 * 0.2 / 1000), res.summary()


# ------------------------------------------------------------------------------------- CLI

def test_cli_regression_json_and_plot(tmp_path, capsys):
    from fidelitymed.cli import main

    out, fig = tmp_path / "r.json", tmp_path / "r.svg"
    assert main(["power", "regression", "--f2", "0.1111", "--predictors", "5", "--tested", "5",
                 "--n", "110", "--json", str(out), "--plot", str(fig)]) == 0
    assert "0.7518" in capsys.readouterr().out
    assert json.loads(out.read_text())["power"] == pytest.approx(0.7518, abs=5e-5)
    assert fig.read_text().lstrip().startswith("<?xml")
    assert main(["power", "regression", "--f2", "0.1111", "--predictors", "5", "--tested", "5"]) == 0
    assert "total sample size N     122" in capsys.readouterr().out


def test_cli_mediation_power_sample_size_and_errors(tmp_path, capsys):
    from fidelitymed.cli import main

    out, fig = tmp_path / "m.json", tmp_path / "m.png"
    assert main(["power", "mediation", "--a", "0.39", "--b", "0.39", "--n", "60", "--n", "90",
                 "--n-rep", "50", "--n-boot", "200", "--seed", "3", "--quiet",
                 "--json", str(out), "--plot", str(fig)]) == 0
    payload = json.loads(out.read_text())
    direct = fidelitymed.power_mediation(0.39, 0.39, 90, n_rep=50, n_boot=200, seed=3)
    assert payload["results"][1]["rejections"] == direct.rejections
    assert fig.read_bytes()[:4] == b"\x89PNG"
    assert main(["power", "mediation", "--a", "0.39", "--b", "0.39", "--method", "joint",
                 "--n-rep", "200", "--seed", "3", "--quiet", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["n"] > 0
    assert main(["power", "mediation", "--a", "0.26", "--b", "0.26", "--n", "100", "--method",
                 "joint", "--effects", "unit_residual", "--n-rep", "100", "--seed", "3",
                 "--quiet", "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    direct = fidelitymed.power_mediation(0.26, 0.26, 100, method="joint", n_rep=100, seed=3,
                                         effects="unit_residual")
    assert payload["effects"] == "unit_residual" and payload["rejections"] == direct.rejections
    capsys.readouterr()
    assert main(["power", "mediation", "--a", "0.3", "--b", "0.3", "--n", "50",
                 "--icc", "0.1"]) == 2
    assert "n_clusters" in capsys.readouterr().err
    assert main(["power", "mediation", "--a", "0.3", "--b", "0.3", "--n", "50",
                 "--plot", str(tmp_path / "x.pdf")]) == 2
