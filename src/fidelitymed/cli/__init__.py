"""The ``fidelitymed`` command line: parse, call the public API, render with rich.

Each ``cli/cmd_*.py`` module registers its commands on :data:`app`; they are discovered here,
so commands can be added without editing this file. User errors
(:class:`~fidelitymed.errors.FidelityMedError`) print one line and exit 2; bugs keep their
traceback. Ctrl-C and SIGTERM (what ``timeout``, ``kill`` and batch schedulers send) unwind the
same way -- every temporary output is removed -- print one line and exit 130 and 143.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import pkgutil
import signal
import sys
import threading

import typer
from typer.core import TyperOption

from .. import interrupt
from ..errors import FidelityMedError
from ..interrupt import Interrupted  # noqa: F401 - the commands import it from here

_display_type_rich = TyperOption.display_type_rich


def _no_flag_placeholder(self: TyperOption, ctx):  # noqa: ANN001 - typer's signature
    """Typer prints ``<bool>`` beside every flag in ``--help``; a flag takes no value, so show none."""
    return None if self.is_flag else _display_type_rich(self, ctx)


TyperOption.display_type_rich = _no_flag_placeholder

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


def _raise_interrupted(signum: int, frame: object) -> None:
    if os.getpid() != _MAIN_PID:
        # a child forked with this handler (not ours to clean up): die of the signal as usual
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    # recorded first: raised inside a ctypes callback the exception is lost (see fidelitymed.interrupt)
    interrupt.request(signum)
    raise Interrupted(signum)


_MAIN_PID = os.getpid()
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _signals_as_interrupted():
    """Turn SIGINT and SIGTERM into :class:`Interrupted` while the command runs (main thread; restored after)."""
    global _MAIN_PID
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _MAIN_PID = os.getpid()
    interrupt.clear()
    previous = {s: signal.signal(s, _raise_interrupted) for s in _SIGNALS}
    previous_hook = sys.unraisablehook

    def quiet_lost_interruption(unraisable) -> None:
        # Interrupted raised where Python cannot propagate it (a ctypes callback of numba's
        # compiler): already recorded, and the run stops at its next check; no traceback
        if isinstance(unraisable.exc_value, Interrupted):
            return
        previous_hook(unraisable)

    sys.unraisablehook = quiet_lost_interruption
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sys.unraisablehook = previous_hook
        interrupt.clear()


def _interrupted(exc: Interrupted) -> int:
    """One line; exit status 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM), as a shell reports it."""
    name = "" if exc.signum == signal.SIGINT else f" ({signal.Signals(exc.signum).name})"
    sys.stderr.write(f"interrupted{name}: {exc.note}\n")
    return 128 + int(exc.signum)


# the commands: after Interrupted, which cmd_run uses
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.startswith("cmd_")):
    importlib.import_module(f"{__name__}.{_module}")


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    try:
        with _signals_as_interrupted():
            returned = app(args=argv, standalone_mode=False)
    except Interrupted as exc:
        return _interrupted(exc)
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


def console_main() -> int:
    """The ``fidelitymed`` script and ``python -m fidelitymed``: :func:`main`, then a shutdown
    without the interpreter's last garbage collections.

    After the command returns, Python's shutdown runs full cyclic garbage collections over every
    object still alive -- numpy, pandas, matplotlib, numba and the run's results: 0.5-0.6 s on one
    core after a demo study's outputs are in place (measured: the process ended 0.64 s after
    ``main`` returned, 0.11 s with this). The process is about to end, every output is already
    written, closed and moved into place, and its memory returns to the OS with it, so the
    objects are moved out of the collector's reach (:func:`gc.freeze`). ``atexit`` handlers and
    module finalisation still run. Not done by :func:`main`, which tests and other programs call
    in a process that goes on.
    """
    code = main()
    gc.disable()
    gc.freeze()
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(console_main())
