"""PROCESS Model 4 (Hayes 2022): one or up to 10 parallel mediators, OLS or logistic outcome.

Modules, in the direction data flows: :mod:`.design` (checked options and the complete cases as
arrays), :mod:`.linear` (OLS equations and their moment-matrix bootstrap), :mod:`.logistic`
(logistic outcome equations and their batched Newton-Raphson bootstrap), :mod:`.cr2`
(Bell-McCaffrey cluster-robust inference), :mod:`.montecarlo` (Monte Carlo intervals),
:mod:`.results` (:class:`MediationResult`) and :mod:`.model4` (:func:`mediate_complete`, which
picks the family by the outcome).  Nothing here imports :mod:`fidelitymed.stats.mediation` or the
multiple-imputation layer above it.
"""

from .design import NonNumericCellsError
from .model4 import mediate_complete
from .results import BOOT_COLUMNS, MediationResult

__all__ = ["BOOT_COLUMNS", "MediationResult", "NonNumericCellsError", "mediate_complete"]
