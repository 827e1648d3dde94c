"""The whole study in one call: ``run_study(path)`` -> :class:`StudyResults` (and an output folder).

The flow of ``docs/DESIGN`` and nothing else; every statistic lives in its own module:

1. load and validate the study folder (:func:`fidelitymed.study.schema.load_study`);
2. fidelity exposure of every interview (:mod:`fidelitymed.exposure`) and the observed
   analysis frame (:mod:`fidelitymed.frame`);
3. item-level multiple imputation of the interviews, ``m`` completed tables
   (:func:`fidelitymed.stats.impute.impute_interviews`), each re-scored and turned into an
   analysis frame (``--no-impute``: the observed frame, listwise deletion per model);
4. the model tasks through :func:`fidelitymed.parallel` (serial, processes or Dask): one per
   imputed data set, whose outcome x wave pair x fidelity window models share that data set's
   resamples (a seed keyed by the imputation; :func:`fidelitymed.stats.mediation.mediate_many`),
   the ICC of every dependent variable, and the multilevel models (one task per data set, each
   fit with its own seed), which the workers fit while this process does steps 5 and 6;
5. pooling across imputations (:mod:`fidelitymed.stats.pooling`): Rubin's rules with
   Barnard-Rubin df for the paths, the configured scheme for the indirect effect;
6. the alpha rule per path (:mod:`fidelitymed.stats.nested`), the reciprocal hierarchical
   regressions (:mod:`fidelitymed.stats.regression`), the direct fidelity -> outcome effects,
   then the pooled multilevel models, Tables 1 and 2 (:mod:`fidelitymed.descriptives`) and the
   missing-data shares;
7. the manifest (package versions, seed, config hash, input file hashes keyed by their paths
   relative to the study folder; no timestamps, no absolute paths) and the outputs, written
   into a temporary folder that is checked, locked and created before step 1 and renamed into
   place at the end (:class:`fidelitymed.study.writers.OutputFolder`): ``results.json``, tidy
   CSVs, ``results.xlsx``, the HTML report (its figures drawn on the run's executor) and the
   ``.fidelitymed-output`` marker.

One seed gives a byte-identical ``results.json`` on every backend except for
``manifest.executor``, which records where the run happened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
from importlib import metadata as importlib_metadata
import math
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from . import blas, heap, interrupt, parallel
from .errors import ConfigError
from .labels import instrument_label, study_labels
from .study.writers import OutputFolder, neutralise_frame

if TYPE_CHECKING:
    from .frame import ModelColumns

__all__ = ["PreparedFrames", "RESULT_KEYS", "StudyResults", "prepare_frames", "run_study"]

#: top-level keys of results.json, in order (docs/results-schema.md)
RESULT_KEYS = ("mediation", "multilevel", "icc", "alpha_decisions", "hierarchical", "direct_effects", "descriptives",
               "missing", "imputation", "manifest")

#: the kind recorded in the marker of a run's output folder (see fidelitymed.study.writers)
OUTPUT_KIND = "study results"

_PACKAGES = ("numpy", "scipy", "pandas", "statsmodels", "pydantic", "dask", "distributed")


# ================================================================================== results

@dataclass(frozen=True, eq=False)
class StudyResults:
    """Every number of the study (``results.json``), plus where the outputs were written.

    Attributes hold JSON-safe records (see ``docs/results-schema.md``); :meth:`to_dict` is the
    ``results.json`` dict, :meth:`to_frame` the mediation table (one row per outcome x wave x
    window), :meth:`summary` a short text table.
    """

    mediation: tuple[dict[str, Any], ...]
    icc: tuple[dict[str, Any], ...]
    alpha_decisions: tuple[dict[str, Any], ...]
    hierarchical: tuple[dict[str, Any], ...]
    direct_effects: tuple[dict[str, Any], ...]
    descriptives: dict[str, Any]
    missing: dict[str, Any]
    imputation: dict[str, Any] | None
    manifest: dict[str, Any]
    #: multilevel mediation records (analysis.multilevel.enabled), one per mediation model
    multilevel: tuple[dict[str, Any], ...] = ()
    out: Path | None = None
    report: Path | None = None
    timings: dict[str, float] = field(default_factory=dict, repr=False)
    #: the fidelity-domain analysis (analysis.domains; fidelitymed.stats.domains), when enabled
    domains: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` dict (JSON-safe; no identifiers, no timestamps)."""
        return {"mediation": [dict(r) for r in self.mediation], "multilevel": [dict(r) for r in self.multilevel],
                "icc": [dict(r) for r in self.icc],
                "alpha_decisions": [dict(r) for r in self.alpha_decisions],
                "hierarchical": [dict(r) for r in self.hierarchical],
                "direct_effects": [dict(r) for r in self.direct_effects],
                "descriptives": dict(self.descriptives), "missing": dict(self.missing),
                "imputation": None if self.imputation is None else dict(self.imputation),
                "manifest": dict(self.manifest), **({} if self.domains is None else {"domains": self.domains})}

    def to_frame(self) -> pd.DataFrame:
        """One row per mediation model: paths, indirect effect and decisions."""
        return mediation_table(self.mediation)

    def summary(self) -> str:
        """A short text table of every mediation model, with display labels (THS, not hope)."""

        PRIME_C = "c\u2032"  # noqa: N806
        frame = self.to_frame()
        settings = self.manifest.get("settings", {})
        scheme = settings.get("imputation_scheme", "")
        lines = [f"{self.manifest.get('study', 'study')}: {len(self.mediation)} mediation models ({scheme}; "
                 f"pooling: {settings.get('pooling') or 'none'}; {settings.get('n_boot')} resamples)",
                 f"{'outcome':<8} {'month':>5} {'window':>6} {'a':>8} {'b':>8} {PRIME_C:>8} {'ab':>8} "
                 f"{'95% CI':>18}  significant"]
        if "indirect:total" in frame.columns:
            return self._parallel_summary(frame, lines[0])
        for _, r in frame.iterrows():
            ci = f"[{r['indirect_ci_low']:.3f}, {r['indirect_ci_high']:.3f}]"
            sig = ",".join(p for p in ("a", "b", "c_prime", "indirect") if r.get(f"sig_{p}")) or "-"
            sig = sig.replace("c_prime", "c\u2032").replace("indirect", "ab")
            lines.append(f"{instrument_label(r['outcome']):<8} {r['outcome_month']:>5g} {int(r['window_days']):>5}d "
                         f"{r['a']:>8.3f} {r['b']:>8.3f} {r['c_prime']:>8.3f} {r['indirect']:>8.3f} {ci:>18}  {sig}")
        if self.missing.get("overall_share") is not None:
            lines.append(f"missing at the scale level: {100 * self.missing['overall_share']:.1f}%")
        if self.out is not None:
            lines.append(f"outputs: {self.out}")
        return "\n".join(lines)

    def _parallel_summary(self, frame: pd.DataFrame, title: str) -> str:
        """Parallel mediators: one line per model and indirect effect (total and specific)."""
        lines = [title, f"{'outcome':<8} {'month':>5} {'window':>6} {'indirect effect':<40} {'effect':>8} "
                        f"{'95% CI':>18}  significant"]
        for r, record in zip(frame.to_dict("records"), self.mediation, strict=True):
            for name in ("total", *record["m"]):
                key = f"indirect:{name}"
                ci = f"[{r[f'{key}_ci_low']:.3f}, {r[f'{key}_ci_high']:.3f}]"
                lines.append(f"{r['outcome']:<8} {r['outcome_month']:>5g} {int(r['window_days']):>5}d {name:<40} "
                             f"{r[key]:>8.3f} {ci:>18}  {'yes' if r.get(f'sig_{key}') else '-'}")
        if self.out is not None:
            lines.append(f"outputs: {self.out}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        windows = sorted({int(r["window_days"]) for r in self.mediation if r.get("window_days") is not None})
        scheme = self.manifest.get("settings", {}).get("imputation_scheme", "")
        where = f", out={str(self.out)!r}" if self.out is not None else ""
        return (f"<StudyResults {self.manifest.get('study', 'study')!r}: {len(self.mediation)} mediation models, "
                f"windows {'/'.join(map(str, windows))} d, {scheme}{where}>")

    def _repr_html_(self) -> str:
        """The primary window's mediation table and the report's warnings, for notebooks."""
        from html import escape

        from .report.html import normalize_results, report_warnings
        from .report.tables import mediation_table as apa_mediation_table
        from .report.tables import primary_window

        results = normalize_results(self)
        window = primary_window(results)
        parts = [f"<p><b>{escape(repr(self))}</b></p>"]
        if window is not None:
            table = apa_mediation_table(results, window)
            parts.append(f"<p><i>{escape(table.title)}</i></p>")
            parts.append(table.formatted().to_html(index=False, escape=True, border=0))
            parts.append(f"<p><small><i>Note.</i> {escape(table.note)}</small></p>")
        parts += [f"<p><b>Warning:</b> {escape(w)}</p>" for w in report_warnings(results)]
        return "\n".join(parts)


def mediation_table(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Flat table of mediation records (one row per model)."""
    rows = []
    for r in records:
        row: dict[str, Any] = {k: r.get(k) for k in ("outcome", "outcome_label", "outcome_month", "mediator_month",
                                                     "window_days", "primary_window", "imputation_scheme",
                                                     "imputations", "pooling", "n", "x", "m", "y")}
        if isinstance(r.get("m"), list):
            row["m"] = ", ".join(r["m"])
        # parallel mediators (k >= 2): nested blocks flatten to "a:<m>", "indirect:total", "contrast:<m1> - <m2>"
        for path, vals in _flat_blocks(r.get("paths") or {}, "coef"):
            row[path] = vals.get("coef")
            for k in ("se", "t", "p", "ci_low", "ci_high"):
                row[f"{path}_{k}"] = vals.get(k)
        blocks = {key: r.get(key) or {} for key in ("indirect", "indirect_partially_std", "indirect_std")}
        if r.get("contrasts"):
            blocks["contrast"] = r["contrasts"]
        for key, block in blocks.items():
            for name, vals in _flat_blocks({key: block}, "effect"):
                row[name] = vals.get("effect")
                for k in ("boot_se", "ci_low", "ci_high"):
                    row[f"{name}_{k}"] = vals.get(k)
        for path, value in _flat_values(r.get("alpha") or {}):
            row[f"alpha_{path}"] = value
        for path, value in _flat_values(r.get("significant") or {}):
            row[f"sig_{path}"] = value
        rows.append(row)
    return pd.DataFrame(rows)


def _flat_blocks(blocks: Mapping[str, Any], leaf: str):
    """(name, values) of each block; a block keyed by mediator (no ``leaf`` key) becomes ``name:<m>``."""
    for name, vals in blocks.items():
        if not vals or leaf in vals:
            yield name, vals or {}
        else:
            for sub, sub_vals in vals.items():
                yield f"{name}:{sub}", sub_vals or {}


def _flat_values(values: Mapping[str, Any]):
    for name, value in values.items():
        if isinstance(value, Mapping):
            for sub, sub_value in value.items():
                yield f"{name}:{sub}", sub_value
        else:
            yield name, value


# ================================================================================== progress

class _Progress:
    """Stage progress: rich bars, a user callback ``cb(stage, done, total)``, or nothing."""

    def __init__(self, progress: bool | Callable[[str, int, int], None] | None) -> None:
        self._user = progress if callable(progress) else None
        self._rich = None
        if progress is True:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._rich = Progress(TextColumn("[bold]{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=Console(stderr=True), transient=False)

    def __enter__(self) -> _Progress:
        if self._rich is not None:
            self._rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()

    def stage(self, name: str, total: int) -> Callable[[int, int, tuple], None]:
        if self._rich is not None:
            task_id = self._rich.add_task(name, total=total)

            def cb(done: int, total_: int, key: tuple = ()) -> None:
                self._rich.update(task_id, completed=done, total=total_)

            return cb
        if self._user is not None:
            user = self._user
            user(name, 0, total)
            return lambda done, total_, key=(): user(name, done, total_)
        return lambda done, total_, key=(): None


def _counted(stage: Callable[[int, int, tuple], None], total: int) -> Callable[[int, int, tuple], None]:
    """One stage's progress over several maps: their finished tasks counted together, of ``total``."""
    finished = itertools.count(1)
    return lambda done, total_, key=(): stage(next(finished), total, key)


# ================================================================================== tasks

def _mediation_task(task: parallel.Task) -> Any:
    """Every model on one (imputed) data set, on the same resamples: the task's own seed.

    :func:`fidelitymed.stats.mediation.mediate_many` -- one moment product per block over the
    union of the models' columns -- gives each model the draws ``mediate`` gives it with that seed.
    The data set rides in the payload, not in a shared context: a new context would restart a
    process pool's workers (demo study: ~0.2 s with both cores idle), and a data set is small
    next to a task's bootstrap.
    """
    from .stats.mediation import mediate_many

    specs, frame, opts = task.payload
    results = mediate_many(frame, mediation_models(specs), n_boot=opts["n_boot"], conf=opts["conf"],
                           ci=opts["ci"], seed=task.seed, save_boot=opts["save_boot"])
    return [_trim_draws(r) for r in results]


def study_models(config) -> list[ModelColumns]:
    """The study's models: wave pair x outcome x fidelity window, in the run's order."""
    from .frame import model_columns

    return [model_columns(config, outcome, pair, window)
            for pair in config.analysis.waves for outcome in config.analysis.outcomes
            for window in config.exposure.windows]


def mediation_models(specs: Sequence[ModelColumns]) -> list[dict[str, Any]]:
    """The models of :func:`fidelitymed.stats.mediation.mediate_many` for these specs (parallel
    mediators with their pairwise contrasts, PROCESS ``contrast=1``)."""
    return [dict(x=s.x, m=s.m if isinstance(s.m, str) else list(s.m), y=s.y, covariates=list(s.covariates),
                 categorical=list(s.categorical), contrast=not isinstance(s.m, str)) for s in specs]


def _trim_draws(result: Any) -> Any:
    """Only the draws stacked pooling reads (indirect effects and contrasts): fewer bytes to ship back."""
    if result.boot_draws is None:
        return result
    keep = [c for c in result.boot_draws.columns if c.startswith(("ab", "contrast:"))]
    return dataclasses.replace(result, boot_draws=result.boot_draws[keep])


def _multilevel_task(task: parallel.Task) -> list[Any]:
    """Every model with nested random intercepts on one (imputed) data set, each with its own seed.

    One task per data set rather than per model, and the data set's equations fitted together
    (:func:`fidelitymed.stats.multilevel.mediation.mediate_multilevel_many`): a fit alone takes
    ~7 ms, mostly the overhead of small numpy calls, which one batch pays once. The seeds are the
    models' own and a model's digits do not depend on its batch, so the grouping changes nothing.
    """
    from .stats.multilevel.mediation import mediate_multilevel_many

    models, frame, opts = task.payload
    return mediate_multilevel_many(
        frame, [dict(x=spec.x, m=spec.m, y=spec.y, covariates=list(spec.covariates),
                                    categorical=list(spec.categorical)) for spec, _ in models],
        groups=opts["groups"], decompose=opts["decompose"], conf=opts["conf"], n_mc=opts["n_mc"],
        seeds=[seed for _, seed in models])


def _icc_task(task: parallel.Task) -> Any:
    from .stats.nested import icc

    data, column, levels, name = task.payload
    result = icc(data, column, levels=levels)
    return dataclasses.replace(result, y=name)


def _study_figures_task(task: parallel.Task) -> dict[str, Any]:
    """The report figures that need no results, by name, drawn on a worker ({} without the report module)."""
    config, names = task.payload
    return _study_figures(config, None, names) or {}


# ================================================================================== helpers

def _month(w: float) -> int | float:
    w = float(w)
    return int(w) if w.is_integer() else w


def _var(instrument: str, wave: float) -> str:
    """Schema name of a measure at a wave: ``qoli20_9m``, ``rprs_4.5m``."""
    return f"{instrument}_{float(wave):g}m"


def _versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        with contextlib.suppress(Exception):
            out[name] = importlib_metadata.version(name)
    return out


def _override(config, *, impute: bool | None, imputations: int | None, n_boot: int | None, seed: int | None,
              pooling: str | None):
    updates: dict[str, Any] = {}
    if impute is not None:
        updates["impute"] = bool(impute)
    if imputations is not None:
        updates["imputations"] = int(imputations)
    if n_boot is not None:
        updates["n_boot"] = int(n_boot)
    if seed is not None:
        updates["seed"] = int(seed)
    if pooling is not None:
        updates["pooling"] = pooling
    if not updates:
        return config
    from .study.config import parse_config

    data = config.model_dump(mode="json")
    data["analysis"].update(updates)
    return parse_config(data, source="run_study overrides")


def _executor(executor, config) -> tuple[parallel.Executor, bool]:
    """The executor to use and whether this call owns it (and must close it)."""
    if isinstance(executor, parallel.Executor):
        return executor, False
    if isinstance(executor, str):
        return parallel.Executor(executor), True
    if isinstance(executor, Mapping):
        return parallel.Executor(**executor), True
    if executor is None:
        ex = config.analysis.executor
        return parallel.Executor(ex.backend, workers=ex.workers, scheduler=ex.scheduler), True
    raise ConfigError(f"executor must be an Executor, a backend name or a mapping; got {executor!r}")


# ================================================================================== pooling

def _pool_model(results: Sequence[Any], scheme: str, conf: float, seed: np.random.SeedSequence,
                report_seed: int) -> dict[str, Any]:
    """Pool one model's per-imputation MediationResults into a results.json mediation record body.

    Paths: Rubin's rules with Barnard-Rubin df; models: D1 and Harel R2; the indirect effect by
    ``scheme`` (:func:`fidelitymed.stats.pooling.pool_mediation`). ``seed`` (the model's own
    child stream) is used by ``rubin_mc`` only.
    """
    from .stats.pooling import pool_mediation

    return pool_mediation(results, pool=scheme, conf=conf, seed=seed, report_seed=report_seed).to_dict()


def _record_head(spec: ModelColumns, config, imputation_scheme: str, mediator: str | list[str]) -> dict[str, Any]:
    """The identifying keys of a mediation record (outcome, months, window, x/m/y, covariates)."""
    a = config.analysis
    return {"outcome": spec.outcome, "outcome_label": instrument_label(spec.outcome),
            "outcome_month": _month(spec.outcome_wave), "mediator_month": _month(spec.mediator_wave),
            "window_days": spec.window, "primary_window": spec.window == config.exposure.primary_window,
            "imputation_scheme": imputation_scheme,
            "x": f"fidelity_{spec.mediator_wave:g}m_{spec.window}d", "m": mediator,
            "y": _var(spec.outcome, spec.outcome_wave),
            "covariates": [_schema_covariate(c, spec, a) for c in spec.covariates]}


def _parallel_records(spec: ModelColumns, body: dict[str, Any], iccs: Mapping[str, Any], config,
                      imputation_scheme: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Mediation record, alpha decisions and direct effect of a parallel-mediator model (k >= 2).

    The alpha rule is applied per mediator, exactly as for one mediator, to (a_i, b_i, c', c) and the
    specific indirect effect a_i b_i (significant only if its CI excludes 0 and a_i and b_i are
    significant); the total indirect effect is significant when its CI excludes 0.
    """
    from .stats.nested import PathDecision, alpha_decisions

    a = config.analysis
    rule = a.alpha_rule
    icc_source = getattr(rule, "level", "max")
    mediators = list(spec.m)
    out_name = _var(spec.outcome, spec.outcome_wave)
    paths = body["paths"]
    decisions = {}
    for med in mediators:
        p_values = {"a": paths["a"][med]["p"], "b": paths["b"][med]["p"], "c_prime": paths["c_prime"]["p"],
                    "c": paths["c"]["p"]}
        specific = body["indirect"][med]
        decisions[med] = alpha_decisions(p_values, (specific["ci_low"], specific["ci_high"]), mediator=med,
                                         outcome=out_name, icc_mediator=iccs.get(med), icc_outcome=iccs.get(out_name),
                                         threshold=rule.icc_threshold, alpha=rule.alpha,
                                         adjusted_alpha=rule.adjusted_alpha, icc_source=icc_source, conf=a.conf)
    first = decisions[mediators[0]]
    total = body["indirect"]["total"]
    low, high = total["ci_low"], total["ci_high"]
    total_sig = bool(low is not None and high is not None and (low > 0 or high < 0))
    total_decision = PathDecision("indirect", f"{' + '.join(mediators)} -> {out_name}", None, None, None, total_sig,
                                  f"total indirect effect: {a.conf:.0%} CI [{low:.3f}, {high:.3f}] "
                                  f"{'excludes' if total_sig else 'includes'} 0", ci_low=low, ci_high=high)
    alpha = {"a": {m: decisions[m].alpha["a"] for m in mediators}, "b": {m: decisions[m].alpha["b"] for m in mediators},
             "c_prime": first.alpha["c_prime"], "c": first.alpha["c"]}
    significant = {"a": {m: decisions[m].significant["a"] for m in mediators},
                   "b": {m: decisions[m].significant["b"] for m in mediators},
                   "c_prime": first.significant["c_prime"], "c": first.significant["c"],
                   "indirect": {"total": total_sig, **{m: decisions[m].significant["indirect"] for m in mediators}}}
    head = _record_head(spec, config, imputation_scheme, mediators)
    record = {**head, **body, "alpha": alpha, "significant": significant}
    keys = {"outcome": spec.outcome, "outcome_month": _month(spec.outcome_wave),
            "mediator_month": _month(spec.mediator_wave), "window_days": spec.window}
    decision_records = []
    for med in mediators:
        for d in decisions[med].to_dict():
            if d["path"] in ("c_prime", "c") and med != mediators[0]:
                continue   # the same outcome equation for every mediator
            decision_records.append({**keys, "mediator": med if d["path"] in ("a", "b", "indirect") else None, **d})
    decision_records.append({**keys, "mediator": "total", **total_decision.to_dict()})
    c = paths["c"]
    direct = {**keys, "x": head["x"], "y": out_name, **{k: c[k] for k in ("coef", "se", "t", "p", "ci_low", "ci_high")},
              "n": body["n"], "alpha": alpha["c"], "significant": significant["c"],
              "model": "outcome on fidelity exposure + covariates (PROCESS total-effect model)"}
    direct.pop("mediator_month")
    return record, decision_records, direct


# ================================================================================== frames

@dataclass(frozen=True, eq=False)
class PreparedFrames:
    """The analysis frames of a run: the observed one and the ``m`` completed ones (or the observed alone)."""

    observed: pd.DataFrame
    frames: tuple[pd.DataFrame, ...]
    imputation: dict[str, Any] | None
    missing: dict[str, Any] | None
    #: the client-level analysis variables the imputation used as auxiliaries (one row per client)
    auxiliary: pd.DataFrame | None = None


#: completed interview cells held at once by one imputation task (8 bytes each): chains beyond it
#: are imputed in further batches -- the same data sets, since each chain has its own stream.  At
#: 20,000 clients (8.9 million cells a table) a batch is one chain: the same time as three chains
#: at once (the chains of that size run one at a time anyway), ~150 MB less per worker.
_COMPLETED_CELLS = 10_000_000


def _imputation_task(task: parallel.Task, context: Mapping[str, Any]) -> tuple[list[pd.DataFrame], Any, dict]:
    """One group of imputation chains: impute, re-score, one analysis frame per chain.

    Chain k draws only from its own keyed stream, so every grouping of the chains over tasks
    gives the same frames; the completed interview tables stay on the worker (only the frames,
    the convergence trace and the diagnostics travel back).
    """
    from .completed import completed_frames
    from .heap import release_freed_memory
    from .stats.impute import ConvergenceTrace, impute_interviews

    study = context["study"]
    # the completed interview tables are the memory peak of a large study (20,000 clients: ~70 MB
    # a table, ~40 MB a chain): chains are imputed a few at a time, each batch turned into its frames at once
    cells = max(1, study.interviews.shape[0] * study.interviews.shape[1])
    per_batch = max(1, _COMPLETED_CELLS // cells)
    chains = list(task.payload)
    batches = [chains[i:i + per_batch] for i in range(0, len(chains), per_batch)]
    frames, traces, info = [], [], None
    for batch in batches:
        imputed = impute_interviews(study.interviews, study.clients, study.config, m=context["m"],
                                    seed=context["seed"], iterations=study.config.analysis.imputation_iterations,
                                    auxiliary=context["auxiliary"], chains=batch)
        frames += completed_frames(study, imputed, context["exposure"])
        traces.append(imputed.convergence)
        if info is None:
            info = {k: v for k, v in imputed.to_dict().items() if k != "convergence"}
        del imputed
        # the chains' and the re-scored tables' memory is not reused by the next batch's shapes
        # nor by the models: handed back, so a large study's workers do not hold it (20,000
        # clients: ~300 MB a worker)
        release_freed_memory()
    convergence = traces[0] if len(traces) == 1 else ConvergenceTrace.combine(traces, batches)
    return frames, convergence, info


def prepare_frames(study, *, seed: int | None = None, exposure: pd.DataFrame | None = None,
                   observed_scores: pd.DataFrame | None = None, observed: pd.DataFrame | None = None,
                   impute: bool | None = None, m: int | None = None, executor: parallel.Executor | None = None,
                   progress: Callable[[int, int, tuple], None] | None = None,
                   on_frames: Callable[[int, Sequence[pd.DataFrame]], None] | None = None) -> PreparedFrames:
    """Analysis frames of a study: item-level MI of the interviews, re-scored, one frame per imputation.

    Each completed interview table is re-scored with the study's scoring rules and turned into
    the per-client analysis frame (:func:`fidelitymed.frame.analysis_frame`); client-level
    values that were missing (covariates, the fidelity exposure of a missed alliance interview)
    are taken from the imputation's completed auxiliary table. Without imputation the observed
    frame is the only one (each model then drops incomplete rows listwise).

    With an ``executor`` of several workers the m chains are split into one group per worker,
    each group a task (:func:`fidelitymed.stats.impute.chain_groups`); the frames are the same
    for any number of groups (tested). Serially all chains run in one vectorized group.

    ``on_frames(first, frames)`` is called in this process as each group's frames arrive (in
    the order the groups finish): ``frames[i]`` is imputation ``first + i``. Without
    imputation it is called once, with the observed frame as imputation 0.
    """
    from .exposure import study_exposure
    from .frame import analysis_frame, exposure_at
    from .stats.impute import ConvergenceTrace, chain_groups

    config = study.config
    a = config.analysis
    if exposure is None:
        exposure = study_exposure(study, columns=["fidelity_total"])
    if observed_scores is None:
        observed_scores = study.scored_interviews()
    if observed is None:
        observed = analysis_frame(study, observed_scores, exposure=exposure, domains=False)
    impute = bool(a.impute) if impute is None else bool(impute)
    m = int(a.imputations if m is None else m)
    if not impute:
        if on_frames is not None:
            on_frames(0, (observed,))
        return PreparedFrames(observed, (observed,), None, None)

    mediator_waves = sorted({float(p.mediator) for p in a.waves})
    aux_cols = [exposure_at(w, win) for w in mediator_waves for win in config.exposure.windows]
    auxiliary = observed[["client", "site", *aux_cols]]
    ex = executor if executor is not None else parallel.Executor("serial")
    n_groups = 1 if ex.backend == "serial" else ex.workers
    groups = chain_groups(m, n_groups)
    tasks = parallel.make_tasks({("impute", g[0]): g for g in groups}, seeded=False)
    context = {"study": study, "exposure": exposure, "auxiliary": auxiliary, "m": m,
               "seed": a.seed if seed is None else seed}

    def group_done(index: int, part: tuple[list[pd.DataFrame], Any, dict]) -> None:
        on_frames(groups[index][0], part[0])   # the groups are contiguous runs of chains

    parts = ex.map(_imputation_task, tasks, context=context, progress=progress,
                   on_result=group_done if on_frames is not None else None)
    frames = [f for part_frames, _, _ in parts for f in part_frames]
    convergence = ConvergenceTrace.combine([c for _, c, _ in parts], groups)
    imp_dict = {**parts[0][2], "chains": list(range(m)), "convergence": convergence.to_dict()}
    missing = {"by_scale": imp_dict["missing"]["by_scale"], "overall_share": imp_dict["missing"]["overall_share"],
               "by_item": imp_dict["missing"].get("by_item", [])}
    info = {k: v for k, v in imp_dict.items() if k not in ("missing", "convergence")}
    # the per-iteration chain means are large (variables x iterations x chains): keep R-hat only
    rhat = imp_dict.get("convergence", {}).get("rhat", [])
    finite = [r["rhat"] for r in rhat if isinstance(r.get("rhat"), (int, float)) and math.isfinite(r["rhat"])]
    info["convergence"] = {"rhat": rhat, "max_rhat": max(finite) if finite else None}
    return PreparedFrames(observed, tuple(frames), info, missing, auxiliary)


# ================================================================================== the run

@blas.single_thread()  # every statistic of the run on one BLAS thread: the same digits on any machine
def run_study(path: str | Any, *, out: str | None = None, force: bool = False,
              executor: parallel.Executor | str | Mapping[str, Any] | None = None,
              progress: bool | Callable[[str, int, int], None] | None = None,
              impute: bool | None = None, imputations: int | None = None, n_boot: int | None = None,
              seed: int | None = None, pooling: str | None = None, report: bool = True) -> StudyResults:
    """Run the whole study: every number the paper reports, reproducibly.

    Parameters
    ----------
    path
        Study folder (or its ``study.yaml``), see ``docs/study-format.md``.
    out
        Output folder; written only when given (rules: :class:`fidelitymed.study.writers.OutputFolder`).
        It must not be, contain or lie inside the study folder or the folder of any input file;
        an empty folder is used; an existing one is replaced only with ``force=True`` and only
        if fidelitymed wrote it. It is checked, locked and its parent created before the
        analysis starts.
    force
        Replace an existing ``out`` that fidelitymed wrote (never anything else).
    executor
        A :class:`fidelitymed.parallel.Executor` (kept open), a backend name
        (``"serial"``, ``"processes"``, ``"dask"``), a mapping of Executor arguments, or
        ``None`` for ``analysis.executor`` of ``study.yaml``.
    progress
        ``True`` for rich progress bars (stderr), a callable ``cb(stage, done, total)``, or
        ``None``.
    impute, imputations, n_boot, seed, pooling
        Override the ``analysis:`` settings of ``study.yaml`` (``impute=False`` = listwise).
    report
        Also render the HTML report into ``out`` (when the report module is available).

    Returns
    -------
    StudyResults
    """
    # the output folder's lock and temporary folder live as long as the run; the modules imported
    # before it are left out of its garbage collections
    with heap.objects_frozen(), contextlib.ExitStack() as output_guard:
        return _run_study(path, out=out, force=force, executor=executor, progress=progress, impute=impute,
                          imputations=imputations, n_boot=n_boot, seed=seed, pooling=pooling, report=report,
                          output_guard=output_guard)


def _run_study(path: str | Any, *, out: str | None, force: bool,
               executor: parallel.Executor | str | Mapping[str, Any] | None,
               progress: bool | Callable[[str, int, int], None] | None, impute: bool | None,
               imputations: int | None, n_boot: int | None, seed: int | None, pooling: str | None, report: bool,
               output_guard: contextlib.ExitStack) -> StudyResults:
    import time

    from .exposure import study_exposure
    from .frame import analysis_frame
    from .study.config import load_config
    from .study.schema import load_study

    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now
        interrupt.raise_if_requested()  # a stop whose signal exception was lost ends the run here

    # study.yaml alone, read once: what the output folder must protect and where to run are
    # known before any table is read (load_study validates it again with the data)
    declared = load_config(path)
    target = None
    if out is not None:
        # before any reading or analysis (load_study's feasibility checks already score and compute
        # exposures): refused targets, an unwritable parent or a concurrent run fail at once
        root, inputs = _declared_inputs(path, declared)
        target = output_guard.enter_context(OutputFolder(out, force=force, protected=_input_folders(root, inputs),
                                                         kind=OUTPUT_KIND))
    # the executor starts first: a processes pool's fork server imports the analysis while the
    # study is read and scored here, a Dask cluster that cannot be reached fails before any work
    ex, owned = _executor(executor, declared)
    if owned:
        # kept open past the analysis: the report's figures are drawn on the same workers. The
        # guard closes it when the run ends, on an error too, before the output folder is released.
        output_guard.callback(ex.close)
    ex.start()
    study = load_study(path, impute=impute)   # feasibility checked for the analysis actually run
    output_guard.enter_context(study_labels(study.config))   # declared instruments keep their labels
    config = _override(study.config, impute=impute, imputations=imputations, n_boot=n_boot, seed=seed,
                       pooling=pooling)
    study = dataclasses.replace(study, config=config)
    a = config.analysis
    from .seeding import child_sequence, root_sequence

    root_seed = root_sequence(a.seed)
    seed_value = int(a.seed) if a.seed is not None else int(root_seed.entropy)
    do_impute = bool(a.impute)
    if do_impute and a.imputations < 2:
        raise ConfigError(f"analysis.imputations: multiple imputation needs m >= 2; got {a.imputations} "
                          f"(set analysis.impute: false, or --no-impute, for a listwise analysis)")
    m = a.imputations if do_impute else 1
    scheme = a.pooling if do_impute else None
    lap("load")

    # --- exposure and the observed frame -------------------------------------------------
    exposure = study_exposure(study, columns=["fidelity_total"])
    observed_scores = study.scored_interviews()
    observed = analysis_frame(study, observed_scores, exposure=exposure, domains=False)
    lap("exposure + frame")
    drawn_figures = None
    specs = study_models(config)

    ml = a.multilevel
    keep = sorted({c for s in specs for c in (s.x, *s.mediators, s.y, *s.covariates)} | {"client"}
                  | (set(ml.groups) if ml.enabled else set()))
    # boot_mi takes the indirect-effect interval from its resamples: no bootstrap per imputation
    opts = {"n_boot": 0 if scheme == "boot_mi" else a.n_boot, "conf": a.conf, "ci": a.ci,
            "save_boot": scheme == "stacked"}

    # ``waiting`` holds the maps under way: leaving by an exception cancels what has not started
    with _Progress(progress) as prog, contextlib.ExitStack() as waiting:
        cb = prog.stage(f"imputing (m={m})" if do_impute else "analysis frame",
                        1 if ex.backend == "serial" or not do_impute else min(m, ex.workers))
        models_progress = None   # the stage (and its clock) starts with the first group's models
        mediation_maps: list[tuple[int, parallel.PendingMap]] = []
        kept: dict[int, pd.DataFrame] = {}   # imputation -> its frame's model columns, for every later stage

        def start_models(first: int, group_frames: Sequence[pd.DataFrame]) -> None:
            nonlocal models_progress
            if models_progress is None:
                models_progress = _counted(prog.stage(f"models ({len(specs)} x {m})", m), m)
            kept.update({first + i: f[keep] for i, f in enumerate(group_frames)})
            # one task per data set: its models share the resamples (mediate_many); each data
            # set rides in its task's payload, so a process pool keeps the imputation's workers
            tasks = parallel.make_tasks({("mediation", first + i): (tuple(specs), kept[first + i], opts)
                                         for i in range(len(group_frames))}, seed=root_seed)
            mediation_maps.append((first, waiting.enter_context(
                ex.start_map(_mediation_task, tasks, progress=models_progress))))

        # --- imputation --------------------------------------------------------------
        # on workers a group's models start as soon as its chains are imputed: a worker done with
        # its chains fits models rather than wait for the other's (demo study: 0.1-0.4 s of a core).
        # Serially the models start after the imputation, so its lap times the imputation alone.
        prepare = functools.partial(prepare_frames, study, seed=seed_value, exposure=exposure,
                                    observed_scores=observed_scores, observed=observed, impute=do_impute, m=m,
                                    executor=ex, progress=cb,
                                    on_frames=start_models if ex.backend != "serial" else None)
        if target is not None and report and ex.backend == "processes":
            # the first map waits for the fork server's import of the analysis (~2 s): this process
            # draws a report figure that needs no results meanwhile (the same bytes as later)
            prepared, drawn_figures = _while_drawing(prepare, lambda: _draw_study_figures(study))
            lap("imputation + study figures")   # one stage: the drawing runs inside the imputation's wall time
        else:
            prepared = prepare()
        if not do_impute:
            cb(1, 1, ("frame",))
        imputation_info = prepared.imputation
        missing_info = prepared.missing
        lap("imputation")

        # --- model tasks -------------------------------------------------------------
        # every map that needs no result of another is queued at once: a worker that runs out of
        # model tasks takes an ICC or a multilevel fit instead of waiting for the other worker's
        # last model and for this process to submit the next map (demo study: ~0.1 s of both
        # cores). ``"serial"`` runs each map as it is started, so the laps time each stage there.
        if not mediation_maps:
            start_models(0, prepared.frames)
        lap("mediation models")
        frames = [kept[k] for k in range(len(prepared.frames))]

        # --- ICCs of every dependent variable (observed data) -------------------------
        levels = ["team", "case_manager"]
        icc_tasks = parallel.make_tasks({("icc", name): (observed[["client", *levels, col]], col, levels, name)
                                         for col, name in _dependent_variables(a)}, seeded=False)
        icc_pending = waiting.enter_context(
            ex.start_map(_icc_task, icc_tasks, progress=prog.stage("ICCs", len(icc_tasks))))
        lap("ICCs")

        # --- the same models with nested random intercepts ------------------------------
        # boot_mi's resamples bring a new shared context (a new pool): its fits are started after them
        ml_pending = None
        if ml.enabled and scheme != "boot_mi":
            ml_pending = waiting.enter_context(_start_multilevel(ex, specs, frames, a, m, root_seed, prog))
            lap("multilevel models")   # serially the fits run here; on workers the rest is waited for below
        figures_pending = None
        if drawn_figures is not None:
            # the conceptual model, on a worker after the fits: it fills the worker's wait for
            # this process to pool the results and submit the report's figures
            figures_pending = waiting.enter_context(ex.start_map(_study_figures_task, parallel.make_tasks(
                {("figure", "study"): (config, ("model",))}, seeded=False)))

        fitted = [results for _, pending in sorted(mediation_maps, key=lambda fp: fp[0])
                  for results in pending.results()]
        by_model: dict[ModelColumns, list[Any]] = {spec: [] for spec in specs}
        for results in fitted:  # in imputation order
            for spec, result in zip(specs, results, strict=True):
                by_model[spec].append(result)
        lap("mediation models")
        icc_results = icc_pending.results()
        rule = a.alpha_rule
        icc_source = getattr(rule, "level", "max")
        iccs = {r.y: r for r in icc_results}
        icc_records = []
        for r in icc_results:
            value = r.icc_for_rule(icc_source)
            icc_records.append({**r.to_dict(), "icc_for_rule": value, "icc_source": icc_source,
                                "alpha": rule.adjusted_alpha if value > rule.icc_threshold else rule.alpha})
        lap("ICCs")

        # --- item-level bootstrap-then-impute: one task per resample -------------------
        boot_mi_estimates = None
        if scheme == "boot_mi":
            from .study_boot_mi import run_boot_mi

            boot_mi_estimates = run_boot_mi(
                ex, study, exposure, prepared.auxiliary, specs, resamples=a.boot_mi_resamples,
                imputations=a.boot_mi_imputations, seed=root_seed,
                progress=prog.stage(f"boot-MI ({a.boot_mi_resamples} x {a.boot_mi_imputations})",
                                    a.boot_mi_resamples))
            lap("boot_mi")
            if ml.enabled:
                ml_pending = waiting.enter_context(_start_multilevel(ex, specs, frames, a, m, root_seed, prog))
                lap("multilevel models")

        # the workers fit the multilevel models while this process pools the models above
        imputation_scheme = f"item-level MICE-PMM, m={m}" if do_impute else "listwise"
        mediation_records, decision_records, direct_records = _pool_mediation(
            specs, by_model, config, iccs=iccs, imputation_scheme=imputation_scheme, scheme=scheme,
            boot_mi_estimates=boot_mi_estimates, root_seed=root_seed, seed_value=seed_value)
        lap("pooling + alpha rule")
        hier_records = _hierarchical_records(specs, frames, a)
        lap("hierarchical regressions")
        descriptives, missing_info = _descriptives(study, observed, observed_scores, missing_info)
        lap("descriptives")
        ml_by_model: dict[ModelColumns, list[Any]] = {}
        if ml_pending is not None:
            ml_by_model = {spec: [] for spec in specs}
            for results in ml_pending.results():  # in imputation order
                for spec, result in zip(specs, results, strict=True):
                    ml_by_model[spec].append(result)
            lap("multilevel models")
        multilevel_records = _pool_multilevel(specs, ml_by_model, config, imputation_scheme=imputation_scheme,
                                              root_seed=root_seed, seed_value=seed_value)
        lap("pooling + alpha rule")
        if figures_pending is not None:   # drawn meanwhile
            drawn_figures = {**drawn_figures, **figures_pending.results()[0]}
    if owned and (target is None or not report):
        ex.close()  # no figures to draw: the workers are not needed past the analysis

    # --- manifest ---------------------------------------------------------------------------
    from . import __version__

    inputs = _input_records(study)
    manifest = {
        "study": config.name, "fidelitymed": __version__, "python": platform.python_version(),
        "packages": _versions(), "seed": seed_value, "config_hash": config.hash(),
        "config": _manifest_config(config, study), "inputs": inputs, "executor": ex.describe(),
        "settings": {"impute": do_impute, "imputations": m if do_impute else None, "imputation_scheme":
                     imputation_scheme, "pooling": scheme, "n_boot": a.n_boot, "conf": a.conf, "ci": a.ci,
                     "windows": list(config.exposure.windows), "primary_window": config.exposure.primary_window,
                     "alpha_rule": rule.model_dump(mode="json"), "icc_levels": levels,
                     "multilevel": a.multilevel.model_dump(mode="json"),
                     "icc_data": "observed scores, REML random-intercept models",
                     "direct_effects": "total-effect model c of each mediation model",
                     "task_seeds": "SeedSequence(seed) child keyed by ('mediation', imputation), shared by "
                                   "the models of that imputation (the same resamples, as PROCESS with one seed=); "
                                   "multilevel fits by ('multilevel', outcome, wave, window, imputation)"},
    }
    results = StudyResults(mediation=tuple(mediation_records), multilevel=tuple(multilevel_records),
                           icc=tuple(icc_records),
                           alpha_decisions=tuple(decision_records), hierarchical=tuple(hier_records),
                           direct_effects=tuple(direct_records), descriptives=descriptives, missing=missing_info,
                           imputation=imputation_info, manifest=manifest, timings=timings)
    # --- fidelity domains (analysis.domains, issue 14): one isolated stage ---------------------
    from .stats.domains import study_domain_analysis

    domain_results = study_domain_analysis(study, prepared.frames, seed=child_sequence(root_seed, ("domains",)))
    if domain_results is not None:
        results = dataclasses.replace(results, domains=domain_results.to_dict())
        lap("fidelity domains")
    if target is not None:
        results = _write_outputs(results, target, study=study, report=report, executor=ex, drawn=drawn_figures)
        lap("outputs")
    return dataclasses.replace(results, timings=dict(timings))


def _start_multilevel(ex: parallel.Executor, specs: Sequence[ModelColumns], frames: Sequence[pd.DataFrame], a,
                      m: int, root_seed: np.random.SeedSequence, prog: _Progress) -> parallel.PendingMap:
    """Start the models with nested random intercepts: one task per data set, each model its own seed."""
    ml = a.multilevel
    # with imputations the CIs come from the pooled paths: per data set a token MC
    ml_opts = {"groups": list(ml.groups), "decompose": ml.decompose, "conf": a.conf,
               "n_mc": 100 if m > 1 else ml.n_mc}
    # each model's seed keyed by (outcome, wave, window, imputation)
    model_seeds = parallel.make_tasks({("multilevel", s.outcome, f"{s.outcome_wave:g}", s.window, k): s
                                       for k in range(m) for s in specs}, seed=root_seed)
    ml_tasks = parallel.make_tasks({("multilevel", k): (tuple((t.payload, t.seed) for t in
                                                              model_seeds[k * len(specs):(k + 1) * len(specs)]),
                                                        frames[k], ml_opts) for k in range(m)}, seeded=False)
    return ex.start_map(_multilevel_task, ml_tasks,
                        progress=prog.stage(f"multilevel models ({len(specs)} x {m})", len(ml_tasks)))


def _descriptives(study, observed: pd.DataFrame, observed_scores: pd.DataFrame,
                  missing_info: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Table 1 (clients), Table 2 (the measures by wave) and the missing data by scale, from the observed data."""
    from .descriptives import table1, table2
    from .frame import exposure_at, score_at

    config = study.config
    a = config.analysis
    threshold = a.small_cell_threshold
    clients = observed.copy()
    t1 = table1(clients, continuous=[c for c in ("age", "ace") if c in clients.columns],
                categorical=[c for c in ("gender", "housing", "employment", "education", "long_hospitalization",
                                         "site") if c in clients.columns], threshold=threshold)
    measures: dict[str, dict[float, str]] = {"fidelity": {}}
    for w in sorted({float(p.mediator) for p in a.waves}):
        measures["fidelity"][w] = exposure_at(w, config.exposure.primary_window)
    for inst in (a.mediator, *a.outcomes) if not a.parallel else a.outcomes:
        cols = {float(w): score_at(a.score_column(inst), w) for w in config.waves if inst in config.schedule[w]}
        measures[inst] = {w: c for w, c in cols.items() if c in observed.columns}
    if a.parallel:
        # each parallel mediator by its score column (rprs_core_relationship), placed before the outcomes
        mediator_measures = {}
        for (inst, _), column in zip(a.mediator_scores(), a.mediator_columns(), strict=True):
            cols = {float(w): score_at(column, w) for w in config.waves if inst in config.schedule[w]}
            mediator_measures[column] = {w: c for w, c in cols.items() if c in observed.columns}
        measures = {"fidelity": measures.pop("fidelity"), **mediator_measures, **measures}
    t2 = table2(observed, measures, threshold=threshold)
    t2_records = t2.to_dict()
    for r in t2_records:
        r["month"] = _month(r["month"])
        r["column"] = (f"fidelity_{r['month']:g}m_{config.exposure.primary_window}d" if r["variable"] == "fidelity"
                       else _var(r["variable"], r["month"]))
        if r["comparison"] is not None and r["comparison"].get("vs_month") is not None:
            r["comparison"]["vs_month"] = _month(r["comparison"]["vs_month"])
    descriptives = {"table1": t1.to_dict(), "table2": t2_records,
                    "table2_test": "paired t test of each wave against the variable's first wave, complete pairs, "
                                   "observed scores"}
    if missing_info is None:
        from .descriptives import missing_by_scale

        missing_info = missing_by_scale(observed_scores, study.clients["client"], config)
    return descriptives, missing_info


def _pool_mediation(specs: Sequence[ModelColumns], by_model: Mapping[ModelColumns, list[Any]], config, *,
                    iccs: Mapping[str, Any], imputation_scheme: str, scheme: str | None,
                    boot_mi_estimates: np.ndarray | None, root_seed: np.random.SeedSequence,
                    seed_value: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Mediation, alpha-decision and direct-effect records of every model: pooled over the
    imputations (``scheme``; ``None``: the one listwise fit), judged by the ICC alpha rule."""
    from .seeding import child_sequence
    from .stats.nested import alpha_decisions

    a = config.analysis
    rule = a.alpha_rule
    icc_source = getattr(rule, "level", "max")
    mediation_records, decision_records, direct_records = [], [], []
    for i_spec, spec in enumerate(specs):
        results = by_model[spec]
        if boot_mi_estimates is not None:
            from .study_boot_mi import pool_boot_mi_model

            body = pool_boot_mi_model(results, boot_mi_estimates[:, i_spec], a.conf, seed_value,
                                      interval=a.boot_mi_interval)
        elif scheme is not None:
            body = _pool_model(results, scheme, a.conf,
                               child_sequence(root_seed, ("pool", spec.outcome, f"{spec.outcome_wave:g}", spec.window)),
                               seed_value)
        else:
            body = results[0].to_dict()
            body["imputations"] = None
            body["pooling"] = None
        if a.parallel:
            record, decisions, direct = _parallel_records(spec, body, iccs, config, imputation_scheme)
            mediation_records.append(record)
            decision_records.extend(decisions)
            direct_records.append(direct)
            continue
        med_name, out_name = _var(a.mediator, spec.mediator_wave), _var(spec.outcome, spec.outcome_wave)
        p_values = {p: body["paths"][p]["p"] for p in ("a", "b", "c_prime", "c")}
        dec = alpha_decisions(p_values, (body["indirect"]["ci_low"], body["indirect"]["ci_high"]),
                              mediator=med_name, outcome=out_name, icc_mediator=iccs.get(med_name),
                              icc_outcome=iccs.get(out_name), threshold=rule.icc_threshold, alpha=rule.alpha,
                              adjusted_alpha=rule.adjusted_alpha, icc_source=icc_source, conf=a.conf)
        head = _record_head(spec, config, imputation_scheme, med_name)
        mediation_records.append({**head, **body, "alpha": dec.alpha, "significant": dec.significant})
        for d in dec.to_dict():
            decision_records.append({"outcome": spec.outcome, "outcome_month": _month(spec.outcome_wave),
                                     "mediator_month": _month(spec.mediator_wave), "window_days": spec.window, **d})
        c = body["paths"]["c"]
        direct_records.append({"outcome": spec.outcome, "outcome_month": _month(spec.outcome_wave),
                               "window_days": spec.window, "x": head["x"], "y": out_name,
                               **{k: c[k] for k in ("coef", "se", "t", "p", "ci_low", "ci_high")},
                               "n": body["n"], "alpha": dec.alpha["c"], "significant": dec.significant["c"],
                               "model": "outcome on fidelity exposure + covariates (PROCESS total-effect model)"})
    return mediation_records, decision_records, direct_records


def _pool_multilevel(specs: Sequence[ModelColumns], ml_by_model: Mapping[ModelColumns, list[Any]], config, *,
                     imputation_scheme: str, root_seed: np.random.SeedSequence,
                     seed_value: int) -> list[dict[str, Any]]:
    """The multilevel record of every model that has fits, pooled over the imputations (Rubin 1987)."""
    from .seeding import child_sequence

    a = config.analysis
    records = []
    for spec in specs:
        fits = ml_by_model.get(spec)
        if not fits:
            continue
        if len(fits) > 1:
            from .stats.multilevel.pooled import pool_multilevel

            body = pool_multilevel(fits, conf=a.conf, n_mc=a.multilevel.n_mc, report_seed=seed_value,
                                   seed=child_sequence(root_seed, ("pool-multilevel", spec.outcome,
                                                                   f"{spec.outcome_wave:g}", spec.window)))
        else:
            body = {**fits[0].to_dict(), "imputations": None, "pooling": None}
            body.pop("coefficients", None)
        head = _record_head(spec, config, imputation_scheme, _var(a.mediator, spec.mediator_wave))
        records.append({**head, **body, "imputation_scheme": imputation_scheme})
    return records


def _hierarchical_records(specs: Sequence[ModelColumns], frames: Sequence[pd.DataFrame], a) -> list[dict[str, Any]]:
    """The reciprocal hierarchical regressions: the later alliance on the covariates, then the
    earlier outcome (one per outcome and pair of waves), pooled over the imputations."""
    from .frame import score_at
    from .stats.regression import hierarchical_regression, pool_hierarchical

    hier_records = []
    pairs = list(a.waves)
    # parallel mediators: no single alliance score to regress on the earlier outcome (docs/study-analysis.md)
    for i in range(1, len(pairs) if not a.parallel else 1):
        prev, cur = pairs[i - 1], pairs[i]
        if not prev.outcome < cur.mediator:
            continue
        y_col = score_at(a.score_column(a.mediator), cur.mediator)
        for outcome in a.outcomes:
            spec0 = next(s for s in specs if s.outcome == outcome and s.outcome_wave == float(prev.outcome))
            block2 = score_at(a.score_column(outcome), prev.outcome)
            blocks = [list(spec0.covariates), [block2]] if spec0.covariates else [[block2]]   # no covariates: one block
            fits = [hierarchical_regression(f_full, y_col, blocks,
                                            categorical=list(spec0.categorical), conf=a.conf)
                    for f_full in frames]
            res = pool_hierarchical(fits) if len(fits) > 1 else fits[0]
            d = res.to_dict()
            d["y"] = _var(a.mediator, cur.mediator)
            for blk in d["blocks"]:
                blk["predictors"] = [_schema_covariate(c, spec0, a) if c != block2 else _var(outcome, prev.outcome)
                                     for c in blk["predictors"]]
            d.pop("coefficients", None)
            coef = res.coefficients.loc[block2]
            hier_records.append({"outcome": outcome, "outcome_month": _month(prev.outcome),
                                 "mediator_month": _month(cur.mediator), **d,
                                 "added": {"variable": _var(outcome, prev.outcome),
                                           **{k: float(coef[k]) for k in ("coef", "se", "t", "p", "ci_low", "ci_high")}}})
    return hier_records


def _dependent_variables(a) -> list[tuple[str, str]]:
    """(frame column, schema name) of every dependent variable: the mediator and outcome at each wave pair."""
    from .frame import score_at

    dvs: list[tuple[str, str]] = []
    for pair in a.waves:
        if a.parallel:
            dvs.extend((score_at(c, pair.mediator), score_at(c, pair.mediator)) for c in a.mediator_columns())
        else:
            dvs.append((score_at(a.score_column(a.mediator), pair.mediator), _var(a.mediator, pair.mediator)))
        for outcome in a.outcomes:
            dvs.append((score_at(a.score_column(outcome), pair.outcome), _var(outcome, pair.outcome)))
    return list(dict.fromkeys(dvs))


def _schema_covariate(column: str, spec: ModelColumns, analysis) -> str:
    """Covariate name for reports: the outcome's baseline score column becomes ``<outcome>_<wave>m``."""
    base_col = f"{analysis.score_column(spec.outcome)}_{float(analysis.baseline_wave):g}m"
    return _var(spec.outcome, analysis.baseline_wave) if column == base_col else column


# ================================================================================== outputs

def _tidy_tables(results: StudyResults) -> dict[str, pd.DataFrame]:
    d = results.to_dict()
    hier_rows = []
    for r in d["hierarchical"]:
        for blk in r["blocks"]:
            hier_rows.append({"outcome": r["outcome"], "y": r["y"], "n": r["n"],
                              **{k: (", ".join(v) if isinstance(v, list) else v) for k, v in blk.items()
                                 if k != "terms"}})
    icc_rows = []
    for r in d["icc"]:
        for level, v in r["levels"].items():
            icc_rows.append({"y": r["y"], "n": r["n"], "level": level, **v, "residual_variance": r["residual_variance"],
                             "icc_for_rule": r["icc_for_rule"], "alpha": r["alpha"]})
    t2 = []
    for r in d["descriptives"]["table2"]:
        row = {k: v for k, v in r.items() if k != "comparison"}
        for k, v in (r.get("comparison") or {}).items():
            row[f"comparison_{k}"] = v
        t2.append(row)
    return {
        "mediation": results.to_frame(),
        "alpha_decisions": pd.DataFrame(d["alpha_decisions"]),
        "direct_effects": pd.DataFrame(d["direct_effects"]),
        "icc": pd.DataFrame(icc_rows),
        "hierarchical": pd.DataFrame(hier_rows),
        "table1": pd.DataFrame(d["descriptives"]["table1"]),
        "table2": pd.DataFrame(t2),
        "missing": pd.DataFrame(d["missing"]["by_scale"]),
    }


def _declared_inputs(path: str | os.PathLike, config) -> tuple[Path, list[Path]]:
    """The study folder and the input files ``config`` (its ``study.yaml``) names (no table is read)."""
    from .study.schema import input_paths

    path = Path(path)
    root = path if path.is_dir() else path.parent
    return root, list(input_paths(root, config).values())


def _input_folders(root: str | os.PathLike, inputs: Sequence[str | os.PathLike]) -> list[tuple[str, Path]]:
    """(label, folder) of every folder holding an input: the study folder and each input file's folder."""
    resolved_root = Path(root).resolve()
    folders: list[tuple[str, Path]] = [("the study folder", resolved_root)]
    for p in inputs:
        folder = Path(p).resolve().parent
        if folder != resolved_root:
            folders.append((f"the folder of the input file {_relative_to(p, root)!r}", folder))
    return folders


def _relative_to(p: str | os.PathLike, root: str | os.PathLike) -> str:
    """An input's path relative to the study folder, ``/``-separated (``../shared/clients.csv`` if outside)."""
    return Path(os.path.relpath(os.path.abspath(p), os.path.abspath(root))).as_posix()


def _input_records(study) -> dict[str, str | None]:
    """manifest.inputs: each input's path relative to the study folder -> its SHA-256 (no absolute paths)."""
    return {_relative_to(p, study.root): study.hashes.get(name) for name, p in study.files.items()}


def _manifest_config(config, study) -> dict[str, Any]:
    """The config as run, with ``files`` relative to the study folder (an absolute path in study.yaml is not recorded)."""
    data = config.model_dump(mode="json")
    for name in list(data.get("files") or {}):
        if name in study.files:
            data["files"][name] = _relative_to(study.files[name], study.root)
    return data


def _write_outputs(results: StudyResults, target: OutputFolder, *, study, report: bool,
                   executor: parallel.Executor | None = None, drawn: dict[str, Any] | None = None) -> StudyResults:
    """Write results.json, the tidy CSVs, results.xlsx and the report into ``target`` and put it in place.

    The report's figures are drawn on ``executor`` (``None``: in this process), except those in
    ``drawn`` (:func:`_draw_study_figures`).
    """
    from .study.writers import write_json

    tmp = target.tmp

    def write_result_files() -> None:
        write_json(tmp / "results.json", results.to_dict())
        # text cells a spreadsheet would run as formulas (a site called "=HYPERLINK(...)") are neutralised
        tables = {name: neutralise_frame(frame) for name, frame in _tidy_tables(results).items()}
        for name, frame in tables.items():
            frame.to_csv(tmp / f"{name}.csv", index=False, lineterminator="\n")
        with pd.ExcelWriter(tmp / "results.xlsx", engine="openpyxl") as xlsx:
            for name, frame in tables.items():
                frame.to_excel(xlsx, sheet_name=name[:31], index=False)

    if report:
        # written while the workers draw the report's figures (0.3 s of the demo study in which
        # they would otherwise wait for this process)
        report_path = _render_report(results, tmp, study, executor, drawn, meanwhile=write_result_files)
        if report_path is None:
            write_result_files()
    else:
        report_path = None
        write_result_files()
    out = target.commit()
    if report_path is not None:
        report_path = out / report_path.relative_to(tmp)
    return dataclasses.replace(results, out=out, report=report_path)


def _report_assessments(study) -> pd.DataFrame:
    """The team fidelity assessments the report draws: team, date and the fidelity scores."""
    fidelity = study.scored_fidelity()
    return fidelity[[c for c in fidelity.columns if c in ("team", "date") or c.startswith("fidelity_")]]


def _while_drawing(prepare: Callable[[], PreparedFrames], draw: Callable[[], Any]) -> tuple[PreparedFrames, Any]:
    """``prepare()`` on a helper thread while this thread runs ``draw()``; both results.

    The first map of a processes pool blocks its caller until the fork server has imported the
    analysis and forked the workers: on the helper thread that wait no longer holds back the
    drawing, nor the drawing the workers (demo study: the workers start imputing ~0.5 s
    earlier). The helper mostly waits on the workers, so the two hardly share the GIL. Its
    error is raised here; an interrupt of the drawing waits for the map as a map's own
    interrupt waits for its running tasks.
    """
    import threading

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["frames"] = prepare()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            outcome["error"] = exc

    helper = threading.Thread(target=run, name="fidelitymed-imputation", daemon=True)
    helper.start()
    try:
        drawn = draw()
    finally:
        helper.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["frames"], drawn


def _draw_study_figures(study) -> dict[str, Any] | None:
    """The report's fidelity trajectories, which need no results, drawn now (``None`` without the
    report module).

    Only the trajectories (1.6 s of drawing): the fork server is ready ~2.1 s after it starts, about
    when the study is read and they are drawn. With the conceptual model drawn here too the demo
    study took 0.75 s longer on 2 processes, in each of three interleaved rounds (17.6 against
    16.9 s, 16.3 / 15.4, 18.4 / 17.7): the workers waited for it; drawn with the other figures it
    costs them 0.2 s (it is drawn on a worker after the multilevel fits, ``_study_figures_task``).
    """
    return _study_figures(study.config, _report_assessments(study), ("fidelity_trajectories",))


def _study_figures(config, assessments: pd.DataFrame | None, names: Sequence[str]) -> dict[str, Any] | None:
    """:func:`fidelitymed.report.html.draw_study_figures` of ``names`` (``None`` without the report module)."""
    try:
        from .report.html import draw_study_figures
    except ImportError:
        return None
    return draw_study_figures(config, assessments, names=names)


def _render_report(results: StudyResults, folder: Path, study, executor: parallel.Executor | None,
                   drawn: dict[str, Any] | None = None, meanwhile: Callable[[], None] | None = None) -> Path | None:
    """The report in ``folder`` (``None`` without the report module, and ``meanwhile`` not called)."""
    try:
        from .report.html import render_report
    except ImportError:
        return None
    return Path(render_report(results.to_dict(), folder, fidelity_assessments=_report_assessments(study),
                              config=study.config, executor=executor, drawn=drawn, meanwhile=meanwhile))
