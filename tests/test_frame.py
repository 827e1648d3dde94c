"""The analysis frame (one row per client) and the long form (one row per interview)."""

from __future__ import annotations

import numpy as np
import pytest
from test_exposure import plain_window
from test_schema import write_study

from fidelitymed.frame import (ID_COLUMNS, analysis_frame, deidentify, exposure_at, long_frame, model_columns,
                               score_at)
from fidelitymed.instruments import score_ace, score_fidelity, score_rprs
from fidelitymed.study.schema import load_study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    def mutate(t):
        # client p04 misses the 13.5-month interview
        t["interviews"] = t["interviews"][~((t["interviews"]["client"] == "p04") & (t["interviews"]["wave"] == 13.5))]
    return load_study(write_study(tmp_path_factory.mktemp("frame") / "s", mutate))


def test_one_row_per_client_with_documented_columns(study):
    frame = analysis_frame(study)
    assert frame["client"].tolist() == study.clients["client"].tolist()
    for col in ["client", "team", "case_manager", "site", "age", "gender", "housing", "employment", "education",
                "long_hospitalization", "ace", "qoli20_total_0m", "pgi_index_0m", "hope_total_0m", "mcas_total_0m",
                "rprs_total_4.5m", "rprs_total_13.5m", "qoli20_total_9m", "mcas_total_18m",
                "fidelity_4.5m_180d", "fidelity_13.5m_90d", "fidelity_13.5m_270d", "fidelity_4.5m_180d_carried",
                "fidelity_caseload_4.5m_180d", "fidelity_integration_13.5m_90d"]:
        assert col in frame.columns, col
    assert "rprs_total_9m" not in frame.columns and "qoli20_total_4.5m" not in frame.columns
    assert frame.loc[frame["client"] == "p04", "rprs_total_13.5m"].isna().all()
    assert frame.loc[frame["client"] == "p04", "fidelity_13.5m_180d"].isna().all()
    assert frame["site"].tolist() == [{"A": "1", "B": "1", "C": "2"}[t] for t in frame["team"]]


def test_values_match_independent_computations(study):
    frame = analysis_frame(study).set_index("client")
    iv = study.interviews
    cfg = study.config.scoring
    for client in ["p00", "p05"]:
        row45 = iv[(iv["client"] == client) & (iv["wave"] == 4.5)]
        row0 = iv[(iv["client"] == client) & (iv["wave"] == 0)]
        assert frame.loc[client, "rprs_total_4.5m"] == pytest.approx(score_rprs(row45, cfg.rprs)["rprs_total"].iloc[0])
        assert frame.loc[client, "ace"] == score_ace(row0, cfg.ace)["ace_total"].iloc[0]
        # exposure: the day-by-day window of the team's interpolated totals
        team = study.clients.set_index("client").loc[client, "team"]
        fid = study.fidelity[study.fidelity["team"] == team]
        totals = score_fidelity(fid, cfg.fidelity)["fidelity_total"]
        points = [(d.date(), v) for d, v in zip(fid["date"], totals)]
        for window in (90, 180, 270):
            expected, _ = plain_window(row45["date"].iloc[0].date(), window, points)
            assert frame.loc[client, exposure_at(4.5, window)] == pytest.approx(expected, rel=1e-12)


def test_rescored_imputed_scores_flow_into_the_frame(study):
    scores = study.scored_interviews()
    scores.loc[scores["wave"] == 9, "qoli20_total"] = 77.0
    frame = analysis_frame(study, scores)
    assert (frame["qoli20_total_9m"] == 77.0).all()
    assert "qoli20_family_9m" not in frame.columns
    assert "qoli20_family_9m" in analysis_frame(study, all_scores=True).columns


def test_model_columns_resolve_the_paper_model(study):
    cfg = study.config
    spec = model_columns(cfg, "pgi", cfg.analysis.waves[1])
    assert (spec.x, spec.m, spec.y) == ("fidelity_13.5m_180d", "rprs_total_13.5m", "pgi_index_18m")
    assert spec.covariates == ("age", "gender", "housing", "employment", "education", "ace", "site",
                               "long_hospitalization", "pgi_index_0m")
    frame = analysis_frame(study)
    assert {spec.x, spec.m, spec.y, *spec.covariates} <= set(frame.columns)
    assert model_columns(cfg, "hope", cfg.analysis.waves[0], 90).x == "fidelity_4.5m_90d"
    assert score_at("rprs_total", 13.5) == "rprs_total_13.5m"


def test_long_form_one_row_per_interview(study):
    long = long_frame(study)
    assert len(long) == len(study.interviews)
    assert not long.duplicated(["client", "wave"]).any()
    row = long[(long["client"] == "p00") & (long["wave"] == 4.5)].iloc[0]
    wide = analysis_frame(study).set_index("client")
    assert row["fidelity_180d"] == wide.loc["p00", "fidelity_4.5m_180d"]
    assert row["rprs_total"] == wide.loc["p00", "rprs_total_4.5m"]
    assert row["days_since_enrollment"] == 137 + 7
    assert {"carried_180d", "days_before_first_180d", "fidelity_caseload_90d", "site", "ace"} <= set(long.columns)


def test_deidentify_drops_ids(study):
    out = deidentify(analysis_frame(study))
    assert not set(ID_COLUMNS) & set(out.columns)
    assert np.isfinite(out["fidelity_4.5m_180d"]).all()
