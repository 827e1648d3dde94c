"""The ``fidelitymed`` command line: parse, call the public API, render with rich.

Each ``cli/cmd_*.py`` module registers its commands on :data:`app`; they are discovered here,
so commands can be added without editing this file. User errors
(:class:`~fidelitymed.errors.FidelityMedError`) print one line and exit 2; bugs keep their
traceback. Ctrl-C and SIGTERM (what ``timeout``, ``kill`` and batch schedulers send) unwind the
same way -- every temporary output is removed -- print one line and exit 130 and 143.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import signal
import sys
import threading

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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that every ``finally`` and ``with`` cleans up."""


def _raise_terminated(signum: int, frame: object) -> None:
    if os.getpid() != _MAIN_PID:
        # a child forked with this handler (not ours to clean up): die of the signal as usual
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise Terminated()


_MAIN_PID = os.getpid()


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Turn SIGTERM into :class:`Terminated` while the command runs (main thread only; restored after)."""
    global _MAIN_PID
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _MAIN_PID = os.getpid()
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(exc: KeyboardInterrupt) -> int:
    """One line for Ctrl-C / SIGTERM; exit status 128 + the signal's number (130, 143), as a shell reports it."""
    terminated = isinstance(exc, Terminated)
    # a command that has already written its outputs says where (cmd_run); otherwise nothing was
    what = exc.args[0] if exc.args and isinstance(exc.args[0], str) else "no output written"
    sys.stderr.write(f"interrupted{' (SIGTERM)' if terminated else ''}: {what}\n")
    return 128 + int(signal.SIGTERM if terminated else signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    try:
        with _sigterm_as_interrupt():
            returned = app(args=argv, standalone_mode=False)
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except FidelityMedError as exc:
        message = str(exc)
        sys.stderr.write(f"error: {message}\n")
        return 2
    except typer.Exit as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # typer turns an interrupt into Exit(130)
            return _interrupted(exc.__cause__)
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
