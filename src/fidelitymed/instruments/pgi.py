"""Patient-Generated Index (PGI; Ruta et al. 1994): the named scoring rule ``pgi``.

The client nominates up to ``areas`` areas, rates each 0..``rating_max`` and spends points
across them. ``PGI = 100 x sum_i (r_i / rating_max) x (p_i / sum p)``, 0-100 (instruments.md
s.4, I). Areas with neither a rating nor points are unused. The form is unscorable (missing)
when a used area lacks its rating or its points, when no points are spent, or -- with
``points_rule: exclude`` -- when the points spent differ from ``points_total``. With
``normalize`` (default) points are divided by the points actually spent.

A rating x points form is not an item total, so the PGI is declared with ``rule: pgi``
(:class:`~fidelitymed.instruments.declaration.PgiDeclaration`) and scored through
:func:`fidelitymed.instruments.scoring.score_declaration` like every other instrument.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .codebook import item_matrix
from .declaration import PgiDeclaration, builtin_declaration


def pgi_index(decl: PgiDeclaration, frame: pd.DataFrame) -> np.ndarray:
    """The PGI (0-100) of every row of ``frame``; NaN where the form is unscorable."""
    ratings = item_matrix(frame, decl.rating_items, low=decl.rating_min, high=decl.rating_max,
                          instrument="pgi ratings")
    points = item_matrix(frame, decl.points_items, low=0, high=decl.points_total, instrument="pgi points")
    has_r, has_p = ~np.isnan(ratings), ~np.isnan(points)
    used = has_r | has_p
    incomplete = (used & ~(has_r & has_p)).any(axis=1)
    spent = np.nansum(points, axis=1)
    ok = ~incomplete & used.any(axis=1) & (spent > 0)
    if decl.points_rule == "exclude":
        ok &= spent == decl.points_total
    with np.errstate(invalid="ignore", divide="ignore"):
        index = 100.0 * np.nansum((ratings / decl.rating_max) * points, axis=1) / spent
    return np.where(ok, index, np.nan)


def score_pgi(frame: pd.DataFrame, settings=None) -> pd.DataFrame:
    """``pgi_index`` (0-100) per row of ``frame``."""
    from .scoring import score_declaration

    return score_declaration("pgi", builtin_declaration("pgi", settings), frame)
