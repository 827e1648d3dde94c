"""Adult (Trait) Hope Scale (Snyder et al. 1991).

Pathways = items 1, 4, 6, 8; agency = items 2, 9, 10, 12; items 3, 5, 7, 11 are fillers, not
scored (V). Each subscale is the sum of its 4 items (4-32 on the 8-point form, 4-16 on the
4-point form; setting ``points``); total = agency + pathways. A subscale with more than
``max_missing_per_subscale`` (default 0) missing items is missing; otherwise it is prorated
(mean of answered x 4). The total is missing when either subscale is.

Declared in ``codebook.yaml`` (``hope``) and scored by
:func:`fidelitymed.instruments.scoring.score_declaration`; ``settings`` (``scoring.hope`` of
``study.yaml``) map onto the declaration (:func:`~fidelitymed.instruments.declaration.builtin_declaration`).
"""

from __future__ import annotations

import pandas as pd

from .declaration import builtin_declaration
from .scoring import score_declaration


def score_hope(frame: pd.DataFrame, settings=None) -> pd.DataFrame:
    """``hope_total``, ``hope_agency``, ``hope_pathways`` per row of ``frame``."""
    return score_declaration("hope", builtin_declaration("hope", settings), frame)
