"""The team fidelity scale: domain means, total, high fidelity -- from its declaration.

The scale is declared like any instrument (:class:`~fidelitymed.instruments.declaration.FidelityDeclaration`:
``codebook.yaml`` ships the SMCM scale; a study may declare TMACT, IPS-25, the Housing First
scale ... under ``instruments.fidelity``). SMCM rules (codebook ``fidelity``; settings
``scoring.fidelity``): a domain score is the mean of its rated items (1-5); the total is the
sum of the domain means of the included domains (8-40 with the paper's 8 domains:
*integration of strengths assessment and treatment plan* is excluded, Methods of the SMCM
study); high fidelity is total >= 32. An unrated item is skipped (``item_missing:
domain_mean``) or makes its domain missing (``missing``); a missing domain makes the total
missing (``domain_missing: missing``) or the total is prorated from the other domains
(``prorate``). No official rule was found (instruments.md s.1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .codebook import item_matrix, prorated
from .declaration import FidelityDeclaration, builtin_declaration


def fidelity_columns(declaration: FidelityDeclaration) -> list[str]:
    """Score columns :func:`score_fidelity_declaration` returns, in order."""
    return [f"fidelity_{d}" for d in declaration.domains] + ["fidelity_total", "fidelity_high"]


def score_fidelity_declaration(declaration: FidelityDeclaration, frame: pd.DataFrame) -> pd.DataFrame:
    """Score fidelity assessments (one row per team x date) from the scale's declaration.

    Returns
    -------
    DataFrame
        Same index as ``frame``: ``fidelity_<domain>`` for every domain (excluded ones too, for
        domain-level analyses), ``fidelity_total`` (sum or mean of the included domain scores)
        and ``fidelity_high`` (total >= threshold; missing when the total is, or when the
        declaration has no threshold).
    """
    d = declaration
    out = {}
    for domain, items in d.domains.items():
        block = item_matrix(frame, items, low=d.min, high=d.max, missing_codes=d.missing_codes, integer=d.integer,
                            instrument="fidelity")
        # item_missing "missing": no item may be missing; "domain_mean": any answered item will do
        out[f"fidelity_{domain}"] = prorated(block, max_missing=0 if d.item_missing == "missing" else len(items),
                                             stat="mean")
    included = np.column_stack([out[f"fidelity_{x}"] for x in d.included_domains])
    if d.domain_missing == "prorate":
        total = prorated(included, max_missing=included.shape[1], stat=d.total)
    else:
        total = included.sum(axis=1) if d.total == "sum" else included.mean(axis=1)
    out["fidelity_total"] = total
    result = pd.DataFrame(out, index=frame.index)
    high = (np.full(len(total), None, dtype=object) if d.high_fidelity_threshold is None
            else np.where(np.isnan(total), None, total >= d.high_fidelity_threshold))
    result["fidelity_high"] = pd.array(high, dtype="boolean")
    return result


def score_fidelity(frame: pd.DataFrame, settings=None, *, declaration: FidelityDeclaration | None = None
                   ) -> pd.DataFrame:
    """Score fidelity assessments with the built-in scale and its ``scoring.fidelity`` ``settings``
    (:class:`fidelitymed.study.config.FidelityScoring`), or with a study's ``declaration``.

    Parameters
    ----------
    frame
        Item ratings (SMCM: ``<domain>_<k>``, 1-5; fractional ratings allowed, e.g. averaged sub-items).
    settings
        :class:`fidelitymed.study.config.FidelityScoring` (default: the paper's); ignored when
        ``declaration`` is given.
    declaration
        A declared fidelity scale (``instruments.fidelity`` of ``study.yaml``).
    """
    decl = declaration if declaration is not None else builtin_declaration("fidelity", settings)
    return score_fidelity_declaration(decl, frame)  # type: ignore[arg-type]
