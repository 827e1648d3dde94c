"""Report section: single-level (PROCESS, OLS) and multilevel (nested random intercepts) side by side.

Reads the ``mediation`` and ``multilevel`` records of ``results.json`` for the primary fidelity
window and builds a table, one figure (paths a and b with their CIs under both models, per
outcome and month) and sentences naming each model where the two analyses reach different
conclusions.  The comparison pairs the single-level ``a`` with ``a_between`` (fidelity is a team
property: its effect can only be identified between teams), the single-level ``b`` with
``b_within`` and ``b_between``, and the bootstrap indirect effect with ``indirect_between``.
"""

from __future__ import annotations

import base64
from functools import partial
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from . import figures as F

__all__ = ["multilevel_figure_spec", "multilevel_section", "paths_figure"]

_ALPHA = 0.05


def _fmt(v: Any, digits: int = 2) -> str:
    return "–" if v is None else f"{float(v):.{digits}f}"


def _p(v: Any) -> str:
    if v is None:
        return "–"
    return "< .001" if v < 0.001 else f"{v:.3f}".replace("0.", ".", 1)


def _ci(d: dict | None) -> str:
    if not d:
        return "–"
    return f"[{_fmt(d.get('ci_low'))}, {_fmt(d.get('ci_high'))}]"


def _excludes_zero(d: dict | None) -> bool | None:
    if not d or d.get("ci_low") is None or d.get("ci_high") is None:
        return None
    return d["ci_low"] > 0 or d["ci_high"] < 0


def _pairs(results: dict[str, Any]) -> list[tuple[dict, dict]]:
    single = {(r["outcome"], r["outcome_month"], r["window_days"]): r for r in results.get("mediation") or []}
    out = []
    for r in results.get("multilevel") or []:
        if not r.get("primary_window", True):
            continue
        key = (r["outcome"], r["outcome_month"], r["window_days"])
        if key in single:
            out.append((single[key], r))
    return out


def _label(rec: dict) -> str:
    return f"{rec.get('outcome_label', rec['outcome'])}, {rec['outcome_month']} mo"


def _table(pairs: list[tuple[dict, dict]]) -> dict[str, Any]:
    headers = ["Outcome", "a (OLS)", "a between (MLM)", "df", "b (OLS)", "b within (MLM)", "b between (MLM)",
               "ab (OLS, bootstrap CI)", "ab between (MLM, MC CI)"]
    rows = []
    for single, ml in pairs:
        sp, mp = single["paths"], ml["paths"]
        a_b = mp.get("a_between") or mp.get("a")
        rows.append([
            _label(single),
            f"{_fmt(sp['a']['coef'])} {_ci(sp['a'])}, p {_p(sp['a']['p'])}",
            f"{_fmt(a_b['coef'])} {_ci(a_b)}, p {_p(a_b['p'])}",
            _fmt(a_b.get("df"), 1),
            f"{_fmt(sp['b']['coef'])} {_ci(sp['b'])}",
            f"{_fmt((mp.get('b_within') or mp.get('b'))['coef'])} {_ci(mp.get('b_within') or mp.get('b'))}",
            f"{_fmt(mp['b_between']['coef'])} {_ci(mp['b_between'])}" if "b_between" in mp else "–",
            f"{_fmt(single['indirect']['effect'], 3)} {_ci(single['indirect'])}",
            (lambda e: f"{_fmt(e['effect'], 3)} {_ci(e)}")(ml["indirect"].get("indirect_between")
                                                            or ml["indirect"].get("indirect")),
        ])
    first = pairs[0][1] if pairs else {}
    groups = " and ".join(first.get("groups", ["team"]))
    note = (f"Primary fidelity window. MLM: random intercepts for {groups} (REML), X and M centred within "
            f"teams (between = team mean, within = deviation); df Satterthwaite"
            + (", pooled over imputations with Rubin's rules (Barnard-Rubin df)" if first.get("imputations") else "")
            + "; indirect-effect CI: Monte Carlo from the (pooled) paths. OLS: the PROCESS models above.")
    return {"key": "multilevel_comparison", "number": "Table ML", "title": "Single-level and multilevel "
            "estimates of the mediation paths", "groups": None, "headers": headers,
            "numeric": [False] + [True] * (len(headers) - 1), "rows": rows, "note": note}


def paths_figure(pairs: list[tuple[dict, dict]]) -> Figure:
    """Paths a and b with their CIs, OLS beside the multilevel estimates, one row per (single, multilevel) pair."""
    n = len(pairs)
    fig = F._figure(7.0, 1.5 + 0.42 * n)
    axes = fig.subplots(1, 2, sharey=True)
    ys = list(range(n))[::-1]
    series = {"a": [("OLS", lambda s, m: s["paths"]["a"], "o", "#555555"),
                    ("MLM between", lambda s, m: m["paths"].get("a_between") or m["paths"].get("a"), "s", F.ACCENT)],
              "b": [("OLS", lambda s, m: s["paths"]["b"], "o", "#555555"),
                    ("MLM within", lambda s, m: m["paths"].get("b_within") or m["paths"].get("b"), "s", F.ACCENT),
                    ("MLM between", lambda s, m: m["paths"].get("b_between"), "D", "#c2571a")]}
    for ax, (path, specs) in zip(axes, series.items()):
        offsets = [0.22 * (k - (len(specs) - 1) / 2) for k in range(len(specs))]
        for (label, get, marker, colour), off in zip(specs, offsets):
            xs, lo, hi, yy = [], [], [], []
            for y, (single, ml) in zip(ys, pairs):
                d = get(single, ml)
                if d:
                    xs.append(d["coef"])
                    lo.append(d["coef"] - d["ci_low"])
                    hi.append(d["ci_high"] - d["coef"])
                    yy.append(y - off)
            ax.errorbar(xs, yy, xerr=[lo, hi], fmt=marker, color=colour, ms=4, lw=1, capsize=2, label=label)
        ax.axvline(0, color="#999999", lw=0.8, ls="--")
        ax.set_title(f"path {path}")
        ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.08),
                  ncol=len(specs))
    axes[0].set_yticks(ys, [_label(s) for s, _ in pairs])
    fig.set_layout_engine("constrained")
    return fig


def _figure_spec(pairs: list[tuple[dict, dict]]) -> F.FigureSpec:
    return F.FigureSpec(
        key="multilevel_paths", number="", caption="",
        title="Paths a and b with 95% CIs: single-level OLS and multilevel (between / within teams), primary "
              "fidelity window",
        alt="Two dot-and-whisker panels, path a and path b, one row per outcome and month; OLS estimates beside "
            "multilevel between-team and within-team estimates with their confidence intervals.",
        builder=partial(paths_figure, pairs))


def multilevel_figure_spec(results: dict[str, Any]) -> F.FigureSpec | None:
    """The section's figure as a :class:`~fidelitymed.report.figures.FigureSpec` (``None``: no multilevel records)."""
    pairs = _pairs(results)
    return _figure_spec(pairs) if pairs else None


def _differences(pairs: list[tuple[dict, dict]]) -> list[str]:
    out = []
    for single, ml in pairs:
        mp = ml["paths"]
        checks = [("path a", single["paths"]["a"], mp.get("a_between") or mp.get("a"), "a between teams"),
                  ("path b", single["paths"]["b"], mp.get("b_within") or mp.get("b"), "b within teams"),
                  ("the indirect effect", single["indirect"],
                   ml["indirect"].get("indirect_between") or ml["indirect"].get("indirect"),
                   "the between-team indirect effect")]
        for what, s, m, m_label in checks:
            s_sig, m_sig = _excludes_zero(s), _excludes_zero(m)
            if s_sig is None or m_sig is None or s_sig == m_sig:
                continue
            out.append(f"{_label(single)}: {what} is {'' if s_sig else 'not '}distinguishable from 0 in the "
                       f"single-level model ({_ci(s)}) but {m_label} is {'' if m_sig else 'not '}in the multilevel "
                       f"model ({_ci(m)}" + (f", df {_fmt(m.get('df'), 1)}" if m.get("df") is not None else "") + ").")
    return out


def multilevel_section(results: dict[str, Any], fig_dir: Path,
                       rendered: F.RenderedFigure | None = None) -> dict[str, Any] | None:
    """Context of the report's multilevel section, or ``None`` when results.json has no multilevel records.

    ``rendered`` is the figure of :func:`multilevel_figure_spec` when the caller rendered it (and
    wrote its files into ``fig_dir``) with the report's other figures; without it the figure is
    drawn and written here.
    """
    pairs = _pairs(results)
    if not pairs:
        return None
    fig_dir.mkdir(parents=True, exist_ok=True)
    spec = _figure_spec(pairs)
    if rendered is None:
        rendered = F.render_figure(spec)
        F.write_figure_files(fig_dir / spec.key, rendered.png, rendered.svg)
    figure = {"key": spec.key, "title": spec.title, "alt": spec.alt,
              "png_b64": base64.b64encode(rendered.inline_png).decode("ascii"),
              "files": (f"figures/{spec.key}.png", f"figures/{spec.key}.svg")}
    differences = _differences(pairs)
    return {"table": _table(pairs), "figure": figure, "differences": differences,
            "n_models": len(pairs), "notes": sorted({n for _, ml in pairs for n in ml.get("notes", [])})}
