"""Multnomah Community Ability Scale (MCAS; Barker et al. 1994).

17 items rated 1 (extreme impairment) to 5 (no impairment) (I); no reverse keying (I).
Total = sum, 17-85, prorated (mean of answered x 17) when at most 20% of the items are
missing; each subscale (interference with functioning 5, adjustment to living 3, social
competence 5, behavioral problems 4; item order I) the same with the rule applied per
subscale.

Declared in ``codebook.yaml`` (``mcas``) and scored by
:func:`fidelitymed.instruments.scoring.score_declaration`; ``settings`` (``scoring.mcas`` of
``study.yaml``) map onto the declaration (:func:`~fidelitymed.instruments.declaration.builtin_declaration`).
"""

from __future__ import annotations

import pandas as pd

from .declaration import builtin_declaration
from .scoring import score_declaration


def score_mcas(frame: pd.DataFrame, settings=None) -> pd.DataFrame:
    """``mcas_total`` and ``mcas_<subscale>`` per row of ``frame``."""
    return score_declaration("mcas", builtin_declaration("mcas", settings), frame)
