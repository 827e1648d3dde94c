"""Declared instruments (issue 14): hand-scored cases, declaration errors, and the built-ins
through declarations bit for bit equal to the scorers they replaced."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fidelitymed.errors import ConfigError, StudyDataError
from fidelitymed.instruments import (FidelityDeclaration, InstrumentDeclaration, declare, label, parse_declarations,
                                     score_declaration, score_fidelity, score_interviews)
from fidelitymed.instruments.declaration import builtin_declaration, codebook_declaration, expand_items
from fidelitymed.instruments.scoring import instrument_declarations, item_ranges, score_columns
from fidelitymed.study.config import ScoringConfig

REFERENCE = Path(__file__).parent / "reference"
NA = np.nan

WAI = {"label": "WAI-SR", "items": "wai_1..wai_12", "min": 1, "max": 5, "reverse": ["wai_4"],
       "missing_codes": [9], "max_missing_share": 0.2, "total": "mean",
       "subscales": {"goal": "wai_1..wai_4", "task": "wai_5..wai_8", "bond": "wai_9..wai_12"}}
ITEMS = [f"wai_{k}" for k in range(1, 13)]


def frame(*value_rows):
    return pd.DataFrame([dict(zip(ITEMS, r)) for r in value_rows], columns=ITEMS, dtype=float)


# ------------------------------------------------------------------------- hand-scored cases
def test_range_form_expands_to_the_item_list():
    assert expand_items("wai_1..wai_3") == ["wai_1", "wai_2", "wai_3"]
    assert expand_items(["x_2..x_3", "y"]) == ["x_2", "x_3", "y"]
    assert declare("wai", WAI).items == ITEMS


def test_reverse_item_and_subscales_by_hand():
    decl = declare("wai", WAI)
    # goal: 5, 5, 5 and wai_4 = 1 reversed to 5 -> goal mean 5; task 2s; bond 3s
    out = score_declaration("wai", decl, frame([5, 5, 5, 1, 2, 2, 2, 2, 3, 3, 3, 3]))
    assert list(out.columns) == ["wai_total", "wai_goal", "wai_task", "wai_bond"]
    assert out.iloc[0].tolist() == pytest.approx([(20 + 8 + 12) / 12, 5.0, 2.0, 3.0])


def test_missing_code_is_missing_not_a_value():
    decl = declare("wai", WAI)
    # wai_1 = 9 (missing code): total over the 11 answered items, goal over its 3 answered items
    out = score_declaration("wai", decl, frame([9, 4, 4, 2, 3, 3, 3, 3, 3, 3, 3, 3]))
    # wai_4 = 2 reversed -> 4; goal = (4 + 4 + 4) / 3; total = (12 + 24) / 11
    assert out["wai_total"].iloc[0] == pytest.approx(36 / 11)
    # 1 missing of 4 exceeds floor(0.2 x 4) = 0 allowed: the goal subscale is missing
    assert np.isnan(out["wai_goal"].iloc[0])
    assert out["wai_task"].iloc[0] == pytest.approx(3.0)


def test_prorating_at_and_past_the_limit_mean_and_sum():
    # 12 items, share 0.2 -> floor(2.4) = 2 items may be missing
    at_limit = [NA, NA] + [4] * 10
    past_limit = [NA, NA, NA] + [4] * 9
    decl = declare("wai", {**WAI, "reverse": [], "subscales": {}})
    out = score_declaration("wai", decl, frame(at_limit, past_limit))
    assert out["wai_total"].iloc[0] == pytest.approx(4.0)
    assert np.isnan(out["wai_total"].iloc[1])
    summed = declare("wai", {**WAI, "reverse": [], "subscales": {}, "total": "sum"})
    out = score_declaration("wai", summed, frame(at_limit, past_limit, [2, 3] + [NA, 4] * 5))
    # prorated sum = mean of the answered items x 12
    assert out["wai_total"].iloc[0] == pytest.approx(48.0)
    assert np.isnan(out["wai_total"].iloc[1])
    assert np.isnan(out["wai_total"].iloc[2])          # 5 missing
    share_half = declare("wai", {**WAI, "reverse": [], "subscales": {}, "total": "sum", "max_missing_share": 0.5})
    out = score_declaration("wai", share_half, frame([2, 3] + [NA, 4] * 5))
    assert out["wai_total"].iloc[0] == pytest.approx((2 + 3 + 20) / 7 * 12)


def test_subscale_prorating_is_per_subscale():
    decl = declare("wai", {**WAI, "reverse": [], "max_missing_share": 0.25})  # 1 of 4 per subscale, 3 of 12 total
    out = score_declaration("wai", decl, frame([NA, 2, 2, 2, NA, NA, 4, 4, 1, 2, 3, 4]))
    assert out["wai_goal"].iloc[0] == pytest.approx(2.0)
    assert np.isnan(out["wai_task"].iloc[0])                  # 2 of 4 missing
    assert out["wai_bond"].iloc[0] == pytest.approx(2.5)
    assert out["wai_total"].iloc[0] == pytest.approx((6 + 8 + 10) / 9)


def test_metric_count_and_unscored_items():
    pomp = declare("x", {"items": "x_1..x_4", "min": 1, "max": 4, "metric": "zero_to_100"})
    assert score_declaration("x", pomp, pd.DataFrame({f"x_{k}": [3.0] for k in range(1, 5)}))["x_total"].iloc[0] \
        == pytest.approx(200 / 3)
    count = declare("c", {"items": "c_1..c_3", "min": 0, "max": 1, "total": "count", "max_missing_share": 0.4})
    out = score_declaration("c", count, pd.DataFrame({"c_1": [1, 1, NA], "c_2": [1, NA, NA], "c_3": [0, 1, 1]}))
    np.testing.assert_array_equal(out["c_total"].to_numpy(), [2.0, 2.0, NA])   # 1 of 3 may be missing, not prorated
    fill = declare("h", {"items": "h_1..h_3", "min": 1, "max": 4, "unscored": ["h_2"], "total": "sum",
                         "max_missing_share": 0})
    assert score_declaration("h", fill, pd.DataFrame({"h_1": [1.0], "h_2": [NA], "h_3": [4.0]}))["h_total"].iloc[0] \
        == pytest.approx(5.0)
    with pytest.raises(StudyDataError):                   # unscored items are still checked
        score_declaration("h", fill, pd.DataFrame({"h_1": [1.0], "h_2": [7.0], "h_3": [4.0]}))


def test_invalid_values_are_refused_with_cell():
    with pytest.raises(StudyDataError) as info:
        score_declaration("wai", declare("wai", WAI), frame([6] + [3] * 11))
    assert [(i.row, i.column) for i in info.value.issues] == [(2, "wai_1")]


def test_declared_fidelity_scale_tmact_style():
    tmact = declare("fidelity", {"label": "TMACT", "domains": {"op": "op_1..op_3", "ct": ["ct_1", "ct_2"]},
                                 "total": "mean", "high_fidelity_threshold": 4.2, "min": 1, "max": 5})
    assert isinstance(tmact, FidelityDeclaration)
    ratings = pd.DataFrame({"op_1": [5, 4], "op_2": [4, 4], "op_3": [NA, 4], "ct_1": [4, 3], "ct_2": [5, 3]},
                           dtype=float)
    out = score_fidelity(ratings, declaration=tmact)
    assert out["fidelity_op"].tolist() == pytest.approx([4.5, 4.0])
    assert out["fidelity_total"].tolist() == pytest.approx([4.5, 3.5])
    assert out["fidelity_high"].tolist() == [True, False]


# ------------------------------------------------------------------------- declaration errors
@pytest.mark.parametrize("change, line", [
    ({"reverse": ["wai_13"]}, "instruments.wai.reverse[0]: 'wai_13' is not one of the items"),
    ({"min": 5, "max": 5}, "instruments.wai.min: 5 is not below max 5"),
    ({"items": ["wai_1", "wai_2", "wai_1"], "reverse": [], "subscales": {}},
     "instruments.wai.items[2]: 'wai_1' is listed twice"),
    ({"subscales": {"goal": ["wai_1", "wai_99"]}}, "instruments.wai.subscales.goal[1]: 'wai_99' is not one of the items"),
    ({"max_missing_share": 1.5}, "instruments.wai.max_missing_share: expected a share between 0 and 1; got 1.5"),
    ({"max_missing_share": -0.1}, "instruments.wai.max_missing_share: expected a share between 0 and 1; got -0.1"),
    ({"missing_codes": [3]}, "instruments.wai.missing_codes[0]: 3 is a valid scale point (1-5); a missing code "
                             "must lie outside the scale"),
    ({"items": "wai_3..wai_1"}, "instruments.wai.items: 'wai_3..wai_1' is not a range like wai_1..wai_12 "
                                "(one prefix, ascending numbers)"),
    ({"total": "median"}, "instruments.wai.total: input should be 'mean', 'sum', 'count' or 'subscale_sum'; "
                          "got 'median'"),
    ({"colour": "red"}, "instruments.wai.colour: unknown key"),
    ({"metric": "zero_to_100", "total": "sum"}, "instruments.wai.metric: 'zero_to_100' rescales mean scores; "
                                                "expected total: mean (and mean subscales)"),
])
def test_every_declaration_error_is_one_key_path_line(change, line):
    _, problems = parse_declarations({"wai": {**WAI, **change}})
    assert problems == [line]
    with pytest.raises(ConfigError, match=None) as info:
        declare("wai", {**WAI, **change})
    assert str(info.value) == line


def test_missing_keys_and_fidelity_errors_are_key_path_lines():
    _, problems = parse_declarations({"wai": {"label": "x"}})
    assert problems == ["instruments.wai.items: required key is missing", "instruments.wai.min: required key is missing",
                        "instruments.wai.max: required key is missing"]
    _, problems = parse_declarations({"fidelity": {"domains": {"a": ["a_1"], "b": ["a_1"]},
                                                   "excluded_domains": ["c"]}})
    assert problems == ["instruments.fidelity.domains.b[0]: 'a_1' is listed twice (also in 'a')",
                        "instruments.fidelity.excluded_domains[0]: 'c' is not one of the domains"]
    _, problems = parse_declarations({"fidelity": {"domains": {"a": 2}, "excluded_domains": ["a"]}})
    assert problems == ["instruments.fidelity.excluded_domains: leaves no domain to score"]
    _, problems = parse_declarations({"tmact": {**WAI, "level": "team"}})
    assert problems == ["instruments.tmact.level: expected 'client'; got 'team' (the team fidelity scale is "
                        "declared as instruments.fidelity)"]
    _, problems = parse_declarations({"2x": WAI, "ok": "nope"})
    assert problems[0].startswith("instruments.2x: '2x' is not a usable instrument name")
    assert problems[1].startswith("instruments.ok: expected a mapping")


# ---------------------------------------------------------------- declared instruments in the API
def test_a_declaration_adds_or_overrides_an_instrument():
    wai = declare("wai", WAI)
    mcas = declare("mcas", {"label": "MCAS-SR", "items": "mcas_1..mcas_17", "min": 1, "max": 5, "total": "mean"})
    decls = {"wai": wai, "mcas": mcas}
    assert score_columns(None, ["wai", "mcas"], declarations=decls) == {
        "wai": ["wai_total", "wai_goal", "wai_task", "wai_bond"], "mcas": ["mcas_total"]}
    assert item_ranges(declarations=decls)["wai_3"] == (1, 5, (9.0,))
    assert instrument_declarations(declarations=decls)["rprs"] == builtin_declaration("rprs")
    interviews = pd.DataFrame({"client": ["a", "b"], "wave": [0.0, 4.5],
                               **{c: [3.0, 4.0] for c in ITEMS}, **{f"mcas_{k}": [2.0, 5.0] for k in range(1, 18)}})
    scored = score_interviews(interviews, declarations=decls, schedule={0.0: ["mcas"], 4.5: ["wai"]})
    assert scored["mcas_total"].tolist() == pytest.approx([2.0, NA], nan_ok=True)  # a mean now, and only at wave 0
    assert scored["wai_total"].tolist() == pytest.approx([NA, (11 * 4 + 2) / 12], nan_ok=True)  # wai_4 reversed
    assert label("wai", decls) == "WAI-SR" and label("mcas", decls) == "MCAS-SR" and label("qoli20") == "QOLI-20"


def test_codebook_entries_are_declarations_matching_the_default_settings():
    for name in ("fidelity", "rprs", "qoli20", "pgi", "hope", "mcas", "ace"):
        assert codebook_declaration(name) == builtin_declaration(name), name


# --------------------------------------------------------------- bitwise equal to the old scorers
def _same_bits(got: np.ndarray, expected: np.ndarray) -> bool:
    nan_got, nan_exp = np.isnan(got), np.isnan(expected)
    return bool(np.array_equal(nan_got, nan_exp)
                and np.array_equal(got[~nan_got].view(np.uint64), expected[~nan_exp].view(np.uint64)))


def _reference():
    data = np.load(REFERENCE / "builtin_scores.npz")
    return data, json.loads(bytes(data["meta"]))


def test_builtins_bitwise_equal_on_random_items_under_every_scoring_setting():
    sys.path.insert(0, str(REFERENCE))
    try:
        from builtin_scores import VARIANTS, scores_of
    finally:
        sys.path.remove(str(REFERENCE))
    data, meta = _reference()
    for name, settings in VARIANTS:
        items = pd.DataFrame(data[f"{name}__items"], columns=meta[name]["items"])
        got = scores_of(items, ScoringConfig.model_validate(settings))
        assert list(got.columns) == meta[name]["scores"], name
        expected = data[f"{name}__scores"]
        assert np.isfinite(expected).sum() > 0.6 * expected.size, name      # mostly scorable rows
        assert _same_bits(got.to_numpy(dtype=float), expected), name


def test_builtins_bitwise_equal_on_the_demo_study():
    from fidelitymed.study.schema import load_study

    data, meta = _reference()
    demo = load_study(Path(__file__).parents[1] / "src/fidelitymed/data/demo")
    scored = score_interviews(demo.interviews, demo.config.scoring, schedule=demo.config.schedule)
    assert list(scored.columns[3:]) == meta["demo"]["scores"]
    assert _same_bits(scored[meta["demo"]["scores"]].to_numpy(dtype=float), data["demo__scores"])
    fid = demo.scored_fidelity()[meta["demo"]["fidelity"]].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    assert _same_bits(fid, data["demo__fidelity"])


def test_declaration_kinds():
    assert isinstance(declare("wai", WAI), InstrumentDeclaration)
    assert declare("p", {"rule": "pgi", "areas": 3}).items == ["pgi_rating_1", "pgi_rating_2", "pgi_rating_3",
                                                              "pgi_points_1", "pgi_points_2", "pgi_points_3"]
    _, problems = parse_declarations({"p": {"rule": "magic"}})
    assert problems == ["instruments.p.rule: expected 'pgi' (the only named scoring rule); got 'magic'"]


# ------------------------------------------------------------------------ study.yaml wiring
SCHEDULE_WAI = {0: ["qoli20", "pgi", "hope", "mcas", "ace"], 4.5: ["wai"], 9: ["qoli20", "pgi", "hope", "mcas"],
                13.5: ["wai"], 18: ["qoli20", "pgi", "hope", "mcas"]}


@pytest.mark.parametrize("change, line", [
    ({"schedule": {**SCHEDULE_WAI, 4.5: ["wai", "bdi"]}},
     "schedule.4.5[1]: unknown instrument 'bdi'; expected one of ace, hope, mcas, pgi, qoli20, rprs, wai "
     "(or declare it under instruments:)"),
    ({"schedule": {**SCHEDULE_WAI, 13.5: ["rprs"]}},
     "analysis.waves[1].mediator: instruments ['wai'] are not scheduled at wave 13.5"),
    ({"instruments": {"wai": {**WAI, "reverse": ["wai_13"]}}},
     "instruments.wai.reverse[0]: 'wai_13' is not one of the items"),
    ({"analysis": {"mediator": "wai", "outcomes": ["qoli20", "phq9"]}},
     "analysis.outcomes[1]: unknown instrument 'phq9'; expected one of ace, hope, mcas, pgi, qoli20, rprs, wai"),
    ({"analysis": {"mediator": "wai", "scores": {"wai": "agency"}}},
     "analysis.scores.wai: expected one of ['total', 'goal', 'task', 'bond']; got 'agency'"),
    ({"scoring": {"rprs": {"metric": "percent_of_max"}}, "instruments": {"wai": WAI, "rprs": WAI}},
     "scoring.rprs: the instrument is declared under instruments.rprs; put its rules in the declaration "
     "(these settings would be ignored)"),
])
def test_study_yaml_instrument_errors_are_key_path_lines(change, line):
    from fidelitymed.study.config import parse_config

    data = {"instruments": {"wai": WAI}, "schedule": SCHEDULE_WAI, "analysis": {"mediator": "wai"}, **change}
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert str(info.value) == f"study.yaml: {line}"


def _wai_study(tmp_path: Path) -> Path:
    """The demo study with a declared WAI-SR (12 items, 1-5) as the alliance measure instead of the RPRS."""
    import shutil

    import yaml

    demo = Path(__file__).parents[1] / "src/fidelitymed/data/demo"
    target = tmp_path / "wai"
    shutil.copytree(demo, target)
    interviews = pd.read_csv(target / "interviews.csv")
    rng = np.random.default_rng(1)
    wai = {f"wai_{k}": np.where(interviews[f"rprs_{k}"].notna(),
                                np.clip(interviews[f"rprs_{k}"] + rng.integers(0, 2, len(interviews)), 1, 5), np.nan)
           for k in range(1, 13)}
    interviews = pd.concat([interviews.drop(columns=[f"rprs_{k}" for k in range(1, 25)]), pd.DataFrame(wai)], axis=1)
    interviews.to_csv(target / "interviews.csv", index=False)
    cfg = yaml.safe_load((target / "study.yaml").read_text())
    cfg["instruments"] = {"wai": {**WAI, "missing_codes": []}}
    cfg["schedule"] = SCHEDULE_WAI
    cfg["analysis"].update({"mediator": "wai", "imputations": 2, "n_boot": 100})
    (target / "study.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return target


def test_a_declared_alliance_measure_runs_through_validation_imputation_and_models(tmp_path):
    from fidelitymed.pipeline import run_study
    from fidelitymed.study.schema import load_study

    folder = _wai_study(tmp_path)
    study = load_study(folder)
    scored = study.scored_interviews()
    assert {"wai_total", "wai_goal", "wai_task", "wai_bond"} <= set(scored.columns)
    assert scored.loc[scored["wave"] == 4.5, "wai_total"].notna().mean() > 0.9
    expected = score_declaration("wai", declare("wai", {**WAI, "missing_codes": []}), study.interviews)
    pd.testing.assert_series_equal(scored["wai_total"].where(scored["wave"].isin([4.5, 13.5])),
                                   expected["wai_total"].where(study.interviews["wave"].isin([4.5, 13.5])))
    results = run_study(folder, out=str(tmp_path / "out"))
    mediators = {r["m"] for r in results.mediation}
    assert mediators == {"wai_4.5m", "wai_13.5m"}
    assert all(r["imputations"] == 2 for r in results.mediation)
    # the declared label, not the machine name, is what readers see
    import re

    text = re.sub(r"<[^>]+>", " ", (tmp_path / "out" / "report.html").read_text(encoding="utf-8"))
    assert "WAI-SR" in text
    assert not re.search(r"\bwai_(4\.5|13\.5)m\b", text)
