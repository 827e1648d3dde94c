"""Instrument scoring: declarations (items, scale points, rules) -> scale scores, one path for all.

See :mod:`fidelitymed.instruments.declaration` for what a declaration holds,
:mod:`fidelitymed.instruments.scoring` for the column names and ``codebook.yaml`` for the
built-in instruments. Every uncertain rule of a built-in is a setting of ``study.yaml``
(``scoring:``); a study may declare its own instruments (``instruments:``).
"""

from __future__ import annotations

from .ace import score_ace
from .codebook import label, load_codebook
from .declaration import (FidelityDeclaration, InstrumentDeclaration, PgiDeclaration, builtin_declaration, declare,
                          parse_declarations)
from .fidelity import score_fidelity
from .hope import score_hope
from .mcas import score_mcas
from .pgi import score_pgi
from .qoli import score_qoli20
from .rprs import score_rprs
from .scoring import (instrument_declarations, item_ranges, score_columns, score_declaration, score_instrument,
                      score_interviews)

__all__ = ["load_codebook", "label", "InstrumentDeclaration", "PgiDeclaration", "FidelityDeclaration", "declare",
           "parse_declarations", "builtin_declaration", "instrument_declarations", "score_declaration", "score_fidelity", "score_rprs", "score_qoli20", "score_pgi", "score_hope",
           "score_mcas", "score_ace", "score_interviews", "score_instrument", "score_columns", "item_ranges"]
