"""Reading tables (CSV, XLSX, SAV, DTA) and writing outputs atomically.

Every reader returns a plain :class:`pandas.DataFrame`; every failure is a
:class:`~fidelitymed.errors.StudyDataError` naming the file. Writers never leave a
half-written file: they write beside the target and rename into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import FidelityMedError, StudyDataError

TABLE_SUFFIXES = (".csv", ".xlsx", ".sav", ".dta")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read one data table from CSV, XLSX (first sheet), SPSS ``.sav`` or Stata ``.dta``.

    SPSS/Stata value labels are not applied: the numeric codes are what the scoring rules
    expect. Empty strings are read as missing.

    Raises
    ------
    StudyDataError
        If the file is missing, has an unsupported suffix or cannot be parsed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise StudyDataError(file=str(path), expected="an existing readable file")
    if suffix not in TABLE_SUFFIXES:
        raise StudyDataError(file=str(path), value=path.suffix,
                             expected="a table ending in " + ", ".join(TABLE_SUFFIXES))
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, skipinitialspace=True)
        elif suffix == ".xlsx":
            frame = pd.read_excel(path, sheet_name=0, engine="openpyxl")
        else:
            import pyreadstat

            reader = pyreadstat.read_sav if suffix == ".sav" else pyreadstat.read_dta
            frame, _meta = reader(str(path), apply_value_formats=False)
    except StudyDataError:
        raise
    except Exception as exc:  # parser errors come in many types; the user needs the file named
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StudyDataError(file=str(path), expected=f"a readable {suffix[1:].upper()} table ({reason})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


# The writers live in :mod:`fidelitymed.study.writers`; re-exported so existing imports keep working.
from .writers import (  # noqa: E402,F401
    atomic_directory,
    atomic_path,
    json_safe,
    write_json,
    write_table,
    write_text,
)
