"""Hierarchical (blockwise) OLS regression with SPSS's "R Square Change" statistics.

The study's reciprocal analysis: the 13.5-month alliance regressed on the nine covariates
(block 1), then on each 9-month outcome added as block 2; it reports R², the change in R², the
F change with its df and p (as SPSS REGRESSION prints with ``/STATISTICS CHANGE``) and we add
Cohen's f² per block.

For block k, with model k = blocks 1..k, ``p_k`` its number of (non-redundant) predictors and
``n`` the listwise sample:

* ``delta_r2 = R²_k − R²_{k−1}`` (``R²_0 = 0``);
* ``df1 = p_k − p_{k−1}``, ``df2 = n − p_k − 1``;
* ``F change = (delta_r2 / df1) / ((1 − R²_k) / df2)``, ``p = P(F(df1, df2) > F change)``;
* ``f² = delta_r2 / (1 − R²_k)`` — Cohen's (1988, eq. 9.2.3) effect size of the set added in
  block k over the blocks before it, with the error of the model that contains it (the *full*
  model of that comparison). Then ``F change = f² · df2 / df1``, so f² is the effect size
  whose power the F change test has (G*Power "R² increase").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..blas import single_thread
from ..errors import ConfigError
from .pooling import rubin
from .distributions import chi2_sf, f_sf, t_ppf, t_sf

__all__ = ["BlockResult", "HierarchicalResult", "design_matrix", "hierarchical_regression", "pool_hierarchical"]


def _f(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def design_matrix(data: pd.DataFrame, columns: Sequence[str], categorical: Sequence[str] = ()
                  ) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Numeric design columns (no intercept) and, per variable, the columns it became.

    A categorical variable becomes one 0/1 dummy per level but the first (sorted levels;
    the first is the reference, as PROCESS and SPSS's default indicator coding), named
    ``<var>[<level>]``. Other variables must be numeric (booleans become 0/1).
    """
    out: dict[str, np.ndarray] = {}
    mapping: dict[str, list[str]] = {}
    for col in columns:
        series = data[col]
        if col in categorical:
            levels = sorted(pd.unique(series.dropna()), key=lambda v: (str(type(v)), v))
            names = []
            for level in levels[1:]:
                label = f"{col}[{level:g}]" if isinstance(level, (float, np.floating)) else f"{col}[{level}]"
                out[label] = (series == level).to_numpy(dtype=float)
                names.append(label)
            mapping[col] = names
        else:
            if series.dtype == bool:
                series = series.astype(float)
            if not pd.api.types.is_numeric_dtype(series):
                raise ConfigError(f"column {col!r} is not numeric (dtype {series.dtype}); "
                                  f"list it in categorical=[...] to dummy-code it")
            out[col] = series.to_numpy(dtype=float)
            mapping[col] = [col]
    return pd.DataFrame(out, index=data.index), mapping


@dataclass(frozen=True)
class BlockResult:
    """Change statistics of one block (the model with blocks 1..k vs blocks 1..k−1)."""

    block: int
    predictors: tuple[str, ...]
    terms: tuple[str, ...]
    r: float
    r2: float
    adj_r2: float
    delta_r2: float
    f_change: float
    df1: int
    df2: float
    p: float
    f2: float
    #: df2 is fractional for pooled results (D2 denominator df)

    def to_dict(self) -> dict[str, Any]:
        return {"block": self.block, "predictors": list(self.predictors), "terms": list(self.terms),
                "r": _f(self.r), "r2": _f(self.r2), "adj_r2": _f(self.adj_r2), "delta_r2": _f(self.delta_r2),
                "f_change": _f(self.f_change), "df1": int(self.df1),
                "df2": int(self.df2) if float(self.df2).is_integer() else _f(self.df2), "p": _f(self.p),
                "f2": _f(self.f2)}


@dataclass(frozen=True, eq=False)
class HierarchicalResult:
    """Result of :func:`hierarchical_regression`."""

    y: str
    n: int
    n_dropped: int
    blocks: tuple[BlockResult, ...]
    coefficients: pd.DataFrame      # final model: coef, se, t, p, ci_low, ci_high (index: term)
    conf: float
    #: pooled over this many imputations (None: one data set)
    imputations: int | None = None
    #: how the blocks and coefficients were pooled (None: one data set)
    pooling: str | None = None

    def to_dict(self) -> dict[str, Any]:
        coefs = {term: {k: _f(v) for k, v in row.items()} for term, row in self.coefficients.iterrows()}
        out = {"y": self.y, "n": int(self.n), "n_dropped": int(self.n_dropped),
               "blocks": [b.to_dict() for b in self.blocks], "coefficients": coefs, "conf": self.conf}
        if self.imputations is not None:
            out["imputations"] = int(self.imputations)
            out["pooling"] = self.pooling
        return out

    def to_frame(self) -> pd.DataFrame:
        rows = [b.to_dict() for b in self.blocks]
        frame = pd.DataFrame(rows)
        frame.insert(0, "y", self.y)
        frame.insert(1, "n", self.n)
        frame["predictors"] = frame["predictors"].map(", ".join)
        return frame.drop(columns=["terms"])

    def summary(self) -> str:
        lines = [f"Hierarchical regression of {self.y} (n = {self.n}, {self.n_dropped} dropped listwise)",
                 f"{'block':>5} {'R2':>7} {'dR2':>7} {'F chg':>9} {'df1':>4} {'df2':>5} {'p':>8} {'f2':>7}  added"]
        for b in self.blocks:
            lines.append(f"{b.block:>5} {b.r2:>7.4f} {b.delta_r2:>7.4f} {b.f_change:>9.3f} {b.df1:>4} {b.df2:>5} "
                         f"{b.p:>8.4f} {b.f2:>7.4f}  {', '.join(b.predictors)}")
        lines.append("f2 = delta R2 / (1 - R2 of the model including the block) (Cohen 1988)")
        if self.imputations is not None:
            lines.append(f"pooled over {self.imputations} imputations: {self.pooling}")
        return "\n".join(lines)


def _fit(X: np.ndarray, yv: np.ndarray) -> tuple[np.ndarray, float, int]:
    beta, _, rank, _ = np.linalg.lstsq(X, yv, rcond=None)
    resid = yv - X @ beta
    return beta, float(resid @ resid), int(rank)


@single_thread()  # one BLAS thread: the same digits under any thread count
def hierarchical_regression(data: pd.DataFrame, y: str, blocks: Sequence[Sequence[str]],
                            categorical: Sequence[str] = (), *, conf: float = 0.95) -> HierarchicalResult:
    """OLS with predictors entered in blocks; R², ΔR², F change, df1, df2, p and f² per block.

    Parameters
    ----------
    data
        One row per case.
    y
        Dependent variable.
    blocks
        Predictor names per block, e.g. ``[covariates, ["qoli20_9m"]]``; block k's model holds
        blocks 1..k.
    categorical
        Predictors to dummy-code (first sorted level = reference); each counts its dummies in df1.
    conf
        Level of the coefficient CIs of the final model.

    Returns
    -------
    HierarchicalResult
        One :class:`BlockResult` per block (formulas in the module docstring) and the final
        model's coefficients.

    Notes
    -----
    Rows missing ``y`` or any predictor of any block are dropped first (listwise over all
    blocks, as SPSS does), so every block is compared on the same cases. A block whose
    columns are all redundant with earlier ones is an error.

    References
    ----------
    Cohen, J. (1988). *Statistical power analysis for the behavioral sciences* (2nd ed.),
    ch. 9. Cohen, J., Cohen, P., West, S. G., & Aiken, L. S. (2003). *Applied multiple
    regression/correlation analysis* (3rd ed.), sec. 5.5. IBM SPSS Statistics REGRESSION,
    ``/STATISTICS CHANGE`` (R Square Change, F Change, df1, df2, Sig. F Change).
    """
    blocks = [list(b) for b in blocks]
    if not blocks or any(len(b) == 0 for b in blocks):
        raise ConfigError(f"hierarchical_regression: blocks must be non-empty lists of predictors; got {blocks!r}")
    flat = [c for b in blocks for c in b]
    if len(set(flat)) != len(flat):
        raise ConfigError("hierarchical_regression: a predictor appears in more than one block")
    if y in flat:
        raise ConfigError(f"hierarchical_regression: {y!r} is both the dependent variable and a predictor")
    missing = [c for c in [y, *flat] if c not in data.columns]
    if missing:
        raise ConfigError(f"hierarchical_regression: column(s) {missing} not in the data")
    bad_cat = [c for c in categorical if c not in flat]
    if bad_cat:
        raise ConfigError(f"hierarchical_regression: categorical {bad_cat} are not predictors of any block")
    if not 0 < conf < 1:
        raise ConfigError(f"conf must be in (0, 1); got {conf}")

    frame = data[[y, *flat]]
    keep = frame.notna().all(axis=1)
    frame = frame.loc[keep]
    n = len(frame)
    n_dropped = int((~keep).sum())
    yv = pd.to_numeric(frame[y], errors="raise").to_numpy(dtype=float)
    design, mapping = design_matrix(frame, flat, categorical)

    tss = float(((yv - yv.mean()) ** 2).sum())
    if tss <= 0:
        raise ConfigError(f"hierarchical_regression: {y!r} is constant in the {n} complete rows")
    results: list[BlockResult] = []
    prev_r2, prev_p = 0.0, 0
    terms_so_far: list[str] = []
    beta = sse = None
    X = np.ones((n, 1))
    for k, block in enumerate(blocks, start=1):
        block_terms = [t for c in block for t in mapping[c]]
        terms_so_far += block_terms
        X = np.column_stack([np.ones(n), design[terms_so_far].to_numpy()])
        beta, sse, rank = _fit(X, yv)
        p_k = rank - 1
        df1 = p_k - prev_p
        df2 = n - p_k - 1
        if df1 < 1:
            raise ConfigError(f"hierarchical_regression: block {k} ({block}) adds no predictor that is not "
                              f"redundant with the earlier blocks")
        if df2 < 1:
            raise ConfigError(f"hierarchical_regression: {n} complete rows are too few for {p_k} predictors")
        r2 = 1.0 - sse / tss
        delta = r2 - prev_r2
        f_change = (delta / df1) / ((1.0 - r2) / df2)
        p = float(f_sf(f_change, df1, df2))
        adj = 1.0 - (1.0 - r2) * (n - 1) / df2
        results.append(BlockResult(k, tuple(block), tuple(block_terms), math.sqrt(max(r2, 0.0)), r2, adj, delta,
                                   f_change, df1, df2, p, delta / (1.0 - r2)))
        prev_r2, prev_p = r2, p_k

    # Coefficients of the final model (ordinary OLS covariance).
    df_resid = n - (np.linalg.matrix_rank(X))
    sigma2 = sse / df_resid
    xtx_inv = np.linalg.pinv(X.T @ X)
    se = np.sqrt(np.diag(xtx_inv) * sigma2)
    t = beta / se
    pv = 2 * t_sf(np.abs(t), df_resid)
    q = t_ppf(0.5 + conf / 2, df_resid)
    coefs = pd.DataFrame({"coef": beta, "se": se, "t": t, "p": pv, "ci_low": beta - q * se, "ci_high": beta + q * se},
                         index=["constant", *terms_so_far])
    return HierarchicalResult(y=y, n=n, n_dropped=n_dropped, blocks=tuple(results), coefficients=coefs, conf=conf)


POOLING_TEXT = ("R2 pooled on Fisher's z of R (Harel 2009); F change pooled by D2 (Li, Meng, Raghunathan & Rubin "
                "1991); coefficients by Rubin's rules with Barnard-Rubin df")


def _d2(d: np.ndarray, k: int) -> tuple[float, float, float]:
    """D2 pooled F of m Wald chi-square statistics with k df: (F, df2, p)."""
    m = len(d)
    dbar = float(np.mean(d))
    r = (1 + 1 / m) * float(np.var(np.sqrt(d), ddof=1))
    val = (dbar / k - (m + 1) / (m - 1) * r) / (1 + r)
    v = k ** (-3 / m) * (m - 1) * (1 + 1 / r) ** 2 if r > 0 else math.inf
    p = float(f_sf(max(val, 0.0), k, v)) if math.isfinite(v) else float(chi2_sf(max(val, 0) * k, k))
    return max(val, 0.0), v, p


def _harel(r2: np.ndarray) -> float:
    z = np.arctanh(np.sqrt(np.clip(r2, 0.0, 1.0 - 1e-15)))
    return float(np.tanh(z.mean()) ** 2)


def pool_hierarchical(results: Sequence[HierarchicalResult]) -> HierarchicalResult:
    """Pool hierarchical regressions fitted to each of m imputed data sets.

    * R² and adjusted R² of each block's model: Harel's (2009) method, the mean of Fisher's z
      of R back-transformed (R's ``mice::pool.r.squared``); ``delta_r2`` is the difference of
      the pooled R² and ``f2 = delta_r2 / (1 − R²_k)`` of the pooled values;
    * F change: the D2 statistic of Li, Meng, Raghunathan & Rubin (1991) on the m Wald
      statistics ``df1 · F change`` (R's ``mice::D2`` / ``mitml::testModels(method = "D2")``),
      with its denominator df as ``df2`` (fractional); a negative D2 is reported as 0 (p = 1);
    * coefficients of the final model: Rubin's (1987) rules with the Barnard & Rubin (1999)
      df (R's ``mice::pool``); the ``df`` column holds them.

    Parameters
    ----------
    results
        :func:`hierarchical_regression` results of the same model on each imputed data set (m ≥ 2).

    References
    ----------
    Harel, O. (2009). The estimation of R² and adjusted R² in incomplete data sets using
    multiple imputation. *J. Appl. Stat.* 36, 1109-1118. Li, K. H., Meng, X. L.,
    Raghunathan, T. E., & Rubin, D. B. (1991). Significance levels from repeated p-values with
    multiply-imputed data. *Statistica Sinica* 1, 65-92. Barnard, J., & Rubin, D. B. (1999).
    Small-sample degrees of freedom with multiple imputation. *Biometrika* 86, 948-955.
    """
    results = list(results)
    m = len(results)
    if m < 2:
        raise ConfigError(f"pool_hierarchical needs at least 2 imputations; got {m}")
    first = results[0]
    shapes = {(r.y, tuple(b.terms for b in r.blocks), tuple(r.coefficients.index)) for r in results}
    if len(shapes) != 1:
        raise ConfigError("pool_hierarchical: the results differ in dependent variable, blocks or terms")
    blocks: list[BlockResult] = []
    prev_r2 = 0.0
    for j, b0 in enumerate(first.blocks):
        r2 = _harel(np.array([r.blocks[j].r2 for r in results]))
        adj = _harel(np.array([max(r.blocks[j].adj_r2, 0.0) for r in results]))
        d = np.array([r.blocks[j].f_change * r.blocks[j].df1 for r in results])
        f_change, df2, p = _d2(d, b0.df1)
        delta = r2 - prev_r2
        blocks.append(BlockResult(b0.block, b0.predictors, b0.terms, math.sqrt(r2), r2, adj, delta, f_change,
                                  b0.df1, df2, p, delta / (1.0 - r2)))
        prev_r2 = r2
    q = np.stack([r.coefficients["coef"].to_numpy() for r in results])
    u = np.stack([r.coefficients["se"].to_numpy() ** 2 for r in results])
    dfcom = first.blocks[-1].df2
    pooled = rubin(q, u, dfcom, first.conf)
    coefs = pd.DataFrame({"coef": pooled.estimate, "se": pooled.se, "t": pooled.statistic, "p": pooled.p,
                          "ci_low": pooled.ci_low, "ci_high": pooled.ci_high, "df": pooled.df},
                         index=first.coefficients.index)
    return HierarchicalResult(y=first.y, n=first.n, n_dropped=first.n_dropped, blocks=tuple(blocks),
                              coefficients=coefs, conf=first.conf, imputations=m, pooling=POOLING_TEXT)
