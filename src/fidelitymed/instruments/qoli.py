"""Lehman Quality of Life Interview, brief 20-item version (QOLI-20; Uttaro & Lehman 1999).

Items use the 7-point Delighted-Terrible scale (1 terrible ... 7 delighted, V); codes 8/9
(don't know / not applicable, I) are missing. Total = sum of the 20 items, 20-140 (I;
``total: sum``), prorated as mean of answered x 20 when at most 20% are missing; subscale =
mean of its items (I; ``subscale_stat``), with the same 20% rule per subscale.

Declared in ``codebook.yaml`` (``qoli20``) and scored by
:func:`fidelitymed.instruments.scoring.score_declaration`; ``settings`` (``scoring.qoli20`` of
``study.yaml``) map onto the declaration (:func:`~fidelitymed.instruments.declaration.builtin_declaration`).
"""

from __future__ import annotations

import pandas as pd

from .declaration import builtin_declaration
from .scoring import score_declaration


def score_qoli20(frame: pd.DataFrame, settings=None) -> pd.DataFrame:
    """``qoli20_total`` and ``qoli20_<subscale>`` per row of ``frame``."""
    return score_declaration("qoli20", builtin_declaration("qoli20", settings), frame)
