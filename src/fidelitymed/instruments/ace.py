"""Adverse Childhood Experiences (ACE; Felitti et al. 1998).

10 yes (1) / no (0) items; score = number of yes answers, 0-10 (V). Not prorated (a count):
with ``missing_rule: missing`` (default) any missing item makes the score missing; with
``count_answered`` the yes answers given are counted (missing only if no item is answered).

Declared in ``codebook.yaml`` (``ace``) and scored by
:func:`fidelitymed.instruments.scoring.score_declaration`; ``settings`` (``scoring.ace`` of
``study.yaml``) map onto the declaration (:func:`~fidelitymed.instruments.declaration.builtin_declaration`).
"""

from __future__ import annotations

import pandas as pd

from .declaration import builtin_declaration
from .scoring import score_declaration


def score_ace(frame: pd.DataFrame, settings=None) -> pd.DataFrame:
    """``ace_total`` (0-10) per row of ``frame``."""
    return score_declaration("ace", builtin_declaration("ace", settings), frame)
