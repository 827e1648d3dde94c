"""study.yaml ``analysis.mediator`` as a list: parallel mediators through the pipeline (issue 12, Deliver 6).

The pipeline's records are checked against :func:`fidelitymed.mediate` (k = 2, ``contrast=True``)
plus :func:`fidelitymed.stats.pooling.pool_mediation` run by hand on the same imputed frames with
the same task seeds (1e-12); the report renders with the mediator labels.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from fidelitymed.errors import ConfigError
from fidelitymed.study.config import parse_config

DEMO = Path(__file__).resolve().parents[1] / "src" / "fidelitymed" / "data" / "demo"
MEDIATORS = ["rprs_recovery_promoting_strategies", "rprs_core_relationship"]


def _study(tmp_path: Path, mediator) -> Path:
    folder = tmp_path / "study"
    shutil.copytree(DEMO, folder)
    cfg = yaml.safe_load((folder / "study.yaml").read_text())
    cfg["analysis"].update({"mediator": mediator, "outcomes": ["qoli20"], "waves": [{"outcome": 9, "mediator": 4.5}]})
    cfg["analysis"]["multilevel"]["enabled"] = False
    cfg["exposure"]["windows"] = [180]
    (folder / "study.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return folder


@pytest.mark.parametrize("mediator, message", [
    (["rprs_total", "xyz"], "analysis.mediator[1]: 'xyz' is not a scheduled instrument score"),
    (["rprs_total", "rprs_bogus"], "analysis.mediator[1]: 'rprs_bogus' is not a scheduled instrument score"),
    (["rprs_total", "hope_total"], "the mediator 'hope' cannot also be an outcome"),
])
def test_config_errors_have_key_paths(mediator, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config({"analysis": {"mediator": mediator}}, source="t")


def test_multilevel_with_parallel_mediators_is_refused():
    with pytest.raises(ConfigError, match=r"analysis\.multilevel\.enabled: multilevel mediation takes one mediator"):
        parse_config({"analysis": {"mediator": MEDIATORS, "multilevel": {"enabled": True}}}, source="t")


def test_list_of_one_is_the_single_mediator():
    one = parse_config({"analysis": {"mediator": "rprs"}}, source="t")
    for value in (["rprs"], ["rprs_total"]):
        assert parse_config({"analysis": {"mediator": value}}, source="t").hash() == one.hash()


def test_parallel_records_match_mediate_and_pooling_by_hand(tmp_path):
    from fidelitymed import parallel
    from fidelitymed.exposure import study_exposure
    from fidelitymed.frame import analysis_frame, model_columns
    from fidelitymed.pipeline import prepare_frames, run_study
    from fidelitymed.report.html import render_report
    from fidelitymed.seeding import child_sequence, root_sequence
    from fidelitymed.stats.mediation import mediate
    from fidelitymed.stats.pooling import pool_mediation
    from fidelitymed.study.schema import load_study

    folder = _study(tmp_path, MEDIATORS)
    results = run_study(folder, imputations=2, n_boot=40, report=False, executor="serial")
    (record,) = results.mediation
    assert record["m"] == [f"{m}_4.5m" for m in MEDIATORS]

    study = load_study(folder)
    a = study.config.analysis
    exposure = study_exposure(study, columns=["fidelity_total"])
    scores = study.scored_interviews()
    observed = analysis_frame(study, scores, exposure=exposure, domains=False)
    prepared = prepare_frames(study, seed=a.seed, exposure=exposure, observed_scores=scores, observed=observed,
                              impute=True, m=2)
    spec = model_columns(study.config, "qoli20", a.waves[0], 180)
    root = root_sequence(a.seed)
    tasks = parallel.make_tasks({("mediation", k): k for k in range(2)}, seed=root)
    fits = [mediate(prepared.frames[t.payload], spec.x, list(spec.m), spec.y, covariates=list(spec.covariates),
                    categorical=list(spec.categorical), n_boot=40, conf=a.conf, ci=a.ci, seed=t.seed,
                    save_boot=True, contrast=True) for t in tasks]
    expected = pool_mediation(fits, pool="stacked", conf=a.conf, seed=child_sequence(root, ("pool", "qoli20", "9", 180)),
                              report_seed=a.seed).to_dict()

    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from leaves(v, f"{prefix}{k}/")
            elif isinstance(v, float):
                yield f"{prefix}{k}", v

    got = dict(leaves({k: record[k] for k in ("paths", "indirect", "indirect_std", "contrasts")}))
    want = dict(leaves({k: expected[k] for k in ("paths", "indirect", "indirect_std", "contrasts")}))
    assert set(got) == set(want) and len(got) > 50
    np.testing.assert_allclose([got[k] for k in sorted(got)], [want[k] for k in sorted(got)], rtol=1e-12, atol=1e-12)
    assert set(record["significant"]["a"]) == set(record["m"])
    assert "total" in record["significant"]["indirect"]
    assert results.hierarchical == ()

    html = Path(render_report(results.to_dict(), tmp_path / "report", config=study.config)).read_text()
    assert "Parallel mediation models" in html and "RPRS core relationship" in html
    assert any(p.name.endswith(".png") and "parallel_diagram" in p.name for p in (tmp_path / "report" / "figures").iterdir())


def test_frames_prepared_while_drawing_hand_back_both_results_and_the_helpers_error():
    """The processes run imputes on a helper thread while this thread draws the trajectories."""
    import threading

    from fidelitymed.errors import StudyDataError
    from fidelitymed.pipeline import _while_drawing

    threads = []
    frames, drawn = _while_drawing(lambda: threads.append(threading.current_thread()) or "frames", lambda: "drawn")
    assert (frames, drawn) == ("frames", "drawn")
    assert threads and threads[0] is not threading.main_thread()

    def failing():
        raise StudyDataError(file="interviews.csv", column="qoli_1", value="x", expected="an integer 1-7")

    with pytest.raises(StudyDataError, match="interviews.csv"):
        _while_drawing(failing, lambda: "drawn")
    # the drawing's own error wins, after the helper has finished
    finished = threading.Event()
    with pytest.raises(KeyError):
        _while_drawing(lambda: finished.set(), lambda: {}["missing"])
    assert finished.is_set()


@pytest.mark.parametrize("backend", ["serial", "processes"])
def test_prepare_frames_hands_each_group_of_chains_over_as_it_is_imputed(backend):
    """A run starts a group's models while the other groups are still being imputed (pipeline)."""
    import pandas as pd

    from fidelitymed import parallel
    from fidelitymed.pipeline import prepare_frames
    from fidelitymed.study.schema import load_study

    study = load_study(DEMO)
    groups: dict[int, list[pd.DataFrame]] = {}
    with parallel.Executor(backend, workers=2) as ex:
        prepared = prepare_frames(study, seed=7, impute=True, m=5, executor=ex,
                                  on_frames=lambda first, frames: groups.setdefault(first, list(frames)))
    assert sorted(groups) == ([0] if backend == "serial" else [0, 3])    # chains 0-2 and 3-4
    handed = [f for first in sorted(groups) for f in groups[first]]
    assert len(handed) == len(prepared.frames) == 5
    for got, frame in zip(handed, prepared.frames, strict=True):
        pd.testing.assert_frame_equal(got, frame)
    observed = []
    listwise = prepare_frames(study, impute=False, on_frames=lambda first, frames: observed.append((first, frames)))
    assert observed == [(0, listwise.frames)]


def test_the_models_stage_counts_every_group_once_and_starts_after_the_imputation_stage():
    """On workers the models come in one map per group of chains; the user sees one stage."""
    from fidelitymed.pipeline import run_study

    seen: list[tuple[str, int, int]] = []
    run_study(DEMO, imputations=4, n_boot=50, report=False, executor={"backend": "processes", "workers": 2},
              progress=lambda stage, done, total: seen.append((stage, done, total)))
    stages = list(dict.fromkeys(stage for stage, _, _ in seen))
    assert stages[:2] == ["imputing (m=4)", "models (24 x 4)"]
    models = [(done, total) for stage, done, total in seen if stage == "models (24 x 4)"]
    assert models == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
