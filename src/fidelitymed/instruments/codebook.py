"""The instrument codebook (``codebook.yaml``) and the item-handling rules shared by all scales.

The codebook declares every built-in instrument (items, valid values, reverse keying, scoring
rule) in the same form a study declares its own (:mod:`fidelitymed.instruments.declaration`).
The facts it marks I (inferred) or P (partly verified) are defaults of named settings in the
``scoring:`` section of ``study.yaml`` (:mod:`fidelitymed.study.config`); this module only
loads the file and provides the vectorized helpers every scoring module uses:

* :func:`item_matrix` -- items as a float matrix, missing codes turned into NaN,
  reverse-keyed items flipped, out-of-range values rejected;
* :func:`prorated` -- a row-wise sum or mean over answered items that is missing when more
  items are missing than the prorating rule allows;
* :func:`prorated_scales` -- a total over all items and one score per subscale, each
  prorated under an "at most ``share`` of its items missing" rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml

from ..errors import DataIssue, StudyDataError

INSTRUMENTS: tuple[str, ...] = ("fidelity", "rprs", "qoli20", "pgi", "hope", "mcas", "ace")
CLIENT_INSTRUMENTS: tuple[str, ...] = ("rprs", "qoli20", "pgi", "hope", "mcas", "ace")


@lru_cache(maxsize=1)
def load_codebook() -> dict[str, Any]:
    """The shipped codebook as a (cached, treat-as-read-only) dict keyed by instrument."""
    text = resources.files("fidelitymed.instruments").joinpath("codebook.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def label(name: str, declarations: Mapping[str, Any] | None = None) -> str:
    """Display label of an instrument (``qoli20`` -> ``QOLI-20``, ``hope`` -> ``THS``).

    A study's declaration (``instruments.<name>.label``) wins over the codebook; an instrument
    without a label is shown by its key. Stable API for tables and figures.
    """
    decl = (declarations or {}).get(name)
    if decl is not None:
        given = decl.get("label") if isinstance(decl, Mapping) else getattr(decl, "label", None)
        if given:
            return str(given)
    entry = load_codebook().get(name)
    if isinstance(entry, Mapping) and entry.get("label"):
        return str(entry["label"])
    return name


def fidelity_items(domains: dict[str, int]) -> dict[str, list[str]]:
    """Fidelity item columns per domain: ``<domain>_1 .. <domain>_k`` (codebook naming)."""
    return {domain: [f"{domain}_{k}" for k in range(1, int(count) + 1)] for domain, count in domains.items()}


def pgi_items(areas: int) -> tuple[list[str], list[str]]:
    """PGI rating and points columns for ``areas`` nominated areas."""
    return ([f"pgi_rating_{k}" for k in range(1, areas + 1)], [f"pgi_points_{k}" for k in range(1, areas + 1)])


def allowed_missing(share: float, n_items: int) -> int:
    """Number of items that may be missing under a "at most ``share`` missing" rule.

    ``floor(share * n_items)``: 20% of 20 items = 4, of 24 = 4, of 17 = 3, of 4 = 0. A tiny
    tolerance keeps 0.2 * 20 from rounding down to 3 in floating point.
    """
    return int(math.floor(share * n_items + 1e-9))


def item_matrix(frame: pd.DataFrame, items: Sequence[str], *, low: float, high: float,
                missing_codes: Iterable[float] = (), reverse: Iterable[str] = (),
                integer: bool = True, instrument: str = "") -> np.ndarray:
    """Items of ``frame`` as an ``(n, k)`` float matrix ready for scoring.

    Missing codes (e.g. QOLI "don't know" = 8) become NaN; reverse-keyed items become
    ``low + high - x``. A value that is neither missing, a missing code nor a valid scale
    point raises :class:`StudyDataError` listing every such cell: scoring garbage silently
    is worse than stopping (the study validator reports these cells with file and row).

    Raises
    ------
    StudyDataError
        On missing item columns or invalid values.
    """
    missing_cols = [c for c in items if c not in frame.columns]
    if missing_cols:
        raise StudyDataError([DataIssue(None, None, c, None, f"item column of {instrument or 'the instrument'}")
                              for c in missing_cols])
    items = list(items)
    # Plain float/int columns are numbers already; only the others are coerced and checked cell
    # by cell, so a completed table of a large study is not boxed into Python objects (20,000
    # clients: ~120 MB per instrument).
    plain = [j for j, c in enumerate(items) if frame[c].dtype.kind in "fiu"]
    other = [j for j in range(len(items)) if j not in set(plain)]
    block = np.empty((len(frame), len(items)))
    bad = np.zeros(block.shape, dtype=bool)
    if plain:
        block[:, plain] = frame.loc[:, [items[j] for j in plain]].to_numpy(dtype=float)
    if other:
        names = [items[j] for j in other]
        numeric = frame.loc[:, names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        raw = frame.loc[:, names].to_numpy(dtype=object)
        block[:, other] = numeric
        # text that is not a number is invalid, not missing
        bad[:, other] = ~pd.isna(raw) & np.isnan(numeric)
    codes = list(missing_codes)
    if codes:
        block[np.isin(block, codes)] = np.nan
    present = ~np.isnan(block)
    bad |= present & ((block < low) | (block > high))
    if integer:
        bad |= present & (block != np.round(block))
    if bad.any():
        rows, cols = np.nonzero(bad)
        expected = (f"an integer {low:g}-{high:g}" if integer else f"a number {low:g}-{high:g}")
        if codes:
            expected += " or a missing code " + ", ".join(f"{c:g}" for c in codes)
        as_given = {j: frame[items[j]].to_numpy(dtype=object) for j in np.unique(cols)}  # the cells as read
        issues = [DataIssue(None, int(r) + 2, items[c], as_given[c][r], f"{expected} ({instrument})")
                  for r, c in zip(rows, cols)]
        raise StudyDataError(issues)
    rev = [j for j, name in enumerate(items) if name in set(reverse)]
    if rev:
        block[:, rev] = low + high - block[:, rev]
    return block


def prorated(block: np.ndarray, *, max_missing: int, stat: Literal["sum", "mean"] = "sum") -> np.ndarray:
    """Row-wise scale score with prorating.

    ``sum``: mean of the answered items times the number of items (the usual prorated sum);
    ``mean``: mean of the answered items. Missing when more than ``max_missing`` items are
    missing (or all are).
    """
    n_items = block.shape[1]
    answered = (~np.isnan(block)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(block, axis=1) / answered
    ok = (n_items - answered <= max_missing) & (answered > 0)
    score = mean * n_items if stat == "sum" else mean
    return np.where(ok, score, np.nan)


def prorated_scales(block: np.ndarray, items: Sequence[str], subscales: Mapping[str, Sequence[str]], *,
                    max_missing_share: float, total_stat: Literal["sum", "mean"],
                    subscale_stat: Literal["sum", "mean"]) -> dict[str, np.ndarray]:
    """``{"total": ..., <subscale>: ...}``: :func:`prorated` over all items, then over each subscale.

    ``block`` holds the columns ``items`` (as from :func:`item_matrix`); the "at most
    ``max_missing_share`` missing" rule is applied to each score's own items
    (:func:`allowed_missing`), so a subscale can be missing while the total is not.
    """
    items = list(items)
    out = {"total": prorated(block, max_missing=allowed_missing(max_missing_share, len(items)), stat=total_stat)}
    for name, members in subscales.items():
        sub = block[:, [items.index(m) for m in members]]
        out[name] = prorated(sub, max_missing=allowed_missing(max_missing_share, len(members)), stat=subscale_stat)
    return out
