"""Multilevel mediation X -> M -> Y for clients nested in case managers nested in teams.

Both equations are linear mixed models with nested random intercepts (``(1 | team)`` or
``(1 | team/case_manager)``), fitted by REML (or ML) with :func:`.lmm.fit_nested_lmm`:

* mediator model  ``M = i_M + a X + covariates + u_team [+ u_cm] + e``
* outcome model   ``Y = i_Y + c' X + b M + covariates + u_team [+ u_cm] + e``

With ``decompose=True`` X and M are centred within the outermost group (cluster-mean centring,
Zhang, Zyphur & Preacher 2009): ``x_between`` is the team mean of X, ``x_within = X - x_between``,
and the same for M in the outcome model, so each path splits into a between-team and a
within-team part.  With a team-level X (fidelity is a team property: a 2-1-1 design) X has no
within part and the indirect effect can only be the between-team one, ``a_between * b_between``;
single-level OLS mixes ``b_between`` and ``b_within`` into one ``b``.

Paths carry lmerTest's Satterthwaite df (t tests and intervals).  Indirect effects get a Monte
Carlo CI (Preacher & Selig 2012): ``n_mc`` draws of the path coefficients from their joint normal
sampling distribution (the fixed-effect covariances of each equation; the two equations are
independent), the product per draw, and percentile limits — the parametric counterpart of the
bootstrap, computed in one vectorized pass.

References
----------
Zhang, Z., Zyphur, M. J., & Preacher, K. J. (2009). Testing multilevel mediation using
hierarchical linear models: problems and solutions. *Organizational Research Methods, 12*,
695-719.
Preacher, K. J., & Selig, J. P. (2012). Advantages of Monte Carlo confidence intervals for
indirect effects. *Communication Methods and Measures, 6*, 77-98.
Krull, J. L., & MacKinnon, D. P. (2001). Multilevel modeling of individual and group level
mediated effects. *Multivariate Behavioral Research, 36*, 249-277.
Bates, D., Maechler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models
using lme4. *Journal of Statistical Software, 67*(1).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from ...blas import single_thread
from ...errors import ConfigError, DataIssue, StudyDataError
from .._json import json_float
from ...seeding import SeedLike, root_sequence
from .lmm import NestedGroups, NestedLMMFit, equation_statistics, fits_from_statistics
from ..process.design import level_label, float_values, level_order

__all__ = ["IndirectEstimate", "MultilevelMediationResult", "PathEstimate", "indirect_estimates",
           "mediate_multilevel", "mediate_multilevel_many", "monte_carlo_products"]

#: fewer outermost groups than this get a note (few-cluster inference)
FEW_GROUPS = 20
#: what a model of :func:`mediate_multilevel_many` may hold
_MODEL_KEYS = frozenset({"x", "m", "y", "covariates", "categorical"})
_PATH_KEYS = ("coef", "se", "df", "t", "p", "ci_low", "ci_high")
_INDIRECT_KEYS = ("effect", "mc_se", "ci_low", "ci_high")


_json_float = json_float


@dataclass(frozen=True)
class PathEstimate:
    """One path coefficient with its Satterthwaite t test and interval."""

    name: str
    coef: float
    se: float
    df: float
    t: float
    p: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float | None]:
        return {k: _json_float(getattr(self, k)) for k in _PATH_KEYS}


@dataclass(frozen=True)
class IndirectEstimate:
    """An indirect effect (product of two paths) with its Monte Carlo SE and CI."""

    name: str
    effect: float
    mc_se: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float | None]:
        return {k: _json_float(getattr(self, k)) for k in _INDIRECT_KEYS}


@dataclass(frozen=True, eq=False)
class MultilevelMediationResult:
    """Result of :func:`mediate_multilevel` (immutable).

    ``to_dict()["paths"]`` maps ``a_between``, ``a_within``, ``b_between``, ``b_within``,
    ``c_prime_between``, ``c_prime_within`` (or ``a``, ``b``, ``c_prime`` without decomposition;
    only the between parts for a 2-1-1 design) to ``coef, se, df, t, p, ci_low, ci_high``;
    ``["indirect"]`` maps ``indirect_between`` / ``indirect_within`` (or ``indirect``) to
    ``effect, mc_se, ci_low, ci_high``.
    """

    x: str
    m: str
    y: str
    covariates: tuple[str, ...]
    groups: tuple[str, ...]
    decompose: bool
    design: str  # "2-1-1" (X constant within the outermost group) or "1-1-1"
    reml: bool
    conf: float
    n: int
    n_dropped: int
    paths: tuple[PathEstimate, ...]
    indirect: tuple[IndirectEstimate, ...]
    mediator_fit: NestedLMMFit
    outcome_fit: NestedLMMFit
    n_mc: int
    seed: Any
    notes: tuple[str, ...]

    def path(self, name: str) -> PathEstimate:
        for p in self.paths:
            if p.name == name:
                return p
        raise KeyError(f"no path {name!r}; paths: {[p.name for p in self.paths]}")

    def indirect_effect(self, name: str) -> IndirectEstimate:
        for e in self.indirect:
            if e.name == name:
                return e
        raise KeyError(f"no indirect effect {name!r}; effects: {[e.name for e in self.indirect]}")

    def indirect_distribution(self) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, list[tuple[int, int]]]:
        """``(indirect names, mean, cov, pairs)``: the joint normal sampling distribution of the
        paths ``(a..., b...)`` that the indirect effects multiply, and the index pairs of each product.

        The a paths come from the mediator model, the b paths from the outcome model; the two
        equations are fitted separately, so their covariance block is zero.
        """
        return _indirect_distribution(self.mediator_fit, self.outcome_fit, self.decompose)

    @property
    def n_groups(self) -> dict[str, int]:
        return dict(zip(self.groups, (int(k) for k in self.mediator_fit.n_groups)))

    @property
    def variance_components(self) -> dict[str, dict[str, float]]:
        return {"mediator": self.mediator_fit.variance_components(),
                "outcome": self.outcome_fit.variance_components()}

    @property
    def log_likelihood(self) -> dict[str, float]:
        """``logLik()`` of each equation (the REML log-likelihood with ``reml=True``)."""
        return {"mediator": self.mediator_fit.log_likelihood, "outcome": self.outcome_fit.log_likelihood}

    def to_dict(self) -> dict[str, Any]:
        def coefficients(fit: NestedLMMFit) -> dict[str, dict]:
            return {name: {k: _json_float(v) for k, v in fit.coef_of(name, self.conf).items()}
                    for name in fit.names}

        return {
            "model": "multilevel", "x": self.x, "m": self.m, "y": self.y, "covariates": list(self.covariates),
            "groups": list(self.groups), "decompose": bool(self.decompose), "design": self.design,
            "estimation": "REML" if self.reml else "ML", "df_method": "Satterthwaite",
            "conf": float(self.conf), "n": int(self.n), "n_dropped": int(self.n_dropped),
            "n_groups": self.n_groups,
            "paths": {p.name: p.to_dict() for p in self.paths},
            "indirect": {e.name: e.to_dict() for e in self.indirect},
            "ci_method": "monte_carlo", "n_mc": int(self.n_mc), "seed": self.seed,
            "variance_components": {eq: {k: _json_float(v) for k, v in comps.items()}
                                    for eq, comps in self.variance_components.items()},
            "log_likelihood": {k: _json_float(v) for k, v in self.log_likelihood.items()},
            "singular": {"mediator": bool(self.mediator_fit.singular), "outcome": bool(self.outcome_fit.singular)},
            "coefficients": {"mediator": coefficients(self.mediator_fit), "outcome": coefficients(self.outcome_fit)},
            "notes": list(self.notes),
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per path and indirect effect: ``kind, estimate, se, df, t, p, ci_low, ci_high``."""
        rows = [{"effect": p.name, "kind": "path", "estimate": p.coef, "se": p.se, "df": p.df, "t": p.t,
                 "p": p.p, "ci_low": p.ci_low, "ci_high": p.ci_high} for p in self.paths]
        rows += [{"effect": e.name, "kind": "indirect (Monte Carlo)", "estimate": e.effect, "se": e.mc_se,
                  "df": np.nan, "t": np.nan, "p": np.nan, "ci_low": e.ci_low, "ci_high": e.ci_high}
                 for e in self.indirect]
        return pd.DataFrame(rows).set_index("effect")

    def _caption(self) -> str:
        random = " + ".join(f"(1 | {':'.join(self.groups[:k + 1])})" for k in range(len(self.groups)))
        return (f"Multilevel mediation ({self.design}): X = {self.x}, M = {self.m}, Y = {self.y}; "
                f"random intercepts {random}; {'REML' if self.reml else 'ML'}, Satterthwaite df; "
                f"n = {self.n}, " + ", ".join(f"{k}: {v}" for k, v in self.n_groups.items()))

    def summary(self) -> str:
        level = f"{self.conf * 100:g}%"
        lines = [self._caption(), ""]
        width = max(len(p.name) for p in self.paths) + 2
        lines.append(f"{'path':<{width}}{'coeff':>10}{'se':>10}{'df':>9}{'t':>9}{'p':>9}{'LLCI':>10}{'ULCI':>10}")
        for p in self.paths:
            lines.append(f"{p.name:<{width}}{p.coef:10.4f}{p.se:10.4f}{p.df:9.2f}{p.t:9.3f}{p.p:9.4f}"
                         f"{p.ci_low:10.4f}{p.ci_high:10.4f}")
        lines += ["", f"Indirect effects, {level} Monte Carlo CI ({self.n_mc} draws)"]
        width = max(len(e.name) for e in self.indirect) + 2
        lines.append(f"{'effect':<{width}}{'effect':>10}{'MC se':>10}{'LLCI':>10}{'ULCI':>10}")
        for e in self.indirect:
            lines.append(f"{e.name:<{width}}{e.effect:10.4f}{e.mc_se:10.4f}{e.ci_low:10.4f}{e.ci_high:10.4f}")
        lines += ["", "Variance components"]
        for eq, comps in self.variance_components.items():
            lines.append(f"  {eq:<9}" + "  ".join(f"{k} = {v:.4f}" for k, v in comps.items()))
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        table = self.to_frame().to_html(float_format=lambda v: f"{v:.4f}", na_rep="")
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f"<div><p><b>{html.escape(self._caption())}</b></p>{table}"
                + (f"<ul>{notes}</ul>" if notes else "") + "</div>")


# ---------------------------------------------------------------------------- Monte Carlo CI


def _indirect_distribution(med: NestedLMMFit, out: NestedLMMFit, decompose: bool):
    x_names = [nm for nm in ("x_between", "x_within", "x") if nm in med.names]
    m_names = [nm for nm in ("m_between", "m_within", "m") if nm in out.names]
    a_idx = [med.names.index(nm) for nm in x_names]
    b_idx = [out.names.index(nm) for nm in m_names]
    mean = np.concatenate([med.coef[a_idx], out.coef[b_idx]])
    ka = len(a_idx)
    cov = np.zeros((mean.size, mean.size))
    cov[:ka, :ka] = med.vcov[np.ix_(a_idx, a_idx)]
    cov[ka:, ka:] = out.vcov[np.ix_(b_idx, b_idx)]
    pairs = [(k, ka + k) for k in range(ka)]  # a_between * b_between, a_within * b_within
    names = ("indirect",) if not decompose else ("indirect_between", "indirect_within")[:ka]
    return names, mean, cov, pairs


def indirect_estimates(names: Sequence[str], mean: np.ndarray, cov: np.ndarray, pairs: Sequence[tuple[int, int]],
                       n_mc: int, conf: float, rng: np.random.Generator) -> tuple[IndirectEstimate, ...]:
    """Point estimates (products of the means) and Monte Carlo SEs and percentile CIs."""
    products = monte_carlo_products(mean, cov, pairs, int(n_mc), rng)
    tail = (1.0 - conf) / 2.0
    low, high = np.quantile(products, [tail, 1.0 - tail], axis=0)
    mc_se = products.std(axis=0, ddof=1)
    return tuple(IndirectEstimate(name, float(mean[i] * mean[j]), float(mc_se[k]), float(low[k]), float(high[k]))
                 for k, (name, (i, j)) in enumerate(zip(names, pairs)))


def monte_carlo_products(mean: np.ndarray, cov: np.ndarray, pairs: Sequence[tuple[int, int]], n_mc: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Draws of products of normally distributed coefficients (Preacher & Selig 2012).

    Parameters
    ----------
    mean, cov
        Joint normal sampling distribution of the coefficients (k,), (k, k).
    pairs
        Index pairs ``(i, j)``: each column of the result is ``coef_i * coef_j`` per draw.
    n_mc
        Number of draws.
    rng
        Source of the standard normal draws: ``rng.standard_normal((n_mc, k))``, row by row, so a
        loop drawing ``rng.standard_normal(k)`` per replicate gives the same numbers.

    Returns
    -------
    ndarray, shape (n_mc, len(pairs))
    """
    mean = np.asarray(mean, dtype=np.float64)
    k = mean.size
    # eigen factor instead of Cholesky: tolerates a singular (rank-deficient) covariance
    evals, evecs = np.linalg.eigh(np.asarray(cov, dtype=np.float64))
    factor = evecs * np.sqrt(np.clip(evals, 0.0, None))
    draws = mean + rng.standard_normal((n_mc, k)) @ factor.T
    i, j = np.asarray(pairs).T
    return draws[:, i] * draws[:, j]


# ---------------------------------------------------------------------------- input handling


class _Columns:
    """The columns of one data set, each read once however many models use it."""

    def __init__(self, data: pd.DataFrame):
        self.data = data
        self._present: dict[str, np.ndarray] = {}
        self._numbers: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        self._factors: dict[str, tuple[np.ndarray, Any]] = {}

    def present(self, col: str) -> np.ndarray:
        """Rows where ``col`` holds a value."""
        if col not in self._present:
            self._present[col] = self.data[col].notna().to_numpy()
        return self._present[col]

    def numbers(self, col: str) -> tuple[np.ndarray, np.ndarray | None]:
        """``col`` as floats, and the rows whose value is not a number (``None``: a numeric column)."""
        if col not in self._numbers:
            s = self.data[col]
            if s.dtype.kind in "fiub":  # already numbers (an imputed frame): no parse, no per-value check
                self._numbers[col] = float_values(s), None
            else:
                values = pd.to_numeric(s, errors="coerce")
                self._numbers[col] = (values.to_numpy(dtype=np.float64),
                                      values.isna().to_numpy() & self.present(col))
        return self._numbers[col]

    def factor(self, col: str) -> tuple[np.ndarray, Any]:
        if col not in self._factors:
            self._factors[col] = pd.factorize(self.data[col])
        return self._factors[col]


def _numeric(columns: _Columns, col: str, rows: np.ndarray) -> np.ndarray:
    values, not_a_number = columns.numbers(col)
    if not_a_number is not None:
        bad = np.flatnonzero(not_a_number[rows])
        if bad.size:
            raw = columns.data[col]
            raise StudyDataError([DataIssue(None, int(rows[i]) + 2, col, raw.iloc[rows[i]], "a number")
                                  for i in bad[:5]])
    out = values[rows]
    if not np.isfinite(out).all():
        i = int(np.flatnonzero(~np.isfinite(out))[0])
        raise StudyDataError(row=int(rows[i]) + 2, column=col, value=float(out[i]), expected="a finite number")
    return out


def _check_nesting(frame: pd.DataFrame, nested: NestedGroups) -> None:
    """Refuse grouping levels that cannot be nested random intercepts.

    Lower-level ids are read within their parent (lme4's ``team/case_manager``): ``cm1`` may recur
    in every team.  Ids that are unique for most units but recur across parents for a few signal a
    crossed (non-nested) design or mislabelled rows.
    """
    groups = nested.names
    for level, col in enumerate(groups):
        if nested.sizes[level] < 2:
            raise StudyDataError(column=col, value=str(frame[col].iloc[0]) if len(frame) else None,
                                 expected="a grouping column with at least two groups")
    for level in range(1, len(groups)):
        outer, inner = groups[level - 1], groups[level]
        if nested.sizes[level] == nested.sizes[level - 1]:
            raise ConfigError(f"groups: every {outer} has a single {inner}, so the {inner} level repeats the "
                              f"{outer} level; drop {inner!r} from groups")
        labels, uniques = pd.factorize(frame[inner].astype(str))
        pairs = np.unique(labels.astype(np.int64) * nested.sizes[level - 1] + nested.codes[level - 1])
        parents_per_id = np.bincount(pairs // nested.sizes[level - 1], minlength=len(uniques))
        crossing = np.flatnonzero(parents_per_id > 1)
        if 0 < crossing.size < 0.5 * len(uniques):
            examples = ", ".join(repr(uniques[i]) for i in crossing[:5])
            raise StudyDataError(column=inner, value=examples,
                                 expected=f"groups nested in {outer!r}: these {inner} ids occur in more than "
                                          f"one {outer} while the other ids belong to one {outer} each "
                                          "(crossed, not nested, or mislabelled rows)")


def _prepare(data, x, m, y, covariates, categorical, groups, nestings: dict | None = None,
             columns: _Columns | None = None):
    """The complete rows' values, covariate block and nesting of one model.

    ``columns`` reads each column of ``data`` once for all the models given it; ``nestings``
    caches the checked :class:`NestedGroups` by grouping columns and complete rows, so the models
    of one data set that analyse the same rows share it.
    """
    if not isinstance(data, pd.DataFrame):
        raise ConfigError(f"data must be a pandas DataFrame; got {type(data).__name__}")
    for role, col in {"x": x, "m": m, "y": y}.items():
        if not isinstance(col, str) or not col:
            raise ConfigError(f"{role} must name a column; got {col!r}")
    if isinstance(groups, str):
        groups = [groups]
    covariates, categorical, groups = list(covariates), list(categorical), list(groups)
    if not 1 <= len(groups) <= 3:
        raise ConfigError(f"groups must list 1-3 nested grouping columns, outermost first; got {groups!r}")
    used = [x, m, y, *covariates, *groups]
    if len(set(used)) != len(used):
        dup = sorted({c for c in used if used.count(c) > 1})
        raise ConfigError(f"column(s) {dup} given twice among x, m, y, covariates and groups")
    missing = [c for c in used if c not in data.columns]
    if missing:
        raise ConfigError(f"unknown column(s) {missing}; the data have: " + ", ".join(map(str, data.columns[:30])))
    for col in categorical:
        if col not in covariates:
            raise ConfigError(f"categorical column {col!r} must also be listed among the covariates")
    columns = _Columns(data) if columns is None else columns
    complete = np.logical_and.reduce([columns.present(c) for c in used])
    rows = np.flatnonzero(complete)
    values = {c: _numeric(columns, c, rows) for c in [x, m, y, *covariates] if c not in categorical}
    for col in (x, m, y):
        if np.ptp(values[col]) == 0:
            raise StudyDataError(column=col, value=float(values[col][0]),
                                 expected="a variable that varies (the column is constant in the complete cases)")
    key = (tuple(groups), rows.tobytes())
    nested = None if nestings is None else nestings.get(key)
    if nested is None:
        frame = data.iloc[rows][groups].reset_index(drop=True)
        nested = NestedGroups.from_columns([frame[g].to_numpy() for g in groups], groups)
        _check_nesting(frame, nested)
        if nestings is not None:
            nestings[key] = nested
    blocks, names = [], []
    for col in covariates:
        if col in categorical:
            codes, uniques = columns.factor(col)
            value_code = codes[rows]
            order = level_order(uniques, np.unique(value_code).tolist())  # the levels of the complete rows
            if len(order) < 2:
                raise StudyDataError(column=col, value=uniques[order[0]] if len(order) else None,
                                     expected="at least two levels of a categorical covariate")
            for i in order[1:]:
                blocks.append((value_code == i).astype(np.float64))
                names.append(f"{col}[T.{level_label(uniques[i])}]")
        else:
            blocks.append(values[col])
            names.append(col)
    C = np.column_stack(blocks) if blocks else np.empty((rows.size, 0))
    return values[x], values[m], values[y], C, tuple(names), nested, len(data) - rows.size


def cluster_mean_centre(v: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(group mean, deviation from it)`` per row (Zhang, Zyphur & Preacher 2009)."""
    sums = np.bincount(codes, weights=v)
    counts = np.bincount(codes)
    between = (sums / counts)[codes]
    return between, v - between


def _seed_report(seed: SeedLike, seq: np.random.SeedSequence):
    if isinstance(seed, np.random.SeedSequence) or seed is None:
        return int(seq.entropy) if not seq.spawn_key else {"entropy": int(seq.entropy),
                                                           "spawn_key": [int(k) for k in seq.spawn_key]}
    return int(seed)


# ---------------------------------------------------------------------------- the function


@single_thread()  # one BLAS thread: the same digits under any thread count
def mediate_multilevel(data: pd.DataFrame, x: str, m: str, y: str, covariates: Sequence[str] = (),
                       categorical: Sequence[str] = (), groups: Sequence[str] = ("team",), decompose: bool = True,
                       conf: float = 0.95, n_mc: int = 20000, seed: SeedLike = None,
                       reml: bool = True) -> MultilevelMediationResult:
    """Mediation X -> M -> Y with nested random intercepts and between/within decomposition.

    Parameters
    ----------
    data
        One row per client.
    x, m, y
        Predictor (e.g. team fidelity), mediator (alliance), outcome.
    covariates, categorical
        Covariate columns in both equations; those also in ``categorical`` enter as dummies
        (first sorted level the reference).
    groups
        Nested grouping columns, outermost first: ``["team", "case_manager"]`` gives random
        intercepts ``(1 | team) + (1 | team:case_manager)``; a case-manager id only needs to be
        unique within its team.
    decompose
        Centre X and M within the outermost group and estimate between and within paths (see the
        module docstring); ``False`` fits X and M as they are (paths ``a``, ``b``, ``c_prime``).
    conf
        Level of the path intervals (t with Satterthwaite df) and Monte Carlo CIs.
    n_mc
        Monte Carlo draws for the CIs of the indirect effects.
    seed
        Seed of the Monte Carlo draws (an int, a :class:`numpy.random.SeedSequence`, or None).
    reml
        REML (default, as lme4) or ML (``reml=False``, e.g. to compare log-likelihoods).

    Returns
    -------
    MultilevelMediationResult

    Raises
    ------
    ConfigError
        Unknown or repeated columns, bad ``groups``/``conf``/``n_mc``, a lower level that
        repeats the upper one.
    StudyDataError
        Non-numeric values, a constant X, M or Y, a grouping column with one group, lower-level
        ids that cross the upper level.

    Notes
    -----
    Rows with a missing value in any used column are dropped (listwise, as PROCESS and lme4's
    default ``na.action``); their number is in ``n_dropped`` and in a note.  Team means for the
    decomposition are the means of the analysed rows.

    Examples
    --------
    >>> res = mediate_multilevel(df, x="fidelity", m="alliance", y="outcome", covariates=["site"],
    ...                          groups=["team", "case_manager"], seed=1)   # doctest: +SKIP
    >>> res.to_dict()["indirect"]["indirect_between"]                        # doctest: +SKIP
    """
    _check_options(conf, n_mc)
    equations = _model_equations(data, x, m, y, covariates, categorical, groups, decompose)
    (med, out), = _fit_equations([equations], reml)
    return _result(equations, med, out, conf=conf, n_mc=n_mc, seed=seed, reml=reml)


@single_thread()  # one BLAS thread: the same digits under any thread count
def mediate_multilevel_many(data: pd.DataFrame, models: Sequence[dict[str, Any]], *,
                            groups: Sequence[str] = ("team",), decompose: bool = True, conf: float = 0.95,
                            n_mc: int = 20000, seeds: Sequence[SeedLike] | None = None,
                            reml: bool = True) -> list[MultilevelMediationResult]:
    """:func:`mediate_multilevel` of several models on one data set, their equations fitted together.

    Parameters
    ----------
    data
        One row per client.
    models
        One dict per model: ``x``, ``m``, ``y`` and optionally ``covariates`` and ``categorical``.
    groups, decompose, conf, n_mc, reml
        As in :func:`mediate_multilevel`, for every model.
    seeds
        The Monte Carlo seed of each model (``None``: unseeded).

    Returns
    -------
    list of MultilevelMediationResult
        In the order of ``models``; each the result :func:`mediate_multilevel` gives that model
        with its seed, up to the last digits of the REML searches (below the engine's 1e-5 accuracy
        against lme4; a model's digits do not depend on the other models of the batch).

    Notes
    -----
    The mediator equations of all models with the same complete rows and number of fixed effects
    form one batch of :func:`.lmm.fit_nested_lmm_batch`, and so do the outcome equations: each
    search is the single fit's, run in one pass over all the problems, so the per-call overhead
    of small numpy operations is paid once per batch rather than once per equation.
    """
    _check_options(conf, n_mc)
    models = list(models)
    seeds = [None] * len(models) if seeds is None else list(seeds)
    if len(seeds) != len(models):
        raise ConfigError(f"{len(seeds)} seeds for {len(models)} models")
    if not isinstance(data, pd.DataFrame):
        raise ConfigError(f"data must be a pandas DataFrame; got {type(data).__name__}")
    for mdl in models:
        if not isinstance(mdl, Mapping) or set(mdl) - _MODEL_KEYS or not {"x", "m", "y"} <= set(mdl):
            raise ConfigError(f"a model is a mapping with keys x, m, y and optionally covariates, categorical; "
                              f"got {list(mdl) if isinstance(mdl, Mapping) else repr(mdl)}")
    nestings: dict = {}
    columns = _Columns(data)
    equations = [_model_equations(data, mdl["x"], mdl["m"], mdl["y"], mdl.get("covariates", ()),
                                  mdl.get("categorical", ()), groups, decompose, nestings, columns)
                 for mdl in models]
    fits = _fit_equations(equations, reml)
    return [_result(eq, med, out, conf=conf, n_mc=n_mc, seed=seed, reml=reml)
            for eq, (med, out), seed in zip(equations, fits, seeds, strict=True)]


def _check_options(conf: float, n_mc: int) -> None:
    if not 0.0 < conf < 1.0:
        raise ConfigError(f"conf must lie strictly between 0 and 1; got {conf!r}")
    if isinstance(n_mc, bool) or not isinstance(n_mc, (int, np.integer)) or n_mc < 100:
        raise ConfigError(f"n_mc must be an integer >= 100; got {n_mc!r}")


@dataclass(frozen=True, eq=False)
class _Equations:
    """The two equations of one model, ready to fit."""

    x: str
    m: str
    y: str
    covariates: tuple[str, ...]
    decompose: bool
    design: str
    nested: NestedGroups
    n: int
    n_dropped: int
    x_names: tuple[str, ...]
    m_names: tuple[str, ...]
    # each equation as what its fit reads (equation_statistics) and its fixed-effect names: a model
    # holds a few kB rather than its designs (at 20,000 clients ~3 MB each)
    mediator: tuple[tuple[np.ndarray, np.ndarray], tuple[str, ...]]
    outcome: tuple[tuple[np.ndarray, np.ndarray], tuple[str, ...]]
    notes: tuple[str, ...]


def _model_equations(data, x, m, y, covariates, categorical, groups, decompose,
                     nestings: dict | None = None, columns: _Columns | None = None) -> _Equations:
    xv, mv, yv, C, cov_names, nested, n_dropped = _prepare(data, x, m, y, covariates, categorical, groups,
                                                           nestings, columns)
    n = xv.size
    top = nested.codes[0]
    notes: list[str] = []
    if n_dropped:
        notes.append(f"{n_dropped} rows with missing values dropped (listwise); n = {n}")
    ones = np.ones((n, 1))
    x_between, x_within = cluster_mean_centre(xv, top)
    within_x = bool(np.max(np.abs(x_within)) > 1e-10 * max(1.0, float(np.max(np.abs(xv)))))
    design = "1-1-1" if within_x else "2-1-1"
    if decompose:
        m_between, m_within = cluster_mean_centre(mv, top)
        x_cols, x_names = ([x_between, x_within], ["x_between", "x_within"]) if within_x else ([x_between],
                                                                                             ["x_between"])
        m_cols, m_names = [m_between, m_within], ["m_between", "m_within"]
        if not within_x:
            notes.append(f"{x} does not vary within {nested.names[0]} (a 2-1-1 design): only between-"
                         f"{nested.names[0]} paths and indirect effect exist")
    else:
        x_cols, x_names, m_cols, m_names = [xv], ["x"], [mv], ["m"]
    X_med = np.column_stack([ones, *x_cols, C])
    X_out = np.column_stack([ones, *x_cols, *m_cols, C])
    names_med = ("(Intercept)", *x_names, *cov_names)
    names_out = ("(Intercept)", *x_names, *m_names, *cov_names)
    for Xd, names in ((X_med, names_med), (X_out, names_out)):
        if np.linalg.matrix_rank(Xd) < Xd.shape[1]:
            raise StudyDataError(column=None, value=None,
                                 expected=f"predictors {list(names[1:])} that are not collinear (e.g. a covariate "
                                          f"that is constant within {nested.names[0]} and equals the "
                                          f"{nested.names[0]} mean of {x} or {m})")
    return _Equations(x=x, m=m, y=y, covariates=tuple(covariates), decompose=bool(decompose), design=design,
                      nested=nested, n=int(n), n_dropped=int(n_dropped), x_names=tuple(x_names),
                      m_names=tuple(m_names), mediator=(equation_statistics(mv, X_med, nested), names_med),
                      outcome=(equation_statistics(yv, X_out, nested), names_out),
                      notes=tuple(notes))


def _fit_equations(equations: Sequence[_Equations], reml: bool) -> list[tuple[NestedLMMFit, NestedLMMFit]]:
    """The mediator and outcome fits of every model; equations on the same rows with as many
    fixed effects are one batch."""
    batches: dict[tuple, list] = {}
    for k, eq in enumerate(equations):
        for role in ("mediator", "outcome"):
            statistics, names = getattr(eq, role)
            batches.setdefault((id(eq.nested), statistics[0].shape), []).append((k, role, statistics, names))
    fitted: dict[tuple[int, str], NestedLMMFit] = {}
    for members in batches.values():
        first = equations[members[0][0]]
        fits = fits_from_statistics([st for _, _, st, _ in members], first.n, first.nested,
                                    names=[nm for *_, nm in members], reml=reml)
        for (k, role, *_), fit in zip(members, fits, strict=True):
            fitted[k, role] = fit
    return [(fitted[k, "mediator"], fitted[k, "outcome"]) for k in range(len(equations))]


def _result(eq: _Equations, med: NestedLMMFit, out: NestedLMMFit, *, conf: float, n_mc: int, seed: SeedLike,
            reml: bool) -> MultilevelMediationResult:
    decompose = eq.decompose
    suffixes = ["_between", "_within"][:len(eq.x_names)] if decompose else [""]
    path_specs = []  # (path name, fit, coefficient name)
    for sfx, xn in zip(suffixes, eq.x_names):
        path_specs.append((f"a{sfx}", med, xn))
    for sfx, mn in zip(["_between", "_within"] if decompose else [""], eq.m_names):
        path_specs.append((f"b{sfx}", out, mn))
    for sfx, xn in zip(suffixes, eq.x_names):
        path_specs.append((f"c_prime{sfx}", out, xn))
    paths = tuple(PathEstimate(name, **fit.coef_of(coef_name, conf)) for name, fit, coef_name in path_specs)

    seq = root_sequence(seed)
    indirect = indirect_estimates(*_indirect_distribution(med, out, decompose), int(n_mc), conf,
                                  np.random.Generator(np.random.PCG64(seq)))

    nested = eq.nested
    notes = list(eq.notes)
    n_top = nested.sizes[0]
    if n_top < FEW_GROUPS:
        notes.append(f"only {n_top} {nested.names[0]} groups: between-{nested.names[0]} paths rest on {n_top} "
                     f"units (see their Satterthwaite df); treat their p-values and CIs with caution")
    for name, fit in (("mediator", med), ("outcome", out)):
        if fit.singular:
            at_zero = [g for g, t in zip(fit.group_names, fit.theta) if t < 1e-4]
            notes.append(f"{name} model: singular fit, the {' and '.join(at_zero)} variance estimated at its "
                         "boundary 0 (the model reduces to fewer levels)")
    return MultilevelMediationResult(
        x=eq.x, m=eq.m, y=eq.y, covariates=eq.covariates, groups=tuple(nested.names), decompose=decompose,
        design=eq.design, reml=bool(reml), conf=float(conf), n=eq.n, n_dropped=eq.n_dropped, paths=paths,
        indirect=indirect, mediator_fit=med, outcome_fit=out, n_mc=int(n_mc), seed=_seed_report(seed, seq),
        notes=tuple(notes))
