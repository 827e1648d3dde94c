"""study.yaml: defaults reproduce the paper; unknown keys and wrong types name their key path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fidelitymed.errors import ConfigError
from fidelitymed.study.config import StudyConfig, default_config, load_config, parse_config

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_defaults_reproduce_the_paper():
    cfg = default_config()
    assert cfg.waves == [0, 4.5, 9, 13.5, 18]
    assert cfg.schedule[4.5] == ["rprs"] and "ace" in cfg.schedule[0]
    assert cfg.scoring.fidelity.excluded_domains == ["integration"]
    assert len(cfg.scoring.fidelity.included_domains) == 8
    assert sum(cfg.scoring.fidelity.domains.values()) == 31
    assert cfg.scoring.fidelity.high_fidelity_threshold == 32
    assert cfg.exposure.windows == [90, 180, 270] and cfg.exposure.primary_window == 180
    a = cfg.analysis
    assert a.outcomes == ["qoli20", "pgi", "hope", "mcas"]
    assert [a.score_column(o) for o in a.outcomes] == ["qoli20_total", "pgi_index", "hope_total", "mcas_total"]
    assert a.score_column("rprs") == "rprs_total"
    assert [(p.outcome, p.mediator) for p in a.waves] == [(9, 4.5), (18, 13.5)]
    assert len(a.covariates) == 9 and a.categorical == ["site"]
    assert (a.imputations, a.n_boot, a.conf, a.pooling, a.ci) == (20, 5000, 0.95, "stacked", "percentile")
    assert (a.alpha_rule.icc_threshold, a.alpha_rule.alpha, a.alpha_rule.adjusted_alpha) == (0.05, 0.05, 0.01)
    assert a.executor.backend == "serial" and a.impute is True and a.small_cell_threshold == 5


def test_example_in_study_format_doc_parses():
    text = (DOCS / "study-format.md").read_text()
    block = re.search(r"## study.yaml\n```yaml\n(.*?)```", text, re.S).group(1)
    cfg = parse_config(yaml.safe_load(block))
    assert cfg.analysis.seed == 20241126 and cfg.scoring.pgi.points_rule == "normalize"


def test_every_problem_is_reported_with_its_key_path():
    bad = {"foo": 1,
           "scoring": {"rprs": {"metric": "z_scores", "colour": "red"}, "hope": {"points": 5}},
           "analysis": {"n_boot": "many", "executor": {"backend": "gpu"}, "conf": 1.5}}
    with pytest.raises(ConfigError) as info:
        parse_config(bad)
    msg = str(info.value)
    lines = [line for line in msg.splitlines() if line.startswith("  - ")]
    assert len(lines) == 7, msg
    assert "foo: unknown key (allowed: name, files, schedule, scoring, exposure, analysis, instruments)" in msg
    assert "scoring.rprs.colour: unknown key (allowed: metric," in msg
    assert "scoring.rprs.metric: expected 'zero_to_100' or 'percent_of_max'; got 'z_scores'" in msg
    assert "scoring.hope.points: expected 4 or 8; got 5" in msg
    assert "analysis.n_boot: expected a valid integer" in msg
    assert "analysis.executor.backend: expected 'serial', 'processes' or 'dask'; got 'gpu'" in msg
    assert "analysis.conf: expected less than 1" in msg


@pytest.mark.parametrize("data, fragment", [
    ({"exposure": {"windows": [90], "primary_window": 180}}, "primary_window 180 is not one of windows"),
    ({"analysis": {"scores": {"pgi": "total"}}}, "analysis.scores.pgi: expected one of ['index']"),
    ({"analysis": {"waves": [{"outcome": 9, "mediator": 5}]}}, "analysis.waves[0].mediator: expected a wave"),
    ({"analysis": {"waves": [{"outcome": 9}]}}, "analysis.waves[0].mediator: required key is missing"),
    ({"scoring": {"fidelity": {"excluded_domains": ["nope"]}}}, "excluded_domains ['nope'] are not among"),
    ({"scoring": {"qoli20": {"missing_codes": [7]}}}, "missing_codes [7] are valid scale points"),
    ({"scoring": {"mcas": {"subscales": {"x": ["mcas_99"]}}}}, "['mcas_99'] are not items"),
    ({"schedule": {"x": ["rprs"]}}, "schedule.x (key): expected a valid number"),
    ({"schedule": {0: ["rprs", "bdi"]}}, "schedule.0[1]: unknown instrument 'bdi'"),
    ({"analysis": {"categorical": ["region"]}}, "categorical ['region'] are not among covariates"),
    ({"analysis": {"impute": [1]}}, "analysis.impute: expected a valid boolean"),
    ({"analysis": {"seed": -3}}, "analysis.seed: expected greater than or equal to 0"),
    ("just text", "expected a mapping of keys at the top level"),
])
def test_single_problems(data, fragment):
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert fragment in str(info.value)


def test_load_config_reads_a_folder_and_names_yaml_errors(tmp_path):
    (tmp_path / "study.yaml").write_text("name: x\nanalysis:\n  n_boot: 200\n  seed: 1\n")
    cfg = load_config(tmp_path)
    assert cfg.analysis.n_boot == 200 and cfg.name == "x"
    (tmp_path / "study.yaml").write_text("name: x\nanalysis: [1,\n")
    with pytest.raises(ConfigError, match=r"study.yaml: line \d+, column \d+: not valid YAML"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml")


def test_config_is_frozen_and_hash_is_stable():
    a, b = default_config(), StudyConfig()
    assert a.hash() == b.hash()
    assert a.hash() != parse_config({"analysis": {"seed": 1}}).hash()
    with pytest.raises(Exception):
        a.name = "other"
    copy = a.model_copy(update={"analysis": a.analysis.model_copy(update={"impute": False})})
    assert copy.analysis.impute is False and a.analysis.impute is True


def test_partial_scores_keep_the_other_defaults():
    cfg = parse_config({"analysis": {"scores": {"hope": "agency"}}})
    assert cfg.analysis.score_column("hope") == "hope_agency"
    assert cfg.analysis.score_column("pgi") == "pgi_index"
