"""Figures of the report, drawn with matplotlib's object API (no pyplot state, Agg canvas).

Each figure is a function returning a :class:`matplotlib.figure.Figure`; :func:`save_figure`
writes it as PNG and SVG. :func:`figure_specs` lists the report's figures as picklable
:class:`FigureSpec` objects (a module-level builder and its arguments), and
:func:`render_figures` turns them into bytes -- 300 dpi PNG, SVG and the inline image, from one
raster draw -- serially or on a :class:`fidelitymed.parallel.Executor`.

The figures mirror what the study published: the conceptual mediation model (the paper's
Figure 1), one results diagram per model with the coefficients, their CIs and significance
under the adjusted alpha (Figures 2–3), plus a forest plot of the completely standardized
indirect effects (Hayes, 2022, sec. 3.5) across all models and fidelity windows, outcome
means by wave, and team fidelity trajectories.

Figures read only the ``results.json`` dict (``docs/results-schema.md``) and, for the
trajectories, the table of team fidelity assessments; no client or case-manager identifier
is ever drawn.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg

# Figures are bare matplotlib.figure.Figure objects drawn on the Agg canvas at savefig time, so
# no pyplot state is touched and a notebook's interactive backend is left alone.
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from PIL import Image

from ..study.io import atomic_path
from .. import labels as L
from ..stats.distributions import t_ppf
from .tables import (
    OUTCOME_LABELS,
    PATH_LABELS,
    PRIME,
    ci_level_for,
    fmt_num,
    fmt_p,
    fmt_prop,
    level_text,
    mediation_records,
    month_label,
    outcome_label,
    path_ci,
    stored_conf,
    windows,
)

DEFAULT_COVARIATES = ("age", "gender", "housing", "employment", "education", "ace", "site",
                      "long_hospitalization", "baseline")
COVARIATE_LABELS = {"age": "age", "gender": "gender", "housing": "housing status", "employment": "employment",
                    "education": "education", "ace": "adverse childhood experiences (ACE)", "site": "site",
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


PRINT_DPI = 300  # journals ask for 300 dpi line art at the printed size
SCREEN_DPI = 110  # the report's inline images

# Print PNGs: rows written unfiltered and deflated at level 3 (_png). Pillow's encoder picks a
# filter per row, which on these mostly white line drawings costs three times the deflate itself
# and compresses worse: on one 1920 x 990 path diagram Pillow took 46 ms for 122 kB at level 3
# (44 ms, 125 kB at level 1; 57 ms, 105 kB at 6), the unfiltered rows 13 ms for 105 kB (12 ms,
# 109 kB at level 1). Deflate's levels 1-3 share its fast match search; 3 gives the smallest files.
PNG_COMPRESS_LEVEL = 3
# The inline image is the print raster resampled, not a second draw at screen resolution: on the
# same 34 figures the 110 dpi redraw took 3.0 s (the draw -- text layout, paths -- costs nearly the
# same at any dpi), a Lanczos resample of the 300 dpi raster 1.0 s, or 0.45 s after a box
# reduction by 2 (reducing_gap=1, no visible difference), and a 256-colour palette (FASTOCTREE)
# with its encoding 0.15 s. The palette makes the inline PNGs 0.5 MB instead of 2.45 MB (RGB
# resampled) or 1.57 MB (redrawn) at a mean colour error of 2/255; the image shows the print layout.
INLINE_COLOURS = 256
# the palette images are small: level 6 costs 0.03 s more than 3 on the demo and saves 15%
INLINE_COMPRESS_LEVEL = 6


@dataclass(frozen=True)
class RenderedFigure:
    """One figure of the report as bytes: what the report writes and inlines.

    ``png`` (at :data:`PRINT_DPI`) and ``svg`` are ``None`` for a figure the report only inlines.
    """

    key: str
    png: bytes | None
    svg: bytes | None
    inline_png: bytes


def _raster(fig: Figure, dpi: float) -> Image.Image:
    """``fig`` drawn on the Agg canvas at ``dpi``, as savefig would; RGB when it is opaque."""
    canvas = FigureCanvasAgg(fig)
    screen_dpi = fig.dpi
    fig.dpi = dpi
    try:
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())
        # the white figure face leaves alpha at 255 everywhere: RGB holds the same pixels in 3/4
        # of the bytes, which zlib and the resampling then do not have to read
        image = Image.fromarray(rgba, "RGBA")
        return image.convert("RGB") if rgba[..., 3].min() == 255 else image.copy()
    finally:
        fig.dpi = screen_dpi


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(image: Image.Image, dpi: float) -> bytes:
    """PNG of an 8-bit RGB or RGBA raster: unfiltered rows (filter type 0) deflated at
    :data:`PNG_COMPRESS_LEVEL`, and the resolution (pHYs) in dots per metre as Pillow writes it.

    No text chunks (no "Software", no date): one seed gives byte-identical files. See the
    measurements above :data:`PNG_COMPRESS_LEVEL` for why not Pillow's encoder (PNG
    specification, W3C 2003, sections 5, 9 and 11).
    """
    pixels = np.asarray(image)
    height, width = pixels.shape[:2]
    colour_type = {"RGB": 2, "RGBA": 6}[image.mode]
    rows = np.zeros((height, 1 + pixels[0].size), dtype=np.uint8)  # each row: its filter byte, 0
    rows[:, 1:] = pixels.reshape(height, -1)
    per_metre = int(dpi / 0.0254 + 0.5)
    return b"".join([b"\x89PNG\r\n\x1a\n",
                     _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)),
                     _png_chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)),
                     _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), PNG_COMPRESS_LEVEL)),
                     _png_chunk(b"IEND", b"")])


def _svg(fig: Figure) -> bytes:
    if fig.get_layout_engine() is not None:
        # the raster draw placed every axes; keep that layout for the SVG rather than solve it again
        fig.set_layout_engine("none")
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return buf.getvalue()


def _inline(image: Image.Image, image_dpi: float, dpi: float) -> bytes:
    """The screen-resolution PNG of a raster drawn at ``image_dpi`` (see :data:`INLINE_COLOURS`)."""
    scale = dpi / image_dpi
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    small = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=1.0)
    palette = small.quantize(INLINE_COLOURS, method=Image.Quantize.FASTOCTREE)
    buf = io.BytesIO()
    palette.save(buf, format="png", compress_level=INLINE_COMPRESS_LEVEL, dpi=(dpi, dpi))
    return buf.getvalue()


def _print_files(fig: Figure, dpi: float) -> tuple[Image.Image, bytes, bytes]:
    """The raster at ``dpi``, its PNG and the SVG of ``fig``: one raster draw, one vector draw."""
    with matplotlib.rc_context(_RC):
        image = _raster(fig, dpi)
        return image, _png(image, dpi), _svg(fig)


def write_figure_files(path_without_suffix: str | os.PathLike, png: bytes, svg: bytes) -> tuple[Path, Path]:
    """Write ``<path>.png`` and ``<path>.svg`` (each atomically); return both paths."""
    base = Path(path_without_suffix)
    paths = base.with_name(base.name + ".png"), base.with_name(base.name + ".svg")
    for path, data in zip(paths, (png, svg)):
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    return paths


def save_figure(fig: Figure, path_without_suffix: str | os.PathLike, *, dpi: int = PRINT_DPI) -> tuple[Path, Path]:
    """Write ``fig`` as ``<path>.png`` and ``<path>.svg`` (atomically); return both paths."""
    _, png, svg = _print_files(fig, dpi)
    return write_figure_files(path_without_suffix, png, svg)


def figure_png_bytes(fig: Figure, *, dpi: int = SCREEN_DPI) -> bytes:
    """PNG bytes of ``fig`` for inlining in the HTML report: the print raster resampled to ``dpi``."""
    raster_dpi = max(dpi, PRINT_DPI)
    with matplotlib.rc_context(_RC):
        image = _raster(fig, raster_dpi)
    return _inline(image, raster_dpi, dpi)


# --------------------------------------------------------------------------- path diagrams

_POS = {"X": (0.14, 0.30), "M": (0.50, 0.76), "Y": (0.86, 0.30)}
_BOX_W, _BOX_H = 0.24, 0.17


def _box(ax: Any, key: str, text: str, fontsize: float = 8.5) -> None:
    x, y = _POS[key]
    ax.add_patch(FancyBboxPatch((x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H,
                                boxstyle="round,pad=0.008,rounding_size=0.015", linewidth=1.2,
                                edgecolor=INK, facecolor="#f4f6f9", transform=ax.transAxes))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, color=INK, transform=ax.transAxes)


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


def _label_pos(src: str, dst: str, offset: float = 0.07) -> tuple[float, float, str]:
    (x0, y0), (x1, y1) = _edge(src, dst)
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    if src == "X" and dst == "Y":
        return mx, my - 0.04, "top"
    return (mx - offset, my, "center") if src == "X" else (mx + offset, my, "center")


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
    names = ", ".join(COVARIATE_LABELS.get(c, L.covariate_label(c)) for c in covariates)
    fig.text(0.5, 0.04, f"Covariates in both equations ({len(covariates)}): {names}.",
             ha="center", va="bottom", fontsize=7.5, color="#444444", wrap=True)
    return fig


def _coef_label(name: str, path: dict[str, Any] | None, sig: bool, ci: tuple[Any, Any] = (None, None),
                alpha: Any = None) -> str:
    """"a = 0.81*" / "[0.05, 1.58]" / "p = .006, α = .01": the CI is at the level 1 − α of the path."""
    if not path:
        return f"{name} = \u2014"
    star = "*" if sig else ""
    low, high = ci if ci[0] is not None else (path.get("ci_low"), path.get("ci_high"))
    alpha_text = "" if alpha is None else f", \u03b1 = {fmt_prop(alpha, 2)}"
    return (f"{name} = {fmt_num(path.get('coef'), 2)}{star}\n"
            f"[{fmt_num(low, 2)}, {fmt_num(high, 2)}]\n"
            f"p {_p_text(path.get('p'))}{alpha_text}")


def _p_text(p: Any) -> str:
    text = fmt_p(p)
    return text if text.startswith("<") else "= " + text


def diagram_title(record: dict[str, Any]) -> str:
    """"QOLI-20 at 9 months (alliance at 4.5 months; 180-day fidelity window)"."""
    return (f"{outcome_label(record)} at {L.month_text(record.get('outcome_month'))} "
            f"(alliance at {L.month_text(record.get('mediator_month'))}; "
            f"{L.window_text(record.get('window_days'))} fidelity window)")


def _draw_model(fig: Figure, rect: Sequence[float], record: dict[str, Any], *, conf: float = 0.95,
                fontsize: float = 8.5, panel: str | None = None) -> None:
    """One model's path diagram in ``rect`` of ``fig``: boxes, arrows, a, b, c′ with CIs, ab below."""
    ax = _axes(fig, rect)
    paths = record.get("paths") or {}
    sig = record.get("significant") or {}
    alpha = record.get("alpha") or {}
    _box(ax, "X", f"SMCM fidelity\n({L.window_text(record.get('window_days'))} mean)", fontsize)
    _box(ax, "M", f"Working alliance\n(RPRS)\n{L.month_text(record.get('mediator_month'))}", fontsize)
    _box(ax, "Y", f"{outcome_label(record)}\n({L.month_text(record.get('outcome_month'))})", fontsize)
    for src, dst, key in (("X", "M", "a"), ("M", "Y", "b"), ("X", "Y", "c_prime")):
        solid = bool(sig.get(key))
        _arrow(ax, src, dst, solid=solid)
        x, y, va = _label_pos(src, dst, 0.135)
        level = ci_level_for(alpha.get(key), conf)
        ci = path_ci(record, key, level) if abs(level - conf) > 1e-9 else (None, None)
        ax.text(x, y, _coef_label(PATH_LABELS[key], paths.get(key), solid, ci, alpha.get(key)), ha="center", va=va,
                fontsize=fontsize, color=INK if solid else "#555555", transform=ax.transAxes, linespacing=1.25,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6, "alpha": 0.9})
    ind = record.get("indirect") or {}
    star = "*" if sig.get("indirect") else ""
    ax.text(0.5, 0.02, f"ab = {fmt_num(ind.get('effect'), 3)}{star} "
            f"[{fmt_num(ind.get('ci_low'), 3)}, {fmt_num(ind.get('ci_high'), 3)}]; n = {record.get('n')}",
            ha="center", va="top", fontsize=fontsize, color=INK, transform=ax.transAxes)
    if panel:
        ax.text(0.0, 1.02, panel, ha="left", va="bottom", fontsize=fontsize + 1.5, fontweight="bold",
                color=INK, transform=ax.transAxes)


def mediation_diagram(record: dict[str, Any], *, conf: float = 0.95) -> Figure:  # noqa: D417
    """Results of one mediation model as a path diagram (a supplementary figure).

    Unstandardized coefficients on each path with the CI at the level matching the path's
    alpha (99% where the ICC rule set α = .01); an asterisk and a solid arrow mark paths
    significant at that alpha (``record["alpha"]``, ``record["significant"]``); non-significant
    paths are dashed. Below: the indirect effect ab with its percentile bootstrap CI.
    """
    fig = _figure(6.4, 3.3)
    _draw_model(fig, (0.02, 0.16, 0.96, 0.8), record, conf=conf)
    std = record.get("indirect_std") or {}
    fig.text(0.5, 0.02, f"Completely standardized ab = {fmt_num(std.get('effect'), 3)} "
             f"[{fmt_num(std.get('ci_low'), 3)}, {fmt_num(std.get('ci_high'), 3)}]; "
             f"{record.get('n_boot')} bootstrap samples.", ha="center", va="bottom", fontsize=7.5, color="#333333")
    return fig


def mediation_panels(records: Sequence[dict[str, Any]], *, conf: float = 0.95) -> Figure:
    """The mediation results of one outcome wave as one multi-panel figure (the paper's Figures 2 and 3).

    One path diagram per outcome (A, B, C, D ...), two per row, each as in
    :func:`mediation_diagram`.
    """
    records = list(records)
    ncol = 2 if len(records) > 1 else 1
    nrow = max(1, int(np.ceil(len(records) / ncol)))
    width, panel_h = 7.2, 3.0
    fig = _figure(width, panel_h * nrow + 0.15)
    for k, rec in enumerate(records):
        col, row = k % ncol, k // ncol
        left = col / ncol + 0.01
        bottom = 1 - (row + 1) / nrow + 0.12 / nrow
        _draw_model(fig, (left, bottom, 1 / ncol - 0.02, 0.8 / nrow), rec, conf=conf, fontsize=7,
                    panel=f"{chr(ord('A') + k)}. {outcome_label(rec)}")
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
            rec0 = next((r for _, r in recs if r.get("outcome") == outcome), {"outcome": outcome})
            labels.append(f"{outcome_label(rec0)}, {L.month_text(month)}")
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
    rows["label"] = [L.variable_label(v) for v in rows["variable"]]
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
                half = t_ppf(0.5 + conf / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
            months = d["month"].astype(float).to_numpy()
            ax.errorbar(months, mean, yerr=half, color=ACCENT, marker="o", markersize=4, capsize=3, linewidth=1.3)
            ax.set_title(str(label), fontsize=9)
            ax.set_xticks(months)
            ax.set_xticklabels([month_label(m) for m in months])
            ax.set_ylabel("Mean (95% CI)" if k % ncol == 0 else "", fontsize=8)
            ax.margins(x=0.15)
        for k in range(len(labels), nrow * ncol):
            axes[k // ncol][k % ncol].set_axis_off()
        fig.supxlabel("Months since baseline", fontsize=8.5)
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

#: what a model's path diagram's file stem (and spec name) begins with
DIAGRAM_PREFIX = "diagram_"


def figure_key(record: dict[str, Any]) -> str:
    """File stem of a model's diagram from its display labels, e.g. ``diagram_QOLI-20_9-months_180-day``."""
    return DIAGRAM_PREFIX + L.file_slug(outcome_label(record), L.month_text(record.get("outcome_month")),
                                    L.window_text(record.get("window_days")))


@dataclass(frozen=True)
class NumberedFigure:
    """A figure of the report with its number ("Figure 2", "Figure S3"), title and caption."""

    key: str  # file stem
    number: str
    title: str
    caption: str
    alt: str
    figure: Figure


@dataclass(frozen=True)
class FigureSpec:
    """A figure of the report not drawn yet: its text, and how to draw it.

    ``builder`` is a module-level function or a :func:`functools.partial` of one over plain
    data (records, tables), so a spec pickles to a worker process or a Dask worker. It reads
    display labels when called: call it under the same :func:`fidelitymed.labels.study_labels`
    as the spec was made (:func:`render_figure_task` does). ``files=False`` marks a figure the
    report only inlines (no PNG or SVG file).
    """

    key: str  # file stem
    number: str
    title: str
    caption: str
    alt: str
    builder: Callable[[], Figure]
    files: bool = True
    #: the key without its number (``fidelity_trajectories`` of ``figureS07_fidelity_trajectories``)
    name: str = ""

    def build(self) -> Figure:
        """The figure, drawn by ``builder``."""
        return self.builder()


def _wave_caption(records: Sequence[dict[str, Any]], conf: float) -> str:
    outcomes = ", ".join(outcome_label(r) for r in records)
    r0 = records[0]
    n = sorted({r.get("n") for r in records if r.get("n") is not None})
    n_text = f"n = {n[0]}" if len(n) == 1 else f"n = {n[0]}\u2013{n[-1]}"
    return (f"Simple mediation models of {outcomes} at {L.month_text(r0.get('outcome_month'))}, with team SMCM "
            f"fidelity ({L.window_text(r0.get('window_days'))} mean) as predictor and the working alliance (RPRS) "
            f"at {L.month_text(r0.get('mediator_month'))} as mediator ({n_text}). Paths show unstandardized "
            f"coefficients with the CI at the level matching the path's \u03b1 (99% where the ICC rule set "
            f"\u03b1 = .01); * and a solid arrow: significant at that \u03b1; dashed: not significant. ab: "
            f"indirect effect with its {level_text(conf)} percentile bootstrap CI ({r0.get('n_boot')} resamples).")


def _alt(record: dict[str, Any]) -> str:
    p, sig = record.get("paths") or {}, record.get("significant") or {}
    parts = [f"{name} = {fmt_num((p.get(key) or {}).get('coef'), 2)} "
             f"({'significant' if sig.get(key) else 'not significant'})"
             for key, name in (("a", "a"), ("b", "b"), ("c_prime", "direct effect"))]
    ind = record.get("indirect") or {}
    return (f"Path diagram, {diagram_title(record)}: {', '.join(parts)}; indirect effect "
            f"{fmt_num(ind.get('effect'), 3)} [{fmt_num(ind.get('ci_low'), 3)}, {fmt_num(ind.get('ci_high'), 3)}].")


def figure_specs(results: dict[str, Any], *, assessments: Any = None, covariates: Sequence[str] | None = None,
                 threshold: float | None = None, n_domains: int | None = None) -> list[FigureSpec]:
    """Every figure of the report, numbered as in a paper, as :class:`FigureSpec` (nothing drawn).

    Figure 1: the model. Figures 2, 3, ...: one multi-panel figure per outcome wave of the
    primary window (the paper's Figures 2 and 3: 9 and 18 months). Supplementary figures S1,
    S2, ...: the same for each sensitivity window, the forest plot of standardized indirect
    effects, mean scores by wave, team fidelity trajectories, then one diagram per model.
    """
    conf = stored_conf(results)
    covariates = list(covariates) if covariates is not None else list(DEFAULT_COVARIATES)
    cov_names = ", ".join(COVARIATE_LABELS.get(c, L.covariate_label(c)) for c in covariates)
    study_builders = study_figure_builders(assessments=assessments, covariates=covariates, threshold=threshold,
                                           n_domains=n_domains)
    main: list[tuple[str, str, str, str, Callable[[], Figure]]] = [(
        "model", "Simple mediation model (PROCESS Model 4)",
        "Team SMCM fidelity (X) predicts the client\u2013case manager working alliance (M) by path a; the alliance "
        f"predicts the client outcome (Y) by path b; c\u2032 is the direct effect of fidelity. The indirect effect "
        f"is ab. Both equations adjust for {len(covariates)} covariates: {cov_names}.",
        "Diagram: team fidelity (X) affects the working alliance (M) through path a; the alliance affects the client "
        "outcome (Y) through path b; the direct path from X to Y is c prime.", study_builders["model"])]
    supplement: list[tuple[str, str, str, str, Callable[[], Figure]]] = []
    ws = windows(results)
    from .parallel import is_parallel, parallel_figure_entries

    parallel = is_parallel(results)
    for w_i, w in enumerate(ws if not parallel else []):
        recs = [r for _, r in mediation_records(results, w)]
        months = sorted({float(r.get("outcome_month") or 0) for r in recs})
        for month in months:
            group = [r for r in recs if float(r.get("outcome_month") or 0) == month]
            title = (f"Mediation results at {L.month_text(month)}"
                     + ("" if w_i == 0 else f", {L.window_text(w)} fidelity window (sensitivity analysis)"))
            key = L.file_slug("mediation", L.month_text(month), L.window_text(w))
            alt = " ".join(_alt(r) for r in group)
            (main if w_i == 0 else supplement).append((key, title, _wave_caption(group, conf), alt,
                                                        partial(mediation_panels, group, conf=conf)))
    if results.get("mediation") and not parallel:
        supplement.append(("forest_indirect_std", "Completely standardized indirect effects",
                           f"Completely standardized indirect effect ab_cs of team fidelity through the working "
                           f"alliance with its {level_text(conf)} percentile bootstrap CI, for every outcome, wave and "
                           "fidelity window; filled markers: significant indirect effects.",
                           "Forest plot of completely standardized indirect effects with bootstrap intervals for every "
                           "outcome, wave and fidelity window.", partial(indirect_forest, results)))
    if (results.get("descriptives") or {}).get("table2"):
        supplement.append(("outcome_means", "Mean scores by wave",
                           "Mean of each study variable at each wave with its t-based 95% CI, from the n, M and SD of "
                           "Table 2 (observed scores).",
                           "Line charts of mean scores by wave with 95% confidence intervals, one panel per variable.",
                           partial(outcome_means, results)))
    if "fidelity_trajectories" in study_builders:
        supplement.append(("fidelity_trajectories", "Team SMCM fidelity over time",
                           "Each team's total SMCM fidelity score at each assessment (points) and the daily linear "
                           "interpolation between assessments from which the exposure windows are averaged (line); "
                           "the dashed line marks high fidelity.",
                           "Line charts of each team's total fidelity score at each assessment.",
                           study_builders["fidelity_trajectories"]))
    supplement += parallel_figure_entries(results) if parallel else []
    for _, rec in mediation_records(results) if not parallel else []:
        if rec.get("window_days") is None:
            continue
        supplement.append((figure_key(rec), f"Mediation model: {diagram_title(rec)}",
                           _wave_caption([rec], conf), _alt(rec), partial(mediation_diagram, rec, conf=conf)))
    out = []
    for k, (key, title, caption, alt, builder) in enumerate(main, start=1):
        out.append(FigureSpec(f"figure{k}_{key}", f"Figure {k}", title, caption, alt, builder, name=key))
    for k, (key, title, caption, alt, builder) in enumerate(supplement, start=1):
        out.append(FigureSpec(f"figureS{k:02d}_{key}", f"Figure S{k}", title, caption, alt, builder, name=key))
    return out


def study_figure_builders(*, assessments: Any = None, covariates: Sequence[str] | None = None,
                          threshold: float | None = None, n_domains: int | None = None
                          ) -> dict[str, Callable[[], Figure]]:
    """The builders of the figures that depend on the study alone, not on its results, by name.

    The conceptual model (``model``: the covariates) and, given assessments, the team fidelity
    trajectories (``fidelity_trajectories``). :func:`figure_specs` draws these two with the same
    builders, so a run can draw them before its analysis ends (:func:`render_builders`) and the
    report's files are the same bytes.
    """
    covariates = list(covariates) if covariates is not None else list(DEFAULT_COVARIATES)
    builders: dict[str, Callable[[], Figure]] = {"model": partial(conceptual_diagram, covariates)}
    if assessments is not None and (hasattr(assessments, "scored_fidelity") or len(assessments)):
        builders["fidelity_trajectories"] = partial(fidelity_trajectories, assessments, threshold=threshold,
                                                    n_domains=n_domains)
    return builders


def figure_catalog(results: dict[str, Any], *, assessments: Any = None, covariates: Sequence[str] | None = None,
                   threshold: float | None = None, n_domains: int | None = None) -> list[NumberedFigure]:
    """Every figure of the report, numbered as in a paper and drawn (see :func:`figure_specs`)."""
    return [NumberedFigure(s.key, s.number, s.title, s.caption, s.alt, s.build())
            for s in figure_specs(results, assessments=assessments, covariates=covariates, threshold=threshold,
                                  n_domains=n_domains)]


def build_figures(results: dict[str, Any], *, assessments: Any = None,
                  covariates: Sequence[str] | None = None, threshold: float | None = None,
                  n_domains: int | None = None) -> dict[str, Figure]:
    """Every figure of the report by file stem, in report order (see :func:`figure_catalog`)."""
    return {f.key: f.figure for f in figure_catalog(results, assessments=assessments, covariates=covariates,
                                                    threshold=threshold, n_domains=n_domains)}


# --------------------------------------------------------------------------- rendering

def render_figure(spec: FigureSpec) -> RenderedFigure:
    """Draw ``spec`` and return its bytes: PNG at :data:`PRINT_DPI`, SVG, and the inline PNG.

    One raster draw at print resolution gives the PNG file and, resampled, the inline image
    (:data:`INLINE_COLOURS`); one vector draw gives the SVG, on the layout of the raster draw.
    The bytes carry no date or software version: the same figure gives the same bytes.
    """
    fig = spec.build()
    try:
        if spec.files:
            image, png, svg = _print_files(fig, PRINT_DPI)
        else:
            with matplotlib.rc_context(_RC):
                image = _raster(fig, PRINT_DPI)
            png = svg = None
        return RenderedFigure(spec.key, png, svg, _inline(image, PRINT_DPI, SCREEN_DPI))
    finally:
        fig.clear()


def render_figure_task(task: Any) -> RenderedFigure:
    """:func:`render_figure` as a :mod:`fidelitymed.parallel` task, under the study's labels.

    ``task.payload`` is ``(spec, config)``. The declared instrument labels live in a context
    variable of the calling process, which a worker process does not share, so the worker enters
    ``study_labels(config)`` itself.
    """
    spec, config = task.payload
    with L.study_labels(config):
        return render_figure(spec)


def render_builders(builders: dict[str, Callable[[], Figure]]) -> dict[str, RenderedFigure]:
    """:func:`render_figure` of each builder, in this process, keyed by its name (for ``drawn=``)."""
    return {name: render_figure(FigureSpec(name, "", "", "", "", build, name=name))
            for name, build in builders.items()}


def render_figures(specs: Sequence[FigureSpec], config: Any, *, executor: Any = None,
                   drawn: dict[str, RenderedFigure] | None = None) -> list[RenderedFigure]:
    """:func:`render_figure` of every spec, in order, on ``executor`` (``None``: in this process).

    Parameters
    ----------
    specs
        From :func:`figure_specs` (and the report's other sections).
    config
        The study configuration (``StudyConfig`` or its dict): the figures are labelled as under
        ``study_labels(config)``, on any executor.
    executor
        A :class:`fidelitymed.parallel.Executor`; the figures come back as bytes, so its workers
        need not share this process's file system.
    drawn
        Figures already drawn, by spec name (:func:`render_builders` of
        :func:`study_figure_builders` with the same arguments as the specs): these specs are
        not drawn again.
    """
    from .. import parallel

    drawn = drawn or {}
    # the many small path diagrams (~0.09 s each) go last, after the panels (0.2-0.5 s): the
    # workers then run out of figures at nearly the same time (the demo study's two workers
    # had finished 0.3 s apart)
    todo = sorted((spec for spec in specs if spec.name not in drawn), key=lambda spec: spec.name.startswith(DIAGRAM_PREFIX))
    # the config rides in each payload rather than as the map's shared context: a new context
    # would restart a process pool's workers, and it is a few kB
    tasks = parallel.make_tasks({("figure", spec.key): (spec, config) for spec in todo}, seeded=False)
    fresh = dict(zip((spec.key for spec in todo),
                     (executor if executor is not None else parallel.Executor("serial")).map(render_figure_task, tasks),
                     strict=True))
    return [replace(drawn[spec.name], key=spec.key) if spec.name in drawn else fresh[spec.key] for spec in specs]
