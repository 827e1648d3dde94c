"""The study simulator: valid folders, the study's design, recoverable truth, reproducibility.

Recovery is checked with statsmodels OLS on the observed (scored) scales and the exposure of
the analysis' own code path (load_study -> scoring -> fidelitymed.exposure), independent of
our mediation engine. The truth is a set of coefficients, so coverage is judged with
simultaneous (Bonferroni) 95% intervals over the family of a and b paths checked.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats

from fidelitymed.cli import main
from fidelitymed.errors import ConfigError, FidelityMedError
from fidelitymed.exposure import fidelity_exposure
from fidelitymed.simulate import (DEMO_SEED, OUTCOMES, SimulationParameters, demo_study_path, simulate_study,
                                  simulate_tables)
from fidelitymed.study.schema import load_study, validate_study

FILES = ("study.yaml", "teams.csv", "fidelity.csv", "clients.csv", "interviews.csv", "truth.json")
SCORE = {"rprs": "rprs_total", "qoli20": "qoli20_total", "pgi": "pgi_index", "hope": "hope_total",
         "mcas": "mcas_total", "ace": "ace_total"}
COVS = "age + gender + housing + employment + education + long_hospitalization + ace"


def _digest(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES}


@pytest.fixture(scope="module")
def default_study(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "study"
    simulate_study(out, seed=11)
    return out


def _analysis_frame(study) -> pd.DataFrame:
    """One row per client: covariates, scores per wave and the 180-day exposure per alliance wave."""
    scores = study.scored_interviews()
    wide = scores.pivot(index="client", columns="wave")
    frame = study.clients.set_index("client")
    team = frame["team"]
    visits = study.interviews[["client", "wave", "date"]].assign(team=study.interviews["client"].map(team))
    expo = fidelity_exposure(study.scored_fidelity(), visits, windows=[180], columns=["fidelity_total"])
    visits = visits.assign(X=expo["fidelity_180d"])
    columns = {f"{name}@{wave:g}": wide[(name, wave)] for (name, wave) in wide.columns}
    for wave in (4.5, 13.5):
        columns[f"X@{wave:g}"] = visits[visits["wave"] == wave].set_index("client")["X"]
    columns["ace"] = columns["ace_total@0"]
    return pd.concat([frame, pd.DataFrame(columns)], axis=1)


def _path_estimates(frame: pd.DataFrame, truth: dict, cov_type: str = "nonrobust") -> pd.DataFrame:
    rows = []
    for path in truth["paths"]:
        mw, ow, name = path["mediator_wave"], path["wave"], path["outcome"]
        data = frame.assign(X=frame[f"X@{mw:g}"], M=frame[f"rprs_total@{mw:g}"],
                            Y=frame[f"{SCORE[name]}@{ow:g}"], Y0=frame[f"{SCORE[name]}@0"])
        for what, formula, term, true in (
                ("a", f"M ~ X + {COVS}", "X", path["a"]),
                ("b", f"Y ~ X + M + Y0 + {COVS}", "M", path["b"])):
            if what == "a" and name != OUTCOMES[0]:
                continue  # one a per alliance wave
            used = data.dropna(subset=["X", "M", "Y", "Y0", "age", "ace"] if what == "b" else ["X", "M", "ace"])
            model = smf.ols(formula, data=used)
            if cov_type == "nonrobust":
                fit = model.fit()
            else:
                fit = model.fit(cov_type="cluster", cov_kwds={"groups": pd.factorize(used["team"])[0]})
            rows.append({"path": what, "outcome": name if what == "b" else "rprs", "wave": ow if what == "b" else mw,
                         "true": true, "est": fit.params[term], "se": fit.bse[term], "df": fit.df_resid})
    return pd.DataFrame(rows)


def _covers(est: pd.DataFrame, family_level: float = 0.95) -> pd.Series:
    alpha = (1 - family_level) / len(est)
    crit = stats.norm.ppf(1 - alpha / 2)
    return (est["est"] - est["true"]).abs() <= crit * est["se"]


# ------------------------------------------------------------------------------------ format
def test_simulated_folder_passes_validation(default_study):
    # and the marker that lets `simulate --force` replace it (fidelitymed.study.writers)
    assert sorted(p.name for p in default_study.iterdir()) == sorted([*FILES, ".fidelitymed-output"])
    assert validate_study(default_study) == []
    study = load_study(default_study)
    assert len(study.clients) == 311


def test_design_matches_the_study(default_study):
    study = load_study(default_study)
    teams, clients, iv, fid = study.teams, study.clients, study.interviews, study.fidelity
    assert len(teams) == 14 and teams["organization"].nunique() == 7
    assert set(teams["province"]) == {"Ontario", "Newfoundland and Labrador", "Quebec"}
    assert (teams.groupby("organization")["province"].nunique() == 1).all()
    # case managers nested in teams
    assert (clients.groupby("case_manager")["team"].nunique() == 1).all()
    assert clients["enrollment_date"].min() >= pd.Timestamp("2014-10-09")
    assert clients["enrollment_date"].max() <= pd.Timestamp("2016-08-24")
    assert sorted(iv["wave"].unique()) == [0.0, 4.5, 9.0, 13.5, 18.0]
    assert (iv[iv["wave"] == 0]["client"].nunique()) == 311          # attrition only after baseline
    # interview dates strictly after enrolment and increasing with wave
    merged = iv.merge(clients[["client", "enrollment_date"]], on="client")
    assert (merged["date"] > merged["enrollment_date"]).all()
    ordered = iv.sort_values(["client", "wave"])
    assert (ordered.groupby("client")["date"].diff().dropna() > pd.Timedelta(0)).all()
    months = (merged["date"] - merged["enrollment_date"]).dt.days / (365.25 / 12)
    assert (months - merged["wave"]).abs().max() < 1.5
    # six assessments per team, one team four; about 0, 6, 12, 18, 24, 36 months apart
    per_team = fid.groupby("team").size()
    assert sorted(per_team.tolist()) == [4] + [6] * 13
    since = fid.groupby("team")["date"].transform(lambda d: (d - d.min()).dt.days / (365.25 / 12))
    k = fid.groupby("team").cumcount()
    assert (since - np.array([0, 6, 12, 18, 24, 36])[k]).abs().max() < 1.0
    # the excluded domain is still rated
    assert fid[["integration_1", "integration_2", "integration_3"]].notna().all().all()
    # fidelity rises from moderate toward the threshold of 32; no team starts high
    totals = study.scored_fidelity().assign(k=k.to_numpy())
    first = totals[totals["k"] == 0]["fidelity_total"]
    last = totals[totals["k"] == 5]["fidelity_total"]
    assert first.max() < 32 and 20 < first.mean() < 27
    assert 29 < last.mean() < 35 and last.mean() > first.mean() + 4


def test_missing_share_hits_target(default_study):
    study = load_study(default_study)
    truth = json.loads((default_study / "truth.json").read_text())
    scores = study.scored_interviews()
    cells = missing = 0
    for wave, names in study.config.schedule.items():
        at = scores[scores["wave"] == wave]
        for name in names:
            cells += 311
            missing += (311 - len(at)) + int(at[SCORE[name]].isna().sum())
    share = missing / cells
    assert abs(share - 0.116) <= 0.02
    assert share == pytest.approx(truth["realized"]["missing_share"], abs=1e-6)
    # attrition is part of it, and some forms were prorated (single items blank, score kept)
    assert 0 < truth["realized"]["attrition_share"] < share
    rprs = study.interviews[study.interviews["wave"] == 4.5]
    items = rprs[[f"rprs_{k}" for k in range(1, 25)]]
    partial = items.isna().any(axis=1) & ~items.isna().all(axis=1)
    assert partial.any() and scores.loc[partial[partial].index, "rprs_total"].notna().all()


def test_truth_json_lists_paths_components_and_iccs(default_study):
    truth = json.loads((default_study / "truth.json").read_text())
    assert truth["seed"] == 11 and truth["package_version"]
    paths = pd.DataFrame(truth["paths"])
    assert len(paths) == 8 and set(paths["outcome"]) == set(OUTCOMES)
    assert paths.loc[paths["wave"] == 9, "a"].eq(0.65).all()
    paper = {("qoli20", 9): 0.10, ("pgi", 18): 0.21, ("mcas", 9): 0.05, ("hope", 18): 0.07}
    for (name, wave), b in paper.items():
        assert paths[(paths["outcome"] == name) & (paths["wave"] == wave)]["b"].item() == b
    assert (paths["c_prime"] == 0).all()
    for eq in truth["equations"].values():
        total = eq["var_team"] + eq["var_case_manager"] + eq["var_client"]
        assert eq["icc_team"] == pytest.approx(eq["var_team"] / total)
        assert 0.02 <= eq["icc_team"] <= 0.12
    flat = simulate_tables(1, n_clients=30, clustering=0.0).truth["equations"]
    assert all(eq["var_team"] == 0 and eq["var_case_manager"] == 0 for eq in flat.values())
    assert max(truth["realized"]["clipped_share"].values()) < 0.02


def test_reverse_keyed_items_are_stored_flipped():
    plain = simulate_tables(3, n_clients=60)
    flipped = simulate_tables(3, n_clients=60, reverse_items={"rprs": ("rprs_2",), "mcas": ("mcas_5",)})
    assert flipped.config["scoring"]["rprs"]["reverse"] == ["rprs_2"]
    a, b = plain.interviews, flipped.interviews
    for item, (low, high) in (("rprs_2", (1, 4)), ("mcas_5", (1, 5))):
        assert (b[item].dropna() == low + high - a[item].dropna()).all()
    untouched = [c for c in a.columns if c not in ("rprs_2", "mcas_5")]
    pd.testing.assert_frame_equal(a[untouched], b[untouched])


# ----------------------------------------------------------------------- reproducibility
def test_same_seed_gives_byte_identical_files(tmp_path, default_study):
    again = tmp_path / "again"
    simulate_study(again, seed=11)
    assert _digest(again) == _digest(default_study)


def test_different_seeds_differ(tmp_path, default_study):
    other = tmp_path / "other"
    simulate_study(other, seed=12)
    a, b = _digest(default_study), _digest(other)
    assert all(a[name] != b[name] for name in FILES if name != "teams.csv")


def test_parameters_are_settable_and_checked():
    params = SimulationParameters().replace(n_teams=20, a={4.5: 1.0, 13.5: 1.0})
    study = simulate_tables(5, params, n_clients=120, missing_share=0.0, attrition_rate=0.0, item_missing_rate=0.0)
    assert len(study.teams) == 20 and study.truth["paths"][0]["a"] == 1.0
    assert study.truth["realized"]["missing_share"] == 0.0
    assert simulate_tables(5, SimulationParameters(n_clients=50)).truth["design"]["n_clients"] == 50
    with pytest.raises(ConfigError, match="unknown simulation parameter"):
        simulate_tables(1, n_clientz=3)
    with pytest.raises(ConfigError, match="missing_share"):
        simulate_tables(1, missing_share=0.01, attrition_rate=0.2)
    with pytest.raises(ConfigError, match="seed"):
        simulate_tables(-1)


# ----------------------------------------------------------------------------- recovery
def test_light_recovery_of_a_and_b(tmp_path):
    """4,000 clients, no clustering: OLS SEs are valid, so simultaneous 95% CIs must cover a and b."""
    out = tmp_path / "big"
    sim = simulate_study(out, seed=2024, n_clients=4000, clustering=0.0)
    frame = _analysis_frame(load_study(out))
    est = _path_estimates(frame, sim.truth)
    assert len(est) == 10
    covered = _covers(est)
    assert covered.all(), est.assign(covered=covered).to_string()
    # and the estimates are precise enough for the check to mean something
    assert (est.loc[est["path"] == "a", "se"] < 0.15).all()


@pytest.mark.slow
def test_recovery_with_many_teams_and_clustering(tmp_path):
    """Default ICCs, 120 teams, 24,000 clients: team-clustered SEs; realized ICCs in the paper's range."""
    out = tmp_path / "huge"
    sim = simulate_study(out, seed=7, n_clients=24000, n_teams=120)
    study = load_study(out)
    frame = _analysis_frame(study)
    est = _path_estimates(frame, sim.truth, cov_type="cluster")
    covered = _covers(est)
    assert covered.all(), est.assign(covered=covered).to_string()
    # unconditional team ICCs of the dependent variables (REML random intercept, statsmodels)
    for name, wave in (("rprs", 4.5), ("rprs", 13.5), ("qoli20", 18), ("mcas", 9), ("pgi", 18), ("hope", 9)):
        y = frame[f"{SCORE[name]}@{wave:g}"].dropna()
        fit = sm.MixedLM(y.to_numpy(), np.ones((len(y), 1)), groups=frame.loc[y.index, "team"]).fit(reml=True)
        var_team = float(np.asarray(fit.cov_re)[0, 0])
        icc = var_team / (var_team + fit.scale)
        assert 0.01 <= icc <= 0.13, (name, wave, icc)


# ---------------------------------------------------------------------------------- CLI
def test_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["simulate", "--out", str(out), "--seed", "3", "--clients", "40"]) == 0
    assert "40 clients" in capsys.readouterr().out
    before = _digest(out)
    assert main(["simulate", "--out", str(out), "--seed", "4", "--clients", "40"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert _digest(out) == before
    assert main(["simulate", "--out", str(out), "--seed", "4", "--clients", "40", "--force"]) == 0
    assert _digest(out) != before
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["simulate", "--out", str(empty), "--seed", "3", "--clients", "40"]) == 0
    assert _digest(empty) == before


def test_api_refuses_non_empty_folder(tmp_path):
    (tmp_path / "x.txt").write_text("keep me")
    with pytest.raises(FidelityMedError, match="not empty"):
        simulate_study(tmp_path, seed=1, n_clients=20)
    assert (tmp_path / "x.txt").read_text() == "keep me"


# --------------------------------------------------------------------------------- demo
def test_demo_study_is_shipped_valid_and_up_to_date(tmp_path):
    demo = demo_study_path()
    assert validate_study(demo) == []
    truth = json.loads((demo / "truth.json").read_text())
    assert truth["seed"] == DEMO_SEED and truth["design"]["n_clients"] == 311
    fresh = tmp_path / "demo"
    simulate_study(fresh, seed=DEMO_SEED)
    assert _digest(fresh) == _digest(demo), "regenerate with: python -m fidelitymed.simulate --demo"
