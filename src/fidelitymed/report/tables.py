"""APA-style tables built from ``results.json`` (see ``docs/results-schema.md``).

Every table is a :class:`ReportTable`: a tidy :class:`pandas.DataFrame` of the numbers (what
goes to XLSX, at full precision) plus a column layout saying how the APA version shows them
(what goes to HTML and DOCX). Each shown number remembers the JSON pointer (RFC 6901) of the
value it was formatted from, so the HTML report can be checked number by number against
``results.json``.

Formatting follows the APA Publication Manual (7th ed.): coefficients to 3 decimals (the
paper reports 2; 3 keeps small indirect effects such as 0.04 distinguishable from 0),
proportions and p values without a leading zero, ``p < .001`` below that bound, a true minus
sign, and the 95% CI as ``[LL, UL]``.

Privacy: no table reads a client or case-manager identifier; Table 1 cells counting fewer
than ``min_cell`` clients are suppressed, together with one complementary cell where a
single suppressed count could otherwise be recovered by subtraction (see
:func:`suppress_small_cells`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from .. import labels as L
from ..stats.distributions import t_ppf

MINUS = "\u2212"
PRIME = "\u2032"
DASH = "\u2014"
DEFAULT_MIN_CELL = 5

PATH_LABELS = {k: L.path_label(k) for k in ("a", "b", "c_prime", "c", "indirect")}
# display label of each instrument, in the paper's order (also the sort order of the tables' rows)
OUTCOME_LABELS = {code: L.instrument_label(code) for code in L.INSTRUMENT_ORDER if code != "fidelity"}

# Keys that would carry a person-level identifier; never rendered even if a producer leaks them.
_ID_KEYS = ("client", "case_manager", "casemanager", "cm_id", "person", "participant", "subject")


def is_identifier_key(key: str) -> bool:
    """True if a column/key name looks like a client or case-manager identifier."""
    k = str(key).lower()
    return any(part in k for part in _ID_KEYS)


# --------------------------------------------------------------------------- formatting

def _is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_num(x: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals and a true minus sign; missing as an em dash."""
    if _is_missing(x):
        return DASH
    text = f"{float(x):.{digits}f}"
    if float(text) == 0:  # "-0.000" reads as a sign that is not there
        text = text.lstrip("-")
    return text.replace("-", MINUS)


def fmt_int(x: Any) -> str:
    if _is_missing(x):
        return DASH
    return f"{int(round(float(x))):d}".replace("-", MINUS)


def fmt_df(x: Any) -> str:
    """Degrees of freedom: whole numbers as integers, pooled (fractional) df to one decimal."""
    if _is_missing(x):
        return DASH
    return fmt_int(x) if abs(float(x) - round(float(x))) < 1e-9 else fmt_num(x, 1)


def fmt_p(p: Any) -> str:
    """APA p value: three decimals, no leading zero, ``< .001`` below the bound."""
    if _is_missing(p):
        return DASH
    p = float(p)
    if p < 0.001:
        return "< .001"
    text = f"{p:.3f}"
    return text[1:] if text.startswith("0") else text


def fmt_prop(x: Any, digits: int = 3) -> str:
    """A statistic bounded by 1 (R², ICC, alpha): no leading zero (APA)."""
    if _is_missing(x):
        return DASH
    text = fmt_num(x, digits)
    if text.startswith("0."):
        return text[1:]
    if text.startswith(MINUS + "0."):
        return MINUS + text[2:]
    return text


def fmt_sig(x: Any, digits: int = 3) -> str:
    """``digits`` significant digits, trailing zeros kept: 1.1005 -> "1.10" (R-hat)."""
    if _is_missing(x):
        return DASH
    return f"{float(x):#.{digits}g}".rstrip(".").replace("-", MINUS)


def fmt_pct(x: Any, digits: int = 1) -> str:
    if _is_missing(x):
        return DASH
    return fmt_num(x, digits)


FORMATTERS = {
    "num1": lambda x: fmt_num(x, 1),
    "num2": lambda x: fmt_num(x, 2),
    "num3": lambda x: fmt_num(x, 3),
    "int": fmt_int,
    "df": lambda x: fmt_df(x),
    "p": fmt_p,
    "prop2": lambda x: fmt_prop(x, 2),
    "prop3": lambda x: fmt_prop(x, 3),
    "pct1": fmt_pct,
    "text": lambda x: DASH if _is_missing(x) else str(x),
    "month": lambda x: month_label(x),
    "share_pct": lambda x: DASH if _is_missing(x) else fmt_num(100 * float(x), 1) + "%",
    "sig3": lambda x: fmt_sig(x, 3),
}
# openpyxl number formats for the same kinds (XLSX keeps full precision, shows the APA digits)
# (true minus sign, no leading zero for p and proportions, "< .001" below the bound, as in the DOCX)
XLSX_FORMATS = {"num1": '0.0;"\u2212"0.0', "num2": '0.00;"\u2212"0.00', "num3": '0.000;"\u2212"0.000', "int": "0",
                "df": "0.0", "p": '[<0.001]"< .001";.000', "prop2": '.00;"\u2212".00', "prop3": '.000;"\u2212".000',
                "pct1": "0.0", "sig3": "0.00", "share_pct": "0.0%"}


def format_value(x: Any, kind: str) -> str:
    return FORMATTERS[kind](x)


def month_label(month: Any) -> str:
    """4.5 -> "4.5", 9.0 -> "9"."""
    if _is_missing(month):
        return DASH
    m = float(month)
    return f"{m:g}"


def pointer(*parts: Any) -> str:
    """RFC 6901 JSON pointer from path parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def resolve_pointer(doc: Any, ptr: str) -> Any:
    """The value at JSON pointer ``ptr`` in ``doc`` (used by tests and tools)."""
    if ptr == "":
        return doc
    value = doc
    for raw in ptr.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


# --------------------------------------------------------------------------- table object

@dataclass(frozen=True)
class Column:
    """One displayed column: ``fields`` of the frame shown with ``template``.

    ``mark`` names a boolean frame field; where true, a significance asterisk follows.
    """

    header: str
    fields: tuple[str, ...]
    kind: str = "num3"
    template: str = "{0}"
    mark: str | None = None
    group: str | None = None  # spanning header above (e.g. "a path")


@dataclass(frozen=True)
class Fragment:
    text: str
    source: str | None = None  # JSON pointer into results, None for labels
    kind: str = "text"  # the formatter that made ``text`` (see FORMATTERS)


@dataclass(frozen=True)
class ReportTable:
    """An APA table: the numbers (``frame``), their sources and how they are shown."""

    key: str
    number: str
    title: str
    frame: pd.DataFrame
    columns: tuple[Column, ...]
    sources: dict[tuple[int, str], str] = field(default_factory=dict)
    note: str = ""

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "number": self.number, "title": self.title, "note": self.note,
                "columns": [c.header for c in self.columns], "rows": self.formatted().values.tolist()}

    def cells(self) -> list[list[list[Fragment]]]:
        """Rows of cells, each cell a list of fragments (number + its JSON pointer)."""
        rows = []
        for i in range(len(self.frame)):
            record = self.frame.iloc[i]
            row = []
            for col in self.columns:
                values = [record[f] for f in col.fields]
                if col.kind != "text" and all(_is_missing(v) for v in values):
                    row.append([Fragment(DASH)])
                    continue
                pieces = _split_template(col.template)
                frags: list[Fragment] = []
                for piece in pieces:
                    if isinstance(piece, int):
                        f = col.fields[piece]
                        value = record[f]
                        kind = col.kind
                        if isinstance(value, str) and col.kind != "text":
                            kind = "text"  # e.g. the "<5" of a suppressed cell
                        frags.append(Fragment(format_value(value, kind),
                                              None if _is_missing(value) else self.sources.get((i, f)), kind))
                    elif piece:
                        frags.append(Fragment(piece))
                if col.mark is not None and bool(record.get(col.mark, False)):
                    frags.append(Fragment("*"))
                row.append(frags)
            rows.append(row)
        return rows

    def formatted(self) -> pd.DataFrame:
        """The table as shown (strings), one column per displayed column."""
        data = [["".join(f.text for f in cell) for cell in row] for row in self.cells()]
        return pd.DataFrame(data, columns=[c.header for c in self.columns])

    def groups(self) -> list[tuple[str, int]]:
        """Spanning headers: (label, number of columns) runs; empty label where none."""
        runs: list[tuple[str, int]] = []
        for col in self.columns:
            label = col.group or ""
            if runs and runs[-1][0] == label and label:
                runs[-1] = (label, runs[-1][1] + 1)
            else:
                runs.append((label, 1))
        return runs


def _split_template(template: str) -> list[Any]:
    """"[{0}, {1}]" -> ["[", 0, ", ", 1, "]"]."""
    out: list[Any] = []
    rest = template
    while "{" in rest:
        before, _, after = rest.partition("{")
        idx, _, rest = after.partition("}")
        if before:
            out.append(before)
        out.append(int(idx))
    if rest:
        out.append(rest)
    return out


class _Builder:
    """Collects rows and the JSON pointer of each value."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.sources: dict[tuple[int, str], str] = {}

    def add(self, values: dict[str, tuple[Any, str | None] | Any]) -> None:
        i = len(self.rows)
        row = {}
        for name, spec in values.items():
            if isinstance(spec, tuple) and len(spec) == 2 and (spec[1] is None or isinstance(spec[1], str)):
                value, src = spec
                if src is not None and not _is_missing(value):
                    self.sources[(i, name)] = src
            else:
                value = spec
            row[name] = value
        self.rows.append(row)

    def frame(self, columns: Sequence[str]) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(columns))


def outcome_label(record: dict[str, Any]) -> str:
    """The display label of a record's outcome (labels.py; the record's own label for an unknown code)."""
    code = record.get("outcome")
    if code in OUTCOME_LABELS:
        return OUTCOME_LABELS[code]
    return str(record.get("outcome_label") or L.instrument_label(code))


_outcome_label = outcome_label


def _get(d: Any, *keys: Any) -> Any:
    for k in keys:
        if d is None:
            return None
        try:
            d = d[k]
        except (KeyError, IndexError, TypeError):
            return None
    return d


# --------------------------------------------------------------------------- Table 1

def suppress_small_cells(table1: list[dict[str, Any]], min_cell: int = DEFAULT_MIN_CELL) -> list[dict[str, Any]]:
    """Suppress Table 1 counts below ``min_cell`` (statistical disclosure control).

    The rule of :func:`fidelitymed.descriptives.suppress_rows`, applied to the rows of
    results.json as a reader sees them: cells the pipeline hid stay hidden with their status
    (``suppression`` "primary" = under the threshold, "complementary" = hidden so that no hidden
    count can be worked out from the shown cells, the characteristic's n and N); a larger
    ``min_cell`` hides more. Zero counts are shown: they describe no person.
    """
    from ..descriptives import suppress_rows

    if min_cell < 0:
        raise ValueError(f"min_cell must be a non-negative integer (0 = no suppression); got {min_cell!r}")
    return suppress_rows(table1, min_cell)


def table1(results: dict[str, Any], *, min_cell: int = DEFAULT_MIN_CELL) -> ReportTable:
    """Table 1: participant characteristics, small cells suppressed."""
    source = _get(results, "descriptives", "table1") or []
    rows = suppress_small_cells(source, min_cell=min_cell)
    b = _Builder()
    hidden_text = f"<{min_cell}"
    previous = None
    for i, r in enumerate(rows):
        base = ("descriptives", "table1", i)
        level = r.get("level")
        # APA layout: the characteristic once on its header row, its levels below it
        char = r.get("characteristic")
        if not _is_missing(level) and previous == char:
            r = {**r, "characteristic": ""}
        else:
            r = {**r, "characteristic": L.readable_text(char)}
        previous = char
        if r["suppressed"]:
            # "<5" only for a cell under the threshold; a complementary cell is "suppressed"
            label = hidden_text if r["suppression"] == "primary" else "suppressed"
            moments = not _is_missing(r.get("mean"))    # a continuous n hidden for its few missing
            b.add({"Characteristic": r.get("characteristic"), "Level": "" if _is_missing(level) else level,
                   "n": label, "%": None if _is_missing(level) else label,
                   "M": (r.get("mean"), pointer(*base, "mean")) if moments else None,
                   "SD": (r.get("sd"), pointer(*base, "sd")) if moments else None})
            continue
        b.add({"Characteristic": r.get("characteristic"), "Level": "" if _is_missing(level) else level,
               "n": (r.get("n"), pointer(*base, "n")), "%": (r.get("percent"), pointer(*base, "percent")),
               "M": (r.get("mean"), pointer(*base, "mean")), "SD": (r.get("sd"), pointer(*base, "sd"))})
    frame = b.frame(["Characteristic", "Level", "n", "%", "M", "SD"])
    columns = (Column("Characteristic", ("Characteristic",), "text"), Column("Level", ("Level",), "text"),
               Column("n", ("n",), "int"), Column("%", ("%",), "pct1"),
               Column("M", ("M",), "num2"), Column("SD", ("SD",), "num2"))
    n_primary = sum(r["suppression"] == "primary" for r in rows)
    n_compl = sum(r["suppression"] in ("complementary", "withheld") for r in rows)
    note = (f"Cells describing fewer than {min_cell} clients are shown as <{min_cell} "
            f"({n_primary} cell(s)); {n_compl} further cell(s), shown as suppressed, were hidden so that no "
            "hidden count can be worked out from the other cells, the characteristic's n and the total N.")
    return ReportTable("table1", "Table 1", "Participant characteristics", frame, columns, b.sources, note)


# --------------------------------------------------------------------------- Table 2

# comparison fields shown in Table 2, in this order; other scalar fields follow (except these)
_COMPARISON_ORDER = ("vs_month", "n_pairs", "mean_diff", "t", "df", "p", "d_z")
# (vs_month is always the variable's first wave, which the spanning header already says)
_COMPARISON_HIDDEN = ("test", "sd_diff", "suppressed", "vs_month")


def table2(results: dict[str, Any]) -> ReportTable:
    """Table 2: mean scores of the study variables by wave and their comparison tests."""
    source = _get(results, "descriptives", "table2") or []
    b = _Builder()
    found: list[str] = []
    for r in source:
        comp = r.get("comparison") or {}
        for k, v in comp.items():
            if (k not in found and k not in _COMPARISON_HIDDEN and not isinstance(v, (dict, list, bool))
                    and not is_identifier_key(k)):
                found.append(k)
    comp_keys = [k for k in _COMPARISON_ORDER if k in found] + [k for k in found if k not in _COMPARISON_ORDER]
    for i, r in enumerate(source):
        base = ("descriptives", "table2", i)
        values: dict[str, Any] = {
            "Variable": L.variable_label(r["variable"]) if r.get("variable") else r.get("label"),
            "Month": month_label(r.get("month")), "Unit": r.get("unit") or "clients",
            "n": (r.get("n"), pointer(*base, "n")), "M": (r.get("mean"), pointer(*base, "mean")),
            "SD": (r.get("sd"), pointer(*base, "sd"))}
        comp = r.get("comparison") or {}
        for k in comp_keys:
            v = comp.get(k)
            values[f"comparison_{k}"] = (v, pointer(*base, "comparison", k)) if not isinstance(v, str) else v
        b.add(values)
    frame = b.frame(["Variable", "Month", "Unit", "n", "M", "SD", *[f"comparison_{k}" for k in comp_keys]])
    columns = [Column("Variable", ("Variable",), "text"), Column("Month", ("Month",), "text"),
               Column("Unit", ("Unit",), "text"), Column("n", ("n",), "int"), Column("M", ("M",), "num2"),
               Column("SD", ("SD",), "num2")]
    for k in comp_keys:
        kind = _guess_kind(k, frame[f"comparison_{k}"])
        columns.append(Column(_comparison_header(k), (f"comparison_{k}",), kind, group="Comparison with first wave"))
    note = ""
    if comp_keys:
        note = ("Comparison: paired t test of each later wave against the variable's first wave (difference = "
                "later \u2212 first), on the units observed at both.")
        teams = [r for r in source if r.get("unit") == "teams"]
        if teams:
            n_teams = max((int(r["n"]) for r in teams if not _is_missing(r.get("n"))), default=0)
            names = ", ".join(dict.fromkeys(L.variable_label(r["variable"]) for r in teams))
            note += (f" {names} is a team-level variable: each team's mean over its clients at the wave, "
                     f"described and tested across teams (teams, n = {n_teams}), not across clients.")
    return ReportTable("table2", "Table 2", "Mean scores of the study variables", frame, tuple(columns), b.sources,
                       note)


def _comparison_header(key: str) -> str:
    names = {"p": "p", "t": "t", "df": "df", "statistic": "Statistic", "test": "Test",
             "vs_month": "vs. month", "reference_month": "vs. month", "d": "d", "cohens_d": "d",
             "mean_difference": "M diff.", "diff": "M diff.", "mean_diff": "M diff.", "ci_low": "LL",
             "ci_high": "UL", "n": "n pairs", "n_pairs": "n pairs", "d_z": "d_z"}
    return names.get(key, key.replace("_", " "))


def _guess_kind(key: str, values: pd.Series) -> str:
    if key in ("p", "p_value", "pvalue"):
        return "p"
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().sum() == 0:
        return "text"
    if key.endswith("month") or key.endswith("wave"):
        return "month"
    if key in ("df", "n", "n_pairs", "df1", "df2", "m", "chains", "iterations", "donors"):
        return "num1" if (numeric.dropna() % 1 != 0).any() else "int"
    return "num2"


# --------------------------------------------------------------------------- mediation

def windows(results: dict[str, Any]) -> list[int]:
    """The fidelity windows (days), primary first."""
    recs = results.get("mediation") or []
    ws = sorted({int(r["window_days"]) for r in recs if r.get("window_days") is not None})
    primary = [int(r["window_days"]) for r in recs if r.get("primary_window")]
    if primary:
        ws.remove(primary[0])
        ws.insert(0, primary[0])
    return ws


def primary_window(results: dict[str, Any]) -> int | None:
    ws = windows(results)
    return ws[0] if ws else None


def mediation_records(results: dict[str, Any], window: int | None = None) -> list[tuple[int, dict[str, Any]]]:
    """(index, record) of the mediation models of ``window``, ordered by outcome wave then outcome."""
    order = {k: i for i, k in enumerate(OUTCOME_LABELS)}
    out = [(i, r) for i, r in enumerate(results.get("mediation") or [])
           if window is None or int(r.get("window_days", -1)) == int(window)]
    return sorted(out, key=lambda ir: (float(ir[1].get("outcome_month") or 0), order.get(ir[1].get("outcome"), 99),
                                       str(ir[1].get("outcome")), int(ir[1].get("window_days") or 0)))


_PATH_EQUATION = {"a": "mediator", "b": "outcome", "c_prime": "outcome", "c": "total"}


def stored_conf(results: dict[str, Any]) -> float:
    """The confidence level of the CIs stored in results.json (``manifest.settings.conf``, else .95)."""
    value = _get(results, "manifest", "settings", "conf")
    if _is_missing(value):
        return 0.95
    value = float(value)
    return value / 100 if value > 1 else value


def path_df(record: dict[str, Any], path: str) -> float | None:
    """Degrees of freedom of a path's t test: the pooled (Barnard-Rubin) df, else the equation's residual df."""
    df = _get(record, "paths", path, "df")
    if _is_missing(df):
        df = _get(record, "models", _PATH_EQUATION.get(path, "outcome"), "df2")
    return None if _is_missing(df) else float(df)


def path_ci(record: dict[str, Any], path: str, level: float) -> tuple[float | None, float | None]:
    """The ``level`` CI of a path: coef ± t(1 − (1 − level)/2, df) × SE (the CI the path's t test implies).

    Used to print each path's CI at the level matching its alpha (99% where α = .01); the
    stored 95% CI of results.json is the same formula at .95.
    """
    coef, se = _get(record, "paths", path, "coef"), _get(record, "paths", path, "se")
    df = path_df(record, path)
    if _is_missing(coef) or _is_missing(se) or df is None:
        return None, None
    half = float(t_ppf(0.5 + level / 2, df)) * float(se)
    return float(coef) - half, float(coef) + half


def ci_level_for(alpha: Any, conf: float = 0.95) -> float:
    """The CI level matching a path's alpha: 1 − α (the stored ``conf`` when α is unknown)."""
    return conf if _is_missing(alpha) else round(1.0 - float(alpha), 10)


def level_text(level: float) -> str:
    """0.99 -> "99%"."""
    return f"{100 * level:g}%"


def mediation_table(results: dict[str, Any], window: int) -> ReportTable:
    """The mediation table of one fidelity window: a, b, c′ with CIs, ab and ab_cs with bootstrap CIs.

    Asterisks mark effects significant under the record's adjusted alpha (the ICC rule); each
    path's CI is shown at the level matching that alpha (99% where α = .01, computed from the
    coefficient, SE and df; the stored 95% CI where α = .05), so CI and decision agree. The
    indirect effect is significant when its bootstrap CI excludes 0 and its paths are.
    """
    b = _Builder()
    conf = stored_conf(results)
    levels: dict[str, set[float]] = {p: set() for p in ("a", "b", "c_prime", "c")}
    for i, r in mediation_records(results, window):
        base = ("mediation", i)
        row: dict[str, Any] = {"Outcome": outcome_label(r), "Month": month_label(r.get("outcome_month")),
                               "Alliance month": month_label(r.get("mediator_month")),
                               "n": (r.get("n"), pointer(*base, "n"))}
        for path in ("a", "b", "c_prime", "c"):
            p = _get(r, "paths", path) or {}
            for f in ("coef", "se", "p", "ci_low", "ci_high"):
                row[f"{path}_{f}"] = (p.get(f), pointer(*base, "paths", path, f))
            row[f"{path}_sig"] = bool(_get(r, "significant", path))
            row[f"{path}_alpha"] = (_get(r, "alpha", path), pointer(*base, "alpha", path))
            level = ci_level_for(_get(r, "alpha", path), conf)
            levels[path].add(level)
            row[f"{path}_ci_level"] = level
            if abs(level - conf) < 1e-9:  # the stored CI, with its pointer
                row[f"{path}_shown_low"] = row[f"{path}_ci_low"]
                row[f"{path}_shown_high"] = row[f"{path}_ci_high"]
            else:
                row[f"{path}_shown_low"], row[f"{path}_shown_high"] = path_ci(r, path, level)
        for key, name in (("indirect", "ab"), ("indirect_std", "abcs")):
            e = r.get(key) or {}
            for f in ("effect", "boot_se", "ci_low", "ci_high"):
                row[f"{name}_{f}"] = (e.get(f), pointer(*base, key, f))
        row["ab_sig"] = bool(_get(r, "significant", "indirect"))
        row["abcs_sig"] = row["ab_sig"]
        b.add(row)
    names = ["Outcome", "Month", "Alliance month", "n"]
    for path in ("a", "b", "c_prime", "c"):
        names += [f"{path}_{f}" for f in ("coef", "se", "p", "ci_low", "ci_high", "sig", "alpha", "ci_level",
                                         "shown_low", "shown_high")]
    names += [f"ab_{f}" for f in ("effect", "boot_se", "ci_low", "ci_high", "sig")]
    names += [f"abcs_{f}" for f in ("effect", "boot_se", "ci_low", "ci_high", "sig")]
    frame = b.frame(names)
    cols = [Column("Outcome", ("Outcome",), "text"), Column("Month", ("Month",), "text"),
            Column("n", ("n",), "int")]
    for path in ("a", "b", "c_prime"):
        g = f"{PATH_LABELS[path]} path"
        shown = levels[path]
        ci_head = f"{level_text(next(iter(shown)))} CI" if len(shown) == 1 else "CI (1 \u2212 \u03b1)"
        cols += [Column("B", (f"{path}_coef",), "num3", mark=f"{path}_sig", group=g),
                 Column(ci_head, (f"{path}_shown_low", f"{path}_shown_high"), "num3", "[{0}, {1}]", group=g),
                 Column("p", (f"{path}_p",), "p", group=g)]
    boot = f"{level_text(conf)} CI"
    cols += [Column("ab", ("ab_effect",), "num3", mark="ab_sig", group="Indirect effect"),
             Column(boot, ("ab_ci_low", "ab_ci_high"), "num3", "[{0}, {1}]", group="Indirect effect"),
             Column("ab_cs", ("abcs_effect",), "num3", group="Completely standardized"),
             Column(boot, ("abcs_ci_low", "abcs_ci_high"), "num3", "[{0}, {1}]",
                    group="Completely standardized"),
             Column("\u03b1 a; b", ("a_alpha", "b_alpha"), "prop2", "{0}; {1}")]
    recs = [r for _, r in mediation_records(results, window)]
    mediators = [month_label(m) for m in sorted({float(r["mediator_month"]) for r in recs
                                                 if r.get("mediator_month") is not None})]
    note = (f"Fidelity = mean team SMCM fidelity over the {window} days before the alliance interview; "
            f"mediator = working alliance (RPRS) at {' / '.join(mediators)} months. B = unstandardized OLS "
            "coefficient; a = fidelity \u2192 alliance; b = alliance \u2192 outcome; "
            f"c{PRIME} = direct effect of fidelity; ab = indirect effect with percentile bootstrap CI; "
            "ab_cs = completely standardized indirect effect (Hayes, 2022). \u03b1 = the alpha levels "
            f"applied to path a and to paths b and c{PRIME} (.01 where the dependent variable's ICC > "
            f"{fmt_prop(icc_threshold(results), 2)}). Each path's CI is at the level matching its \u03b1 "
            f"(99% where \u03b1 = .01, 95% where \u03b1 = .05), so a CI excluding 0 goes with an asterisk; "
            "results.json keeps the 95% CIs. *Significant at that alpha; for ab, the bootstrap CI excludes 0 "
            "and paths a and b are significant.")
    return ReportTable(f"mediation_{window}d", "Table 3" if window == primary_window(results) else "Table S",
                       f"Simple mediation models (PROCESS Model 4), {window}-day fidelity window",
                       frame, tuple(cols), b.sources, note)


# --------------------------------------------------------------------------- ICC / alpha

def icc_table(results: dict[str, Any]) -> ReportTable:
    """ICCs of the dependent variables and the alpha each implies."""
    b = _Builder()
    for i, r in enumerate(results.get("icc") or []):
        base = ("icc", i)
        b.add({"Dependent variable": L.column_label(r.get("y")), "n": (r.get("n"), pointer(*base, "n")),
               "Team ICC": (_get(r, "levels", "team", "icc"), pointer(*base, "levels", "team", "icc")),
               "Case-manager ICC": (_get(r, "levels", "case_manager", "icc"),
                                    pointer(*base, "levels", "case_manager", "icc")),
               "Cumulative ICC": (_get(r, "levels", "case_manager", "cumulative_icc"),
                                  pointer(*base, "levels", "case_manager", "cumulative_icc")),
               "ICC for rule": (r.get("icc_for_rule"), pointer(*base, "icc_for_rule")),
               "alpha": (r.get("alpha"), pointer(*base, "alpha")),
               "Converged": None if r.get("converged") is None else ("yes" if r["converged"] else "no")})
    frame = b.frame(["Dependent variable", "n", "Team ICC", "Case-manager ICC", "Cumulative ICC",
                     "ICC for rule", "alpha", "Converged"])
    has_conv = frame["Converged"].notna().any()
    cols = (Column("Dependent variable", ("Dependent variable",), "text"), Column("n", ("n",), "int"),
            Column("Team", ("Team ICC",), "prop3", group="ICC"),
            Column("Case manager", ("Case-manager ICC",), "prop3", group="ICC"),
            Column("Cumulative", ("Cumulative ICC",), "prop3", group="ICC"),
            Column("ICC for rule", ("ICC for rule",), "prop3"), Column("\u03b1", ("alpha",), "prop2"))
    if has_conv:
        cols += (Column("Converged", ("Converged",), "text"),)
    else:
        frame = frame.drop(columns="Converged")
    note = ("ICC(1) from a random-intercept model with clients nested in case managers nested in teams. "
            "Cumulative = team + case-manager share of variance. ICC for rule = the ICC the alpha rule reads "
            "(analysis.alpha_rule.level). Alpha rule (as in the study): "
            "p < .01 for analyses whose dependent variable has ICC > .05, otherwise p < .05.")
    return ReportTable("icc", "Table 4", "Intraclass correlations and the alpha levels they imply",
                       frame, cols, b.sources, note)


def alpha_decisions_table(results: dict[str, Any], window: int | None = None) -> ReportTable:
    """One row per model path: dependent variable, ICC, alpha, p and the decision."""
    b = _Builder()
    order = {"a": 0, "b": 1, "c_prime": 2, "c": 3, "indirect": 4}
    recs = [(i, r) for i, r in enumerate(results.get("alpha_decisions") or [])
            if window is None or int(r.get("window_days", -1)) == int(window)]
    outcome_order = {k: i for i, k in enumerate(OUTCOME_LABELS)}
    threshold = icc_threshold(results)
    recs.sort(key=lambda ir: (int(ir[1].get("window_days") or 0), float(ir[1].get("outcome_month") or 0),
                              outcome_order.get(ir[1].get("outcome"), 99), str(ir[1].get("outcome")),
                              order.get(ir[1].get("path"), 9)))
    for i, r in recs:
        base = ("alpha_decisions", i)
        b.add({"Outcome": outcome_label(r),
               "Month": month_label(r.get("outcome_month")), "Window": f"{r.get('window_days')} d",
               "Path": PATH_LABELS.get(r.get("path"), r.get("path")),
               "Dependent variable": DASH if r.get("path") == "indirect" else _dependent_label(r.get("dependent_variable")),
               "ICC": (r.get("icc"), pointer(*base, "icc")), "alpha": (r.get("alpha"), pointer(*base, "alpha")),
               "p": (r.get("p"), pointer(*base, "p")),
               "Decision": "yes" if r.get("significant") else "no",
               "Reason": decision_reason(r, threshold)})
    frame = b.frame(["Outcome", "Month", "Window", "Path", "Dependent variable", "ICC", "alpha", "p",
                     "Decision", "Reason"])
    cols = (Column("Outcome", ("Outcome",), "text"), Column("Month", ("Month",), "text"),
            Column("Window", ("Window",), "text"), Column("Path", ("Path",), "text"),
            Column("DV", ("Dependent variable",), "text"), Column("ICC", ("ICC",), "prop3"),
            Column("\u03b1", ("alpha",), "prop2"), Column("p", ("p",), "p"),
            Column("Significant", ("Decision",), "text"), Column("Reason", ("Reason",), "text"))
    title = "Alpha decisions per path" + (f", {window}-day window" if window is not None else "")
    return ReportTable("alpha_decisions" + (f"_{window}d" if window is not None else ""), "Table 5", title,
                       frame, cols, b.sources,
                       "DV = the dependent variable whose ICC sets the path's \u03b1. For the indirect effect (ab) "
                       "p is not defined: it is significant when its bootstrap CI excludes 0 and paths a and b are "
                       "significant; its ICC column shows the larger of the two.")


def icc_threshold(results: dict[str, Any]) -> float:
    """The ICC threshold of the alpha rule (manifest settings; the study's .05 by default)."""
    value = _get(results, "manifest", "settings", "alpha_rule", "icc_threshold")
    return 0.05 if _is_missing(value) else float(value)


def _dependent_label(name: Any) -> str:
    """"rprs_4.5m" -> "Working alliance (RPRS), 4.5 months"; "m -> y" -> "M → Y"."""
    return " \u2192 ".join(L.column_label(part.strip()) for part in str(name).split("->"))


def decision_reason(record: dict[str, Any], threshold: float = 0.05) -> str:
    """Why a path got its decision, in APA notation: "ICC = .163 > .05, α = .01; p = .009 < .01"."""
    path, icc, alpha, p = record.get("path"), record.get("icc"), record.get("alpha"), record.get("p")
    if path == "indirect":
        low, high = record.get("ci_low"), record.get("ci_high")
        if _is_missing(low) or _is_missing(high):
            return L.readable_text(record.get("reason") or "")
        excludes = float(low) > 0 or float(high) < 0
        text = f"CI [{fmt_num(low)}, {fmt_num(high)}] {'excludes' if excludes else 'includes'} 0"
        failed = [_alpha_words(part) for part in L.readable_text(record.get("reason") or "").split("; ")[1:]
                  if "not significant" in part]
        return "; ".join([text, *failed]) if failed else text + "; a and b significant"
    if _is_missing(alpha):
        return L.readable_text(record.get("reason") or "")
    parts = []
    if _is_missing(icc):
        parts.append(f"ICC unknown, \u03b1 = {fmt_prop(alpha, 2)}")
    else:
        sign = ">" if float(icc) > threshold else "\u2264"
        parts.append(f"ICC = {fmt_prop(icc)} {sign} {fmt_prop(threshold, 2)}, \u03b1 = {fmt_prop(alpha, 2)}")
    if not _is_missing(p):
        below = float(p) < float(alpha)
        shown = fmt_p(p)
        relation = "<" if below else "\u2265"
        value = shown if shown.startswith("<") else "= " + shown
        parts.append(f"p {value} {relation} {fmt_prop(alpha, 2)}")
    return "; ".join(parts)


def _alpha_words(part: str) -> str:
    """"a significant at 0.01" -> "a significant at α = .01"."""
    head, sep, level = part.rpartition(" at ")
    if not sep:
        return part
    try:
        return f"{head} at \u03b1 = {fmt_prop(float(level), 2)}"
    except ValueError:
        return part


# --------------------------------------------------------------------------- reciprocal / direct

def hierarchical_table(results: dict[str, Any]) -> ReportTable:
    """The reciprocal (exploratory) hierarchical regressions: alliance at 13.5 m on 9-month outcomes."""
    b = _Builder()
    for i, r in enumerate(results.get("hierarchical") or []):
        for j, blk in enumerate(r.get("blocks") or []):
            base = ("hierarchical", i, "blocks", j)
            preds = [p for p in (blk.get("predictors") or []) if not is_identifier_key(p)]
            last = j == len(r.get("blocks") or []) - 1
            added = (r.get("added") or {}) if last else {}
            abase = ("hierarchical", i, "added")
            b.add({"Predictor (step)": outcome_label(r),
                   "Dependent variable": L.column_label(r.get("y")), "n": (r.get("n"), pointer("hierarchical", i, "n")),
                   "Step": (blk.get("block"), pointer(*base, "block")),
                   "Entered": _predictor_summary(preds, j),
                   "R2": (blk.get("r2"), pointer(*base, "r2")), "dR2": (blk.get("delta_r2"), pointer(*base, "delta_r2")),
                   "F change": (blk.get("f_change"), pointer(*base, "f_change")),
                   "df1": (blk.get("df1"), pointer(*base, "df1")), "df2": (blk.get("df2"), pointer(*base, "df2")),
                   "p": (blk.get("p"), pointer(*base, "p")), "f2": (blk.get("f2"), pointer(*base, "f2")),
                   "B": (added.get("coef"), pointer(*abase, "coef")),
                   "B_ci_low": (added.get("ci_low"), pointer(*abase, "ci_low")),
                   "B_ci_high": (added.get("ci_high"), pointer(*abase, "ci_high"))})
    frame = b.frame(["Predictor (step)", "Dependent variable", "n", "Step", "Entered", "R2", "dR2", "F change",
                     "df1", "df2", "p", "f2", "B", "B_ci_low", "B_ci_high"])
    cols = (Column("9-month outcome", ("Predictor (step)",), "text"), Column("DV", ("Dependent variable",), "text"),
            Column("n", ("n",), "int"), Column("Step", ("Step",), "int"), Column("Entered", ("Entered",), "text"),
            Column("R\u00b2", ("R2",), "prop3"), Column("\u0394R\u00b2", ("dR2",), "prop3"),
            Column("F change", ("F change",), "num2"), Column("df", ("df1", "df2"), "df", "{0}, {1}"),
            Column("p", ("p",), "p"), Column("f\u00b2", ("f2",), "prop3"))
    if frame["B"].notna().any():
        cols += (Column("B", ("B",), "num3", group="Added predictor"),
                 Column("95% CI", ("B_ci_low", "B_ci_high"), "num3", "[{0}, {1}]", group="Added predictor"))
    else:
        frame = frame.drop(columns=["B", "B_ci_low", "B_ci_high"])
    note = ("Exploratory test of a reciprocal relationship: the working alliance at 13.5 months regressed on "
            "the covariates (step 1), then the 9-month outcome (step 2). f\u00b2 = Cohen's effect size of the step; "
            "B = the added predictor's coefficient in the final model.")
    if any(r.get("imputations") for r in results.get("hierarchical") or []):
        note += (" Pooled over imputations: R\u00b2 as in Harel (2009); F change by the D2 statistic "
                 "(Li, Meng, Raghunathan & Rubin, 1991), whose denominator df can be fractional.")
    return ReportTable("hierarchical", "Table 6", "Reciprocal hierarchical regressions", frame, cols, b.sources, note)


def _predictor_summary(preds: list[str], j: int) -> str:
    preds = [L.covariate_label(p) for p in preds]
    if not preds:
        return DASH
    if len(preds) > 3:
        return f"{len(preds)} covariates" if j == 0 else ", ".join(preds[:3]) + f" (+{len(preds) - 3})"
    return ", ".join(preds)


def direct_effects_table(results: dict[str, Any]) -> ReportTable:
    """Linear regressions of each outcome on fidelity (no mediator): the direct fidelity–outcome check."""
    b = _Builder()
    outcome_order = {k: i for i, k in enumerate(OUTCOME_LABELS)}
    recs = sorted(enumerate(results.get("direct_effects") or []),
                  key=lambda ir: (int(ir[1].get("window_days") or 0), float(ir[1].get("outcome_month") or 0),
                                  outcome_order.get(ir[1].get("outcome"), 99), str(ir[1].get("outcome"))))
    for i, r in recs:
        base = ("direct_effects", i)
        b.add({"Outcome": outcome_label(r),
               "Month": month_label(r.get("outcome_month")), "Window": f"{r.get('window_days')} d",
               "n": (r.get("n"), pointer(*base, "n")), "B": (r.get("coef"), pointer(*base, "coef")),
               "SE": (r.get("se"), pointer(*base, "se")), "t": (r.get("t"), pointer(*base, "t")),
               "p": (r.get("p"), pointer(*base, "p")), "ci_low": (r.get("ci_low"), pointer(*base, "ci_low")),
               "ci_high": (r.get("ci_high"), pointer(*base, "ci_high")),
               "sig": bool(r.get("significant"))})
    frame = b.frame(["Outcome", "Month", "Window", "n", "B", "SE", "t", "p", "ci_low", "ci_high", "sig"])
    cols = (Column("Outcome", ("Outcome",), "text"), Column("Month", ("Month",), "text"),
            Column("Window", ("Window",), "text"), Column("n", ("n",), "int"),
            Column("B", ("B",), "num3", mark="sig"),
            Column("SE", ("SE",), "num3"), Column("t", ("t",), "num2"), Column("p", ("p",), "p"),
            Column("95% CI", ("ci_low", "ci_high"), "num3", "[{0}, {1}]"))
    return ReportTable("direct_effects", "Table 7", "Fidelity \u2192 outcome regressions without the mediator",
                       frame, cols, b.sources, "Adjusted for the same covariates as the mediation models (the "
                       "total-effect equation c). *Significant at the alpha the ICC rule gives the outcome.")


# --------------------------------------------------------------------------- data quality

def missing_table(results: dict[str, Any]) -> ReportTable:
    """Missing share per scale and wave."""
    b = _Builder()
    for i, r in enumerate(_get(results, "missing", "by_scale") or []):
        base = ("missing", "by_scale", i)
        share = r.get("share")
        b.add({"Instrument": L.instrument_label(r.get("instrument")),
               "Month": month_label(r.get("month")),
               "Expected": (r.get("n_expected"), pointer(*base, "n_expected")),
               "Missing": (r.get("n_missing"), pointer(*base, "n_missing")),
               "share": (share, pointer(*base, "share"))})
    frame = b.frame(["Instrument", "Month", "Expected", "Missing", "share"])
    cols = (Column("Instrument", ("Instrument",), "text"), Column("Month", ("Month",), "text"),
            Column("Expected", ("Expected",), "int"), Column("Missing", ("Missing",), "int"),
            Column("Share missing", ("share",), "prop3"))
    return ReportTable("missing", "Table S1", "Missing scale scores by instrument and wave", frame, cols, b.sources,
                       "Share = missing / expected scale scores at the wave.")


RHAT_LIMIT = 1.1


def rhat_table(results: dict[str, Any], *, top: int | None = 12) -> ReportTable:
    """Convergence of the imputation chains: the ``top`` largest R-hat, to 3 significant digits.

    Values at or above :data:`RHAT_LIMIT` (1.1; Gelman & Rubin, 1992) are flagged: the chains
    of that variable had not mixed, so more iterations are needed.
    """
    conv = _get(results, "imputation", "convergence") or {}
    rows = [(i, r) for i, r in enumerate(conv.get("rhat") or [])
            if isinstance(r, dict) and isinstance(r.get("rhat"), (int, float))]
    rows.sort(key=lambda ir: -float(ir[1]["rhat"]))
    n_all = len(rows)
    shown = rows[:top] if top else rows
    b = _Builder()
    for i, r in shown:
        flagged = float(r["rhat"]) >= RHAT_LIMIT
        b.add({"Instrument": L.instrument_label(r.get("instrument")), "Month": L.month_text(r.get("month")),
               "R-hat": (r.get("rhat"), pointer("imputation", "convergence", "rhat", i, "rhat")),
               "flag": flagged, "Converged": f"no (\u2265 {RHAT_LIMIT:g})" if flagged else "yes"})
    frame = b.frame(["Instrument", "Month", "R-hat", "flag", "Converged"])
    cols = (Column("Instrument", ("Instrument",), "text"), Column("Wave", ("Month",), "text"),
            Column("R-hat", ("R-hat",), "sig3", mark="flag"), Column("Converged", ("Converged",), "text"))
    title = (f"Convergence of the imputation chains: the {len(shown)} largest R-hat of {n_all} imputed variables"
             if len(shown) < n_all else "Convergence of the imputation chains (R-hat)")
    note = ("Gelman\u2013Rubin R-hat over the second half of the iterations. *R-hat \u2265 1.1: the chains "
            "have not mixed; rerun with more imputation iterations before reporting.")
    return ReportTable("imputation_rhat", "", title, frame, cols, b.sources, note)


def rhat_flagged(results: dict[str, Any]) -> list[str]:
    """Labels of the imputed variables whose R-hat is at or above 1.1 ("QOLI-20, 9 months")."""
    conv = _get(results, "imputation", "convergence") or {}
    return [L.variable_label(r.get("instrument"), r.get("month")) for r in conv.get("rhat") or []
            if isinstance(r, dict) and isinstance(r.get("rhat"), (int, float)) and float(r["rhat"]) >= RHAT_LIMIT]


def records_table(records: list[tuple[int, dict[str, Any]]], *, key: str, title: str,
                  base: tuple[Any, ...], note: str = "") -> ReportTable:
    """A generic table of flat ``(index, record)`` pairs (e.g. R-hat): scalar fields only, ids dropped."""
    names: list[str] = []
    for _, r in records:
        for k, v in r.items():
            if k not in names and not isinstance(v, (dict, list)) and not is_identifier_key(k):
                names.append(k)
    b = _Builder()
    for i, r in records:
        b.add({k: (r.get(k), pointer(*base, i, k)) if not isinstance(r.get(k), str) else r.get(k) for k in names})
    frame = b.frame(names)
    cols = []
    for k in names:
        kind = _guess_kind(k, frame[k])
        if kind == "num2" and pd.api.types.is_integer_dtype(pd.to_numeric(frame[k], errors="coerce").dropna()):
            kind = "int"
        elif kind == "num2":
            kind = "num3"
        cols.append(Column(k.replace("_", " "), (k,), kind))
    return ReportTable(key, "", title, frame, tuple(cols), b.sources, note)


# --------------------------------------------------------------------------- all tables / writers

def all_tables(results: dict[str, Any], *, min_cell: int = DEFAULT_MIN_CELL) -> list[ReportTable]:
    """Every APA table of the report.

    Main tables are numbered 1, 2, ... (characteristics, means, ICCs, the primary window's
    mediation models, reciprocal and direct regressions); supplementary ones S1, S2, ...
    (missing data, sensitivity windows, all alpha decisions), as journals number them.
    """
    ws = windows(results)
    models = mediation_table
    if any(isinstance(r.get("m"), list) for r in results.get("mediation") or []):
        from .parallel import parallel_table as models   # parallel mediators: report/parallel.py
    main = [table1(results, min_cell=min_cell), table2(results), icc_table(results)]
    main += [models(results, w) for w in ws[:1]]
    main += [hierarchical_table(results), direct_effects_table(results)]
    supplement = [missing_table(results)] + [models(results, w) for w in ws[1:]]
    supplement += [alpha_decisions_table(results)]
    main = [t for t in main if len(t.frame)]
    supplement = [t for t in supplement if len(t.frame)]
    return ([replace(t, number=f"Table {k}") for k, t in enumerate(main, start=1)]
            + [replace(t, number=f"Table S{k}") for k, t in enumerate(supplement, start=1)])


def write_xlsx(tables: Iterable[ReportTable], path: str | os.PathLike,
               results: dict[str, Any] | None = None) -> Path:
    """APA tables as sheets laid out as in the DOCX, plus a tidy ``data`` sheet
    (:func:`fidelitymed.report.xlsx_tables.write_xlsx`)."""
    from .xlsx_tables import write_xlsx as _write

    return _write(tables, path, results=results)


def write_docx(tables: Iterable[ReportTable], path: str | os.PathLike, *, heading: str = "Tables") -> Path:
    """APA tables in a Word document (:func:`fidelitymed.report.docx_tables.write_docx`)."""
    from .docx_tables import write_docx as _write

    return _write(tables, path, heading=heading)
