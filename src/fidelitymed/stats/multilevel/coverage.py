"""Coverage of the a path's CI under nested data: multilevel (REML, Satterthwaite) against OLS.

Simulates ``n_rep`` data sets from the mediator equation of a 2-1-1 design with known variance
components, ``M = intercept + a X_team + u_team + u_cm + e`` (``u_team ~ N(0, var_team)``,
``u_cm ~ N(0, var_case_manager)``, ``e ~ N(0, var_residual)``) on a fixed nesting structure and
fixed team-level X, and counts how often each method's ``conf`` interval for ``a`` covers the
true value:

* multilevel: ``M ~ X + (1 | team/case_manager)`` by REML, t interval with lmerTest's Satterthwaite
  df (what :func:`fidelitymed.mediate_multilevel` reports as ``a_between``);
* OLS: ``M ~ X`` with the classical t interval (what single-level PROCESS reports).

All replicates are generated in one array and fitted together (:func:`.lmm.fit_nested_lmm_batch`,
OLS by one matrix product), in blocks of ``block`` replicates; block ``k`` draws from the
``SeedSequence`` child keyed ``("coverage", k)``, so the same seed and block size give the same
numbers on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ConfigError
from ...seeding import SeedLike, generator
from .lmm import NestedGroups, fit_nested_lmm_batch
from ..distributions import t_ppf

__all__ = ["CoverageResult", "coverage_a_path"]


@dataclass(frozen=True)
class CoverageResult:
    """Coverage of the a path's CI by the multilevel and the OLS interval."""

    n_rep: int
    conf: float
    a: float
    multilevel: float
    ols: float
    multilevel_mean_df: float
    share_singular: float
    mean_width_multilevel: float
    mean_width_ols: float

    @property
    def mc_se(self) -> float:
        """Monte Carlo SE of a coverage near ``conf``."""
        return float(np.sqrt(self.conf * (1.0 - self.conf) / self.n_rep))

    def to_dict(self) -> dict[str, Any]:
        return {"n_rep": self.n_rep, "conf": self.conf, "a": self.a, "coverage_multilevel": self.multilevel,
                "coverage_ols": self.ols, "mc_se": self.mc_se, "multilevel_mean_df": self.multilevel_mean_df,
                "share_singular": self.share_singular, "mean_width_multilevel": self.mean_width_multilevel,
                "mean_width_ols": self.mean_width_ols}

    def summary(self) -> str:
        return (f"{self.n_rep} replicates, {self.conf:.0%} CI of a = {self.a:g}: coverage multilevel (REML, "
                f"Satterthwaite df, mean {self.multilevel_mean_df:.1f}) = {self.multilevel:.3f}, OLS = {self.ols:.3f} "
                f"(Monte Carlo SE {self.mc_se:.3f}); mean CI width {self.mean_width_multilevel:.3f} vs "
                f"{self.mean_width_ols:.3f}; singular fits {self.share_singular:.1%}")


def coverage_a_path(team: np.ndarray, case_manager: np.ndarray, x_team: dict | np.ndarray, *, a: float,
                    var_team: float, var_case_manager: float, var_residual: float, intercept: float = 0.0,
                    n_rep: int = 1000, conf: float = 0.95, seed: SeedLike = None, block: int = 250) -> CoverageResult:
    """Coverage of the multilevel and the OLS ``conf`` CI of ``a`` over ``n_rep`` simulated data sets.

    Parameters
    ----------
    team, case_manager
        Nesting of the clients (one entry per client; case-manager ids within teams).
    x_team
        The team-level predictor: a mapping team -> value, or one value per client (constant
        within teams).
    a, var_team, var_case_manager, var_residual, intercept
        The true model (e.g. the simulator's ``truth.json`` equation of the alliance).
    n_rep, conf, seed, block
        Replicates, interval level, seed (block ``k`` uses the child stream keyed ``("coverage", k)``),
        replicates fitted together per block.
    """
    if n_rep < 1 or block < 1:
        raise ConfigError(f"n_rep and block must be positive; got {n_rep}, {block}")
    groups = NestedGroups.from_columns([np.asarray(team), np.asarray(case_manager)], ["team", "case_manager"])
    team_code, cm_code = groups.codes
    if isinstance(x_team, dict):
        x = np.array([float(x_team[t]) for t in np.asarray(team)])
    else:
        x = np.asarray(x_team, dtype=np.float64)
    means = np.bincount(team_code, weights=x) / np.bincount(team_code)
    if np.max(np.abs(x - means[team_code])) > 1e-10 * max(1.0, float(np.max(np.abs(x)))):
        raise ConfigError("x_team must be constant within teams (a team-level predictor)")
    n = x.size
    X = np.column_stack([np.ones(n), x])
    XtX_inv = np.linalg.inv(X.T @ X)
    q_ols = t_ppf(0.5 + conf / 2.0, n - 2)
    hits_ml, hits_ols, widths_ml, widths_ols, dfs, singular = [], [], [], [], [], []
    for k, start in enumerate(range(0, n_rep, block)):
        r = min(block, n_rep - start)
        rng = generator(seed, ("coverage", k))
        Y = (intercept + a * x + rng.normal(0.0, np.sqrt(var_team), (r, groups.sizes[0]))[:, team_code]
             + rng.normal(0.0, np.sqrt(var_case_manager), (r, groups.sizes[1]))[:, cm_code]
             + rng.normal(0.0, np.sqrt(var_residual), (r, n)))
        fit = fit_nested_lmm_batch(Y, X, groups)
        q = t_ppf(0.5 + conf / 2.0, fit.df[:, 1])
        half = q * fit.se[:, 1]
        hits_ml.append(np.abs(fit.coef[:, 1] - a) <= half)
        widths_ml.append(2.0 * half)
        dfs.append(fit.df[:, 1])
        singular.append(np.any(fit.psi < 1e-8, axis=1))
        beta = Y @ X @ XtX_inv  # (r, 2)
        resid = Y - beta @ X.T
        se = np.sqrt((resid ** 2).sum(axis=1) / (n - 2) * XtX_inv[1, 1])
        hits_ols.append(np.abs(beta[:, 1] - a) <= q_ols * se)
        widths_ols.append(2.0 * q_ols * se)
    cat = np.concatenate
    return CoverageResult(n_rep=int(n_rep), conf=float(conf), a=float(a), multilevel=float(cat(hits_ml).mean()),
                          ols=float(cat(hits_ols).mean()), multilevel_mean_df=float(cat(dfs).mean()),
                          share_singular=float(cat(singular).mean()),
                          mean_width_multilevel=float(cat(widths_ml).mean()),
                          mean_width_ols=float(cat(widths_ols).mean()))
