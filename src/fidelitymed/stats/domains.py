"""Fidelity domains, working alliance and outcomes: one mediation model per domain (issue 14).

The SMCM paper's Discussion asks to "examine the associations among SMCM fidelity domains,
working alliance, and client outcomes". This module does that with the study's own models:

* **One Model 4 per domain x outcome x wave pair** at the primary window: X is the domain's
  exposure (its daily-interpolated score averaged over the window before the alliance
  interview, :func:`fidelitymed.exposure.domain_exposure`), M the alliance, Y the outcome, the
  covariates those of the main analysis (:func:`fidelitymed.stats.mediation.mediate`; Hayes 2022).
  With imputation each model is fitted on every completed data set and pooled
  (:func:`fidelitymed.stats.pooling.pool_mediation`: Rubin's rules for the paths, the study's
  scheme for the indirect effect; ``stacked`` when the study pools by ``boot_mi``).
* **Adjustment across domains** within each outcome x wave family (the domains are the
  multiple tests): ``holm`` (Holm 1979, family-wise error) or ``fdr_bh`` (Benjamini & Hochberg
  1995, false discovery rate). Adjusted are the p-values of the paths a, b, c', c and of the
  indirect effect's joint-significance test ``p_joint = max(p_a, p_b)`` (MacKinnon et al.
  2002). The indirect effect's bootstrap CI is adjusted by its level: Bonferroni
  ``1 - alpha/k`` with ``holm``; the false-coverage-rate level ``1 - R alpha/k`` of Benjamini &
  Yekutieli (2005) with ``fdr_bh``, R = the number of domains whose joint test BH rejects (at
  least 1). The adjusted limits are percentile limits of the same (stacked) draws.
* **Simultaneous X's** (optional): every domain in one model per outcome x wave. PROCESS
  allows one X per model; Hayes (2022, s. 6.1) fits a model with several X's by running it once
  per X with the other X's as covariates -- the coefficients are those of the simultaneous
  model. Domains are usually strongly correlated, so the collinearity diagnostics are
  reported: the variance inflation factor of every domain exposure in the outcome equation
  (1 / (1 - R^2) of the domain on all other predictors) and the condition number of that
  design with its columns scaled to unit length (Belsley, Kuh & Welsch 1980; above 30 signals
  harmful collinearity). With imputation they are averaged over the completed data sets.

Everything runs through :mod:`fidelitymed.parallel` with one seed per model task, so the same
seed gives the same numbers on any backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from .. import parallel
from ..errors import ConfigError

ADJUSTMENTS = ("holm", "fdr_bh")
Adjust = Literal["holm", "fdr_bh"]
PATHS = ("a", "b", "c_prime", "c")


# ----------------------------------------------------------------------------- adjustment
def adjust_p(p_values: Sequence[float] | np.ndarray, method: Adjust = "holm") -> np.ndarray:
    """Adjusted p-values of one family (NaN stays NaN and is not counted).

    ``holm``: step-down ``max_{j<=i} min(1, (k - j + 1) p_(j))`` (Holm 1979);
    ``fdr_bh``: step-up ``min_{j>=i} min(1, k p_(j) / j)`` (Benjamini & Hochberg 1995);
    the same values as ``statsmodels.stats.multitest.multipletests``.
    """
    if method not in ADJUSTMENTS:
        raise ConfigError(f"adjust: expected one of {', '.join(ADJUSTMENTS)}; got {method!r}")
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    k = int(ok.sum())
    if k == 0:
        return out
    order = np.argsort(p[ok], kind="stable")
    ranked = p[ok][order]
    rank = np.arange(1, k + 1)
    if method == "holm":
        adjusted = np.maximum.accumulate((k - rank + 1) * ranked)
    else:
        adjusted = np.minimum.accumulate((k * ranked / rank)[::-1])[::-1]
    back = np.empty(k)
    back[order] = np.minimum(adjusted, 1.0)
    out[ok] = back
    return out


def adjusted_conf(conf: float, k: int, method: Adjust, n_selected: int = 1) -> float:
    """Confidence level of intervals adjusted across ``k`` domains.

    ``holm`` -> Bonferroni ``1 - (1 - conf)/k``; ``fdr_bh`` -> the false-coverage-rate level
    ``1 - R (1 - conf)/k`` of Benjamini & Yekutieli (2005) with ``R = max(n_selected, 1)``.
    """
    alpha = 1.0 - conf
    if k <= 1:
        return conf
    if method == "holm":
        return 1.0 - alpha / k
    return 1.0 - max(int(n_selected), 1) * alpha / k


# ----------------------------------------------------------------------------- collinearity
def _design(frame: pd.DataFrame, columns: Sequence[str], categorical: Sequence[str]) -> pd.DataFrame:
    data = frame[list(columns)].dropna()
    numeric = [c for c in columns if c not in categorical]
    parts = [data[numeric].astype(float)]
    for c in categorical:
        levels = sorted(data[c].astype(str).unique())
        parts.append(pd.DataFrame({f"{c}[T.{lv}]": (data[c].astype(str) == lv).astype(float) for lv in levels[1:]},
                                  index=data.index))
    return pd.concat(parts, axis=1)


def collinearity(frame: pd.DataFrame, predictors: Sequence[str], others: Sequence[str] = (),
                 categorical: Sequence[str] = ()) -> dict[str, Any]:
    """VIFs of ``predictors`` and the condition number of the design ``predictors + others``.

    Parameters
    ----------
    frame
        Data; rows with a missing value in any column are dropped (as the models do).
    predictors
        Columns whose VIF is reported (the domain exposures).
    others
        Further columns of the equation (mediator, covariates); ``categorical`` ones are
        dummy-coded (first sorted level = reference, as :func:`~fidelitymed.stats.mediation.mediate`).

    Returns
    -------
    dict
        ``vif`` {column: 1 / (1 - R^2) on all other columns with an intercept},
        ``condition_number`` (constant + columns, each scaled to unit length; Belsley, Kuh &
        Welsch 1980) and ``n`` (complete rows).
    """
    design = _design(frame, [*predictors, *others], categorical)
    x = design.to_numpy(dtype=float)
    centered = x - x.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(centered, rowvar=False)
        inverse = np.linalg.pinv(np.atleast_2d(corr))
    vif = {c: float(inverse[j, j]) for j, c in enumerate(design.columns) if c in set(predictors)}
    with_const = np.column_stack([np.ones(len(x)), x])
    scaled = with_const / np.linalg.norm(with_const, axis=0)
    singular = np.linalg.svd(scaled, compute_uv=False)
    return {"vif": vif, "condition_number": float(singular[0] / singular[-1]) if singular[-1] > 0 else float("inf"),
            "n": int(len(x))}


# ----------------------------------------------------------------------------- model specs
@dataclass(frozen=True)
class DomainModel:
    """One domain model: the main analysis' model columns with the domain's exposure as X."""

    domain: str
    #: :class:`fidelitymed.frame.ModelColumns` of the outcome x wave pair, ``x`` = the domain's exposure
    columns: Any
    #: the other domains' exposures, entered as covariates (simultaneous model), else ()
    other_domains: tuple[str, ...] = ()

    @property
    def family(self) -> tuple[str, float, float, bool]:
        """The multiple-testing family: outcome x wave pair (x model kind)."""
        c = self.columns
        return (c.outcome, c.outcome_wave, c.mediator_wave, bool(self.other_domains))


def domain_models(config, domains: Sequence[str], *, window: int | None = None,
                  simultaneous: bool = False) -> list[DomainModel]:
    """One :class:`DomainModel` per domain x outcome x wave pair of ``config.analysis``.

    ``window`` defaults to the primary window. With ``simultaneous`` each model also carries
    the other domains' exposures as covariates (one simultaneous model, fitted once per X).
    """
    from ..frame import exposure_at, model_columns

    a = config.analysis
    window = config.exposure.primary_window if window is None else int(window)
    out = []
    for pair in a.waves:
        for outcome in a.outcomes:
            base = model_columns(config, outcome, pair, window)
            columns = {d: exposure_at(pair.mediator, window, d) for d in domains}
            for domain in domains:
                others = tuple(columns[o] for o in domains if o != domain) if simultaneous else ()
                out.append(DomainModel(domain=domain, columns=dataclasses.replace(base, x=columns[domain]),
                                       other_domains=others))
    return out


def _fit_task(task: parallel.Task, context: Mapping[str, Any]) -> Any:
    from .mediation import mediate

    spec, k, opts = task.payload
    c = spec.columns
    return mediate(context["frames"][k], c.x, c.m, c.y, covariates=[*spec.other_domains, *c.covariates],
                   categorical=list(c.categorical), n_boot=opts["n_boot"], conf=opts["conf"], ci=opts["ci"],
                   seed=task.seed, save_boot=True)


# ----------------------------------------------------------------------------- results
def _jf(v: Any) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


@dataclass(frozen=True, eq=False)
class DomainResults:
    """Domain x outcome x wave mediation models with adjusted inference. Immutable.

    ``models``: one JSON-safe record per model (see :meth:`to_frame` for the columns);
    ``collinearity``: per outcome x wave of the simultaneous model, VIFs and condition number.
    """

    models: tuple[dict[str, Any], ...]
    collinearity: tuple[dict[str, Any], ...]
    adjust: str
    conf: float
    window: int
    domains: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"adjust": self.adjust, "conf": self.conf, "window_days": self.window, "domains": list(self.domains),
                "settings": dict(self.settings), "models": [dict(r) for r in self.models],
                "collinearity": [dict(r) for r in self.collinearity]}

    def to_frame(self) -> pd.DataFrame:
        """One row per model: domain, outcome, waves, kind, paths, indirect effect (raw and
        completely standardized) with unadjusted and adjusted CIs, p-values and their adjustments."""
        rows = []
        for r in self.models:
            row = {k: r[k] for k in ("domain", "outcome", "outcome_month", "mediator_month", "model", "n")}
            for path in PATHS:
                row[f"{path}"] = r["paths"][path]["coef"]
                row[f"p_{path}"] = r["paths"][path]["p"]
                row[f"p_{path}_adj"] = r["paths"][path]["p_adj"]
            for key in ("effect", "ci_low", "ci_high", "ci_low_adj", "ci_high_adj"):
                row[f"ab_{key}" if key != "effect" else "ab"] = r["indirect"][key]
            row["ab_std"] = r["indirect_std"]["effect"]
            row["p_joint"], row["p_joint_adj"] = r["p_joint"], r["p_joint_adj"]
            row["conf_adj"], row["significant_adj"] = r["conf_adj"], r["significant_adj"]
            rows.append(row)
        return pd.DataFrame(rows)

    def heatmap_frame(self, model: str = "separate", value: str = "ab_std") -> pd.DataFrame:
        """Domain x outcome-at-wave matrix of ``value`` (default: standardized indirect effect)."""
        frame = self.to_frame()
        frame = frame[frame["model"] == model]
        if frame.empty:
            return pd.DataFrame()
        frame = frame.assign(column=frame["outcome"] + " " + frame["outcome_month"].map(lambda v: f"{v:g}m"))
        return frame.pivot(index="domain", columns="column", values=value).reindex(list(self.domains))

    def summary(self) -> str:
        frame = self.to_frame()
        lines = [f"Fidelity domains -> alliance -> outcomes ({len(self.domains)} domains, {self.window}-day window; "
                 f"{self.adjust} across domains, adjusted CI level {frame['conf_adj'].min():.4f})" if len(frame)
                 else "Fidelity domains: no models",
                 f"{'model':<14}{'outcome':<10}{'month':>6}  {'domain':<24}{'ab':>9}{'ab_std':>9}{'CI_adj':>22}"
                 f"{'p_joint':>9}{'p_adj':>9}"]
        for _, r in frame.iterrows():
            ci = f"[{r['ab_ci_low_adj']:.4f}, {r['ab_ci_high_adj']:.4f}]"
            lines.append(f"{r['model']:<14}{r['outcome']:<10}{r['outcome_month']:>6g}  {r['domain']:<24}"
                         f"{r['ab']:9.4f}{r['ab_std']:9.4f}{ci:>22}{r['p_joint']:9.4f}{r['p_joint_adj']:9.4f}"
                         f"{' *' if r['significant_adj'] else ''}")
        for c in self.collinearity:
            vifs = ", ".join(f"{d} {v:.2f}" for d, v in c["vif"].items())
            lines.append(f"collinearity {c['outcome']} {c['outcome_month']:g}m: condition number "
                         f"{c['condition_number']:.1f}; VIF {vifs}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return self.to_frame().to_html(index=False, float_format=lambda v: f"{v:.4f}")


def _pooled(results: Sequence[Any], scheme: str | None, conf: float, seed: np.random.SeedSequence,
            report_seed: Any) -> dict[str, Any]:
    if len(results) == 1:
        return results[0].to_dict()
    from .pooling import pool_mediation

    return pool_mediation(results, pool=scheme or "stacked", conf=conf, seed=seed, report_seed=report_seed).to_dict()


def _adjusted_ci(results: Sequence[Any], scheme: str | None, conf: float, seed: np.random.SeedSequence,
                 report_seed: Any) -> tuple[float | None, float | None]:
    if len(results) > 1:
        d = _pooled(results, scheme, conf, seed, report_seed)["indirect"]
        return d["ci_low"], d["ci_high"]
    from .bootstrap import percentile_interval

    draws = results[0].boot_draws["ab"].to_numpy(dtype=float)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return None, None
    low, high = percentile_interval(draws, conf)
    return _jf(float(np.asarray(low).ravel()[0])), _jf(float(np.asarray(high).ravel()[0]))


def domain_analysis(frames: Sequence[pd.DataFrame], config, domains: Sequence[str], *, adjust: Adjust = "holm",
                    simultaneous: bool = False, window: int | None = None, seed: Any = None,
                    executor: parallel.Executor | None = None, progress=None) -> DomainResults:
    """Fit, pool and adjust every domain model (module docstring).

    Parameters
    ----------
    frames
        The analysis frames (one per imputation, or the observed frame alone) with the domain
        exposure columns ``fidelity_<domain>_<wave>m_<N>d`` (:func:`fidelitymed.frame.analysis_frame`).
    config
        :class:`fidelitymed.study.config.StudyConfig`: outcomes, wave pairs, covariates,
        ``n_boot``, ``conf``, ``ci``, ``pooling``.
    domains
        Domain names (e.g. the fidelity declaration's included domains).
    adjust
        ``holm`` or ``fdr_bh``.
    simultaneous
        Also fit all domains together (one model per outcome x wave) with collinearity diagnostics.
    window
        Exposure window in days (default: the primary window).
    seed
        Analysis seed (int or SeedSequence); each model task derives its own stream from it.
    executor
        A :class:`fidelitymed.parallel.Executor` (default: serial).

    Returns
    -------
    DomainResults
    """
    from ..seeding import child_sequence, root_sequence

    if adjust not in ADJUSTMENTS:
        raise ConfigError(f"analysis.domains.adjust: expected one of {', '.join(ADJUSTMENTS)}; got {adjust!r}")
    domains = list(domains)
    if not domains:
        raise ConfigError("analysis.domains: the fidelity scale has no domain to analyse")
    a = config.analysis
    frames = list(frames)
    m = len(frames)
    # the adjusted CIs are percentile limits of stacked draws, so a study pooled by boot_mi pools
    # its domain models stacked (Boot-MI of every domain model would re-impute per resample again)
    scheme = ("stacked" if a.pooling == "boot_mi" else a.pooling) if m > 1 else None
    specs = domain_models(config, domains, window=window)
    if simultaneous and len(domains) > 1:
        specs += domain_models(config, domains, window=window, simultaneous=True)
    missing = sorted({c for s in specs for c in (s.columns.x, s.columns.m, s.columns.y)
                      if c not in frames[0].columns})
    if missing:
        raise ConfigError(f"analysis.domains: the analysis frame lacks {missing} (domain exposures are built from "
                          "the fidelity scale's domains)")
    root = root_sequence(seed)
    report_seed = int(seed) if isinstance(seed, (int, np.integer)) else None
    opts = {"n_boot": a.n_boot, "conf": a.conf, "ci": a.ci}
    payloads = {("domains", "sim" if s.other_domains else "sep", s.domain, s.columns.outcome,
                 f"{s.columns.outcome_wave:g}", k): (s, k, opts) for s in specs for k in range(m)}
    tasks = parallel.make_tasks(payloads, seed=root)
    own = executor is None
    ex = parallel.Executor("serial") if own else executor
    try:
        fitted = ex.map(_fit_task, tasks, context={"frames": frames}, progress=progress)
    finally:
        if own:
            ex.close()
    by_spec: dict[DomainModel, list[Any]] = {}
    for task, result in zip(tasks, fitted, strict=True):
        by_spec.setdefault(task.payload[0], []).append(result)

    alpha = 1.0 - a.conf
    records: list[dict[str, Any]] = []
    families: dict[tuple, list[int]] = {}
    for spec in specs:
        kind = "simultaneous" if spec.other_domains else "separate"
        c = spec.columns
        pool_seed = child_sequence(root, ("domains-pool", kind, spec.domain, c.outcome, f"{c.outcome_wave:g}"))
        body = _pooled(by_spec[spec], scheme, a.conf, pool_seed, report_seed)
        p_joint = max(body["paths"]["a"]["p"], body["paths"]["b"]["p"]) \
            if None not in (body["paths"]["a"]["p"], body["paths"]["b"]["p"]) else None
        records.append({"domain": spec.domain, "outcome": c.outcome, "outcome_month": float(c.outcome_wave),
                        "mediator_month": float(c.mediator_wave), "window_days": c.window, "model": kind,
                        "x": c.x, "m": c.m, "y": c.y,
                        "covariates": [*spec.other_domains, *c.covariates], "n": body["n"],
                        "paths": body["paths"], "indirect": dict(body["indirect"]),
                        "indirect_std": dict(body["indirect_std"]), "p_joint": p_joint,
                        "imputations": m if m > 1 else None, "pooling": scheme})
        families.setdefault(spec.family, []).append(len(records) - 1)
        records[-1]["_spec"] = spec
        records[-1]["_seed"] = pool_seed

    for members in families.values():
        k = len(members)
        for path in PATHS:
            adj = adjust_p([np.nan if records[i]["paths"][path]["p"] is None else records[i]["paths"][path]["p"]
                            for i in members], adjust)
            for i, v in zip(members, adj):
                records[i]["paths"][path] = {**records[i]["paths"][path], "p_adj": _jf(v)}
        joint = adjust_p([np.nan if records[i]["p_joint"] is None else records[i]["p_joint"] for i in members], adjust)
        selected = int(np.nansum(joint <= alpha)) if adjust == "fdr_bh" else 1
        level = adjusted_conf(a.conf, k, adjust, selected)
        for i, v in zip(members, joint):
            r = records[i]
            low, high = _adjusted_ci(by_spec[r["_spec"]], scheme, level, r["_seed"], report_seed)
            r["indirect"].update(ci_low_adj=low, ci_high_adj=high)
            r["p_joint_adj"] = _jf(v)
            r["conf_adj"] = level
            r["significant_adj"] = bool(v is not None and np.isfinite(v) and v < alpha)
            r["ci_excludes_zero_adj"] = bool(low is not None and high is not None and (low > 0 or high < 0))

    diagnostics = []
    if simultaneous and len(domains) > 1:
        seen = set()
        for r in records:
            spec = r["_spec"]
            c = spec.columns
            if not spec.other_domains or spec.family in seen:
                continue
            seen.add(spec.family)
            predictors = [c.x, *spec.other_domains]
            per = [collinearity(f, predictors, [c.m, *c.covariates], c.categorical) for f in frames]
            xs = dict(zip(predictors, [spec.domain, *[o for o in domains if o != spec.domain]]))
            diagnostics.append({"outcome": c.outcome, "outcome_month": float(c.outcome_wave),
                                "mediator_month": float(c.mediator_wave), "n": per[0]["n"],
                                "vif": {xs[x]: float(np.mean([p["vif"][x] for p in per])) for x in predictors},
                                "condition_number": float(np.mean([p["condition_number"] for p in per])),
                                "averaged_over": m})
    for r in records:
        del r["_spec"], r["_seed"]
    return DomainResults(models=tuple(records), collinearity=tuple(diagnostics), adjust=adjust, conf=float(a.conf),
                         window=specs[0].columns.window, domains=tuple(domains),
                         settings={"simultaneous": bool(simultaneous), "n_boot": a.n_boot, "ci": a.ci,
                                   "pooling": scheme, "imputations": m if m > 1 else None})


# ----------------------------------------------------------------------------- the study stage
def attach_domain_exposure(study, frames: Sequence[pd.DataFrame], domains: Sequence[str],
                           window: int | None = None) -> list[pd.DataFrame]:
    """The analysis frames with each domain's exposure at every mediator wave (one window).

    Domain exposures are team-level and do not depend on imputation: computed once
    (:func:`fidelitymed.exposure.domain_exposure` through ``study_exposure``) and joined to
    every frame by client. A client without the alliance interview has no dated exposure, so
    the domain models drop that client (the total-fidelity models use the imputed exposure).
    """
    from ..exposure import domain_columns, exposure_name, study_exposure
    from ..frame import exposure_at

    cfg = study.config
    window = cfg.exposure.primary_window if window is None else int(window)
    exposure = study_exposure(study, columns=domain_columns(domains))
    pieces = []
    for wave in sorted({float(p.mediator) for p in cfg.analysis.waves}):
        at = exposure[exposure["wave"].astype(float) == wave].drop_duplicates("client").set_index("client")
        for d in domains:
            pieces.append(at[exposure_name(f"fidelity_{d}", window)].rename(exposure_at(wave, window, d)))
    table = pd.concat(pieces, axis=1) if pieces else pd.DataFrame()
    out = []
    for frame in frames:
        keep = frame.drop(columns=[c for c in table.columns if c in frame.columns])
        out.append(keep.join(table, on="client"))
    return out


def study_domain_analysis(study, frames: Sequence[pd.DataFrame], *, seed: Any = None,
                          executor: parallel.Executor | None = None) -> DomainResults | None:
    """The pipeline's domain stage: ``analysis.domains`` of ``study.yaml`` (None when not enabled).

    ``frames`` are the run's analysis frames (one per imputation, or the observed frame);
    the domains default to the fidelity scale's included domains; each model task draws from
    ``seed`` (the run passes its ``("domains",)`` child stream). Without an ``executor`` one
    is opened from ``analysis.executor`` and closed afterwards.
    """
    from ..instruments.declaration import builtin_declaration

    cfg = study.config
    settings = cfg.analysis.domains
    if not settings.enabled:
        return None
    scale = builtin_declaration("fidelity", cfg.scoring.fidelity)
    domains = list(settings.domains or scale.included_domains)  # type: ignore[union-attr]
    frames = attach_domain_exposure(study, frames, domains)
    own = executor is None
    if own:
        ex_cfg = cfg.analysis.executor
        executor = parallel.Executor(ex_cfg.backend, workers=ex_cfg.workers, scheduler=ex_cfg.scheduler)
    try:
        return domain_analysis(frames, cfg, domains, adjust=settings.adjust, simultaneous=settings.simultaneous,
                               seed=seed, executor=executor)
    finally:
        if own:
            executor.close()
