"""``fidelitymed power regression|mediation``: power and sample size for planning a study."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from ..errors import ConfigError
from . import app
from .options import conf_fraction

power_app = typer.Typer(
    name="power",
    help="Power and sample size: regression F tests (G*Power convention) and Monte Carlo power "
         "for the indirect effect.",
    no_args_is_help=True,
)
app.add_typer(power_app, name="power")


@contextlib.contextmanager
def _progress_bar(description: str, quiet: bool) -> Iterator[Any]:
    """A rich bar fed by ``callback(done, total)``; a no-op when quiet."""
    if quiet:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=False) as prog:
        state: dict[str, Any] = {"task": None, "round": 0, "last_done": None}

        def callback(done: int, total: int) -> None:
            # each batch of blocks (one N, or one round of a search) restarts the count
            if state["task"] is None or (state["last_done"] is not None and done <= state["last_done"]
                                         and done == 1):
                state["round"] += 1
                label = description if state["round"] == 1 else f"{description} ({state['round']})"
                state["task"] = prog.add_task(label, total=total)
            state["last_done"] = done
            prog.update(state["task"], completed=done, total=total)

        yield callback


def _write_outputs(payload: dict, json_out: Path | None, fig_factory, plot: Path | None) -> None:
    from ..study.io import write_json

    if json_out is not None:
        write_json(json_out, payload)
        typer.echo(f"wrote {json_out}", err=True)
    if plot is not None:
        from ..report.power_curve import save_power_curve

        save_power_curve(fig_factory(), plot)
        typer.echo(f"wrote {plot}", err=True)


def _check_plot(plot: Path | None) -> None:
    if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
        raise ConfigError(f"--plot {plot}: expected a file name ending in .png or .svg")


@power_app.command("regression")
def regression(
    f2: float = typer.Option(..., "--f2", help="Cohen's f² of the tested predictors (R²-change / (1 - R²))."),
    predictors: int = typer.Option(1, "--predictors", min=1, help="Predictors in the full model."),
    tested: int = typer.Option(1, "--tested", min=1, help="Predictors tested together (numerator df)."),
    n: int | None = typer.Option(None, "--n", help="Total sample size: compute its power."),
    power: float = typer.Option(0.8, "--power", help="Target power when --n is not given."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the result as JSON."),
    plot: Path | None = typer.Option(None, "--plot", help="Write the power curve (.png or .svg)."),
) -> None:
    """Power (with --n) or sample size (otherwise) of the regression F test, as G*Power computes it
    (lambda = f² N, df = tested, N - predictors - 1)."""
    import numpy as np
    import pandas as pd

    from ..stats.power import power_regression, sample_size_regression

    _check_plot(plot)
    if n is not None:
        result: Any = power_regression(f2, n, predictors, tested, alpha)
        n_mark, target = result.n, None
    else:
        result = sample_size_regression(f2, power, predictors, tested, alpha)
        n_mark, target = result.n, result.target_power
    typer.echo(result.summary())

    def figure():
        from ..report.power_curve import power_curve_figure

        top = max(int(n_mark * 2), predictors + 12)
        grid = np.unique(np.linspace(predictors + 2, top, 200).astype(int))
        curve = pd.DataFrame({"n": grid, "power": [power_regression(f2, int(k), predictors, tested,
                                                                    alpha).power for k in grid]})
        return power_curve_figure(curve=curve, target=target, n_chosen=n_mark,
                                  title=f"F test of {tested} of {predictors} predictors, "
                                        f"f² = {f2:g}, α = {alpha:g}")

    _write_outputs(result.to_dict(), json_out, figure, plot)


@power_app.command("mediation")
def mediation(
    a: float = typer.Option(..., "--a", help="Path X -> M (standardized unless --effects unit_residual)."),
    b: float = typer.Option(..., "--b", help="Path M -> Y given X (standardized unless --effects unit_residual)."),
    n: list[int] | None = typer.Option(None, "--n", help="Sample size(s) to simulate (repeat for a "
                                                          "curve); without --n the N for --power is searched."),
    power: float = typer.Option(0.8, "--power", help="Target power when --n is not given."),
    c_prime: float = typer.Option(0.0, "--c-prime", help="Direct effect X -> Y (scaled as --a, --b)."),
    effects: str = typer.Option("standardized", "--effects",
                                help="standardized (var(M) = var(Y) = 1) | unit_residual (raw paths, "
                                     "error variances 1, as Fritz & MacKinnon 2007)."),
    method: str = typer.Option("percentile", "--method",
                               help="percentile | bca | monte_carlo | joint."),
    n_boot: int = typer.Option(1000, "--n-boot", help="Bootstrap resamples (or Monte Carlo draws) per replicate."),
    n_rep: int = typer.Option(1000, "--n-rep", help="Simulated data sets (per N)."),
    conf: float = typer.Option(0.95, "--conf", help="Confidence level of the CI, a fraction (0.95); a percent "
                                                    "(95) is converted."),
    alpha: float = typer.Option(0.05, "--alpha", help="Level of the joint-significance tests."),
    seed: int | None = typer.Option(None, "--seed", min=0, help="Random seed (default: fresh entropy, reported)."),
    covariates_r2: float = typer.Option(0.0, "--covariates-r2", help="Variance of M and Y explained by covariates."),
    n_covariates: int = typer.Option(1, "--n-covariates", min=1, help="Number of covariates sharing --covariates-r2."),
    icc: float = typer.Option(0.0, "--icc", help="Residual ICC of M and Y (random intercepts)."),
    n_clusters: int | None = typer.Option(None, "--n-clusters", help="Clusters the clients are spread over."),
    x_level: str = typer.Option("client", "--x-level", help="client | cluster (X constant within a cluster, "
                                                            "e.g. team fidelity)."),
    backend: str = typer.Option("serial", "--backend", help="serial | processes | dask."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Worker processes (processes/dask)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the result as JSON."),
    plot: Path | None = typer.Option(None, "--plot", help="Write the power curve (.png or .svg)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Monte Carlo power of the indirect effect a*b at given N, or the N for a target power."""
    import numpy as np
    import pandas as pd

    from ..stats.power import power_mediation, sample_size_mediation

    _check_plot(plot)
    conf = conf_fraction(conf)
    common = dict(c_prime=c_prime, method=method, n_boot=n_boot, n_rep=n_rep, conf=conf,
                  alpha=alpha, covariates_r2=covariates_r2, n_covariates=n_covariates, icc=icc,
                  n_clusters=n_clusters, x_level=x_level, executor=backend, workers=workers,
                  effects=effects)
    title = f"Indirect effect, a = {a:g}, b = {b:g}, {method}"
    if n:
        from ..seeding import root_sequence

        root = root_sequence(seed)  # one root for every N, reported as seed_entropy
        results = []
        with _progress_bar("replicate blocks", quiet) as callback:
            for size in sorted(set(n)):
                results.append(power_mediation(a, b, size, seed=root, progress=callback, **common))
        typer.echo("\n\n".join(r.summary() for r in results))
        payload: dict = results[0].to_dict() if len(results) == 1 else {
            "results": [r.to_dict() for r in results]}
        points = pd.DataFrame([r.to_dict() for r in results])

        def figure():
            from ..report.power_curve import power_curve_figure

            curve = None
            if len(points) > 1:  # the Monte Carlo band joins the points' 95% intervals
                curve = points[["n", "power", "ci_low", "ci_high"]].rename(
                    columns={"ci_low": "low", "ci_high": "high"})
            return power_curve_figure(points, curve, title=title,
                                      band_label="Monte Carlo 95% band")
    else:
        with _progress_bar("replicate blocks", quiet) as callback:
            result = sample_size_mediation(a, b, power=power, seed=seed, progress=callback, **common)
        typer.echo(result.summary())
        payload = result.to_dict()

        def figure():
            from ..report.power_curve import power_curve_figure

            frame = result.to_frame()
            grid = np.linspace(frame["n"].min() * 0.9, frame["n"].max() * 1.1, 200)
            low, high = result.fitted_band(grid)
            curve = pd.DataFrame({"n": grid, "power": result.fitted_power(grid), "low": low,
                                  "high": high})
            return power_curve_figure(frame, curve, target=power, n_chosen=result.n, title=title)

    _write_outputs(payload, json_out, figure, plot)
