"""Lehman Quality of Life Interview, brief 20-item version (QOLI-20; Uttaro & Lehman 1999).

Items use the 7-point Delighted-Terrible scale (1 terrible ... 7 delighted, V); codes 8/9
(don't know / not applicable, I) are missing. Total = sum of the 20 items, 20-140 (I;
``total: sum``), prorated as mean of answered x 20 when at most 20% are missing; subscale =
mean of its items (I; ``subscale_stat``), with the same 20% rule per subscale.
"""

from __future__ import annotations

import pandas as pd

from .codebook import item_matrix, load_codebook, prorated_scales


def _settings(settings):
    if settings is None:
        from ..study.config import Qoli20Scoring

        settings = Qoli20Scoring()
    return settings


def qoli20_columns(settings=None) -> list[str]:
    s = _settings(settings)
    return ["qoli20_total"] + [f"qoli20_{name}" for name in s.subscales]


def score_qoli20(frame: pd.DataFrame, settings=None) -> pd.DataFrame:
    """``qoli20_total`` and ``qoli20_<subscale>`` per row of ``frame``."""
    s = _settings(settings)
    cb = load_codebook()["qoli20"]
    items = list(cb["items"])
    block = item_matrix(frame, items, low=cb["min"], high=cb["max"], missing_codes=s.missing_codes,
                        reverse=s.reverse, instrument="qoli20")
    scores = prorated_scales(block, items, s.subscales, max_missing_share=s.max_missing_share, total_stat=s.total,
                             subscale_stat=s.subscale_stat)
    return pd.DataFrame({f"qoli20_{name}": v for name, v in scores.items()}, index=frame.index)
