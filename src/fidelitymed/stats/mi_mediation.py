"""PROCESS Model 4 on multiply imputed data: impute a flat scored data set, fit, pool.

:func:`mediate_imputed` is what ``fidelitymed.mediate(..., impute=20, pool="stacked")`` and
``fidelitymed mediate DATA --impute 20 --pool stacked`` run: scale-level MICE-PMM of the
analysis variables (:func:`fidelitymed.stats.impute.impute_frame`), PROCESS Model 4 on every
completed data set (:func:`fidelitymed.stats.process.mediate_complete`), Rubin's rules for the paths
and one of three schemes for the indirect effect (:mod:`fidelitymed.stats.pooling`).

Seeds (all keyed children of one root, so any backend gives the same numbers): imputation
chain ``k`` -> ``("impute", k)``; the bootstrap of imputation ``k`` -> ``("boot", k)``;
``rubin_mc`` draws -> ``("rubin_mc",)``; ``boot_mi`` resample indices ->
``("boot_mi", "resample")`` and the imputation chain ``j`` of resample ``r`` ->
``("boot_mi", r * M + j)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..blas import single_thread
from ..errors import ConfigError
from ..seeding import SeedLike, child_sequence, generator, root_sequence
from . import impute as _imp
from .pooling import SCHEMES, PooledMediationResult, pool_mediation
from .process import mediate_complete
from .process.design import mediator_list

__all__ = ["mediate_imputed", "BOOT_MI_RESAMPLES", "BOOT_MI_IMPUTATIONS"]

#: ``boot_mi`` defaults: resamples R and imputations per resample M. Bartlett & Hughes (2020)
#: favour many resamples with few imputations each; R x M = 2,000 imputation chains of a flat
#: data set take about as long as the ``stacked`` bootstrap of 20 imputations x 5,000.
BOOT_MI_RESAMPLES = 1000
BOOT_MI_IMPUTATIONS = 2


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be a whole number >= {low}; got {value!r}")
    return int(value)


@single_thread()  # one BLAS thread: the same digits under any thread count
def mediate_imputed(data: pd.DataFrame, x: str, m: str | Sequence[str], y: str, covariates: Sequence[str] = (),
                    categorical: Sequence[str] = (), impute: int = 20, pool: str | None = None,
                    n_boot: int = 5000, conf: float = 0.95, seed: SeedLike = None, *,
                    auxiliary: Sequence[str] = (), iterations: int = 10, donors: int = _imp.DEFAULT_DONORS,
                    boot_mi_resamples: int | None = None, boot_mi_imputations: int = BOOT_MI_IMPUTATIONS,
                    hc: int | str | None = None, cluster: str | None = None,
                    process_compat: bool = False, contrast: bool | str = False) -> PooledMediationResult:
    """Simple mediation (PROCESS Model 4) with multiple imputation of missing values.

    Parameters
    ----------
    data : DataFrame
        One row per case, scored variables, missing values as NaN.
    x, m, y, covariates, categorical
        As :func:`fidelitymed.stats.mediation.mediate` (``m`` may list parallel mediators; then
        ``pool`` is "stacked" or "rubin_mc").
    impute : int, default 20
        Number of imputations ``m`` (>= 2).
    pool : {"boot_mi", "stacked", "rubin_mc"}, optional
        Indirect-effect scheme (:mod:`fidelitymed.stats.pooling`). Paths are Rubin-pooled in
        every scheme. Default ``"boot_mi"`` with one mediator, as the coverage simulation of
        ``docs/imputation.md`` found (``"stacked"`` and ``"rubin_mc"`` undercovered there),
        ``"stacked"`` with parallel mediators.
    n_boot : int
        ``stacked``: resamples per imputation (``impute x n_boot`` draws in all); ``rubin_mc``:
        Monte Carlo draws; ``boot_mi``: ignored unless ``boot_mi_resamples`` is None, in which
        case ``min(n_boot, 1000)`` resamples are used (each one costs ``boot_mi_imputations``
        imputations).
    conf : float
        Confidence level.
    seed : int, optional
        Root seed; see the module docstring for the keyed children.
    auxiliary : sequence of str
        Further columns of ``data`` used only in the imputation model (never in the analysis).
    iterations, donors
        MICE cycles and PMM donors.
    boot_mi_resamples, boot_mi_imputations
        ``boot_mi`` resamples R and imputations per resample M (defaults 1,000 and 2).
    contrast : bool or "absolute"
        With parallel mediators: pairwise contrasts of the specific indirect effects, pooled as
        the indirect effects are.
    hc, cluster, process_compat
        Passed to :func:`~fidelitymed.stats.mediation.mediate` for every imputation. A
        ``cluster`` column must be complete; it does not enter the imputation model.

    Returns
    -------
    PooledMediationResult
        ``.to_dict()`` = the keys of ``MediationResult.to_dict()`` + ``imputations`` + ``pooling``.

    References
    ----------
    Rubin (1987); Barnard & Rubin (1999); Schomaker & Heumann (2018); Bartlett & Hughes (2020);
    van Buuren (2018). See :mod:`fidelitymed.stats.pooling`.
    """
    if pool is None:
        pool = "boot_mi" if len(mediator_list(m)) == 1 else "stacked"
    if pool not in SCHEMES:
        raise ConfigError(f"pool must be one of {', '.join(SCHEMES)}; got {pool!r}")
    m_imp = _check_int("impute (number of imputations)", impute, 2)
    n_boot = _check_int("n_boot", n_boot, 1 if pool in ("stacked", "rubin_mc") else 0)
    if not isinstance(data, pd.DataFrame):
        raise ConfigError(f"data must be a pandas DataFrame; got {type(data).__name__}")
    covariates = list(covariates)
    categorical = list(categorical)
    mediators = mediator_list(m)
    if len(mediators) > 1 and pool == "boot_mi":
        raise ConfigError("pool='boot_mi' is available for one mediator; use 'stacked' or 'rubin_mc'")
    m = mediators[0] if len(mediators) == 1 else list(mediators)
    auxiliary = [c for c in auxiliary if c not in (x, *mediators, y, *covariates)]
    variables = list(dict.fromkeys([x, *mediators, y, *covariates, *auxiliary]))
    unknown = [c for c in variables + ([cluster] if cluster else []) if c not in data.columns]
    if unknown:
        raise ConfigError(f"unknown column(s) {unknown}; the data have: " + ", ".join(map(str, data.columns[:30])))
    bad_cat = [c for c in categorical if c not in covariates]
    if bad_cat:
        raise ConfigError(f"categorical column(s) {bad_cat} must also be listed among the covariates")
    if cluster is not None and data[cluster].isna().any():
        raise ConfigError(f"the cluster column {cluster!r} has missing values; it must be complete")

    root = root_sequence(seed)
    seed_report = int(seed) if isinstance(seed, (int, np.integer)) else int(root.entropy)
    mi = _imp.impute_frame(data, variables, categorical=categorical, m=m_imp, iterations=iterations, seed=root,
                           donors=donors, key=("impute",))
    save = pool == "stacked"
    per_boot = n_boot if pool == "stacked" else 0
    results = []
    for k, completed in enumerate(mi.datasets):
        results.append(mediate_complete(completed, x, m, y, covariates=covariates, categorical=categorical,
                               n_boot=per_boot, conf=conf, seed=child_sequence(root, ("boot", k)), hc=hc,
                               cluster=cluster, save_boot=save, process_compat=process_compat,
                               contrast=contrast, binary_y=False))
    notes = [f"{m_imp} imputations by MICE with predictive mean matching (d={donors}, {iterations} iterations) "
             f"of {', '.join(c for c in variables if data[c].isna().any()) or 'no incomplete variable'}"]
    if pool == "boot_mi":
        resamples = _check_int("boot_mi_resamples", boot_mi_resamples, 2) if boot_mi_resamples is not None \
            else min(max(n_boot, 2), BOOT_MI_RESAMPLES)
        per = _check_int("boot_mi_imputations", boot_mi_imputations, 1)
        est, failed = _boot_mi(data, variables, x, m, y, covariates, categorical, resamples, per, iterations,
                               donors, root)
        notes.append(f"indirect effects: bootstrap-then-impute (Schomaker & Heumann 2018), {resamples} resamples "
                     f"x {per} imputations each, percentile limits of the per-resample mean estimates")
        return pool_mediation(results, "boot_mi", seed=root, conf=conf, boot_mi_estimates=est,
                              n_boot=resamples, n_boot_failed=failed, notes=notes, report_seed=seed_report)
    return pool_mediation(results, pool, n_boot=n_boot, seed=root, conf=conf, notes=notes,
                          report_seed=seed_report)


def _boot_mi(data, variables, x, m, y, covariates, categorical, resamples, per, iterations, donors, root):
    """Per-resample means (over ``per`` imputations) of ab, ab/SD_y, ab SD_x/SD_y; and failures."""
    base, targets, passives, dummy_cols, _codes = _imp._frame_engine(data, variables, categorical)
    n = base.shape[0]
    idx = generator(root, ("boot_mi", "resample")).integers(0, n, size=(resamples, n))
    rows = np.repeat(idx, per, axis=0)
    ids = list(range(resamples * per))
    values, _ = _imp._run_all(base, targets, passives, root, ids, ("boot_mi",), iterations, donors,
                              _imp.DEFAULT_RIDGE, [], rows=rows)
    col = {c: j for j, c in enumerate(variables)}
    cov_cols: list[int] = []
    for c in covariates:
        cov_cols += dummy_cols[c] if c in dummy_cols else [col[c]]
    est = _batched_indirect(values, col[x], col[m], col[y], cov_cols)
    est = est.reshape(resamples, per, 3)
    ok = np.isfinite(est).all(axis=2).all(axis=1)
    means = est.mean(axis=1)
    means[~ok] = np.nan
    return means, int((~ok).sum())


def _batched_indirect(values: np.ndarray, ix: int, im: int, iy: int, cov_cols: Sequence[int],
                      tol: float = 1e-10) -> np.ndarray:
    """``ab``, ``ab / SD_y``, ``ab SD_x / SD_y`` of every completed data set in ``values`` (K, n, q).

    One batched solve of each equation's normal equations; a singular design (a dummy whose
    level is absent from a resample) gives NaN.
    """
    with single_thread():
        k, n, _ = values.shape
        ones = np.ones((k, n, 1))
        xv = values[:, :, [ix]]
        mv = values[:, :, [im]]
        yv = values[:, :, iy]
        cov = values[:, :, list(cov_cols)]
        xm = np.concatenate([ones, xv, cov], axis=2)
        xo = np.concatenate([ones, xv, mv, cov], axis=2)

        def solve(design, target):
            xtx = np.matmul(np.swapaxes(design, 1, 2), design)
            xty = np.matmul(np.swapaxes(design, 1, 2), target[:, :, None])
            d = np.sqrt(np.einsum("kii->ki", xtx))
            d = np.where(d > 0, d, 1.0)
            scaled = xtx / d[:, :, None] / d[:, None, :]
            good = np.linalg.cond(scaled) < 1.0 / tol
            safe = np.where(good[:, None, None], xtx, np.eye(xtx.shape[1]))
            coef = np.linalg.solve(safe, xty)[:, :, 0]
            coef[~good] = np.nan
            return coef

        a = solve(xm, mv[:, :, 0])[:, 1]
        b = solve(xo, yv)[:, 2]
        sd_x = xv[:, :, 0].std(axis=1, ddof=1)
        sd_y = yv.std(axis=1, ddof=1)
        ab = a * b
        return np.column_stack([ab, ab / sd_y, ab * sd_x / sd_y])
