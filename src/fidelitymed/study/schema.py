"""A study folder, read and validated: :func:`load_study` -> :class:`StudyData`.

Validation reports every violation in one pass (never only the first), each as a
:class:`~fidelitymed.errors.DataIssue` with file, row, column, value and what was expected.
**Rows are numbered as a spreadsheet user sees them: the header is row 1, so the first data
row is row 2** (for SAV/DTA files too: data row *k* is reported as row *k + 1*). Nothing is
ever written.

Rules checked
-------------
* required columns present (teams: ``team``, ``site``; fidelity: ``team``, ``date`` and every
  item of ``scoring.fidelity.domains``; clients: ``client``, ``team``, ``case_manager``,
  ``enrollment_date`` and the client covariates of ``analysis.covariates``; interviews:
  ``client``, ``wave``, ``date`` and the items of every scheduled instrument);
* ids present; unknown team ids (clients, fidelity) and client ids (interviews);
* duplicate keys: team, client, client x wave (and team x date when ``exposure.same_day`` is
  ``error``; by default two assessments on one day are averaged, see :mod:`fidelitymed.exposure`);
* item values outside their scale and not a missing code; covariate codes outside their
  documented values;
* dates unparseable (not ISO ``YYYY-MM-DD``, optionally with a midnight time part, or a real
  date cell; a time-zone offset, ISO week dates and compact ``20141011`` dates are refused) or
  impossible (2015-02-30; before 1900 or after 2100); an interview row with items but no date;
* (in :func:`~fidelitymed.study.io.read_table`) duplicate header names, XLSX formulas without a
  cached value; only empty cells and ``files.na_values`` are missing;
* interviews before enrolment; wave dates not increasing with the wave; waves not in ``schedule``;
  items filled in at a wave where their instrument is not scheduled;
* a team with no fidelity assessment;
* once the tables are valid: whether ``run`` can fit the configured models
  (:mod:`fidelitymed.study.feasibility`).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataIssue, StudyDataError
from ..instruments.declaration import builtin_declaration
from ..instruments.scoring import instrument_declarations, instrument_items, item_ranges
from .config import DERIVED_COVARIATES, StudyConfig, load_config
from .io import read_table
from .redcap import RedcapInterviews, read_redcap_interviews

#: documented codes of the client covariates (docs/study-format.md); others are only checked as numbers
COVARIATE_CODES: dict[str, tuple[float, ...] | tuple[str, float, float]] = {
    "gender": (0, 1), "housing": (0, 1), "employment": (0, 1), "education": (1, 2, 3),
    "long_hospitalization": (0, 1), "age": ("range", 0, 120),
}
_MIN_DATE, _MAX_DATE = pd.Timestamp("1900-01-01"), pd.Timestamp("2100-12-31")
TABLES = ("teams", "fidelity", "clients", "interviews")


@dataclass(frozen=True)
class StudyData:
    """A validated study: the configuration and the four tables with normalised types.

    Ids (``team``, ``client``, ``case_manager``, ``site``) are strings (an integer-valued id
    ``3`` or ``3.0`` becomes ``"3"``, so CSV and SPSS files agree); dates are
    ``datetime64[ns]``; ``wave`` is a float (months); items and covariates are floats, with
    missing codes (e.g. QOLI 8/9) already turned into NaN. Row order is the file's.
    Frozen: attributes cannot be rebound; treat the tables as read-only (copy before changing).
    """

    config: StudyConfig
    teams: pd.DataFrame
    fidelity: pd.DataFrame
    clients: pd.DataFrame
    interviews: pd.DataFrame
    root: Path
    files: dict[str, Path] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)

    # ----------------------------------------------------------------------- derived tables
    def scored_fidelity(self) -> pd.DataFrame:
        """``team``, ``date`` and the fidelity scores of every assessment (file order)."""
        from ..instruments.fidelity import score_fidelity

        scores = score_fidelity(self.fidelity, self.config.scoring.fidelity)
        return pd.concat([self.fidelity[["team", "date"]], scores], axis=1)

    def scored_interviews(self) -> pd.DataFrame:
        """``client``, ``wave``, ``date`` and the scale scores of every interview."""
        from ..instruments.scoring import score_interviews

        return score_interviews(self.interviews, self.config.scoring, schedule=self.config.schedule)

    def item_columns(self) -> dict[str, list[str]]:
        """Item columns of each scheduled client instrument."""
        scheduled = sorted({name for names in self.config.schedule.values() for name in names})
        return {name: instrument_items(name, self.config.scoring) for name in scheduled}

    def missing_share(self) -> float:
        """Share of scheduled item cells that are empty, over the interviews held (missed interviews not counted)."""
        total = missing = 0
        for wave, names in self.config.schedule.items():
            rows = self.interviews[self.interviews["wave"] == wave]
            for name in names:
                block = rows[instrument_items(name, self.config.scoring)]
                total += block.size
                missing += int(block.isna().to_numpy().sum())
        return missing / total if total else float("nan")

    def missing_score_share(self) -> float:
        """Share of scheduled scale scores missing over all clients x scheduled waves.

        Counts the analysed score (``analysis.scores``) of each instrument scheduled at a wave;
        a missed interview counts as missing. Comparable to the paper's "11.6% of the data were
        missing at the scale level".
        """
        scores = self.scored_interviews()
        a = self.config.analysis
        n_clients = len(self.clients)
        total = missing = 0
        for wave, names in self.config.schedule.items():
            at = scores[scores["wave"] == wave]
            for name in names:
                column = a.score_column(name)
                if column not in at.columns:
                    continue
                total += n_clients
                missing += n_clients - int(at[column].notna().sum())
        return missing / total if total else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (no ids): sizes, files and their SHA-256 hashes."""
        per_wave = self.interviews.groupby("wave").size()
        return {
            "name": self.config.name,
            "root": str(self.root),
            "n_teams": int(len(self.teams)),
            "n_assessments": int(len(self.fidelity)),
            "n_clients": int(len(self.clients)),
            "n_case_managers": int(self.clients["case_manager"].nunique()),
            "interviews_per_wave": {f"{w:g}": int(per_wave.get(w, 0)) for w in self.config.waves},
            "missing_item_share": self.missing_share(),
            "missing_score_share": self.missing_score_share(),
            "files": {k: str(v) for k, v in self.files.items()},
            "hashes": dict(self.hashes),
            "config_hash": self.config.hash(),
        }

    def summary(self) -> str:
        d = self.to_dict()
        waves = ", ".join(f"{w} m: {n}" for w, n in d["interviews_per_wave"].items())
        return (f"{d['name']}: {d['n_teams']} teams, {d['n_assessments']} fidelity assessments, "
                f"{d['n_clients']} clients ({d['n_case_managers']} case managers); interviews {waves}; "
                f"{100 * d['missing_item_share']:.1f}% of scheduled item cells missing; "
                f"{100 * d['missing_score_share']:.1f}% of scheduled scale scores missing (missed interviews included)")


# ----------------------------------------------------------------------------------- helpers
def _row(position: int) -> int:
    """Spreadsheet row of a 0-based data position: header is row 1."""
    return int(position) + 2


def normalize_ids(series: pd.Series) -> pd.Series:
    """Ids as strings; integer-valued numbers lose their ``.0``; empty stays NaN."""
    def one(v: Any) -> Any:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            return np.nan
        if isinstance(v, (bool, np.bool_)):
            return str(v)
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            return str(int(v)) if float(v).is_integer() else repr(float(v))
        text = str(v).strip()
        return text if text else np.nan
    return series.map(one).astype(object)


#: ISO calendar date, optionally with a midnight time part (what spreadsheets export for a date)
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ]00:00(?::00(?:\.0+)?)?)?")
_HAS_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})")
DATE_EXPECTED = "a real date YYYY-MM-DD between 1900-01-01 and 2100-12-31"
_DATE_FORMAT = ("a date written YYYY-MM-DD (ISO week dates, compact dates like 20141011 and times "
                "other than 00:00 are not read as dates)")


def _date_cell(v: Any) -> pd.Timestamp | None | str:
    """A date cell as a Timestamp, None (empty), or the reason it is not a date (a str)."""
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (pd.Timestamp, _dt.datetime)):
        # a date cell of the file format itself (XLSX, SAV, DTA): its time of day is dropped
        stamp = pd.Timestamp(v)
        return stamp.tz_localize(None).normalize() if stamp.tz is not None else stamp.normalize()
    if isinstance(v, _dt.date):
        return pd.Timestamp(v)
    if not isinstance(v, str):
        return _DATE_FORMAT
    text = v.strip()
    if not text:
        return None
    if _HAS_OFFSET.fullmatch(text):
        return "a date YYYY-MM-DD without a time zone offset (dates are calendar days)"
    match = _ISO_DATE.fullmatch(text)
    if match is None:
        return _DATE_FORMAT
    try:
        return pd.Timestamp(_dt.date(*(int(g) for g in match.groups())))
    except ValueError:
        return DATE_EXPECTED


def explain_dates(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse a date column; returns ``(dates, problems)``: ``problems`` holds, per cell, None or what was expected.

    Accepted: the file format's own date/datetime cells (XLSX, SAV, DTA; the time of day is
    dropped) and ISO ``YYYY-MM-DD`` text, optionally with a midnight time part
    (``2014-10-11T00:00:00``). Refused: a time zone offset, another time of day, ISO week dates
    (``2014-W41-5``), compact dates (``20141011``), dates that do not exist (2015-02-30) and
    dates outside 1900-2100.
    """
    if pd.api.types.is_datetime64_any_dtype(series):
        dates = series.dt.tz_localize(None) if getattr(series.dt, "tz", None) else series
        parsed = list(dates.dt.normalize())
    else:
        parsed = [_date_cell(v) for v in series]
    problems = [p if isinstance(p, str) else None for p in parsed]
    stamps = pd.to_datetime(pd.Series([p if isinstance(p, pd.Timestamp) else pd.NaT for p in parsed],
                                      index=series.index, dtype="datetime64[ns]"))
    out_of_range = stamps.notna() & ((stamps < _MIN_DATE) | (stamps > _MAX_DATE))
    problems = pd.Series(problems, index=series.index, dtype=object).where(~out_of_range, DATE_EXPECTED)
    return stamps.where(~out_of_range).astype("datetime64[ns]"), problems


def parse_dates(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse a date column; returns ``(dates, bad)`` where ``bad`` marks non-empty unparseable or impossible cells.

    The rules are those of :func:`explain_dates`.
    """
    dates, problems = explain_dates(series)
    return dates, problems.notna()


def _numeric(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numbers of a column and the mask of non-empty cells that are not numbers."""
    values = pd.to_numeric(series, errors="coerce")
    if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
        # object or pandas' string dtype: text that is not a number is invalid, not missing
        empty = series.map(lambda v: v is None or (isinstance(v, float) and np.isnan(v))
                           or (isinstance(v, str) and not v.strip()))
        text_bad = values.isna() & ~empty
    else:
        text_bad = pd.Series(False, index=series.index)
    return values.astype(float), text_bad


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fmt_wave(w: float) -> str:
    return f"{w:g}"


# --------------------------------------------------------------------------------- validator
def table_file(config: StudyConfig, table: str) -> str:
    """The file name of a table as given in ``files:`` (a REDCap export: its ``path``)."""
    entry = getattr(config.files, table)
    return entry.path if isinstance(entry, RedcapInterviews) else entry


def input_paths(root: Path, config: StudyConfig) -> dict[str, Path]:
    """Every input file ``study.yaml`` names (the four tables; a REDCap data dictionary), by role."""
    paths = {name: root / table_file(config, name) for name in TABLES}
    interviews = config.files.interviews
    if isinstance(interviews, RedcapInterviews) and interviews.dictionary is not None:
        paths["dictionary"] = root / interviews.dictionary
    return paths


class _Check:
    """Collects issues while normalising the four tables."""

    def __init__(self, root: Path, config: StudyConfig) -> None:
        self.root = root
        self.config = config
        self.issues: list[DataIssue] = []
        self.tables: dict[str, pd.DataFrame | None] = {}
        self.paths: dict[str, Path] = input_paths(root, config)
        self.source_rows: dict[str, list[int]] = {}

    def file(self, table: str) -> str:
        """The file name of a table as given in ``files:`` (a REDCap export: its ``path``)."""
        return table_file(self.config, table)

    def add(self, table: str, position: int | None, column: str | None, value: Any, expected: str) -> None:
        file = self.file(table)
        value = None if value is None else (value.item() if isinstance(value, np.generic) else value)
        if isinstance(value, float) and np.isnan(value):
            value = None
        elif isinstance(value, float) and value.is_integer():
            value = int(value)  # CSV item columns with blanks are float; show 0, not 0.0
        rows = self.source_rows.get(table)  # a REDCap export: the row of the export, not of the converted table
        row = None if position is None else (rows[position] if rows is not None else _row(position))
        self.issues.append(DataIssue(file, row, column, value, expected))

    # -------------------------------------------------------------------------- reading
    def read(self, table: str, required: list[str]) -> pd.DataFrame | None:
        source = getattr(self.config.files, table)
        if isinstance(source, RedcapInterviews):
            return self._read_redcap(source, required)
        try:
            frame = read_table(self.paths[table], na_values=self.config.files.na_values)
        except StudyDataError as exc:
            for issue in exc.issues:
                self.issues.append(DataIssue(self.file(table), issue.row, issue.column,
                                             issue.value, issue.expected))
            return None
        frame = frame.reset_index(drop=True)
        if frame.empty:
            self.add(table, None, None, None, "at least one data row (the table is empty)")
        missing = [c for c in required if c not in frame.columns]
        for column in missing:
            self.add(table, None, column, None, f"a required column {column!r} in the header")
        return frame

    def _read_redcap(self, source: RedcapInterviews, required: list[str]) -> pd.DataFrame | None:
        """The native interviews table of a REDCap export (:mod:`fidelitymed.study.redcap`)."""
        cfg = self.config
        decls = instrument_declarations(cfg.scoring)
        scheduled = sorted({name for names in cfg.schedule.values() for name in names})
        items = [c for c in required if c not in ("client", "wave", "date")]
        item_of = {c: name for name in scheduled if name in decls for c in decls[name].items}
        integer = {c: getattr(decls[name], "integer", True) for c, name in item_of.items()}
        try:
            frame = read_redcap_interviews(self.root, source, items=items, ranges=item_ranges(cfg.scoring),
                                           item_instrument=item_of, schedule=cfg.schedule, integer=integer)
        except StudyDataError as exc:
            self.issues.extend(exc.issues)
            return None
        self.source_rows["interviews"] = list(frame.attrs.get("source_rows", []))
        if frame.empty:
            self.add("interviews", None, None, None, "at least one interview of a mapped event (files.interviews.events)")
        return frame

    def ids(self, table: str, frame: pd.DataFrame, column: str) -> pd.Series:
        ids = normalize_ids(frame[column])
        for pos in np.flatnonzero(ids.isna().to_numpy()):
            self.add(table, pos, column, None, f"a {column} id (the cell is empty)")
        return ids

    def duplicates(self, table: str, frame: pd.DataFrame, key: list[str], what: str) -> None:
        sub = frame[key]
        complete = sub.notna().all(axis=1)
        dup = sub.duplicated(keep="first") & complete
        if not dup.any():
            return
        first: dict[tuple, int] = {}
        for i, r in enumerate(sub.itertuples(index=False, name=None)):
            first.setdefault(r, i)
        for pos in np.flatnonzero(dup.to_numpy()):
            r = tuple(sub.iloc[pos])
            value = r[0] if len(r) == 1 else ", ".join(_fmt_wave(v) if isinstance(v, float) else str(v) for v in r)
            self.add(table, pos, key[-1] if len(key) == 1 else " + ".join(key), value,
                     f"a unique {what} (already at row {_row(first[r])})")

    def dates(self, table: str, frame: pd.DataFrame, column: str, *, required: bool) -> pd.Series:
        dates, problems = explain_dates(frame[column])
        bad = problems.notna()
        for pos in np.flatnonzero(bad.to_numpy()):
            self.add(table, pos, column, frame[column].iloc[pos], problems.iloc[pos])
        if required:
            for pos in np.flatnonzero((frame[column].isna() & ~bad).to_numpy()):
                self.add(table, pos, column, None, "a date (the cell is empty)")
        return dates

    def values(self, table: str, frame: pd.DataFrame, column: str, low: float, high: float, *,
               integer: bool, codes: tuple = (), allowed: tuple | None = None) -> pd.Series:
        values, text_bad = _numeric(frame[column])
        present = values.notna()
        if allowed is not None:
            bad = present & ~values.isin(allowed)
            expected = "one of " + ", ".join(f"{v:g}" for v in allowed)
        else:
            is_code = values.isin(codes) if codes else pd.Series(False, index=values.index)
            bad = present & ~is_code & ((values < low) | (values > high))
            if integer:
                bad |= present & ~is_code & (values != values.round())
            expected = (f"an integer {low:g}-{high:g}" if integer else f"a number {low:g}-{high:g}")
            if codes:
                expected += " or a missing code " + ", ".join(f"{c:g}" for c in codes)
        bad |= text_bad
        for pos in np.flatnonzero(bad.to_numpy()):
            self.add(table, pos, column, frame[column].iloc[pos], expected)
        values = values.where(~bad)
        if codes:
            values = values.where(~values.isin(codes))
        return values

    # ------------------------------------------------------------------------------ tables
    def _keyed(self, table: str, required: list[str], key: str) -> pd.DataFrame | None:
        """The table with its ``key`` ids normalized; None (also in ``tables``) if unreadable or keyless.

        The table's other checks are skipped then (the missing column is already reported by :meth:`read`).
        """
        frame = self.read(table, required)
        if frame is None or key not in frame.columns:
            self.tables[table] = None
            return None
        frame[key] = self.ids(table, frame, key)
        return frame

    def teams(self) -> None:
        frame = self._keyed("teams", ["team", "site"], "team")
        if frame is None:
            return
        self.duplicates("teams", frame, ["team"], "team id")
        if "site" in frame.columns:
            frame["site"] = normalize_ids(frame["site"])
            for pos in np.flatnonzero(frame["site"].isna().to_numpy()):
                self.add("teams", pos, "site", None, "a site (the cell is empty)")
        self.tables["teams"] = frame

    def fidelity(self) -> None:
        scale = builtin_declaration("fidelity", self.config.scoring.fidelity)
        items = list(scale.items)
        frame = self._keyed("fidelity", ["team", "date", *items], "team")
        if frame is None:
            return
        self._known("fidelity", frame, "team", "teams", "team")
        if "date" in frame.columns:
            frame["date"] = self.dates("fidelity", frame, "date", required=True)
            if self.config.exposure.same_day == "error":
                self.duplicates("fidelity", frame, ["team", "date"], "team and assessment date "
                                "(exposure.same_day: error)")
        for column in items:
            if column in frame.columns:
                frame[column] = self.values("fidelity", frame, column, scale.min, scale.max, integer=scale.integer,
                                            codes=tuple(scale.missing_codes))
        self.tables["fidelity"] = frame

    def clients(self) -> None:
        covariates = [c for c in self.config.analysis.covariates if c not in DERIVED_COVARIATES]
        frame = self._keyed("clients", ["client", "team", "case_manager", "enrollment_date", *covariates], "client")
        if frame is None:
            return
        self.duplicates("clients", frame, ["client"], "client id")
        if "team" in frame.columns:
            frame["team"] = self.ids("clients", frame, "team")
            self._known("clients", frame, "team", "teams", "team")
        if "case_manager" in frame.columns:
            frame["case_manager"] = self.ids("clients", frame, "case_manager")
        if "enrollment_date" in frame.columns:
            frame["enrollment_date"] = self.dates("clients", frame, "enrollment_date", required=True)
        for column in covariates:
            if column not in frame.columns:
                continue
            rule = COVARIATE_CODES.get(column)
            if rule is None:
                # a study-specific covariate: its coding is the study's business, but a non-categorical
                # one enters the models as a number, so it must be one (inf would poison every fit)
                if column not in self.config.analysis.categorical:
                    values, text_bad = _numeric(frame[column])
                    bad = text_bad | (values.notna() & ~np.isfinite(values))
                    for pos in np.flatnonzero(bad.to_numpy()):
                        self.add("clients", pos, column, frame[column].iloc[pos],
                                 "a finite number (or list the covariate in analysis.categorical)")
                    frame[column] = values.where(~bad)
                continue
            if rule[0] == "range":
                frame[column] = self.values("clients", frame, column, rule[1], rule[2], integer=False)
            else:
                frame[column] = self.values("clients", frame, column, min(rule), max(rule), integer=True,
                                            allowed=tuple(rule))
        self.tables["clients"] = frame

    def interviews(self) -> None:
        cfg = self.config
        scheduled = sorted({name for names in cfg.schedule.values() for name in names})
        item_cols = {name: instrument_items(name, cfg.scoring) for name in scheduled}
        required = ["client", "wave", "date"] + [c for cols in item_cols.values() for c in cols]
        frame = self._keyed("interviews", required, "client")
        if frame is None:
            return
        self._known("interviews", frame, "client", "clients", "client")
        if "wave" in frame.columns:
            waves, text_bad = _numeric(frame["wave"])
            unknown = (waves.notna() & ~waves.isin(list(cfg.schedule))) | text_bad | frame["wave"].isna()
            for pos in np.flatnonzero(unknown.to_numpy()):
                self.add("interviews", pos, "wave", frame["wave"].iloc[pos],
                         "a scheduled wave (months): " + ", ".join(_fmt_wave(w) for w in cfg.waves))
            frame["wave"] = waves.where(~unknown)
            self.duplicates("interviews", frame, ["client", "wave"], "client and wave")
        ranges = item_ranges(cfg.scoring)
        decls = instrument_declarations(cfg.scoring)
        integer = {c: getattr(decls[n], "integer", True) for n in item_cols if n in decls for c in decls[n].items}
        for cols in item_cols.values():
            for column in cols:
                if column in frame.columns:
                    low, high, codes = ranges[column]
                    frame[column] = self.values("interviews", frame, column, low, high,
                                                integer=integer.get(column, True), codes=codes)
        present_items = [c for cols in item_cols.values() for c in cols if c in frame.columns]
        if "wave" in frame.columns:
            for name, cols in item_cols.items():
                cols = [c for c in cols if c in frame.columns]
                given_at = [w for w, names in cfg.schedule.items() if name in names]
                stray = frame["wave"].notna() & ~frame["wave"].isin(given_at) & frame[cols].notna().any(axis=1)
                for pos in np.flatnonzero(stray.to_numpy()):
                    first = next(c for c in cols if pd.notna(frame[c].iloc[pos]))
                    self.add("interviews", pos, first, frame[first].iloc[pos],
                             f"empty: {name} is not given at wave {_fmt_wave(frame['wave'].iloc[pos])} (schedule)")
        if "date" in frame.columns:
            raw_missing = frame["date"].isna()
            frame["date"] = self.dates("interviews", frame, "date", required=False)
            answered = frame[present_items].notna().any(axis=1) if present_items else False
            for pos in np.flatnonzero((raw_missing & answered).to_numpy()):
                self.add("interviews", pos, "date", None, "an interview date (the row has answers)")
        self.tables["interviews"] = frame

    # ------------------------------------------------------------------------ cross-table
    def _known(self, table: str, frame: pd.DataFrame, column: str, ref_table: str, ref_column: str) -> None:
        ref = self.tables.get(ref_table)
        if ref is None or ref_column not in ref.columns:
            return
        known = set(ref[ref_column].dropna())
        unknown = frame[column].notna() & ~frame[column].isin(known)
        ref_file = self.file(ref_table)
        for pos in np.flatnonzero(unknown.to_numpy()):
            self.add(table, pos, column, frame[column].iloc[pos], f"a {ref_column} id listed in {ref_file}")

    def cross(self) -> None:
        teams, fidelity = self.tables.get("teams"), self.tables.get("fidelity")
        if teams is not None and fidelity is not None:
            assessed = set(fidelity["team"].dropna())
            fid_file = self.config.files.fidelity
            for pos in np.flatnonzero((teams["team"].notna() & ~teams["team"].isin(assessed)).to_numpy()):
                self.add("teams", pos, "team", teams["team"].iloc[pos],
                         f"a team with at least one fidelity assessment in {fid_file}")
        clients, interviews = self.tables.get("clients"), self.tables.get("interviews")
        if interviews is None or "date" not in interviews.columns:
            return
        if clients is not None and "enrollment_date" in clients.columns:
            enrol = clients.dropna(subset=["client"]).drop_duplicates("client").set_index("client")["enrollment_date"]
            start = interviews[["client"]].merge(enrol.rename("start").reset_index(), on="client",
                                                 how="left")["start"].set_axis(interviews.index)
            early = interviews["date"].notna() & start.notna() & (interviews["date"] < start)
            for pos in np.flatnonzero(early.to_numpy()):
                self.add("interviews", pos, "date", interviews["date"].iloc[pos].date().isoformat(),
                         f"a date on or after the client's enrollment_date {start.iloc[pos].date().isoformat()}")
        if "wave" in interviews.columns:
            sub = interviews[["client", "wave", "date"]].dropna()
            sub = sub.assign(pos=sub.index).sort_values(["client", "wave"], kind="stable")
            previous = sub.groupby("client")["date"].shift(1)
            previous_wave = sub.groupby("client")["wave"].shift(1)
            order_bad = previous.notna() & (sub["date"] <= previous)
            for idx in np.flatnonzero(order_bad.to_numpy()):
                r = sub.iloc[idx]
                self.add("interviews", int(r["pos"]), "date", r["date"].date().isoformat(),
                         f"a date after the wave {_fmt_wave(previous_wave.iloc[idx])} interview "
                         f"({previous.iloc[idx].date().isoformat()}): dates must increase with the wave")


def _run(path: str | os.PathLike, impute: bool | None = None) -> tuple[_Check, StudyData | None]:
    """Check the tables, then (when they are valid) whether the configured models can be fitted."""
    from .feasibility import feasibility_issues

    path = Path(path)
    yaml_path = path / "study.yaml" if path.is_dir() else path
    root = yaml_path.parent
    config = load_config(yaml_path)
    if impute is not None and bool(impute) != config.analysis.impute:
        config = config.model_copy(update={"analysis": config.analysis.model_copy(update={"impute": bool(impute)})})
    check = _Check(root, config)
    check.teams()
    check.fidelity()
    check.clients()
    check.interviews()
    check.cross()
    if check.issues:
        # feasibility needs scores and exposures, which only valid tables give
        return check, None
    study = _study_data(check, root, yaml_path)
    check.issues.extend(feasibility_issues(study))
    return check, study


def validate_study(path: str | os.PathLike, *, impute: bool | None = None) -> list[DataIssue]:
    """Every problem of the study folder (or its ``study.yaml``) in one pass; empty when valid.

    Besides the tables' rules, the checks of :mod:`fidelitymed.study.feasibility` (can the
    configured models be fitted?) run once the tables are valid. ``impute`` overrides
    ``analysis.impute`` for them (``False``: check for a listwise run).

    Raises
    ------
    ConfigError
        If ``study.yaml`` itself is invalid (its message lists every key problem).
    """
    check, _study = _run(path, impute)
    return _sorted(check.issues)


def _sorted(issues: list[DataIssue]) -> list[DataIssue]:
    # files in the order checked, then by row (header-level issues first)
    files: list[str | None] = []
    for issue in issues:
        if issue.file not in files:
            files.append(issue.file)
    return sorted(issues, key=lambda i: (files.index(i.file), -1 if i.row is None else i.row))


def load_study(path: str | os.PathLike, *, impute: bool | None = None) -> StudyData:
    """Read, validate and normalise a study folder (or its ``study.yaml``).

    The study must also be analysable (:mod:`fidelitymed.study.feasibility`), for
    ``analysis.impute`` or, when given, ``impute`` (the returned ``config`` then carries it).

    Raises
    ------
    ConfigError
        If ``study.yaml`` is invalid.
    StudyDataError
        With every :class:`~fidelitymed.errors.DataIssue` found (``.issues``).

    Examples
    --------
    >>> study = load_study("my-study")            # doctest: +SKIP
    >>> study.scored_interviews()                 # doctest: +SKIP
    """
    check, study = _run(path, impute)
    if check.issues or study is None:
        raise StudyDataError(_sorted(check.issues))
    return study


def _study_data(check: _Check, root: Path, yaml_path: Path) -> StudyData:
    t = check.tables
    teams = t["teams"].copy()
    for col in ("organization", "province"):
        if col in teams.columns:
            teams[col] = normalize_ids(teams[col])
    fidelity = t["fidelity"]
    clients = t["clients"]
    interviews = t["interviews"]
    files = {"config": yaml_path, **check.paths}
    hashes = {name: _sha256(p) for name, p in files.items()}
    return StudyData(config=check.config, teams=teams, fidelity=fidelity, clients=clients,
                     interviews=interviews, root=root, files=files, hashes=hashes)
