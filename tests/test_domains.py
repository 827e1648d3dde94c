"""Fidelity-domain analysis: adjustment against statsmodels, collinearity against statsmodels /
numpy, and the domain models against direct mediate() fits and OLS."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.outliers_influence import variance_inflation_factor

from fidelitymed.stats.domains import adjust_p, adjusted_conf, collinearity, domain_analysis, domain_models
from fidelitymed.stats.mediation import mediate
from fidelitymed.stats.pooling import pool_mediation
from fidelitymed.study.config import parse_config

DOMAINS = ["caseload", "supervision", "hope_inducing"]


@pytest.mark.parametrize("method", ["holm", "fdr_bh"])
def test_adjusted_p_values_match_statsmodels(method):
    rng = np.random.default_rng(3)
    for k in (1, 2, 5, 9, 30):
        p = rng.random(k) ** 3
        p[: k // 3] = p[0]                                     # ties
        expected = multipletests(p, method=method)[1]
        np.testing.assert_allclose(adjust_p(p, method), expected, rtol=1e-12)
    with_nan = np.array([0.01, np.nan, 0.04, 0.03])
    got = adjust_p(with_nan, method)
    assert np.isnan(got[1])
    np.testing.assert_allclose(got[[0, 2, 3]], multipletests(with_nan[[0, 2, 3]], method=method)[1])


def test_adjusted_confidence_levels():
    assert adjusted_conf(0.95, 8, "holm") == pytest.approx(1 - 0.05 / 8)
    assert adjusted_conf(0.95, 8, "fdr_bh", 3) == pytest.approx(1 - 3 * 0.05 / 8)
    assert adjusted_conf(0.95, 8, "fdr_bh", 0) == pytest.approx(1 - 0.05 / 8)
    assert adjusted_conf(0.95, 1, "holm") == 0.95


def _study(n=160, seed=7):
    rng = np.random.default_rng(seed)
    common = rng.normal(size=n)
    data = {"client": [f"C{i:03d}" for i in range(n)], "age": rng.normal(40, 10, n),
            "site": rng.choice(["a", "b", "c"], n)}
    for j, d in enumerate(DOMAINS):
        data[f"fidelity_{d}_4.5m_180d"] = 3 + 0.8 * common + rng.normal(scale=0.6, size=n)
    x = np.column_stack([data[f"fidelity_{d}_4.5m_180d"] for d in DOMAINS])
    data["rprs_total_4.5m"] = 50 + 6 * x[:, 0] + rng.normal(scale=8, size=n)
    data["qoli20_total_9m"] = 80 + 0.5 * data["rprs_total_4.5m"] + 2 * x[:, 2] + rng.normal(scale=10, size=n)
    frame = pd.DataFrame(data)
    config = parse_config({"schedule": {0: ["qoli20"], 4.5: ["rprs"], 9: ["qoli20"]},
                           "analysis": {"outcomes": ["qoli20"], "waves": [{"outcome": 9, "mediator": 4.5}],
                                        "covariates": ["age", "site"], "categorical": ["site"], "n_boot": 300,
                                        "seed": 11}})
    return frame, config


def test_collinearity_matches_statsmodels_vif_and_numpy_cond():
    frame, _ = _study()
    cols = [f"fidelity_{d}_4.5m_180d" for d in DOMAINS]
    got = collinearity(frame, cols, ["rprs_total_4.5m", "age", "site"], ["site"])
    design = pd.concat([frame[cols + ["rprs_total_4.5m", "age"]],
                        pd.get_dummies(frame["site"], prefix="site", drop_first=True).astype(float)], axis=1)
    exog = sm.add_constant(design.to_numpy(dtype=float))
    for j, c in enumerate(cols):
        assert got["vif"][c] == pytest.approx(variance_inflation_factor(exog, j + 1), rel=1e-9)
    scaled = exog / np.linalg.norm(exog, axis=0)
    assert got["condition_number"] == pytest.approx(np.linalg.cond(scaled), rel=1e-9)
    assert got["n"] == len(frame)


def test_separate_models_equal_direct_mediate_and_are_adjusted_across_domains():
    frame, config = _study()
    res = domain_analysis([frame], config, DOMAINS, adjust="holm", seed=11)
    table = res.to_frame()
    assert list(table["domain"]) == DOMAINS and set(table["model"]) == {"separate"}
    for _, row in table.iterrows():
        direct = mediate(frame, f"fidelity_{row['domain']}_4.5m_180d", "rprs_total_4.5m", "qoli20_total_9m",
                         covariates=["age", "site"], categorical=["site"], n_boot=0)
        for path in ("a", "b", "c_prime", "c"):
            assert row[path] == pytest.approx(direct.paths[path]["coef"], rel=1e-10)
            assert row[f"p_{path}"] == pytest.approx(direct.paths[path]["p"], rel=1e-8)
    for path in ("a", "b", "c_prime", "c"):
        np.testing.assert_allclose(table[f"p_{path}_adj"], multipletests(table[f"p_{path}"], method="holm")[1])
    p_joint = np.maximum(table["p_a"], table["p_b"])
    np.testing.assert_allclose(table["p_joint"], p_joint)
    np.testing.assert_allclose(table["p_joint_adj"], multipletests(p_joint, method="holm")[1])
    # the Bonferroni-level interval is wider than the unadjusted one
    assert (table["ab_ci_low_adj"] <= table["ab_ci_low"]).all() and (table["ab_ci_high_adj"] >= table["ab_ci_high"]).all()
    assert table["conf_adj"].iloc[0] == pytest.approx(1 - 0.05 / 3)
    # caseload drives the alliance: its indirect effect is clearly positive
    assert table.set_index("domain").loc["caseload", "significant_adj"]
    assert res.heatmap_frame().shape == (3, 1)
    assert "caseload" in res.summary() and res.to_dict()["adjust"] == "holm"


def test_pooled_over_imputations_equals_pool_mediation_and_bh():
    frame, config = _study()
    rng = np.random.default_rng(5)
    frames = [frame.assign(age=frame["age"] + rng.normal(scale=2, size=len(frame))) for _ in range(3)]
    res = domain_analysis(frames, config, DOMAINS, adjust="fdr_bh", seed=11)
    table = res.to_frame()
    row = table.iloc[1]
    fits = [mediate(f, "fidelity_supervision_4.5m_180d", "rprs_total_4.5m", "qoli20_total_9m",
                    covariates=["age", "site"], categorical=["site"], n_boot=50, save_boot=True, seed=1)
            for f in frames]
    pooled = pool_mediation(fits, pool="stacked").to_dict()
    for path in ("a", "b", "c_prime", "c"):
        assert row[path] == pytest.approx(pooled["paths"][path]["coef"], rel=1e-10)
        assert row[f"p_{path}"] == pytest.approx(pooled["paths"][path]["p"], rel=1e-8)
    np.testing.assert_allclose(table["p_a_adj"], multipletests(table["p_a"], method="fdr_bh")[1])
    # the study pools by boot_mi (the default); its domain models pool their stacked draws
    assert config.analysis.pooling == "boot_mi"
    assert res.models[0]["imputations"] == 3 and res.models[0]["pooling"] == "stacked"


def test_simultaneous_model_paths_equal_ols_with_all_domains_and_reports_collinearity():
    frame, config = _study()
    res = domain_analysis([frame], config, DOMAINS, simultaneous=True, seed=11)
    table = res.to_frame()
    sim = table[table["model"] == "simultaneous"].set_index("domain")
    cols = [f"fidelity_{d}_4.5m_180d" for d in DOMAINS]
    dummies = pd.get_dummies(frame["site"], prefix="site", drop_first=True).astype(float)
    exog_a = sm.add_constant(pd.concat([frame[cols + ["age"]], dummies], axis=1))
    fit_a = sm.OLS(frame["rprs_total_4.5m"], exog_a).fit()
    exog_y = sm.add_constant(pd.concat([frame[cols + ["rprs_total_4.5m", "age"]], dummies], axis=1))
    fit_y = sm.OLS(frame["qoli20_total_9m"], exog_y).fit()
    for d, c in zip(DOMAINS, cols):
        assert sim.loc[d, "a"] == pytest.approx(fit_a.params[c], rel=1e-9)
        assert sim.loc[d, "c_prime"] == pytest.approx(fit_y.params[c], rel=1e-9)
        assert sim.loc[d, "b"] == pytest.approx(fit_y.params["rprs_total_4.5m"], rel=1e-9)
    (diag,) = res.collinearity
    exog = sm.add_constant(pd.concat([frame[cols + ["rprs_total_4.5m", "age"]], dummies], axis=1).to_numpy(float))
    for j, d in enumerate(DOMAINS):
        assert diag["vif"][d] == pytest.approx(variance_inflation_factor(exog, j + 1), rel=1e-9)
    assert diag["condition_number"] == pytest.approx(np.linalg.cond(exog / np.linalg.norm(exog, axis=0)), rel=1e-9)
    assert len(domain_models(config, DOMAINS, simultaneous=True)) == 3


def test_same_seed_same_numbers():
    frame, config = _study(n=80)
    one = domain_analysis([frame], config, DOMAINS[:2], seed=3).to_dict()
    two = domain_analysis([frame], config, DOMAINS[:2], seed=3).to_dict()
    assert one == two


def test_report_section_heat_map_holds_the_standardized_indirect_effects():
    from fidelitymed.report.domains import _matrix, domain_heatmap, domain_table, domains_section_html

    frame, config = _study(n=80)
    res = domain_analysis([frame], config, DOMAINS, simultaneous=True, seed=3).to_dict()
    values, stars = _matrix(res)
    separate = [r for r in res["models"] if r["model"] == "separate"]
    assert values.shape == (3, 1)
    np.testing.assert_allclose(values.iloc[:, 0].to_numpy(), [r["indirect_std"]["effect"] for r in separate])
    assert stars.iloc[:, 0].tolist() == [r["significant_adj"] for r in separate]
    assert len(domain_heatmap(res).axes) == 2                          # the map and its colour bar
    assert len(domain_table(res)) == 6
    section = domains_section_html(res)
    assert section.startswith('<section id="fidelity-domains">') and "condition number" in section
    assert domains_section_html(None) == ""


def test_the_study_run_adds_a_domains_entry_when_enabled(tmp_path):
    import shutil
    from pathlib import Path

    import yaml

    from fidelitymed.pipeline import run_study

    demo = Path(__file__).parents[1] / "src/fidelitymed/data/demo"
    folder = tmp_path / "study"
    shutil.copytree(demo, folder)
    cfg = yaml.safe_load((folder / "study.yaml").read_text())
    cfg["analysis"].update({"outcomes": ["qoli20", "mcas"], "impute": False, "n_boot": 100,
                            "domains": {"enabled": True, "adjust": "fdr_bh", "domains": ["caseload", "hope_inducing",
                                                                                         "recovery_plan"]}})
    (folder / "study.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    results = run_study(folder, report=False)
    d = results.to_dict()["domains"]
    assert d["adjust"] == "fdr_bh" and d["domains"] == ["caseload", "hope_inducing", "recovery_plan"]
    assert len(d["models"]) == 3 * 2 * 2                 # domains x outcomes x wave pairs
    for family in {(r["outcome"], r["outcome_month"]) for r in d["models"]}:
        members = [r for r in d["models"] if (r["outcome"], r["outcome_month"]) == family]
        p = [r["paths"]["a"]["p"] for r in members]
        np.testing.assert_allclose([r["paths"]["a"]["p_adj"] for r in members], multipletests(p, method="fdr_bh")[1])
    # X is the domain's exposure at the alliance wave; the model is the main analysis' with that X
    first = d["models"][0]
    assert first["x"] == "fidelity_caseload_4.5m_180d" and first["m"] == "rprs_total_4.5m"
    without = run_study(demo, impute=False, n_boot=100, report=False).to_dict()
    assert "domains" not in without
