"""``fidelitymed mediate``: PROCESS Model 4 on one data file (CSV, XLSX, SAV or DTA)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ConfigError
from . import app


def _names(text: str | None) -> list[str]:
    if not text:
        return []
    return [part.strip() for part in text.split(",") if part.strip()]


@app.command("mediate")
def mediate_command(
    data: Path = typer.Argument(..., help="Data file: .csv, .xlsx, .sav (SPSS) or .dta (Stata).",
                                show_default=False),
    x: str = typer.Option(..., "--x", help="Antecedent X (e.g. team fidelity).", show_default=False),
    m: str = typer.Option(..., "--m", help="Mediator M (e.g. working alliance).", show_default=False),
    y: str = typer.Option(..., "--y", help="Outcome Y.", show_default=False),
    cov: str = typer.Option(None, "--cov", help="Covariates, comma-separated (in all three equations)."),
    cat: str = typer.Option(None, "--cat", help="Which covariates are categorical (dummy-coded, first "
                                                 "level = reference), comma-separated."),
    boot: int = typer.Option(5000, "--boot", help="Bootstrap resamples (0 = none)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the resampling (default: fresh entropy, "
                                                  "printed so the run can be repeated)."),
    conf: float = typer.Option(95.0, "--conf", help="Confidence level in percent (0-100)."),
    hc: str = typer.Option(None, "--hc", help="Heteroscedasticity-consistent SEs: HC0, HC1, HC2, HC3 or HC4."),
    cluster: str = typer.Option(None, "--cluster", help="Column of cluster labels for cluster-robust "
                                                        "(CR1) SEs of the paths."),
    ci: str = typer.Option("percentile", "--ci", help="Bootstrap CI: percentile, bc or bca."),
    normal: bool = typer.Option(False, "--normal", help="Add the normal-theory (Sobel, second-order) test."),
    process_compat: bool = typer.Option(False, "--process-compat",
                                        help="PROCESS's order-statistic percentile limits and t approximation."),
    impute: int = typer.Option(0, "--impute", min=0,
                               help="Multiple imputation (MICE-PMM): number of imputations, >= 2 (0 = listwise)."),
    pool: str = typer.Option("stacked", "--pool", help="With --impute: pooling of the indirect effect's CI: "
                                                       "stacked, boot_mi or rubin_mc."),
    json_out: Path = typer.Option(None, "--json", help="Also write the results as JSON to this file."),
) -> None:
    """Simple mediation (PROCESS Model 4): paths a, b, c', c and the bootstrap CI of ab."""
    from ..stats.mediation import mediate
    from ..study.io import read_table, write_json

    if not 0.0 < conf < 100.0:
        raise ConfigError(f"--conf is a percentage strictly between 0 and 100 (e.g. 95); got {conf:g}")
    if conf <= 1.0:
        raise ConfigError(f"--conf is given in percent: did you mean {conf * 100:g}? got {conf:g}")
    hc_arg = None
    if hc is not None:
        hc_arg = hc.strip().upper()
        if hc_arg.isdigit():
            hc_arg = f"HC{hc_arg}"
    frame = read_table(data)
    result = mediate(frame, x=x, m=m, y=y, covariates=_names(cov), categorical=_names(cat), n_boot=boot,
                     conf=conf / 100.0, seed=seed, hc=hc_arg, cluster=cluster, ci=ci.strip().lower(),
                     normal=normal, process_compat=process_compat, impute=impute or None,
                     pool=pool.strip().lower())
    typer.echo(result.summary(), nl=False)
    if json_out is not None:
        write_json(json_out, result.to_dict())
        typer.echo(f"wrote {json_out}", err=True)
