"""A stop that a signal asked for, kept where Python could lose it.

The command line turns SIGINT and SIGTERM into :class:`Interrupted`, raised by the signal
handler.  Python runs a handler in whatever Python code the main thread executes next, and
when that code is a ctypes callback -- numba's compile cache (llvmlite) notifies through one
while it compiles, i.e. on a fresh install -- the exception is printed as "Exception ignored on
calling ctypes callback function" and dropped: the run would go on and put its outputs in place
after it was told to stop.  So the handler also records the request here, and a run checks it
at every stage boundary and before anything is put in place (:func:`raise_if_requested`).

Without the command line's handler (the Python API) nothing is ever recorded and these checks
do nothing.
"""

from __future__ import annotations


class Interrupted(BaseException):
    """Ctrl-C (SIGINT) or SIGTERM while a command runs.

    A ``BaseException`` like ``KeyboardInterrupt``: every ``finally`` and ``with`` block unwinds
    (temporary outputs are removed) and no ``except Exception`` swallows it; unlike
    ``KeyboardInterrupt`` it passes through typer/click, which would turn it into a silent exit.
    """

    def __init__(self, signum: int, note: str = "no output written") -> None:
        super().__init__(signum, note)
        self.signum = signum
        self.note = note


_requested: int | None = None


def request(signum: int) -> None:
    """Record that signal ``signum`` asked the run to stop (called by the signal handler)."""
    global _requested
    _requested = int(signum)


def clear() -> None:
    """Forget a recorded request (a command starts and ends with none)."""
    global _requested
    _requested = None


def requested() -> int | None:
    """The signal number of a recorded request, or None."""
    return _requested


def raise_if_requested() -> None:
    """Raise :class:`Interrupted` if a signal asked to stop, even one whose own exception was lost."""
    if _requested is not None:
        raise Interrupted(_requested)
