"""``fidelitymed run STUDY --out DIR`` and ``fidelitymed demo --out DIR``: the whole study in one command."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from . import Interrupted, app


def _shown_path(path) -> str:
    """A path as the user would type it: relative to the working folder when it lies below it."""
    relative = os.path.relpath(os.path.abspath(path))
    return str(path) if relative.startswith("..") else relative


def _print_results(results, quiet: bool) -> None:
    from rich.console import Console

    from ..report.console import print_summary

    # a pipe or a log file gets the table unwrapped (rich assumes 80 columns off a terminal)
    console = Console(width=None if sys.stdout.isatty() else 100)
    if not quiet:
        print_summary(results.to_dict(), console)
        share = results.missing.get("overall_share")
        if share is not None:
            console.print(f"missing at the scale level: {100 * share:.1f}%")
    if results.report is not None:
        console.print(f"report: {_shown_path(results.report)}")
    if results.out is not None:
        console.print(f"outputs: {_shown_path(results.out)}")


def _executor_option(backend: str | None, workers: int | None, scheduler: str | None) -> dict | None:
    """The run's executor from the command's options (``None``: the study's own); on processes
    the fork server is started now, so it imports the analysis while this process imports its own
    (the pipeline ~0.7 s, and for ``demo`` the simulator's pandas ~0.3 s before that)."""
    if backend is None and workers is None and scheduler is None:
        return None
    executor = {"backend": backend or ("dask" if scheduler else "processes"), "workers": workers,
                "scheduler": scheduler}
    if executor["backend"] == "processes":
        from ..parallel import start_fork_server

        start_fork_server()
    return executor


def _run(study: Path, out: Path, *, force: bool, no_impute: bool, executor: dict | None, quiet: bool,
         imputations: int | None = None, n_boot: int | None = None, seed: int | None = None) -> None:
    from ..pipeline import run_study

    results = run_study(study, out=str(out), force=force, executor=executor, progress=not quiet,
                        impute=False if no_impute else None, imputations=imputations, n_boot=n_boot, seed=seed)
    try:
        _print_results(results, quiet)
    except Interrupted as exc:
        # the outputs are complete and in place: say so instead of "no output written"
        raise Interrupted(exc.signum, f"the outputs were written to {results.out}") from None


_OUT_HELP = ("Output folder (results.json, CSV, XLSX, report.html): new, empty, or one fidelitymed wrote "
             "(with --force); never the study folder or an input's folder.")
_FORCE_HELP = ("Replace an existing output folder that fidelitymed wrote (it carries a .fidelitymed-output "
               "marker); any other folder, file or link is never replaced.")
_BACKEND_HELP = "Where the model tasks run: serial, processes or dask (default: analysis.executor of study.yaml)."


@app.command("run")
def run(
    study: Path = typer.Argument(..., help="Study folder (or its study.yaml); see docs/study-format.md."),
    out: Path = typer.Option(..., "--out", help=_OUT_HELP),
    force: bool = typer.Option(False, "--force", help=_FORCE_HELP),
    no_impute: bool = typer.Option(False, "--no-impute", help="Listwise deletion instead of multiple imputation."),
    backend: str | None = typer.Option(None, "--backend", help=_BACKEND_HELP),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Worker processes (default: CPU count)."),
    scheduler: str | None = typer.Option(None, "--scheduler",
                                         help="Address of a running dask scheduler, e.g. tcp://HOST:8786."),
    imputations: int | None = typer.Option(None, "--imputations", min=2,
                                           help="Override analysis.imputations (m) of study.yaml."),
    n_boot: int | None = typer.Option(None, "--n-boot", min=1, help="Override analysis.n_boot of study.yaml."),
    seed: int | None = typer.Option(None, "--seed", min=0, help="Override analysis.seed of study.yaml."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars and no results table."),
) -> None:
    """Analyse a study end to end: imputation, the mediation models, ICCs, regressions, tables, report."""
    _run(study, out, force=force, no_impute=no_impute, executor=_executor_option(backend, workers, scheduler),
         quiet=quiet, imputations=imputations, n_boot=n_boot, seed=seed)


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo-report"), "--out", help=_OUT_HELP),
    force: bool = typer.Option(False, "--force", help=_FORCE_HELP),
    backend: str | None = typer.Option(None, "--backend", help=_BACKEND_HELP),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Worker processes (default: CPU count)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars and no results table."),
) -> None:
    """Run the whole study on the embedded demo study (simulated, n = 311)."""
    executor = _executor_option(backend, workers, None)   # before the simulator's imports
    from ..simulate import demo_study_path

    _run(demo_study_path(), out, force=force, no_impute=False, executor=executor, quiet=quiet)
