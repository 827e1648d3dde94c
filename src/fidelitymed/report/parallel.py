"""Parallel mediators (``analysis.mediator`` a list, PROCESS Model 4 with k >= 2) in the report.

One table per fidelity window -- a row per outcome x month with a and b of each mediator, the
total and specific indirect effects with their CIs and the pairwise contrasts -- and one path
diagram per model with k mediator boxes (Hayes 2022, Figure 5.1). The single-mediator tables and
figures (:mod:`fidelitymed.report.tables`, :mod:`fidelitymed.report.figures`) are untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from . import tables as T  # noqa: E402

__all__ = ["is_parallel", "parallel_diagram", "parallel_figure_entries", "parallel_figures", "parallel_table"]


def is_parallel(results: dict[str, Any]) -> bool:
    """Whether the mediation records are parallel-mediator models (``m`` a list)."""
    return any(isinstance(r.get("m"), list) for r in results.get("mediation") or [])


def _label(name: str) -> str:
    """``rprs_core_relationship_4.5m`` -> ``RPRS core relationship``."""
    base = name.rsplit("_", 1)[0] if name.endswith("m") and "_" in name else name
    inst, _, score = base.partition("_")
    return f"{T.OUTCOME_LABELS.get(inst, inst.upper())} {score.replace('_', ' ')}".strip()


def parallel_table(results: dict[str, Any], window: int) -> T.ReportTable:
    """Parallel mediation models of one fidelity window: one row per outcome x month."""
    import pandas as pd

    rows, sources, columns = [], {}, None
    for i, (index, r) in enumerate(T.mediation_records(results, window)):
        mediators = list(r["m"])
        row: dict[str, Any] = {"outcome": r.get("outcome_label") or r.get("outcome"),
                               "month": r.get("outcome_month"), "n": r.get("n")}
        cols = [T.Column("Outcome", ("outcome",), "text"), T.Column("Month", ("month",), "month"),
                T.Column("n", ("n",), "int")]
        base = f"/mediation/{index}"
        for j, med in enumerate(mediators):
            for path in ("a", "b"):
                v = r["paths"][path][med]
                row[f"{path}{j}"] = v["coef"]
                row[f"{path}{j}_sig"] = bool((r.get("significant") or {}).get(path, {}).get(med))
                sources[(i, f"{path}{j}")] = f"{base}/paths/{path}/{med}/coef"
                cols.append(T.Column(path, (f"{path}{j}",), mark=f"{path}{j}_sig", group=_label(med)))
        effects = [("total", "Total indirect", r["indirect"]["total"], "indirect/total")]
        effects += [(med, f"Indirect via {_label(med)}", r["indirect"][med], f"indirect/{med}") for med in mediators]
        effects += [(name, f"Contrast {_label(name.split(' - ')[0])} \u2212 {_label(name.split(' - ')[1])}", v,
                     f"contrasts/{name}") for name, v in (r.get("contrasts") or {}).items()]
        for j, (key, header, v, pointer) in enumerate(effects):
            for part in ("effect", "ci_low", "ci_high"):
                row[f"e{j}_{part}"] = v[part]
                sources[(i, f"e{j}_{part}")] = f"{base}/{pointer.replace('~', '~0')}/{part}"
            sig = (r.get("significant") or {}).get("indirect", {}).get(key) if j <= len(mediators) else None
            row[f"e{j}_sig"] = bool(sig)
            cols.append(T.Column(header, (f"e{j}_effect", f"e{j}_ci_low", f"e{j}_ci_high"),
                                 template="{0} [{1}, {2}]", mark=f"e{j}_sig"))
        rows.append(row)
        columns = columns or cols
    conf = T.stored_conf(results)
    note = (f"Parallel mediators (PROCESS Model 4). a: fidelity \u2192 mediator; b: mediator \u2192 outcome, "
            f"adjusted for the other mediators; indirect effects with {T.level_text(conf)} bootstrap CIs pooled "
            f"across imputations; contrasts: differences between specific indirect effects. * significant under the "
            f"study's ICC alpha rule (indirect: CI excludes 0 and both paths significant).")
    return T.ReportTable(key=f"mediation_{window}d", number="",
                         title=f"Parallel mediation models, {window}-day fidelity window",
                         frame=pd.DataFrame(rows), columns=tuple(columns or ()), sources=sources, note=note)


def parallel_diagram(record: dict[str, Any]) -> Figure:
    """Path diagram of one parallel model: X, k mediator boxes, Y; a_i, b_i and c' on the arrows."""
    mediators = list(record["m"])
    k = len(mediators)
    fig = Figure(figsize=(7.0, 1.6 + 1.1 * k))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 10)
    ax.set_ylim(-1.6, k + 0.4)
    ax.axis("off")
    box = {"boxstyle": "round,pad=0.4", "facecolor": "white", "edgecolor": "black"}
    ax.text(1.2, -0.9, "Team fidelity (X)", ha="center", va="center", bbox=box, fontsize=9)
    ax.text(8.8, -0.9, f"{record.get('outcome_label') or record.get('outcome')} (Y)", ha="center", va="center",
            bbox=box, fontsize=9)
    arrow = {"arrowstyle": "->", "color": "black", "lw": 1}
    for j, med in enumerate(mediators):
        y = k - j - 0.2
        ax.text(5.0, y, f"{_label(med)} (M{j + 1})", ha="center", va="center", bbox=box, fontsize=9)
        a, b = record["paths"]["a"][med]["coef"], record["paths"]["b"][med]["coef"]
        ax.annotate("", xy=(3.6, y), xytext=(1.6, -0.6), arrowprops=arrow)
        ax.annotate("", xy=(8.4, -0.6), xytext=(6.4, y), arrowprops=arrow)
        ax.text(2.3, (y - 0.6) / 2 + 0.15, f"a{j + 1} = {T.fmt_num(a)}", ha="right", fontsize=8)
        ax.text(7.7, (y - 0.6) / 2 + 0.15, f"b{j + 1} = {T.fmt_num(b)}", ha="left", fontsize=8)
    ax.annotate("", xy=(7.4, -0.9), xytext=(2.6, -0.9), arrowprops=arrow)
    ax.text(5.0, -1.25, f"c\u2032 = {T.fmt_num(record['paths']['c_prime']['coef'])}", ha="center", fontsize=8)
    return fig


def parallel_figure_entries(results: dict[str, Any]) -> list[tuple[str, str, str, str, Callable[[], Figure]]]:
    """(key, title, caption, alt, builder) of one diagram per parallel model; ``builder()`` draws it.

    The builder is a :func:`functools.partial` of :func:`parallel_diagram` over the record, so
    it pickles to a worker (:class:`fidelitymed.report.figures.FigureSpec`).
    """
    out = []
    for _, r in T.mediation_records(results):
        if r.get("window_days") is None:
            continue
        names = ", ".join(_label(m) for m in r["m"])
        what = f"{r.get('outcome_label') or r.get('outcome')} at {r.get('outcome_month')} months, {r['window_days']}-day window"
        key = f"parallel_diagram_{r.get('outcome')}_{r.get('outcome_month')}m_{r['window_days']}d".replace(".", "_")
        out.append((key, f"Parallel mediation model: {what}",
                    f"Unstandardized paths of team fidelity through {names} (parallel mediators) to {what}.",
                    f"Path diagram: team fidelity to {names} to the outcome, with a, b and c prime coefficients.",
                    partial(parallel_diagram, r)))
    return out


def parallel_figures(results: dict[str, Any]) -> list[tuple[str, str, str, str, Figure]]:
    """(key, title, caption, alt, figure) of one diagram per parallel model (the report's supplement)."""
    return [(key, title, caption, alt, build()) for key, title, caption, alt, build in parallel_figure_entries(results)]
