"""A short results table for the terminal (rich): the primary window's mediation models.

``fidelitymed run`` and ``fidelitymed demo`` print it after writing the report. Numbers are
formatted exactly as in the HTML report (:mod:`fidelitymed.report.tables`).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from .tables import PRIME, fmt_num, mediation_records, month_label, outcome_label, primary_window


def summary_table(results: dict[str, Any]) -> Table:
    """The paths a, b, c′ and the indirect effect (with its CI and ab_cs) of the primary window."""
    window = primary_window(results)
    table = Table(title=f"Mediation (PROCESS Model 4), {window}-day fidelity window" if window else "Mediation",
                  title_justify="left", caption="* significant under the path's adjusted alpha; "
                  "ab: percentile bootstrap CI", caption_justify="left")
    table.add_column("Outcome")
    table.add_column("Month", justify="right")
    table.add_column("n", justify="right")
    for name in ("a", "b", f"c{PRIME}"):
        table.add_column(name, justify="right")
    table.add_column("ab [95% CI]", justify="right")
    table.add_column("ab_cs", justify="right")
    for _, r in mediation_records(results, window):
        paths, sig = r.get("paths") or {}, r.get("significant") or {}

        def coef(key: str) -> str:
            text = fmt_num((paths.get(key) or {}).get("coef"), 3)
            return f"[bold]{text}*[/bold]" if sig.get(key) else text

        ind, std = r.get("indirect") or {}, r.get("indirect_std") or {}
        ab = (f"{fmt_num(ind.get('effect'), 3)} [{fmt_num(ind.get('ci_low'), 3)}, "
              f"{fmt_num(ind.get('ci_high'), 3)}]")
        if sig.get("indirect"):
            ab = f"[bold green]{ab}*[/bold green]"
        table.add_row(outcome_label(r),
                      month_label(r.get("outcome_month")), str(r.get("n", "")), coef("a"), coef("b"),
                      coef("c_prime"), ab, fmt_num(std.get("effect"), 3))
    return table


def print_summary(results: dict[str, Any], console: Console | None = None) -> None:
    """Print :func:`summary_table` and the report's warnings (few teams, R-hat ≥ 1.1) to ``console``."""
    from .html import report_warnings

    console = console or Console()
    console.print(summary_table(results))
    for warning in report_warnings(results):
        console.print(f"[bold yellow]warning:[/bold yellow] {warning}", highlight=False)
