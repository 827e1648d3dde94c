"""Nested data: intraclass correlations from random-intercept models, and the paper's alpha rule.

Clients are nested in case managers, who are nested in teams. The study checked this
nonindependence with the ICC of each dependent variable and, where an ICC exceeded 0.05,
tested the paths into that variable at alpha = 0.01 instead of 0.05 (Kreft & de Leeuw 1998;
Musca et al. 2011). This module computes those ICCs (:func:`icc`) and applies the rule per
path of a mediation model (:func:`alpha_decisions`).

ICCs come from the variance components of an intercept-only linear mixed model fitted by
restricted maximum likelihood at the REML optimum (the profiled nested random-intercept engine of
:mod:`fidelitymed.stats.multilevel.lmm`, equal to lme4 to 1e-4 relative), the same model as R's
``lme4::lmer(y ~ 1 + (1 | team))`` and ``lmer(y ~ 1 + (1 | team/case_manager))`` (Raudenbush &
Bryk 2002, ch. 2; Snijders & Bosker 2012, sec. 3.3 and 4.9):

* one level: ``icc_team = s2_team / (s2_team + s2_e)``;
* two nested levels: ``icc_team = s2_team / T`` and ``icc_cm = s2_cm / T`` with
  ``T = s2_team + s2_cm + s2_e`` (each level's share of the total variance), and the
  *cumulative* ICC of the lower level ``(s2_team + s2_cm) / T`` — the correlation between two
  clients of the same case manager (who necessarily share the team).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..blas import single_thread
from ..errors import ConfigError
from ._json import json_float
from .multilevel.lmm import NestedGroups, fit_nested_lmm

IccSource = Literal["team", "case_manager", "max"]
PATHS: tuple[str, ...] = ("a", "b", "c_prime", "c")

__all__ = ["AlphaDecisions", "ICCResult", "LevelICC", "PathDecision", "alpha_decisions", "icc"]


_clean = json_float


@dataclass(frozen=True)
class LevelICC:
    """Variance component and ICC of one nesting level."""

    name: str
    variance: float
    icc: float
    n_groups: int
    #: only for the lower of two nested levels: correlation of two clients sharing this unit
    cumulative_icc: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"variance": _clean(self.variance), "icc": _clean(self.icc),
                               "n_groups": int(self.n_groups)}
        if self.cumulative_icc is not None:
            out["cumulative_icc"] = _clean(self.cumulative_icc)
        return out


@dataclass(frozen=True)
class ICCResult:
    """ICCs of one dependent variable (see :func:`icc`)."""

    y: str
    n: int
    n_dropped: int
    residual_variance: float
    levels: tuple[LevelICC, ...]
    converged: bool
    warnings: tuple[str, ...] = field(default=())

    def level(self, name: str) -> LevelICC:
        for lev in self.levels:
            if lev.name == name:
                return lev
        raise KeyError(name)

    def icc_for_rule(self, source: IccSource = "max") -> float:
        """The ICC the alpha rule compares with its threshold.

        ``"team"``: the top level's ICC. ``"case_manager"``: the cumulative ICC of the lower level
        (two clients of one case manager), or its plain ICC for a one-level case-manager model.
        ``"max"``: the largest of all ICCs and cumulative ICCs fitted (with nested levels this is
        the cumulative one, since it adds the team share).
        """
        if source == "max":
            values = [lev.icc for lev in self.levels]
            values += [lev.cumulative_icc for lev in self.levels if lev.cumulative_icc is not None]
            return float(max(values))
        names = [lev.name for lev in self.levels]
        if source == "team":
            return float(self.levels[0].icc)
        if source == "case_manager":
            lev = self.levels[-1]
            if len(self.levels) == 1 and names[0] == "team":
                raise ConfigError("alpha rule uses the case-manager ICC, but only a team level was fitted; "
                                  "fit levels=['team', 'case_manager']")
            return float(lev.cumulative_icc if lev.cumulative_icc is not None else lev.icc)
        raise ConfigError(f"icc source must be 'team', 'case_manager' or 'max'; got {source!r}")

    @property
    def total_variance(self) -> float:
        return float(self.residual_variance + sum(lev.variance for lev in self.levels))

    def to_dict(self) -> dict[str, Any]:
        return {"y": self.y, "n": int(self.n), "n_dropped": int(self.n_dropped),
                "residual_variance": _clean(self.residual_variance),
                "levels": {lev.name: lev.to_dict() for lev in self.levels},
                "converged": bool(self.converged), "warnings": list(self.warnings)}

    def to_frame(self) -> pd.DataFrame:
        rows = [{"y": self.y, "level": lev.name, "n_groups": lev.n_groups, "variance": lev.variance,
                 "icc": lev.icc, "cumulative_icc": lev.cumulative_icc} for lev in self.levels]
        rows.append({"y": self.y, "level": "residual", "n_groups": self.n, "variance": self.residual_variance,
                     "icc": np.nan, "cumulative_icc": np.nan})
        return pd.DataFrame(rows)

    def summary(self) -> str:
        lines = [f"ICC of {self.y} (REML random-intercept model, n = {self.n})"]
        for lev in self.levels:
            extra = f", cumulative ICC = {lev.cumulative_icc:.4f}" if lev.cumulative_icc is not None else ""
            lines.append(f"  {lev.name:<14} groups = {lev.n_groups:>4}  variance = {lev.variance:.4f}  "
                         f"ICC = {lev.icc:.4f}{extra}")
        lines.append(f"  {'residual':<14}                variance = {self.residual_variance:.4f}")
        for w in self.warnings:
            lines.append(f"  note: {w}")
        return "\n".join(lines)


@single_thread()  # one BLAS thread: the same digits under any thread count
def icc(data: pd.DataFrame, y: str, levels: Sequence[str] = ("team",)) -> ICCResult:
    """Intraclass correlations of ``y`` from an intercept-only REML mixed model.

    Parameters
    ----------
    data
        One row per client.
    y
        The dependent variable (numeric column).
    levels
        The grouping columns from the top down: ``["team"]`` (clients in teams) or
        ``["team", "case_manager"]`` (clients in case managers within teams; a case-manager id
        only needs to be unique within its team).

    Returns
    -------
    ICCResult
        ``.to_dict()`` → ``y``, ``n``, ``residual_variance``, ``levels`` → {level → {``variance``,
        ``icc``, and ``cumulative_icc`` for the lower nested level}}.

    Notes
    -----
    Rows missing ``y`` or a grouping id are dropped (counted in ``n_dropped``). A variance
    estimated on its boundary (zero) gives an ICC of 0 and a note in ``warnings``. Fitted by
    profiled REML with :func:`fidelitymed.stats.multilevel.lmm.fit_nested_lmm` (lme4's
    ``(1 | team)`` or ``(1 | team/case_manager)``; Bates et al. 2015).

    References
    ----------
    Snijders, T. A. B., & Bosker, R. J. (2012). *Multilevel analysis* (2nd ed.), sections 3.3
    and 4.9 (ICCs in three-level models). Raudenbush, S. W., & Bryk, A. S. (2002).
    *Hierarchical linear models* (2nd ed.), ch. 2.
    """
    levels = list(levels)
    if not 1 <= len(levels) <= 2:
        raise ConfigError(f"icc: levels must name one or two nested grouping columns; got {levels!r}")
    if len(set(levels)) != len(levels):
        raise ConfigError(f"icc: levels must be distinct; got {levels!r}")
    missing = [c for c in [y, *levels] if c not in data.columns]
    if missing:
        raise ConfigError(f"icc: column(s) {missing} not in the data; available: {list(data.columns)}")
    frame = data[[y, *levels]].copy()
    frame[y] = pd.to_numeric(frame[y], errors="coerce")
    keep = frame.notna().all(axis=1)
    n_dropped = int((~keep).sum())
    frame = frame.loc[keep]
    n = len(frame)
    top = frame[levels[0]].astype(str).to_numpy()
    n_top = len(np.unique(top))
    if n_top < 2 or n < 3:
        raise ConfigError(f"icc: {y!r} needs at least 2 groups of {levels[0]!r} and 3 complete rows; "
                          f"got {n_top} groups, {n} rows")
    notes: list[str] = []
    groups = NestedGroups.from_columns([frame[c].to_numpy() for c in levels], levels)
    fit = fit_nested_lmm(frame[y].to_numpy(dtype=float), np.ones((n, 1)), groups, names=["(Intercept)"])
    converged = bool(fit.converged)
    var_top, resid = fit.variances[0], fit.residual_variance
    if len(levels) == 1:
        total = var_top + resid
        result_levels = (LevelICC(levels[0], var_top, var_top / total, n_top),)
    else:
        var_low = fit.variances[1]
        total = var_top + var_low + resid
        result_levels = (LevelICC(levels[0], var_top, var_top / total, n_top),
                         LevelICC(levels[1], var_low, var_low / total, groups.sizes[1],
                                  cumulative_icc=(var_top + var_low) / total))
    for lev in result_levels:
        if lev.variance < 1e-8 * max(total, 1e-300):
            notes.append(f"{lev.name} variance estimated at its boundary (0)")
    return ICCResult(y=y, n=n, n_dropped=n_dropped, residual_variance=resid, levels=result_levels,
                     converged=converged, warnings=tuple(notes))


# --------------------------------------------------------------------------- the alpha rule

@dataclass(frozen=True)
class PathDecision:
    """The significance decision for one path under the ICC alpha rule."""

    path: str
    dependent_variable: str
    icc: float | None
    alpha: float | None
    p: float | None
    significant: bool
    reason: str
    ci_low: float | None = None
    ci_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"path": self.path, "dependent_variable": self.dependent_variable, "icc": _clean(self.icc),
               "alpha": self.alpha, "p": _clean(self.p), "significant": bool(self.significant),
               "reason": self.reason}
        if self.path == "indirect":
            out["ci_low"] = _clean(self.ci_low)
            out["ci_high"] = _clean(self.ci_high)
        return out


@dataclass(frozen=True)
class AlphaDecisions:
    """Per-path decisions of one mediation model (paths a, b, c′, c and the indirect effect)."""

    decisions: tuple[PathDecision, ...]
    threshold: float
    icc_source: str

    def __getitem__(self, path: str) -> PathDecision:
        for d in self.decisions:
            if d.path == path:
                return d
        raise KeyError(path)

    @property
    def alpha(self) -> dict[str, float]:
        """Path → alpha used (the ``alpha`` key of a mediation record)."""
        return {d.path: d.alpha for d in self.decisions if d.path != "indirect"}

    @property
    def significant(self) -> dict[str, bool]:
        """Path → decision (the ``significant`` key of a mediation record)."""
        return {d.path: bool(d.significant) for d in self.decisions}

    def to_dict(self) -> list[dict[str, Any]]:
        return [d.to_dict() for d in self.decisions]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.to_dict())

    def summary(self) -> str:
        lines = [f"Alpha rule: ICC > {self.threshold:g} -> stricter alpha (ICC source: {self.icc_source})"]
        for d in self.decisions:
            verdict = "significant" if d.significant else "not significant"
            lines.append(f"  {d.path:<8} {verdict:<16} {d.reason}")
        return "\n".join(lines)


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or not math.isfinite(float(x)):
        return "NA"
    x = float(x)
    if 0 < abs(x) < 0.001:
        return f"{x:.1e}"
    return f"{x:.{digits}f}"


def alpha_decisions(p_values: Mapping[str, float], indirect_ci: tuple[float, float], *,
                    mediator: str, outcome: str,
                    icc_mediator: float | ICCResult | None, icc_outcome: float | ICCResult | None,
                    threshold: float = 0.05, alpha: float = 0.05, adjusted_alpha: float = 0.01,
                    icc_source: IccSource = "max", conf: float = 0.95) -> AlphaDecisions:
    """Apply the study's nested-data alpha rule to one mediation model.

    The rule (Methods, "Nested data"): a path whose dependent variable has an ICC above
    ``threshold`` is tested at ``adjusted_alpha`` (0.01) instead of ``alpha`` (0.05):
    path *a* (dependent variable: the mediator), paths *b* and *c′* (the outcome equation) and
    *c* (the total-effect equation, also the outcome). The indirect effect *ab* counts as
    significant only if its bootstrap CI excludes 0 **and** both *a* and *b* are significant at
    their alphas ("their mediating paths were also considered nonsignificant"). The CI level
    itself is not changed (the paper kept 95% CIs).

    Parameters
    ----------
    p_values
        ``{"a": p, "b": p, "c_prime": p, "c": p}``.
    indirect_ci
        ``(ci_low, ci_high)`` of the indirect effect.
    mediator, outcome
        Names of the dependent variables (shown in the decisions), e.g. ``"rprs_4.5m"``.
    icc_mediator, icc_outcome
        Their ICCs: a number, an :class:`ICCResult` (reduced with ``icc_source``), or ``None``
        when unknown (the unadjusted alpha is then used and the reason says so).
    threshold, alpha, adjusted_alpha
        The rule: ICC > threshold → adjusted_alpha (strict inequalities: p < alpha).
    icc_source
        Which ICC of an :class:`ICCResult` feeds the rule; see :meth:`ICCResult.icc_for_rule`.
    conf
        Confidence level of ``indirect_ci`` (for the reason text).

    References
    ----------
    Kreft, I., & de Leeuw, J. (1998). *Introducing multilevel modeling*. Sage.
    Musca, S. C., et al. (2011). Data with hierarchical structure: impact of intraclass
    correlation and sample size on Type-I error. *Frontiers in Psychology*, 2, 74.
    """
    if not 0 < adjusted_alpha <= alpha < 1:
        raise ConfigError(f"alpha rule: expected 0 < adjusted_alpha <= alpha < 1; got adjusted_alpha={adjusted_alpha}, "
                          f"alpha={alpha}")
    missing = [p for p in PATHS if p not in p_values]
    if missing:
        raise ConfigError(f"alpha_decisions: p_values lacks path(s) {missing}")

    def reduce(value: float | ICCResult | None) -> float | None:
        if isinstance(value, ICCResult):
            return value.icc_for_rule(icc_source)
        return _clean(value)

    iccs = {"mediator": reduce(icc_mediator), "outcome": reduce(icc_outcome)}
    dv_of = {"a": ("mediator", mediator), "b": ("outcome", outcome), "c_prime": ("outcome", outcome),
             "c": ("outcome", outcome)}
    decisions: list[PathDecision] = []
    for path in PATHS:
        role, dv = dv_of[path]
        value = iccs[role]
        if value is None:
            path_alpha = alpha
            why_alpha = f"ICC of {dv} unknown, alpha {alpha:g}"
        elif value > threshold:
            path_alpha = adjusted_alpha
            why_alpha = f"ICC of {dv} = {_fmt(value)} > {threshold:g}, alpha {adjusted_alpha:g}"
        else:
            path_alpha = alpha
            why_alpha = f"ICC of {dv} = {_fmt(value)} <= {threshold:g}, alpha {alpha:g}"
        p = _clean(p_values[path])
        sig = p is not None and p < path_alpha
        cmp = "<" if sig else ">="
        reason = f"p = {_fmt(p)} {cmp} {path_alpha:g} ({why_alpha})" if p is not None else f"p unavailable ({why_alpha})"
        decisions.append(PathDecision(path, dv, value, path_alpha, p, sig, reason))
    low, high = (_clean(indirect_ci[0]), _clean(indirect_ci[1]))
    ci_excludes = low is not None and high is not None and (low > 0 or high < 0)
    a_dec, b_dec = decisions[0], decisions[1]
    parts = [f"{conf:.0%} CI [{_fmt(low)}, {_fmt(high)}] {'excludes' if ci_excludes else 'includes'} 0"]
    parts.append(f"a {'significant' if a_dec.significant else 'not significant'} at {a_dec.alpha:g}")
    parts.append(f"b {'significant' if b_dec.significant else 'not significant'} at {b_dec.alpha:g}")
    ind_sig = bool(ci_excludes and a_dec.significant and b_dec.significant)
    icc_vals = [v for v in iccs.values() if v is not None]
    decisions.append(PathDecision("indirect", f"{mediator} -> {outcome}", max(icc_vals) if icc_vals else None,
                                  None, None, ind_sig, "; ".join(parts), ci_low=low, ci_high=high))
    return AlphaDecisions(decisions=tuple(decisions), threshold=float(threshold), icc_source=str(icc_source))
