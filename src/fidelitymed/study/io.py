"""Reading tables (CSV, XLSX, SAV, DTA); the writers are re-exported from :mod:`.writers`.

Every reader returns a plain :class:`pandas.DataFrame`; every failure is a
:class:`~fidelitymed.errors.StudyDataError` naming the file. Writers never leave a
half-written file: they write beside the target and rename into place.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DataIssue, StudyDataError

TABLE_SUFFIXES = (".csv", ".xlsx", ".sav", ".dta")


def _duplicate_header_issues(file: str, names: list[Any]) -> list[DataIssue]:
    """One issue per repeated column name of a raw header (pandas would rename it ``x.1``)."""
    from openpyxl.utils import get_column_letter

    seen: dict[str, list[int]] = {}
    for position, name in enumerate(names):
        if name is None:
            continue
        text = str(name).strip()
        if text:
            seen.setdefault(text, []).append(position)
    return [DataIssue(file, 1, name, None,
                      f"a unique column name (the header has {name!r} {len(where)} times: columns "
                      + ", ".join(get_column_letter(p + 1) for p in where) + ")")
            for name, where in seen.items() if len(where) > 1]


def _csv_header(path: Path) -> list[str]:
    import csv

    with open(path, encoding="utf-8-sig", newline="") as fh:
        return next(csv.reader(fh, skipinitialspace=True), [])


def _xlsx_checks(path: Path, file: str) -> list[DataIssue]:
    """Duplicate header names and formula cells without a cached result on the first sheet.

    ``pandas.read_excel`` reads the cached result of a formula; a file written by a program
    that does not compute formulas (a script, some exporters) stores none, and the cell would
    silently read as empty. Such cells are errors naming the cell.
    """
    import openpyxl
    from openpyxl.utils import get_column_letter

    formulas: dict[tuple[int, int], str] = {}
    header: list[Any] = []
    book = openpyxl.load_workbook(path, read_only=True, data_only=False)
    try:
        sheet = book.worksheets[0]
        for r, row in enumerate(sheet.iter_rows(), start=1):
            for cell in row:
                value = getattr(cell, "value", None)
                if r == 1:
                    header.append(value)
                if getattr(cell, "data_type", None) == "f":
                    formulas[(cell.row, cell.column)] = str(value)
    finally:
        book.close()
    issues = _duplicate_header_issues(file, header)
    if not formulas:
        return issues
    cached: dict[tuple[int, int], Any] = {}
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = book.worksheets[0]
        last = max(r for r, _ in formulas)
        for row in sheet.iter_rows(max_row=last):
            for cell in row:
                key = (getattr(cell, "row", None), getattr(cell, "column", None))
                if key in formulas:
                    cached[key] = cell.value
    finally:
        book.close()
    for (r, c), formula in sorted(formulas.items()):
        if cached.get((r, c)) is None:
            column = header[c - 1] if c - 1 < len(header) and header[c - 1] is not None else get_column_letter(c)
            where = f"cell {get_column_letter(c)}{r}"
            issues.append(DataIssue(file, r, str(column), formula,
                                    f"a value: {where} holds a formula with no cached result (the file was "
                                    "saved by a program that does not compute formulas); open and save it in "
                                    "Excel or LibreOffice, or type the value"))
    return issues


def _not_utf8(path: Path) -> DataIssue:
    """Where a CSV stops being UTF-8: byte offset and the line (= spreadsheet row) holding it."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return DataIssue(str(path), raw.count(b"\n", 0, exc.start) + 1, None, None,
                         f"UTF-8 text: byte {exc.start} (0x{raw[exc.start]:02x}) is not UTF-8; save the file as "
                         "UTF-8 (in Excel: CSV UTF-8)")
    return DataIssue(str(path), None, None, None, "UTF-8 text")


def read_table(path: str | os.PathLike, *, na_values: Sequence[str] = ()) -> pd.DataFrame:
    """Read one data table from CSV, XLSX (first sheet), SPSS ``.sav`` or Stata ``.dta``.

    Parsing is explicit: in CSV and XLSX only an empty cell and the spellings listed in
    ``na_values`` (``files.na_values`` of study.yaml; default none) are missing -- pandas'
    own list (``NA``, ``null``, ``#N/A``, ...) is not used, so a team called ``NA`` stays
    ``"NA"``. A column name that appears twice in the header is an error (pandas would rename
    the second ``x.1``), and so is an XLSX formula cell without a cached result (pandas would
    read it as empty). SPSS/Stata value labels are not applied: the numeric codes are what the
    scoring rules expect; their user-missing values are read as missing.

    Raises
    ------
    StudyDataError
        If the file is missing, has an unsupported suffix, cannot be parsed, repeats a column
        name or holds a formula without a value (every such cell listed).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise StudyDataError(file=str(path), expected="an existing readable file")
    if suffix not in TABLE_SUFFIXES:
        raise StudyDataError(file=str(path), value=path.suffix,
                             expected="a table ending in " + ", ".join(TABLE_SUFFIXES))
    missing = ["", *na_values]
    try:
        if suffix == ".csv":
            issues = _duplicate_header_issues(str(path), _csv_header(path))
            if issues:
                raise StudyDataError(issues)
            frame = pd.read_csv(path, skipinitialspace=True, keep_default_na=False, na_values=missing,
                                encoding="utf-8-sig")
        elif suffix == ".xlsx":
            issues = _xlsx_checks(path, str(path))
            if issues:
                raise StudyDataError(issues)
            frame = pd.read_excel(path, sheet_name=0, engine="openpyxl", keep_default_na=False, na_values=missing)
        else:
            import pyreadstat

            reader = pyreadstat.read_sav if suffix == ".sav" else pyreadstat.read_dta
            frame, _meta = reader(str(path), apply_value_formats=False)
    except StudyDataError:
        raise
    except UnicodeDecodeError:
        raise StudyDataError(_not_utf8(path)) from None
    except Exception as exc:  # parser errors come in many types; the user needs the file named
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StudyDataError(file=str(path), expected=f"a readable {suffix[1:].upper()} table ({reason[:200]})") from exc
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
