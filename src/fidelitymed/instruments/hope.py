"""Adult (Trait) Hope Scale (Snyder et al. 1991).

Pathways = items 1, 4, 6, 8; agency = items 2, 9, 10, 12; items 3, 5, 7, 11 are fillers, not
scored (V). Each subscale is the sum of its 4 items (4-32 on the 8-point form, 4-16 on the
4-point form; setting ``points``); total = agency + pathways. A subscale with more than
``max_missing_per_subscale`` (default 0) missing items is missing; otherwise it is prorated
(mean of answered x 4). The total is missing when either subscale is.
"""

from __future__ import annotations

import pandas as pd

from .codebook import item_matrix, load_codebook, prorated


def _settings(settings):
    if settings is None:
        from ..study.config import HopeScoring

        settings = HopeScoring()
    return settings


def hope_columns(settings=None) -> list[str]:
    return ["hope_total", "hope_agency", "hope_pathways"]


def score_hope(frame: pd.DataFrame, settings=None) -> pd.DataFrame:
    """``hope_total``, ``hope_agency``, ``hope_pathways`` per row of ``frame``."""
    s = _settings(settings)
    cb = load_codebook()["hope"]
    out = {}
    for name in ("agency", "pathways"):
        members = list(cb["subscales"][name])
        block = item_matrix(frame, members, low=cb["min"], high=s.points, instrument="hope")
        out[f"hope_{name}"] = prorated(block, max_missing=s.max_missing_per_subscale, stat="sum")
    # fillers are checked for valid values but never scored
    item_matrix(frame, [c for c in cb["fillers"] if c in frame.columns], low=cb["min"], high=s.points,
                instrument="hope")
    result = pd.DataFrame(out, index=frame.index)
    result.insert(0, "hope_total", result["hope_agency"] + result["hope_pathways"])
    return result
