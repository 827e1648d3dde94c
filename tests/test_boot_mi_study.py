"""Item-level Boot-MI in the study pipeline: the pooling rule, worker-count independence, a plain reference loop."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
import yaml
from scipy import stats
from statsmodels.stats.anova import anova_lm

from fidelitymed import parallel
from fidelitymed.exposure import study_exposure
from fidelitymed.frame import analysis_frame, exposure_at, model_columns
from fidelitymed.instruments.scoring import score_interviews
from fidelitymed.pipeline import run_study
from fidelitymed.seeding import child_sequence, generator
from fidelitymed.simulate import simulate_study
from fidelitymed.stats.boot_mi import boot_mi_pool
from fidelitymed.stats.impute import impute_interviews
from fidelitymed.stats.mediation import mediate
from fidelitymed.study.schema import load_study
from fidelitymed.study_boot_mi import PARAMETERS, point_estimates, run_boot_mi

SEED, B, M = 17, 4, 2


def _anova_reference(est: np.ndarray, conf: float = 0.95) -> dict[str, float]:
    """MSB, MSW from a statsmodels one-way ANOVA; variance, df, interval as von Hippel & Bartlett (2021) write them."""
    n_boot, n_imp = est.shape
    data = pd.DataFrame({"y": est.reshape(-1), "boot": np.repeat(np.arange(n_boot), n_imp)})
    table = anova_lm(smf.ols("y ~ C(boot)", data).fit())
    msb, msw = table.loc["C(boot)", "mean_sq"], table.loc["Residual", "mean_sq"]
    s2_b, s2_w = (msb - msw) / n_imp, msw
    var = (1 + 1 / n_boot) * s2_b + s2_w / (n_boot * n_imp)
    df = var ** 2 / (((n_boot + 1) / (n_boot * n_imp)) ** 2 * msb ** 2 / (n_boot - 1)
                     + msw ** 2 / (n_boot * n_imp ** 2 * (n_imp - 1)))
    df = max(df, 3.0)
    half = stats.t.ppf(0.5 + conf / 2, df) * np.sqrt(var)
    return {"msb": msb, "msw": msw, "var": var, "df": df, "est": est.mean(), "lo": est.mean() - half,
            "hi": est.mean() + half}


def test_pool_rule_matches_one_way_anova():
    rng = np.random.default_rng(3)
    boot_effect = rng.normal(0, 1.0, size=(40, 1))
    est = 0.3 + boot_effect + rng.normal(0, 0.5, size=(40, 3))
    ref = _anova_reference(est, conf=0.9)
    got = boot_mi_pool(est, conf=0.9)
    assert float(got.msb) == pytest.approx(ref["msb"], rel=1e-10)
    assert float(got.msw) == pytest.approx(ref["msw"], rel=1e-10)
    assert float(got.variance) == pytest.approx(ref["var"], rel=1e-10)
    assert float(got.df) == pytest.approx(ref["df"], rel=1e-10)
    assert float(got.estimate) == pytest.approx(ref["est"], rel=1e-12)
    assert (float(got.ci_low), float(got.ci_high)) == pytest.approx((ref["lo"], ref["hi"]), rel=1e-10)
    # several parameters at once: the same numbers column by column
    both = boot_mi_pool(np.stack([est, 2 * est], axis=2), conf=0.9)
    assert both.variance[1] == pytest.approx(4 * ref["var"], rel=1e-10)
    assert both.df[0] == pytest.approx(ref["df"], rel=1e-10)


def test_pool_rule_degenerate_between_variance():
    # no resample effect at all and MSB < MSW: the between variance is set to 0 and the within
    # variance becomes the overall variance of the B x M estimates (as the authors' bootImpute)
    est = np.array([[0.0, 1.0], [0.1, 0.9], [0.5, 0.5], [0.2, 0.8]])
    got = boot_mi_pool(est)
    assert float(got.between_variance) == 0.0
    assert float(got.within_variance) == pytest.approx(est.reshape(-1).var(ddof=1), rel=1e-12)
    assert float(got.variance) == pytest.approx(est.reshape(-1).var(ddof=1) / est.size, rel=1e-12)


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bootmi") / "study"
    simulate_study(folder, seed=5, n_clients=50)
    cfg = yaml.safe_load((folder / "study.yaml").read_text())
    cfg.setdefault("analysis", {}).update({"boot_mi_resamples": B, "boot_mi_imputations": M})
    (folder / "study.yaml").write_text(yaml.safe_dump(cfg))
    study = load_study(folder)
    config, a = study.config, study.config.analysis
    exposure = study_exposure(study, columns=["fidelity_total"])
    observed = analysis_frame(study, study.scored_interviews(), exposure=exposure, domains=False)
    waves = sorted({float(p.mediator) for p in a.waves})
    auxiliary = observed[["client", "site", *[exposure_at(w, win) for w in waves for win in config.exposure.windows]]]
    # two models are enough for the comparisons (the primary window of each wave pair)
    specs = [model_columns(config, "qoli20", pair, config.exposure.primary_window) for pair in a.waves]
    return folder, study, exposure, auxiliary, specs


@pytest.fixture(scope="module")
def serial_estimates(small_study):
    _, study, exposure, auxiliary, specs = small_study
    with parallel.Executor("serial") as ex:
        return run_boot_mi(ex, study, exposure, auxiliary, specs, resamples=B, imputations=M, seed=SEED)


def test_boot_mi_identical_on_two_processes(small_study, serial_estimates):
    _, study, exposure, auxiliary, specs = small_study
    with parallel.Executor("processes", workers=2) as ex:
        spread = run_boot_mi(ex, study, exposure, auxiliary, specs, resamples=B, imputations=M, seed=SEED)
    assert serial_estimates.shape == (B, len(specs), M, len(PARAMETERS))
    assert np.isfinite(serial_estimates).all()
    np.testing.assert_array_equal(spread, serial_estimates)     # exact: each resample has its own keyed stream


def _resample_by_hand(study, exposure, auxiliary, picks):
    """Clients at ``picks`` with all their rows, copy j renamed "r<j>" (a plain loop)."""
    clients, interviews, expo, aux = [], [], [], []
    for j, pos in enumerate(picks):
        cid = study.clients["client"].iloc[pos]
        new = f"r{j}"
        clients.append(study.clients.iloc[[pos]].assign(client=new))
        rows = study.interviews["client"] == cid
        interviews.append(study.interviews[rows].assign(client=new))
        expo.append(exposure[rows].assign(client=new))
        aux.append(auxiliary.iloc[[pos]].assign(client=new))
    cat = lambda parts: pd.concat(parts, ignore_index=True)  # noqa: E731
    import dataclasses

    return dataclasses.replace(study, clients=cat(clients), interviews=cat(interviews)), cat(expo), cat(aux)


def test_boot_mi_matches_a_plain_reference_loop(small_study, serial_estimates):
    """Loop over resamples: resample clients, impute M times, fit with mediate(), combine as the paper says."""
    _, study, exposure, auxiliary, specs = small_study
    config = study.config
    n = len(study.clients)
    ref = np.empty((B, len(specs), M, len(PARAMETERS)))
    for r in range(B):
        seed_r = child_sequence(SEED, ("boot_mi", r))
        picks = generator(seed_r, ("resample",)).integers(0, n, size=n)
        sample, expo, aux = _resample_by_hand(study, exposure, auxiliary, picks)
        imputed = impute_interviews(sample.interviews, sample.clients, config, m=M, seed=seed_r,
                                   iterations=config.analysis.imputation_iterations, auxiliary=aux)
        for j in range(M):
            scores = score_interviews(imputed[j], config.scoring, schedule=config.schedule)
            frame = analysis_frame(sample, scores, exposure=expo, domains=False)
            filled = imputed.auxiliary[j]
            for col in filled.columns:
                if col in frame.columns:
                    frame[col] = frame[col].fillna(frame["client"].map(filled[col]))
            for i, s in enumerate(specs):
                fit = mediate(frame, s.x, s.m, s.y, list(s.covariates), list(s.categorical), n_boot=0)
                ref[r, i, j] = [fit.indirect["effect"], fit.indirect_partially_std["effect"],
                                fit.indirect_std["effect"], *(fit.paths[p]["coef"] for p in ("a", "b", "c_prime", "c"))]
    np.testing.assert_allclose(serial_estimates, ref, rtol=1e-9, atol=1e-12)
    for i in range(len(specs)):
        by_hand = _anova_reference(ref[:, i, :, 0])
        pooled = boot_mi_pool(serial_estimates[:, i, :, 0])
        assert float(pooled.estimate) == pytest.approx(by_hand["est"], rel=1e-9)
        assert (float(pooled.ci_low), float(pooled.ci_high)) == pytest.approx((by_hand["lo"], by_hand["hi"]), rel=1e-8)


def test_point_estimates_equal_mediate(small_study):
    _, study, exposure, auxiliary, specs = small_study
    frame = analysis_frame(study, study.scored_interviews(), exposure=exposure, domains=False)
    for s in specs:
        fit = mediate(frame, s.x, s.m, s.y, list(s.covariates), list(s.categorical), n_boot=0)
        expected = [fit.indirect["effect"], fit.indirect_partially_std["effect"], fit.indirect_std["effect"],
                    *(fit.paths[p]["coef"] for p in ("a", "b", "c_prime", "c"))]
        np.testing.assert_allclose(point_estimates(frame, s), expected, rtol=1e-10, atol=1e-13)


def test_pipeline_runs_boot_mi_with_the_other_schemes_keys(small_study, tmp_path):
    folder = small_study[0]
    kw = dict(imputations=2, n_boot=20, seed=SEED, executor="serial", report=False)
    boot = run_study(folder, pooling="boot_mi", out=str(tmp_path / "b"), **kw)
    stacked = run_study(folder, pooling="stacked", **kw)
    saved = json.loads((tmp_path / "b" / "results.json").read_text())
    rec, other = saved["mediation"][0], stacked.to_dict()["mediation"][0]
    assert boot.mediation[0]["pooling"] == "boot_mi" and boot.out == tmp_path / "b"
    assert set(rec) == set(other) | {"boot_mi"}
    assert rec["pooling"] == "boot_mi" and rec["n_boot"] == B
    assert rec["boot_mi"]["resamples"] == B and rec["boot_mi"]["imputations_per_resample"] == M
    assert set(rec["boot_mi"]["percentile"]) == {"indirect", "indirect_partially_std", "indirect_std"}
    # the paths are the main analysis' Rubin-pooled ones, the same as under the other schemes
    assert rec["paths"] == other["paths"]
    # the indirect effects carry the percentile limits (analysis.boot_mi_interval's default, which
    # the coverage simulation favours); von Hippel & Bartlett's t interval is kept beside them
    ab = rec["boot_mi"]["parameters"]["ab"]
    assert rec["boot_mi"]["interval"] == "percentile"
    for key in ("indirect", "indirect_partially_std", "indirect_std"):
        assert rec[key] == rec["boot_mi"]["percentile"][key]
    assert rec["indirect"]["effect"] == other["indirect"]["effect"]        # the MI estimate
    vh = rec["boot_mi"]["von_hippel"]["indirect"]
    assert vh["effect"] == ab["estimate"] and vh["ci_low"] < ab["estimate"] < vh["ci_high"]
    assert (vh["ci_low"], vh["ci_high"]) == (ab["ci_low"], ab["ci_high"])


def test_pipeline_boot_mi_interval_von_hippel_puts_the_t_interval_in_the_record(small_study, tmp_path):
    import shutil

    folder = tmp_path / "study"
    shutil.copytree(small_study[0], folder)
    cfg = yaml.safe_load((folder / "study.yaml").read_text())
    cfg["analysis"]["boot_mi_interval"] = "von_hippel"
    (folder / "study.yaml").write_text(yaml.safe_dump(cfg))
    res = run_study(folder, pooling="boot_mi", imputations=2, n_boot=20, seed=SEED, executor="serial", report=False)
    rec = res.to_dict()["mediation"][0]
    assert rec["boot_mi"]["interval"] == "von_hippel"
    for key in ("indirect", "indirect_partially_std", "indirect_std"):
        assert rec[key] == rec["boot_mi"]["von_hippel"][key]
        assert rec[key] != rec["boot_mi"]["percentile"][key]
    assert rec["indirect"]["effect"] == rec["boot_mi"]["parameters"]["ab"]["estimate"]


def _coverage(replicates: int, **kw):
    from coverage_sim import coverage_table

    return coverage_table(replicates, **kw).set_index("scheme")


def test_coverage_simulation_light():
    """10 replicates, small settings: the machinery, and no scheme is grossly off.

    With a true coverage of 0.95, 6 or fewer hits in 10 has probability 0.001: a scheme at or
    below that is broken, not unlucky.
    """
    table = _coverage(10, n=150, m_imp=5, n_boot=400, resamples=60)
    assert list(table.index) == ["stacked", "rubin_mc", "boot_mi (percentile)", "boot_mi (von Hippel)"]
    assert (table["coverage"] >= 0.7).all(), table
    assert (table["mean_width"] > 0).all()
    assert (table["bias"].abs() < 0.05).all(), table


@pytest.mark.slow
def test_coverage_simulation_full():
    """The docs' table at 500 replicates. The percentile schemes (stacked; Boot-MI with
    percentile limits, which the literature calls valid) must lie in the binomial 99.9% band
    around 0.95 (about 0.924-0.974); the symmetric intervals (rubin_mc, von Hippel's t) are
    reported, not asserted: ab is skewed (docs/imputation.md)."""
    table = _coverage(500, backend="processes", workers=2)
    print(table.to_string())
    low, high = stats.binom.ppf([0.0005, 0.9995], 500, 0.95) / 500
    for scheme in ("stacked", "boot_mi (percentile)"):
        assert low <= table.loc[scheme, "coverage"] <= high, table
