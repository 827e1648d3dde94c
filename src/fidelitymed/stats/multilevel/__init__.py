"""Multilevel models for clients nested in case managers and teams.

* :mod:`.lmm` — linear mixed models with nested random intercepts by profiled (RE)ML, as lme4,
  with lmerTest's Satterthwaite df (the engine);
* :mod:`.mediation` — :func:`mediate_multilevel`, 2-1-1 / 1-1-1 mediation with between/within
  decomposition and Monte Carlo CIs, and its :class:`MultilevelMediationResult`;
  :func:`mediate_multilevel_many`, many models on one data set with their equations fitted in
  batches (the same results).
"""

from .lmm import NestedGroups, NestedLMMFit, fit_nested_lmm, fit_nested_lmm_many
from .mediation import (IndirectEstimate, MultilevelMediationResult, PathEstimate, mediate_multilevel,
                        mediate_multilevel_many)

__all__ = ["IndirectEstimate", "MultilevelMediationResult", "NestedGroups", "NestedLMMFit", "PathEstimate",
           "fit_nested_lmm", "fit_nested_lmm_many", "mediate_multilevel", "mediate_multilevel_many"]
