"""Pooling multilevel mediation fits over multiply imputed data sets.

Paths: Rubin's (1987) rules with the Barnard & Rubin (1999) df (:func:`fidelitymed.stats.pooling.rubin`),
the complete-data df of each path being its Satterthwaite df (mean over the imputations): with
few teams that df, not ``n - p``, is what the data can support.  Indirect effects: a Monte Carlo
CI (Preacher & Selig 2012) from the pooled paths, drawing ``(a..., b...)`` from a normal with the
pooled means and the total covariance ``T = Ubar + (1 + 1/m) B`` (``Ubar`` the mean
within-imputation covariance, block-diagonal across the two equations; ``B`` the full
between-imputation covariance), as the ``rubin_mc`` scheme does for single-level paths.
Variance components and log-likelihoods are averaged over the imputations (descriptive only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...blas import single_thread
from ...errors import ConfigError
from ...seeding import SeedLike, root_sequence
from ..pooling import rubin
from .mediation import MultilevelMediationResult, _json_float, indirect_estimates

__all__ = ["pool_multilevel"]


@single_thread()  # one BLAS thread: the same digits under any thread count
def pool_multilevel(results: Sequence[MultilevelMediationResult], *, conf: float = 0.95, n_mc: int = 20000,
                    seed: SeedLike = None, report_seed: Any = None) -> dict[str, Any]:
    """Rubin-pooled paths and Monte Carlo indirect effects of ``m >= 2`` multilevel mediation fits.

    Returns a dict with the keys of :meth:`MultilevelMediationResult.to_dict` (``paths`` gain
    ``fmi``; ``n`` is the mean analysed n), plus ``imputations`` and ``pooling``.
    """
    results = list(results)
    m = len(results)
    if m < 2:
        raise ConfigError(f"pool_multilevel needs at least 2 imputed data sets; got {m}")
    first = results[0]
    path_names = [p.name for p in first.paths]
    if any([p.name for p in r.paths] != path_names for r in results):
        raise ConfigError("pool_multilevel: the fits have different paths (a 2-1-1 design in some imputations "
                          "and 1-1-1 in others?)")
    est = np.array([[p.coef for p in r.paths] for r in results])
    var = np.array([[p.se ** 2 for p in r.paths] for r in results])
    dfcom = np.array([[p.df for p in r.paths] for r in results]).mean(axis=0)
    pooled = rubin(est, var, dfcom=dfcom, conf=conf)
    paths = {}
    for j, name in enumerate(path_names):
        paths[name] = {"coef": _json_float(pooled.estimate[j]), "se": _json_float(pooled.se[j]),
                       "df": _json_float(pooled.df[j]), "t": _json_float(pooled.statistic[j]),
                       "p": _json_float(pooled.p[j]), "ci_low": _json_float(pooled.ci_low[j]),
                       "ci_high": _json_float(pooled.ci_high[j]), "fmi": _json_float(pooled.fmi[j])}

    dists = [r.indirect_distribution() for r in results]
    names, _, _, pairs = dists[0]
    means = np.array([d[1] for d in dists])
    ubar = np.mean([d[2] for d in dists], axis=0)
    between = np.cov(means.T, ddof=1).reshape(ubar.shape)
    total = ubar + (1.0 + 1.0 / m) * between
    seq = root_sequence(seed)
    indirect = indirect_estimates(names, means.mean(axis=0), total, pairs, n_mc, conf,
                                  np.random.Generator(np.random.PCG64(seq)))

    def mean_components(eq: str) -> dict[str, float | None]:
        keys = results[0].variance_components[eq].keys()
        return {k: _json_float(np.mean([r.variance_components[eq][k] for r in results])) for k in keys}

    # per-fit singular-fit notes are summarised by a count below
    notes = list(dict.fromkeys(n for r in results for n in r.notes if "singular fit" not in n))
    singular = {eq: int(sum(getattr(r, f"{eq}_fit").singular for r in results)) for eq in ("mediator", "outcome")}
    for eq, count in singular.items():
        if count:
            notes.append(f"{eq} model singular (a variance at 0) in {count} of {m} imputed data sets")
    body = first.to_dict()
    body.update({
        "n": int(first.n) if all(r.n == first.n for r in results) else _json_float(np.mean([r.n for r in results])),
        "paths": paths,
        "indirect": {e.name: e.to_dict() for e in indirect}, "n_mc": int(n_mc),
        "seed": report_seed if report_seed is not None else body["seed"],
        "variance_components": {eq: mean_components(eq) for eq in ("mediator", "outcome")},
        "log_likelihood": {eq: _json_float(np.mean([r.log_likelihood[eq] for r in results]))
                           for eq in ("mediator", "outcome")},
        "singular": {eq: count > 0 for eq, count in singular.items()},
        "notes": notes, "imputations": m,
        "pooling": "Rubin's rules (Barnard-Rubin df, complete-data df = Satterthwaite) for the paths; Monte "
                   "Carlo CI of the indirect effects from the pooled paths (T = Ubar + (1 + 1/m) B)",
    })
    body.pop("coefficients", None)  # per-imputation fixed effects: not pooled
    return body
