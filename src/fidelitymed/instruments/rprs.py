"""Recovery-Promoting Relationships Scale (RPRS; Russinova, Rogers & Ellison 2006).

24 items, 4-point agree-disagree coded 1-4 (P). Total and each index (recovery-promoting
strategies, core relationship; membership I) on a 0-100 metric: by default
``(mean of answered items - 1) / 3 x 100`` (``metric: zero_to_100``, I) or
``mean / 4 x 100`` (``percent_of_max``). Prorated: the mean of the answered items is used
when at most ``max_missing_share`` (20%) of the items are missing, else missing.
"""

from __future__ import annotations

import pandas as pd

from .codebook import item_matrix, load_codebook, prorated_scales


def _settings(settings):
    if settings is None:
        from ..study.config import RprsScoring

        settings = RprsScoring()
    return settings


def rprs_columns(settings=None) -> list[str]:
    s = _settings(settings)
    return ["rprs_total"] + [f"rprs_{name}" for name in s.indices]


def _to_metric(mean, s):
    if s.metric == "zero_to_100":
        return (mean - s.item_min) / (s.item_max - s.item_min) * 100.0
    return mean / s.item_max * 100.0


def score_rprs(frame: pd.DataFrame, settings=None) -> pd.DataFrame:
    """``rprs_total`` and ``rprs_<index>`` (0-100) per row of ``frame``."""
    s = _settings(settings)
    items = list(load_codebook()["rprs"]["items"])
    block = item_matrix(frame, items, low=s.item_min, high=s.item_max, reverse=s.reverse, instrument="rprs")
    scores = prorated_scales(block, items, s.indices, max_missing_share=s.max_missing_share, total_stat="mean",
                             subscale_stat="mean")
    return pd.DataFrame({f"rprs_{name}": _to_metric(v, s) for name, v in scores.items()}, index=frame.index)
