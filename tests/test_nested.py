"""ICCs against stored lme4 output (tight optimizer tolerances) and statsmodels MixedLM; the paper's alpha rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from fidelitymed.errors import ConfigError
from fidelitymed.stats.nested import ICCResult, LevelICC, alpha_decisions, icc

REF = Path(__file__).parent / "reference"


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(REF / "icc_lme4.csv", dtype={"team": str, "case_manager": str})


@pytest.fixture(scope="module")
def lme4() -> dict:
    return json.loads((REF / "icc_lme4.json").read_text())


@pytest.mark.parametrize("y", ["y_low", "y_mid", "y_high"])
def test_team_icc_matches_lme4(data, lme4, y):
    ref = lme4[y]["team_only"]
    res = icc(data, y, levels=["team"])
    assert res.n == lme4[y]["n"]
    np.testing.assert_allclose(res.level("team").variance, ref["team"], rtol=1e-4)
    np.testing.assert_allclose(res.residual_variance, ref["residual"], rtol=1e-4)
    ref_icc = ref["team"] / (ref["team"] + ref["residual"])
    assert res.level("team").icc == pytest.approx(ref_icc, rel=1e-4)


@pytest.mark.parametrize("y", ["y_low", "y_mid", "y_high"])
def test_nested_icc_matches_lme4(data, lme4, y):
    ref = lme4[y]["nested"]
    res = icc(data, y, levels=["team", "case_manager"])
    total = ref["team"] + ref["case_manager"] + ref["residual"]
    d = res.to_dict()
    assert set(d["levels"]) == {"team", "case_manager"}
    # variance components to 1e-4 relative (a component on its boundary: to 1e-10 absolute)
    assert res.level("team").variance == pytest.approx(ref["team"], rel=1e-4, abs=1e-10)
    assert res.level("case_manager").variance == pytest.approx(ref["case_manager"], rel=1e-4)
    assert d["residual_variance"] == pytest.approx(ref["residual"], rel=1e-4)
    assert d["levels"]["team"]["icc"] == pytest.approx(ref["team"] / total, rel=1e-4, abs=1e-10)
    assert d["levels"]["case_manager"]["icc"] == pytest.approx(ref["case_manager"] / total, rel=1e-4)
    assert d["levels"]["case_manager"]["cumulative_icc"] == pytest.approx(
        (ref["team"] + ref["case_manager"]) / total, rel=1e-4)
    assert "cumulative_icc" not in d["levels"]["team"]
    # case-manager ids repeat across teams in this file: nesting must come from the team
    assert d["levels"]["case_manager"]["n_groups"] == data.groupby(["team", "case_manager"]).ngroups


def test_boundary_fit_flagged(data, lme4):
    # lme4 puts the team variance of y_low at 0 (singular fit) once case managers are modelled
    assert lme4["y_low"]["nested"]["team"] < 1e-12
    res = icc(data, "y_low", levels=["team", "case_manager"])
    assert res.level("team").icc == pytest.approx(0, abs=1e-5)
    assert any("boundary" in w for w in res.warnings)


@pytest.mark.parametrize("y, levels", [("y_low", ["team"]), ("y_mid", ["team"]), ("y_high", ["team"]),
                                       ("y_low", ["team", "case_manager"]), ("y_mid", ["team", "case_manager"]),
                                       ("y_high", ["team", "case_manager"])])
def test_reml_optimum_is_lme4s(data, lme4, y, levels):
    """At least as high a restricted likelihood as lme4 with its default tolerances, equal to the tight fit."""
    ref = lme4[y]["team_only" if len(levels) == 1 else "nested"]
    from fidelitymed.stats.multilevel.lmm import NestedGroups, fit_nested_lmm

    frame = data.dropna(subset=[y])
    fit = fit_nested_lmm(frame[y].to_numpy(float), np.ones((len(frame), 1)),
                         NestedGroups.from_columns([frame[c] for c in levels], levels))
    assert fit.deviance == pytest.approx(ref["reml_criterion"], abs=1e-7)
    assert fit.deviance <= ref["default_reml_criterion"] + 1e-9


def test_team_icc_matches_statsmodels_formula(data):
    # statsmodels' own formula interface, with the optimizer that reaches the REML maximum here
    fit = smf.mixedlm("y_high ~ 1", data, groups="team").fit(reml=True, method="powell")
    ours = icc(data, "y_high")
    assert ours.level("team").variance == pytest.approx(float(fit.cov_re.iloc[0, 0]), rel=1e-4)
    assert ours.residual_variance == pytest.approx(float(fit.scale), rel=1e-4)
    nested = smf.mixedlm("y_mid ~ 1", data.dropna(subset=["y_mid"]), groups="team", re_formula="1",
                         vc_formula={"cm": "0 + C(case_manager)"}).fit(reml=True, method="powell")
    ours = icc(data, "y_mid", levels=["team", "case_manager"])
    assert ours.level("case_manager").variance == pytest.approx(float(nested.vcomp[0]), rel=5e-3)
    assert ours.level("team").variance == pytest.approx(float(nested.cov_re.iloc[0, 0]), rel=5e-3)


def test_icc_dict_shape_and_missing(data):
    res = icc(data, "y_mid", ["team"])
    d = res.to_dict()
    assert {"y", "n", "residual_variance", "levels"} <= set(d)
    assert d["n"] + d["n_dropped"] == len(data)
    json.dumps(d)
    assert "ICC" in res.summary()
    assert list(res.to_frame()["level"]) == ["team", "residual"]


def test_icc_errors(data):
    with pytest.raises(ConfigError, match="nope"):
        icc(data, "nope")
    with pytest.raises(ConfigError, match="one or two"):
        icc(data, "y_low", levels=["team", "case_manager", "x"])
    with pytest.raises(ConfigError, match="at least 2 groups"):
        icc(data.assign(team="A"), "y_low")


def _icc_result(team: float, cm: float, resid: float = 1.0) -> ICCResult:
    total = team + cm + resid
    return ICCResult("v", 100, 0, resid, (LevelICC("team", team, team / total, 10),
                                         LevelICC("case_manager", cm, cm / total, 30, (team + cm) / total)),
                     True)


def test_icc_for_rule_sources():
    r = _icc_result(0.03, 0.04, 0.93)       # team ICC .03, cumulative .07
    assert r.icc_for_rule("team") == pytest.approx(0.03)
    assert r.icc_for_rule("case_manager") == pytest.approx(0.07)
    assert r.icc_for_rule("max") == pytest.approx(0.07)
    with pytest.raises(ConfigError):
        r.icc_for_rule("site")


P = {"a": 0.003, "b": 0.02, "c_prime": 0.5, "c": 0.04}


def test_alpha_rule_outcome_icc_above_threshold():
    dec = alpha_decisions(P, (0.01, 0.2), mediator="rprs_13.5m", outcome="qoli20_18m",
                          icc_mediator=0.04, icc_outcome=0.08)
    assert dec.alpha == {"a": 0.05, "b": 0.01, "c_prime": 0.01, "c": 0.01}
    assert dec.significant == {"a": True, "b": False, "c_prime": False, "c": False, "indirect": False}
    assert "b not significant at 0.01" in dec["indirect"].reason
    assert dec["b"].dependent_variable == "qoli20_18m" and dec["a"].dependent_variable == "rprs_13.5m"


def test_alpha_rule_all_low_icc():
    dec = alpha_decisions(P, (0.01, 0.2), mediator="m", outcome="y", icc_mediator=0.02, icc_outcome=0.05)
    # ICC exactly at the threshold is not "> 0.05"
    assert dec.alpha == {"a": 0.05, "b": 0.05, "c_prime": 0.05, "c": 0.05}
    assert dec.significant["indirect"] is True
    dec = alpha_decisions(P, (-0.01, 0.2), mediator="m", outcome="y", icc_mediator=0.02, icc_outcome=0.0)
    assert dec.significant["indirect"] is False           # CI includes 0
    dec = alpha_decisions(P, (0.0, 0.2), mediator="m", outcome="y", icc_mediator=0.0, icc_outcome=0.0)
    assert dec.significant["indirect"] is False           # a limit at 0 does not exclude 0


def test_alpha_rule_mediator_icc_and_sources():
    r = _icc_result(0.03, 0.04, 0.93)
    dec_team = alpha_decisions({**P, "a": 0.02}, (0.01, 0.2), mediator="m", outcome="y",
                               icc_mediator=r, icc_outcome=None, icc_source="team")
    dec_max = alpha_decisions({**P, "a": 0.02}, (0.01, 0.2), mediator="m", outcome="y",
                              icc_mediator=r, icc_outcome=None, icc_source="max")
    assert dec_team["a"].alpha == 0.05 and dec_team["a"].significant
    assert dec_max["a"].alpha == 0.01 and not dec_max["a"].significant
    assert dec_max.significant["indirect"] is False
    assert "unknown" in dec_max["b"].reason
    records = dec_max.to_dict()
    assert [r["path"] for r in records] == ["a", "b", "c_prime", "c", "indirect"]
    json.dumps(records)
    with pytest.raises(ConfigError):
        alpha_decisions({"a": 0.1}, (0, 1), mediator="m", outcome="y", icc_mediator=None, icc_outcome=None)
