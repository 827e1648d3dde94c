"""Writing outputs safely: atomic files, output folders fidelitymed owns, spreadsheet-safe text.

Three promises, each kept here and nowhere else:

- **No half-written file.** :func:`atomic_path` writes beside the target and renames into place.
- **Nothing removed that fidelitymed did not write.** An output folder is built in a temporary
  sibling (``.NAME.fidelitymed-tmp-*``) and renamed onto ``NAME`` at the end
  (:class:`OutputFolder`). Every folder written this way carries a marker file,
  ``.fidelitymed-output``, listing what was written. ``force=True`` replaces only a folder
  carrying that marker and holding nothing else; a folder without it, a file or a symbolic
  link is refused even with ``force``. A folder that is, contains or lies inside a protected
  folder (the study's, an input file's) is refused, with paths resolved through symbolic links.
  Runs into one target exclude each other through a lock (``flock`` on ``.NAME.lock`` beside
  the target; the kernel releases it when the process dies, so a crash never blocks the next
  run). Temporary folders left by a killed run carry the marker and are removed by the next
  run into the same target. This follows git and rsync: refuse rather than guess.
- **No live formula in a spreadsheet.** Text cells beginning with ``=``, ``+``, ``-``, ``@``, tab
  or carriage return get a leading ``'`` (:func:`neutralise_formula_text`), as the OWASP
  "CSV Injection" guidance recommends; numbers are never touched.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from .. import interrupt
from ..errors import ConfigError

__all__ = ["FORMULA_PREFIXES", "MARKER_NAME", "OutputFolder", "atomic_directory", "atomic_path",
           "json_safe", "neutralise_formula_text", "neutralise_frame", "write_json", "write_table", "write_text"]

#: the file that marks a folder as written by fidelitymed (and lists what it wrote)
MARKER_NAME = ".fidelitymed-output"
MARKER_FORMAT = "fidelitymed-output/1"
_TEMP_TAG = "fidelitymed-tmp-"
_OLD_TAG = "fidelitymed-old-"

#: first characters that make a spreadsheet read a text cell as a formula (OWASP, "CSV Injection")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


# ============================================================================ files

@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; the finished file should get the user's usual permissions.
    os.chmod(tmp, 0o666 & ~_current_umask())
    try:
        yield tmp
        interrupt.raise_if_requested()  # told to stop (see fidelitymed.interrupt): the old file stays
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write text atomically (UTF-8, ``\\n`` line ends)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically, keys in insertion order, NaN written as ``null``."""
    write_text(path, json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays as Python values and NaN/inf as ``None`` (JSON null)."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (pd.Timestamp,)):
        return obj.isoformat()
    return obj


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``frame`` to CSV, XLSX, SAV or DTA by suffix, atomically.

    CSV and XLSX text cells that a spreadsheet would run as a formula are neutralised
    (:func:`neutralise_frame`); SAV and DTA are not spreadsheets and are written as given.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            neutralise_frame(frame).to_csv(tmp, index=False, lineterminator="\n")
        elif suffix == ".xlsx":
            neutralise_frame(frame).to_excel(tmp, index=False, engine="openpyxl")
        elif suffix == ".sav":
            import pyreadstat

            pyreadstat.write_sav(frame, str(tmp))
        elif suffix == ".dta":
            import pyreadstat

            pyreadstat.write_dta(frame, str(tmp))
        else:
            raise ValueError(f"unsupported table suffix {suffix!r}")


# ============================================================================ formula injection

def neutralise_formula_text(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is text a spreadsheet would run as a formula.

    Text beginning with ``=``, ``+``, ``-``, ``@``, tab or carriage return is prefixed with a
    single quote, so Excel, LibreOffice and Google Sheets show it as text (OWASP, "CSV
    Injection"). Anything that is not a ``str`` -- numbers (negative ones included), booleans,
    missing values -- is returned unchanged.
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every text cell and column name passed through :func:`neutralise_formula_text`.

    Numeric columns are left as they are (a number never becomes text).
    """
    out = frame.copy()
    for j in range(out.shape[1]):
        column = out.iloc[:, j]
        if column.dtype == object or isinstance(column.dtype, (pd.StringDtype, pd.CategoricalDtype)):
            out.isetitem(j, column.map(neutralise_formula_text))
    out.columns = [neutralise_formula_text(c) for c in out.columns]
    return out


# ============================================================================ output folders

def marker_payload(kind: str, files: Iterable[str] = ()) -> dict[str, Any]:
    """The marker's content: tool, version, format, kind of folder and what it holds (no timestamps)."""
    from .. import __version__

    return {"tool": "fidelitymed", "version": __version__, "format": MARKER_FORMAT, "kind": kind,
            "files": sorted(files)}


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The marker of ``folder`` if it has a valid one (a regular file written by fidelitymed), else ``None``."""
    marker = folder / MARKER_NAME
    if marker.is_symlink() or not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("tool") != "fidelitymed" or data.get("format") != MARKER_FORMAT:
        return None
    return data


def _tree(folder: Path) -> list[str]:
    """Every path below ``folder`` (files, folders and links), relative, ``/``-separated, sorted."""
    out = []
    for root, dirs, files in os.walk(folder):
        rel_root = Path(root).relative_to(folder)
        for name in [*dirs, *files]:
            out.append((rel_root / name).as_posix())
    return sorted(out)


def _is_within(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def _protection_problem(target: Path, protected: Iterable[tuple[str, str | os.PathLike]]) -> str | None:
    """Why ``target`` must not be written, given (label, folder) pairs, or ``None``."""
    # the target as named, as seen through its parent's links, and (if a link) where it points
    forms = {Path(os.path.abspath(target)), target.parent.resolve() / target.name, target.resolve()}
    for label, folder in protected:
        folder = Path(folder).resolve()
        for form in forms:
            if form == folder:
                return f"is {label} ({str(folder)!r})"
            if _is_within(form, folder):
                return f"lies inside {label} ({str(folder)!r})"
            if _is_within(folder, form):
                return f"contains {label} ({str(folder)!r})"
    return None


class OutputFolder:
    """One output folder: checked, locked, built in a temporary sibling, renamed into place.

    Use as a context manager; write into :attr:`tmp`, then call :meth:`commit`. Leaving the
    block without :meth:`commit` (an error, Ctrl-C, SIGTERM) removes the temporary folder, the
    lock file and any parent folders this object created, and leaves ``target`` untouched.

    Parameters
    ----------
    target
        The folder to write.
    force
        Replace an existing ``target`` -- only one that carries fidelitymed's marker of the same
        ``kind`` and holds nothing but what that marker lists.
    protected
        (label, folder) pairs that ``target`` must not be, contain or lie inside, e.g.
        ``("the study folder", root)``.
    kind
        What the folder holds (recorded in the marker): a run's results never replace a
        simulated study folder and vice versa.

    Raises
    ------
    ConfigError
        On entering: the target is protected, is a file or a link, exists without ``force``,
        was not written by fidelitymed, holds files fidelitymed did not write, its parent
        cannot be created or written, or another run holds the lock. On :meth:`commit`: the
        target changed meanwhile so that it may no longer be replaced.
    """

    def __init__(self, target: str | os.PathLike, *, force: bool = False,
                 protected: Iterable[tuple[str, str | os.PathLike]] = (), kind: str = "output") -> None:
        self.target = Path(os.path.abspath(target))
        self.force = bool(force)
        self.protected = list(protected)
        self.kind = kind
        self.tmp: Path | None = None
        self._lock_fd: int | None = None
        self._lock_path = self.target.parent / f".{self.target.name}.lock"
        self._created: list[Path] = []
        self._committed = False

    # ------------------------------------------------------------------ checks
    def _say(self, why: str) -> ConfigError:
        return ConfigError(f"output folder {str(self.target)!r} {why}")

    def check(self) -> str:
        """What writing ``target`` would do: ``"create"``, ``"fill"`` (an empty folder) or ``"replace"``.

        Raises :class:`ConfigError` if it may not be written at all.
        """
        problem = _protection_problem(self.target, self.protected)
        if problem is not None:
            raise self._say(f"{problem}; fidelitymed never writes into, or replaces, a folder holding its inputs")
        target = self.target
        if target.is_symlink():
            raise self._say("is a symbolic link; fidelitymed does not replace links, even with --force "
                            "(name the folder itself, or another --out)")
        if not target.exists():
            return "create"
        if not target.is_dir():
            raise self._say("exists and is not a folder; fidelitymed replaces only folders it wrote, "
                            "even with --force (choose another --out)")
        if not any(target.iterdir()):
            return "fill"
        marker = read_marker(target)
        if marker is None:
            raise self._say(f"exists and was not written by fidelitymed (no {MARKER_NAME} marker); it is not "
                            f"replaced, even with --force: choose another --out, or remove it yourself")
        if marker.get("kind") != self.kind:
            raise self._say(f"holds a fidelitymed {marker.get('kind')!r} folder, not {self.kind!r}; it is not "
                            f"replaced, even with --force: choose another --out, or remove it yourself")
        listed = {str(f) for f in marker.get("files", [])}
        allowed = {MARKER_NAME} | listed | {p.as_posix() for f in listed for p in Path(f).parents if str(p) != "."}
        foreign = [e for e in _tree(target) if e not in allowed]  # walked only once the marker says it is ours
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise self._say(f"holds files fidelitymed did not write ({shown}); it is not replaced, even with "
                            f"--force: move them away, or remove the folder yourself")
        if not self.force:
            raise self._say("exists; use --force (force=True) to replace it")
        return "replace"

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> OutputFolder:
        self.check()
        try:
            self._make_parents()
            self._acquire_lock()
            self._remove_stale()
            self.check()  # again, now that no other run can change it
            self.tmp = self._make_temp()
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._cleanup()

    def commit(self) -> Path:
        """Record what was written in the marker and rename the temporary folder onto ``target``."""
        if self.tmp is None:
            raise RuntimeError("OutputFolder.commit() outside its with-block")
        interrupt.raise_if_requested()  # told to stop: nothing is put in place (the with-block cleans up)
        files = [f for f in _tree(self.tmp) if f != MARKER_NAME]
        _write_marker(self.tmp, marker_payload(self.kind, files))
        action = self.check()  # the target may have changed during a long analysis
        try:
            if action == "replace":
                old = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.{_OLD_TAG}", dir=self.target.parent))
                os.replace(self.target, old)  # rename(2) onto the empty folder just made
                try:
                    os.replace(self.tmp, self.target)
                except BaseException:
                    os.replace(old, self.target)
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                # "fill": rename(2) replaces an empty folder and fails (ENOTEMPTY) if one appeared meanwhile
                os.replace(self.tmp, self.target)
        except OSError as exc:
            raise self._say(f"could not be put in place ({exc.strerror or exc})") from exc
        self._committed = True
        return self.target

    # ------------------------------------------------------------------ steps
    def _make_parents(self) -> None:
        missing = [p for p in [self.target.parent, *self.target.parent.parents] if not p.exists()]
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                if not folder.is_dir():
                    raise self._say(f"cannot be created: {str(folder)!r} exists and is not a folder") from None
            except OSError as exc:
                raise self._say(f"cannot be created: {str(folder)!r}: {exc.strerror or exc}") from exc
            else:
                self._created.append(folder)
        if not self.target.parent.is_dir():
            raise self._say(f"cannot be created: {str(self.target.parent)!r} is not a folder")

    def _acquire_lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - no flock (Windows): no protection against concurrent runs
            return
        while True:
            try:
                fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666 & ~_current_umask())
            except OSError as exc:
                raise self._say(f"cannot be written: {str(self.target.parent)!r}: {exc.strerror or exc}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise self._say(f"is being written by another fidelitymed run (lock {str(self._lock_path)!r} is "
                                f"held); wait for it to finish or choose another --out") from None
            # the previous holder unlinks the file before releasing it: lock the file that is there now
            try:
                same = os.stat(self._lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._lock_fd = fd
                return
            os.close(fd)

    def _remove_stale(self) -> None:
        """Remove temporary folders of earlier runs into this target that died (we hold its lock)."""
        prefixes = (f".{self.target.name}.{_TEMP_TAG}", f".{self.target.name}.{_OLD_TAG}")
        for entry in self.target.parent.iterdir():
            # marked, or killed before (or while) writing its marker: empty but for that file
            if (entry.name.startswith(prefixes) and not entry.is_symlink() and entry.is_dir()
                    and (read_marker(entry) is not None or {p.name for p in entry.iterdir()} <= {MARKER_NAME})):
                shutil.rmtree(entry, ignore_errors=True)

    def _make_temp(self) -> Path:
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.{_TEMP_TAG}", dir=self.target.parent))
        except OSError as exc:
            raise self._say(f"cannot be written: {str(self.target.parent)!r}: {exc.strerror or exc}") from exc
        self.tmp = tmp
        os.chmod(tmp, 0o777 & ~_current_umask())
        # marked at once, so that a run killed at any point leaves a folder the next run may remove
        _write_marker(tmp, marker_payload(self.kind))
        return tmp

    def _cleanup(self) -> None:
        if self.tmp is not None and not self._committed and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._lock_path)
            os.close(self._lock_fd)
            self._lock_fd = None
        if not self._committed:
            for folder in reversed(self._created):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only if still empty
        self._created = []


def _write_marker(folder: Path, payload: dict[str, Any]) -> None:
    (folder / MARKER_NAME).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8", newline="\n")


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, *, force: bool = False,
                     protected: Iterable[tuple[str, str | os.PathLike]] = (), kind: str = "output") -> Iterator[Path]:
    """Build an output folder in a temporary sibling and rename it onto ``target`` at the end.

    The rules of :class:`OutputFolder`: ``force`` replaces only a folder fidelitymed wrote; if
    the body raises, the temporary folder is removed and ``target`` is untouched.
    """
    with OutputFolder(target, force=force, protected=protected, kind=kind) as folder:
        assert folder.tmp is not None
        yield folder.tmp
        folder.commit()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
