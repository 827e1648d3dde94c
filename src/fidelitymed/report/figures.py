"""Figures of the report, drawn with matplotlib's object API (no pyplot state, Agg canvas).

Each figure is a function returning a :class:`matplotlib.figure.Figure`; :func:`save_figure`
writes it as PNG and SVG. The figures mirror what the study published: the conceptual
mediation model (the paper's Figure 1), one results diagram per model with the
coefficients, their CIs and significance under the adjusted alpha (Figures 2–3), plus a
forest plot of the completely standardized indirect effects (Hayes, 2022, sec. 3.5) across
all models and fidelity windows, outcome means by wave, and team fidelity trajectories.

Figures read only the ``results.json`` dict (``docs/results-schema.md``) and, for the
trajectories, the table of team fidelity assessments; no client or case-manager identifier
is ever drawn.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

# Figures are bare matplotlib.figure.Figure objects drawn on the Agg canvas at savefig time, so
# no pyplot state is touched and a notebook's interactive backend is left alone.
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from scipy import stats

from ..study.io import atomic_path
from .tables import (
    PRIME,
    OUTCOME_LABELS,
    fmt_num,
    fmt_p,
    fmt_prop,
    mediation_records,
    month_label,
    windows,
)

DEFAULT_COVARIATES = ("age", "gender", "housing", "employment", "education", "ace", "site",
                      "long_hospitalization", "baseline")
COVARIATE_LABELS = {"age": "age", "gender": "gender", "housing": "housing status", "employment": "employment",
                    "education": "education", "ace": "adverse childhood experiences", "site": "site",
                    "long_hospitalization": "hospitalized \u2265 6 months in past 5 years",
                    "baseline": "baseline score of the outcome"}

INK = "#1a1a1a"
MUTED = "#8c8c8c"
ACCENT = "#1f5fa8"
WINDOW_STYLES = [("o", "#1f5fa8"), ("s", "#c2571a"), ("D", "#3a8a3a"), ("^", "#7a4fa0"), ("v", "#a03a5a")]

# Text stays text in SVG (editable in a journal's layout tools and searchable by the privacy tests);
# metadata without dates keeps one seed -> byte-identical files.
_RC = {"svg.fonttype": "none", "font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 10,
       "axes.spines.top": False, "axes.spines.right": False, "svg.hashsalt": "fidelitymed"}


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height), dpi=100)
    return fig


def save_figure(fig: Figure, path_without_suffix: str | os.PathLike, *, dpi: int = 150) -> tuple[Path, Path]:
    """Write ``fig`` as ``<path>.png`` and ``<path>.svg`` (atomically); return both paths."""
    base = Path(path_without_suffix)
    png, svg = base.with_name(base.name + ".png"), base.with_name(base.name + ".svg")
    with matplotlib.rc_context(_RC):
        with atomic_path(png) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
        if fig.get_layout_engine() is not None:
            # the PNG draw placed every axes; keep that layout for the SVG rather than solve it again
            fig.set_layout_engine("none")
        with atomic_path(svg) as tmp:
            fig.savefig(tmp, format="svg", metadata={"Date": None, "Creator": None})
    return png, svg


def figure_png_bytes(fig: Figure, *, dpi: int = 110) -> bytes:
    """PNG bytes of ``fig`` (for inlining in the HTML report)."""
    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


# --------------------------------------------------------------------------- path diagrams

_POS = {"X": (0.14, 0.30), "M": (0.50, 0.76), "Y": (0.86, 0.30)}
_BOX_W, _BOX_H = 0.24, 0.17


def _box(ax: Any, key: str, text: str) -> None:
    x, y = _POS[key]
    ax.add_patch(FancyBboxPatch((x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H,
                                boxstyle="round,pad=0.008,rounding_size=0.015", linewidth=1.2,
                                edgecolor=INK, facecolor="#f4f6f9", transform=ax.transAxes))
    ax.text(x, y, text, ha="center", va="center", fontsize=8.5, color=INK, transform=ax.transAxes, wrap=True)


def _edge(src: str, dst: str) -> tuple[tuple[float, float], tuple[float, float]]:
    (x0, y0), (x1, y1) = _POS[src], _POS[dst]
    if src == "X" and dst == "Y":
        return (x0 + _BOX_W / 2, y0), (x1 - _BOX_W / 2, y1)
    if src == "X":
        return (x0 + 0.02, y0 + _BOX_H / 2), (x1 - _BOX_W / 2, y1 - 0.02)
    return (x0 + _BOX_W / 2, y0 - 0.02), (x1 - 0.02, y1 + _BOX_H / 2)


def _arrow(ax: Any, src: str, dst: str, *, solid: bool = True) -> None:
    start, end = _edge(src, dst)
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, linewidth=1.6 if solid else 1.1,
                                 linestyle="-" if solid else (0, (4, 3)), color=INK if solid else MUTED,
                                 transform=ax.transAxes, shrinkA=2, shrinkB=2))


def _label_pos(src: str, dst: str) -> tuple[float, float, str]:
    (x0, y0), (x1, y1) = _edge(src, dst)
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    if src == "X" and dst == "Y":
        return mx, my - 0.04, "top"
    return (mx - 0.07, my + 0.01, "bottom") if src == "X" else (mx + 0.07, my + 0.01, "bottom")


def _axes(fig: Figure, rect: Sequence[float] = (0, 0, 1, 1)) -> Any:
    ax = fig.add_axes(rect)
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    return ax


def conceptual_diagram(covariates: Sequence[str] | None = None, *, x_label: str = "Team SMCM fidelity\n(X)",
                       m_label: str = "Working alliance\n(RPRS, M)", y_label: str = "Client outcome\n(Y)") -> Figure:
    """The simple mediation model (PROCESS Model 4; Hayes, 2022): X → M → Y with a, b and c′.

    The covariates (the paper's nine by default) enter both the M and the Y equation.
    """
    covariates = list(covariates) if covariates is not None else list(DEFAULT_COVARIATES)
    fig = _figure(7.0, 3.2)
    ax = _axes(fig, (0.02, 0.14, 0.96, 0.76))
    for key, text in (("X", x_label), ("M", m_label), ("Y", y_label)):
        _box(ax, key, text)
    for src, dst, name in (("X", "M", "a"), ("M", "Y", "b"), ("X", "Y", f"c{PRIME}")):
        _arrow(ax, src, dst)
        x, y, va = _label_pos(src, dst)
        ax.text(x, y, name, ha="center", va=va, fontsize=12, fontstyle="italic", color=INK, transform=ax.transAxes)
    names = ", ".join(COVARIATE_LABELS.get(c, c.replace("_", " ")) for c in covariates)
    fig.text(0.5, 0.04, f"Covariates in both equations ({len(covariates)}): {names}.",
             ha="center", va="bottom", fontsize=7.5, color="#444444", wrap=True)
    fig.text(0.5, 0.96, "Figure 1. Simple mediation model", ha="center", va="top", fontsize=10, fontweight="bold")
    return fig


def _coef_label(name: str, path: dict[str, Any] | None, sig: bool) -> str:
    if not path:
        return f"{name} = \u2014"
    star = "*" if sig else ""
    return (f"{name} = {fmt_num(path.get('coef'), 2)}{star}\n"
            f"[{fmt_num(path.get('ci_low'), 2)}, {fmt_num(path.get('ci_high'), 2)}]\n"
            f"p {_p_text(path.get('p'))}")


def _p_text(p: Any) -> str:
    text = fmt_p(p)
    return text if text.startswith("<") else "= " + text


def diagram_title(record: dict[str, Any]) -> str:
    label = record.get("outcome_label") or OUTCOME_LABELS.get(record.get("outcome"), record.get("outcome"))
    return (f"{label} at {month_label(record.get('outcome_month'))} months "
            f"(alliance at {month_label(record.get('mediator_month'))} months; "
            f"{record.get('window_days')}-day fidelity)")


def mediation_diagram(record: dict[str, Any]) -> Figure:
    """Results of one mediation model as a path diagram (as in the paper's Figures 2–3).

    Unstandardized coefficients with 95% CIs on each path; an asterisk and a solid arrow
    mark paths significant under the alpha the ICC rule assigned to that path
    (``record["alpha"]``, ``record["significant"]``); non-significant paths are dashed.
    """
    paths = record.get("paths") or {}
    sig = record.get("significant") or {}
    alpha = record.get("alpha") or {}
    fig = _figure(6.4, 3.5)
    ax = _axes(fig, (0.02, 0.2, 0.96, 0.72))
    label = record.get("outcome_label") or OUTCOME_LABELS.get(record.get("outcome"), record.get("outcome"))
    _box(ax, "X", f"SMCM fidelity\n({record.get('window_days')}-day mean)")
    _box(ax, "M", f"Working alliance\n(RPRS, {month_label(record.get('mediator_month'))} m)")
    _box(ax, "Y", f"{label}\n({month_label(record.get('outcome_month'))} m)")
    for src, dst, key, name in (("X", "M", "a", "a"), ("M", "Y", "b", "b"), ("X", "Y", "c_prime", f"c{PRIME}")):
        solid = bool(sig.get(key))
        _arrow(ax, src, dst, solid=solid)
        x, y, va = _label_pos(src, dst)
        ax.text(x, y, _coef_label(name, paths.get(key), solid), ha="center", va=va, fontsize=8.5,
                color=INK if solid else "#555555", transform=ax.transAxes, linespacing=1.3)
    fig.text(0.5, 0.97, diagram_title(record), ha="center", va="top", fontsize=9.5, fontweight="bold")
    ind, std = record.get("indirect") or {}, record.get("indirect_std") or {}
    star = "*" if sig.get("indirect") else ""
    lines = [f"Indirect effect ab = {fmt_num(ind.get('effect'), 3)}{star} "
             f"[{fmt_num(ind.get('ci_low'), 3)}, {fmt_num(ind.get('ci_high'), 3)}]; completely standardized "
             f"{fmt_num(std.get('effect'), 3)} [{fmt_num(std.get('ci_low'), 3)}, {fmt_num(std.get('ci_high'), 3)}]",
             f"Total effect c = {fmt_num((paths.get('c') or {}).get('coef'), 2)}; n = {record.get('n')}; "
             f"{record.get('n_boot')} bootstrap samples (95% percentile CI).",
             "* p < \u03b1 for the path (\u03b1: " + ", ".join(
                 f"{n} = {fmt_prop(alpha.get(k), 2)}" for k, n in (("a", "a"), ("b", "b"), ("c_prime", f"c{PRIME}"))
                 if alpha.get(k) is not None) + "); dashed arrow = not significant."]
    fig.text(0.5, 0.03, "\n".join(lines), ha="center", va="bottom", fontsize=7.5,
             color="#333333", linespacing=1.5)
    return fig


# --------------------------------------------------------------------------- forest plot

def indirect_forest(results: dict[str, Any]) -> Figure:
    """Completely standardized indirect effects (ab_cs) with bootstrap CIs, all models × windows.

    Filled markers: indirect effect significant (CI excludes 0 and the record says so).
    """
    ws = windows(results)
    recs = mediation_records(results)
    models: list[tuple[float, str]] = []
    for _, r in recs:
        key = (float(r.get("outcome_month") or 0), str(r.get("outcome")))
        if key not in models:
            models.append(key)
    order = {k: i for i, k in enumerate(OUTCOME_LABELS)}
    models.sort(key=lambda k: (k[0], order.get(k[1], 99), k[1]))
    n_w = max(len(ws), 1)
    height = 1.3 + 0.16 * len(models) * n_w + 0.2 * len(models)
    fig = _figure(7.0, max(3.0, height))
    with matplotlib.rc_context(_RC):
        ax = fig.add_subplot()
        labels, ticks = [], []
        for mi, (month, outcome) in enumerate(models):
            centre = -mi * (n_w + 1.2)
            ticks.append(centre)
            lab = next((r.get("outcome_label") for _, r in recs if r.get("outcome") == outcome), None)
            labels.append(f"{lab or OUTCOME_LABELS.get(outcome, outcome)}, {month_label(month)} m")
            for wi, w in enumerate(ws):
                rec = next((r for _, r in recs if r.get("outcome") == outcome
                            and float(r.get("outcome_month") or 0) == month and int(r.get("window_days")) == w), None)
                if rec is None:
                    continue
                e = rec.get("indirect_std") or {}
                if e.get("effect") is None:
                    continue
                y = centre + (n_w - 1) / 2 - wi
                marker, color = WINDOW_STYLES[wi % len(WINDOW_STYLES)]
                sig = bool((rec.get("significant") or {}).get("indirect"))
                lo, hi = e.get("ci_low"), e.get("ci_high")
                if lo is not None and hi is not None:
                    ax.plot([lo, hi], [y, y], color=color, linewidth=1.4, solid_capstyle="butt")
                ax.plot([e["effect"]], [y], marker=marker, markersize=6, color=color,
                        markerfacecolor=color if sig else "white", markeredgewidth=1.3, linestyle="none")
        ax.axvline(0, color=MUTED, linewidth=0.9, linestyle="--")
        ax.set_yticks(ticks)
        ax.set_yticklabels(labels)
        ax.tick_params(axis="y", length=0)
        ax.set_xlabel("Completely standardized indirect effect ab_cs (95% percentile bootstrap CI)")
        ax.spines["left"].set_visible(False)
        handles = [Line2D([], [], marker=WINDOW_STYLES[i % len(WINDOW_STYLES)][0], linestyle="-",
                          color=WINDOW_STYLES[i % len(WINDOW_STYLES)][1],
                          label=f"{w}-day fidelity" + (" (primary)" if i == 0 else "")) for i, w in enumerate(ws)]
        handles.append(Line2D([], [], marker="o", linestyle="none", color=INK, markerfacecolor="white",
                              label="open = not significant"))
        fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), fontsize=7.5,
                   frameon=False)
        ax.set_title("Indirect effect of team fidelity on outcomes through the working alliance", loc="left",
                     fontweight="bold")
        fig.set_layout_engine("constrained")
    return fig


# --------------------------------------------------------------------------- outcome means

def outcome_means(results: dict[str, Any], *, conf: float = 0.95) -> Figure:
    """Mean of each study variable by wave with its t-based CI (from Table 2: mean, SD, n)."""
    rows = pd.DataFrame((results.get("descriptives") or {}).get("table2") or [])
    if rows.empty:
        fig = _figure(6, 2)
        fig.text(0.5, 0.5, "No descriptive statistics in results", ha="center", va="center")
        return fig
    rows["label"] = rows.get("label", rows["variable"]).fillna(rows["variable"])
    labels = list(dict.fromkeys(rows["label"]))
    ncol = min(3, len(labels))
    nrow = int(np.ceil(len(labels) / ncol))
    fig = _figure(2.6 * ncol, 2.2 * nrow + 0.5)
    with matplotlib.rc_context(_RC):
        axes = fig.subplots(nrow, ncol, squeeze=False)
        for k, label in enumerate(labels):
            ax = axes[k // ncol][k % ncol]
            d = rows[rows["label"] == label].sort_values("month")
            n = pd.to_numeric(d["n"], errors="coerce").to_numpy(float)
            mean = pd.to_numeric(d["mean"], errors="coerce").to_numpy(float)
            sd = pd.to_numeric(d["sd"], errors="coerce").to_numpy(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                half = stats.t.ppf(0.5 + conf / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
            months = d["month"].astype(float).to_numpy()
            ax.errorbar(months, mean, yerr=half, color=ACCENT, marker="o", markersize=4, capsize=3, linewidth=1.3)
            ax.set_title(str(label))
            ax.set_xticks(months)
            ax.set_xticklabels([month_label(m) for m in months])
            ax.margins(x=0.15)
        for k in range(len(labels), nrow * ncol):
            axes[k // ncol][k % ncol].set_axis_off()
        fig.supxlabel("Months since baseline", fontsize=8.5)
        fig.suptitle(f"Mean scores by wave ({conf:.0%} CI)", fontsize=10, fontweight="bold")
        fig.set_layout_engine("constrained")
    return fig


# --------------------------------------------------------------------------- trajectories

def fidelity_trajectories(assessments: Any, *, threshold: float | None = None, n_domains: int | None = None,
                          **kwargs: Any) -> Figure:
    """Team fidelity totals over time: :func:`fidelitymed.report.trajectories.plot_trajectories`.

    ``assessments`` is a ``StudyData`` or a table with ``team``, ``date``, ``total`` (or
    ``fidelity_total``) and optionally domain scores; a plain ``total`` / ``<domain>`` table is
    renamed to the scored-fidelity column names the trajectory module expects.
    """
    from . import trajectories

    if not hasattr(assessments, "scored_fidelity"):
        frame = pd.DataFrame(assessments)
        if "fidelity_total" not in frame.columns and "total" in frame.columns:
            frame = frame.rename(columns={c: f"fidelity_{c}" for c in frame.columns
                                          if c not in ("team", "date") and not str(c).startswith("fidelity_")})
        assessments = frame
        if n_domains is not None and "ylim" not in kwargs:
            kwargs["ylim"] = (n_domains, 5 * n_domains)
    return trajectories.plot_trajectories(assessments, threshold=threshold, **kwargs)


# --------------------------------------------------------------------------- all figures

def figure_key(record: dict[str, Any]) -> str:
    """File stem of a model's diagram, e.g. ``diagram_qoli20_9m_180d``."""
    return (f"diagram_{record.get('outcome')}_{month_label(record.get('outcome_month'))}m_"
            f"{record.get('window_days')}d").replace(".", "p")


def build_figures(results: dict[str, Any], *, assessments: Any = None,
                  covariates: Sequence[str] | None = None, threshold: float | None = None,
                  n_domains: int | None = None) -> dict[str, Figure]:
    """Every figure of the report by file stem, in report order."""
    figs: dict[str, Figure] = {"figure1_model": conceptual_diagram(covariates)}
    for _, rec in mediation_records(results):
        figs[figure_key(rec)] = mediation_diagram(rec)
    if results.get("mediation"):
        figs["forest_indirect_std"] = indirect_forest(results)
    if (results.get("descriptives") or {}).get("table2"):
        figs["outcome_means"] = outcome_means(results)
    if assessments is not None and (hasattr(assessments, "scored_fidelity") or len(assessments)):
        figs["fidelity_trajectories"] = fidelity_trajectories(assessments, threshold=threshold, n_domains=n_domains)
    return figs
