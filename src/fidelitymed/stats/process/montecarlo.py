"""Monte Carlo confidence intervals of indirect effects (PROCESS ``mc=``).

The paths are drawn from the normal approximation of their joint sampling distribution,
``(a_1..a_k, b_1..b_k, c') ~ N(estimates, V)`` (MacKinnon, Lockwood & Williams 2004; Preacher &
Selig 2012), and every indirect effect, total and contrast is computed from each draw; the
percentile limits of those products are the interval.  ``V`` is block diagonal between the
mediator equations and the outcome equation (their scores are uncorrelated); within the
mediator block the ``a`` of different mediators covary through the correlation of the
mediators' residuals (:func:`.linear.mediator_cross_covariance`); the outcome block is the
outcome fit's covariance of ``(b, c')``.  Each block uses the fits' covariance estimator, so with
``hc=`` (or CR1/CR2) the draws are from the robust covariance.  The standardized effects scale
each draw by the full-sample SDs.  All draws at once: one ``(n_mc, 2k+1)`` normal matrix from the
keyed stream.

References
----------
MacKinnon, D. P., Lockwood, C. M., & Williams, J. (2004). Confidence limits for the indirect
effect. *Multivariate Behavioral Research, 39*, 99-128.
Preacher, K. J., & Selig, J. P. (2012). Advantages of Monte Carlo confidence intervals for
indirect effects. *Communication Methods and Measures, 6*, 77-98.
"""

from __future__ import annotations

import numpy as np

from ...seeding import generator
from . import linear

__all__ = ["path_covariance", "draw_columns"]


def path_covariance(design, meds, out, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of ``(a_1..a_k, b_1..b_k, c')``."""
    mean = np.concatenate([[f.coef[1] for f in meds], np.asarray(out.coef)[2:2 + k], [out.coef[1]]])
    V = np.zeros((2 * k + 1, 2 * k + 1))
    V[:k, :k] = linear.mediator_cross_covariance(design, meds)
    idx = [*range(2, 2 + k), 1]
    V[k:, k:] = np.asarray(out.vcov)[np.ix_(idx, idx)]
    return mean, V


def draw_columns(design, meds, out, mediators, n_mc: int, seed, sd_x, sd_y, contrast, with_std) -> np.ndarray:
    """``n_mc`` Monte Carlo draws of the columns of :func:`.linear.boot_columns`."""
    k = len(mediators)
    mean, V = path_covariance(design, meds, out, k)
    # eigen-factor rather than Cholesky: a (near) singular V (e.g. CR1 with few clusters) stays usable
    w, U = np.linalg.eigh(V)
    factor = U * np.sqrt(np.clip(w, 0.0, None))
    z = generator(seed).standard_normal((int(n_mc), 2 * k + 1))
    paths = mean + z @ factor.T
    a, b, c_prime = paths[:, :k].T, paths[:, k:2 * k].T, paths[:, 2 * k]
    return linear.indirect_columns(a, b, c_prime, sd_x, sd_y, contrast, with_std)
