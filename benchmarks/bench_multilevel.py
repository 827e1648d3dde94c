"""Benchmark: the nested random-intercept engine against statsmodels MixedLM on the same fits.

Fits both equations of one multilevel mediation model on the study-shaped reference data
(tests/reference/multilevel_study.csv: 14 teams, 40 case managers, n = 311, site as covariate,
``(1 | team/case_manager)``, REML):

* mediator model ``alliance ~ fidelity + site``, outcome model ``outcome ~ fidelity + alliance + site``;
* ours: :func:`fidelitymed.stats.multilevel.fit_nested_lmm` (fixed effects, variance components and
  the Satterthwaite df), and the whole :func:`fidelitymed.mediate_multilevel` call (both equations,
  decomposition, 20,000 Monte Carlo draws);
* statsmodels: ``MixedLM(groups=team, vc_formula={"cm": "0 + C(case_manager)"})`` with its default
  fit and with Powell (the optimizer fidelitymed's old ICC code needed to approach the optimum);
  MixedLM gives no Satterthwaite df, so it does less work than we do.

Prints the median time of each over repeats, the ratio (measured in the same run), and the
agreement of each with the stored lme4 fit (tests/reference/multilevel_lme4.json).

Then the study's case: the embedded demo study's 24 models on one imputed data set (n = 311,
14 teams, 65 case managers, nine covariates, 100 Monte Carlo draws each as in the pipeline), one
``mediate_multilevel`` call per model against one ``mediate_multilevel_many`` call (the 48
equations in two batches), with a check that every result is the same to the bit.

Run:  .venv/bin/python benchmarks/bench_multilevel.py [--repeats 20]
Timings on a shared machine are noisy: only the ratios, measured side by side, mean much.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import fidelitymed
from fidelitymed.stats.multilevel import NestedGroups, fit_nested_lmm

REF = Path(__file__).resolve().parents[1] / "tests" / "reference"
EQUATIONS = {"m_on_x": ("alliance", ["fidelity", "site"]), "y_on_xm": ("outcome", ["fidelity", "alliance", "site"])}


def _median_time(func, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    import statsmodels
    from statsmodels.regression.mixed_linear_model import MixedLM

    data = pd.read_csv(REF / "multilevel_study.csv", dtype={"team": str, "case_manager": str})
    lme4 = json.loads((REF / "multilevel_lme4.json").read_text())
    groups = NestedGroups.from_columns([data["team"], data["case_manager"]], ["team", "case_manager"])
    designs = {k: (data[y].to_numpy(float), np.column_stack([np.ones(len(data)), data[xs].to_numpy(float)]))
               for k, (y, xs) in EQUATIONS.items()}

    def ours():
        return {k: fit_nested_lmm(y, X, groups) for k, (y, X) in designs.items()}

    def mixedlm(method):
        fits = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for k, (y, X) in designs.items():
                model = MixedLM(y, X, groups=data["team"], exog_re=np.ones((len(y), 1)),
                                exog_vc={"cm": {t: pd.get_dummies(data.loc[data["team"] == t, "case_manager"])
                                                .to_numpy(float) for t in data["team"].unique()}})
                fits[k] = model.fit(reml=True, method=method) if method else model.fit(reml=True)
        return fits

    def whole_call():
        return fidelitymed.mediate_multilevel(data, x="fidelity", m="alliance", y="outcome", covariates=["site"],
                                              groups=["team", "case_manager"], seed=1)

    ours(), whole_call(), mixedlm(None)  # warm-up: imports, caches
    t_ours = _median_time(ours, args.repeats)
    t_whole = _median_time(whole_call, args.repeats)
    t_sm = _median_time(lambda: mixedlm(None), max(3, args.repeats // 4))
    t_sm_powell = _median_time(lambda: mixedlm("powell"), max(3, args.repeats // 4))

    print(f"numpy {np.__version__}, statsmodels {statsmodels.__version__}; n = {len(data)}, 14 teams, "
          f"40 case managers; both equations of one model, REML, median of repeats")
    print(f"{'method':<46}{'time (ms)':>12}{'ratio':>10}")
    print(f"{'fidelitymed fit_nested_lmm (with Satterthwaite)':<46}{t_ours * 1e3:12.2f}{1.0:10.1f}")
    print(f"{'fidelitymed mediate_multilevel (whole call)':<46}{t_whole * 1e3:12.2f}{t_whole / t_ours:10.1f}")
    print(f"{'statsmodels MixedLM, default fit':<46}{t_sm * 1e3:12.2f}{t_sm / t_ours:10.1f}")
    print(f"{'statsmodels MixedLM, method=powell':<46}{t_sm_powell * 1e3:12.2f}{t_sm_powell / t_ours:10.1f}")

    print("\nagreement with lme4 (max relative difference; variance components team, case manager, residual)")
    mine, sm_default, sm_powell = ours(), mixedlm(None), mixedlm("powell")
    for k in EQUATIONS:
        ref = lme4[k]
        ref_vc = np.array([ref["variance"]["team"], ref["variance"]["case_manager:team"], ref["variance"]["Residual"]])
        rows = [("fidelitymed", mine[k].coef, mine[k].se, np.array([*mine[k].variances, mine[k].residual_variance]))]
        for label, fit in (("MixedLM default", sm_default[k]), ("MixedLM powell", sm_powell[k])):
            vc = np.array([float(np.asarray(fit.cov_re)[0, 0]), float(fit.vcomp[0]), float(fit.scale)])
            rows.append((label, np.asarray(fit.fe_params), np.asarray(fit.bse_fe), vc))
        for label, coef, se, vc in rows:
            rel = lambda a, b: float(np.max(np.abs(a - b) / np.abs(b)))  # noqa: E731
            print(f"  {k:<8} {label:<16} coef {rel(coef, np.array(ref['coef'])):8.1e}  se {rel(se, np.array(ref['se'])):8.1e}"
                  f"  variances {rel(vc, ref_vc):8.1e}  ({', '.join(f'{v:.4f}' for v in vc)})")
    print(f"  lme4 Satterthwaite df of fidelity in m_on_x: {lme4['m_on_x']['df'][1]:.4f}; "
          f"ours {mine['m_on_x'].df[1]:.4f}")
    _study_models(max(3, args.repeats // 4))


def _study_models(repeats: int) -> None:
    """The demo study's 24 models on one imputed data set: one call each against one batch."""
    from fidelitymed.pipeline import prepare_frames, study_models
    from fidelitymed.stats.multilevel.mediation import mediate_multilevel_many
    from fidelitymed.study.schema import load_study

    study = load_study(fidelitymed.demo_study_path())
    frame = prepare_frames(study, seed=1, impute=True, m=2).frames[0]
    groups = list(study.config.analysis.multilevel.groups)
    models = [dict(x=s.x, m=s.m, y=s.y, covariates=list(s.covariates), categorical=list(s.categorical))
              for s in study_models(study.config)]
    seeds = list(range(len(models)))

    def one_each():
        return [fidelitymed.mediate_multilevel(frame, **mdl, groups=groups, n_mc=100, seed=seed)
                for mdl, seed in zip(models, seeds)]

    def batched():
        return mediate_multilevel_many(frame, models, groups=groups, n_mc=100, seeds=seeds)

    same = all(json.dumps(a.to_dict()) == json.dumps(b.to_dict()) for a, b in zip(one_each(), batched()))
    t_each, t_batch = _median_time(one_each, repeats), _median_time(batched, repeats)
    print(f"\nthe demo study's {len(models)} models on one imputed data set (n = {len(frame)}), median of {repeats}:")
    print(f"{'method':<46}{'time (ms)':>12}{'ratio':>10}")
    print(f"{'mediate_multilevel, one call per model':<46}{t_each * 1e3:12.1f}{t_each / t_batch:10.2f}")
    print(f"{'mediate_multilevel_many (two batches)':<46}{t_batch * 1e3:12.1f}{1.0:10.2f}")
    print(f"  every result the same to the bit: {same}")


if __name__ == "__main__":
    main()
