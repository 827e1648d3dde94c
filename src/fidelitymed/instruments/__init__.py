"""Instrument scoring: one pure, vectorized function per instrument (items -> scale scores).

See :mod:`fidelitymed.instruments.scoring` for the column names and ``codebook.yaml`` for the
items, valid values and rules. Every uncertain rule is a setting of ``study.yaml`` (``scoring:``).
"""

from __future__ import annotations

from .ace import score_ace
from .codebook import load_codebook
from .fidelity import score_fidelity
from .hope import score_hope
from .mcas import score_mcas
from .pgi import score_pgi
from .qoli import score_qoli20
from .rprs import score_rprs
from .scoring import item_ranges, score_columns, score_instrument, score_interviews

__all__ = ["load_codebook", "score_fidelity", "score_rprs", "score_qoli20", "score_pgi", "score_hope",
           "score_mcas", "score_ace", "score_interviews", "score_instrument", "score_columns", "item_ranges"]
