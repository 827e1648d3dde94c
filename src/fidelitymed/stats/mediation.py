"""Simple mediation, PROCESS Model 4: X -> M -> Y with covariates, bootstrap CI of the indirect effect.

Three OLS equations (Hayes 2022, ch. 3-4; PROCESS Model 4):

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

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConfigError, DataIssue, FidelityMedError, StudyDataError
from ..seeding import SeedLike, root_sequence
from . import bootstrap as bs
from .ols import OLSResult, fit_ols

__all__ = ["MediationResult", "mediate", "BOOT_COLUMNS"]

#: Columns of :attr:`MediationResult.boot_draws` (one row per resample).
BOOT_COLUMNS = ("a", "b", "c_prime", "ab", "ab_ps", "ab_std")

_CI_METHODS = ("percentile", "bc", "bca")
_PATH_KEYS = ("coef", "se", "t", "p", "ci_low", "ci_high")
_INDIRECT_KEYS = ("effect", "boot_se", "ci_low", "ci_high")


def _json_float(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else None


@dataclass(frozen=True, eq=False)  # arrays and frames have no single truth value
class MediationResult:
    """Result of :func:`mediate` (PROCESS Model 4).  Immutable.

    The JSON-safe :meth:`to_dict` holds exactly: ``n``, ``n_dropped``, ``paths`` (``a``, ``b``,
    ``c_prime``, ``c`` -> coef, se, t, p, ci_low, ci_high), ``models`` (``mediator``, ``outcome``,
    ``total`` -> r, r2, mse, F, df1, df2, p), ``indirect``, ``indirect_partially_std``,
    ``indirect_std`` (-> effect, boot_se, ci_low, ci_high), ``n_boot``, ``n_boot_failed``, ``seed``.

    Attributes beyond the dict
    --------------------------
    mediator_model, outcome_model, total_model : OLSResult
        The three fits with full coefficient vectors and covariance matrices (``.coef``,
        ``.vcov``, ``.names``), e.g. for pooling across imputations with Rubin's rules.
    boot_draws : pandas.DataFrame or None
        With ``save_boot=True``: one row per resample, columns :data:`BOOT_COLUMNS`.
    normal_test : dict or None
        With ``normal=True``: ``effect, se, z, p`` of the second-order (Aroian) test.
    sd_x, sd_y : float
        Full-sample SDs used by the standardized effects.
    covariate_names : tuple of str
        Covariate columns of the design (dummies named ``site[T.2]``; first level = reference).
    notes : tuple of str
        The "ANALYSIS NOTES" of :meth:`summary`.
    """

    x: str
    m: str
    y: str
    covariates: tuple[str, ...]
    covariate_names: tuple[str, ...]
    n: int
    n_dropped: int
    conf: float
    ci: str
    cov_type: str
    cluster: str | None
    process_compat: bool
    mediator_model: OLSResult
    outcome_model: OLSResult
    total_model: OLSResult
    indirect: dict[str, float | None]
    indirect_partially_std: dict[str, float | None]
    indirect_std: dict[str, float | None]
    n_boot: int
    n_boot_failed: int
    seed: Any
    seed_is_random: bool
    sd_x: float
    sd_y: float
    normal_test: dict[str, float] | None = None
    boot_draws: pd.DataFrame | None = field(default=None, repr=False)
    notes: tuple[str, ...] = ()

    # ------------------------------------------------------------------ paths
    @property
    def paths(self) -> dict[str, dict[str, float]]:
        """``a``, ``b``, ``c_prime``, ``c``: coef, se, t, p, ci_low, ci_high."""
        return {"a": self.mediator_model.coef_of(self.x),
                "b": self.outcome_model.coef_of(self.m),
                "c_prime": self.outcome_model.coef_of(self.x),
                "c": self.total_model.coef_of(self.x)}

    @property
    def models(self) -> dict[str, dict[str, float]]:
        """Model summaries (r, r2, mse, F, df1, df2, p) of the three equations."""
        return {"mediator": self.mediator_model.model_summary(),
                "outcome": self.outcome_model.model_summary(),
                "total": self.total_model.model_summary()}

    @property
    def ab(self) -> float:
        """The indirect effect ``a * b``."""
        return float(self.indirect["effect"])

    def standardized_direct_total(self) -> dict[str, float]:
        """``c_cs``, ``c_prime_cs`` (effect * SDx / SDy) and ``c_ps``, ``c_prime_ps`` (effect / SDy)."""
        p = self.paths
        return {"c_cs": p["c"]["coef"] * self.sd_x / self.sd_y,
                "c_prime_cs": p["c_prime"]["coef"] * self.sd_x / self.sd_y,
                "c_ps": p["c"]["coef"] / self.sd_y,
                "c_prime_ps": p["c_prime"]["coef"] / self.sd_y}

    # ------------------------------------------------------------------ exports
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict with exactly the keys listed in the class docstring (NaN -> None)."""
        seed = self.seed
        return {
            "n": int(self.n),
            "n_dropped": int(self.n_dropped),
            "paths": {k: {kk: _json_float(v[kk]) for kk in _PATH_KEYS} for k, v in self.paths.items()},
            "models": {k: {kk: (int(v[kk]) if kk in ("df1", "df2") else _json_float(v[kk]))
                           for kk in ("r", "r2", "mse", "F", "df1", "df2", "p")}
                       for k, v in self.models.items()},
            "indirect": {k: _json_float(self.indirect[k]) for k in _INDIRECT_KEYS},
            "indirect_partially_std": {k: _json_float(self.indirect_partially_std[k]) for k in _INDIRECT_KEYS},
            "indirect_std": {k: _json_float(self.indirect_std[k]) for k in _INDIRECT_KEYS},
            "n_boot": int(self.n_boot),
            "n_boot_failed": int(self.n_boot_failed),
            "seed": seed if not isinstance(seed, dict) else dict(seed),
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per effect: paths a, b, c_prime, c and the three indirect effects.

        Columns ``estimate, se, t, p, ci_low, ci_high``; for the indirect effects ``se`` is the
        bootstrap SE and ``t``/``p`` are empty.
        """
        rows = {}
        for name, d in self.paths.items():
            rows[name] = [d["coef"], d["se"], d["t"], d["p"], d["ci_low"], d["ci_high"]]
        for name in ("indirect", "indirect_partially_std", "indirect_std"):
            d = getattr(self, name)
            rows[name] = [d["effect"], d["boot_se"], np.nan, np.nan, d["ci_low"], d["ci_high"]]
        frame = pd.DataFrame.from_dict(rows, orient="index",
                                       columns=["estimate", "se", "t", "p", "ci_low", "ci_high"])
        frame.index.name = "effect"
        return frame.astype(float)

    # ------------------------------------------------------------------ PROCESS-style text
    def summary(self) -> str:
        """Text laid out like PROCESS's Model 4 output (Hayes 2022, Appendix A), section by section."""
        star = "*" * 74
        conf_pct = self.conf * 100
        L: list[str] = [star, "fidelitymed mediate: PROCESS Model 4 (Hayes 2022)", star,
                        "Model  : 4", f"    Y  : {self.y}", f"    X  : {self.x}", f"    M  : {self.m}"]
        if self.covariates:
            L += ["", "Covariates:", " " + " ".join(self.covariates)]
        L += ["", "Sample", f"Size:  {self.n}"]
        if self.n_boot:
            seed_text = self.seed if not isinstance(self.seed, dict) else self.seed
            L += ["", f"{'Random' if self.seed_is_random else 'Custom'} seed:  {seed_text}"]
        L += ["", star, "OUTCOME VARIABLE:", f" {self.m}", "", self.mediator_model.summary(),
              "", star, "OUTCOME VARIABLE:", f" {self.y}", "", self.outcome_model.summary(),
              "", "************************** TOTAL EFFECT MODEL ****************************",
              "OUTCOME VARIABLE:", f" {self.y}", "", self.total_model.summary(),
              "", "************** TOTAL, DIRECT, AND INDIRECT EFFECTS OF X ON Y **************", ""]
        std = self.standardized_direct_total()
        se_label = self.outcome_model.se_label
        head = f"{'Effect':>10}{se_label:>10}{'t':>10}{'p':>10}{'LLCI':>10}{'ULCI':>10}"
        for title, key, cs, cs_label in (("Total effect of X on Y:", "c", std["c_cs"], "c_cs"),
                                         ("Direct effect of X on Y:", "c_prime", std["c_prime_cs"], "c'_cs")):
            d = self.paths[key]
            L += [title, head + f"{cs_label:>10}",
                  "".join(f"{d[k]:10.4f}" for k in _PATH_KEYS) + f"{cs:10.4f}", ""]
        width = max(12, len(self.m) + 2)
        boot_head = " " * width + f"{'Effect':>10}{'BootSE':>10}{'BootLLCI':>10}{'BootULCI':>10}"

        def fmt(v):
            return f"{v:10.4f}" if v is not None and np.isfinite(v) else f"{'.':>10}"

        for title, d in (("Indirect effect(s) of X on Y:", self.indirect),
                         ("Partially standardized indirect effect(s) of X on Y:", self.indirect_partially_std),
                         ("Completely standardized indirect effect(s) of X on Y:", self.indirect_std)):
            L += [title, boot_head,
                  f"{self.m:<{width}}" + "".join(fmt(d[k]) for k in _INDIRECT_KEYS), ""]
        if self.normal_test is not None:
            nt = self.normal_test
            L += ["Normal theory test for indirect effect(s):",
                  f"{'Effect':>10}{'se':>10}{'Z':>10}{'p':>10}",
                  "".join(f"{nt[k]:10.4f}" for k in ("effect", "se", "z", "p")), ""]
        L += ["*********************** ANALYSIS NOTES AND ERRORS ************************", "",
              "Level of confidence for all confidence intervals in output:", f"  {conf_pct:.4f}", ""]
        if self.n_boot:
            kind = {"percentile": "percentile bootstrap", "bc": "bias-corrected bootstrap",
                    "bca": "bias-corrected and accelerated bootstrap"}[self.ci]
            L += [f"Number of bootstrap samples for {kind} confidence intervals:", f"  {self.n_boot}", ""]
        for note in self.notes:
            L += [f"NOTE: {note}", ""]
        return "\n".join(L).rstrip() + "\n"

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        caption = (f"PROCESS Model 4: X = {html.escape(self.x)}, M = {html.escape(self.m)}, "
                   f"Y = {html.escape(self.y)}; n = {self.n}, {self.n_boot} resamples, "
                   f"{self.conf * 100:g}% {self.ci} CI")
        table = self.to_frame().to_html(float_format=lambda v: f"{v:.4f}", na_rep="")
        return f"<div><p><b>{caption}</b></p>{table}</div>"


# ---------------------------------------------------------------------------- input handling


def _hc_cov_type(hc) -> str:
    if hc is None:
        return "nonrobust"
    if isinstance(hc, (int, np.integer)) and not isinstance(hc, bool) and 0 <= int(hc) <= 4:
        return f"HC{int(hc)}"
    if isinstance(hc, str) and hc.strip().upper() in ("HC0", "HC1", "HC2", "HC3", "HC4"):
        return hc.strip().upper()
    raise ConfigError(f"hc must be None, 0-4 or 'HC0'..'HC4'; got {hc!r}")


def _level_label(v) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _coerce_numeric(s: pd.Series, col: str, positions: np.ndarray) -> np.ndarray:
    """Numbers from a non-numeric column (e.g. strings from a CSV); the first bad values are reported."""
    coerced = pd.to_numeric(s, errors="coerce")
    bad = np.flatnonzero(coerced.isna().to_numpy() & s.notna().to_numpy())
    if bad.size:
        raise NonNumericCellsError([DataIssue(None, int(positions[i]) + 2, col, s.iloc[i], "a number")
                                    for i in bad])
    return coerced.to_numpy(dtype=np.float64)


class NonNumericCellsError(StudyDataError):
    """Non-numeric cells of a column: all of them in ``.issues``, the first :attr:`shown` in the message."""

    shown = 5

    def _message(self) -> str:
        total = len(self.issues)
        if total == 1:
            return str(self.issues[0])
        lines = [f"{total} problems in the data:"]
        lines += [f"  - {issue}" for issue in self.issues[:self.shown]]
        if total > self.shown:
            lines.append(f"  ... and {total - self.shown} more")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Design:
    x: np.ndarray
    m: np.ndarray
    y: np.ndarray
    C: np.ndarray  # covariate design columns (dummies expanded)
    covariate_names: tuple[str, ...]
    clusters: np.ndarray | None
    n_dropped: int


def _prepare(data: pd.DataFrame, x: str, m: str, y: str, covariates: Sequence[str],
             categorical: Sequence[str], cluster: str | None) -> _Design:
    if not isinstance(data, pd.DataFrame):
        raise ConfigError(f"data must be a pandas DataFrame; got {type(data).__name__}")
    roles = {"x": x, "m": m, "y": y}
    for role, col in roles.items():
        if not isinstance(col, str) or not col:
            raise ConfigError(f"{role} must name a column; got {col!r}")
    covariates = list(covariates)
    categorical = list(categorical)
    used = [x, m, y, *covariates]
    seen = set()
    for col in used:
        if col in seen:
            raise ConfigError(f"column {col!r} is given twice among x, m, y and the covariates")
        seen.add(col)
    for col in used + ([cluster] if cluster is not None else []):
        if col not in data.columns:
            close = [c for c in data.columns if str(c).lower() == str(col).lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown column {col!r}{hint}; the data have: "
                              + ", ".join(map(str, data.columns[:30])))
    for col in categorical:
        if col not in covariates:
            raise ConfigError(f"categorical column {col!r} must also be listed among the covariates "
                              "(X, M and Y must be numeric)")
    cols = list(dict.fromkeys(used + ([cluster] if cluster is not None else [])))
    # Column by column in numpy: a DataFrame copy of the used columns costs more than the fits.
    raw: dict[str, Any] = {}
    complete = np.ones(len(data), dtype=bool)
    for col in cols:
        s = data[col]
        if col not in categorical and (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
            arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
            complete &= ~np.isnan(arr)
            raw[col] = arr
        else:
            complete &= s.notna().to_numpy()
            raw[col] = s
    positions = np.flatnonzero(complete)
    n_dropped = len(data) - positions.size
    subset = (lambda a: a) if n_dropped == 0 else (lambda a: a[positions] if isinstance(a, np.ndarray)
                                                   else a.iloc[positions])
    values = {}
    for col in used:
        if col in categorical:
            continue
        a = subset(raw[col])
        values[col] = a if isinstance(a, np.ndarray) else _coerce_numeric(a, col, positions)
    for col, v in values.items():
        if not np.isfinite(v).all():
            i = int(np.flatnonzero(~np.isfinite(v))[0])
            raise StudyDataError(row=int(positions[i]) + 2, column=col, value=float(v[i]),
                                 expected="a finite number")
        if v.size and np.ptp(v) == 0:
            raise StudyDataError(column=col, value=float(v[0]),
                                 expected="a variable that varies (the column is constant "
                                          "in the complete cases)")
    blocks, names = [], []
    for col in covariates:
        if col in categorical:
            s = subset(raw[col])
            if isinstance(s, np.ndarray):
                s = pd.Series(s)
            levels = sorted(pd.unique(s), key=lambda v: (isinstance(v, str), v))
            if len(levels) < 2:
                raise StudyDataError(column=col, value=levels[0] if levels else None,
                                     expected="at least two levels of a categorical covariate")
            for lev in levels[1:]:
                blocks.append((s == lev).to_numpy(dtype=np.float64))
                names.append(f"{col}[T.{_level_label(lev)}]")
        else:
            blocks.append(values[col])
            names.append(col)
    n = len(positions)
    C = np.column_stack(blocks) if blocks else np.empty((n, 0))
    clusters = None
    if cluster is not None:
        clusters = subset(raw[cluster])
        clusters = clusters if isinstance(clusters, np.ndarray) else clusters.to_numpy()
    return _Design(values[x], values[m], values[y], C, tuple(names), clusters, n_dropped)


def _seed_report(seed: SeedLike, seq: np.random.SeedSequence):
    if isinstance(seed, np.random.SeedSequence):
        if seq.spawn_key:
            return {"entropy": int(seq.entropy), "spawn_key": [int(k) for k in seq.spawn_key]}
        return int(seq.entropy)
    if seed is None:
        return int(seq.entropy)
    return int(seed)


# ---------------------------------------------------------------------------- bootstrap statistic


def _make_statistic(scale: np.ndarray, tol: float = bs.TOLERANCE):
    """The mediation statistic on batch-last moment matrices of standardized ``[1, C, X, M, Y]``.

    Returns ``(values (b, 6), ok (b,))`` with columns :data:`BOOT_COLUMNS`.  ``scale`` holds the
    full-sample SDs used to standardize X, M, Y.
    """
    sx, sm_, sy = scale

    def statistic(packed: np.ndarray, index: np.ndarray):
        p = index.shape[0]
        ix, im, iy = p - 3, p - 2, p - 1
        # Y is not a regressor: only the columns up to M must be non-singular.
        L, ok = bs._cholesky_batch(packed, tol, n_check=p - 1, index=index)
        # Sequential regressions from the Cholesky factor of the augmented moment matrix:
        # the last regressor's coefficient is L[resp, last] / L[last, last] (Golub & Van Loan 5.3).
        a_s = L[im, ix] / L[ix, ix]
        b_s = L[iy, im] / L[im, im]
        c_s = (L[iy, ix] - L[im, ix] * b_s) / L[ix, ix]
        n_b = packed[index[0, 0]]
        var_x = (packed[index[ix, ix]] - packed[index[0, ix]] ** 2 / n_b) / (n_b - 1.0)
        syy = packed[index[iy, iy]]
        var_y = (syy - packed[index[0, iy]] ** 2 / n_b) / (n_b - 1.0)
        ok &= var_y > tol * syy / (n_b - 1.0)  # PROCESS rejects a resample with constant Y
        a = a_s * (sm_ / sx)
        b = b_s * (sy / sm_)
        c_prime = c_s * (sy / sx)
        ab = a * b
        with np.errstate(invalid="ignore", divide="ignore"):
            sd_x = sx * np.sqrt(np.maximum(var_x, 0.0))
            sd_y = sy * np.sqrt(np.where(ok, var_y, 1.0))
        values = np.column_stack([a, b, c_prime, ab, ab / sd_y, ab * sd_x / sd_y])
        return values, ok

    return statistic


# ---------------------------------------------------------------------------- the function


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
    pool: str = "stacked",
) -> MediationResult:
    """Simple mediation analysis (PROCESS Model 4) with a bootstrap CI of the indirect effect.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per case.  Rows with a missing value in any used column are dropped (listwise)
        and counted in ``n_dropped``.
    x, m, y : str
        Columns of the antecedent X, the mediator M and the outcome Y (numeric).
    covariates : sequence of str
        Columns entered in all three equations (PROCESS ``cov=``; all equations, so the total
        effect model is defined).
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
    hc : {None, 0, 1, 2, 3, 4, "HC0", ..., "HC4"}
        Heteroscedasticity-consistent SEs (PROCESS ``hc=``); the model F is then robust too.
    cluster : str, optional
        Column of cluster labels for cluster-robust (CR1) SEs of the paths.  The indirect-effect
        bootstrap still resamples cases.  Not combinable with ``hc``.
    ci : {"percentile", "bc", "bca"}
        Bootstrap CI of the indirect effects: percentile (the paper's method), bias-corrected
        (PROCESS ``bc=1``), or bias-corrected and accelerated (jackknife acceleration).
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
    pool : {"stacked", "boot_mi", "rubin_mc"}, default "stacked"
        With ``impute``: how the indirect effect's CI is pooled (:mod:`fidelitymed.stats.pooling`).

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
    if impute is not None:
        if ci != "percentile" or save_boot or normal:
            raise ConfigError("with impute=, only ci='percentile' is available and save_boot/normal are not; "
                              f"got ci={ci!r}, save_boot={save_boot}, normal={normal}")
        from .mi_mediation import mediate_imputed

        return mediate_imputed(data, x, m, y, covariates=covariates, categorical=categorical, impute=impute,
                               pool=pool, n_boot=n_boot, conf=conf, seed=seed, hc=hc, cluster=cluster,
                               process_compat=process_compat)
    return _mediate_complete(data, x, m, y, covariates, categorical, n_boot, conf, seed, hc, cluster,
                             ci, save_boot, normal, process_compat)


def _check_options(n_boot, conf, ci, hc, cluster) -> tuple[int, float, str]:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)):
        raise ConfigError(f"n_boot must be a whole number >= 0 (0 = no bootstrap); got {n_boot!r}")
    if n_boot < 0:
        raise ConfigError(f"n_boot must be >= 0 (0 = no bootstrap); got {n_boot}")
    if isinstance(conf, bool) or not isinstance(conf, (int, float, np.floating)) or not 0.0 < float(conf) < 1.0:
        raise ConfigError(f"conf must be a proportion strictly between 0 and 1 (e.g. 0.95); got {conf!r}")
    if ci not in _CI_METHODS:
        raise ConfigError(f"ci must be one of {', '.join(_CI_METHODS)}; got {ci!r}")
    cov_type = _hc_cov_type(hc)
    if cluster is not None and hc is not None:
        raise ConfigError("give either hc= (heteroscedasticity-consistent) or cluster= (cluster-robust), not both")
    return int(n_boot), float(conf), cov_type


def _mediate_complete(data, x, m, y, covariates, categorical, n_boot, conf, seed, hc, cluster, ci,
                      save_boot, normal, process_compat) -> MediationResult:
    n_boot, conf, cov_type = _check_options(n_boot, conf, ci, hc, cluster)
    covariates = tuple(covariates)
    design = _prepare(data, x, m, y, covariates, categorical, cluster)
    n = design.x.shape[0]
    C = design.C
    n_params = 3 + C.shape[1]  # outcome model: constant, X, M, covariates
    if n <= n_params:
        raise FidelityMedError(f"{n} complete rows but the outcome model has {n_params} parameters; "
                               "need more rows than parameters")
    ones = np.ones((n, 1))
    cnames = design.covariate_names
    fit_kw = dict(cov_type=cov_type, clusters=design.clusters, conf=conf, process_compat=process_compat)
    med = fit_ols(design.m, np.column_stack([ones, design.x, C]), names=("constant", x, *cnames), **fit_kw)
    out = fit_ols(design.y, np.column_stack([ones, design.x, design.m, C]),
                  names=("constant", x, m, *cnames), **fit_kw)
    tot = fit_ols(design.y, np.column_stack([ones, design.x, C]), names=("constant", x, *cnames), **fit_kw)

    a = med.coef[1]
    b = out.coef[2]
    ab = float(a * b)
    sd_x = float(np.std(design.x, ddof=1))
    sd_y = float(np.std(design.y, ddof=1))
    sd_m = float(np.std(design.m, ddof=1))
    point = np.array([a, b, out.coef[1], ab, ab / sd_y, ab * sd_x / sd_y])

    seq = root_sequence(seed)
    notes: list[str] = []
    nan_block = {"boot_se": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    indirect = dict(effect=ab, **nan_block)
    ind_ps = dict(effect=point[4], **nan_block)
    ind_cs = dict(effect=point[5], **nan_block)
    boot_frame = None
    n_failed = 0
    if n_boot > 0:
        # Standardize by full-sample statistics so the normal equations of every resample stay
        # well conditioned (raw moments of, e.g., age ~ 40 would square the condition number).
        raw = np.column_stack([C, design.x, design.m, design.y])
        centre = raw.mean(axis=0)
        spread = raw.std(axis=0, ddof=1)
        Z = np.column_stack([ones, (raw - centre) / spread])
        statistic = _make_statistic(np.array([sd_x, sd_m, sd_y]))
        run = bs.run_bootstrap(Z, statistic, n_boot, seq)
        draws = run.draws
        n_failed = run.n_failed
        est = point[[3, 4, 5]]
        sub = draws[:, [3, 4, 5]]
        rule = "process" if process_compat else "linear"
        if ci == "percentile":
            lo, hi = bs.percentile_interval(sub, conf, rule=rule)
        elif ci == "bc":
            lo, hi = bs.bc_interval(sub, est, conf, rule=rule)
        else:
            jack_vals, jack_ok = statistic(*bs.as_packed(np.moveaxis(bs.jackknife_moments(Z), 0, -1)))
            if not jack_ok.all():
                raise FidelityMedError("BCa: a leave-one-out sample is singular (a dummy or binary "
                                       "covariate has a single case); use ci='percentile' or 'bc'")
            lo, hi = bs.bca_interval(sub, est, jack_vals[:, [3, 4, 5]], conf, rule=rule)
        se = sub.std(axis=0, ddof=1) if n_boot > 1 else np.full(3, np.nan)
        for j, target in enumerate((indirect, ind_ps, ind_cs)):
            target.update(boot_se=float(se[j]), ci_low=float(lo[j]), ci_high=float(hi[j]))
        if ci in ("bc", "bca"):
            below = (sub < est).mean(axis=0)
            if np.any((below == 0) | (below == 1)):
                notes.append("all bootstrap draws lie on one side of the estimate: BC/BCa CI endpoints "
                             "are not trustworthy")
        if save_boot:
            boot_frame = pd.DataFrame(draws, columns=list(BOOT_COLUMNS))
            boot_frame.index.name = "resample"
        if n_failed:
            notes.append(f"{n_failed} bootstrap resample(s) were singular and replaced by new resamples")
        if n_boot < 1000:
            notes.append(f"only {n_boot} bootstrap resamples were requested and used (PROCESS would "
                         "silently use 5000); confidence limits from fewer than 1000 resamples are imprecise")
        if process_compat:
            notes.append("process_compat: percentile limits are PROCESS's order statistics and coefficient "
                         "CIs use PROCESS's t approximation")
    normal_test = None
    if normal:
        se_a = med.se[1]
        se_b = out.se[2]
        se_ab = float(np.sqrt(a ** 2 * se_b ** 2 + b ** 2 * se_a ** 2 + se_a ** 2 * se_b ** 2))
        z = ab / se_ab
        normal_test = {"effect": ab, "se": se_ab, "z": float(z), "p": float(2 * stats.norm.sf(abs(z)))}
    if cov_type != "nonrobust":
        notes.append(f"A heteroscedasticity consistent standard error and covariance matrix estimator "
                     f"was used ({cov_type}).")
    if cluster is not None:
        notes.append(f"Cluster-robust (CR1) standard errors with {med.n_clusters} clusters of "
                     f"{cluster!r}; t and F use {med.n_clusters - 1} denominator df. The bootstrap "
                     "of the indirect effect resamples cases, not clusters.")
    if design.n_dropped:
        notes.append(f"Some cases were deleted due to missing data. The number of such cases was: "
                     f"{design.n_dropped}")
    return MediationResult(
        x=x, m=m, y=y, covariates=covariates, covariate_names=cnames, n=n, n_dropped=design.n_dropped,
        conf=conf, ci=ci, cov_type=med.cov_type, cluster=cluster, process_compat=bool(process_compat),
        mediator_model=med, outcome_model=out, total_model=tot,
        indirect=indirect, indirect_partially_std=ind_ps, indirect_std=ind_cs,
        n_boot=n_boot, n_boot_failed=int(n_failed), seed=_seed_report(seed, seq),
        seed_is_random=seed is None, sd_x=sd_x, sd_y=sd_y, normal_test=normal_test,
        boot_draws=boot_frame, notes=tuple(notes))
