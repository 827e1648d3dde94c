"""The study's descriptive tables: participant characteristics (Table 1) and study variables by wave (Table 2).

Table 1 gives n and % of each level of a categorical characteristic and the mean and SD of a
continuous one. Cells describing fewer than ``threshold`` clients (default 5; ``0 < n <
threshold``) are suppressed (*primary* suppression, shown as "<5"), and further cells are
suppressed (*complementary* suppression, shown as "suppressed") until no hidden count can be
worked out from what the table shows: the other cells, the characteristic's n, its Missing row
and the total N (statistical disclosure control; Hundepool et al. 2012, *Statistical
Disclosure Control*, ch. 4 and 6). The check is the audit a disclosure-control tool runs
(Tau-Argus): for every hidden cell, the smallest and largest value it can take given the shown
cells, the table's sums (levels add up to n, n + Missing = N) and what the labels say
("<5": 1 to 4; "suppressed": at least 5, since a smaller count would itself be "<5") -- each
by a linear programme -- must differ, so at least two counts are possible. A characteristic's n
hidden this way also hides its percentages (they would give n back). A continuous
characteristic's n is hidden when it is small (with its mean and SD), and shown as
"suppressed" (mean and SD kept) when N - n, the clients without a value, is small.
Identifier columns are never described.

Table 2 gives the mean and SD of each study variable at each wave and compares every later
wave with the variable's first wave by a **paired t test on the clients observed at both
waves** (mean difference, t, df, p, and Cohen's d_z = mean difference / SD of differences).
Why paired t tests rather than a mixed model: it is the comparison the paper's Table 2 reports
(SPSS mean comparison tests), it makes no modelling assumption beyond normal differences, and
each row says exactly which clients it rests on (``n_pairs``). A mixed model would use the
clients seen at only one wave (valid under MAR), but the study's missing-data handling is the
multiple imputation of the main analysis, and Table 2 is descriptive. The values are on the
observed scores (not imputed). The fidelity exposure is a team-level value shared by the
clients of a team, so it is reduced to one value per team and wave (its clients' mean
exposure) and tested across teams (paired t test, n = number of teams), not across clients.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError
from .stats.distributions import t_sf

__all__ = ["DEFAULT_LABELS", "DEFAULT_VALUE_LABELS", "IDENTIFIER_COLUMNS", "Table1", "Table2", "cell_label",
           "feasible_ranges", "measures_from_columns", "protect_cells", "suppress_rows", "table1", "table1_equations",
           "table2"]

#: columns that identify people and are never described
IDENTIFIER_COLUMNS: frozenset[str] = frozenset({"client", "case_manager", "client_id", "case_manager_id", "id"})

#: value labels of the clients table (docs/study-format.md)
DEFAULT_VALUE_LABELS: dict[str, dict[Any, str]] = {
    "gender": {0: "Man", 1: "Woman"},
    "housing": {0: "Unstable", 1: "Stable"},
    "employment": {0: "Unemployed", 1: "Employed"},
    "education": {1: "Less than high school", 2: "High school", 3: "Post-secondary"},
    "long_hospitalization": {0: "No", 1: "Yes"},
}

#: display names of characteristics and instruments
DEFAULT_LABELS: dict[str, str] = {
    "age": "Age (years)", "gender": "Gender", "housing": "Housing", "employment": "Employment",
    "education": "Education", "ace": "Adverse childhood experiences (0-10)", "site": "Site",
    "long_hospitalization": "Hospitalized >= 6 months in past 5 years",
    "qoli20": "QOLI-20", "pgi": "PGI", "hope": "THS", "mcas": "MCAS", "rprs": "RPRS (working alliance)",
    "fidelity": "SMCM fidelity",
}


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _level_label(mapping: Mapping[Any, str], level: Any) -> str:
    if level in mapping:
        return mapping[level]
    if isinstance(level, (float, np.floating)) and float(level).is_integer() and int(level) in mapping:
        return mapping[int(level)]
    if isinstance(level, (float, np.floating)) and float(level).is_integer():
        return str(int(level))
    return str(level)


def _check_ids(columns: Sequence[str]) -> None:
    bad = [c for c in columns if c in IDENTIFIER_COLUMNS]
    if bad:
        raise ConfigError(f"descriptives: identifier column(s) {bad} are never described")


# ------------------------------------------------------------------------------------ Table 1

@dataclass(frozen=True, eq=False)
class Table1:
    """Participant characteristics (see :func:`table1`)."""

    rows: tuple[dict[str, Any], ...]
    n_total: int
    threshold: int

    def to_dict(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.rows]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.to_dict(), columns=["characteristic", "level", "n", "percent", "mean", "sd",
                                                     "suppressed", "suppression"])

    def summary(self) -> str:
        lines = [f"Table 1. Participant characteristics (N = {self.n_total})"]
        for r in self.rows:
            name = r["characteristic"] if r["level"] is None else f"  {r['level']}"
            n = cell_label(r, self.threshold)
            if r["mean"] is not None:
                sd = "" if r["sd"] is None else f", SD = {r['sd']:.2f}"
                value = f"M = {r['mean']:.2f}{sd} (n = {n})"
            elif r["level"] is None:
                value = f"n = {n}"
            else:
                value = n if r["percent"] is None else f"{n} ({r['percent']:.1f}%)"
            lines.append(f"{name:<48} {value}")
        return "\n".join(lines)


def cell_label(row: Mapping[str, Any], threshold: int) -> str:
    """The n of a Table 1 row as shown: the count, ``"<5"`` (a primary cell) or ``"suppressed"``."""
    if row.get("suppression") == "primary":
        return f"<{threshold}"
    if row.get("suppression") in (COMPLEMENTARY, WITHHELD):
        return "suppressed"
    return "" if row.get("n") is None else str(row["n"])


# The statuses of hidden cells; what each tells a reader about the hidden count (see _bounds).
PRIMARY, COMPLEMENTARY, WITHHELD = "primary", "complementary", "withheld"


def _bounds(status: str, threshold: int, n_total: int | None) -> tuple[float, float | None]:
    # "<t" says 1..t-1; a complementary cell was shown-eligible (0 and small counts never are: 0
    # is shown, small is primary), so a reader knows it is at least t; a withheld cell is a
    # listed level (so at least 1).
    upper = None if n_total is None else float(n_total)
    if status == PRIMARY:
        return (1.0, threshold - 1.0)
    return (float(threshold) if status == COMPLEMENTARY else 1.0, upper)


def feasible_ranges(values: Sequence[int | None], status: Sequence[str | None],
                    equations: Sequence[tuple[Sequence[tuple[int, float]], float]], threshold: int,
                    n_total: int | None) -> dict[int, tuple[float, float]]:
    """Smallest and largest value of each hidden cell that a reader can infer (a linear programme each).

    ``values[i]`` is the count of cell i (only shown cells' values are used), ``status[i]`` None
    (shown), ``"primary"`` or ``"complementary"``; each equation ``(((i, coef), ...), rhs)`` says
    ``sum coef * cell_i == rhs`` (e.g. levels add up to the characteristic's n). Returns
    ``{i: (low, high)}`` for the hidden cells. The equations are those of a one-way table with
    its margins (network matrix), so the extreme points are integral and a cell with
    ``high - low < 1`` is known exactly.
    """
    from scipy.optimize import linprog

    hidden = [i for i, st in enumerate(status) if st]
    if not hidden:
        return {}
    col = {i: j for j, i in enumerate(hidden)}
    a_rows, b_rows = [], []
    for coefs, rhs in equations:
        row = np.zeros(len(hidden))
        for i, c in coefs:
            if status[i]:
                row[col[i]] += c
            else:
                rhs -= c * float(values[i])
        if row.any():
            a_rows.append(row)
            b_rows.append(rhs)
    bounds = [_bounds(status[i], threshold, n_total) for i in hidden]
    out: dict[int, tuple[float, float]] = {}
    for j, i in enumerate(hidden):
        if not a_rows:
            out[i] = bounds[j]
            continue
        ends = []
        for sign in (1.0, -1.0):
            cost = np.zeros(len(hidden))
            cost[j] = sign
            res = linprog(cost, A_eq=np.array(a_rows), b_eq=np.array(b_rows), bounds=bounds, method="highs")
            ends.append(sign * res.fun if res.status == 0 else np.nan)
        out[i] = (ends[0], ends[1])
    return out


def protect_cells(values: Sequence[int | None], status: Sequence[str | None],
                  equations: Sequence[tuple[Sequence[tuple[int, float]], float]], threshold: int,
                  n_total: int | None, *, fixed: Sequence[int] = ()) -> list[str | None]:
    """Primary and complementary suppression of one characteristic's cells.

    Shown cells with ``0 < value < threshold`` become primary; then, while some hidden cell's
    feasible range (:func:`feasible_ranges`) holds a single value, the shown non-zero cell (not
    in ``fixed``: cells the reader knows anyway) that leaves the fewest hidden cells exposed is
    hidden too, the smaller count first on ties. If that cannot protect every hidden cell (the
    labels' bounds alone pin it down, e.g. "<5" and a "suppressed" >= 5 in a characteristic of 6
    clients), every cell is *withheld* (:func:`suppress_rows` then shows the characteristic as
    one "suppressed" row, without its levels). Returns the new statuses.
    """
    status = list(status)
    for i, v in enumerate(values):
        if status[i] is None and v is not None and 0 < v < threshold and i not in fixed:
            status[i] = PRIMARY
    if threshold <= 0:
        return status

    def exposed(st: list[str | None]) -> int:
        ranges = feasible_ranges(values, st, equations, threshold, n_total)
        return sum(not (hi - lo >= 1.0 - 1e-9) for lo, hi in ranges.values())

    current = exposed(status)
    while current:
        candidates = [i for i, v in enumerate(values)
                      if status[i] is None and i not in fixed and v is not None and v > 0]
        if not candidates:
            break  # everything that could be hidden is (only a characteristic of N < threshold clients)
        scored = []
        for i in candidates:
            trial = list(status)
            trial[i] = COMPLEMENTARY
            scored.append((exposed(trial), values[i], i))
        current, _, pick = min(scored)
        status[pick] = COMPLEMENTARY
    if current:
        status = [None if i in fixed else WITHHELD for i in range(len(values))]
    return status


def table1(data: pd.DataFrame, *, continuous: Sequence[str] = ("age", "ace"),
           categorical: Sequence[str] = ("gender", "housing", "employment", "education", "long_hospitalization",
                                         "site"),
           labels: Mapping[str, str] | None = None, value_labels: Mapping[str, Mapping[Any, str]] | None = None,
           threshold: int = 5) -> Table1:
    """Table 1: n and % (categorical) or mean and SD (continuous) of each characteristic.

    Parameters
    ----------
    data
        One row per client.
    continuous, categorical
        Columns to describe (absent columns are an error).
    labels, value_labels
        Display names of characteristics and of their levels (defaults: :data:`DEFAULT_LABELS`,
        :data:`DEFAULT_VALUE_LABELS`).
    threshold
        Cells with ``0 < n < threshold`` clients are suppressed (with a complementary cell when
        only one level of a characteristic would be); 0 disables suppression.

    Returns
    -------
    Table1
        Rows ``{characteristic, level, n, percent, mean, sd, suppressed}``: one header row per
        categorical characteristic (``level`` None, ``n`` = clients with a value), one row per
        level (percent of clients with a value) and a ``Missing`` row when values are missing;
        one row per continuous characteristic.
    """
    if threshold < 0:
        raise ConfigError(f"table1: threshold must be >= 0; got {threshold}")
    cols = [*continuous, *categorical]
    _check_ids(cols)
    absent = [c for c in cols if c not in data.columns]
    if absent:
        raise ConfigError(f"table1: column(s) {absent} not in the data")
    labels = {**DEFAULT_LABELS, **(labels or {})}
    vlabels = {**DEFAULT_VALUE_LABELS, **(value_labels or {})}

    rows: list[dict[str, Any]] = []
    n_total = len(data)
    for col in cols:
        label = labels.get(col, col)
        series = data[col]
        if col in continuous:
            rows.append(_continuous_row(label, pd.to_numeric(series, errors="coerce").dropna()))
            continue
        counts = series.value_counts(dropna=True)
        order = sorted(counts.index, key=lambda v: (str(type(v)), v))
        cells = [(_level_label(vlabels.get(col, {}), level), int(counts[level])) for level in order]
        n_missing = int(series.isna().sum())
        if n_missing:
            cells.append(("Missing", n_missing))
        rows.extend(_categorical_rows(label, cells, int(counts.sum())))
    return Table1(rows=tuple(suppress_rows(rows, threshold, n_total)), n_total=n_total, threshold=threshold)


def _row(label: str, level: str | None, n: int | None, percent: float | None,
         mean: float | None = None, sd: float | None = None) -> dict[str, Any]:
    return {"characteristic": label, "level": level, "n": n, "percent": percent, "mean": mean, "sd": sd,
            "suppressed": False, "suppression": None}


def _continuous_row(label: str, values: pd.Series) -> dict[str, Any]:
    k = len(values)
    return _row(label, None, k, None, mean=None if k == 0 else float(values.mean()),
                sd=None if k < 2 else float(values.std(ddof=1)))


def _categorical_rows(label: str, cells: list[tuple[str, int]], n_valid: int) -> list[dict[str, Any]]:
    rows = [_row(label, None, n_valid, None)]
    for name, k in cells:
        rows.append(_row(label, name, k, None if name == "Missing" or n_valid == 0 else 100.0 * k / n_valid))
    return rows


def table1_equations(n_levels: int, has_missing: bool, n_total: int | None
                     ) -> tuple[list[tuple[list[tuple[int, float]], float]], list[int]]:
    """The sums a reader of one categorical characteristic knows, over cells ``levels..., [Missing], n``.

    Levels add up to n; n + Missing = N (when N is known). Without a Missing row n *is* N, a
    public cell. Returns ``(equations, public cells)`` for :func:`protect_cells`.
    """
    n_index = n_levels + int(has_missing)
    equations = [([*((i, 1.0) for i in range(n_levels)), (n_index, -1.0)], 0.0)]
    public: list[int] = []
    if n_total is not None:
        if has_missing:
            equations.append(([(n_index, 1.0), (n_levels, 1.0)], float(n_total)))
        else:
            equations.append(([(n_index, 1.0)], float(n_total)))
            public.append(n_index)
    return equations, public


def _known_total(groups: list[list[dict[str, Any]]]) -> int | None:
    # N as the table itself tells it: a categorical characteristic's shown n plus its shown Missing
    for rows in groups:
        head, levels = rows[0], rows[1:]
        if not levels or head["suppression"] or head["n"] is None:
            continue
        missing = [r for r in levels if r["level"] == "Missing"]
        if not missing:
            return int(head["n"])
        if not missing[0]["suppression"] and missing[0]["n"] is not None:
            return int(head["n"]) + int(missing[0]["n"])
    return None


def suppress_rows(rows: Sequence[Mapping[str, Any]], threshold: int, n_total: int | None = None
                  ) -> list[dict[str, Any]]:
    """Small-cell suppression of Table 1 rows (``table1().to_dict()`` or results.json's, possibly suppressed).

    Works on what a reader sees: cells already hidden stay hidden with their status (a legacy
    ``suppressed: true`` counts as primary) and only shown values are used, so re-applying it
    with the same or a larger threshold (the report's ``min_cell``) is safe and idempotent.
    ``n_total`` (N) defaults to the total the rows themselves reveal.

    Categorical characteristic: cells with ``0 < n < threshold`` are primary, then
    :func:`protect_cells` adds complementary cells (levels, Missing or the characteristic's n)
    until no hidden cell is determined; if its n is hidden, so are its percentages; if nothing
    protects it, only its name is shown, as "suppressed". Continuous:
    ``0 < n < threshold`` hides n, mean and SD (primary); ``0 < N - n < threshold`` hides n only
    (complementary). Returns new dicts with ``suppressed`` and ``suppression``.
    """
    if threshold < 0:
        raise ConfigError(f"table1: threshold must be >= 0; got {threshold}")
    groups: list[list[dict[str, Any]]] = []
    for r in rows:
        r = dict(r)
        r.setdefault("suppression", PRIMARY if r.get("suppressed") else None)
        if r["level"] is None or not groups or groups[-1][0]["characteristic"] != r["characteristic"]:
            groups.append([r])
        else:
            groups[-1].append(r)
    if n_total is None:
        n_total = _known_total(groups)
    for group in groups:
        head, levels = group[0], group[1:]
        if threshold == 0:
            pass
        elif not levels:
            n = head["n"]
            if head["suppression"] is None and n is not None:
                if 0 < n < threshold:
                    head.update(suppression=PRIMARY, mean=None, sd=None)
                elif n_total is not None and 0 < n_total - n < threshold:
                    head["suppression"] = COMPLEMENTARY
        else:
            has_missing = levels[-1]["level"] == "Missing"
            cells = [*levels, head]
            equations, public = table1_equations(len(levels) - int(has_missing), has_missing, n_total)
            status = protect_cells([r["n"] for r in cells], [r["suppression"] for r in cells], equations,
                                   threshold, n_total, fixed=public)
            for r, st in zip(cells, status, strict=True):
                r["suppression"] = st
            if head["suppression"]:                   # the percentages would give n back
                for r in levels:
                    r["percent"] = None
            if WITHHELD in status:                    # even the list of its levels would tell
                head["suppression"] = WITHHELD
                del group[1:]
        for r in group:
            r["suppressed"] = r["suppression"] is not None
            if r["suppressed"]:
                r["n"] = None
                r["percent"] = None
    return [r for group in groups for r in group]


# ------------------------------------------------------------------------------------ Table 2

_WAVE_COL = re.compile(r"^(?P<var>[a-z0-9]+)_(?P<month>\d+(?:\.\d+)?)m(?:_(?P<window>\d+)d)?$")


def measures_from_columns(columns: Sequence[str], variables: Sequence[str] = ("fidelity", "rprs", "qoli20", "pgi",
                                                                             "hope", "mcas"),
                          window: int | None = None) -> dict[str, dict[float, str]]:
    """``{variable: {month: column}}`` from columns named ``<var>_<month>m`` (schema naming).

    Fidelity exposure columns ``fidelity_<month>m_<window>d`` are taken for ``window`` only.
    """
    out: dict[str, dict[float, str]] = {}
    for col in columns:
        m = _WAVE_COL.match(col)
        if not m or m["var"] not in variables:
            continue
        if m["window"] is not None and (window is None or int(m["window"]) != window):
            continue
        out.setdefault(m["var"], {})[float(m["month"])] = col
    return {v: dict(sorted(out[v].items())) for v in variables if v in out}


@dataclass(frozen=True, eq=False)
class Table2:
    """Study variables by wave with paired comparisons (see :func:`table2`)."""

    rows: tuple[dict[str, Any], ...]
    threshold: int

    def to_dict(self) -> list[dict[str, Any]]:
        return [{**r, "comparison": None if r["comparison"] is None else dict(r["comparison"])} for r in self.rows]

    def to_frame(self) -> pd.DataFrame:
        flat = []
        for r in self.rows:
            row = {k: v for k, v in r.items() if k != "comparison"}
            comp = r["comparison"] or {}
            for key in ("vs_month", "n_pairs", "mean_diff", "sd_diff", "t", "df", "p", "d_z"):
                row[key] = comp.get(key)
            flat.append(row)
        return pd.DataFrame(flat)

    def summary(self) -> str:
        lines = ["Table 2. Study variables by wave (paired t tests against the first wave, complete pairs; "
                 "team-level variables across teams)",
                 f"{'variable':<26} {'month':>5} {'n':>4} {'mean':>8} {'sd':>8}   comparison"]
        for r in self.rows:
            comp = r["comparison"]
            text = ""
            if comp is not None and comp.get("t") is not None:
                text = (f"vs {comp['vs_month']:g} m: diff = {comp['mean_diff']:.2f}, t({comp['df']}) = {comp['t']:.2f}, "
                        f"p = {comp['p']:.3f}, n = {comp['n_pairs']}")
            mean = "" if r["mean"] is None else f"{r['mean']:.2f}"
            sd = "" if r["sd"] is None else f"{r['sd']:.2f}"
            lines.append(f"{r['label']:<26} {r['month']:>5g} {r['n'] if r['n'] is not None else '':>4} {mean:>8} "
                         f"{sd:>8}   {text}")
        return "\n".join(lines)


def _paired(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    d = b - a
    k = len(d)
    if k < 2:
        return {"n_pairs": k, "mean_diff": _num(d.mean()) if k else None, "sd_diff": None, "t": None, "df": None,
                "p": None, "d_z": None}
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0:
        return {"n_pairs": k, "mean_diff": mean, "sd_diff": 0.0, "t": None, "df": k - 1, "p": None, "d_z": None}
    t = mean / (sd / math.sqrt(k))
    p = float(2 * t_sf(abs(t), k - 1))
    return {"n_pairs": k, "mean_diff": mean, "sd_diff": sd, "t": t, "df": k - 1, "p": p, "d_z": mean / sd}


#: variables measured on teams, not clients: Table 2 describes and tests them across teams
TEAM_LEVEL_VARIABLES: tuple[str, ...] = ("fidelity",)


def _team_means(data: pd.DataFrame, column: str, team_column: str) -> pd.Series:
    """Each team's mean of ``column`` over its clients with a value (one value per team)."""
    values = pd.to_numeric(data[column], errors="coerce")
    return values.groupby(data[team_column]).mean().dropna()


def table2(data: pd.DataFrame, measures: Mapping[str, Mapping[float, str]], *,
           labels: Mapping[str, str] | None = None, threshold: int = 0, team_column: str = "team",
           team_level: Sequence[str] = TEAM_LEVEL_VARIABLES) -> Table2:
    """Table 2: mean and SD of each variable at each wave; paired t test of each later wave vs the first.

    Client variables are described and tested over clients (paired t test on the clients
    observed at both waves). A team-level variable (``team_level``, SMCM fidelity by default)
    varies only between teams, so a client-level test would count each team's value once per
    client and overstate the evidence (a t of 19 on 267 df for 14 teams). When ``data`` has
    ``team_column``, such a variable is first reduced to one value per team and wave (the mean
    of its clients' exposures) and described and tested **across teams**: a paired t test of
    the teams observed at both waves (``unit`` = "teams", ``n`` = number of teams).

    Parameters
    ----------
    data
        One row per client, one column per variable x wave.
    measures
        ``{variable: {month: column}}`` (see :func:`measures_from_columns`).
    labels
        Display names (default :data:`DEFAULT_LABELS`).
    threshold
        Means/SDs/tests resting on ``0 < n < threshold`` clients are suppressed (teams are not
        people: team-level rows are never suppressed).
    team_column, team_level
        The team identifier column and the variables analysed at the team level.

    Returns
    -------
    Table2
        Rows ``{variable, label, month, column, unit, n, mean, sd, comparison}``; ``comparison``
        is ``None`` at the first wave, else ``{test, vs_month, n_pairs, mean_diff, sd_diff, t,
        df, p, d_z}`` (difference = this wave − first wave; ``test`` is "paired t" or "paired
        t across teams").
    """
    labels = {**DEFAULT_LABELS, **(labels or {})}
    rows: list[dict[str, Any]] = []
    for var, waves in measures.items():
        missing = [c for c in waves.values() if c not in data.columns]
        if missing:
            raise ConfigError(f"table2: column(s) {missing} of {var!r} not in the data")
        by_team = var in team_level and team_column in data.columns
        if by_team:
            frame = pd.DataFrame({col: _team_means(data, col, team_column) for col in waves.values()})
            test, unit, limit = "paired t across teams", "teams", 0
        else:
            frame, test, unit, limit = data, "paired t", "clients", threshold
        months = sorted(waves)
        first = months[0]
        base = pd.to_numeric(frame[waves[first]], errors="coerce")
        for month in months:
            col = waves[month]
            values = pd.to_numeric(frame[col], errors="coerce")
            obs = values.dropna()
            k = len(obs)
            hide = 0 < k < limit
            comparison = None
            if month != first:
                both = base.notna() & values.notna()
                comparison = {"test": test, "vs_month": float(first),
                              **_paired(base[both].to_numpy(float), values[both].to_numpy(float))}
                if 0 < comparison["n_pairs"] < limit:
                    comparison = {"test": test, "vs_month": float(first), "n_pairs": None, "suppressed": True}
            rows.append({"variable": var, "label": labels.get(var, var), "month": float(month), "column": col,
                         "unit": unit, "n": None if hide else k,
                         "mean": None if hide or k == 0 else float(obs.mean()),
                         "sd": None if hide or k < 2 else float(obs.std(ddof=1)), "comparison": comparison})
    return Table2(rows=tuple(rows), threshold=threshold)


# ------------------------------------------------------------------------------ missing data

def missing_by_scale(scores: pd.DataFrame, clients: Sequence[Any] | pd.Series, config) -> dict[str, Any]:
    """Share of scale scores missing per instrument x scheduled wave, and overall.

    A scale is missing at a wave when its analysed score (``config.analysis.score_column``)
    could not be computed -- its scoring rule failed (too many items missing) or the client
    was not interviewed at that wave. ``n_expected`` is the number of clients for every
    scheduled instrument x wave; ``overall_share`` = all missing / all expected (the paper's
    "at the scale level, 11.6% of the data were missing"). The same definition as the
    imputation engine's diagnostics, for listwise runs.
    """
    ids = pd.Index(pd.unique(pd.Series(clients)))
    n = len(ids)
    rows = []
    for wave in sorted(config.schedule):
        at = scores[scores["wave"].astype(float) == float(wave)].drop_duplicates("client").set_index("client")
        for inst in config.schedule[wave]:   # every scheduled instrument is a client one (built-in or declared)
            col = config.analysis.score_column(inst)
            values = at[col].reindex(ids) if col in at.columns else pd.Series(np.nan, index=ids)
            k = int(values.isna().sum())
            rows.append({"instrument": inst, "month": float(wave), "n_expected": n, "n_missing": k,
                         "share": k / n if n else 0.0})
    total = sum(r["n_expected"] for r in rows)
    return {"by_scale": rows, "overall_share": (sum(r["n_missing"] for r in rows) / total) if total else 0.0}
