"""The power-curve figure: power against N, with the Monte Carlo band of simulated power.

Drawn with matplotlib's object API on an Agg canvas (no pyplot state). Simulated points carry
their Clopper-Pearson 95% intervals; a fitted curve (the probit fit of
:func:`fidelitymed.sample_size_mediation`, or the exact noncentral-F power of
:func:`fidelitymed.power_regression`) is drawn as a line with its band, and the target power and
the chosen N as guide lines.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..errors import ConfigError  # noqa: E402
from ..study.io import atomic_path  # noqa: E402

__all__ = ["power_curve_figure", "save_power_curve"]

_INK = "#1a1a1a"
_ACCENT = "#1f5fa8"
_BAND = "#9dbbe0"
_RC = {"svg.fonttype": "none", "font.family": "DejaVu Sans", "font.size": 9,
       "svg.hashsalt": "fidelitymed"}


def power_curve_figure(points: pd.DataFrame | None = None, curve: pd.DataFrame | None = None, *,
                       target: float | None = None, n_chosen: float | None = None,
                       title: str = "Power against sample size",
                       label: str = "simulated power (95% MC interval)",
                       band_label: str = "fitted curve, 95% band") -> Figure:
    """Power against N.

    Parameters
    ----------
    points : DataFrame, optional
        Simulated power: columns ``n``, ``power``, ``ci_low``, ``ci_high``.
    curve : DataFrame, optional
        A curve through or fitted to the points: columns ``n``, ``power`` and optionally
        ``low``, ``high`` (its band, labelled ``band_label``).
    target : float, optional
        Target power (horizontal guide).
    n_chosen : float, optional
        The chosen sample size (vertical guide).
    title, label, band_label : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    if (points is None or points.empty) and (curve is None or curve.empty):
        raise ConfigError("power curve: nothing to draw; expected simulated points or a curve")
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(6.0, 3.8))
        ax = fig.add_subplot(1, 1, 1)
        if curve is not None and not curve.empty:
            if {"low", "high"} <= set(curve.columns):
                ax.fill_between(curve["n"], curve["low"], curve["high"], color=_BAND, alpha=0.45,
                                linewidth=0, label=band_label)
            ax.plot(curve["n"], curve["power"], color=_ACCENT, linewidth=1.6, label="power curve")
        if points is not None and not points.empty:
            yerr = np.vstack([points["power"] - points["ci_low"], points["ci_high"] - points["power"]])
            ax.errorbar(points["n"], points["power"], yerr=yerr, fmt="o", color=_INK, markersize=4,
                        capsize=3, linewidth=1, label=label)
        if target is not None:
            ax.axhline(target, color="#c2571a", linestyle="--", linewidth=1,
                       label=f"target power {target:g}")
        if n_chosen is not None:
            ax.axvline(n_chosen, color="#3a8a3a", linestyle=":", linewidth=1.2,
                       label=f"N = {n_chosen:g}")
        ax.set_xlabel("sample size N")
        ax.set_ylabel("power")
        ax.set_ylim(0, 1.0)
        ax.set_title(title)
        ax.grid(True, color="#e6e6e6", linewidth=0.6)
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(loc="lower right", frameon=False, fontsize=8)
        fig.tight_layout()
    return fig


def save_power_curve(fig: Figure, path: str | os.PathLike) -> Path:
    """Write the figure atomically as PNG or SVG (chosen by the suffix)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise ConfigError(f"--plot {path}: expected a file name ending in .png or .svg")
    with matplotlib.rc_context(_RC), atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=150, metadata={"Date": None} if fmt == "svg" else None)
    return path
