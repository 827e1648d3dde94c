"""Completed analysis frames: imputed interview tables -> re-scored -> one analysis frame each.

Step 3 of the flow (``docs/study-analysis.md``), shared by the main imputation stage and by
item-level Boot-MI (:mod:`fidelitymed.study_boot_mi`).
"""

from __future__ import annotations

import pandas as pd

__all__ = ["completed_frames", "fill_from_auxiliary"]


def fill_from_auxiliary(frame: pd.DataFrame, auxiliary: pd.DataFrame) -> pd.DataFrame:
    """Fill the frame's missing client-level values (covariates, exposure) from the imputed auxiliary table."""
    aux = auxiliary.set_index("client") if "client" in auxiliary.columns else auxiliary
    frame = frame.copy()
    index = frame["client"]
    for col in aux.columns:
        if col in frame.columns and frame[col].isna().any():
            filled = index.map(aux[col])
            frame[col] = frame[col].where(frame[col].notna(), filled)
    return frame


def completed_frames(study, imputed, exposure: pd.DataFrame) -> list[pd.DataFrame]:
    """One analysis frame per completed interview table of ``imputed`` (an ImputedInterviews).

    Each table is re-scored with the study's scoring rules
    (:func:`fidelitymed.instruments.scoring.score_interviews`) and turned into the per-client
    frame (:func:`fidelitymed.frame.analysis_frame`); client-level values that were missing
    come from the imputation's completed auxiliary table.
    """
    from .frame import analysis_frame
    from .instruments.scoring import score_interviews

    config = study.config
    frames = []
    for k in range(len(imputed)):
        scores = score_interviews(imputed[k], config.scoring, schedule=config.schedule)
        frame = analysis_frame(study, scores, exposure=exposure, domains=False)
        frames.append(fill_from_auxiliary(frame, imputed.auxiliary[k]))
    return frames
