"""fidelitymed: team fidelity -> working alliance -> client outcome studies, end to end.

The public API is re-exported here lazily so that ``import fidelitymed`` stays fast and
each analysis pulls in only what it needs.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "FidelityMedError": "fidelitymed.errors",
    "StudyDataError": "fidelitymed.errors",
    "ConfigError": "fidelitymed.errors",
    "read_table": "fidelitymed.study.io",
    "mediate": "fidelitymed.stats.mediation",
    "mediate_many": "fidelitymed.stats.mediation",
    "MediationResult": "fidelitymed.stats.mediation",
    "icc": "fidelitymed.stats.nested",
    "mediate_multilevel": "fidelitymed.stats.multilevel",
    "mediate_multilevel_many": "fidelitymed.stats.multilevel",
    "MultilevelMediationResult": "fidelitymed.stats.multilevel",
    "domain_analysis": "fidelitymed.stats.domains",
    "domain_exposure": "fidelitymed.exposure",
    "declare": "fidelitymed.instruments",
    "InstrumentDeclaration": "fidelitymed.instruments",
    "FidelityDeclaration": "fidelitymed.instruments",
    "hierarchical_regression": "fidelitymed.stats.regression",
    "power_regression": "fidelitymed.stats.power",
    "sample_size_regression": "fidelitymed.stats.power",
    "power_mediation": "fidelitymed.stats.power",
    "sample_size_mediation": "fidelitymed.stats.power",
    "RegressionPowerResult": "fidelitymed.stats.power",
    "RegressionSampleSizeResult": "fidelitymed.stats.power",
    "MediationPowerResult": "fidelitymed.stats.power",
    "MediationSampleSizeResult": "fidelitymed.stats.power",
    "ICCResult": "fidelitymed.stats.nested",
    "HierarchicalResult": "fidelitymed.stats.regression",
    "PooledMediationResult": "fidelitymed.stats.pooling",
    "load_config": "fidelitymed.study.config",
    "StudyConfig": "fidelitymed.study.config",
    "validate_study": "fidelitymed.study.schema",
    "score_interviews": "fidelitymed.instruments",
    "fidelity_exposure": "fidelitymed.exposure",
    "analysis_frame": "fidelitymed.frame",
    "demo_study_path": "fidelitymed.simulate",
    "load_study": "fidelitymed.study.schema",
    "StudyData": "fidelitymed.study.schema",
    "run_study": "fidelitymed.pipeline",
    "StudyResults": "fidelitymed.pipeline",
    "simulate_study": "fidelitymed.simulate",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'fidelitymed' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
