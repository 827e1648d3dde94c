"""Fidelity exposure: a daily team fidelity series and its mean over the N days before an interview.

The SMCM study computed "a daily team fidelity score ... for each day of the study by using
linear interpolation" and, for each interview, "the average level of SMCM fidelity of a
client's case management team over the previous 6 months (180 days) leading up to each client
interview date" (90 and 270 days as sensitivity analyses; Methods, Data Analysis).

Rules (settings of ``exposure:`` in ``study.yaml``)
--------------------------------------------------
* **Daily series.** Between two assessments of a team the score is interpolated linearly by
  calendar day; on an assessment day it equals the assessment. Each score column (total and
  every domain) is interpolated on its own, over the assessments where it is not missing.
* **Window.** ``window_end: before`` (default): the N days *ending the day before* the
  interview, i.e. days ``T-N .. T-1`` for an interview on day ``T`` -- "the previous N days
  leading up to" the interview; the interview day itself is not included. ``on``: days
  ``T-N+1 .. T``. The exposure is the plain mean of the N daily values.
* **Outside the assessed span** (days before a team's first or after its last assessment):
  ``outside_assessments: carry`` (default) uses the nearest assessment's score on those days
  and flags the exposure (``days_before_first_<N>d``, ``days_after_last_<N>d`` count the
  carried days, ``carried_<N>d`` is true when any day was carried); ``exclude`` makes the
  exposure missing when any window day lies outside the span.
* **Teams that dropped out** stop being assessed: after their last assessment the same rule
  applies (carry the last score and flag it, or exclude).
* **Two assessments on one day** (``same_day: mean``): their scores (domain means and total)
  are averaged into one assessment before interpolating. With ``same_day: error`` the study
  validator reports them instead.
* Interviews without a date, or whose team has no assessment, get a missing exposure.

Everything is vectorized: per team one daily series and its cumulative sum; each interview's
window sum is a difference of two cumulative sums (no loop per interview).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import pandas as pd

SCORE_PREFIX = "fidelity_"


def exposure_name(column: str, window: int) -> str:
    """Exposure column of a score column: ``fidelity_total`` -> ``fidelity_180d``,
    ``fidelity_caseload`` -> ``fidelity_caseload_180d``."""
    base = column[: -len("_total")] if column.endswith("_total") else column
    return f"{base}_{int(window)}d"


def _days(dates: pd.Series | pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """Calendar days since 1970-01-01 as int64 (NaT -> a sentinel filtered by the caller)."""
    values = np.asarray(pd.to_datetime(dates), dtype="datetime64[D]")
    return values.astype(np.int64)


def score_columns_of(scored: pd.DataFrame) -> list[str]:
    """Numeric fidelity score columns of a scored fidelity table (total first, then domains)."""
    cols = [c for c in scored.columns if c.startswith(SCORE_PREFIX) and c != "fidelity_high"
            and pd.api.types.is_numeric_dtype(scored[c])]
    return sorted(cols, key=lambda c: (c != "fidelity_total", cols.index(c)))


def collapse_same_day(scored: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per team and date: assessments on the same day are averaged (NaN-skipping mean)."""
    columns = list(columns) if columns is not None else score_columns_of(scored)
    frame = scored[["team", "date", *columns]].dropna(subset=["team", "date"])
    frame = frame.assign(date=pd.to_datetime(frame["date"]).dt.normalize())
    return frame.groupby(["team", "date"], sort=True, as_index=False)[columns].mean()


def daily_series(scored: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The daily interpolated series of each team, from its first to its last assessment.

    Returns a long DataFrame ``team``, ``date`` and one column per score column.
    """
    columns = list(columns) if columns is not None else score_columns_of(scored)
    assessments = collapse_same_day(scored, columns)
    parts = []
    for team, rows in assessments.groupby("team", sort=True):
        days = _days(rows["date"])
        grid = np.arange(days.min(), days.max() + 1)
        data = {"team": team, "date": pd.to_datetime(grid.astype("datetime64[D]")).astype("datetime64[ns]")}
        for column in columns:
            ok = rows[column].notna().to_numpy()
            data[column] = (np.interp(grid, days[ok], rows[column].to_numpy(dtype=float)[ok])
                            if ok.any() else np.full(len(grid), np.nan))
        parts.append(pd.DataFrame(data))
    if not parts:
        return pd.DataFrame(columns=["team", "date", *columns])
    return pd.concat(parts, ignore_index=True)


def fidelity_exposure(scored: pd.DataFrame, visits: pd.DataFrame, *, windows: Iterable[int] = (90, 180, 270),
                      outside: Literal["carry", "exclude"] = "carry",
                      window_end: Literal["before", "on"] = "before",
                      columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean team fidelity over the N days before each visit (interview), for each window N.

    Parameters
    ----------
    scored
        Scored fidelity assessments: ``team``, ``date`` and score columns (output of
        :meth:`fidelitymed.study.schema.StudyData.scored_fidelity`).
    visits
        One row per interview with ``team`` and ``date``.
    windows
        Window lengths in days.
    outside, window_end
        See the module docstring.
    columns
        Score columns to expose (default: ``fidelity_total`` and every domain).

    Returns
    -------
    DataFrame
        Index of ``visits``; per window N: ``<score>_<N>d`` for each score column (named by
        :func:`exposure_name`, e.g. ``fidelity_180d``, ``fidelity_caseload_180d``),
        ``days_before_first_<N>d``, ``days_after_last_<N>d`` and ``carried_<N>d``.
    """
    if outside not in ("carry", "exclude"):
        raise ValueError(f"outside must be 'carry' or 'exclude'; got {outside!r}")
    if window_end not in ("before", "on"):
        raise ValueError(f"window_end must be 'before' or 'on'; got {window_end!r}")
    windows = [int(w) for w in windows]
    columns = list(columns) if columns is not None else score_columns_of(scored)
    assessments = collapse_same_day(scored, columns)
    n = len(visits)
    out: dict[str, np.ndarray] = {}
    for w in windows:
        for column in columns:
            out[exposure_name(column, w)] = np.full(n, np.nan)
        out[f"days_before_first_{w}d"] = np.full(n, np.nan)
        out[f"days_after_last_{w}d"] = np.full(n, np.nan)
    visit_team = visits["team"].to_numpy(dtype=object)
    visit_date = pd.to_datetime(visits["date"])
    has_date = visit_date.notna().to_numpy()
    visit_day = np.zeros(n, dtype=np.int64)
    visit_day[has_date] = _days(visit_date[has_date])
    # the last day of the window: the day before the interview, or the interview day
    end = visit_day - (1 if window_end == "before" else 0)
    max_w = max(windows)
    for team, rows in assessments.groupby("team", sort=True):
        idx = np.flatnonzero((visit_team == team) & has_date)
        if idx.size == 0:
            continue
        days = _days(rows["date"])
        first, last = days.min(), days.max()
        lo = min(first, int(end[idx].min()) - max_w + 1)
        hi = max(last, int(end[idx].max()))
        grid = np.arange(lo, hi + 1)
        e = end[idx] - lo                      # position of each window's last day in grid
        for column in columns:
            ok = rows[column].notna().to_numpy()
            if not ok.any():
                continue
            # np.interp holds the end values constant outside the span: exactly the "carry" rule
            daily = np.interp(grid, days[ok], rows[column].to_numpy(dtype=float)[ok])
            cum = np.concatenate([[0.0], np.cumsum(daily)])
            for w in windows:
                out[exposure_name(column, w)][idx] = (cum[e + 1] - cum[e + 1 - w]) / w
        for w in windows:
            start_day, end_day = end[idx] - w + 1, end[idx]
            out[f"days_before_first_{w}d"][idx] = np.clip(first - start_day, 0, w)
            out[f"days_after_last_{w}d"][idx] = np.clip(end_day - last, 0, w)
    result = pd.DataFrame(out, index=visits.index)
    for w in windows:
        outside_days = result[f"days_before_first_{w}d"] + result[f"days_after_last_{w}d"]
        result[f"carried_{w}d"] = pd.array(np.where(outside_days.isna(), None, outside_days > 0), dtype="boolean")
        if outside == "exclude":
            drop = (outside_days > 0).to_numpy()
            for column in columns:
                result.loc[drop, exposure_name(column, w)] = np.nan
        for k in ("days_before_first", "days_after_last"):
            result[f"{k}_{w}d"] = result[f"{k}_{w}d"].astype("Int64")
    return result


def domain_columns(domains: Iterable[str]) -> list[str]:
    """Score columns of fidelity domains: ``caseload`` -> ``fidelity_caseload``."""
    return [f"{SCORE_PREFIX}{d}" for d in domains]


def domain_exposure(scored: pd.DataFrame, visits: pd.DataFrame, domains: Iterable[str], *,
                    windows: Iterable[int] = (90, 180, 270), outside: Literal["carry", "exclude"] = "carry",
                    window_end: Literal["before", "on"] = "before") -> pd.DataFrame:
    """Exposure of each fidelity domain: ``fidelity_<domain>_<N>d`` for every domain and window.

    Each domain score is interpolated by day on its own (over the assessments that rated it)
    and averaged over the same windows, with the same rules, as the total
    (:func:`fidelity_exposure`); the analysis of fidelity domains
    (:mod:`fidelitymed.stats.domains`) uses these as X. Excluded domains can be exposed too.
    """
    windows = [int(w) for w in windows]
    columns = domain_columns(domains)
    expo = fidelity_exposure(scored, visits, windows=windows, outside=outside, window_end=window_end,
                             columns=columns)
    return expo[[exposure_name(c, w) for w in windows for c in columns]]


def study_exposure(study, *, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Exposure of every interview of a :class:`~fidelitymed.study.schema.StudyData` with its settings.

    Returns ``client``, ``wave``, ``date``, ``team`` and the columns of :func:`fidelity_exposure`
    (index of ``study.interviews``).
    """
    cfg = study.config.exposure
    team_of = study.clients.set_index("client")["team"]
    visits = study.interviews[["client", "wave", "date"]].assign(team=study.interviews["client"].map(team_of))
    expo = fidelity_exposure(study.scored_fidelity(), visits, windows=cfg.windows,
                             outside=cfg.outside_assessments, window_end=cfg.window_end, columns=columns)
    return pd.concat([visits, expo], axis=1)
