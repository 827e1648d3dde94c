"""APA tables in an Excel workbook (openpyxl): one sheet per table, laid out as in the DOCX, plus ``data``.

Each table sheet shows the table number (bold) and title (italic), spanning headers as merged
cells centred over their columns, and one cell per number: a CI "[LL, UL]" becomes two cells
(LL, UL) under its merged header. Numbers are stored as numbers at full precision and shown with
the APA digits by number formats (3 decimals for coefficients, no leading zero for p and
proportions, "< .001", a true minus sign, the significance asterisk as part of the format).

The ``data`` sheet is the tidy version: one row per value shown in any table, with its table,
the JSON pointer of its source in ``results.json``, the machine names of the record it belongs
to (outcome, months, window, path) and the value at full precision.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..study.io import atomic_path
from ..study.writers import neutralise_formula_text  # text cells never run as formulas
from .office import reproducible_zip
from .tables import DASH, XLSX_FORMATS, ReportTable, _is_missing, resolve_pointer

_NUMBER_TEXT = re.compile(r"^-?\d+(?:\.\d+)?$")
_SUBHEADERS = {"[{0}, {1}]": ("LL", "UL"), "{0}, {1}": ("df1", "df2"), "{0}; {1}": ("a", "b, c\u2032")}
_CONTEXT_KEYS = ("outcome", "outcome_month", "mediator_month", "window_days", "path", "y", "variable", "month",
                 "instrument", "characteristic", "level")


def _number_format(kind: str, star: bool) -> str | None:
    fmt = XLSX_FORMATS.get(kind)
    if fmt is None or not star:
        return fmt
    return ";".join(f'{part}"*"' for part in fmt.split(";"))


def _text(value: Any) -> str:
    return neutralise_formula_text(str(value))


def _sheet_name(table: ReportTable, used: set[str]) -> str:
    base = (table.number or table.key)[:31]
    name, k = base, 1
    while name in used:
        k += 1
        name = f"{base[:28]}_{k}"
    used.add(name)
    return name


def write_xlsx(tables: Iterable[ReportTable], path: str | os.PathLike, *,
               results: dict[str, Any] | None = None) -> Path:
    """Write the tables (one sheet each, named by table number) and the tidy ``data`` sheet."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, Side
    from openpyxl.utils import get_column_letter

    path = Path(path)
    tables = list(tables)
    wb = Workbook()
    wb.remove(wb.active)
    thin = Side(style="thin")
    used: set[str] = set()
    tidy: list[list[Any]] = []
    for t in tables:
        ws = wb.create_sheet(_sheet_name(t, used))
        ws.cell(row=1, column=1, value=_text(t.number)).font = Font(bold=True)
        ws.cell(row=2, column=1, value=_text(t.title)).font = Font(italic=True)
        spans = [len(c.fields) if len(c.fields) > 1 else 1 for c in t.columns]
        starts = [1 + sum(spans[:k]) for k in range(len(spans))]
        n_cols = sum(spans)
        has_groups = any(c.group for c in t.columns)
        has_sub = any(s > 1 for s in spans)
        row = 4
        header_top = row
        if has_groups:
            k = 0
            for label, count in t.groups():
                first, last = starts[k], starts[k + count - 1] + spans[k + count - 1] - 1
                cell = ws.cell(row=row, column=first, value=_text(label) if label else None)
                cell.alignment = Alignment(horizontal="center")
                if label:
                    if last > first:
                        ws.merge_cells(start_row=row, start_column=first, end_row=row, end_column=last)
                    for j in range(first, last + 1):
                        ws.cell(row=row, column=j).border = Border(bottom=thin)
                k += count
            row += 1
        for c, first, span in zip(t.columns, starts, spans):
            cell = ws.cell(row=row, column=first, value=_text(c.header))
            cell.alignment = Alignment(horizontal="center" if span > 1 else ("left" if c.kind == "text" else "right"),
                                       wrap_text=True, vertical="bottom")
            if span > 1:
                ws.merge_cells(start_row=row, start_column=first, end_row=row, end_column=first + span - 1)
                for j, sub in enumerate(_SUBHEADERS.get(c.template, tuple(c.fields))):
                    sc = ws.cell(row=row + 1, column=first + j, value=_text(sub))
                    sc.alignment = Alignment(horizontal="right")
            elif has_sub:
                ws.merge_cells(start_row=row, start_column=first, end_row=row + 1, end_column=first)
        row += 2 if has_sub else 1
        header_bottom = row - 1
        for j in range(1, n_cols + 1):
            top = ws.cell(row=header_top, column=j)
            top.border = Border(top=thin, bottom=top.border.bottom)
            bottom = ws.cell(row=header_bottom, column=j)
            bottom.border = Border(bottom=thin, top=bottom.border.top)
        widths = [len(str(ws.cell(row=header_bottom, column=j).value or "")) for j in range(1, n_cols + 1)]
        body_top = row
        for i in range(len(t.frame)):
            record = t.frame.iloc[i]
            for c, first in zip(t.columns, starts):
                star = c.mark is not None and bool(record.get(c.mark, False))
                for j, f in enumerate(c.fields):
                    value = record[f]
                    cell = ws.cell(row=row, column=first + j)
                    shown: str
                    if _is_missing(value):
                        cell.value = DASH
                        cell.alignment = Alignment(horizontal="right")
                        shown = DASH
                    elif isinstance(value, str):
                        if c.kind == "text" and _NUMBER_TEXT.match(value):
                            cell.value = float(value) if "." in value else int(value)
                        else:
                            cell.value = _text(value)
                            if c.kind != "text":
                                cell.alignment = Alignment(horizontal="right")
                        shown = value
                    elif isinstance(value, bool):
                        shown = "yes" if value else "no"
                        cell.value = shown
                    else:
                        number = value.item() if hasattr(value, "item") else value
                        if c.kind == "int":
                            number = int(round(float(number)))
                        cell.value = number
                        fmt = _number_format(c.kind, star)
                        if fmt:
                            cell.number_format = fmt
                        shown = f"{float(number):.3f}"
                        source = t.sources.get((i, f))
                        if source is not None:
                            tidy.append([t.number, t.key, source, *_context(results, source), f,
                                         float(number)])
                    widths[first + j - 1] = max(widths[first + j - 1], len(shown) + (1 if star else 0))
            row += 1
        last_body = row - 1
        if last_body >= body_top:
            for j in range(1, n_cols + 1):
                ws.cell(row=last_body, column=j).border = Border(bottom=thin)
        for j, w in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(j)].width = max(6, min(48, w + 2))
        ws.freeze_panes = ws.cell(row=body_top, column=1)
        if t.note:
            note_row = row + 1
            ws.cell(row=note_row, column=1, value=_text("Note. " + t.note)).alignment = Alignment(
                wrap_text=True, vertical="top")
            ws.merge_cells(start_row=note_row, start_column=1, end_row=note_row, end_column=max(n_cols, 1))
            chars_per_line = max(20, sum(max(6, min(48, w + 2)) for w in widths))
            ws.row_dimensions[note_row].height = 15 * (1 + len(t.note) // chars_per_line)
    data = wb.create_sheet("data")
    header = ["table", "table_key", "json_pointer", *_CONTEXT_KEYS, "field", "value"]
    for j, h in enumerate(header, start=1):
        data.cell(row=1, column=j, value=h).font = Font(bold=True)
    for i, values in enumerate(tidy, start=2):
        for j, v in enumerate(values, start=1):
            data.cell(row=i, column=j, value=_text(v) if isinstance(v, str) else v)
    data.freeze_panes = "A2"
    with atomic_path(path) as tmp:
        wb.save(tmp)
        reproducible_zip(tmp)
    return path


def _context(results: dict[str, Any] | None, source: str) -> list[Any]:
    """Machine names of the record a JSON pointer points into (``/mediation/3/paths/a/coef``)."""
    record: Any = None
    if results is not None:
        parts = source.lstrip("/").split("/")
        for depth in range(1, len(parts)):  # the first list element on the way down is the record
            try:
                parent = resolve_pointer(results, "/" + "/".join(parts[:depth]))
            except (KeyError, IndexError, TypeError, ValueError):
                break
            if isinstance(parent, list):
                candidate = resolve_pointer(results, "/" + "/".join(parts[:depth + 1]))
                record = candidate if isinstance(candidate, dict) else None
                break
    out = []
    for key in _CONTEXT_KEYS:
        value = record.get(key) if isinstance(record, dict) else None
        out.append(value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None)
    return out

