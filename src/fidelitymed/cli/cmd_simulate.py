"""``fidelitymed simulate``: write a synthetic study folder with known true effects."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app


@app.command("simulate")
def simulate(
    out: Path = typer.Option(..., "--out", help="Study folder to write (must be new or empty, unless --force)."),
    seed: int = typer.Option(..., "--seed", min=0, help="Random seed; the same seed gives byte-identical files."),
    clients: int = typer.Option(311, "--clients", min=1, help="Number of clients (the study: 311)."),
    teams: int = typer.Option(14, "--teams", min=1, help="Number of case-management teams (the study: 14)."),
    missing_share: float = typer.Option(0.116, "--missing-share", min=0.0, max=0.99,
                                        help="Share of scheduled scale scores missing, attrition included "
                                             "(the study: 0.116)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing non-empty folder."),
) -> None:
    """Simulate a complete study (study.yaml, four tables, truth.json) in the documented format."""
    from ..simulate import simulate_study

    study = simulate_study(out, seed=seed, n_clients=clients, n_teams=teams, missing_share=missing_share,
                           force=force)
    typer.echo(study.summary())
