"""Patient-Generated Index (PGI; Ruta et al. 1994).

The client nominates up to ``areas`` areas, rates each 0..``rating_max`` and spends points
across them. ``PGI = 100 x sum_i (r_i / rating_max) x (p_i / sum p)``, 0-100 (instruments.md
s.4, I). Areas with neither a rating nor points are unused. The form is unscorable (missing)
when a used area lacks its rating or its points, when no points are spent, or -- with
``points_rule: exclude`` -- when the points spent differ from ``points_total``. With
``normalize`` (default) points are divided by the points actually spent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .codebook import item_matrix, pgi_items


def _settings(settings):
    if settings is None:
        from ..study.config import PgiScoring

        settings = PgiScoring()
    return settings


def pgi_columns(settings=None) -> list[str]:
    return ["pgi_index"]


def score_pgi(frame: pd.DataFrame, settings=None) -> pd.DataFrame:
    """``pgi_index`` (0-100) per row of ``frame``."""
    s = _settings(settings)
    rating_cols, points_cols = pgi_items(s.areas)
    ratings = item_matrix(frame, rating_cols, low=0, high=s.rating_max, instrument="pgi ratings")
    points = item_matrix(frame, points_cols, low=0, high=s.points_total, instrument="pgi points")
    has_r, has_p = ~np.isnan(ratings), ~np.isnan(points)
    used = has_r | has_p
    incomplete = (used & ~(has_r & has_p)).any(axis=1)
    spent = np.nansum(points, axis=1)
    ok = ~incomplete & used.any(axis=1) & (spent > 0)
    if s.points_rule == "exclude":
        ok &= spent == s.points_total
    with np.errstate(invalid="ignore", divide="ignore"):
        index = 100.0 * np.nansum((ratings / s.rating_max) * points, axis=1) / spent
    return pd.DataFrame({"pgi_index": np.where(ok, index, np.nan)}, index=frame.index)
