"""Score instruments from their declarations: items in, scale scores out (one path for all).

:func:`score_declaration` is the one scoring entry point of every client instrument, built-in
or declared in ``study.yaml`` (:mod:`fidelitymed.instruments.declaration`). Score columns are
named ``<instrument>_<score>``:

========== ==========================================================================
instrument columns (built-ins)
========== ==========================================================================
rprs       ``rprs_total``, ``rprs_<index>`` (0-100)
qoli20     ``qoli20_total`` (20-140), ``qoli20_<subscale>`` (1-7)
pgi        ``pgi_index`` (0-100)
hope       ``hope_total``, ``hope_agency``, ``hope_pathways``
mcas       ``mcas_total`` (17-85), ``mcas_<subscale>``
ace        ``ace_total`` (0-10)
(declared) ``<name>_total``, ``<name>_<subscale>``
========== ==========================================================================

The analysed score of an instrument is ``analysis.scores`` of ``study.yaml`` (e.g. ``pgi``
-> ``index``), i.e. the column ``AnalysisConfig.score_column(instrument)``.

Functions that take ``scoring`` (the ``scoring:`` settings of the built-ins) also take
``declarations``: the study's own declarations, which add instruments or replace built-in
ones of the same name. By default they are those the study's ``ScoringConfig`` carries
(``StudyConfig`` attaches ``instruments:`` of ``study.yaml`` to its ``scoring``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from .codebook import CLIENT_INSTRUMENTS, allowed_missing, item_matrix, prorated
from .declaration import (AnyDeclaration, ClientDeclaration, FidelityDeclaration, InstrumentDeclaration,
                          PgiDeclaration, builtin_declaration)

KEY_COLUMNS = ("client", "wave", "date")


def _scoring(scoring):
    if scoring is None:
        from ..study.config import ScoringConfig

        scoring = ScoringConfig()
    return scoring


def instrument_declarations(scoring=None, declarations: Mapping[str, AnyDeclaration] | None = None
                            ) -> dict[str, ClientDeclaration]:
    """Every client instrument's effective declaration.

    The built-ins with their ``scoring:`` settings applied, then the study's declarations
    (a declaration named like a built-in replaces it; fidelity declarations are skipped: the
    team-level scale is scored by :func:`fidelitymed.instruments.fidelity.score_fidelity`).
    """
    scoring = _scoring(scoring)
    if declarations is None:
        declarations = getattr(scoring, "declarations", None)
    out: dict[str, ClientDeclaration] = {name: builtin_declaration(name, getattr(scoring, name))  # type: ignore[misc]
                                         for name in CLIENT_INSTRUMENTS}
    for name, decl in (declarations or {}).items():
        if not isinstance(decl, FidelityDeclaration):
            out[name] = decl
    return out


def _declaration(instrument: str, scoring, declarations) -> ClientDeclaration:
    if declarations is None:
        declarations = getattr(scoring, "declarations", None)
    if declarations and instrument in declarations and not isinstance(declarations[instrument], FidelityDeclaration):
        return declarations[instrument]  # type: ignore[return-value]
    if instrument not in CLIENT_INSTRUMENTS:
        known = list(CLIENT_INSTRUMENTS) + [n for n in (declarations or {}) if n not in CLIENT_INSTRUMENTS]
        raise KeyError(f"unknown client instrument {instrument!r}; expected one of {known}")
    return builtin_declaration(instrument, getattr(_scoring(scoring), instrument))  # type: ignore[return-value]


def instrument_items(instrument: str, scoring=None, declarations=None) -> list[str]:
    """Item columns of a client instrument (PGI: ratings then points; Hope: all 12 incl. fillers)."""
    return list(_declaration(instrument, scoring, declarations).items)


def item_ranges(scoring=None, declarations=None) -> dict[str, tuple[float, float, tuple[float, ...]]]:
    """Valid values of every client item column: ``{column: (low, high, missing_codes)}``.

    Used by validation and by imputation (imputed values must stay within these).
    """
    ranges: dict[str, tuple[float, float, tuple[float, ...]]] = {}
    for decl in instrument_declarations(scoring, declarations).values():
        ranges.update(decl.item_ranges())
    return ranges


def score_columns(scoring=None, instruments: Iterable[str] | None = None,
                  declarations=None) -> dict[str, list[str]]:
    """Score columns per instrument, as :func:`score_interviews` names them."""
    decls = instrument_declarations(scoring, declarations)
    names = list(decls) if instruments is None else list(instruments)
    return {name: [f"{name}_{s}" for s in _declaration(name, scoring, declarations).score_names] for name in names}


def _rescaled(values: np.ndarray, decl: InstrumentDeclaration) -> np.ndarray:
    if decl.metric == "zero_to_100":
        return (values - decl.min) / (decl.max - decl.min) * 100.0
    if decl.metric == "percent_of_max":
        return values / decl.max * 100.0
    return values


def _score_items(name: str, decl: InstrumentDeclaration, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    scored = decl.scored_items
    block = item_matrix(frame, scored, low=decl.min, high=decl.max, missing_codes=decl.missing_codes,
                        reverse=decl.reverse, integer=decl.integer, instrument=name)
    unscored = [c for c in decl.unscored if c in frame.columns]
    if unscored:  # checked for valid values, never scored
        item_matrix(frame, unscored, low=decl.min, high=decl.max, missing_codes=decl.missing_codes,
                    integer=decl.integer, instrument=name)
    subscales = {sub: prorated(block[:, [scored.index(m) for m in members]],
                               max_missing=allowed_missing(decl.max_missing_share, len(members)),
                               stat=decl.subscale_stat)
                 for sub, members in decl.subscales.items()}
    allowed = allowed_missing(decl.max_missing_share, len(scored))
    if decl.total in ("mean", "sum"):
        total = prorated(block, max_missing=allowed, stat=decl.total)
    elif decl.total == "count":
        answered = (~np.isnan(block)).sum(axis=1)
        ok = (block.shape[1] - answered <= allowed) & (answered > 0)
        total = np.where(ok, np.nansum(block, axis=1), np.nan)
    else:  # subscale_sum: missing when any subscale is
        parts = list(subscales.values())
        total = parts[0]
        for part in parts[1:]:
            total = total + part
    return {score: _rescaled(v, decl) for score, v in {"total": total, **subscales}.items()}


def score_declaration(name: str, declaration: ClientDeclaration, frame: pd.DataFrame) -> pd.DataFrame:
    """Score one client instrument from its declaration (the one scoring entry point).

    Parameters
    ----------
    name
        Instrument key: the prefix of the score columns (``wai`` -> ``wai_total``).
    declaration
        :class:`~fidelitymed.instruments.declaration.InstrumentDeclaration` (item rules) or a
        named rule (:class:`~fidelitymed.instruments.declaration.PgiDeclaration`).
    frame
        One row per interview with the item columns.

    Returns
    -------
    DataFrame
        Same index as ``frame``; ``<name>_<score>`` for every score of the declaration.

    Raises
    ------
    StudyDataError
        On missing item columns or values that are neither valid scale points nor missing codes.
    """
    if isinstance(declaration, PgiDeclaration):
        from .pgi import pgi_index

        scores = {"index": pgi_index(declaration, frame)}
    elif isinstance(declaration, InstrumentDeclaration):
        scores = _score_items(name, declaration, frame)
    else:
        raise TypeError(f"{name}: {type(declaration).__name__} is not a client instrument declaration")
    return pd.DataFrame({f"{name}_{score}": v for score, v in scores.items()}, index=frame.index)


def score_instrument(instrument: str, frame: pd.DataFrame, scoring=None, declarations=None) -> pd.DataFrame:
    """Score one client instrument (built-in with ``scoring`` settings, or declared)."""
    return score_declaration(instrument, _declaration(instrument, scoring, declarations), frame)


def score_interviews(interviews: pd.DataFrame, scoring=None, *, schedule: dict[float, list[str]] | None = None,
                     instruments: Iterable[str] | None = None, declarations=None) -> pd.DataFrame:
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
    declarations
        The study's instrument declarations (``instruments:`` of ``study.yaml``).

    Returns
    -------
    DataFrame
        Same index as ``interviews``; the key columns ``client``, ``wave``, ``date`` when present,
        then the score columns (see the module docstring).
    """
    decls = instrument_declarations(scoring, declarations)
    if instruments is None:
        instruments = [name for name, decl in decls.items() if all(c in interviews.columns for c in decl.items)]
    parts = [interviews[[c for c in KEY_COLUMNS if c in interviews.columns]]]
    for name in instruments:
        scores = score_declaration(name, decls[name], interviews)
        if schedule is not None and "wave" in interviews.columns:
            waves_given = [float(w) for w, names in schedule.items() if name in names]
            given = interviews["wave"].astype(float).isin(waves_given).to_numpy()
            scores = scores.where(np.broadcast_to(given[:, None], scores.shape))
        parts.append(scores)
    return pd.concat(parts, axis=1)
