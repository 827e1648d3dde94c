"""One self-contained HTML report from ``results.json`` (jinja2, autoescaped).

:func:`render_report` writes into ``out_dir``:

- ``report.html``: every figure inlined as a base64 PNG, CSS inline, no script, font or
  image from anywhere else, so it reads offline and prints (print CSS);
- ``figures/<name>.png`` and ``.svg``: every figure, one results diagram per model;
- ``tables.xlsx`` and ``tables.docx``: the APA tables.

Every number in the HTML is formatted from the results dict and carries the JSON pointer of
its source (``<span class="num" data-path="/mediation/3/paths/a/coef">``), so a test can
match the page against ``results.json`` number by number. No client or case-manager
identifier is read: tables take whitelisted fields only, and the manifest shows hashes of
the inputs, never their contents.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup, escape

from ..study.io import write_text
from .. import labels as L
from . import figures as F
from . import tables as T
from .methods import config_dict, methods_text
from .domains import domain_heatmap_spec, domains_section_html
from .multilevel import multilevel_figure_spec, multilevel_section

TEMPLATE_DIR = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class FigureItem:
    key: str
    title: str
    alt: str
    png_b64: str
    files: tuple[str, str]
    number: str = ""
    caption: str = ""


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                              autoescape=jinja2.select_autoescape(["html", "j2", "html.j2"], default=True),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _number_helper(results: dict[str, Any]):
    """Template function: the value at a JSON pointer, formatted, tagged with its pointer."""

    def n(ptr: str, kind: str = "num3") -> Markup:
        try:
            value = T.resolve_pointer(results, ptr)
        except (KeyError, IndexError, TypeError, ValueError):
            value = None
        text = T.format_value(value, kind)
        if value is None:
            return Markup(escape(text))
        return Markup('<span class="num" data-path="{}" data-kind="{}">{}</span>').format(ptr, kind, text)

    return n


def _cell_html(cell: Sequence[T.Fragment]) -> Markup:
    parts = []
    for frag in cell:
        if frag.source is not None:
            parts.append(Markup('<span class="num" data-path="{}" data-kind="{}">{}</span>').format(
                frag.source, frag.kind, frag.text))
        elif frag.text == "*":
            parts.append(Markup('<span class="sig">*</span>'))
        else:
            parts.append(escape(frag.text))
    return Markup("").join(parts)


def _table_view(table: T.ReportTable) -> dict[str, Any]:
    numeric = [c.kind not in ("text",) for c in table.columns]
    return {"key": table.key, "number": table.number, "title": table.title, "note": table.note,
            "groups": table.groups() if any(c.group for c in table.columns) else None,
            "headers": [c.header for c in table.columns], "numeric": numeric,
            "rows": [[_cell_html(cell) for cell in row] for row in table.cells()]}


def _scrub(value: Any, depth: int = 0) -> Any:
    """Settings for display: identifier-like keys dropped, long lists shortened."""
    if isinstance(value, dict):
        return {k: _scrub(v, depth + 1) for k, v in value.items() if not T.is_identifier_key(k)}
    if isinstance(value, (list, tuple)):
        if len(value) > 12:
            return f"[{len(value)} values]"
        return [_scrub(v, depth + 1) for v in value]
    return value


def _display(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_display(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_display(v) for v in value) + "]"
    if value is None:
        return T.DASH
    return str(value)


def _load_assessments(fidelity_assessments: Any) -> Any:
    if fidelity_assessments is None:
        return None
    if hasattr(fidelity_assessments, "scored_fidelity"):  # a StudyData: the module scores it
        return fidelity_assessments
    if isinstance(fidelity_assessments, (str, os.PathLike)):
        from ..study.io import read_table

        fidelity_assessments = read_table(fidelity_assessments)
    frame = pd.DataFrame(fidelity_assessments)
    # only team-level columns travel on; a case-manager or client column is dropped here
    return frame[[c for c in frame.columns if not T.is_identifier_key(c)]]


def _imputation_diagnostics(results: dict[str, Any], top: int = 12) -> dict[str, Any] | None:
    """Imputation settings and convergence (R-hat) from ``results["imputation"]``, if present.

    Only the ``top`` variables with the largest R-hat are tabulated (the full list stays in
    results.json), to 3 significant digits, values >= 1.1 flagged.
    """
    info = results.get("imputation")
    if not isinstance(info, dict) or not info:
        return None
    settings = [(k, f"/imputation/{k}") for k in ("m", "chains", "iterations", "donors")
                if isinstance(info.get(k), (int, float)) and not isinstance(info.get(k), bool)]
    conv = info.get("convergence") if isinstance(info.get("convergence"), dict) else {}
    max_rhat = "/imputation/convergence/max_rhat" if isinstance(conv.get("max_rhat"), (int, float)) else None
    rhat = T.rhat_table(results, top=top)
    table = _table_view(rhat) if len(rhat.frame) else None
    method = info.get("method") if isinstance(info.get("method"), str) else None
    return {"settings": settings, "max_rhat": max_rhat, "table": table, "method": method,
            "flagged": T.rhat_flagged(results)}


def normalize_results(results: Any) -> dict[str, Any]:
    """The dict exactly as results.json holds it (numpy scalars -> Python, NaN -> None).

    Accepts a ``StudyResults`` (anything with ``to_dict()``) or the dict itself, so the JSON
    pointers of the report resolve identically in the file the pipeline wrote.
    """
    import json

    from ..study.io import json_safe

    if hasattr(results, "to_dict") and not isinstance(results, dict):
        results = results.to_dict()
    return json.loads(json.dumps(json_safe(results), allow_nan=False))


def render_report(results: dict[str, Any], out_dir: str | os.PathLike, *,
                  fidelity_assessments: pd.DataFrame | str | os.PathLike | None = None,
                  config: Any = None, min_cell: int | None = None, executor: Any = None,
                  drawn: dict[str, F.RenderedFigure] | None = None,
                  meanwhile: Callable[[], None] | None = None) -> Path:
    """Write the HTML report, the figures (PNG/SVG) and the APA tables (XLSX/DOCX) to ``out_dir``.

    Parameters
    ----------
    results
        The ``results.json`` dict (``docs/results-schema.md``).
    out_dir
        Output folder (created if missing); files in it with the same names are replaced.
    fidelity_assessments
        Optional table (or path) of team fidelity assessments: ``team``, ``date``, ``total``
        and domain scores, for the trajectory figure.
    config
        The study configuration (``StudyConfig`` or its dict); defaults to the manifest's copy.
    min_cell
        Table 1 small-cell threshold; defaults to ``analysis.small_cell_threshold`` of the
        configuration, else 5. 0 turns suppression off.
    executor
        A :class:`fidelitymed.parallel.Executor` whose workers draw the figures (they return
        bytes; the files are written here). ``None`` draws them in this process; the files are
        byte-identical either way.
    drawn
        The figures :func:`draw_study_figures` drew for the same ``config`` and
        ``fidelity_assessments`` (before the results existed); they are not drawn again.
    meanwhile
        Work for this process while the executor's workers draw the figures, before the tables
        are written (a study run writes its other result files there). Called once, also
        without an executor (after the figures are drawn).

    Returns
    -------
    Path
        The path of ``report.html``.
    """
    from ..labels import study_labels

    # a study's declared instruments (instruments.<name>.label) are labelled as declared everywhere
    with study_labels(config_dict(config, normalize_results(results))):
        return _render(results, out_dir, fidelity_assessments=fidelity_assessments, config=config, min_cell=min_cell,
                       executor=executor, drawn=drawn, meanwhile=meanwhile)


def draw_study_figures(config: Any, fidelity_assessments: pd.DataFrame | str | os.PathLike | None = None,
                       names: Sequence[str] | None = None) -> dict[str, F.RenderedFigure]:
    """Draw, in this process, the report's figures that need no results: for ``render_report(drawn=...)``.

    The conceptual model (``"model"``) and the team fidelity trajectories
    (``"fidelity_trajectories"``) depend on the configuration and the assessments alone
    (:func:`fidelitymed.report.figures.study_figure_builders`). A study run draws them while a
    process pool's workers are still starting, where this process would otherwise wait.
    ``config`` is the study configuration the report will be rendered with; ``names`` picks
    some of these figures (``None``: all).
    """
    if config is None:
        from ..errors import ConfigError

        raise ConfigError("draw_study_figures needs the study configuration the report is rendered with")
    cfg = config_dict(config, {})
    with L.study_labels(cfg):
        builders = F.study_figure_builders(**_figure_inputs(cfg, {}, _load_assessments(fidelity_assessments)))
        if names is not None:
            builders = {name: build for name, build in builders.items() if name in names}
        return F.render_builders(builders)


def _figure_inputs(cfg: dict[str, Any], results: dict[str, Any], assessments: Any) -> dict[str, Any]:
    """The study-level arguments of the figures: assessments, covariates, the threshold line, the domains."""
    covariates = (cfg.get("analysis") or {}).get("covariates") if isinstance(cfg.get("analysis"), dict) else None
    if covariates is None:
        recs = results.get("mediation") or []
        covariates = recs[0].get("covariates") if recs and recs[0].get("covariates") else None
    fid_cfg = (cfg.get("scoring") or {}).get("fidelity") if isinstance(cfg.get("scoring"), dict) else None
    threshold = n_domains = None
    if isinstance(fid_cfg, dict):
        threshold = fid_cfg.get("high_fidelity_threshold")
        if isinstance(fid_cfg.get("domains"), dict):
            n_domains = len([d for d in fid_cfg["domains"] if d not in (fid_cfg.get("excluded_domains") or [])])
    return {"assessments": assessments, "covariates": covariates, "threshold": threshold, "n_domains": n_domains}


def _render(results: dict[str, Any], out_dir: str | os.PathLike, *, fidelity_assessments: Any, config: Any,
            min_cell: int | None, executor: Any, drawn: dict[str, F.RenderedFigure] | None,
            meanwhile: Callable[[], None] | None = None) -> Path:
    results = normalize_results(results)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = config_dict(config, results)
    if min_cell is None:
        min_cell = int(((cfg.get("analysis") or {}).get("small_cell_threshold")
                        if isinstance(cfg.get("analysis"), dict) and
                        cfg["analysis"].get("small_cell_threshold") is not None else T.DEFAULT_MIN_CELL))

    # ---- figures: files + inline PNG
    fig_dir = out_dir / "figures"
    specs = F.figure_specs(results, **_figure_inputs(cfg, results, _load_assessments(fidelity_assessments)))
    multilevel_spec = multilevel_figure_spec(results)
    heatmap_spec = domain_heatmap_spec(results.get("domains"))
    section_specs = [s for s in (multilevel_spec, heatmap_spec) if s is not None]
    views: dict[str, Any] = {}
    ws = T.windows(results)

    def write_tables() -> None:
        # built here, while the workers draw: the workers need none of it, and this process
        # would otherwise do it after the last figure with both workers idle
        if meanwhile is not None:
            meanwhile()
        tables = T.all_tables(results, min_cell=min_cell)
        T.write_xlsx(tables, out_dir / "tables.xlsx", results=results)
        T.write_docx(tables, out_dir / "tables.docx", heading=f"{_study_name(cfg)}: tables")
        views["tables"] = {t.key: _table_view(t) for t in tables}
        by_key = {t.key: t for t in tables}
        views["alpha_primary"] = (_table_view(replace(T.alpha_decisions_table(results, ws[0]),
                                                      number=by_key["alpha_decisions"].number))
                                  if ws and "alpha_decisions" in by_key else None)
        views["template"] = _environment().get_template("report.html.j2")

    # one batch for every figure of the report; the workers return bytes, the files are written here
    rendered = _render_figures_meanwhile(specs + section_specs, cfg, executor, write_tables, drawn)
    for r in rendered.values():
        if r.png is not None:
            F.write_figure_files(fig_dir / r.key, r.png, r.svg)  # 300 dpi PNG + SVG for the journal
    items: dict[str, FigureItem] = {}
    for spec in specs:
        b64 = base64.b64encode(rendered[spec.key].inline_png).decode("ascii")  # screen resolution inline
        items[spec.key] = FigureItem(spec.key, spec.title, spec.alt, b64,
                                     (f"figures/{spec.key}.png", f"figures/{spec.key}.svg"), spec.number, spec.caption)

    # ---- table views
    table_views = views["tables"]
    diag = _imputation_diagnostics(results)
    mediation_sections = []
    for w in ws:
        suffix = "_" + L.file_slug(L.window_text(w))
        panels = [f for k, f in items.items() if "_mediation_" in k and k.endswith(suffix)]
        models = [f for k, f in items.items() if "_diagram_" in k and k.endswith(suffix)]
        mediation_sections.append({"window": w, "primary": w == (ws[0] if ws else None),
                                   "table": table_views.get(f"mediation_{w}d"), "figures": panels,
                                   "model_figures": models})
    methods = methods_text(results, cfg)
    manifest = results.get("manifest") or {}
    settings = _scrub(manifest.get("settings") or {})
    context = {
        "study_name": _study_name(cfg),
        "version": manifest.get("fidelitymed"),
        "results": results,
        "n": _number_helper(results),
        "summary": _summary(results),
        "missing_share_ptr": "/missing/overall_share" if (results.get("missing") or {}).get("overall_share")
        is not None else None,
        "tables": table_views,
        "mediation_sections": mediation_sections,
        "alpha_primary": views["alpha_primary"],
        "figures": {k.split("_", 1)[1] if k.startswith("figureS") else k: v for k, v in items.items()},
        "diag": diag,
        "warnings": report_warnings(results),
        "methods": methods,
        "manifest": {
            "rows": [(k, _display(manifest.get(k))) for k in ("study", "fidelitymed", "python", "seed", "config_hash", "executor")
                     if manifest.get(k) is not None],
            "settings": [(k, _display(v)) for k, v in settings.items()],
            "inputs": sorted((str(k), str(v)) for k, v in (manifest.get("inputs") or {}).items()),
            "packages": sorted((str(k), str(v)) for k, v in (manifest.get("packages") or {}).items()),
        },
        "min_cell": min_cell,
        "files": [f"figures/{p.name}" for p in sorted(fig_dir.glob("*.png"))] + ["tables.xlsx", "tables.docx"],
        "pct": lambda x: T.fmt_num(100 * x, 1) if x is not None else T.DASH,
        "labels": T.PATH_LABELS,
        "multilevel": multilevel_section(results, fig_dir, rendered[multilevel_spec.key] if multilevel_spec else None),
        "domains_html": domains_section_html(results.get("domains"),
                                             rendered[heatmap_spec.key].inline_png if heatmap_spec else None),
    }
    html = views["template"].render(**context)
    path = out_dir / "report.html"
    write_text(path, html)
    return path


def _render_figures_meanwhile(specs: Sequence[F.FigureSpec], cfg: dict[str, Any], executor: Any,
                              work: Callable[[], None], drawn: dict[str, F.RenderedFigure] | None
                              ) -> dict[str, F.RenderedFigure]:
    """The rendered figures by key; ``work()`` runs in this process meanwhile.

    On a parallel executor the map is waited on from a thread, so this process writes the tables
    while the workers draw (on two cores that hid about 0.6 s of the demo study's 1.6 s of XLSX
    and DOCX); drawn in this process, the figures come first (a thread would only share the GIL).
    """
    if executor is None or executor.backend == "serial":
        figures = F.render_figures(specs, cfg, drawn=drawn)
        work()
    else:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fidelitymed-figures") as waiter:
            pending = waiter.submit(F.render_figures, specs, cfg, executor=executor, drawn=drawn)
            work()
            figures = pending.result()
    return {r.key: r for r in figures}


def _study_name(cfg: dict[str, Any]) -> str:
    name = cfg.get("name") if isinstance(cfg, dict) else None
    return str(name) if name else "Fidelity \u2192 alliance \u2192 outcome study"


def _summary(results: dict[str, Any]) -> dict[str, Any]:
    """Facts for the study summary, each with the JSON pointer of its number."""
    ws = T.windows(results)
    recs = results.get("mediation") or []
    primary = ws[0] if ws else None
    rows = []
    for i, r in T.mediation_records(results, primary):
        sig = r.get("significant") or {}
        rows.append({"label": T.outcome_label(r),
                     "month": T.month_label(r.get("outcome_month")), "i": i,
                     "a_sig": bool(sig.get("a")), "b_sig": bool(sig.get("b")), "ind_sig": bool(sig.get("indirect")),
                     "has_std": (r.get("indirect_std") or {}).get("effect") is not None})
    n_idx = max(range(len(recs)), key=lambda k: recs[k].get("n") or 0) if recs else None
    return {"n_models": len(recs), "windows": ws, "primary": primary, "rows": rows, "n_idx": n_idx,
            "n_sig": sum(r["ind_sig"] for r in rows),
            "outcomes": list(dict.fromkeys(r["label"] for r in rows)),
            "scheme": next((r.get("imputation_scheme") for r in recs if r.get("imputation_scheme")), None),
            "n_boot_idx": next((k for k, r in enumerate(recs) if r.get("n_boot") is not None), None)}


MIN_TEAMS = 20  # fewer clusters than this: cluster-robust and single-level SEs are unreliable


def teams_supplying_x(results: dict[str, Any]) -> int | None:
    """Number of teams whose fidelity is the predictor X (the team level of the ICC models)."""
    counts = [int(n) for r in results.get("icc") or []
              if isinstance(n := T._get(r, "levels", "team", "n_groups"), (int, float)) and not isinstance(n, bool)]
    return max(counts) if counts else None


def report_warnings(results: dict[str, Any]) -> list[str]:
    """Warnings a reader must see: few teams supplying X, unconverged imputation chains."""
    out = []
    n_teams = teams_supplying_x(results)
    if n_teams is not None and n_teams < MIN_TEAMS:
        out.append(f"The predictor X (team SMCM fidelity) is supplied by only {n_teams} teams (fewer than "
                   f"{MIN_TEAMS}): paths a and c\u2032 rest on {n_teams} independent fidelity values, so their "
                   "single-level standard errors can be too small. Read them with the multilevel mediation results "
                   "(clients nested in case managers and teams).")
    flagged = T.rhat_flagged(results)
    if flagged:
        out.append(f"Imputation chains have not converged (R-hat \u2265 {T.RHAT_LIMIT:g}) for: {', '.join(flagged)}. "
                   "Rerun with more imputation iterations before reporting.")
    return out
