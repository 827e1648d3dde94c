"""REDCap intake: a REDCap export (one row per record x event) -> the native interviews table.

REDCap, the most common data capture system in community mental health research, exports a
longitudinal project as one row per record x event: ``record_id``, ``redcap_event_name``,
then one column per field, checkbox fields as one 0/1 column per choice (``x___1``,
``x___2``, ...), and for repeating instruments or events ``redcap_repeat_instrument`` /
``redcap_repeat_instance``. Its data dictionary (a CSV with the columns
``Variable / Field Name``, ``Form Name``, ``Field Type``, ``Choices, Calculations, OR Slider
Labels``, ``Text Validation Min``, ``Text Validation Max``, ...) describes every field.

:func:`read_redcap_interviews` turns such an export into the table fidelitymed reads as
``interviews`` -- ``client``, ``wave``, ``date`` and the item columns -- so the study
validator and everything after it run unchanged. The rules (settings of
``files.interviews`` in ``study.yaml``, :class:`RedcapInterviews`):

* **Events -> waves.** ``events: {baseline_arm_1: 0, month_45_arm_1: 4.5, ...}``; an event
  mapped to ``null`` (e.g. screening) is dropped; a row of an event not listed is an error.
  Events of several arms may map to one wave.
* **Client and date.** ``record_id`` (setting ``record_id``) becomes ``client``; the field
  ``date_field`` (default ``interview_date``) the interview date.
* **Item columns.** An item column is taken by its own name, through ``rename`` (REDCap field
  -> item), or -- for checkbox fields -- from ``<field>___<code>`` when the item is named
  ``<field>_<code>`` (``ace___3`` -> ``ace_3``). A checkbox exports 0 ("unchecked") even where
  its form was never filled, so checkbox items are missing where the form's
  ``<form>_complete`` status is empty (the form comes from the data dictionary) and at waves
  where the instrument is not scheduled.
* **Missing data codes.** REDCap's text missing-data codes (``UNK``, ``NASK``, ``NA``, ...;
  setting ``text_missing_codes``) are read as missing.
* **Repeating instruments and events.** Rows of a repeating instrument
  (``redcap_repeat_instrument`` set) are refused by default (``repeating: refuse``; they are
  not interviews of a wave), or dropped with ``repeating: ignore``. Repeating events (an
  instance number without an instrument) would give several interviews per wave and are
  always refused.
* **Data dictionary** (``dictionary:``, optional): every item must be a field of the
  dictionary; the codes of radio / dropdown / checkbox / yes-no fields must be valid scale
  points or missing codes of the declared instrument, and text fields' validation min / max
  must lie within its range.

Every problem is a :class:`~fidelitymed.errors.DataIssue` naming the file, row, column, value
and what was expected; all of them are raised together as one
:class:`~fidelitymed.errors.StudyDataError`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ..errors import DataIssue, StudyDataError
from .io import read_table

#: REDCap's standard missing-data codes (Project setup > Additional customizations)
REDCAP_MISSING_CODES = ("NI", "INV", "UNK", "NASK", "ASKU", "NAV", "MSK", "NA", "NAVU", "NP", "QS", "QI", "TRC",
                        "UNC", "DER", "PINF", "NINF", "OTH")
#: the columns of a REDCap data dictionary this module reads
DICT_FIELD = "Variable / Field Name"
DICT_FORM = "Form Name"
DICT_TYPE = "Field Type"
DICT_CHOICES = "Choices, Calculations, OR Slider Labels"
DICT_MIN = "Text Validation Min"
DICT_MAX = "Text Validation Max"
_CHECKBOX = re.compile(r"^(?P<field>.+)___(?P<code>[A-Za-z0-9_-]+)$")


class RedcapInterviews(BaseModel):
    """``files.interviews`` as a REDCap export (``format: redcap``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    format: Literal["redcap"] = "redcap"
    #: redcap_event_name -> wave in months (null = drop the event's rows)
    events: dict[str, float | None]
    #: the REDCap data dictionary CSV, to check items' codes and ranges (optional)
    dictionary: str | None = None
    #: the record id field (REDCap's first field)
    record_id: str = "record_id"
    #: the field holding the interview date
    date_field: str = "interview_date"
    #: REDCap field -> item column, where the names differ
    rename: dict[str, str] = Field(default_factory=dict)
    #: rows of repeating instruments: "refuse" (an error) or "ignore" (dropped)
    repeating: Literal["refuse", "ignore"] = "refuse"
    #: text codes read as missing
    text_missing_codes: list[str] = Field(default_factory=lambda: list(REDCAP_MISSING_CODES))


# ----------------------------------------------------------------------------- dictionary
def parse_choices(text: Any) -> list[str]:
    """Codes of a REDCap choices cell: ``"1, Never | 2, Sometimes"`` -> ``["1", "2"]``."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or not str(text).strip():
        return []
    return [part.split(",", 1)[0].strip() for part in str(text).split("|") if part.strip()]


def read_dictionary(path: str | os.PathLike) -> pd.DataFrame:
    """Read a REDCap data dictionary CSV (REDCap's own column names), indexed by field name.

    Raises
    ------
    StudyDataError
        If the file cannot be read or lacks the field name, form or field type columns.
    """
    frame = read_table(path)
    missing = [c for c in (DICT_FIELD, DICT_FORM, DICT_TYPE) if c not in frame.columns]
    if missing:
        raise StudyDataError([DataIssue(str(path), None, c, None, "a column of a REDCap data dictionary") for c in missing])
    frame = frame.assign(**{DICT_FIELD: frame[DICT_FIELD].astype(str).str.strip()})
    frame.index = pd.RangeIndex(2, len(frame) + 2)  # file rows (header = 1)
    return frame


def _number(value: Any) -> float | None:
    try:
        v = float(str(value).strip())
    except ValueError:
        return None
    return v if np.isfinite(v) else None


def _shown(value: Any) -> Any:
    """A dictionary cell as the user wrote it: 60, not np.float64(60.0)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def check_dictionary(dictionary: pd.DataFrame, item_fields: Mapping[str, str],
                     ranges: Mapping[str, tuple[float, float, tuple[float, ...]]], *, file: str,
                     integer: Mapping[str, bool] | None = None) -> list[DataIssue]:
    """Items' REDCap fields against the declared instruments' valid values.

    Parameters
    ----------
    dictionary
        :func:`read_dictionary` output.
    item_fields
        Item column -> REDCap field it comes from (checkbox items: the checkbox field, whose
        code is the item's suffix).
    ranges
        Item -> ``(low, high, missing_codes)`` of the declaration.
    file
        The dictionary's file name, for the issues.
    """
    issues: list[DataIssue] = []
    by_field = {f: row for f, row in zip(dictionary[DICT_FIELD], dictionary.itertuples())}
    rows = dict(zip(dictionary[DICT_FIELD], dictionary.index))
    for item, field in item_fields.items():
        if item not in ranges:
            continue
        low, high, codes = ranges[item]
        if field not in by_field:
            issues.append(DataIssue(file, None, DICT_FIELD, field, f"a field for item {item!r} in the data dictionary"))
            continue
        entry = dictionary.loc[rows[field]]
        kind = str(entry[DICT_TYPE]).strip().lower()
        row = int(rows[field])
        whole = True if integer is None else integer.get(item, True)

        def valid(v: float) -> bool:
            return (low <= v <= high and (not whole or float(v).is_integer())) or v in codes

        if kind in ("radio", "dropdown", "checkbox"):
            found = parse_choices(entry.get(DICT_CHOICES))
            if kind == "checkbox":
                # a checkbox column is 0/1; the item's code must be one of the field's choices
                code = item.rsplit("_", 1)[-1]
                if code not in found:
                    issues.append(DataIssue(file, row, DICT_CHOICES, entry.get(DICT_CHOICES),
                                            f"a choice coded {code!r} for item {item!r} (checkbox {field}___{code})"))
                if not (valid(0.0) and valid(1.0)):
                    issues.append(DataIssue(file, row, DICT_TYPE, entry[DICT_TYPE],
                                            f"a field type giving {low:g}-{high:g} for item {item!r} (a checkbox "
                                            "column is 0/1)"))
                continue
            for code in found:
                v = _number(code)
                if v is None or not valid(v):
                    issues.append(DataIssue(file, row, DICT_CHOICES, code,
                                            f"choice codes of {field!r} that are scale points {low:g}-{high:g} of "
                                            f"item {item!r}" + (" or missing codes " + ", ".join(f"{c:g}" for c in codes)
                                                                if codes else "")))
        elif kind in ("yesno", "truefalse"):
            if not (valid(0.0) and valid(1.0)):
                issues.append(DataIssue(file, row, DICT_TYPE, entry[DICT_TYPE],
                                        f"a field type giving {low:g}-{high:g} for item {item!r} ({kind} is 0/1)"))
        elif kind in ("text", "slider", "calc"):
            for column, bound in ((DICT_MIN, low), (DICT_MAX, high)):
                if column not in dictionary.columns:
                    continue
                v = _number(entry.get(column))
                if v is not None and not (low <= v <= high):
                    issues.append(DataIssue(file, row, column, _shown(entry.get(column)),
                                            f"a bound within {low:g}-{high:g} (item {item!r})"))
        else:
            issues.append(DataIssue(file, row, DICT_TYPE, entry[DICT_TYPE],
                                    f"a radio, dropdown, checkbox, yesno or text field for item {item!r}"))
    return issues


# ----------------------------------------------------------------------------- export
def _blank(series: pd.Series) -> pd.Series:
    return series.isna() | (series.astype(str).str.strip() == "")


def read_redcap_interviews(root: str | os.PathLike, source: RedcapInterviews, *, items: Sequence[str],
                           ranges: Mapping[str, tuple[float, float, tuple[float, ...]]] | None = None,
                           item_instrument: Mapping[str, str] | None = None,
                           schedule: Mapping[float, Sequence[str]] | None = None,
                           integer: Mapping[str, bool] | None = None) -> pd.DataFrame:
    """The native interviews table (``client``, ``wave``, ``date``, items) of a REDCap export.

    Parameters
    ----------
    root
        The study folder (``source.path`` and ``source.dictionary`` are relative to it).
    source
        The ``files.interviews`` settings.
    items
        Item columns the study needs (the scheduled instruments' items).
    ranges
        Item -> ``(low, high, missing_codes)`` for the data-dictionary check.
    item_instrument, schedule
        Item -> instrument and wave -> instruments: checkbox items are missing at waves where
        their instrument is not scheduled.

    Raises
    ------
    StudyDataError
        Every problem of the export (and of the dictionary check) at once.
    """
    root = Path(root)
    file = source.path
    export = read_table(root / file)
    issues: list[DataIssue] = []
    for column in (source.record_id, "redcap_event_name"):
        if column not in export.columns:
            issues.append(DataIssue(file, None, column, None, "a column of a REDCap export (export with the "
                                                              "raw record id and unique event names)"))
    if issues:
        raise StudyDataError(issues)
    export = export.reset_index(drop=True)
    row_of = export.index.to_numpy() + 2

    # --- repeating instruments / events
    keep = np.ones(len(export), dtype=bool)
    instrument_col, instance_col = "redcap_repeat_instrument", "redcap_repeat_instance"
    if instrument_col in export.columns or instance_col in export.columns:
        rep_instr = ~_blank(export[instrument_col]) if instrument_col in export.columns else pd.Series(False, export.index)
        rep_inst = ~_blank(export[instance_col]) if instance_col in export.columns else pd.Series(False, export.index)
        for pos in np.flatnonzero((rep_inst & ~rep_instr).to_numpy()):
            issues.append(DataIssue(file, int(row_of[pos]), instance_col, export[instance_col].iloc[pos],
                                    "no repeating events: several interviews of one record at one event cannot be "
                                    "matched to a wave (export without the repeated instances)"))
        if source.repeating == "refuse":
            for pos in np.flatnonzero(rep_instr.to_numpy()):
                issues.append(DataIssue(file, int(row_of[pos]), instrument_col, export[instrument_col].iloc[pos],
                                        "no repeating-instrument rows (set files.interviews.repeating: ignore to drop "
                                        "them, or export without the repeating instrument)"))
        keep &= ~rep_instr.to_numpy()

    # --- events -> waves
    events = export["redcap_event_name"].astype(str).str.strip()
    known = events.isin(list(source.events))
    for pos in np.flatnonzero((~known).to_numpy() & keep):
        issues.append(DataIssue(file, int(row_of[pos]), "redcap_event_name", export["redcap_event_name"].iloc[pos],
                                "an event listed in files.interviews.events: " + ", ".join(source.events)))
    waves = events.map(source.events)
    keep &= known.to_numpy() & waves.notna().to_numpy()
    # two kept rows of one record at one wave (e.g. events of two arms mapped to one wave)
    key = pd.DataFrame({"record": export[source.record_id].astype(str), "wave": waves})[keep]
    first_row = {}
    for pos, (record, wave) in zip(np.flatnonzero(keep), key.itertuples(index=False, name=None)):
        if (record, wave) in first_row:
            issues.append(DataIssue(file, int(row_of[pos]), "redcap_event_name", export["redcap_event_name"].iloc[pos],
                                    f"one event per record and wave (record {record} already has wave {wave:g} at "
                                    f"row {first_row[(record, wave)]})"))
        else:
            first_row[(record, wave)] = int(row_of[pos])

    # --- item columns: own name, rename, or checkbox field___code
    renamed = {item: field for field, item in source.rename.items()}
    fields: dict[str, str] = {}       # item -> export column
    checkbox_field: dict[str, str] = {}
    for item in items:
        if item in renamed:
            column = renamed[item]
        elif item in export.columns:
            column = item
        else:
            prefix, _, code = item.rpartition("_")
            column = f"{prefix}___{code}" if prefix else item
            if column in export.columns:
                checkbox_field[item] = prefix
            else:
                column = item
        if column not in export.columns:
            alternative = f" (or the checkbox column {item.rpartition('_')[0]}___{item.rpartition('_')[2]})" \
                if column == item and "_" in item else ""
            issues.append(DataIssue(file, None, column, None, f"a column for item {item!r} in the export{alternative}"))
            continue
        fields[item] = column
    if source.date_field not in export.columns:
        issues.append(DataIssue(file, None, source.date_field, None, "the interview date field (setting "
                                                                     "files.interviews.date_field)"))

    dictionary = None
    if source.dictionary is not None:
        try:
            dictionary = read_dictionary(root / source.dictionary)
        except StudyDataError as exc:
            issues.extend(exc.issues)
        if dictionary is not None and ranges is not None:
            item_fields = {item: checkbox_field.get(item, column) for item, column in fields.items()}
            issues += check_dictionary(dictionary, item_fields, ranges, file=source.dictionary, integer=integer)
    if issues:
        raise StudyDataError(issues)

    codes = set(source.text_missing_codes)
    values = {}
    for item, column in fields.items():
        raw = export[column]
        if not pd.api.types.is_numeric_dtype(raw):
            raw = raw.where(~raw.astype(str).str.strip().isin(codes))
        values[item] = raw
    out = pd.DataFrame({"client": export[source.record_id], "wave": waves.astype(float),
                        "date": export[source.date_field], **values})
    # checkbox 0 = "unchecked" also where the form was never filled: missing there
    if checkbox_field:
        form_of = {}
        if dictionary is not None:
            form_of = dict(zip(dictionary[DICT_FIELD], dictionary[DICT_FORM].astype(str).str.strip()))
        for item, field in checkbox_field.items():
            empty = pd.Series(False, index=export.index)
            status = f"{form_of.get(field, '')}_complete"
            if field in form_of and status in export.columns:
                empty |= _blank(export[status])
            if schedule is not None and item_instrument is not None and item in item_instrument:
                given = [float(w) for w, names in schedule.items() if item_instrument[item] in names]
                empty |= ~out["wave"].isin(given)
            out.loc[empty.to_numpy(), item] = np.nan
    out = out.loc[keep].reset_index(drop=True)
    out.attrs["source_rows"] = [int(r) for r in row_of[keep]]   # file rows, for the validator's issues
    return out
