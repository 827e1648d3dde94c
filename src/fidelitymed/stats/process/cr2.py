"""Bell-McCaffrey CR2 cluster-robust inference for the OLS equations of Model 4.

The covariance and the Satterthwaite df per coefficient come from
:func:`fidelitymed.stats.ols.cluster_robust_cr2` (as R ``clubSandwich::vcovCR(type = "CR2")``
and ``coef_test(test = "Satterthwaite")``); t tests and intervals of each coefficient use its own
df.  With few clusters (here: teams supplying the team-level X) CR1's ``G - 1`` df are too
liberal; CR2 with Satterthwaite df keeps the level close to nominal (Pustejovsky & Tipton 2018;
Imbens & Kolesar 2016).

References
----------
Bell, R. M., & McCaffrey, D. F. (2002). Bias reduction in standard errors for linear regression
with multi-stage samples. *Survey Methodology, 28*, 169-181.
Pustejovsky, J. E., & Tipton, E. (2018). Small-sample methods for cluster-robust variance estimation
and hypothesis testing in fixed effects models. *J. Business & Economic Statistics, 36*, 672-683.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..ols import OLSResult, cluster_robust_cr2
from ..distributions import t_ppf, t_sf

__all__ = ["CR2Result", "refit_cr2", "FEW_CLUSTERS"]

#: Fewer clusters than this get a note (CR2/Satterthwaite is the small-sample correction, but a
#: between-cluster X estimated from so few clusters stays imprecise).
FEW_CLUSTERS = 20


@dataclass(frozen=True, eq=False)
class CR2Result(OLSResult):
    """An OLS fit with the CR2 covariance: t tests and CIs use each coefficient's Satterthwaite df."""

    df_coef: np.ndarray = None

    @property
    def p(self) -> np.ndarray:
        return 2.0 * t_sf(np.abs(self.t), self.df_coef)

    @property
    def _tvals(self) -> np.ndarray:
        return t_ppf(0.5 + self.conf / 2.0, self.df_coef)

    @property
    def ci_low(self) -> np.ndarray:
        return self.coef - self._tvals * self.se

    @property
    def ci_high(self) -> np.ndarray:
        return self.coef + self._tvals * self.se

    def df_of(self, name: str) -> float:
        return float(self.df_coef[self.names.index(name)])


def _with_cr2(fit: OLSResult, X: np.ndarray, clusters: np.ndarray) -> CR2Result:
    V, df = cluster_robust_cr2(X, np.asarray(fit.resid), clusters)
    G = int(pd.Series(np.asarray(clusters)).nunique())
    values = {f.name: getattr(fit, f.name) for f in dataclasses.fields(OLSResult)}
    V = np.array((V + V.T) / 2.0)
    V.setflags(write=False)
    df = np.array(df, dtype=np.float64)
    df.setflags(write=False)
    values.update(vcov=V, cov_type="CR2", df_resid=G - 1, n_clusters=G)
    return CR2Result(**values, df_coef=df)


def refit_cr2(design, meds, out, tot, mediators, x, conf, binary):
    """The fits with CR2 covariances, the df of each path, and the notes."""
    n = design.n
    ones = np.ones((n, 1))
    cl = design.clusters
    C_med = design.covariates_of("mediators")
    C_out = design.covariates_of("outcome")
    X_med = np.column_stack([ones, design.x, C_med])
    meds = tuple(_with_cr2(f, X_med, cl) for f in meds)
    path_df = {("a" if len(mediators) == 1 else f"a:{m}"): f.df_of(x) for m, f in zip(mediators, meds)}
    notes = []
    if not binary:
        out = _with_cr2(out, np.column_stack([ones, design.x, design.M, C_out]), cl)
        tot = _with_cr2(tot, np.column_stack([ones, design.x, C_out]), cl)
        for m in mediators:
            path_df["b" if len(mediators) == 1 else f"b:{m}"] = out.df_of(m)
        path_df["c_prime"] = out.df_of(x)
        path_df["c"] = tot.df_of(x)
    else:
        for m in mediators:
            path_df["b" if len(mediators) == 1 else f"b:{m}"] = float("inf")
        path_df["c_prime"] = path_df["c"] = float("inf")
        notes.append("CR2 applies to the OLS (mediator) equations; the logistic equations use maximum-likelihood "
                     "standard errors (df shown as inf: z tests)")
    G = meds[0].n_clusters
    notes.insert(0, f"Cluster-robust CR2 (Bell-McCaffrey) standard errors with {G} clusters; t tests and "
                    "confidence intervals use each coefficient's Satterthwaite df (clubSandwich). The bootstrap "
                    "of the indirect effect resamples cases, not clusters; use ci='monte_carlo' for an interval "
                    "of ab from the CR2 covariances.")
    if G < FEW_CLUSTERS:
        notes.append(f"Only {G} clusters supply X (fewer than {FEW_CLUSTERS}): the a path of a cluster-level X "
                     "rests on so few independent units that its CR2 df are small and every interval is wide; "
                     "treat the indirect effect as imprecise")
    return meds, out, tot, path_df, notes
