"""The ``fidelitymed`` command line: parse, call the public API, render with rich.

Each ``cli/cmd_*.py`` module registers its commands on :data:`app`; they are discovered here,
so commands can be added without editing this file. User errors
(:class:`~fidelitymed.errors.FidelityMedError`) print one line and exit 2; bugs keep their
traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from ..errors import FidelityMedError

app = typer.Typer(
    name="fidelitymed",
    help="Team fidelity -> working alliance -> client outcome studies: scoring, exposure, "
    "imputation, PROCESS Model 4 mediation, nested-data checks, power and reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context,
          version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        from .. import __version__

        typer.echo(__version__)
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("cmd_")):
    importlib.import_module(f"{__name__}.{_module}")


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    try:
        returned = app(args=argv, standalone_mode=False)
    except FidelityMedError as exc:
        message = str(exc)
        sys.stderr.write(f"error: {message}\n")
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        sys.stderr.write("aborted\n")
        return 1
    except Exception as exc:
        # Usage errors of typer's (vendored) click arrive here in non-standalone mode.
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            return 2 if exc.exit_code == 1 else exc.exit_code
        raise
    # In non-standalone mode click returns the exit code of `raise typer.Exit(n)` instead of exiting.
    return returned if isinstance(returned, int) else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
