"""``fidelitymed template DIR``: an empty, commented study folder.

Writes ``study.yaml`` (every key with its default and a comment; parsing it gives exactly
the default configuration) and the four tables as CSV files holding only their header row,
with the columns the default configuration requires. Refuses to write into an existing
non-empty folder.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from ..errors import FidelityMedError
from ..instruments.declaration import builtin_declaration
from ..instruments.scoring import instrument_declarations
from .config import DERIVED_COVARIATES, StudyConfig, default_config
from .io import write_text


def template_yaml() -> str:
    """The commented ``study.yaml`` template."""
    return resources.files("fidelitymed.study").joinpath("templates", "study.yaml").read_text(encoding="utf-8")


def table_headers(config: StudyConfig | None = None) -> dict[str, list[str]]:
    """Header of each table for ``config`` (default: the paper's)."""
    cfg = config or default_config()
    fid = list(builtin_declaration("fidelity", cfg.scoring.fidelity).items)
    covariates = [c for c in cfg.analysis.covariates if c not in DERIVED_COVARIATES]
    scheduled = {name for names in cfg.schedule.values() for name in names}
    # built-in and declared instruments (declarations ride on cfg.scoring), in declaration order
    items = [c for name, decl in instrument_declarations(cfg.scoring).items() if name in scheduled
             for c in decl.items]
    return {
        "teams": ["team", "organization", "site", "province"],
        "fidelity": ["team", "date", *fid],
        "clients": ["client", "team", "case_manager", "enrollment_date", *covariates],
        "interviews": ["client", "wave", "date", *items],
    }


def write_template(directory: str | os.PathLike) -> Path:
    """Write an empty, commented study folder into ``directory`` and return its path.

    Raises
    ------
    FidelityMedError
        If ``directory`` exists and is not empty, or is a file.
    """
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FidelityMedError(f"{target}: exists and is not an empty folder; expected a new or empty folder "
                               "(nothing was written)")
    target.mkdir(parents=True, exist_ok=True)
    write_text(target / "study.yaml", template_yaml())
    for name, header in table_headers().items():
        write_text(target / f"{name}.csv", ",".join(header) + "\n")
    return target
