"""``fidelitymed template DIR`` and ``fidelitymed validate PATH``."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app


@app.command("template")
def template(directory: Path = typer.Argument(..., help="New (or empty) folder to write the template into.")) -> None:
    """Write an empty, commented study folder: study.yaml and the four tables' headers."""
    from ..study.template import write_template

    target = write_template(directory)
    typer.echo(f"wrote {target}/: study.yaml, teams.csv, fidelity.csv, clients.csv, interviews.csv")


@app.command("validate")
def validate(path: Path = typer.Argument(..., help="Study folder (or its study.yaml)."),
             no_impute: bool = typer.Option(False, "--no-impute",
                                            help="Check for a listwise run (fidelitymed run --no-impute).")) -> None:
    """Check a study folder: print every problem (file, row, column, value, expected) and exit 2, or a summary.

    Beyond the tables' rules it checks that `fidelitymed run` can fit every configured model.
    """
    from rich.console import Console
    from rich.table import Table

    from ..errors import FidelityMedError, StudyDataError
    from ..study.schema import load_study

    try:
        study = load_study(path, impute=False if no_impute else None)
    except StudyDataError as exc:
        count = f"{exc.total} problem{'s' if exc.total != 1 else ''}"
        typer.echo(f"{count} in {path} (rows counted as in a spreadsheet: header = row 1):")
        for issue in exc.issues:
            typer.echo(str(issue))
        listed = "listed above" if exc.total == len(exc.issues) else f"the first {len(exc.issues)} listed above"
        # a FidelityMedError (not typer.Exit) so that `main` turns it into exit status 2
        raise FidelityMedError(f"{path}: {count} ({listed}); fix them and validate again") from None
    d = study.to_dict()
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"[bold]{d['name']}[/bold]: valid ({path})")
    table = Table(show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("n", justify="right")
    table.add_row("teams", str(d["n_teams"]))
    table.add_row("fidelity assessments", str(d["n_assessments"]))
    table.add_row("clients", str(d["n_clients"]))
    table.add_row("case managers", str(d["n_case_managers"]))
    for wave, n in d["interviews_per_wave"].items():
        table.add_row(f"interviews at {wave} months", str(n))
    table.add_row("item cells missing (interviews held)", f"{100 * d['missing_item_share']:.1f}%")
    table.add_row("scale scores missing (all clients x waves)", f"{100 * d['missing_score_share']:.1f}%")
    console.print(table)
