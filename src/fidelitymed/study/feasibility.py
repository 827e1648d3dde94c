"""Can ``run`` analyse this study? The checks ``validate`` and ``run`` share (issue 10).

A study whose four tables are valid can still be impossible to analyse: the models of
``analysis:`` need data the tables do not hold. :func:`feasibility_issues` finds every such
problem at once, before any imputation or bootstrap starts, each as a
:class:`~fidelitymed.errors.DataIssue` naming the file, row and column where there is one:

* every scheduled wave attended by someone, and every scheduled instrument answered by
  someone at its wave; with multiple imputation also every imputed item (an item nobody
  answered at a wave cannot be imputed);
* the analysed score of the mediator and the outcomes, and the fidelity exposure, observed for
  someone at every wave of ``analysis.waves``;
* clients in at least 2 teams; each case manager in one team only (clients are nested in case
  managers nested in teams, the levels of the ICCs);
* each covariate varies (a categorical one has >= 2 levels);
* per model (outcome x wave pair x exposure window, and the reciprocal hierarchical
  regressions) more usable rows than parameters. The parameters are those of the largest
  regression the model fits: PROCESS Model 4's outcome model ``Y ~ 1 + X + M + covariates``
  (Hayes 2022, ch. 4), a categorical covariate counting one dummy per level but the first. The
  usable rows are the complete cases (x, m, y and every covariate observed) when
  ``analysis.impute`` is false, and every client when it is true (multiple imputation
  completes every client x scheduled wave, van Buuren 2018, ch. 6).

The rules mirror what :func:`fidelitymed.pipeline.run_study` fits
(:func:`fidelitymed.frame.model_columns`, :func:`fidelitymed.stats.mediation.mediate`,
:func:`fidelitymed.stats.impute.impute_interviews`), so a study ``validate`` accepts is one
``run`` can analyse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import DataIssue

if TYPE_CHECKING:
    from .schema import StudyData

__all__ = ["feasibility_issues", "model_parameters", "require_feasible"]


def _w(wave: float) -> str:
    return f"{float(wave):g}"


def model_parameters(frame: pd.DataFrame, covariates: list[str], categorical: list[str]) -> int:
    """Coefficients of ``Y ~ 1 + X + M + covariates`` on ``frame`` (dummies: levels - 1 each)."""
    count = 3
    for column in covariates:
        if column in categorical:
            count += max(int(frame[column].dropna().nunique()) - 1, 0)
        else:
            count += 1
    return count


class _Feasibility:
    def __init__(self, study: StudyData) -> None:
        self.study = study
        self.config = study.config
        self.files = study.config.files
        self.issues: list[DataIssue] = []

    def add(self, table: str | None, row: int | None, column: str | None, value: Any, expected: str) -> None:
        file = None if table is None else getattr(self.files, table)
        file = getattr(file, "path", file)   # a REDCap export (files.interviews: {path, format: redcap, ...})
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and value.is_integer():
            value = int(value)   # 0, not 0.0, as the file shows it
        self.issues.append(DataIssue(file, row, column, value, expected))

    # ------------------------------------------------------------------------ nesting
    def nesting(self) -> None:
        clients = self.study.clients
        teams = pd.unique(clients["team"].dropna())
        if len(teams) < 2:
            self.add("clients", None, "team", teams[0] if len(teams) else None,
                     "clients in at least 2 teams (fidelity is a team-level variable: with one team it "
                     "does not vary)")
        first: dict[str, tuple[str, int]] = {}
        reported: set[str] = set()
        for pos, (cm, team) in enumerate(zip(clients["case_manager"], clients["team"], strict=True)):
            if pd.isna(cm) or pd.isna(team):
                continue
            if cm not in first:
                first[cm] = (team, pos + 2)
            elif first[cm][0] != team and cm not in reported:
                reported.add(cm)
                self.add("clients", pos + 2, "case_manager", cm,
                         f"a case manager of one team: {cm!r} is in team {first[cm][0]!r} at row {first[cm][1]} "
                         f"and in team {team!r} here (case managers are nested in teams; give a case manager "
                         f"who changed teams one id per team)")

    # ------------------------------------------------------------------------ waves
    def waves(self) -> set[tuple[str, float]]:
        """Attendance and instrument checks; returns the (instrument, wave) blocks nobody answered."""
        from ..instruments.scoring import instrument_declarations, instrument_items

        cfg = self.config
        interviews = self.study.interviews
        # items never scored (the Hope fillers; `unscored` of a declaration) need no answer
        fillers = {c for d in instrument_declarations(cfg.scoring).values() for c in getattr(d, "unscored", ())}
        empty_blocks: set[tuple[str, float]] = set()
        for wave, names in cfg.schedule.items():
            # a row without a date is a placeholder for a missed interview (it has no answers)
            rows = interviews[(interviews["wave"] == wave) & interviews["date"].notna()]
            if rows.empty:
                self.add("interviews", None, "wave", float(wave),
                         f"interviews at wave {_w(wave)} (it is scheduled in study.yaml, but no client has one)")
                empty_blocks.update((name, wave) for name in names)
                continue
            for name in names:
                items = [c for c in instrument_items(name, cfg.scoring) if c in rows.columns]
                answered = rows[items].notna()
                if not answered.to_numpy().any():
                    empty_blocks.add((name, wave))
                    self.add("interviews", None, items[0], None,
                             f"answers to {name} ({items[0]} .. {items[-1]}) from at least one client at wave "
                             f"{_w(wave)}: {name} is scheduled there but every item is empty")
                    continue
                if not cfg.analysis.impute:
                    continue
                for item in items:
                    if item not in fillers and not answered[item].any():
                        self.add("interviews", None, item, None,
                                 f"an answer from at least one client at wave {_w(wave)}: nobody answered "
                                 f"{item} there, so it cannot be imputed (analysis.impute: true)")
        return empty_blocks

    # ------------------------------------------------------------------------ models
    def models(self, empty_blocks: set[tuple[str, float]]) -> None:
        from ..exposure import study_exposure
        from ..frame import analysis_frame, exposure_at, model_columns, score_at

        cfg, a = self.config, self.config.analysis
        scores = self.study.scored_interviews()
        exposure = study_exposure(self.study, columns=["fidelity_total"])
        frame = analysis_frame(self.study, scores, exposure=exposure, domains=False)
        impute = bool(a.impute)

        # every analysed variable observed for someone (its items may all be present but unscorable)
        seen: set[str] = set()

        def observed(column: str, instrument: str, wave: float, role: str, score: str | None = None) -> None:
            if column in seen:
                return
            seen.add(column)
            nobody = column not in frame.columns or not frame[column].notna().any()
            if nobody and (instrument, float(wave)) not in empty_blocks:   # else reported as unanswered
                self.add("interviews", None, "wave", float(wave),
                         f"a {score or a.score_column(instrument)} score for at least one client at wave {_w(wave)} "
                         f"({role}): every client's is missing (too few items answered to score it)")
            elif not nobody:
                self._varies(frame, column, "interviews", "wave", float(wave), role)

        for i, pair in enumerate(a.waves):
            if a.parallel:
                for j, ((inst, _), col) in enumerate(zip(a.mediator_scores(), a.mediator_columns(), strict=True)):
                    observed(score_at(col, pair.mediator), inst, pair.mediator,
                             f"mediator analysis.mediator[{j}] of analysis.waves[{i}]", score=col)
            else:
                observed(score_at(a.score_column(a.mediator), pair.mediator), a.mediator, pair.mediator,
                         f"the mediator of analysis.waves[{i}]")
            for outcome in a.outcomes:
                observed(score_at(a.score_column(outcome), pair.outcome), outcome, pair.outcome,
                         f"an outcome of analysis.waves[{i}]")
                if "baseline" in a.covariates:
                    observed(score_at(a.score_column(outcome), a.baseline_wave), outcome, a.baseline_wave,
                             "the covariate 'baseline'")
        for wave in sorted({float(p.mediator) for p in a.waves}):
            for window in cfg.exposure.windows:
                column = exposure_at(wave, window)
                if column not in frame.columns or any((inst, wave) in empty_blocks for inst, _ in a.mediator_scores()):
                    continue
                if not frame[column].notna().any():
                    self.add("fidelity", None, "date", None,
                             f"a fidelity exposure for at least one alliance interview at wave {_w(wave)} "
                             f"({window}-day window): none has one (the window must overlap a team's "
                             f"assessments; see exposure.outside_assessments)")
                else:
                    self._varies(frame, column, "fidelity", None, None,
                                 f"the fidelity exposure X at wave {_w(wave)}, {window}-day window")

        self.covariates(frame)

        # enough usable rows per model
        specs = [model_columns(cfg, outcome, pair, window)
                 for pair in a.waves for outcome in a.outcomes for window in cfg.exposure.windows]
        failing: dict[tuple[str, float], list[tuple[int, int, int]]] = {}
        constant: set[tuple[str, float, str]] = set()
        for spec in specs:
            needed = [spec.x, *spec.mediators, spec.y, *spec.covariates]
            if any(c not in frame.columns for c in needed):
                continue
            usable = frame[needed] if impute else frame[needed].dropna()
            n, p = len(usable), model_parameters(usable, list(spec.covariates), list(spec.categorical)) + len(spec.mediators) - 1
            if n <= p:
                failing.setdefault((spec.outcome, spec.outcome_wave), []).append((spec.window, n, p))
            elif not impute:
                constant.update((spec.outcome, spec.outcome_wave, c) for c in needed if usable[c].nunique() < 2
                                and frame[c].dropna().nunique() >= 2)
        for (outcome, wave), fails in failing.items():
            windows = ", ".join(str(w) for w, _, _ in fails)
            n = min(f[1] for f in fails)
            p = max(f[2] for f in fails)
            what = "clients" if impute else "complete rows (x, m, y and every covariate observed; analysis.impute: false)"
            self.add(None, None, None, n,
                     f"more {what} than the {p} parameters of the mediation model of {outcome} at "
                     f"{_w(wave)} months (fidelity windows {windows} days)")
        for outcome, wave, column in sorted(constant):
            self.add(None, None, column, None,
                     f"{column!r} to vary among the complete rows of the mediation model of {outcome} at "
                     f"{_w(wave)} months (it takes one value there; analysis.impute: false keeps only "
                     f"complete rows)")
        self.hierarchical(frame, impute)

    def _varies(self, frame: pd.DataFrame, column: str, table: str, source: str | None, value: Any,
                role: str) -> None:
        """X, M and Y must vary: a constant one has no regression slope (mediate refuses it)."""
        values = frame[column].dropna()
        if values.nunique() == 1:
            self.add(table, None, source, value,
                     f"{column} ({role}) to vary among the clients: every client has {values.iloc[0]:g}")

    def covariates(self, frame: pd.DataFrame) -> None:
        """Each covariate varies among the clients; a categorical one has >= 2 levels."""
        a = self.config.analysis
        from ..frame import score_at

        for name in a.covariates:
            if name == "baseline":
                columns = [score_at(a.score_column(o), a.baseline_wave) for o in a.outcomes]
            else:
                columns = [name]
            for column in columns:
                if column not in frame.columns:
                    continue
                values = frame[column].dropna()
                table, source = (("teams", "site") if name == "site" else
                                 ("interviews", "ace_1") if name == "ace" else
                                 ("interviews", "wave") if name == "baseline" else ("clients", name))
                levels = pd.unique(values)
                if len(levels) >= 2:
                    continue
                if name == "baseline" and len(levels) == 0:
                    continue   # reported as a score nobody has
                kind = "categorical covariate" if name in a.categorical else "covariate"
                found = levels[0] if len(levels) else None
                detail = (f"the {kind} {column!r} to take at least 2 different values among the clients "
                          f"(every client has the same value, so its effect cannot be estimated)" if len(levels)
                          else f"values of the {kind} {column!r} for at least some clients (the column is empty)")
                self.add(table, None, source, found, detail)

    def hierarchical(self, frame: pd.DataFrame, impute: bool) -> None:
        """The reciprocal regressions: alliance at a later wave on covariates + the earlier outcome."""
        from ..frame import model_columns, score_at

        cfg, a = self.config, self.config.analysis
        pairs = list(a.waves)
        if a.parallel:
            return   # not run with parallel mediators (docs/study-analysis.md)
        for i in range(1, len(pairs)):
            prev, cur = pairs[i - 1], pairs[i]
            if not prev.outcome < cur.mediator:
                continue
            y = score_at(a.score_column(a.mediator), cur.mediator)
            for outcome in a.outcomes:
                spec = model_columns(cfg, outcome, prev)
                block2 = score_at(a.score_column(outcome), prev.outcome)
                needed = [y, *spec.covariates, block2]
                if any(c not in frame.columns for c in needed):
                    continue
                usable = frame[needed] if impute else frame[needed].dropna()
                p = model_parameters(usable, list(spec.covariates), list(spec.categorical)) - 1
                if len(usable) <= p:
                    what = "clients" if impute else "complete rows (analysis.impute: false)"
                    self.add(None, None, None, len(usable),
                             f"more {what} than the {p} parameters of the hierarchical regression of "
                             f"{y} on the covariates and {block2}")


def feasibility_issues(study: StudyData) -> list[DataIssue]:
    """Every reason ``run`` could not analyse this (table-valid) study; empty when it can.

    Parameters
    ----------
    study
        A :class:`~fidelitymed.study.schema.StudyData` whose tables passed validation.

    Returns
    -------
    list of DataIssue
        Nesting first, then waves and instruments, then the models.
    """
    check = _Feasibility(study)
    check.nesting()
    empty_blocks = check.waves()
    check.models(empty_blocks)
    return check.issues


def require_feasible(study: StudyData) -> None:
    """Raise :class:`~fidelitymed.errors.StudyDataError` listing :func:`feasibility_issues`, if any.

    :func:`~fidelitymed.study.schema.load_study` already does this for the configuration in
    ``study.yaml``; call it again after changing the analysis (e.g. ``impute=False``).
    """
    from ..errors import StudyDataError

    issues = feasibility_issues(study)
    if issues:
        raise StudyDataError(issues)
