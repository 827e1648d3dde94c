"""Multnomah Community Ability Scale (MCAS; Barker et al. 1994).

17 items rated 1 (extreme impairment) to 5 (no impairment) (I); no reverse keying (I).
Total = sum, 17-85, prorated (mean of answered x 17) when at most 20% of the items are
missing; each subscale (interference with functioning 5, adjustment to living 3, social
competence 5, behavioral problems 4; item order I) the same with the rule applied per
subscale.
"""

from __future__ import annotations

import pandas as pd

from .codebook import item_matrix, load_codebook, prorated_scales


def _settings(settings):
    if settings is None:
        from ..study.config import McasScoring

        settings = McasScoring()
    return settings


def mcas_columns(settings=None) -> list[str]:
    s = _settings(settings)
    return ["mcas_total"] + [f"mcas_{name}" for name in s.subscales]


def score_mcas(frame: pd.DataFrame, settings=None) -> pd.DataFrame:
    """``mcas_total`` and ``mcas_<subscale>`` per row of ``frame``."""
    s = _settings(settings)
    items = list(load_codebook()["mcas"]["items"])
    block = item_matrix(frame, items, low=s.item_min, high=s.item_max, reverse=s.reverse, instrument="mcas")
    scores = prorated_scales(block, items, s.subscales, max_missing_share=s.max_missing_share, total_stat="sum",
                             subscale_stat="sum")
    return pd.DataFrame({f"mcas_{name}": v for name, v in scores.items()}, index=frame.index)
