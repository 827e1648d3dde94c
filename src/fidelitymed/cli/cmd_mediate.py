"""``fidelitymed mediate``: PROCESS Model 4 on one data file (CSV, XLSX, SAV or DTA)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ConfigError
from . import app
from .options import CONF_HELP, conf_fraction


def _names(text: str | None) -> list[str]:
    if not text:
        return []
    return [part.strip() for part in text.split(",") if part.strip()]


def _covariate_map(text: str | None) -> dict[str, list[str]] | None:
    """``age=mediators,site=mediators+outcome`` -> ``{"age": ["mediators"], "site": ["mediators", "outcome"]}``."""
    if not text:
        return None
    out = {}
    for part in _names(text):
        name, sep, where = part.partition("=")
        if not sep or not name.strip() or not where.strip():
            raise ConfigError(f"--covariate-map entries are COVARIATE=EQUATIONS (mediators, outcome or "
                              f"mediators+outcome); got {part!r}")
        out[name.strip()] = [w.strip() for w in where.split("+")]
    return out


_CI_ALIASES = {"mc": "monte_carlo", "monte-carlo": "monte_carlo", "montecarlo": "monte_carlo"}


@app.command("mediate")
def mediate_command(
    data: Path = typer.Argument(..., help="Data file: .csv, .xlsx, .sav (SPSS) or .dta (Stata).",
                                show_default=False),
    x: str = typer.Option(..., "--x", help="Antecedent X (e.g. team fidelity).", show_default=False),
    m: str = typer.Option(..., "--m", help="Mediator M (e.g. working alliance), or 2-10 parallel mediators, "
                                           "comma-separated.", show_default=False),
    y: str = typer.Option(..., "--y", help="Outcome Y.", show_default=False),
    cov: str = typer.Option(None, "--cov", help="Covariates, comma-separated (in every equation unless "
                                                "--covariates-in / --covariate-map)."),
    cat: str = typer.Option(None, "--cat", help="Which covariates are categorical (dummy-coded, first "
                                                 "level = reference), comma-separated."),
    boot: int = typer.Option(5000, "--boot", help="Bootstrap resamples (0 = none)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the resampling (default: fresh entropy, "
                                                  "printed so the run can be repeated)."),
    conf: float = typer.Option(0.95, "--conf", help=CONF_HELP),
    hc: str = typer.Option(None, "--hc", help="Heteroscedasticity-consistent SEs: HC0, HC1, HC2, HC3 or HC4; "
                                              "CR2 with --cluster (Bell-McCaffrey, Satterthwaite df)."),
    cluster: str = typer.Option(None, "--cluster", help="Column of cluster labels for cluster-robust "
                                                        "(CR1, or CR2 with --hc CR2) SEs of the paths."),
    ci: str = typer.Option("percentile", "--ci", help="CI of the indirect effects: percentile, bc, bca "
                                                      "(bootstrap) or monte_carlo (PROCESS mc=)."),
    n_mc: int = typer.Option(5000, "--n-mc", help="Monte Carlo draws with --ci monte_carlo."),
    contrast: bool = typer.Option(False, "--contrast",
                                  help="Pairwise contrasts of the specific indirect effects (2+ mediators; "
                                       "PROCESS contrast=1)."),
    contrast_absolute: bool = typer.Option(False, "--contrast-absolute",
                                           help="Contrasts of the absolute values of the specific indirect "
                                                "effects (PROCESS contrast=2)."),
    covariates_in: str = typer.Option("all", "--covariates-in",
                                      help="Equations the covariates enter: all, mediators or outcome "
                                           "(PROCESS covmy=0/1/2)."),
    covariate_map: str = typer.Option(None, "--covariate-map",
                                      help="Per-covariate equations, e.g. 'age=mediators,site=mediators+outcome' "
                                           "(PROCESS cmatrix)."),
    boot_coefficients: bool = typer.Option(False, "--boot-coefficients",
                                           help="Bootstrap every regression coefficient (PROCESS modelbt=1)."),
    standardized: bool = typer.Option(False, "--standardized",
                                      help="Standardized regression coefficients (PROCESS stand=1)."),
    binary_y: bool = typer.Option(None, "--binary-y/--linear-y",
                                  help="Logistic or OLS outcome equation; default: logistic when Y has exactly "
                                       "two values (as PROCESS), with a note."),
    normal: bool = typer.Option(False, "--normal", help="Add the normal-theory (Sobel, second-order) test."),
    process_compat: bool = typer.Option(False, "--process-compat",
                                        help="PROCESS's order-statistic percentile limits and t approximation."),
    impute: int = typer.Option(0, "--impute", min=0,
                               help="Multiple imputation (MICE-PMM): number of imputations, >= 2 (0 = listwise)."),
    pool: str = typer.Option(None, "--pool", help="With --impute: pooling of the indirect effect's CI: boot_mi "
                                                   "(default with one mediator), stacked (default with parallel "
                                                   "mediators) or rubin_mc."),
    json_out: Path = typer.Option(None, "--json", help="Also write the results as JSON to this file."),
) -> None:
    """Mediation (PROCESS Model 4): one or parallel mediators, paths a, b, c', c, CIs of the indirect effects."""
    from ..stats.mediation import mediate
    from ..study.io import read_table, write_json

    conf = conf_fraction(conf)
    hc_arg = None
    if hc is not None:
        hc_arg = hc.strip().upper()
        if hc_arg.isdigit():
            hc_arg = f"HC{hc_arg}"
    mediators = _names(m)
    ci_arg = ci.strip().lower()
    ci_arg = _CI_ALIASES.get(ci_arg, ci_arg)
    contrast_arg = "absolute" if contrast_absolute else bool(contrast)
    frame = read_table(data)
    result = mediate(frame, x=x, m=mediators[0] if len(mediators) == 1 else mediators, y=y, covariates=_names(cov),
                     categorical=_names(cat), n_boot=boot, conf=conf, seed=seed, hc=hc_arg, cluster=cluster,
                     ci=ci_arg, normal=normal, process_compat=process_compat, impute=impute or None,
                     pool=pool.strip().lower() if pool is not None else None, contrast=contrast_arg,
                     covariates_in=covariates_in.strip().lower(),
                     covariate_map=_covariate_map(covariate_map), n_mc=n_mc, boot_coefficients=boot_coefficients,
                     standardized=standardized, binary_y=binary_y)
    typer.echo(result.summary(), nl=False)
    if json_out is not None:
        write_json(json_out, result.to_dict())
        typer.echo(f"wrote {json_out}", err=True)
