"""PROCESS Model 4 on complete data: fit the equations, resample (or simulate), collect a :class:`MediationResult`.

The family is chosen by the outcome: a continuous Y runs every equation by OLS
(:mod:`.linear`); a dichotomous Y runs the outcome and total equations by logistic regression
(:mod:`.logistic`), as PROCESS does.  Intervals of the indirect effects come from one vectorized
bootstrap of all equations (:mod:`fidelitymed.stats.bootstrap`) or from Monte Carlo draws of the
paths (:mod:`.montecarlo`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ...errors import ConfigError, FidelityMedError
from ...seeding import SeedLike, child_sequence, root_sequence
from .. import bootstrap as bs
from . import linear, logistic, montecarlo
from .design import check_options, mediator_list, prepare, seed_report
from .results import MediationResult
from ..distributions import norm_sf

__all__ = ["mediate_complete", "mediate_complete_many"]


def _contrast_kind(contrast, k: int) -> str | None:
    if contrast is None or contrast is False:
        return None
    if contrast is True or contrast == "difference":
        kind = "difference"
    elif contrast == "absolute":
        kind = "absolute"
    else:
        raise ConfigError(f"contrast must be False, True (differences) or 'absolute'; got {contrast!r}")
    if k < 2:
        raise ConfigError("contrast= compares specific indirect effects: it needs at least two mediators")
    return kind


def _interval(draws: np.ndarray, point: np.ndarray, conf: float, ci: str, rule: str, jackknife=None):
    if ci in ("percentile", "monte_carlo"):
        return bs.percentile_interval(draws, conf, rule=rule)
    if ci == "bc":
        return bs.bc_interval(draws, point, conf, rule=rule)
    return bs.bca_interval(draws, point, jackknife, conf, rule=rule)


def _standardized(fit, design_cols: dict[str, np.ndarray], response: np.ndarray) -> dict[str, float]:
    """``coef * SD(predictor) / SD(response)`` of every non-constant coefficient (PROCESS ``stand=1``)."""
    sd_r = float(np.std(response, ddof=1))
    return {name: float(fit.coef[j] * np.std(design_cols[name], ddof=1) / sd_r)
            for j, name in enumerate(fit.names) if name != "constant"}


@dataclass(frozen=True)
class _Model:
    """A checked model between set-up and result: its design, options and bootstrap inputs."""

    x: str
    mediators: tuple[str, ...]
    y: str
    covariates: tuple[str, ...]
    n_boot: int
    conf: float
    ci: str
    cov_type: str
    cluster: str | None
    n_mc: int
    contrast: str | None
    design: Any
    seed: SeedLike
    seq: np.random.SeedSequence
    sd_x: float
    sd_y: float
    run_boot: bool
    Z: np.ndarray | None = None
    layout: Any = None
    scale: np.ndarray | None = None
    centre: np.ndarray | None = None
    spread: np.ndarray | None = None
    statistic: Any = None  # the linear statistic (None for a dichotomous Y: it needs the fits)

    @property
    def k(self) -> int:
        return len(self.mediators)

    @property
    def binary(self) -> bool:
        return self.design.y_levels is not None


def _set_up(data, x, m, y, covariates, categorical, n_boot, conf, seed, hc, cluster, ci, contrast,
            covariates_in, covariate_map, n_mc, boot_coefficients, binary_y,
            seq: np.random.SeedSequence | None = None) -> _Model:
    """Check the options and the data of one model and build its bootstrap inputs (no fits yet)."""
    mediators = mediator_list(m)
    k = len(mediators)
    n_boot, conf, cov_type, n_mc = check_options(n_boot, conf, ci, hc, cluster, n_mc)
    contrast = _contrast_kind(contrast, k)
    covariates = tuple(covariates)
    design = prepare(data, x, mediators, y, covariates, categorical, cluster, covariates_in, covariate_map, binary_y)
    binary = design.y_levels is not None
    if binary and ci == "bca":
        raise ConfigError("ci='bca' is not available with a dichotomous Y (its jackknife would refit n logistic "
                          "models); use ci='percentile', 'bc' or 'monte_carlo'")
    n = design.n
    n_params = 2 + k + int(design.in_outcome.sum())
    if n <= n_params:
        raise FidelityMedError(f"{n} complete rows but the outcome model has {n_params} parameters; "
                               "need more rows than parameters")
    sd_x = float(np.std(design.x, ddof=1))
    sd_y = float(np.std(design.y, ddof=1))
    seq = root_sequence(seed) if seq is None else seq
    run_boot = n_boot > 0 and (ci != "monte_carlo" or boot_coefficients)
    base = dict(x=x, mediators=mediators, y=y, covariates=covariates, n_boot=n_boot, conf=conf, ci=ci,
                cov_type=cov_type, cluster=cluster, n_mc=n_mc, contrast=contrast, design=design, seed=seed,
                seq=seq, sd_x=sd_x, sd_y=sd_y, run_boot=run_boot)
    if not run_boot:
        return _Model(**base)
    Z, centre, spread = linear.standardized_frame(design)
    layout = linear.MomentLayout.of(design)
    scale = spread.copy()
    # the full-sample SDs exactly as the point estimates compute them
    scale[layout.ix - 1] = sd_x
    for j in range(k):
        scale[layout.im[j] - 1] = float(np.std(design.M[:, j], ddof=1))
    scale[layout.iy - 1] = sd_y
    statistic = None
    if not binary:
        statistic = linear.make_statistic(scale, layout, contrast, (centre, spread) if boot_coefficients else None)
    return _Model(**base, Z=Z, layout=layout, scale=scale, centre=centre, spread=spread, statistic=statistic)


def mediate_complete(
    data: pd.DataFrame,
    x: str,
    m: str | Sequence[str],
    y: str,
    covariates: Sequence[str] = (),
    categorical: Sequence[str] = (),
    n_boot: int = 5000,
    conf: float = 0.95,
    seed: SeedLike = None,
    hc: int | str | None = None,
    cluster: str | None = None,
    ci: str = "percentile",
    save_boot: bool = False,
    normal: bool = False,
    process_compat: bool = False,
    *,
    contrast: bool | str = False,
    covariates_in: str = "all",
    covariate_map: Mapping[str, Sequence[str]] | None = None,
    n_mc: int = 5000,
    boot_coefficients: bool = False,
    standardized: bool = False,
    binary_y: bool | None = None,
) -> MediationResult:
    """PROCESS Model 4 with listwise deletion; the arguments are those of :func:`fidelitymed.mediate`."""
    model = _set_up(data, x, m, y, covariates, categorical, n_boot, conf, seed, hc, cluster, ci, contrast,
                    covariates_in, covariate_map, n_mc, boot_coefficients, binary_y)
    # The linear statistic needs no fit: the resamples run on worker threads (when the cores are
    # free) while the equations are fitted.
    pending = None
    if model.statistic is not None:
        pending = bs.start_bootstrap(model.Z, model.statistic, model.n_boot, model.seq)
    fits = _fit_or_cancel(model, process_compat, [pending])
    run = pending.result() if pending is not None else None
    return _complete(model, fits, run, save_boot, normal, process_compat, boot_coefficients, standardized)


def mediate_complete_many(
    data: pd.DataFrame,
    models: Sequence[Mapping[str, Any]],
    n_boot: int = 5000,
    conf: float = 0.95,
    seed: SeedLike = None,
    hc: int | str | None = None,
    cluster: str | None = None,
    ci: str = "percentile",
    save_boot: bool = False,
    normal: bool = False,
    process_compat: bool = False,
    *,
    covariates_in: str = "all",
    covariate_map: Mapping[str, Sequence[str]] | None = None,
    n_mc: int = 5000,
    boot_coefficients: bool = False,
    standardized: bool = False,
    binary_y: bool | None = None,
) -> tuple[MediationResult, ...]:
    """Several Model 4 analyses of one data set on the same resamples (see :func:`fidelitymed.mediate_many`).

    Each result is the one :func:`mediate_complete` gives for that model with the same ``seed``
    (to rounding in the last bits: its moments come from a wider product).  Models with the same
    complete cases and a continuous Y share one bootstrap over the union of their columns; the
    others run their own bootstrap, still from ``seed``.
    """
    seq = root_sequence(seed)
    prepared = []
    for spec in models:
        if not isinstance(spec, Mapping) or set(spec) - _MODEL_KEYS or not {"x", "m", "y"} <= set(spec):
            raise ConfigError(f"a model is a mapping with keys x, m, y and optionally covariates, categorical, "
                              f"contrast; got {list(spec) if isinstance(spec, Mapping) else repr(spec)}")
        prepared.append(_set_up(data, spec["x"], spec["m"], spec["y"], spec.get("covariates", ()),
                                spec.get("categorical", ()), n_boot, conf, seed, hc, cluster, ci,
                                spec.get("contrast", False), covariates_in, covariate_map, n_mc, boot_coefficients,
                                binary_y, seq=seq))
    # models whose Z rows are the same cases can read one union of columns
    groups: dict[bytes, list[int]] = {}
    for i, model in enumerate(prepared):
        if model.statistic is not None:
            groups.setdefault(model.design.rows.tobytes(), []).append(i)
    started: list[bs.PendingBootstrap] = []
    try:
        for members in groups.values():
            union, columns = _union_columns([prepared[i].Z for i in members])
            started.append(bs.start_shared_bootstrap(
                union, [(cols, prepared[i].statistic) for i, cols in zip(members, columns)], n_boot, seq))
            if ci != "bca":  # only BCa's jackknife reads a model's own Z again: the union replaces them
                for i in members:
                    prepared[i] = dataclasses.replace(prepared[i], Z=None)
            del union
        fits = [_fit_or_cancel(model, process_compat, started) for model in prepared]
        runs: list[bs.BootstrapRun | None] = [None] * len(prepared)
        for members, run in zip(groups.values(), started):
            for i, model_run in zip(members, run.results()):
                runs[i] = model_run
    except BaseException:
        for run in started:
            run.cancel()
        raise
    return tuple(_complete(model, fit, run, save_boot, normal, process_compat, boot_coefficients, standardized)
                 for model, fit, run in zip(prepared, fits, runs))


_MODEL_KEYS = {"x", "m", "y", "covariates", "categorical", "contrast"}


def _union_columns(Zs: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct columns of several ``Z`` of the same rows, and each ``Z``'s positions in them.

    Columns are matched by their bytes, so a shared column is one only if it is bit-for-bit the
    same (the same variable centred and scaled over the same cases).
    """
    position: dict[bytes, int] = {}
    union: list[np.ndarray] = []
    columns = []
    for Z in Zs:
        cols = []
        for j in range(Z.shape[1]):
            key = Z[:, j].tobytes()
            if key not in position:
                position[key] = len(union)
                union.append(Z[:, j])
            cols.append(position[key])
        columns.append(np.array(cols, dtype=np.intp))
    return np.column_stack(union), columns


def _fit_or_cancel(model: _Model, process_compat: bool, pending: Sequence[bs.PendingBootstrap | None]):
    """The equations' fits (and Monte Carlo draws); a failure cancels the bootstraps in progress."""
    try:
        fits = _fit_all(model.design, model.x, model.mediators, model.cov_type, model.cov_type == "CR2", model.conf,
                        process_compat, model.binary)
        mc_draws = None
        if model.ci == "monte_carlo":
            meds, out = fits[0], fits[1]
            mc_draws = montecarlo.draw_columns(model.design, meds, out, model.mediators, model.n_mc,
                                               child_sequence(model.seq, ("monte_carlo",)), model.sd_x, model.sd_y,
                                               model.contrast, not model.binary)
    except BaseException:
        for run in pending:
            if run is not None:  # no thread keeps resampling for a call that failed
                run.cancel()
        raise
    return (*fits, mc_draws)


def _complete(model: _Model, fits, run: bs.BootstrapRun | None, save_boot: bool, normal: bool,
              process_compat: bool, boot_coefficients: bool, standardized: bool) -> MediationResult:
    """The :class:`MediationResult` of a model from its fits and (linear) bootstrap run."""
    design, mediators, k, x, conf, ci = model.design, model.mediators, model.k, model.x, model.conf, model.ci
    binary, contrast, seq, sd_x, sd_y = model.binary, model.contrast, model.seq, model.sd_x, model.sd_y
    cov_type, cluster, n_boot, n_mc, run_boot = model.cov_type, model.cluster, model.n_boot, model.n_mc, model.run_boot
    cr2 = cov_type == "CR2"
    n = design.n
    meds, out, tot, X_out, X_tot, path_df, notes, mc_draws = fits
    cnames = np.array(design.covariate_names, dtype=object)
    names_out = tuple(cnames[design.in_outcome])
    names_med = tuple(cnames[design.in_mediators])

    a = np.array([f.coef[1] for f in meds])
    b = np.array([out.coef[2 + j] for j in range(k)])
    c_prime = float(out.coef[1])
    with_std = not binary
    columns = linear.boot_columns(mediators, contrast, with_std)
    point = linear.indirect_columns(a[:, None], b[:, None], np.array([c_prime]), sd_x, sd_y, contrast,
                                    with_std)[0]

    rule = "process" if process_compat else "linear"
    n_failed = 0
    draws = mc_draws
    coef_draws = None
    coef_cols = linear.coefficient_columns(names_med, names_out, mediators, x)
    Z, statistic = model.Z, model.statistic
    if run_boot:
        if binary:
            statistic = _logistic_statistic(design, model.layout, model.scale, out, tot, X_out, X_tot, contrast,
                                            (model.centre, model.spread) if boot_coefficients else None)
            chunk = max(bs.BLOCK_SIZE, (1 << 21) // n)
            run = bs.run_bootstrap(Z, statistic, n_boot, seq, with_counts=True, chunk_size=chunk)
        n_failed = run.n_failed
        boot_all = run.draws
        if boot_coefficients:
            coef_draws = boot_all[:, len(columns):]
            boot_all = boot_all[:, :len(columns)]
        if ci != "monte_carlo":
            draws = boot_all

    ind_names = [c for c in columns if c.startswith("ab") or c.startswith("contrast:")]
    ind_idx = [columns.index(c) for c in ind_names]
    se_key = "mc_se" if ci == "monte_carlo" else "boot_se"
    est = point[ind_idx]
    if draws is not None and draws.shape[0] > 0:
        sub = draws[:, ind_idx]
        jack = None
        if ci == "bca":
            jack_vals, jack_ok = statistic(*bs.as_packed(np.moveaxis(bs.jackknife_moments(Z), 0, -1)))
            if not jack_ok.all():
                raise FidelityMedError("BCa: a leave-one-out sample is singular (a dummy or binary "
                                       "covariate has a single case); use ci='percentile' or 'bc'")
            jack = jack_vals[:, ind_idx]
        lo, hi = _interval(sub, est, conf, ci, rule, jack)
        se = sub.std(axis=0, ddof=1) if sub.shape[0] > 1 else np.full(len(ind_idx), np.nan)
        if ci in ("bc", "bca"):
            below = (sub < est).mean(axis=0)
            if np.any((below == 0) | (below == 1)):
                notes.append("all bootstrap draws lie on one side of the estimate: BC/BCa CI endpoints "
                             "are not trustworthy")
    else:
        lo = hi = se = np.full(len(ind_idx), np.nan)
    blocks = {name: {"effect": float(est[j]), se_key: float(se[j]), "ci_low": float(lo[j]),
                     "ci_high": float(hi[j])} for j, name in enumerate(ind_names)}

    def family(kind):
        if kind not in blocks:
            return None
        if k == 1:
            return blocks[kind]
        return {"total": blocks[kind], **{mm: blocks[f"{kind}:{mm}"] for mm in mediators}}

    contrasts = None
    if contrast:
        contrasts = {name.split(":", 1)[1]: blocks[name] for name in ind_names if name.startswith("contrast:")}

    boot_coef = None
    if coef_draws is not None:
        boot_coef = _boot_coefficient_table(coef_cols, coef_draws, meds, out, tot, mediators, k, conf, rule)

    std_coefs = None
    if standardized:
        cols = {x: design.x, **{mm: design.M[:, j] for j, mm in enumerate(mediators)},
                **{nm: design.C[:, j] for j, nm in enumerate(design.covariate_names)}}
        std_coefs = {("mediator" if k == 1 else mm): _standardized(f, cols, design.M[:, j])
                     for j, (mm, f) in enumerate(zip(mediators, meds))}
        if not binary:
            std_coefs["outcome"] = _standardized(out, cols, design.y)
            std_coefs["total"] = _standardized(tot, cols, design.y)
        else:
            notes.append("standardized coefficients are not given for the logistic equations of a dichotomous Y")

    normal_test = None
    if normal:
        tests = {}
        for j, mm in enumerate(mediators):
            se_a, se_b = float(meds[j].se[1]), float(out.se[2 + j])
            ab = float(a[j] * b[j])
            se_ab = float(np.sqrt(a[j] ** 2 * se_b ** 2 + b[j] ** 2 * se_a ** 2 + se_a ** 2 * se_b ** 2))
            z = ab / se_ab
            tests[mm] = {"effect": ab, "se": se_ab, "z": float(z), "p": float(2 * norm_sf(abs(z)))}
        normal_test = tests[mediators[0]] if k == 1 else tests

    boot_frame = None
    if save_boot and draws is not None:
        boot_frame = pd.DataFrame(draws, columns=list(columns))
        boot_frame.index.name = "draw" if ci == "monte_carlo" else "resample"

    notes += _notes(design, ci, n_boot, n_failed, run_boot, process_compat, cov_type, cluster, meds, binary,
                    mediators, n_mc)
    return MediationResult(
        x=x, mediators=mediators, y=model.y, covariates=model.covariates, covariate_names=design.covariate_names, n=n,
        n_dropped=design.n_dropped, conf=conf, ci=ci, cov_type=meds[0].cov_type if not cr2 else "CR2",
        cluster=cluster, process_compat=bool(process_compat), mediator_models=tuple(meds), outcome_model=out,
        total_model=tot, indirect=family("ab"), indirect_partially_std=family("ab_ps"),
        indirect_std=family("ab_std"), n_boot=n_boot if run_boot else 0, n_boot_failed=int(n_failed),
        seed=seed_report(model.seed, seq), seed_is_random=model.seed is None, sd_x=sd_x, sd_y=sd_y, normal_test=normal_test,
        boot_draws=boot_frame, notes=tuple(notes), contrasts=contrasts, contrast=contrast,
        n_mc=n_mc if ci == "monte_carlo" else 0, boot_coefficients=boot_coef, standardized_coefficients=std_coefs,
        y_levels=design.y_levels, x_dichotomous=design.x_is_dichotomous,
        total_reported=design.all_in_all and not binary, covariates_mediators=names_med,
        covariates_outcome=names_out, path_df=path_df)




def _fit_all(design, x, mediators, cov_type, cr2, conf, process_compat, binary):
    """The equations' fits: OLS mediators, OLS or logistic outcome and total, CR2 covariances last."""
    n = design.n
    # CR2: classical fits first, their covariances replaced below
    meds, out, tot = linear.fit_equations(design, x, mediators, cov_type="nonrobust" if cr2 else cov_type,
                                          conf=conf, process_compat=process_compat, outcome=not binary)
    X_out = X_tot = None  # the logistic equations' designs, kept for their bootstrap
    if binary:
        cnames = np.array(design.covariate_names, dtype=object)
        names_out = tuple(cnames[design.in_outcome])
        C_out = design.covariates_of("outcome")
        ones = np.ones((n, 1))
        X_out = np.column_stack([ones, design.x, design.M, C_out])
        X_tot = np.column_stack([ones, design.x, C_out])
        out = logistic.fit_logit(design.y, X_out, names=("constant", x, *mediators, *names_out), conf=conf)
        tot = logistic.fit_logit(design.y, X_tot, names=("constant", x, *names_out), conf=conf)
    path_df = None
    notes: list[str] = []
    if cr2:
        from .cr2 import refit_cr2

        meds, out, tot, path_df, cr2_notes = refit_cr2(design, meds, out, tot, mediators, x, conf, binary)
        notes += cr2_notes
    return meds, out, tot, X_out, X_tot, path_df, notes


def _boot_coefficient_table(coef_cols, coef_draws, meds, out, tot, mediators, k, conf, rule):
    lo, hi = bs.percentile_interval(coef_draws, conf, rule=rule)
    mean = coef_draws.mean(axis=0)
    se = coef_draws.std(axis=0, ddof=1) if coef_draws.shape[0] > 1 else np.full(coef_draws.shape[1], np.nan)
    fits = {mm: f for mm, f in zip(mediators, meds)}
    fits.update(outcome=out, total=tot)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for j, (eq, name) in enumerate(coef_cols):
        key = "mediator" if (k == 1 and eq not in ("outcome", "total")) else eq
        fit = fits[eq]
        table.setdefault(key, {})[name] = {"coef": float(fit.coef[fit.names.index(name)]),
                                           "boot_mean": float(mean[j]), "boot_se": float(se[j]),
                                           "boot_ci_low": float(lo[j]), "boot_ci_high": float(hi[j])}
    return table


def _logistic_statistic(design, layout, scale, out, tot, X_out, X_tot, contrast, coefficients):
    """Statistic for a dichotomous Y: OLS ``a`` from the moments, logistic ``b``, ``c'`` from batched NR."""
    fitter = logistic.LogitBootstrap.of(X_out, X_tot, design.y, out, tot)
    k = layout.k
    tol = bs.TOLERANCE

    def statistic(packed, index, counts):
        a, ok, _, med_full = linear.mediator_paths(packed, index, layout, scale, tol,
                                                   coefficients=coefficients is not None)
        coef_out, coef_tot, ok_nr = fitter.fit(counts, total=coefficients is not None)
        ok &= ok_nr
        b = coef_out[:, 2:2 + k].T
        values = linear.indirect_columns(a, b, coef_out[:, 1], None, None, contrast, with_std=False)
        if coefficients is not None:
            centre, spread = coefficients
            extra = []
            for j, beta in enumerate(med_full):
                extra += linear._raw_coefficients(beta, (0, *layout.med_cov, layout.ix), layout.im[j], centre, spread,
                                                  len(layout.med_cov))
            values = np.column_stack([values, *extra, coef_out, coef_tot])
        return values, ok

    return statistic


def _notes(design, ci, n_boot, n_failed, run_boot, process_compat, cov_type, cluster, meds, binary, mediators, n_mc):
    notes = []
    if run_boot:
        if n_failed:
            kind = "singular or (logistic) non-convergent/separated" if binary else "singular"
            notes.append(f"{n_failed} bootstrap resample(s) were {kind} and replaced by new resamples")
        if n_boot < 1000:
            notes.append(f"only {n_boot} bootstrap resamples were requested and used (PROCESS would "
                         "silently use 5000); confidence limits from fewer than 1000 resamples are imprecise")
    if ci == "monte_carlo" and n_mc < 1000:
        notes.append(f"only {n_mc} Monte Carlo draws were requested and used (PROCESS would use 5000)")
    if process_compat:
        notes.append("process_compat: percentile limits are PROCESS's order statistics and coefficient "
                     "CIs use PROCESS's t approximation")
    if cov_type.startswith("HC"):
        notes.append(f"A heteroscedasticity consistent standard error and covariance matrix estimator "
                     f"was used ({cov_type}).")
        if binary:
            notes.append(f"{cov_type} applies to the OLS (mediator) equations; the logistic equations use "
                         "maximum-likelihood standard errors, as PROCESS does")
    if cluster is not None and cov_type != "CR2":
        notes.append(f"Cluster-robust (CR1) standard errors with {meds[0].n_clusters} clusters of "
                     f"{cluster!r}; t and F use {meds[0].n_clusters - 1} denominator df. The bootstrap "
                     "of the indirect effect resamples cases, not clusters.")
    if binary:
        notes.append("Y is dichotomous: the outcome and total equations are logistic regressions and the "
                     "effects of X on Y (c, c' and the indirect effect a*b) are on the log-odds scale; the "
                     "total effect is not the sum of the direct and indirect effects in a logistic model, and "
                     "no standardized effects are given")
    elif not design.all_in_all:
        notes.append("Not every covariate is in every equation, so (as in PROCESS) no total effect model is "
                     "printed; paths['c'] and models['total'] regress Y on X and the outcome equation's "
                     "covariates, and c is then not the sum of the direct and indirect effects")
    if ci == "monte_carlo":
        notes.append("Monte Carlo confidence intervals: draws of the a and b paths from their joint normal "
                     "sampling distribution (Preacher & Selig 2012)"
                     + ("; with the HC covariance" if cov_type.startswith("HC") else ""))
    if design.n_dropped:
        notes.append(f"Some cases were deleted due to missing data. The number of such cases was: "
                     f"{design.n_dropped}")
    return notes
