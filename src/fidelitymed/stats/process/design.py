"""Input of PROCESS Model 4: checked options, listwise deletion, numeric columns, covariates by equation.

Everything here runs before any model is fitted: it turns a DataFrame and the user's arguments
into a :class:`Design` of plain arrays (X, the mediators, Y, the covariate design columns and
which equations each of them enters) and into checked options.  The model families
(:mod:`.linear`, :mod:`.logistic`) start from a :class:`Design`.

Covariates by equation follow PROCESS (Hayes 2022, Appendix A): ``covmy=0|1|2`` is
``covariates_in="all"|"mediators"|"outcome"`` and ``cmatrix`` is ``covariate_map``, a mapping
``{covariate: ["mediators", "outcome"]}`` for the covariates that differ from ``covariates_in``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ...errors import ConfigError, DataIssue, StudyDataError
from ...seeding import SeedLike

__all__ = ["Design", "NonNumericCellsError", "MAX_MEDIATORS", "COVARIATES_IN", "CI_METHODS", "prepare",
           "check_options", "hc_cov_type", "seed_report", "mediator_list"]

#: PROCESS Model 4 allows up to 10 parallel mediators.
MAX_MEDIATORS = 10
#: ``covariates_in`` values and the equations each one puts the covariates in (PROCESS ``covmy``).
COVARIATES_IN = {"all": ("mediators", "outcome"), "mediators": ("mediators",), "outcome": ("outcome",)}
#: Interval methods of the indirect effects: bootstrap (percentile, BC, BCa) or Monte Carlo.
CI_METHODS = ("percentile", "bc", "bca", "monte_carlo")
_RESERVED_EQUATIONS = ("outcome", "total")


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


def hc_cov_type(hc) -> str:
    """``None`` -> ``"nonrobust"``; 0-4 or ``"HC0"``..``"HC4"`` -> ``"HCk"``; ``"CR2"`` kept."""
    if hc is None:
        return "nonrobust"
    if isinstance(hc, (int, np.integer)) and not isinstance(hc, bool) and 0 <= int(hc) <= 4:
        return f"HC{int(hc)}"
    if isinstance(hc, str) and hc.strip().upper() in ("HC0", "HC1", "HC2", "HC3", "HC4", "CR2"):
        return hc.strip().upper()
    raise ConfigError(f"hc must be None, 0-4, 'HC0'..'HC4' or 'CR2' (with cluster=); got {hc!r}")


def mediator_list(m) -> tuple[str, ...]:
    """The mediators as a tuple: one column name or a list of 1..:data:`MAX_MEDIATORS` names."""
    names = (m,) if isinstance(m, str) else tuple(m) if isinstance(m, Sequence) else None
    if not names or not all(isinstance(c, str) and c for c in names):
        raise ConfigError(f"m must name a column or list 1-{MAX_MEDIATORS} columns; got {m!r}")
    if len(names) > MAX_MEDIATORS:
        raise ConfigError(f"PROCESS Model 4 takes at most {MAX_MEDIATORS} parallel mediators; got {len(names)}")
    clash = [c for c in names if c in _RESERVED_EQUATIONS]
    if len(names) > 1 and clash:
        raise ConfigError(f"a mediator may not be named {clash[0]!r} (the name of an equation in the results)")
    return names


def check_options(n_boot, conf, ci, hc, cluster, n_mc) -> tuple[int, float, str, int]:
    """Checked ``(n_boot, conf, cov_type, n_mc)``."""
    for name, value in (("n_boot", n_boot), ("n_mc", n_mc)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ConfigError(f"{name} must be a whole number >= 0 (0 = none); got {value!r}")
    if isinstance(conf, bool) or not isinstance(conf, (int, float, np.floating)) or not 0.0 < float(conf) < 1.0:
        raise ConfigError(f"conf must be a proportion strictly between 0 and 1 (e.g. 0.95); got {conf!r}")
    if ci not in CI_METHODS:
        raise ConfigError(f"ci must be one of {', '.join(CI_METHODS)}; got {ci!r}")
    cov_type = hc_cov_type(hc)
    if cov_type == "CR2":
        if cluster is None:
            raise ConfigError("hc='CR2' (Bell-McCaffrey cluster-robust SEs) needs cluster=<column>")
    elif cluster is not None and hc is not None:
        raise ConfigError("give either hc= (heteroscedasticity-consistent) or cluster= (cluster-robust), not both "
                          "(except hc='CR2' with cluster=)")
    if ci == "monte_carlo" and n_mc < 1:
        raise ConfigError("ci='monte_carlo' needs n_mc >= 1 Monte Carlo draws")
    return int(n_boot), float(conf), cov_type, int(n_mc)


def seed_report(seed: SeedLike, seq: np.random.SeedSequence):
    """The seed as results report it: the int given, the entropy drawn, or a child's entropy and key."""
    if isinstance(seed, np.random.SeedSequence):
        if seq.spawn_key:
            return {"entropy": int(seq.entropy), "spawn_key": [int(k) for k in seq.spawn_key]}
        return int(seq.entropy)
    if seed is None:
        return int(seq.entropy)
    return int(seed)


def level_label(v) -> str:
    """A categorical level as a dummy's name shows it: ``2.0`` as ``2``."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def float_values(s: pd.Series) -> np.ndarray:
    """A numeric or boolean column as float64, NaN where a value is missing.

    A numpy column holds NaN as NaN already; ``na_value=`` would first scan it for missing values
    in pandas (a tenth of a millisecond a column), so only a nullable column (pd.NA) is given it.
    """
    if isinstance(s.dtype, np.dtype):
        return s.to_numpy(dtype=np.float64)
    return s.to_numpy(dtype=np.float64, na_value=np.nan)


def level_order(uniques: Any, present: Sequence[int] | None = None) -> list[int]:
    """Positions in ``uniques`` (of :func:`pandas.factorize`) of a categorical's levels, the
    reference first: numbers sorted, then strings sorted (PROCESS's and SPSS's indicator coding).
    ``present``: only these positions (the levels of the analysed rows)."""
    positions = range(len(uniques)) if present is None else present
    return sorted(positions, key=lambda i: (isinstance(uniques[i], str), uniques[i]))


def _coerce_numeric(s: pd.Series, col: str, positions: np.ndarray) -> np.ndarray:
    """Numbers from a non-numeric column (e.g. strings from a CSV); every bad cell is reported."""
    coerced = pd.to_numeric(s, errors="coerce")
    bad = np.flatnonzero(coerced.isna().to_numpy() & s.notna().to_numpy())
    if bad.size:
        raise NonNumericCellsError([DataIssue(None, int(positions[i]) + 2, col, s.iloc[i], "a number")
                                    for i in bad])
    return coerced.to_numpy(dtype=np.float64)


def covariate_equations(covariates: Sequence[str], covariates_in: str,
                        covariate_map: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    """Equations (``"mediators"``, ``"outcome"``) each covariate enters (PROCESS ``covmy``/``cmatrix``)."""
    if covariates_in not in COVARIATES_IN:
        raise ConfigError(f"covariates_in must be one of {', '.join(COVARIATES_IN)}; got {covariates_in!r}")
    out = {c: COVARIATES_IN[covariates_in] for c in covariates}
    for cov, where in dict(covariate_map or {}).items():
        if cov not in out:
            raise ConfigError(f"covariate_map names {cov!r}, which is not among the covariates")
        where = (where,) if isinstance(where, str) else tuple(where)
        unknown = [w for w in where if w not in ("mediators", "outcome")]
        if unknown or not where:
            raise ConfigError(f"covariate_map[{cov!r}] must list 'mediators' and/or 'outcome'; got {where!r}")
        out[cov] = tuple(e for e in ("mediators", "outcome") if e in where)
    return out


@dataclass(frozen=True)
class Design:
    """The complete cases as arrays, ready for the model families.

    ``C`` holds every covariate design column (dummies expanded, named ``col[T.level]``);
    ``in_mediators``/``in_outcome`` say which of them enter the mediator equations and the
    outcome (and total) equation.  ``y_levels`` is set when Y is dichotomous: its two values,
    coded 0 and 1 in ``y``.  ``rows`` are the positions of the complete cases in the data (models
    with the same ``rows`` can share resamples).
    """

    x: np.ndarray
    M: np.ndarray  # (n, k) mediators
    y: np.ndarray
    C: np.ndarray
    covariate_names: tuple[str, ...]
    in_mediators: np.ndarray  # bool per column of C
    in_outcome: np.ndarray
    clusters: np.ndarray | None
    n_dropped: int
    y_levels: tuple[float, float] | None = None
    rows: np.ndarray | None = None  # positions of the complete cases in the data


    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def covariates_of(self, equation: str) -> np.ndarray:
        """The (C-contiguous) covariate columns of ``"mediators"`` or ``"outcome"``.

        C order matters for bit-for-bit equal fits: a column selection is F-ordered, and BLAS
        rounds a product of another layout differently in the last bit.
        """
        mask = self.in_mediators if equation == "mediators" else self.in_outcome
        return np.ascontiguousarray(self.C[:, mask])

    @property
    def all_in_all(self) -> bool:
        """Every covariate in every equation (PROCESS's condition for its total effect model)."""
        return bool(self.in_mediators.all() and self.in_outcome.all())

    @property
    def x_is_dichotomous(self) -> bool:
        return np.unique(self.x).size == 2


def prepare(data: pd.DataFrame, x: str, m: Sequence[str], y: str, covariates: Sequence[str],
            categorical: Sequence[str], cluster: str | None, covariates_in: str = "all",
            covariate_map: Mapping[str, Sequence[str]] | None = None, binary_y: bool | None = None) -> Design:
    """Checked, listwise-complete arrays of the model (see :class:`Design`).

    ``binary_y=None`` detects a dichotomous Y (two distinct values) as PROCESS does; ``True``
    requires one, ``False`` keeps OLS for it.
    """
    if not isinstance(data, pd.DataFrame):
        raise ConfigError(f"data must be a pandas DataFrame; got {type(data).__name__}")
    for role, col in (("x", x), ("y", y)):
        if not isinstance(col, str) or not col:
            raise ConfigError(f"{role} must name a column; got {col!r}")
    mediators = list(m)
    covariates = list(covariates)
    categorical = list(categorical)
    where = covariate_equations(covariates, covariates_in, covariate_map)
    used = [x, *mediators, y, *covariates]
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
            arr = float_values(s)
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
    blocks, names, in_med, in_out = [], [], [], []
    for col in covariates:
        if col in categorical:
            s = subset(raw[col])
            # one factorization, then integer comparisons: a pandas == per level cost more than the fits
            codes, uniques = pd.factorize(s if isinstance(s, pd.Series) else pd.Series(s))
            order = level_order(uniques)
            levels = [uniques[i] for i in order]
            if len(levels) < 2:
                raise StudyDataError(column=col, value=levels[0] if levels else None,
                                     expected="at least two levels of a categorical covariate")
            for code, lev in zip(order[1:], levels[1:]):
                blocks.append((codes == code).astype(np.float64))
                names.append(f"{col}[T.{level_label(lev)}]")
                in_med.append("mediators" in where[col])
                in_out.append("outcome" in where[col])
        else:
            blocks.append(values[col])
            names.append(col)
            in_med.append("mediators" in where[col])
            in_out.append("outcome" in where[col])
    n = len(positions)
    C = np.column_stack(blocks) if blocks else np.empty((n, 0))
    clusters = None
    if cluster is not None:
        clusters = subset(raw[cluster])
        clusters = clusters if isinstance(clusters, np.ndarray) else clusters.to_numpy()
    yv = values[y]
    y_levels = None
    levels_y = np.unique(yv)
    if binary_y is None and levels_y.size == 2 or binary_y:
        if levels_y.size != 2:
            raise StudyDataError(column=y, value=f"{levels_y.size} distinct values",
                                 expected="a dichotomous outcome (two distinct values) for binary_y=True")
        y_levels = (float(levels_y[0]), float(levels_y[1]))
        yv = (yv == levels_y[1]).astype(np.float64)  # PROCESS codes the lower value 0, the higher 1
    return Design(values[x], np.column_stack([values[c] for c in mediators]), yv, C, tuple(names),
                  np.array(in_med, dtype=bool), np.array(in_out, dtype=bool), clusters, n_dropped, y_levels,
                  positions)
