"""Report section of the fidelity-domain analysis: a heat map and a table (issue 14).

Reads only ``results["domains"]`` (:meth:`fidelitymed.stats.domains.DomainResults.to_dict`):

* :func:`domain_heatmap` -- domain x outcome-at-wave matrix of the completely standardized
  indirect effects (Hayes 2022, s. 3.5) of the separate models, on a diverging scale centred
  at 0; a star marks an indirect effect whose joint-significance test survives the
  adjustment across domains;
* :func:`domain_table` -- one row per model with the indirect effect, its CI adjusted across
  domains, the standardized effect and the raw and adjusted p-values;
* :func:`domains_section_html` -- both as an HTML fragment for the report (the figure inlined
  as a PNG data URI), with the collinearity diagnostics of the simultaneous model when run.
"""

from __future__ import annotations

import base64
import html
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from .figures import FigureSpec, _figure, figure_png_bytes
from .tables import OUTCOME_LABELS, fmt_num, fmt_p, month_label

_ADJUST_NAMES = {"holm": "Holm", "fdr_bh": "Benjamini-Hochberg (FDR)"}


def domain_label(domain: str) -> str:
    """``community_contact`` -> ``community contact``."""
    return domain.replace("_", " ")


def _outcome_column(record: dict[str, Any]) -> str:
    return f"{OUTCOME_LABELS.get(record['outcome'], record['outcome'])}, {month_label(record['outcome_month'])} m"


def _matrix(domains: dict[str, Any], value: str = "std") -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [r for r in domains.get("models", []) if r.get("model") == "separate"]
    if not rows:
        return pd.DataFrame(), pd.DataFrame()
    frame = pd.DataFrame({"domain": [r["domain"] for r in rows], "column": [_outcome_column(r) for r in rows],
                          "value": [(r["indirect_std"] if value == "std" else r["indirect"])["effect"] for r in rows],
                          "star": [bool(r.get("significant_adj")) for r in rows]})
    order = [d for d in domains.get("domains", []) if d in set(frame["domain"])]
    columns = list(dict.fromkeys(frame["column"]))
    values = frame.pivot(index="domain", columns="column", values="value").reindex(index=order, columns=columns)
    stars = frame.pivot(index="domain", columns="column", values="star").reindex(index=order, columns=columns)
    return values.astype(float), stars.fillna(False).astype(bool)


def domain_heatmap(domains: dict[str, Any]) -> Figure:
    """Heat map of the standardized indirect effects: fidelity domain (rows) x outcome at wave (columns)."""
    values, stars = _matrix(domains)
    n_rows, n_cols = max(len(values.index), 1), max(len(values.columns), 1)
    fig = _figure(3.6 + 1.0 * n_cols, 1.6 + 0.38 * n_rows)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot(1, 1, 1)
    if values.empty:
        ax.text(0.5, 0.5, "no domain models", ha="center", va="center")
        ax.set_axis_off()
        return fig
    data = values.to_numpy(dtype=float)
    finite = data[np.isfinite(data)]
    limit = float(np.max(np.abs(finite))) if finite.size else 1.0
    limit = limit if limit > 0 else 1.0
    image = ax.imshow(np.ma.masked_invalid(data), cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -limit, limit),
                      aspect="auto")
    ax.set_xticks(range(n_cols), list(values.columns), rotation=30 if n_cols > 3 else 0,
                  ha="right" if n_cols > 3 else "center")
    ax.set_yticks(range(n_rows), [domain_label(d) for d in values.index])
    for i in range(n_rows):
        for j in range(n_cols):
            v = data[i, j]
            text = "." if not np.isfinite(v) else f"{v:.3f}" + ("*" if stars.iloc[i, j] else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if np.isfinite(v) and abs(v) > 0.6 * limit else "#1a1a1a")
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    bar = fig.colorbar(image, ax=ax, fraction=0.08, pad=0.04)
    bar.set_label("completely standardized ab", fontsize=8)
    adjust = _ADJUST_NAMES.get(domains.get("adjust"), domains.get("adjust"))
    ax.set_title("Indirect effect of each fidelity domain through the alliance", fontsize=9)
    ax.set_xlabel(f"* joint test significant after {adjust} adjustment across domains", fontsize=8)
    return fig


def domain_table(domains: dict[str, Any]) -> pd.DataFrame:
    """The section's table: one row per domain model, formatted for the report."""
    rows = []
    for r in domains.get("models", []):
        ind = r["indirect"]
        rows.append({"model": r["model"], "outcome": _outcome_column(r), "domain": domain_label(r["domain"]),
                     "n": r["n"], "a": fmt_num(r["paths"]["a"]["coef"]), "b": fmt_num(r["paths"]["b"]["coef"]),
                     "ab": fmt_num(ind["effect"]),
                     f"CI (adjusted, {100 * r['conf_adj']:.2f}%)": f"[{fmt_num(ind['ci_low_adj'])}, "
                                                                   f"{fmt_num(ind['ci_high_adj'])}]",
                     "ab std": fmt_num(r["indirect_std"]["effect"]),
                     "p joint": fmt_p(r["p_joint"]), "p adjusted": fmt_p(r["p_joint_adj"]),
                     "significant": "yes" if r["significant_adj"] else "no"})
    return pd.DataFrame(rows)


_HEATMAP_ALT = "heat map of the standardized indirect effects by fidelity domain and outcome"


def domain_heatmap_spec(domains: dict[str, Any] | None) -> FigureSpec | None:
    """The section's heat map as an inline-only :class:`~fidelitymed.report.figures.FigureSpec` (``None``: not run)."""
    if not domains or not domains.get("models"):
        return None
    return FigureSpec(key="fidelity_domains_heatmap", number="", title="Fidelity domains", caption="",
                      alt=_HEATMAP_ALT, builder=partial(domain_heatmap, domains), files=False)


def domains_section_html(domains: dict[str, Any] | None, heatmap_png: bytes | None = None) -> str:
    """The HTML fragment of the domain section ("" when the analysis was not run).

    ``heatmap_png``: the inline image of :func:`domain_heatmap_spec` when the caller rendered it
    with the report's other figures; without it the heat map is drawn here.
    """
    if not domains or not domains.get("models"):
        return ""
    if heatmap_png is None:
        heatmap_png = figure_png_bytes(domain_heatmap(domains))
    png = base64.b64encode(heatmap_png).decode("ascii")
    adjust = _ADJUST_NAMES.get(domains.get("adjust"), domains.get("adjust"))
    parts = ['<section id="fidelity-domains">', "<h2>Fidelity domains, alliance and outcomes</h2>",
             f"<p>One PROCESS Model 4 per fidelity domain, outcome and wave: the domain's exposure over the "
             f"{int(domains['window_days'])}-day window before the alliance interview as X. p-values and the CIs "
             f"of the indirect effects are adjusted across the {len(domains.get('domains', []))} domains "
             f"({html.escape(str(adjust))}).</p>",
             f'<img alt="{_HEATMAP_ALT}" src="data:image/png;base64,{png}"/>',
             domain_table(domains).to_html(index=False, escape=True, border=0, classes="table")]
    for c in domains.get("collinearity", []):
        vifs = ", ".join(f"{html.escape(domain_label(d))} {v:.2f}" for d, v in c["vif"].items())
        parts.append(f"<p>Simultaneous model, {html.escape(OUTCOME_LABELS.get(c['outcome'], c['outcome']))} "
                     f"{month_label(c['outcome_month'])}: condition number {c['condition_number']:.1f}; "
                     f"VIF {vifs}.</p>")
    parts.append("</section>")
    return "\n".join(parts)
