"""The analysis frame: one row per client (wide) and one row per interview (long).

Column naming
-------------
``<score>_<wave>m``
    A scale score at a wave, e.g. ``qoli20_total_9m``, ``pgi_index_0m``, ``rprs_total_4.5m``
    (score names from :mod:`fidelitymed.instruments.scoring`; wave in months, formatted with
    ``:g``).
``fidelity_<wave>m_<N>d``
    Mean total team fidelity over the N-day window before the alliance interview of that wave
    (the paper matches the fidelity window to the alliance interview), e.g.
    ``fidelity_4.5m_180d``; domain level: ``fidelity_<domain>_<wave>m_<N>d``; the window flag
    ``fidelity_<wave>m_<N>d_carried`` (true when days outside the team's assessed span were
    carried, see :mod:`fidelitymed.exposure`).
covariates
    The client-table covariates by their names (``age``, ``gender``, ...), ``site`` (from the
    teams table, text), ``ace`` (ACE total of the baseline interview).
``client``, ``team``, ``case_manager``
    Kept for nesting (ICCs, clustering). They are identifiers: drop them
    (:func:`deidentify`) from anything meant for a report.

The long form has one row per interview: ids, ``site``, ``wave``, ``date``,
``days_since_enrollment``, the covariates, every score column and the exposure of that
interview for every window (``fidelity_<N>d``, ``fidelity_<domain>_<N>d``, ``carried_<N>d``,
``days_before_first_<N>d``, ``days_after_last_<N>d``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .exposure import exposure_name, study_exposure
from .study.config import DERIVED_COVARIATES, StudyConfig, WavePair

ID_COLUMNS = ("client", "team", "case_manager")


def wave_label(wave: float) -> str:
    """``4.5`` -> ``"4.5m"``, ``9.0`` -> ``"9m"``."""
    return f"{float(wave):g}m"


def score_at(column: str, wave: float) -> str:
    """Frame column of a score at a wave: ``score_at("qoli20_total", 9)`` -> ``qoli20_total_9m``."""
    return f"{column}_{wave_label(wave)}"


def exposure_at(wave: float, window: int, domain: str | None = None) -> str:
    """Frame column of the exposure matched to a wave: ``fidelity_4.5m_180d`` / ``fidelity_caseload_4.5m_180d``."""
    base = "fidelity" if domain in (None, "total") else f"fidelity_{domain}"
    return f"{base}_{wave_label(wave)}_{int(window)}d"


@dataclass(frozen=True)
class ModelColumns:
    """The frame columns of one mediation model (outcome x wave pair x window)."""

    outcome: str
    outcome_wave: float
    mediator_wave: float
    window: int
    x: str
    #: the mediator column; parallel mediators (``analysis.mediator`` a list): a tuple of columns
    m: str | tuple[str, ...]
    y: str
    covariates: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def mediators(self) -> tuple[str, ...]:
        """The mediator column(s), always a tuple."""
        return (self.m,) if isinstance(self.m, str) else tuple(self.m)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def model_columns(config: StudyConfig, outcome: str, pair: WavePair, window: int | None = None) -> ModelColumns:
    """Resolve the columns of a model: X (exposure at the mediator wave), M, Y and the covariates.

    The covariate ``baseline`` becomes the outcome's score at ``analysis.baseline_wave``.
    """
    a = config.analysis
    window = config.exposure.primary_window if window is None else int(window)
    y_score = a.score_column(outcome)
    covariates = tuple(score_at(y_score, a.baseline_wave) if c == "baseline" else c for c in a.covariates)
    m = (tuple(score_at(c, pair.mediator) for c in a.mediator_columns()) if a.parallel
         else score_at(a.score_column(a.mediator), pair.mediator))
    return ModelColumns(outcome=outcome, outcome_wave=pair.outcome, mediator_wave=pair.mediator, window=window,
                        x=exposure_at(pair.mediator, window), m=m,
                        y=score_at(y_score, pair.outcome), covariates=covariates, categorical=tuple(a.categorical))


def deidentify(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame without ``client``, ``team`` and ``case_manager`` (for anything reported)."""
    return frame.drop(columns=[c for c in ID_COLUMNS if c in frame.columns])


def _client_base(study) -> pd.DataFrame:
    cfg = study.config
    covs = [c for c in cfg.analysis.covariates if c not in DERIVED_COVARIATES and c in study.clients.columns]
    base = study.clients[["client", "team", "case_manager", *covs]].copy()
    site_of = study.teams.set_index("team")["site"]
    base.insert(3, "site", base["team"].map(site_of))
    return base


def _exposure_columns(study, domains: bool) -> list[str]:
    scoring = study.config.scoring.fidelity
    cols = ["fidelity_total"]
    if domains:
        cols += [f"fidelity_{d}" for d in scoring.domains]
    return cols


def long_frame(study, scores: pd.DataFrame | None = None, *, exposure: pd.DataFrame | None = None,
               domains: bool = True) -> pd.DataFrame:
    """One row per interview, for mixed models.

    Parameters
    ----------
    study
        A :class:`~fidelitymed.study.schema.StudyData`.
    scores
        Scored interviews with ``client`` and ``wave`` (default ``study.scored_interviews()``;
        pass a re-scored imputed copy to rebuild the frame after imputation).
    exposure
        Precomputed :func:`fidelitymed.exposure.study_exposure` output (it does not depend on
        imputation, so the pipeline computes it once).
    domains
        Include domain-level exposure.
    """
    if scores is None:
        scores = study.scored_interviews()
    if exposure is None:
        exposure = study_exposure(study, columns=_exposure_columns(study, domains))
    base = _client_base(study)
    ace = _baseline_ace(study, scores)
    score_cols = [c for c in scores.columns if c not in ("client", "wave", "date")]
    expo_cols = [c for c in exposure.columns if c not in ("client", "wave", "date", "team")]
    keyed_scores = scores[["client", "wave", *score_cols]]
    keyed_expo = exposure[["client", "wave", "date", *expo_cols]]
    long = keyed_expo.merge(keyed_scores, on=["client", "wave"], how="left", validate="one_to_one")
    long = base.merge(ace, on="client", how="left").merge(long, on="client", how="inner")
    enrol = study.clients.set_index("client")["enrollment_date"]
    long.insert(long.columns.get_loc("date") + 1, "days_since_enrollment",
                (long["date"] - long["client"].map(enrol)).dt.days.astype("Int64"))
    return long.sort_values(["client", "wave"], kind="stable").reset_index(drop=True)


def _baseline_ace(study, scores: pd.DataFrame) -> pd.DataFrame:
    w0 = study.config.analysis.baseline_wave
    if "ace_total" not in scores.columns:
        return pd.DataFrame({"client": study.clients["client"], "ace": float("nan")})
    rows = scores.loc[scores["wave"] == w0, ["client", "ace_total"]]
    return rows.rename(columns={"ace_total": "ace"})


def analysis_frame(study, scores: pd.DataFrame | None = None, *, exposure: pd.DataFrame | None = None,
                   domains: bool = True, all_scores: bool = False) -> pd.DataFrame:
    """One row per client: covariates, baseline outcomes, alliance, outcomes and matched exposure.

    Contains, in this order: ``client``, ``team``, ``case_manager``, ``site``, the client
    covariates, ``ace``; then for every scheduled wave the analysed score of each outcome and of
    the mediator given at that wave (``<score>_<wave>m``; with ``all_scores`` every subscale
    too); then for each mediator wave of ``analysis.waves`` and each window the exposure
    matched to that alliance interview (``fidelity_<wave>m_<N>d``, domain columns,
    ``..._carried``). Clients without an interview at a wave have missing values there.

    Parameters are as for :func:`long_frame`.
    """
    cfg = study.config
    a = cfg.analysis
    if scores is None:
        scores = study.scored_interviews()
    if exposure is None:
        exposure = study_exposure(study, columns=_exposure_columns(study, domains))
    base = _client_base(study).merge(_baseline_ace(study, scores), on="client", how="left")
    frame = base.set_index("client")
    pieces = []
    mediator_columns: dict[str, list[str]] = {}
    for (instrument, _), column in zip(a.mediator_scores(), a.mediator_columns(), strict=True):
        mediator_columns.setdefault(instrument, []).append(column)
    for wave in cfg.waves:
        at = scores[scores["wave"] == wave].set_index("client")
        for instrument in cfg.schedule[wave]:
            if instrument not in (*a.outcomes, *mediator_columns):
                continue
            cols = mediator_columns[instrument] if a.parallel and instrument in mediator_columns else \
                [a.score_column(instrument)]
            if all_scores:
                cols += [c for c in at.columns if c.startswith(f"{instrument}_") and c not in cols]
            for col in cols:
                if col in at.columns:
                    pieces.append(at[col].rename(score_at(col, wave)))
    mediator_waves = sorted({p.mediator for p in a.waves})
    expo_cols = _exposure_columns(study, domains)
    for wave in mediator_waves:
        at = exposure[exposure["wave"] == wave].set_index("client")
        for window in cfg.exposure.windows:
            for col in expo_cols:
                domain = None if col == "fidelity_total" else col[len("fidelity_"):]
                pieces.append(at[exposure_name(col, window)].rename(exposure_at(wave, window, domain)))
            pieces.append(at[f"carried_{window}d"].rename(exposure_at(wave, window) + "_carried"))
    if pieces:
        frame = pd.concat([frame, pd.concat(pieces, axis=1).reindex(frame.index)], axis=1).copy()
    frame.index.name = "client"
    return frame.reset_index()
