"""Display labels: one name per thing in every output a reader sees.

Machine names (``hope``, ``rprs_4.5m``, ``fidelity_4.5m_180d``) stay in ``results.json`` and in
the tidy ``data`` sheet of ``tables.xlsx``; tables, figures, figure file names, summaries and
messages show the labels made here:

* an instrument's short label comes from the instrument codebook
  (``instruments/codebook.yaml``, read through :mod:`fidelitymed.instruments.codebook`): its
  ``label`` (or ``short_label`` / ``abbreviation``) when the entry has one, else the
  abbreviation the study's paper uses (:data:`SHORT_LABELS`), else the abbreviation in
  parentheses in the entry's ``title``;
* a study variable is its construct and instrument at a wave: "Working alliance (RPRS),
  4.5 months", "THS, 18 months", "SMCM fidelity (180-day mean), 4.5 months";
* covariates have their Table 1 names ("Age", "ACE", ...).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["SHORT_LABELS", "INSTRUMENT_ORDER", "instrument_label", "instrument_title", "variable_label",
           "column_label", "covariate_label", "month_text", "window_text", "path_label", "parse_variable",
           "readable_text", "file_slug"]

#: the abbreviations the paper uses, for codebook entries that carry no ``label``
SHORT_LABELS: dict[str, str] = {"fidelity": "SMCM fidelity", "rprs": "RPRS", "qoli20": "QOLI-20", "pgi": "PGI",
                                "hope": "THS", "mcas": "MCAS", "ace": "ACE"}
#: the order instruments are listed in tables and figures (the paper's order)
INSTRUMENT_ORDER: tuple[str, ...] = ("fidelity", "rprs", "qoli20", "pgi", "hope", "mcas", "ace")
#: the construct a role-defining instrument measures (shown before its abbreviation)
_CONSTRUCTS = {"rprs": "Working alliance"}

_COVARIATES = {"age": "Age", "gender": "Gender", "housing": "Housing status", "employment": "Employment",
               "education": "Education", "ace": "ACE", "site": "Site",
               "long_hospitalization": "Hospitalized \u2265 6 months in past 5 years",
               "baseline": "Baseline score of the outcome"}
_PATHS = {"a": "a", "b": "b", "c_prime": "c\u2032", "c": "c", "indirect": "ab"}

# <instrument>[_<score>]_<month>m[_<window>d]: the schema's variable naming
_VARIABLE = re.compile(r"^(?P<code>[a-z][a-z0-9]*?)(?:_(?P<score>[a-z_]+?))?_(?P<month>\d+(?:\.\d+)?)m"
                       r"(?:_(?P<window>\d+)d)?$")


def _codebook() -> dict[str, Any]:
    from .instruments.codebook import load_codebook

    try:
        return load_codebook()
    except (OSError, ValueError):  # a broken install still labels with the defaults
        return {}


def instrument_title(code: str) -> str:
    """The codebook's full title of an instrument (its code when the codebook has no entry)."""
    entry = _codebook().get(code)
    return str(entry.get("title")) if isinstance(entry, dict) and entry.get("title") else str(code)


#: labels of the study's own declarations (``instruments.<name>.label``), set by :func:`study_labels`
_DECLARED_LABELS: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("fidelitymed_declared_labels",
                                                                                    default={})


@contextlib.contextmanager
def study_labels(config: Any) -> Iterator[None]:
    """Within the block, instruments a study declares are labelled as declared (WAI-SR, TMACT …).

    ``config`` is a ``StudyConfig`` or its dict (``results.json``'s ``manifest.config``); a
    declaration's ``label`` wins over the codebook, as in
    :func:`fidelitymed.instruments.codebook.label`.
    """
    raw = getattr(config, "instruments", None) if not isinstance(config, Mapping) else config.get("instruments")
    declared = {str(name): str(entry["label"]) for name, entry in (raw or {}).items()
                if isinstance(entry, Mapping) and entry.get("label")}
    token = _DECLARED_LABELS.set(declared)
    try:
        yield
    finally:
        _DECLARED_LABELS.reset(token)


def instrument_label(code: Any) -> str:
    """Short label of an instrument: "QOLI-20", "THS", "RPRS", "ACE", "SMCM fidelity"."""
    code = str(code)
    declared = _DECLARED_LABELS.get().get(code)
    if declared:
        return declared
    entry = _codebook().get(code)
    if isinstance(entry, dict):
        for key in ("label", "short_label", "abbreviation"):
            if entry.get(key):
                return str(entry[key])
    if code in SHORT_LABELS:
        return SHORT_LABELS[code]
    if isinstance(entry, dict) and entry.get("title"):
        # "... brief 20-item version (QOLI-20; Uttaro & Lehman 1999)" -> "QOLI-20"
        found = re.search(r"\(([A-Z][A-Z0-9-]{1,11})[;,)]", str(entry["title"]))
        if found:
            return found.group(1)
    return code.upper() if len(code) <= 5 else code.replace("_", " ").capitalize()


def month_text(month: Any) -> str:
    """4.5 -> "4.5 months", 0 -> "baseline", 1 -> "1 month"."""
    if month is None or (isinstance(month, float) and math.isnan(month)):
        return ""
    m = float(month)
    if m == 0:
        return "baseline"
    return f"{m:g} month" + ("" if m == 1 else "s")


def window_text(days: Any) -> str:
    """180 -> "180-day"."""
    return f"{int(days)}-day"


def path_label(path: str) -> str:
    """``c_prime`` -> "c′", ``indirect`` -> "ab"."""
    return _PATHS.get(path, path)


def variable_label(code: str, month: Any = None, *, window: Any = None) -> str:
    """A study variable at a wave: "Working alliance (RPRS), 4.5 months", "THS, 18 months"."""
    short = instrument_label(code)
    base = f"{_CONSTRUCTS[code]} ({short})" if code in _CONSTRUCTS else short
    if window is not None:
        base += f" ({window_text(window)} mean)"
    when = month_text(month)
    return f"{base}, {when}" if when else base


def covariate_label(name: str) -> str:
    """A covariate's display name ("ACE", "Age", ...); a wave variable through :func:`column_label`."""
    if name in _COVARIATES:
        return _COVARIATES[name]
    if parse_variable(name):
        return column_label(name)
    return str(name).replace("_", " ").capitalize()


def parse_variable(name: Any) -> tuple[str, float, int | None] | None:
    """``"rprs_4.5m"`` -> ``("rprs", 4.5, None)``; ``"fidelity_4.5m_180d"`` -> ``("fidelity", 4.5, 180)``."""
    found = _VARIABLE.match(str(name))
    if not found:
        return None
    window = found["window"]
    return found["code"], float(found["month"]), None if window is None else int(window)


def column_label(name: Any) -> str:
    """Display label of a machine variable name (``hope_9m`` -> "THS, 9 months"); other names unchanged."""
    parsed = parse_variable(name)
    if parsed is None:
        return _COVARIATES.get(str(name), str(name))
    code, month, window = parsed
    return variable_label(code, month, window=window)


_TOKEN = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z]+)?_\d+(?:\.\d+)?m(?:_\d+d)?\b")


def readable_text(text: Any) -> str:
    """Machine names and ASCII operators in free text made readable.

    ``"ICC of pgi_9m <= 0.05 -> alpha"`` -> ``"ICC of PGI, 9 months ≤ 0.05 → alpha"``.
    """
    out = _TOKEN.sub(lambda m: column_label(m.group(0)), str(text))
    for ascii_op, sign in (("<=", "\u2264"), (">=", "\u2265"), ("->", "\u2192"), ("!=", "\u2260")):
        out = out.replace(ascii_op, sign)
    return out


def file_slug(*parts: Any) -> str:
    """A file-name-safe form of display labels: ("THS", "9 months") -> "THS_9-months"."""
    words = []
    for part in parts:
        text = re.sub(r"[^A-Za-z0-9.\-]+", "-", str(part)).strip("-")
        if text:
            words.append(text)
    return "_".join(words).replace(".", "p")
