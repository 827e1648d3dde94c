"""The few distribution functions the analysis reads, from :mod:`scipy.special` alone.

The statistics need tail areas and quantiles of the t, normal, chi-square and F distributions.
:mod:`scipy.stats` computes each of them with one :mod:`scipy.special` function, but importing
it costs ~0.5 s (its hundred distributions and tests), in the command's process and again in
a process pool's fork server: about 1 s of a 13 s demo study on two processes.  These
functions call the same special functions on the same arguments, with the rules of
``rv_continuous`` around them (shape parameters must be positive, limits at the ends of the
support, NaN for arguments out of range), so their results are the same to the bit as
``scipy.stats.t.sf`` and the rest (``tests/test_distributions.py`` checks them against
:mod:`scipy.stats` on grids that include the edge cases).  Scalars in, NumPy scalars out; arrays
broadcast as in :mod:`scipy.stats`.

References
----------
Virtanen, P., et al. (2020). SciPy 1.0: fundamental algorithms for scientific computing in
Python. *Nature Methods*, 17, 261-272.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import special

__all__ = ["chi2_sf", "f_isf", "f_sf", "norm_cdf", "norm_ppf", "norm_sf", "t_ppf", "t_sf"]


def _prepare(value, shapes) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    value, *shapes = np.broadcast_arrays(np.asarray(value, dtype=float), *(np.asarray(s, dtype=float) for s in shapes))
    valid = np.ones(value.shape, dtype=bool)
    for shape in shapes:
        valid &= shape > 0
    return value, shapes, valid


def _tail(function: Callable[..., np.ndarray], x, shapes=(), lower: float = -np.inf, upper_value: float = 0.0,
          lower_value: float = 1.0):
    """``function(*shapes, x)`` inside the support, the limits outside it, NaN for bad shapes or x."""
    x, shapes, valid = _prepare(x, shapes)
    out = np.full(x.shape, np.nan)
    inside = valid & (x > lower) & (x < np.inf)
    if inside.any():
        out[inside] = function(*(s[inside] for s in shapes), x[inside])
    out[valid & (x <= lower)] = lower_value
    out[valid & (x == np.inf)] = upper_value
    return out[()]


def _quantile(function: Callable[..., np.ndarray], q, shapes=(), at_zero: float = -np.inf,
              at_one: float = np.inf):
    """``function(*shapes, q)`` for ``0 < q < 1``, the support's ends at 0 and 1, else NaN."""
    q, shapes, valid = _prepare(q, shapes)
    out = np.full(q.shape, np.nan)
    inside = valid & (q > 0) & (q < 1)
    if inside.any():
        out[inside] = function(*(s[inside] for s in shapes), q[inside])
    out[valid & (q == 0)] = at_zero
    out[valid & (q == 1)] = at_one
    return out[()]


def t_sf(x, df):
    """Upper tail ``P(T > x)`` of Student's t with ``df`` degrees of freedom (``scipy.stats.t.sf``)."""
    return _tail(lambda d, v: special.stdtr(d, -v), x, (df,))


def t_ppf(q, df):
    """Quantile of Student's t (``scipy.stats.t.ppf``)."""
    return _quantile(special.stdtrit, q, (df,))


def norm_sf(x):
    """Upper tail of the standard normal (``scipy.stats.norm.sf``)."""
    return _tail(lambda v: special.ndtr(-v), x)


def norm_cdf(x):
    """Distribution function of the standard normal (``scipy.stats.norm.cdf``)."""
    return _tail(special.ndtr, x, upper_value=1.0, lower_value=0.0)


def norm_ppf(q):
    """Quantile of the standard normal (``scipy.stats.norm.ppf``)."""
    return _quantile(special.ndtri, q)


def chi2_sf(x, df):
    """Upper tail of the chi-square with ``df`` degrees of freedom (``scipy.stats.chi2.sf``)."""
    return _tail(special.chdtrc, x, (df,), lower=0.0)


def f_sf(x, dfn, dfd):
    """Upper tail of the F distribution (``scipy.stats.f.sf``)."""
    return _tail(special.fdtrc, x, (dfn, dfd), lower=0.0)


def f_isf(q, dfn, dfd):
    """Upper-tail quantile of the F distribution (``scipy.stats.f.isf``: the quantile at ``1 - q``)."""
    return _quantile(lambda a, b, p: special.fdtri(a, b, 1.0 - p), q, (dfn, dfd), at_zero=np.inf, at_one=0.0)
