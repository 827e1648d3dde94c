"""Score every client instrument of every interview: items in, scale scores out.

Score columns are named ``<instrument>_<score>``:

========== ==========================================================================
instrument columns
========== ==========================================================================
rprs       ``rprs_total``, ``rprs_<index>`` (0-100)
qoli20     ``qoli20_total`` (20-140), ``qoli20_<subscale>`` (1-7)
pgi        ``pgi_index`` (0-100)
hope       ``hope_total``, ``hope_agency``, ``hope_pathways``
mcas       ``mcas_total`` (17-85), ``mcas_<subscale>``
ace        ``ace_total`` (0-10)
========== ==========================================================================

The analysed score of an instrument is ``analysis.scores`` of ``study.yaml`` (e.g. ``pgi``
-> ``index``), i.e. the column ``AnalysisConfig.score_column(instrument)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from .ace import ace_columns, score_ace
from .codebook import CLIENT_INSTRUMENTS, load_codebook, pgi_items
from .hope import hope_columns, score_hope
from .mcas import mcas_columns, score_mcas
from .pgi import pgi_columns, score_pgi
from .qoli import qoli20_columns, score_qoli20
from .rprs import rprs_columns, score_rprs

SCORERS: dict[str, Callable[..., pd.DataFrame]] = {
    "rprs": score_rprs, "qoli20": score_qoli20, "pgi": score_pgi, "hope": score_hope, "mcas": score_mcas,
    "ace": score_ace,
}
_COLUMNS = {"rprs": rprs_columns, "qoli20": qoli20_columns, "pgi": pgi_columns, "hope": hope_columns,
            "mcas": mcas_columns, "ace": ace_columns}
KEY_COLUMNS = ("client", "wave", "date")


def _scoring(scoring):
    if scoring is None:
        from ..study.config import ScoringConfig

        scoring = ScoringConfig()
    return scoring


def instrument_items(instrument: str, scoring=None) -> list[str]:
    """Item columns of a client instrument (PGI: ratings then points; Hope: all 12 incl. fillers)."""
    scoring = _scoring(scoring)
    if instrument == "pgi":
        ratings, points = pgi_items(scoring.pgi.areas)
        return ratings + points
    if instrument not in CLIENT_INSTRUMENTS:
        raise KeyError(f"unknown client instrument {instrument!r}; expected one of {CLIENT_INSTRUMENTS}")
    return list(load_codebook()[instrument]["items"])


def item_ranges(scoring=None) -> dict[str, tuple[float, float, tuple[float, ...]]]:
    """Valid values of every client item column: ``{column: (low, high, missing_codes)}``.

    Used by validation and by imputation (imputed values must stay within these).
    """
    scoring = _scoring(scoring)
    cb = load_codebook()
    ranges: dict[str, tuple[float, float, tuple[float, ...]]] = {}
    for item in cb["rprs"]["items"]:
        ranges[item] = (scoring.rprs.item_min, scoring.rprs.item_max, ())
    for item in cb["qoli20"]["items"]:
        ranges[item] = (cb["qoli20"]["min"], cb["qoli20"]["max"], tuple(scoring.qoli20.missing_codes))
    ratings, points = pgi_items(scoring.pgi.areas)
    for item in ratings:
        ranges[item] = (0, scoring.pgi.rating_max, ())
    for item in points:
        ranges[item] = (0, scoring.pgi.points_total, ())
    for item in cb["hope"]["items"]:
        ranges[item] = (cb["hope"]["min"], scoring.hope.points, ())
    for item in cb["mcas"]["items"]:
        ranges[item] = (scoring.mcas.item_min, scoring.mcas.item_max, ())
    for item in cb["ace"]["items"]:
        ranges[item] = (cb["ace"]["min"], cb["ace"]["max"], ())
    return ranges


def score_columns(scoring=None, instruments: Iterable[str] = CLIENT_INSTRUMENTS) -> dict[str, list[str]]:
    """Score columns per instrument, as :func:`score_interviews` names them."""
    scoring = _scoring(scoring)
    return {name: _COLUMNS[name](getattr(scoring, name)) for name in instruments}


def score_instrument(instrument: str, frame: pd.DataFrame, scoring=None) -> pd.DataFrame:
    """Score one client instrument; see the instrument's module for the rules."""
    scoring = _scoring(scoring)
    return SCORERS[instrument](frame, getattr(scoring, instrument))


def score_interviews(interviews: pd.DataFrame, scoring=None, *, schedule: dict[float, list[str]] | None = None,
                     instruments: Iterable[str] | None = None) -> pd.DataFrame:
    """Scale scores of every interview (vectorized over rows).

    Parameters
    ----------
    interviews
        One row per interview with item columns (e.g. ``StudyData.interviews`` or an imputed copy).
    scoring
        :class:`fidelitymed.study.config.ScoringConfig` (default: the paper's settings).
    schedule
        Optional wave -> instruments map; when given (and ``interviews`` has ``wave``), scores of
        instruments not given at a row's wave are set missing, so stray items never get scored.
    instruments
        Instruments to score; default every client instrument whose item columns are present.

    Returns
    -------
    DataFrame
        Same index as ``interviews``; the key columns ``client``, ``wave``, ``date`` when present,
        then the score columns (see the module docstring).
    """
    scoring = _scoring(scoring)
    if instruments is None:
        instruments = [name for name in CLIENT_INSTRUMENTS
                       if all(c in interviews.columns for c in instrument_items(name, scoring))]
    parts = [interviews[[c for c in KEY_COLUMNS if c in interviews.columns]]]
    for name in instruments:
        scores = score_instrument(name, interviews, scoring)
        if schedule is not None and "wave" in interviews.columns:
            waves_given = [float(w) for w, names in schedule.items() if name in names]
            given = interviews["wave"].astype(float).isin(waves_given).to_numpy()
            scores = scores.where(np.broadcast_to(given[:, None], scores.shape))
        parts.append(scores)
    return pd.concat(parts, axis=1)
