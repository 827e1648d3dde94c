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
    # one default departs from the paper: the indirect effects' CIs are pooled by Boot-MI, as the
    # coverage simulation found (docs/imputation.md); the paper's stacked pooling is one setting away
    assert (a.imputations, a.n_boot, a.conf, a.ci) == (20, 5000, 0.95, "percentile")
    assert a.pooling == "boot_mi" and (a.boot_mi_resamples, a.boot_mi_imputations) == (200, 2)
    assert (a.alpha_rule.icc_threshold, a.alpha_rule.alpha, a.alpha_rule.adjusted_alpha) == (0.05, 0.05, 0.01)
    assert a.executor.backend == "serial" and a.impute is True and a.small_cell_threshold == 5


def test_pooling_defaults_to_boot_mi_for_one_mediator_and_stacked_for_parallel_ones():
    from fidelitymed.simulate import demo_study_path
    from fidelitymed.study.config import AnalysisConfig, load_config

    two = ["rprs_core_relationship", "rprs_recovery_promoting_strategies"]
    assert AnalysisConfig().pooling == "boot_mi"
    assert AnalysisConfig(mediator=["rprs"]).pooling == "boot_mi"        # a list of one: one mediator
    assert AnalysisConfig(mediator=two).pooling == "stacked"
    assert AnalysisConfig(mediator=two, pooling="rubin_mc").pooling == "rubin_mc"
    with pytest.raises(ValueError, match="boot_mi pools the indirect effect of one mediator"):
        AnalysisConfig(mediator=two, pooling="boot_mi")
    # the demo reproduces the paper: it says so
    assert load_config(demo_study_path()).analysis.pooling == "stacked"


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


# ------------------------------------------------------------------ bounded inputs (issue 10)
def _laughs(levels: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for k in range(1, levels):
        lines.append(f"a{k}: &a{k} [" + ",".join([f"*a{k - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\nname: *a{levels - 1}\n"


def test_billion_laughs_is_refused_quickly_in_one_line(tmp_path):
    import time

    text = _laughs(9)   # 9**9 = 387 million strings once expanded
    assert len(text.encode()) < 1024
    (tmp_path / "study.yaml").write_text(text)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert time.perf_counter() - start < 1.0
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 300
    assert "more than 100,000 values once its aliases are expanded" in msg


def test_small_alias_use_is_fine_and_errors_never_render_the_whole_value(tmp_path):
    (tmp_path / "study.yaml").write_text(_laughs(4))   # 6561 strings: parsed, then a short type error
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    msg = str(info.value)
    assert msg.count("\n") == 1 + 4 and len(msg) < 600   # a0..a3 unknown keys + name
    assert "name: expected a valid string; got [[[" in msg


def test_recursive_alias_is_refused(tmp_path):
    (tmp_path / "study.yaml").write_text("name: &a [*a]\n")
    with pytest.raises(ConfigError, match="recursive alias"):
        load_config(tmp_path)


def test_duplicate_yaml_key_names_key_and_line(tmp_path):
    (tmp_path / "study.yaml").write_text("name: x\nanalysis:\n  n_boot: 10\n  seed: 1\n  n_boot: 20\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value).endswith("study.yaml: line 5: duplicate key 'n_boot' (first at line 3); "
                                    "each key may appear once")
    # 0 and 0.0 are one wave
    (tmp_path / "study.yaml").write_text("schedule:\n  0: [qoli20]\n  0.0: [pgi]\n")
    with pytest.raises(ConfigError, match="line 3: duplicate key 0.0"):
        load_config(tmp_path)


def test_yaml_merge_keys_are_not_duplicates(tmp_path):
    (tmp_path / "study.yaml").write_text("base: &b {n_boot: 10, seed: 1}\n")
    text = "analysis:\n  <<: {n_boot: 10, seed: 1}\n  n_boot: 20\n"
    (tmp_path / "study.yaml").write_text(text)
    assert load_config(tmp_path).analysis.n_boot == 20


def test_study_yaml_not_utf8_names_file_and_byte(tmp_path):
    (tmp_path / "study.yaml").write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    msg = str(info.value)
    assert msg == f"{tmp_path / 'study.yaml'}: not UTF-8 text (byte 9: 0xe9); save study.yaml as UTF-8"
    (tmp_path / "study.yaml").write_bytes("\ufeffname: caf\u00e9\n".encode("utf-8"))   # a BOM is fine
    assert load_config(tmp_path).name == "caf\u00e9"


@pytest.mark.parametrize("text, fragment", [
    ("analysis: {n_boot: 1.0e+12}", "analysis.n_boot: expected less than or equal to 1000000; got 1000000000000.0"),
    ("analysis: {n_boot: 1000001}", "analysis.n_boot: expected less than or equal to 1000000; got 1000001"),
    ("analysis: {n_boot: 2.5}", "analysis.n_boot: expected a valid integer"),
    ("analysis: {n_boot: 1e12}", "analysis.n_boot: expected a valid integer"),
    ("analysis: {imputations: 1001}", "analysis.imputations: expected less than or equal to 1000; got 1001"),
    ("exposure: {windows: [1.0e+9], primary_window: 180}", "exposure.windows[0]: expected less than or equal to 3650"),
    ("exposure: {windows: [1e9]}", "exposure.windows[0]: expected a valid integer"),
    ("exposure: {windows: [90, 3651], primary_window: 90}", "exposure.windows[1]: expected less than or equal to 3650"),
    ("schedule: {.nan: [rprs]}", "schedule.nan (key): expected a finite number"),
    ("schedule: {0: [qoli20], .inf: [rprs]}", "schedule.inf (key): expected a finite number"),
    ("analysis: {waves: [{outcome: .nan, mediator: 4.5}]}", "analysis.waves[0].outcome: expected a finite number"),
    ("analysis: {covariates: [age, team]}", "analysis.covariates: covariates ['team'] are id columns"),
    ("analysis: {covariates: [client, case_manager]}", "covariates ['client', 'case_manager'] are id columns"),
    ("files: {na_values: ['']}", "files.na_values: empty cells are always missing"),
    ("analysis: {outcomes: []}", "analysis.outcomes: expected at least 1 item; got []"),
    ("analysis: {waves: []}", "analysis.waves: expected at least 1 item; got []"),
])
def test_bounds_are_key_path_errors(tmp_path, text, fragment):
    (tmp_path / "study.yaml").write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert fragment in str(info.value)


def test_bounds_at_their_limit_are_accepted():
    cfg = parse_config({"analysis": {"n_boot": 1_000_000, "imputations": 1000},
                        "exposure": {"windows": [3650], "primary_window": 3650}, "files": {"na_values": ["NA"]}})
    assert cfg.analysis.n_boot == 1_000_000 and cfg.exposure.windows == [3650]
    assert cfg.files.na_values == ["NA"] and default_config().files.na_values == []


@pytest.mark.parametrize("raw, message", [
    (b"name: x\nanalysis: {seed: 2014-13-01}\n",
     "line 2, column 18: not valid YAML ('2014-13-01' is not a valid value (month must be in 1..12))"),
    (b"name: a\xc2\x82b\n", "line 1, column 8: not valid YAML (character U+0082 is not allowed in YAML)"),
])
def test_yaml_values_pyyaml_cannot_build_are_one_line_errors(tmp_path, raw, message):
    # found by tests/test_fuzz_study.py: both used to escape as ValueError / ReaderError tracebacks
    (tmp_path / "study.yaml").write_bytes(raw)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value) == f"{tmp_path / 'study.yaml'}: {message}"
