"""PROCESS Model 4, the public entry: ``mediate()`` dispatches to complete-data or multiply imputed analysis.

The models live in :mod:`fidelitymed.stats.process` (design, OLS and logistic families, Monte
Carlo intervals, :class:`MediationResult`); multiple imputation in
:mod:`fidelitymed.stats.mi_mediation`.  This module sits above both, so neither imports it.

Three OLS equations with one mediator (Hayes 2022, ch. 3-4; PROCESS Model 4; ch. 5 for parallel
mediators, one mediator equation each):

* mediator model  ``M = i_M + a X + covariates``
* outcome model   ``Y = i_Y + c' X + b M + covariates``
* total model     ``Y = i_T + c X + covariates``

The indirect effect ``ab`` has no usable sampling distribution in closed form, so its CI comes from
the nonparametric bootstrap: ``n_boot`` resamples of the cases, with ``a`` and ``b`` re-estimated in
each.  Both equations of every resample, and the resample SDs of X and Y needed for the
standardized indirect effects, come from one moment matrix of ``[1, covariates, X, M, Y]``
(:mod:`fidelitymed.stats.bootstrap`): one matrix product and one batched Cholesky factorisation
for all resamples, no Python loop over resamples.

Differences from PROCESS v4.3.1, each documented and switchable with ``process_compat=True``:
PROCESS takes percentile limits as order statistics (125th and 4,876th of 5,000 draws) and uses an
approximate t quantile for coefficient CIs; by default we interpolate quantiles
(:func:`numpy.quantile`, linear) and use exact t quantiles.  PROCESS silently resets 1..999
resamples to 5,000; we keep the number asked for and add a note.

References
----------
Hayes, A. F. (2022). *Introduction to Mediation, Moderation, and Conditional Process Analysis*
(3rd ed.). Guilford.
Preacher, K. J., & Kelley, K. (2011). Effect size measures for mediation models. *Psychological
Methods, 16*, 93-115 (completely and partially standardized indirect effects).
Aroian, L. A. (1947). The probability function of the product of two normally distributed
variables. *Annals of Mathematical Statistics, 18*, 265-271 (second-order normal-theory SE).
Efron, B., & Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*. Chapman & Hall.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..blas import single_thread
from ..errors import ConfigError
from ..seeding import SeedLike
from . import bootstrap as bs
from .process import BOOT_COLUMNS, MediationResult, NonNumericCellsError, mediate_complete
from .process.model4 import mediate_complete_many
from .process import linear as _linear

__all__ = ["MediationResult", "mediate", "mediate_many", "BOOT_COLUMNS", "NonNumericCellsError"]


def _make_statistic(scale: np.ndarray, tol: float = bs.TOLERANCE):
    """One-mediator statistic on packed moments of standardized ``[1, C, X, M, Y]`` (all covariates everywhere).

    ``scale`` = full-sample SDs of X, M, Y.  Returns ``(values (b, 6), ok)`` with columns
    :data:`BOOT_COLUMNS` (kept for the kernel tests and simulations that build ``Z`` themselves).
    """
    cache: dict[int, object] = {}

    def statistic(packed: np.ndarray, index: np.ndarray):
        p = index.shape[0]
        if p not in cache:
            n_cov = p - 4
            layout = _linear.MomentLayout(n_cov, 1, tuple(range(1, n_cov + 1)), tuple(range(1, n_cov + 1)))
            full = np.concatenate([np.ones(n_cov), np.asarray(scale, dtype=np.float64)])
            cache[p] = _linear.make_statistic(full, layout, tol=tol)
        return cache[p](packed, index)

    return statistic


@single_thread()  # one BLAS thread: the same digits under any thread count
def mediate(
    data: pd.DataFrame,
    x: str,
    m: str,
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
    impute: int | None = None,
    pool: str | None = None,
    *,
    contrast: bool | str = False,
    covariates_in: str = "all",
    covariate_map: Mapping[str, Sequence[str]] | None = None,
    n_mc: int = 5000,
    boot_coefficients: bool = False,
    standardized: bool = False,
    binary_y: bool | None = None,
) -> MediationResult:
    """Simple mediation analysis (PROCESS Model 4) with a bootstrap CI of the indirect effect.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per case.  Rows with a missing value in any used column are dropped (listwise)
        and counted in ``n_dropped``.
    x, y : str
        Columns of the antecedent X and the outcome Y (numeric).  A Y with exactly two distinct
        values is modelled by logistic regression, as PROCESS does (lower value coded 0, higher
        1; see ``binary_y``).
    m : str or sequence of str
        The mediator, or 2-10 mediators in parallel (PROCESS Model 4, ``m=m1 m2 ...``): one
        mediator equation each, all in the outcome equation.
    covariates : sequence of str
        Covariate columns (PROCESS ``cov=``); in every equation unless ``covariates_in`` or
        ``covariate_map`` say otherwise.
    categorical : sequence of str
        Those covariates to dummy-code: first level (sorted) = reference, one dummy per other
        level, named ``col[T.level]`` (e.g. ``site[T.2]``).
    n_boot : int, default 5000
        Bootstrap resamples; 0 = no bootstrap.  Kept as given: values below 1,000 are honoured
        (PROCESS would reset them to 5,000), with a note in the summary.
    conf : float, default 0.95
        Confidence level as a proportion in (0, 1).
    seed : int, numpy.random.SeedSequence or None
        Seed of the resampling.  ``None`` draws fresh entropy, reported as ``seed`` so the run
        can be repeated.  Pass a :class:`~numpy.random.SeedSequence` child to key a task.
    hc : {None, 0, 1, 2, 3, 4, "HC0", ..., "HC4", "CR2"}
        Heteroscedasticity-consistent SEs (PROCESS ``hc=``); the model F is then robust too.
        ``"CR2"`` with ``cluster``: Bell-McCaffrey cluster-robust SEs with Satterthwaite df per
        coefficient (clubSandwich); the paths then carry ``df``.
    cluster : str, optional
        Column of cluster labels for cluster-robust SEs of the paths: CR1 (with ``G - 1`` df),
        or CR2 with ``hc="CR2"``.  The indirect-effect bootstrap still resamples cases.
    ci : {"percentile", "bc", "bca", "monte_carlo"}
        CI of the indirect effects: percentile bootstrap (the paper's method), bias-corrected
        (PROCESS ``bc=1``), bias-corrected and accelerated (jackknife acceleration), or Monte
        Carlo (PROCESS ``mc=``; ``n_mc`` draws of the paths from their joint normal sampling
        distribution, with the HC/cluster covariance when set; :mod:`fidelitymed.stats.process.montecarlo`).
    save_boot : bool, default False
        Keep the draws (:data:`BOOT_COLUMNS`) as ``result.boot_draws``.
    normal : bool, default False
        Add the normal-theory (second-order, Aroian) test of ``ab`` as ``result.normal_test``.
    process_compat : bool, default False
        Reproduce PROCESS's numerics: order-statistic percentile limits (and its BC rule) and its
        approximate t quantile for coefficient CIs.
    impute : int, optional
        Multiple imputation of missing values instead of listwise deletion: the number of
        imputations ``m`` (>= 2), by chained equations with predictive mean matching
        (:func:`fidelitymed.stats.mi_mediation.mediate_imputed`; van Buuren 2018).  Paths are
        pooled by Rubin's rules with Barnard-Rubin df (Rubin 1987; Barnard & Rubin 1999).
    pool : {"boot_mi", "stacked", "rubin_mc"}, optional
        With ``impute``: how the indirect effect's CI is pooled (:mod:`fidelitymed.stats.pooling`).
        Default ``"boot_mi"`` with one mediator (nominal coverage in the simulation of
        ``docs/imputation.md``, where ``"stacked"`` and ``"rubin_mc"`` undercovered),
        ``"stacked"`` with parallel mediators (Boot-MI covers one mediator).
    contrast : bool or "absolute", default False
        With 2+ mediators: pairwise contrasts of the specific indirect effects (PROCESS
        ``contrast=1``), or of their absolute values with ``"absolute"`` (``contrast=2``).
    covariates_in : {"all", "mediators", "outcome"}, default "all"
        Equations the covariates enter (PROCESS ``covmy=0|1|2``).  Unless "all", no total effect
        model is printed (as in PROCESS) and ``c`` regresses Y on X and the outcome covariates.
    covariate_map : mapping, optional
        Per-covariate equations, e.g. ``{"age": ["mediators"], "site": ["mediators", "outcome"]}``
        (PROCESS ``cmatrix``); overrides ``covariates_in`` for the covariates named.
    n_mc : int, default 5000
        Monte Carlo draws with ``ci="monte_carlo"`` (PROCESS ``mc=``).
    boot_coefficients : bool, default False
        Bootstrap every regression coefficient of every equation from the same resamples
        (PROCESS ``modelbt=1``): ``coef, boot_mean, boot_se, boot_ci_low, boot_ci_high``.
    standardized : bool, default False
        Standardized regression coefficients per OLS equation (PROCESS ``stand=1``).
    binary_y : bool or None, default None
        ``None`` detects a dichotomous Y (two distinct values) and fits logistic outcome and
        total equations, with a note; ``True`` requires a dichotomous Y; ``False`` keeps OLS.

    Returns
    -------
    MediationResult
        Or, with ``impute``, a :class:`~fidelitymed.stats.pooling.PooledMediationResult` whose
        ``.to_dict()`` adds ``imputations`` and ``pooling``.

    Raises
    ------
    FidelityMedError
        Unknown column, non-numeric value, constant or collinear predictor, too few rows, bad
        ``n_boot``/``conf``/``hc``/``ci``, or a bootstrap in which most resamples are singular.

    Examples
    --------
    >>> import fidelitymed as fm
    >>> from importlib.resources import files
    >>> df = fm.read_table(files("fidelitymed") / "data" / "mediation_example.csv")
    >>> res = fm.mediate(df, x="fidelity", m="alliance", y="qol",
    ...                  covariates=["age", "site"], categorical=["site"], seed=1)
    >>> sorted(res.to_dict()["paths"])
    ['a', 'b', 'c', 'c_prime']
    """
    extras = dict(contrast=contrast, covariates_in=covariates_in, covariate_map=covariate_map, n_mc=n_mc,
                  boot_coefficients=boot_coefficients, standardized=standardized, binary_y=binary_y)
    if impute is not None:
        if ci != "percentile" or save_boot or normal:
            raise ConfigError("with impute=, only ci='percentile' is available and save_boot/normal are not; "
                              f"got ci={ci!r}, save_boot={save_boot}, normal={normal}")
        changed = [k for k, v in extras.items() if k != "contrast" and v != _COMPLETE_ONLY_DEFAULTS[k]]
        if changed:
            raise ConfigError("with impute=, parallel mediators and contrast= are available, not: " + ", ".join(changed))
        from .mi_mediation import mediate_imputed

        return mediate_imputed(data, x, m, y, covariates=covariates, categorical=categorical, impute=impute,
                               pool=pool, n_boot=n_boot, conf=conf, seed=seed, hc=hc, cluster=cluster,
                               process_compat=process_compat, contrast=contrast)
    return mediate_complete(data, x, m, y, covariates, categorical, n_boot, conf, seed, hc, cluster,
                            ci, save_boot, normal, process_compat, **extras)


@single_thread()  # one BLAS thread: the same digits under any thread count
def mediate_many(
    data: pd.DataFrame,
    models: Sequence[Mapping[str, object]],
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
    """Several PROCESS Model 4 analyses of one data set, bootstrapped on the same resamples.

    What PROCESS commands given the same ``seed=`` on the same cases do (Hayes 2022): every
    model's bootstrap resamples the same cases, so each result is
    the one :func:`mediate` gives for that model with this ``seed`` -- the same draws, redraws of
    its own singular resamples included, to rounding in the last bits.  It is faster: models with
    the same complete cases (several outcomes, waves or exposure windows with the same
    covariates) share one moment product per block of resamples over the union of their columns
    (:func:`fidelitymed.stats.bootstrap.start_shared_bootstrap`), and the resamples are drawn and
    counted once.  Each model's interval is valid on its own; the draws of two models are
    correlated, as they are in PROCESS with one seed.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per case (listwise deletion per model, as in :func:`mediate`).
    models : sequence of mapping
        One per analysis: ``x``, ``m``, ``y`` and optionally ``covariates``, ``categorical`` and
        ``contrast``, with the meaning they have in :func:`mediate`.
    **options
        ``n_boot``, ``conf``, ``seed``, ``hc``, ``cluster``, ``ci``, ``save_boot``, ``normal``,
        ``process_compat``, ``covariates_in``, ``covariate_map``, ``n_mc``,
        ``boot_coefficients``, ``standardized``, ``binary_y``: as in :func:`mediate`, for every
        model.  Models with a dichotomous Y, or other complete cases, run their own bootstrap
        (from the same ``seed``).

    Returns
    -------
    tuple of MediationResult
        In the order of ``models``.

    Examples
    --------
    >>> import fidelitymed as fm
    >>> from importlib.resources import files
    >>> df = fm.read_table(files("fidelitymed") / "data" / "mediation_example.csv")
    >>> models = [dict(x="fidelity", m="alliance", y="qol", covariates=["age"]),
    ...           dict(x="fidelity", m="alliance", y="age")]
    >>> [r.y for r in fm.mediate_many(df, models, n_boot=1000, seed=1)]
    ['qol', 'age']
    """
    return mediate_complete_many(data, models, n_boot, conf, seed, hc, cluster, ci, save_boot, normal, process_compat,
                                 covariates_in=covariates_in, covariate_map=covariate_map, n_mc=n_mc,
                                 boot_coefficients=boot_coefficients, standardized=standardized, binary_y=binary_y)


_COMPLETE_ONLY_DEFAULTS = dict(contrast=False, covariates_in="all", covariate_map=None, n_mc=5000,
                               boot_coefficients=False, standardized=False, binary_y=None)


