"""The whole study end to end on the demo study (light settings), checked against independent fits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fidelitymed import parallel
from fidelitymed.errors import ConfigError, FidelityMedError
from fidelitymed.pipeline import RESULT_KEYS, prepare_frames, run_study
from fidelitymed.seeding import child_sequence
from fidelitymed.simulate import demo_study_path
from fidelitymed.stats.mediation import mediate
from fidelitymed.study.schema import load_study

DEMO = demo_study_path()
M, B, SEED = 3, 200, 20241126
MEDIATION_KEYS = {"n", "n_dropped", "paths", "models", "indirect", "indirect_partially_std", "indirect_std",
                  "n_boot", "n_boot_failed", "seed"}


def _needs_mi() -> None:
    pytest.importorskip("fidelitymed.stats.impute", reason="the imputation engine has not landed")
    pytest.importorskip("fidelitymed.stats.pooling", reason="the pooling module has not landed")


@pytest.fixture(scope="module")
def mi_run(tmp_path_factory):
    _needs_mi()
    out = tmp_path_factory.mktemp("run") / "out"
    results = run_study(DEMO, out=str(out), imputations=M, n_boot=B, seed=SEED, executor="serial")
    return results, out


STAGES: list[tuple[str, int, int]] = []


@pytest.fixture(scope="module")
def listwise_run():
    return run_study(DEMO, impute=False, n_boot=B, seed=SEED, executor="serial", report=False,
                     progress=lambda stage, done, total: STAGES.append((stage, done, total)))


def test_the_run_leaves_the_objects_it_starts_with_out_of_its_garbage_collections():
    import gc

    if gc.get_freeze_count():
        gc.unfreeze()
    seen: set[bool] = set()
    run_study(DEMO, impute=False, n_boot=20, seed=SEED, executor="serial", report=False,
              progress=lambda stage, done, total: seen.add(gc.get_freeze_count() > 0))
    assert seen == {True}
    assert gc.get_freeze_count() == 0


def _ids(study) -> set[str]:
    return set(study.clients["client"].astype(str)) | set(study.clients["case_manager"].astype(str))


def test_results_json_contract(mi_run):
    results, out = mi_run
    d = json.loads((out / "results.json").read_text())
    assert list(d) == list(RESULT_KEYS)
    assert len(d["mediation"]) == 4 * 2 * 3          # outcomes x waves x windows
    rec = d["mediation"][0]
    assert MEDIATION_KEYS <= set(rec)
    assert {"outcome", "outcome_label", "outcome_month", "mediator_month", "window_days", "primary_window",
            "imputation_scheme", "imputations", "pooling", "alpha", "significant"} <= set(rec)
    assert rec["imputation_scheme"] == f"item-level MICE-PMM, m={M}" and rec["imputations"] == M
    # completed frames: every client in every model (covariates and exposure filled by the MI)
    assert all(r["n"] == 311 and r["n_dropped"] == 0 for r in d["mediation"])
    assert {(r["outcome"], r["outcome_month"], r["window_days"]) for r in d["mediation"]} == {
        (o, w, win) for o in ("qoli20", "pgi", "hope", "mcas") for w in (9, 18) for win in (90, 180, 270)}
    assert sum(r["primary_window"] for r in d["mediation"]) == 8
    assert len(d["alpha_decisions"]) == 24 * 5
    assert {r["y"] for r in d["icc"]} == {"rprs_4.5m", "rprs_13.5m"} | {
        f"{o}_{w}m" for o in ("qoli20", "pgi", "hope", "mcas") for w in (9, 18)}
    assert len(d["hierarchical"]) == 4 and d["hierarchical"][0]["y"] == "rprs_13.5m"
    assert [b["df1"] for b in d["hierarchical"][0]["blocks"]][1] == 1
    assert len(d["direct_effects"]) == 24
    assert {"table1", "table2"} <= set(d["descriptives"])
    assert 0 < d["missing"]["overall_share"] < 0.5
    man = d["manifest"]
    assert man["seed"] == SEED and len(man["config_hash"]) == 64
    assert set(man["inputs"]) >= {"study.yaml", "clients.csv", "interviews.csv", "teams.csv", "fidelity.csv"}
    assert all(len(h) == 64 for h in man["inputs"].values())
    for name in ("mediation", "icc", "alpha_decisions", "hierarchical", "direct_effects", "table1", "table2",
                 "missing"):
        assert (out / f"{name}.csv").is_file()
    assert set(pd.ExcelFile(out / "results.xlsx").sheet_names) >= {"mediation", "icc", "table1"}


def _strings(obj) -> set[str]:
    if isinstance(obj, dict):
        return set().union(*(_strings(v) | {str(k)} for k, v in obj.items())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(_strings(v) for v in obj)) if obj else set()
    return {obj} if isinstance(obj, str) else set()


def test_no_identifiers_or_timestamps_in_outputs(mi_run):
    results, out = mi_run
    study = load_study(DEMO)
    d = json.loads((out / "results.json").read_text())
    strings = _strings(d)
    assert not strings & _ids(study)
    assert "client" not in strings and "case_manager" not in d["manifest"]["settings"].get("icc_data", "")
    for name in ("mediation", "table1", "table2", "icc"):
        text = (out / f"{name}.csv").read_text()
        assert not any(f",{i}," in text for i in _ids(study) if not i.isdigit())
    assert not any(k in d["manifest"] for k in ("time", "date", "timestamp", "created"))


def test_pooled_paths_equal_rubin_by_hand(mi_run):
    """Re-fit one model on each imputation with the task's own seed; pool by Rubin's rules by hand."""
    results, _ = mi_run
    study = load_study(DEMO)
    prepared = prepare_frames(study, seed=SEED, impute=True, m=M)
    rec = next(r for r in results.mediation if r["outcome"] == "qoli20" and r["outcome_month"] == 9
               and r["window_days"] == 180)
    from fidelitymed.frame import model_columns

    mc = model_columns(study.config, "qoli20", study.config.analysis.waves[0], 180)
    fits = [mediate(prepared.frames[k], mc.x, mc.m, mc.y, list(mc.covariates), list(mc.categorical), n_boot=B,
                    seed=child_sequence(SEED, ("mediation", k)), save_boot=True)
            for k in range(M)]
    for path in ("a", "b", "c_prime", "c"):
        q = np.array([f.paths[path]["coef"] for f in fits])
        u = np.array([f.paths[path]["se"] ** 2 for f in fits])
        qbar, ubar, bvar = q.mean(), u.mean(), q.var(ddof=1)
        total = ubar + (1 + 1 / M) * bvar
        lam = (1 + 1 / M) * bvar / total
        dfcom = fits[0].outcome_model.df_resid if path != "a" else fits[0].mediator_model.df_resid
        if path == "c":
            dfcom = fits[0].total_model.df_resid
        nu_old = (M - 1) / lam**2
        nu_obs = (dfcom + 1) / (dfcom + 3) * dfcom * (1 - lam)
        nu = nu_old * nu_obs / (nu_old + nu_obs)
        got = rec["paths"][path]
        assert got["coef"] == pytest.approx(qbar, rel=1e-10)
        assert got["se"] == pytest.approx(np.sqrt(total), rel=1e-10)
        assert got["p"] == pytest.approx(2 * stats.t.sf(abs(qbar / np.sqrt(total)), nu), rel=1e-6)
        half = stats.t.ppf(0.975, nu) * np.sqrt(total)
        assert got["ci_low"] == pytest.approx(qbar - half, rel=1e-8)
    # stacked percentile interval of the indirect effect over all m x B draws
    draws = np.concatenate([f.boot_draws["ab"].to_numpy() for f in fits])
    assert rec["pooling"] == "stacked"
    lo, hi = np.percentile(draws, [2.5, 97.5])
    assert rec["indirect"]["ci_low"] == pytest.approx(lo, rel=1e-8)
    assert rec["indirect"]["ci_high"] == pytest.approx(hi, rel=1e-8)


def test_listwise_matches_single_mediate(listwise_run):
    study = load_study(DEMO)
    from fidelitymed.frame import analysis_frame, model_columns

    frame = analysis_frame(study, domains=False)
    rec = next(r for r in listwise_run.mediation if r["outcome"] == "mcas" and r["outcome_month"] == 18
               and r["window_days"] == 90)
    mc = model_columns(study.config, "mcas", study.config.analysis.waves[1], 90)
    ref = mediate(frame, mc.x, mc.m, mc.y, list(mc.covariates), list(mc.categorical), n_boot=B,
                  seed=child_sequence(SEED, ("mediation", 0))).to_dict()
    assert rec["imputation_scheme"] == "listwise" and rec["imputations"] is None
    for key in ("n", "n_dropped", "paths", "models", "indirect", "indirect_std"):
        assert rec[key] == ref[key]
    assert rec["n"] < len(study.clients)
    assert listwise_run.imputation is None
    assert 0 < listwise_run.missing["overall_share"] < 0.5
    # the progress callback saw every stage start and finish
    finished = {stage for stage, done, total in STAGES if done == total}
    assert {"analysis frame", "models (24 x 1)", "ICCs"} <= finished


def test_alpha_rule_uses_icc_records(listwise_run):
    iccs = {r["y"]: r for r in listwise_run.icc}
    rule = listwise_run.manifest["settings"]["alpha_rule"]
    for d in listwise_run.alpha_decisions:
        if d["path"] == "indirect":
            continue
        icc_value = iccs[d["dependent_variable"]]["icc_for_rule"]
        expected = rule["adjusted_alpha"] if icc_value > rule["icc_threshold"] else rule["alpha"]
        assert d["alpha"] == expected
        assert d["significant"] == (d["p"] < expected)


def test_same_seed_identical_json_api_and_cli(tmp_path, listwise_run):
    from fidelitymed.cli import main

    a = run_study(DEMO, out=str(tmp_path / "a"), impute=False, n_boot=100, seed=7, executor="serial", report=False)
    code = main(["run", str(DEMO), "--out", str(tmp_path / "b"), "--no-impute", "--n-boot", "100", "--seed", "7",
                 "--backend", "serial", "--quiet"])
    assert code == 0
    assert a.out == tmp_path / "a"
    # the CLI also renders the report; results.json is byte-identical
    assert (tmp_path / "a" / "results.json").read_bytes() == (tmp_path / "b" / "results.json").read_bytes()
    assert (tmp_path / "b" / "report.html").is_file()
    assert a.mediation[0]["indirect"] != listwise_run.mediation[0]["indirect"]   # another seed


def _strip(d: dict) -> dict:
    d = dict(d)
    d["manifest"] = {k: v for k, v in d["manifest"].items() if k != "executor"}
    return d


def test_backends_identical():
    """Serial, 2 local processes and a 2-worker Dask LocalCluster: the same results.json (MI run)."""
    _needs_mi()
    kw = dict(imputations=2, n_boot=50, seed=11, report=False)
    serial = run_study(DEMO, executor="serial", **kw).to_dict()
    procs = run_study(DEMO, executor={"backend": "processes", "workers": 2}, **kw).to_dict()
    with parallel.Executor("dask", workers=2) as ex:
        dask = run_study(DEMO, executor=ex, **kw).to_dict()
    assert json.dumps(_strip(serial)) == json.dumps(_strip(procs)) == json.dumps(_strip(dask))
    assert dask["manifest"]["executor"]["backend"] == "dask"


def test_output_folder_rules(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.txt").write_text("not ours")  # an empty folder would be used (docs/study-analysis.md)
    with pytest.raises(FidelityMedError, match="--force"):
        run_study(DEMO, out=str(out), impute=False, n_boot=50)
    with pytest.raises(ConfigError, match="inside the study folder"):
        run_study(DEMO, out=str(Path(DEMO) / "results"), impute=False, n_boot=50, force=True)


def test_cli_refuses_existing_out(tmp_path, capsys):
    from fidelitymed.cli import main

    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "x.txt").write_text("not ours")
    code = main(["run", str(DEMO), "--out", str(tmp_path / "cli"), "--no-impute", "--n-boot", "50", "--quiet"])
    assert code == 2
    assert "--force" in capsys.readouterr().err


def _coverage(tmp_path, n_clients: int, m: int, seed: int) -> tuple[int, int, list[str]]:
    import yaml

    from fidelitymed.simulate import simulate_study

    sim = simulate_study(tmp_path / "sim", seed=seed, n_clients=n_clients, clustering=0.0)
    cfg_path = tmp_path / "sim" / "study.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg.setdefault("exposure", {})["windows"] = [180]      # the window the truth is defined for
    cfg["exposure"]["primary_window"] = 180
    cfg_path.write_text(yaml.safe_dump(cfg))
    res = run_study(tmp_path / "sim", imputations=m, n_boot=50, seed=seed, executor="serial", report=False)
    truth = {(p["outcome"], float(p["wave"])): p for p in sim.truth["paths"]}
    covered, total, misses = 0, 0, []
    for r in res.mediation:
        t = truth[(r["outcome"], float(r["outcome_month"]))]
        for path in ("a", "b"):
            ci = r["paths"][path]
            total += 1
            if ci["ci_low"] <= t[path] <= ci["ci_high"]:
                covered += 1
            else:
                misses.append(f"{r['outcome']} {r['outcome_month']}m {path}: {t[path]} not in "
                              f"[{ci['ci_low']:.3f}, {ci['ci_high']:.3f}]")
    return covered, total, misses


def test_pooled_paths_cover_truth_light(tmp_path):
    _needs_mi()
    covered, total, misses = _coverage(tmp_path, n_clients=700, m=3, seed=3)
    assert total == 16
    assert covered == total, misses


@pytest.mark.slow
def test_pooled_paths_cover_truth_large(tmp_path):
    _needs_mi()
    covered, total, misses = _coverage(tmp_path, n_clients=4000, m=10, seed=5)
    assert covered == total, misses
