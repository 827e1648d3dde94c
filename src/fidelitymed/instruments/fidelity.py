"""SMCM fidelity scale (Rapp & Goscha; University of Kansas): domain means and total.

Rules (codebook ``fidelity``; settings ``scoring.fidelity``): a domain score is the mean of
its rated items (1-5); the total is the sum of the domain means of the included domains
(8-40 with the paper's 8 domains: *integration of strengths assessment and treatment plan*
is excluded, Methods of the SMCM study); high fidelity is total >= 32. An unrated item is
skipped (``item_missing: domain_mean``) or makes its domain missing (``missing``); a
missing domain makes the total missing (``domain_missing: missing``) or the total is prorated
from the other domains (``prorate``). No official rule was found (instruments.md s.1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .codebook import fidelity_items, item_matrix, load_codebook, prorated


def _settings(settings):
    if settings is None:
        from ..study.config import FidelityScoring

        settings = FidelityScoring()
    return settings


def fidelity_columns(settings=None) -> list[str]:
    """Score columns :func:`score_fidelity` returns, in order."""
    s = _settings(settings)
    return [f"fidelity_{d}" for d in s.domains] + ["fidelity_total", "fidelity_high"]


def score_fidelity(frame: pd.DataFrame, settings=None) -> pd.DataFrame:
    """Score fidelity assessments (one row per team x date).

    Parameters
    ----------
    frame
        Item ratings ``<domain>_<k>`` (1-5; fractional ratings allowed, e.g. averaged sub-items).
    settings
        :class:`fidelitymed.study.config.FidelityScoring` (default: the paper's).

    Returns
    -------
    DataFrame
        Same index as ``frame``: ``fidelity_<domain>`` for every domain (excluded ones too, for
        domain-level analyses), ``fidelity_total`` (sum of the included domain means) and
        ``fidelity_high`` (total >= threshold; missing when the total is).
    """
    s = _settings(settings)
    cb = load_codebook()["fidelity"]
    out = {}
    for domain, items in fidelity_items(s.domains).items():
        block = item_matrix(frame, items, low=cb["min"], high=cb["max"], integer=False, instrument="fidelity")
        # item_missing "missing": no item may be missing; "domain_mean": any answered item will do
        out[f"fidelity_{domain}"] = prorated(block, max_missing=0 if s.item_missing == "missing" else len(items),
                                             stat="mean")
    included = np.column_stack([out[f"fidelity_{d}"] for d in s.included_domains])
    if s.domain_missing == "prorate":
        total = prorated(included, max_missing=included.shape[1], stat="sum")
    else:
        total = included.sum(axis=1)
    out["fidelity_total"] = total
    result = pd.DataFrame(out, index=frame.index)
    result["fidelity_high"] = pd.array(np.where(np.isnan(total), None, total >= s.high_fidelity_threshold),
                                       dtype="boolean")
    return result
