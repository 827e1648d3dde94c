"""Adverse Childhood Experiences (ACE; Felitti et al. 1998).

10 yes (1) / no (0) items; score = number of yes answers, 0-10 (V). Not prorated (a count):
with ``missing_rule: missing`` (default) any missing item makes the score missing; with
``count_answered`` the yes answers given are counted (missing only if no item is answered).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .codebook import item_matrix, load_codebook


def _settings(settings):
    if settings is None:
        from ..study.config import AceScoring

        settings = AceScoring()
    return settings


def ace_columns(settings=None) -> list[str]:
    return ["ace_total"]


def score_ace(frame: pd.DataFrame, settings=None) -> pd.DataFrame:
    """``ace_total`` (0-10) per row of ``frame``."""
    s = _settings(settings)
    cb = load_codebook()["ace"]
    block = item_matrix(frame, list(cb["items"]), low=cb["min"], high=cb["max"], instrument="ace")
    answered = (~np.isnan(block)).sum(axis=1)
    total = np.nansum(block, axis=1)
    ok = answered == block.shape[1] if s.missing_rule == "missing" else answered > 0
    return pd.DataFrame({"ace_total": np.where(ok, total, np.nan)}, index=frame.index)
