"""Recovery-Promoting Relationships Scale (RPRS; Russinova, Rogers & Ellison 2006).

24 items, 4-point agree-disagree coded 1-4 (P). Total and each index (recovery-promoting
strategies, core relationship; membership I) on a 0-100 metric: by default
``(mean of answered items - 1) / 3 x 100`` (``metric: zero_to_100``, I) or
``mean / 4 x 100`` (``percent_of_max``). Prorated: the mean of the answered items is used
when at most ``max_missing_share`` (20%) of the items are missing, else missing.

Declared in ``codebook.yaml`` (``rprs``) and scored by
:func:`fidelitymed.instruments.scoring.score_declaration`; ``settings`` (``scoring.rprs`` of
``study.yaml``) map onto the declaration (:func:`~fidelitymed.instruments.declaration.builtin_declaration`).
"""

from __future__ import annotations

import pandas as pd

from .declaration import builtin_declaration
from .scoring import score_declaration


def score_rprs(frame: pd.DataFrame, settings=None) -> pd.DataFrame:
    """``rprs_total`` and ``rprs_<index>`` (0-100) per row of ``frame``."""
    return score_declaration("rprs", builtin_declaration("rprs", settings), frame)
