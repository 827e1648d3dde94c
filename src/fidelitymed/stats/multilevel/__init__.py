"""Multilevel models for clients nested in case managers and teams.

* :mod:`.lmm` — linear mixed models with nested random intercepts by profiled (RE)ML, as lme4,
  with lmerTest's Satterthwaite df (the engine);
* :mod:`.mediation` — :func:`mediate_multilevel`, 2-1-1 / 1-1-1 mediation with between/within
  decomposition and Monte Carlo CIs, and its :class:`MultilevelMediationResult`.
"""

from .lmm import NestedGroups, NestedLMMFit, fit_nested_lmm
from .mediation import IndirectEstimate, MultilevelMediationResult, PathEstimate, mediate_multilevel

__all__ = ["IndirectEstimate", "MultilevelMediationResult", "NestedGroups", "NestedLMMFit", "PathEstimate",
           "fit_nested_lmm", "mediate_multilevel"]
