"""Synthetic team-fidelity -> alliance -> outcome studies with known true effects.

:func:`simulate_study` writes a complete study folder in the documented format
(``docs/study-format.md``: ``study.yaml``, ``teams.csv``, ``fidelity.csv``, ``clients.csv``,
``interviews.csv``) plus ``truth.json``, the parameters that generated it. The default design
is the SMCM study's (Methods of the study text): 14 teams in 7 organizations in Ontario,
Newfoundland and Labrador and Quebec; 311 clients enrolled 2014-10-09 to 2016-08-24;
interviews at 0, 4.5, 9, 13.5 and 18 months; team fidelity assessed at about 0, 6, 12, 18,
24 and 36 months (one team stops after four), rising from moderate toward the
high-fidelity threshold of 32.

How the truth stays recoverable
-------------------------------
The structural model is defined on the *observed, scored* scales, so ordinary least squares
on the analysis frame is unbiased for the values in ``truth.json``:

1. team fidelity item ratings are scored (:func:`fidelitymed.instruments.score_fidelity`);
   the exposure ``X`` of each alliance interview is the mean of the daily interpolated team
   total over the 180 days before it (:mod:`fidelitymed.exposure`, the analysis' own code);
2. the alliance target ``M* = alliance_intercept + a X + covariates + u_team + u_cm + e`` on
   the RPRS 0-100 metric; every item is a *stochastic rounding* of an item-level target whose
   mean is ``t = 1 + 3 M*/100`` (``item = floor(t) + Bernoulli(t - floor(t))``), so
   ``E[scored RPRS | M*] = M*`` whenever ``M*`` lies inside the scale;
3. each outcome target ``Y* = intercept + c' X + b M + beta Y_0 + covariates + u_team + u_cm + e``
   uses the *scored* (prorated) alliance ``M`` and baseline ``Y_0``, and its items are again
   stochastic roundings, so ``E[scored Y | Y*] = Y*``.

Random intercepts are drawn independently for every equation, so they are independent of
every regressor of every other equation; missingness depends only on fully observed client
covariates (missing at random given the model's covariates), so complete-case OLS is unbiased
too. Team random intercepts make the OLS standard errors too small (clustered data): check
recovery with zero team/case-manager variance or with many teams, as ``tests/test_simulate.py``
does. Clipping at a scale's bounds is the one source of bias; the share of clipped targets is
reported in ``truth.json`` (``realized.clipped_share``) and is well under 1% by default.

Randomness enters only through keyed :mod:`fidelitymed.seeding` children (one stream per
component), so one seed gives byte-identical files.

References
----------
The SMCM study text (``shared/reference``): design, 11.6% scale-level missing data, ICCs
0.02-0.12, a = 0.65, b = 0.10 (QOLI-20, 9 m), 0.21 (PGI, 18 m), 0.05 (MCAS, 9 m),
0.07 (Hope, 18 m). Stochastic rounding: Croci et al. (2022), *R. Soc. Open Sci.* 9:211631.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, FidelityMedError
from .seeding import generator

__all__ = ["SimulationParameters", "SimulatedStudy", "simulate_tables", "simulate_study", "demo_study_path",
           "DEMO_SEED", "OUTCOMES", "COVARIATES"]

#: the seed of the shipped demo study (``fidelitymed/data/demo``)
DEMO_SEED = 20241126
OUTCOMES: tuple[str, ...] = ("qoli20", "pgi", "hope", "mcas")
#: client covariates of every structural equation (site enters through team effects only)
COVARIATES: tuple[str, ...] = ("age", "gender", "housing", "employment", "education", "long_hospitalization",
                               "ace")
_DAYS_PER_MONTH = 365.25 / 12
_SCHEDULE: dict[float, tuple[str, ...]] = {0.0: ("qoli20", "pgi", "hope", "mcas", "ace"), 4.5: ("rprs",),
                                          9.0: ("qoli20", "pgi", "hope", "mcas"), 13.5: ("rprs",),
                                          18.0: ("qoli20", "pgi", "hope", "mcas")}
#: the analysed score column of each instrument (fidelitymed.instruments.scoring names)
_SCORE = {"rprs": "rprs_total", "qoli20": "qoli20_total", "pgi": "pgi_index", "hope": "hope_total",
          "mcas": "mcas_total", "ace": "ace_total"}
#: latent range of each structural target (= range of the analysed score)
_RANGE = {"rprs": (0.0, 100.0), "qoli20": (20.0, 140.0), "pgi": (0.0, 100.0), "hope": (8.0, 64.0),
          "mcas": (17.0, 85.0)}


def _wave_map(values: Mapping[Any, float]) -> dict[float, float]:
    return {float(k): float(v) for k, v in values.items()}


def _by_outcome(**values: Mapping[Any, float]) -> dict[str, dict[float, float]]:
    return {name: _wave_map(v) for name, v in values.items()}


# Covariate effects (own units per covariate unit). Baseline equations describe who enters the
# program; follow-up equations condition on the baseline score, so their effects are smaller.
_BASELINE_COVARIATES = {
    "qoli20": {"age": 0.05, "gender": 1.0, "housing": 5.0, "employment": 4.0, "education": 1.0,
               "long_hospitalization": -3.0, "ace": -1.0},
    "pgi": {"age": 0.0, "gender": 1.0, "housing": 4.0, "employment": 3.0, "education": 1.0,
            "long_hospitalization": -2.0, "ace": -1.0},
    "hope": {"age": 0.0, "gender": 0.5, "housing": 1.5, "employment": 1.5, "education": 0.5,
             "long_hospitalization": -1.0, "ace": -0.4},
    "mcas": {"age": 0.05, "gender": 0.5, "housing": 2.0, "employment": 2.0, "education": 0.5,
             "long_hospitalization": -2.0, "ace": -0.3},
}


@dataclass(frozen=True)
class SimulationParameters:
    """Every setting of the simulated study; defaults follow the SMCM study.

    Wave-keyed mappings use months (``4.5``, ``9``, ``18``); instrument keys are codebook names
    (``rprs``, ``qoli20``, ``pgi``, ``hope``, ``mcas``). Change fields with
    :meth:`replace` or as keyword arguments of :func:`simulate_study`.
    """

    # ---- design
    n_clients: int = 311
    n_teams: int = 14
    #: one entry per organization (= site): its province. Teams are dealt to organizations in turn.
    organization_provinces: tuple[str, ...] = ("Ontario", "Ontario", "Ontario", "Ontario",
                                               "Newfoundland and Labrador", "Quebec", "Quebec")
    #: case managers per team, drawn uniformly from this inclusive range
    case_managers_per_team: tuple[int, int] = (3, 6)
    #: Dirichlet concentration of team sizes (large = equal teams)
    team_size_concentration: float = 8.0
    enrollment_start: str = "2014-10-09"
    enrollment_end: str = "2016-08-24"
    waves: tuple[float, ...] = (0.0, 4.5, 9.0, 13.5, 18.0)
    #: baseline interview this many days after enrolment (paper: enrolled <= 6 weeks before baseline)
    baseline_interview_days: tuple[int, int] = (1, 42)
    #: follow-up interviews within +- this many days of enrolment + wave months
    interview_jitter_days: int = 21
    # ---- team fidelity
    assessment_months: tuple[float, ...] = (0.0, 6.0, 12.0, 18.0, 24.0, 36.0)
    first_assessment_between: tuple[str, str] = ("2014-08-01", "2014-09-30")
    assessment_jitter_days: int = 21
    #: teams that stop early, and how many assessments they complete
    dropout_teams: int = 1
    dropout_assessments: int = 4
    #: team total (8-40) at baseline and its plateau; total(t) = start + (plateau - start)(1 - exp(-t/tau))
    fidelity_start_mean: float = 23.5
    fidelity_start_sd: float = 2.0
    fidelity_plateau_mean: float = 32.5
    fidelity_plateau_sd: float = 1.5
    fidelity_time_constant_months: float = 14.0
    fidelity_noise_sd: float = 0.7
    #: SD of a team's domain profile around total/8, and the spread of items around their domain
    fidelity_domain_sd: float = 0.35
    fidelity_item_spread: float = 0.5
    #: exposure window (days before the alliance interview) used in the structural model
    exposure_window: int = 180
    # ---- client covariates
    age_mean: float = 40.0
    age_sd: float = 12.0
    age_range: tuple[int, int] = (18, 75)
    p_woman: float = 0.42
    p_stable_housing: float = 0.55
    p_employed: float = 0.12
    education_probs: tuple[float, float, float] = (0.35, 0.35, 0.30)
    p_long_hospitalization: float = 0.25
    #: each client's ACE items are Bernoulli(expit(N(mean, sd))) -- mean ACE score about 4
    ace_logit_mean: float = -0.4
    ace_logit_sd: float = 1.3
    # ---- structural model: alliance (RPRS 0-100)
    a: Mapping[float, float] = field(default_factory=lambda: _wave_map({4.5: 0.65, 13.5: 0.63}))
    alliance_intercept: Mapping[float, float] = field(default_factory=lambda: _wave_map({4.5: 45.0, 13.5: 45.5}))
    alliance_covariates: Mapping[str, float] = field(default_factory=lambda: {
        "age": 0.10, "gender": 1.5, "housing": 1.0, "employment": 0.5, "education": 0.5,
        "long_hospitalization": -1.0, "ace": -0.3})
    # ---- structural model: outcomes (own units)
    #: which alliance wave mediates which outcome wave (the paper: 4.5 -> 9, 13.5 -> 18)
    wave_pairs: Mapping[float, float] = field(default_factory=lambda: _wave_map({9: 4.5, 18: 13.5}))
    b: Mapping[str, Mapping[float, float]] = field(default_factory=lambda: _by_outcome(
        qoli20={9: 0.10, 18: 0.16}, pgi={9: 0.08, 18: 0.21}, hope={9: 0.04, 18: 0.07}, mcas={9: 0.05, 18: 0.04}))
    c_prime: Mapping[str, Mapping[float, float]] = field(default_factory=lambda: _by_outcome(
        qoli20={9: 0.0, 18: 0.0}, pgi={9: 0.0, 18: 0.0}, hope={9: 0.0, 18: 0.0}, mcas={9: 0.0, 18: 0.0}))
    #: effect of the (scored) baseline outcome on the follow-up outcome
    baseline_effect: Mapping[str, float] = field(default_factory=lambda: {
        "qoli20": 0.5, "pgi": 0.4, "hope": 0.5, "mcas": 0.55})
    #: intercepts of the baseline (wave 0) and follow-up equations
    outcome_intercept: Mapping[str, Mapping[float, float]] = field(default_factory=lambda: _by_outcome(
        qoli20={0: 80.0, 9: 38.0, 18: 39.0}, pgi={0: 42.0, 9: 22.0, 18: 16.5},
        hope={0: 38.0, 9: 18.0, 18: 17.0}, mcas={0: 55.0, 9: 22.5, 18: 24.0}))
    baseline_covariates: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: {k: dict(v) for k, v in _BASELINE_COVARIATES.items()})
    followup_covariates: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: {k: {c: e / 2 for c, e in v.items()} for k, v in _BASELINE_COVARIATES.items()})
    # ---- variance components: total residual SD of each equation and its split into
    # team / case-manager / client shares (the conditional ICCs of the latent target)
    residual_sd: Mapping[str, Mapping[float, float]] = field(default_factory=lambda: _by_outcome(
        rprs={4.5: 11.0, 13.5: 11.0}, qoli20={0: 16.0, 9: 13.0, 18: 13.0}, pgi={0: 15.0, 9: 14.0, 18: 14.0},
        hope={0: 8.0, 9: 7.0, 18: 7.0}, mcas={0: 8.0, 9: 7.0, 18: 7.0}))
    icc_team: Mapping[str, Mapping[float, float]] = field(default_factory=lambda: _by_outcome(
        rprs={4.5: 0.05, 13.5: 0.08}, qoli20={0: 0.03, 9: 0.04, 18: 0.08}, pgi={0: 0.03, 9: 0.03, 18: 0.08},
        hope={0: 0.03, 9: 0.03, 18: 0.04}, mcas={0: 0.04, 9: 0.08, 18: 0.10}))
    icc_case_manager: Mapping[str, Mapping[float, float]] = field(default_factory=lambda: _by_outcome(
        rprs={4.5: 0.02, 13.5: 0.02}, qoli20={0: 0.02, 9: 0.02, 18: 0.02}, pgi={0: 0.02, 9: 0.02, 18: 0.02},
        hope={0: 0.02, 9: 0.02, 18: 0.02}, mcas={0: 0.02, 9: 0.02, 18: 0.02}))
    #: multiplier of every team and case-manager variance share: 0 = independent clients (OLS
    #: standard errors then valid, e.g. to check recovery), 1 = the ICCs above
    clustering: float = 1.0
    #: correlation of a client's residuals across the follow-up waves of one instrument
    wave_residual_correlation: float = 0.4
    #: half-width (item units) of the zero-mean spread of items around their target
    item_noise: float = 0.6
    # ---- missing data
    #: target share of scheduled scale scores that are missing (attrition included); paper: 11.6%
    missing_share: float = 0.116
    #: probability of leaving the study at each follow-up wave (average over clients)
    attrition_rate: float = 0.04
    #: log-odds effects of client covariates on attrition and on skipped scales (MAR)
    missing_covariate_effects: Mapping[str, float] = field(default_factory=lambda: {
        "age": -0.02, "housing": -0.5, "employment": -0.3, "long_hospitalization": 0.4})
    #: share of single items left blank on forms whose scoring prorates (RPRS, QOLI-20, MCAS, Hope fillers)
    item_missing_rate: float = 0.02
    #: share of skipped QOLI-20 items coded 8/9 (don't know / not applicable) instead of blank
    missing_code_share: float = 0.3
    #: reverse-keyed items per instrument (rprs, qoli20, mcas), written to ``scoring.<instrument>.reverse``
    #: of study.yaml; their answers are stored flipped (min + max - x), as on a real form
    reverse_items: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def replace(self, **changes: Any) -> SimulationParameters:
        """A copy with ``changes`` applied (unknown names raise :class:`ConfigError`)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ConfigError(f"unknown simulation parameter(s) {unknown}; expected some of {sorted(names)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (wave keys as strings such as ``"4.5"``)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first inconsistent parameter."""
        problems = []
        if self.n_clients < 1:
            problems.append(f"n_clients must be >= 1; got {self.n_clients}")
        if self.n_teams < 1:
            problems.append(f"n_teams must be >= 1; got {self.n_teams}")
        if not self.organization_provinces:
            problems.append("organization_provinces needs at least one organization")
        lo, hi = self.case_managers_per_team
        if not 1 <= lo <= hi:
            problems.append(f"case_managers_per_team must be (low, high) with 1 <= low <= high; got {(lo, hi)}")
        if tuple(sorted(self.waves)) != tuple(self.waves) or 0.0 not in self.waves:
            problems.append(f"waves must increase and start at 0; got {self.waves}")
        for wave, alliance_wave in self.wave_pairs.items():
            if wave not in self.waves or alliance_wave not in self.waves or alliance_wave >= wave:
                problems.append(f"wave_pairs {wave}: {alliance_wave} must name earlier alliance wave of waves")
        if not 0 <= self.dropout_teams <= self.n_teams:
            problems.append(f"dropout_teams must be 0..n_teams; got {self.dropout_teams}")
        if not 1 <= self.dropout_assessments <= len(self.assessment_months):
            problems.append(f"dropout_assessments must be 1..{len(self.assessment_months)}")
        if not 0 <= self.missing_share < 1:
            problems.append(f"missing_share must be in [0, 1); got {self.missing_share}")
        if not 0 <= self.attrition_rate < 1:
            problems.append(f"attrition_rate must be in [0, 1); got {self.attrition_rate}")
        if not 0 <= self.item_missing_rate < 1:
            problems.append(f"item_missing_rate must be in [0, 1); got {self.item_missing_rate}")
        if not 0 <= self.wave_residual_correlation <= 1:
            problems.append("wave_residual_correlation must be in [0, 1]")
        if abs(sum(self.education_probs) - 1) > 1e-9:
            problems.append("education_probs must sum to 1")
        if self.clustering < 0:
            problems.append(f"clustering must be >= 0; got {self.clustering}")
        for name, waves in self.icc_team.items():
            for wave, value in waves.items():
                value *= self.clustering
                cm = self.icc_case_manager.get(name, {}).get(wave, 0.0) * self.clustering
                if value < 0 or cm < 0 or value + cm >= 1:
                    problems.append(f"icc_team + icc_case_manager of {name} at {wave:g} must be in [0, 1)")
        pair_waves = set(self.wave_pairs)
        for name in OUTCOMES:
            for what, mapping in (("b", self.b), ("c_prime", self.c_prime)):
                missing = pair_waves - set(mapping.get(name, {}))
                if missing:
                    problems.append(f"{what}[{name!r}] lacks waves {sorted(missing)}")
        if problems:
            raise ConfigError("simulation parameters: " + "; ".join(problems))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {(f"{k:g}" if isinstance(k, float) else str(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if not math.isfinite(value) else value
    return value


@dataclass(frozen=True)
class SimulatedStudy:
    """A simulated study in memory: the four tables, its ``study.yaml`` and the truth."""

    teams: pd.DataFrame
    fidelity: pd.DataFrame
    clients: pd.DataFrame
    interviews: pd.DataFrame
    config: dict[str, Any]
    truth: dict[str, Any]
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """The truth (what ``truth.json`` holds)."""
        return self.truth

    def to_frame(self) -> pd.DataFrame:
        """The true paths, one row per outcome x wave."""
        return pd.DataFrame(self.truth["paths"]).sort_values(["outcome", "wave"], kind="stable").reset_index(drop=True)

    def summary(self) -> str:
        """A short text description of the design and the true paths."""
        d, r = self.truth["design"], self.truth["realized"]
        lines = [f"Simulated study (seed {self.truth['seed']}, fidelitymed {self.truth['package_version']})",
                 f"  {d['n_clients']} clients, {d['n_teams']} teams in {d['n_organizations']} organizations, "
                 f"{d['n_case_managers']} case managers, {d['n_assessments']} fidelity assessments",
                 f"  scale scores missing: {100 * r['missing_share']:.1f}% (target "
                 f"{100 * self.truth['missing']['target_share']:.1f}%), attrition {100 * r['attrition_share']:.1f}% "
                 f"of scheduled scores",
                 "  true paths (a: alliance points per fidelity point; b, c': outcome units):"]
        for row in self.to_frame().itertuples():
            lines.append(f"    {row.outcome:<7} {row.wave:>4g} m  a={row.a:.2f}  b={row.b:.2f}  "
                         f"c'={row.c_prime:.2f}  ab={row.indirect:.3f}")
        if self.path is not None:
            lines.append(f"  written to {self.path}")
        return "\n".join(lines)

    def write(self, out_dir: str | os.PathLike, *, force: bool = False) -> Path:
        """Write the study folder atomically (see :func:`simulate_study`)."""
        from .study.io import atomic_directory

        target = Path(out_dir)
        if target.exists() and not target.is_dir():
            raise FidelityMedError(f"output {str(target)!r} exists and is not a folder")
        empty = target.is_dir() and not any(target.iterdir())
        if target.exists() and not empty and not force:
            raise FidelityMedError(f"output folder {str(target)!r} exists and is not empty; use --force to replace it")
        with atomic_directory(target, force=True) as tmp:
            _write_folder(self, tmp)
        return target


# ------------------------------------------------------------------------------- public API
def simulate_tables(seed: int, params: SimulationParameters | None = None, **changes: Any) -> SimulatedStudy:
    """Simulate a study in memory.

    Parameters
    ----------
    seed
        Non-negative integer; the same seed and parameters give identical tables.
    params
        :class:`SimulationParameters` (default: the SMCM design).
    **changes
        Parameter fields to override, e.g. ``n_clients=2000, n_teams=60``.

    Returns
    -------
    SimulatedStudy
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer; got {seed!r}")
    p = (params or SimulationParameters()).replace(**changes) if changes else (params or SimulationParameters())
    p.validate()
    return _Simulator(int(seed), p).run()


def simulate_study(out_dir: str | os.PathLike, seed: int, n_clients: int | None = None, *,
                   params: SimulationParameters | None = None, force: bool = False,
                   **changes: Any) -> SimulatedStudy:
    """Write a complete synthetic study folder with known true effects.

    The folder holds ``study.yaml``, ``teams.csv``, ``fidelity.csv``, ``clients.csv``,
    ``interviews.csv`` (format: ``docs/study-format.md``) and ``truth.json`` (true paths a, b,
    c' per outcome and wave, covariate effects, variance components and implied ICCs, missing
    share, seed, package version). It is written atomically: built beside ``out_dir`` and
    renamed into place.

    Parameters
    ----------
    out_dir
        Target folder. An existing non-empty folder is replaced only with ``force=True``.
    seed
        Non-negative integer; one seed gives byte-identical files.
    n_clients
        Number of clients; default ``params.n_clients`` (the study: 311).
    params
        :class:`SimulationParameters` (default: the SMCM design); ``n_clients`` and ``changes``
        are applied on top.
    force
        Replace an existing non-empty ``out_dir``.
    **changes
        Any other :class:`SimulationParameters` field, e.g. ``n_teams=40``, ``missing_share=0``.

    Returns
    -------
    SimulatedStudy
        The tables and truth, with ``path`` set.

    Examples
    --------
    >>> from fidelitymed import simulate_study
    >>> study = simulate_study("my-sim", seed=7)          # doctest: +SKIP
    >>> study.truth["paths"][0]["a"]                       # doctest: +SKIP
    0.65
    """
    if n_clients is not None:
        changes["n_clients"] = n_clients
    study = simulate_tables(seed, params, **changes)
    path = study.write(out_dir, force=force)
    return dataclasses.replace(study, path=path)


def demo_study_path() -> Path:
    """Folder of the demo study shipped in the package (simulated, seed :data:`DEMO_SEED`, n = 311).

    Regenerate it with ``python -m fidelitymed.simulate --demo``.
    """
    return Path(str(resources.files("fidelitymed").joinpath("data", "demo")))


# ------------------------------------------------------------------------------ simulator
def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _calibrate_intercept(linear: np.ndarray, target: float, weights: np.ndarray | None = None) -> float:
    """Intercept ``c`` with weighted mean of ``expit(c + linear) == target`` (bisection, deterministic)."""
    if target <= 0:
        return -np.inf
    weights = np.ones_like(linear) if weights is None else weights

    def mean(c: float) -> float:
        return float(np.sum(weights * _expit(c + linear)) / np.sum(weights))

    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if mean(mid) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _stochastic_round(rng: np.random.Generator, targets: np.ndarray) -> np.ndarray:
    """``floor(t) + Bernoulli(t - floor(t))``: an integer whose expectation is exactly ``t``."""
    base = np.floor(targets)
    return base + (rng.random(targets.shape) < (targets - base))


def _item_targets(rng: np.random.Generator, t: np.ndarray, n_items: int, low: float, high: float,
                  spread: float) -> np.ndarray:
    """Item-level targets: ``t`` plus zero-mean uniform noise that never leaves ``[low, high]``.

    The half-width shrinks near the bounds so no item target is clipped and the mean of the
    items stays exactly ``t``.
    """
    t = np.clip(t, low, high)[:, None]
    width = np.minimum(spread, np.minimum(t - low, high - t))
    return t + width * rng.uniform(-1.0, 1.0, size=(t.shape[0], n_items))


def _date_strings(days: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(days.astype("datetime64[D]"), unit="D")


class _Simulator:
    """One simulation run; stages in the order of the data flow."""

    def __init__(self, seed: int, params: SimulationParameters) -> None:
        from .instruments.codebook import load_codebook
        from .study.config import parse_config

        self.seed = seed
        self.p = params
        self.codebook = load_codebook()
        self.config = parse_config(_study_yaml(params, seed), source="simulated study.yaml")
        self.clip: dict[str, float] = {}

    def rng(self, *key: str | int) -> np.random.Generator:
        return generator(self.seed, ("simulate", *key))

    # ---------------------------------------------------------------------------- design
    def teams(self) -> None:
        p, rng = self.p, self.rng("teams")
        n_org = len(p.organization_provinces)
        width = max(2, len(str(p.n_teams)))
        team_org = np.arange(p.n_teams) % n_org
        self.team_ids = np.array([f"T{j + 1:0{width}d}" for j in range(p.n_teams)])
        self.teams_df = pd.DataFrame({
            "team": self.team_ids,
            "organization": [f"ORG{k + 1}" for k in team_org],
            "site": (team_org + 1).astype(int),
            "province": [p.organization_provinces[k] for k in team_org],
        })
        lo, hi = p.case_managers_per_team
        self.n_cm = rng.integers(lo, hi + 1, size=p.n_teams)
        self.dropout = np.zeros(p.n_teams, dtype=bool)
        if p.dropout_teams:
            self.dropout[rng.choice(p.n_teams, size=p.dropout_teams, replace=False)] = True
        # team fidelity trajectories and assessment dates
        start = np.datetime64(p.first_assessment_between[0], "D").astype(int)
        stop = np.datetime64(p.first_assessment_between[1], "D").astype(int)
        first = rng.integers(start, stop + 1, size=p.n_teams)
        months = np.asarray(p.assessment_months, dtype=float)
        jitter = rng.integers(-p.assessment_jitter_days, p.assessment_jitter_days + 1, size=(p.n_teams, months.size))
        jitter[:, 0] = 0
        self.assessment_days = first[:, None] + np.round(months * _DAYS_PER_MONTH).astype(int) + jitter
        level0 = rng.normal(p.fidelity_start_mean, p.fidelity_start_sd, size=p.n_teams)
        plateau = rng.normal(p.fidelity_plateau_mean, p.fidelity_plateau_sd, size=p.n_teams)
        growth = 1.0 - np.exp(-months / p.fidelity_time_constant_months)
        latent = level0[:, None] + (plateau - level0)[:, None] * growth[None, :]
        latent = latent + rng.normal(0.0, p.fidelity_noise_sd, size=latent.shape)
        self.n_assess = np.where(self.dropout, p.dropout_assessments, months.size)
        self.fidelity_latent = latent

    def fidelity_items(self) -> None:
        from .instruments.codebook import fidelity_items

        p, rng = self.p, self.rng("fidelity")
        domains = self.config.scoring.fidelity.domains
        included = self.config.scoring.fidelity.included_domains
        cb = self.codebook["fidelity"]
        low, high = float(cb["min"]), float(cb["max"])
        profile = rng.normal(0.0, p.fidelity_domain_sd, size=(p.n_teams, len(domains)))
        inc = np.array([d in included for d in domains])
        # a team's profile sums to zero over the scored domains, so the total stays on target
        profile[:, inc] -= profile[:, inc].mean(axis=1, keepdims=True)
        rows, item_blocks = [], []
        names = fidelity_items(domains)
        for j in range(p.n_teams):
            for k in range(self.n_assess[j]):
                rows.append((self.team_ids[j], self.assessment_days[j, k]))
        team_index = np.array([np.flatnonzero(self.team_ids == t)[0] for t, _ in rows])
        assess_index = np.concatenate([np.arange(n) for n in self.n_assess])
        domain_target = self.fidelity_latent[team_index, assess_index][:, None] / inc.sum() + profile[team_index]
        for d, domain in enumerate(domains):
            targets = _item_targets(rng, domain_target[:, d], len(names[domain]), low, high, p.fidelity_item_spread)
            item_blocks.append(pd.DataFrame(_stochastic_round(rng, targets).astype(int), columns=names[domain]))
        frame = pd.DataFrame({"team": [r[0] for r in rows], "date": _date_strings(np.array([r[1] for r in rows]))})
        self.fidelity_df = pd.concat([frame] + item_blocks, axis=1)

    def clients(self) -> None:
        p, rng = self.p, self.rng("clients")
        n = p.n_clients
        probs = rng.dirichlet(np.full(p.n_teams, p.team_size_concentration))
        if n >= p.n_teams:
            sizes = 1 + rng.multinomial(n - p.n_teams, probs)
        else:
            sizes = rng.multinomial(n, probs)
        team = np.repeat(np.arange(p.n_teams), sizes)
        cm = rng.integers(0, self.n_cm[team])
        start = np.datetime64(p.enrollment_start, "D").astype(int)
        end = np.datetime64(p.enrollment_end, "D").astype(int)
        # a team that dropped out enrolled no one after its last assessment
        last = self.assessment_days[np.arange(p.n_teams), self.n_assess - 1]
        team_end = np.where(self.dropout, np.minimum(end, last), end)
        enrol = start + np.floor(rng.random(n) * (team_end[team] - start + 1)).astype(int)
        order = np.lexsort((team, enrol))
        team, cm, enrol = team[order], cm[order], enrol[order]
        self.client_team, self.client_cm_local, self.enrol = team, cm, enrol
        # global case-manager index (for random effects)
        offsets = np.concatenate([[0], np.cumsum(self.n_cm)[:-1]])
        self.client_cm = offsets[team] + cm
        age = np.clip(np.round(rng.normal(p.age_mean, p.age_sd, n)), *p.age_range).astype(int)
        self.cov = pd.DataFrame({
            "age": age,
            "gender": (rng.random(n) < p.p_woman).astype(int),
            "housing": (rng.random(n) < p.p_stable_housing).astype(int),
            "employment": (rng.random(n) < p.p_employed).astype(int),
            "education": rng.choice([1, 2, 3], size=n, p=list(p.education_probs)),
            "long_hospitalization": (rng.random(n) < p.p_long_hospitalization).astype(int),
        })
        self.ace_p = _expit(rng.normal(p.ace_logit_mean, p.ace_logit_sd, n))
        width = max(4, len(str(n)))
        self.client_ids = np.array([f"C{i + 1:0{width}d}" for i in range(n)])
        cm_label = np.array([f"{self.team_ids[t]}-CM{c + 1}" for t, c in zip(team, cm)])
        self.clients_df = pd.concat([pd.DataFrame({
            "client": self.client_ids, "team": self.team_ids[team], "case_manager": cm_label,
            "enrollment_date": _date_strings(enrol)}), self.cov], axis=1)

    def interview_dates(self) -> None:
        p, rng = self.p, self.rng("dates")
        n = p.n_clients
        days = np.empty((n, len(p.waves)), dtype=int)
        lo, hi = p.baseline_interview_days
        for w, wave in enumerate(p.waves):
            if wave == 0:
                days[:, w] = self.enrol + rng.integers(lo, hi + 1, size=n)
            else:
                jitter = rng.integers(-p.interview_jitter_days, p.interview_jitter_days + 1, size=n)
                days[:, w] = self.enrol + int(round(wave * _DAYS_PER_MONTH)) + jitter
        # jitter never reorders waves at the defaults; keep dates strictly increasing regardless
        for w in range(1, days.shape[1]):
            days[:, w] = np.maximum(days[:, w], days[:, w - 1] + 1)
        self.interview_days = days

    # -------------------------------------------------------------------------- exposure
    def exposure(self) -> None:
        from .instruments import score_fidelity

        scores = score_fidelity(self.fidelity_df, self.config.scoring.fidelity)
        totals = pd.DataFrame({"team": self.fidelity_df["team"], "date": pd.to_datetime(self.fidelity_df["date"]),
                               "fidelity_total": scores["fidelity_total"].to_numpy()})
        self.X: dict[float, np.ndarray] = {}
        for alliance_wave in sorted(set(self.p.wave_pairs.values())):
            w = self.p.waves.index(alliance_wave)
            dates = pd.to_datetime(_date_strings(self.interview_days[:, w]))
            self.X[alliance_wave] = _window_exposure(totals, self.team_ids[self.client_team], dates,
                                                     self.p.exposure_window, self.config.exposure)

    # ------------------------------------------------------------------------ equations
    def random_part(self, instrument: str, wave: float, shared: np.ndarray | None = None) -> np.ndarray:
        """Team + case-manager intercepts + client residual of one equation (own stream)."""
        p = self.p
        rng = self.rng("effects", instrument, f"{wave:g}")
        sd = p.residual_sd[instrument][wave]
        icc_t = p.icc_team[instrument][wave] * p.clustering
        icc_c = p.icc_case_manager[instrument][wave] * p.clustering
        team = rng.normal(0.0, sd * math.sqrt(icc_t), size=p.n_teams)
        cm = rng.normal(0.0, sd * math.sqrt(icc_c), size=int(self.n_cm.sum()))
        own = rng.normal(0.0, 1.0, size=p.n_clients)
        if shared is not None:
            rho = p.wave_residual_correlation
            own = math.sqrt(rho) * shared + math.sqrt(1.0 - rho) * own
        client = sd * math.sqrt(1.0 - icc_t - icc_c) * own
        return team[self.client_team] + cm[self.client_cm] + client

    def covariate_part(self, effects: Mapping[str, float]) -> np.ndarray:
        out = np.zeros(self.p.n_clients)
        for name, value in effects.items():
            if name not in self.covframe.columns:
                raise ConfigError(f"covariate effect {name!r} is not one of the covariates {list(COVARIATES)}")
            out += value * self.covframe[name].to_numpy(dtype=float)
        return out

    def clipped(self, key: str, target: np.ndarray, instrument: str) -> np.ndarray:
        low, high = _RANGE[instrument]
        self.clip[key] = float(np.mean((target < low) | (target > high)))
        return np.clip(target, low, high)

    # ---------------------------------------------------------------------- item answers
    def items(self, instrument: str, wave: float, target: np.ndarray) -> pd.DataFrame:
        """Item answers whose scored value has expectation ``target`` (analysed-score units)."""
        p, cb = self.p, self.codebook
        rng = self.rng("items", instrument, f"{wave:g}")
        n = target.size
        if instrument == "pgi":
            s = self.config.scoring.pgi
            areas = s.areas
            used = rng.choice(np.arange(max(1, areas - 2), areas + 1), size=n,
                              p=_area_probs(areas)) if areas >= 3 else np.full(n, areas)
            slots = np.arange(areas)[None, :] < used[:, None]
            # one point per used area, the rest spread by importance; the form's weights are
            # independent of the ratings, so E[index] = 100 * E[rating] / rating_max
            weights = rng.gamma(2.0, size=(n, areas)) * slots
            weights /= weights.sum(axis=1, keepdims=True)
            extra = rng.multinomial(s.points_total - used, weights)
            points = (slots.astype(int) + extra).astype(float)
            t = target / 100.0 * s.rating_max
            ratings = _stochastic_round(rng, _item_targets(rng, t, areas, 0.0, float(s.rating_max), 2 * p.item_noise))
            ratings[~slots] = np.nan
            points[~slots] = np.nan
            rating_cols = [f"pgi_rating_{k}" for k in range(1, areas + 1)]
            point_cols = [f"pgi_points_{k}" for k in range(1, areas + 1)]
            return pd.DataFrame(np.hstack([ratings, points]), columns=rating_cols + point_cols)
        if instrument == "ace":
            names = list(cb["ace"]["items"])
            return pd.DataFrame((rng.random((n, len(names))) < self.ace_p[:, None]).astype(float), columns=names)
        if instrument == "hope":
            s = self.config.scoring.hope
            scored = list(cb["hope"]["subscales"]["agency"]) + list(cb["hope"]["subscales"]["pathways"])
            fillers = list(cb["hope"]["fillers"])
            low, high = float(cb["hope"]["min"]), float(s.points)
            t = target / len(scored)
            block = _stochastic_round(rng, _item_targets(rng, t, len(scored), low, high, p.item_noise))
            filler_t = rng.normal((low + high) / 2, (high - low) / 6, size=n)
            filler = _stochastic_round(rng, _item_targets(rng, filler_t, len(fillers), low, high, p.item_noise))
            frame = pd.DataFrame(np.hstack([block, filler]), columns=scored + fillers)
            return frame[list(cb["hope"]["items"])]
        names = list(cb[instrument]["items"])
        if instrument == "rprs":
            s = self.config.scoring.rprs
            low, high = float(s.item_min), float(s.item_max)
            t = low + (high - low) * target / 100.0
        elif instrument == "qoli20":
            low, high = float(cb["qoli20"]["min"]), float(cb["qoli20"]["max"])
            t = target / len(names)
        else:  # mcas
            s = self.config.scoring.mcas
            low, high = float(s.item_min), float(s.item_max)
            t = target / len(names)
        block = _stochastic_round(rng, _item_targets(rng, t, len(names), low, high, p.item_noise))
        # the keys the scorer will flip: the study's setting (codebook default) plus our own
        reverse = set(getattr(self.config.scoring, instrument).reverse) | set(cb[instrument].get("reverse") or [])
        for j, name in enumerate(names):
            if name in reverse:  # the scorer flips these back: answer = min + max - forward answer
                block[:, j] = low + high - block[:, j]
        return pd.DataFrame(block, columns=names)

    def sporadic(self, instrument: str, wave: float, frame: pd.DataFrame) -> pd.DataFrame:
        """Blank single items where the scoring rule prorates, never enough to lose the score."""
        from .instruments.codebook import allowed_missing

        p, cb = self.p, self.codebook
        if p.item_missing_rate <= 0 or instrument not in ("rprs", "qoli20", "mcas", "hope"):
            return frame
        rng = self.rng("missing", "items", instrument, f"{wave:g}")
        if instrument == "hope":
            cols = list(cb["hope"]["fillers"])
            cap = len(cols)
        else:
            cols = list(frame.columns)
            share = getattr(self.config.scoring, instrument).max_missing_share
            cap = allowed_missing(share, len(cols))
        hit = rng.random((len(frame), len(cols))) < p.item_missing_rate
        # keep at most `cap` blanks per form: rank the hits by a random key
        rank = np.argsort(np.argsort(np.where(hit, rng.random(hit.shape), 2.0), axis=1), axis=1)
        hit &= rank < cap
        out = frame.copy()
        values = out[cols].to_numpy(dtype=float, copy=True)
        if instrument == "qoli20" and cb["qoli20"].get("missing_codes"):
            codes = np.asarray(self.config.scoring.qoli20.missing_codes, dtype=float)
            coded = hit & (rng.random(hit.shape) < p.missing_code_share)
            values[coded] = codes[rng.integers(0, codes.size, size=int(coded.sum()))]
            values[hit & ~coded] = np.nan
        else:
            values[hit] = np.nan
        out[cols] = values
        return out

    def score(self, instrument: str, frame: pd.DataFrame) -> np.ndarray:
        from .instruments.scoring import score_instrument

        return score_instrument(instrument, frame, self.config.scoring)[_SCORE[instrument]].to_numpy(dtype=float)

    # ------------------------------------------------------------------------------ run
    def structural(self) -> None:
        p = self.p
        self.forms: dict[tuple[float, str], pd.DataFrame] = {}
        self.observed: dict[tuple[float, str], np.ndarray] = {}
        # ACE is a covariate: its observed score enters every equation
        ace_form = self.items("ace", 0.0, np.zeros(p.n_clients))
        self.forms[(0.0, "ace")] = ace_form
        ace = self.score("ace", ace_form)
        self.covframe = self.cov.assign(ace=ace)
        # alliance at each alliance wave
        shared = self.rng("effects", "rprs", "client").normal(size=p.n_clients)
        for wave in sorted(set(p.wave_pairs.values())):
            target = (p.alliance_intercept[wave] + p.a[wave] * self.X[wave]
                      + self.covariate_part(p.alliance_covariates) + self.random_part("rprs", wave, shared))
            self.store("rprs", wave, self.clipped(f"rprs@{wave:g}", target, "rprs"))
        for name in OUTCOMES:
            base = (p.outcome_intercept[name][0.0] + self.covariate_part(p.baseline_covariates[name])
                    + self.random_part(name, 0.0))
            self.store(name, 0.0, self.clipped(f"{name}@0", base, name))
            shared = self.rng("effects", name, "client").normal(size=p.n_clients)
            for wave, alliance_wave in sorted(p.wave_pairs.items()):
                target = (p.outcome_intercept[name][wave] + p.c_prime[name][wave] * self.X[alliance_wave]
                          + p.b[name][wave] * self.observed[(alliance_wave, "rprs")]
                          + p.baseline_effect[name] * self.observed[(0.0, name)]
                          + self.covariate_part(p.followup_covariates[name])
                          + self.random_part(name, wave, shared))
                self.store(name, wave, self.clipped(f"{name}@{wave:g}", target, name))

    def store(self, instrument: str, wave: float, target: np.ndarray) -> None:
        form = self.sporadic(instrument, wave, self.items(instrument, wave, target))
        self.forms[(wave, instrument)] = form
        # the next equations see the score an analyst computes from these answers
        self.observed[(wave, instrument)] = self.score(instrument, form)

    def missingness(self) -> None:
        p = self.p
        n, waves = p.n_clients, list(p.waves)
        linear = np.zeros(n)
        for name, value in p.missing_covariate_effects.items():
            if name not in self.cov.columns:
                raise ConfigError(f"missing_covariate_effects: {name!r} is not a client covariate")
            linear += value * self.cov[name].to_numpy(dtype=float)
        counts = np.array([len(self._instruments_at(w)) for w in waves], dtype=float)
        k = np.arange(len(waves))
        cells = counts.sum()
        # attrition: leave before follow-up wave k with the per-client hazard h_i
        c_att = _calibrate_intercept(linear, p.attrition_rate)
        hazard = _expit(c_att + linear) if p.attrition_rate > 0 else np.zeros(n)
        survive = (1.0 - hazard[:, None]) ** k[None, :]
        expected_attrition = float(np.mean((counts[None, :] * (1.0 - survive)).sum(axis=1) / cells))
        rng = self.rng("missing", "attrition")
        u = rng.random((n, len(waves)))
        leave = (u < hazard[:, None]) & (k[None, :] > 0)
        first_gone = np.where(leave.any(axis=1), leave.argmax(axis=1), len(waves))
        self.present = k[None, :] < first_gone[:, None]
        # intermittent skipped scales: calibrated so attrition + skips hit the target share
        remaining = p.missing_share - expected_attrition
        if remaining < 0:
            raise ConfigError(f"attrition_rate {p.attrition_rate} alone loses {expected_attrition:.3f} of the scores, "
                              f"more than missing_share {p.missing_share}")
        observed_cells = (counts[None, :] * survive).sum(axis=1) / cells
        if remaining > 0:
            skip_p = _expit(_calibrate_skip(linear, observed_cells, remaining) + linear)
        else:
            skip_p = np.zeros(n)
        rng = self.rng("missing", "scales")
        self.skip: dict[tuple[float, str], np.ndarray] = {}
        for w in waves:
            for name in self._instruments_at(w):
                self.skip[(w, name)] = rng.random(n) < skip_p
        self.expected_attrition = expected_attrition

    def _instruments_at(self, wave: float) -> tuple[str, ...]:
        return tuple(self.config.instruments_at(wave))

    def assemble(self) -> None:
        from .instruments.scoring import instrument_items

        p = self.p
        scoring = self.config.scoring
        columns = [c for name in ("rprs", "qoli20", "pgi", "hope", "mcas", "ace")
                   for c in instrument_items(name, scoring)]
        parts = []
        for w, wave in enumerate(p.waves):
            keep = self.present[:, w]
            frame = pd.DataFrame(np.nan, index=np.arange(p.n_clients), columns=columns)
            for name in self._instruments_at(wave):
                form = self.forms[(wave, name)]
                values = form.to_numpy(dtype=float).copy()
                values[self.skip[(wave, name)]] = np.nan
                frame[list(form.columns)] = values
            frame.insert(0, "date", _date_strings(self.interview_days[:, w]))
            frame.insert(0, "wave", f"{wave:g}")
            frame.insert(0, "client", self.client_ids)
            frame["_order"] = np.arange(p.n_clients) * len(p.waves) + w
            parts.append(frame[keep])
        interviews = pd.concat(parts).sort_values("_order").drop(columns="_order").reset_index(drop=True)
        for c in columns:
            interviews[c] = interviews[c].round().astype("Int64")
        self.interviews_df = interviews

    def realized(self) -> dict[str, Any]:
        from .instruments.scoring import score_interviews

        p = self.p
        scores = score_interviews(self.interviews_df, self.config.scoring,
                                  schedule={float(k): list(v) for k, v in self.config.schedule.items()})
        waves = self.interviews_df["wave"].astype(float).to_numpy()
        total = missing = attrition = 0
        per_instrument: dict[str, list[int]] = {}
        for wave in p.waves:
            rows = waves == wave
            for name in self._instruments_at(wave):
                present = int(rows.sum())
                lost = p.n_clients - present
                skipped = int(np.isnan(scores.loc[rows, _SCORE[name]].to_numpy(dtype=float)).sum())
                total += p.n_clients
                missing += lost + skipped
                attrition += lost
                counts = per_instrument.setdefault(f"{name}@{wave:g}", [0, 0])
                counts[0] += lost + skipped
                counts[1] += p.n_clients
        return {
            "missing_share": round(missing / total, 6),
            "attrition_share": round(attrition / total, 6),
            "expected_attrition_share": round(self.expected_attrition, 6),
            "missing_share_by_scale": {k: round(v[0] / v[1], 6) for k, v in sorted(per_instrument.items())},
            "clients_completing": int(self.present.all(axis=1).sum()),
            "n_interviews": int(len(self.interviews_df)),
            "clipped_share": {k: round(v, 6) for k, v in sorted(self.clip.items())},
            "exposure_mean": {f"{w:g}": round(float(np.mean(x)), 6) for w, x in sorted(self.X.items())},
            "exposure_sd": {f"{w:g}": round(float(np.std(x, ddof=1)), 6) if x.size > 1 else None
                            for w, x in sorted(self.X.items())},
        }

    def run(self) -> SimulatedStudy:
        self.teams()
        self.fidelity_items()
        self.clients()
        self.interview_dates()
        self.exposure()
        self.structural()
        self.missingness()
        self.assemble()
        truth = _truth(self)
        return SimulatedStudy(teams=self.teams_df, fidelity=self.fidelity_df, clients=self.clients_df,
                              interviews=self.interviews_df, config=_study_yaml(self.p, self.seed), truth=truth)


def _calibrate_skip(linear: np.ndarray, observed_cells: np.ndarray, remaining: float) -> float:
    """Intercept of the skip model so that E[skipped cells] / cells == ``remaining``.

    Only cells that survive attrition can be skipped, hence the per-client weights.
    """
    return _calibrate_intercept(linear, remaining / float(np.mean(observed_cells)), weights=observed_cells)


def _area_probs(areas: int) -> list[float]:
    # clients nominate 3, 4 or all 5 areas (of 5); the last option is the most common
    base = np.array([0.2, 0.3, 0.5])[: min(3, areas)]
    return list(base / base.sum())


def _window_exposure(scored: pd.DataFrame, teams: np.ndarray, dates: pd.DatetimeIndex, window: int,
                     exposure_config) -> np.ndarray:
    """Mean interpolated team fidelity total over the ``window`` days before each date.

    Delegates to :func:`fidelitymed.exposure.fidelity_exposure` (the code the analysis uses),
    so the structural model sees exactly the exposure an analyst computes. Days outside a
    team's assessed span always carry the nearest score here: the truth is defined on that
    exposure even if a study later chooses ``outside_assessments: exclude``.
    """
    from .exposure import exposure_name, fidelity_exposure

    visits = pd.DataFrame({"team": teams, "date": dates})
    expo = fidelity_exposure(scored, visits, windows=[window], outside="carry",
                             window_end=exposure_config.window_end, columns=["fidelity_total"])
    return expo[exposure_name("fidelity_total", window)].to_numpy(dtype=float)


# ----------------------------------------------------------------------- config and truth
def _study_yaml(p: SimulationParameters, seed: int) -> dict[str, Any]:
    """``study.yaml`` of the simulated study (the paper's settings, written out)."""
    schedule = {}
    for wave in p.waves:
        key = int(wave) if float(wave).is_integer() else float(wave)
        schedule[key] = list(_SCHEDULE.get(float(wave), ()))
    pairs = [{"outcome": (int(o) if float(o).is_integer() else o), "mediator": m}
             for o, m in sorted(p.wave_pairs.items())]
    scoring: dict[str, dict[str, Any]] = {
        "fidelity": {"excluded_domains": ["integration"], "high_fidelity_threshold": 32},
        "rprs": {"metric": "zero_to_100", "max_missing_share": 0.2},
        "qoli20": {"max_missing_share": 0.2},
        "pgi": {"rating_max": 10, "points_total": 10, "points_rule": "normalize"},
        "hope": {"points": 8, "max_missing_per_subscale": 0},
        "mcas": {"max_missing_share": 0.2},
        "ace": {"missing_rule": "missing"},
    }
    for instrument, items in sorted(p.reverse_items.items()):
        if instrument not in ("rprs", "qoli20", "mcas"):
            raise ConfigError(f"reverse_items: {instrument!r} has no reverse setting; expected rprs, qoli20 or mcas")
        if items:
            scoring[instrument]["reverse"] = list(items)
    return {
        "name": f"Simulated SMCM fidelity study (fidelitymed simulate, seed {seed})",
        "files": {"teams": "teams.csv", "fidelity": "fidelity.csv", "clients": "clients.csv",
                  "interviews": "interviews.csv"},
        "schedule": schedule,
        "scoring": scoring,
        "exposure": {"windows": sorted({90, 180, 270, p.exposure_window}), "primary_window": p.exposure_window,
                     "outside_assessments": "carry"},
        # the paper's pooling (MI, then a bootstrap per imputation, draws stacked), not the default boot_mi
        "analysis": {"waves": pairs, "seed": int(seed), "n_boot": 5000, "imputations": 20, "pooling": "stacked",
                     "multilevel": {"enabled": True, "groups": ["team", "case_manager"], "decompose": True}},
    }


def _truth(sim: _Simulator) -> dict[str, Any]:
    from . import __version__

    p = sim.p
    paths, equations = [], {}
    for name in OUTCOMES:
        for wave, alliance_wave in sorted(p.wave_pairs.items()):
            a, b = p.a[alliance_wave], p.b[name][wave]
            paths.append({"outcome": name, "wave": wave, "mediator_wave": alliance_wave, "a": a, "b": b,
                          "c_prime": p.c_prime[name][wave], "indirect": a * b,
                          "total": p.c_prime[name][wave] + a * b, "exposure_window": p.exposure_window})

    def components(instrument: str, wave: float) -> dict[str, float]:
        sd = p.residual_sd[instrument][wave]
        t = p.icc_team[instrument][wave] * p.clustering
        c = p.icc_case_manager[instrument][wave] * p.clustering
        return {"var_team": sd ** 2 * t, "var_case_manager": sd ** 2 * c, "var_client": sd ** 2 * (1 - t - c),
                "icc_team": t, "icc_case_manager": c}

    for wave in sorted(set(p.wave_pairs.values())):
        equations[f"rprs@{wave:g}"] = {
            "dependent": "rprs_total", "wave": wave, "intercept": p.alliance_intercept[wave],
            "exposure": p.a[wave], "covariates": dict(p.alliance_covariates), **components("rprs", wave)}
    for name in OUTCOMES:
        equations[f"{name}@0"] = {"dependent": _SCORE[name], "wave": 0.0,
                                  "intercept": p.outcome_intercept[name][0.0],
                                  "covariates": dict(p.baseline_covariates[name]), **components(name, 0.0)}
        for wave, alliance_wave in sorted(p.wave_pairs.items()):
            equations[f"{name}@{wave:g}"] = {
                "dependent": _SCORE[name], "wave": wave, "intercept": p.outcome_intercept[name][wave],
                "exposure": p.c_prime[name][wave], "mediator": p.b[name][wave],
                "mediator_wave": alliance_wave, "baseline": p.baseline_effect[name],
                "covariates": dict(p.followup_covariates[name]), **components(name, wave)}
    return _jsonable({
        "package_version": __version__,
        "seed": sim.seed,
        "model": ("M* = intercept + a X + covariates + u_team + u_cm + e on the RPRS 0-100 metric; "
                  "Y* = intercept + c' X + b M + baseline Y0 + covariates + u_team + u_cm + e, where M and Y0 "
                  "are the scored (observed) scales and X is the mean daily interpolated team fidelity total "
                  "over exposure_window days before the alliance interview. Items are stochastic roundings "
                  "of item targets with mean equal to the target, so E[score | target] = target; OLS of the "
                  "observed scores is unbiased for a, b, c'. Variance components are of the latent target; "
                  "icc_* are its conditional ICCs (residual, given the regressors)."),
        "design": {
            "n_clients": p.n_clients, "n_teams": p.n_teams, "n_organizations": len(p.organization_provinces),
            "n_case_managers": int(np.unique(sim.client_cm).size), "n_assessments": int(sim.n_assess.sum()),
            "dropout_teams": sorted(sim.team_ids[sim.dropout].tolist()),
            "waves": list(p.waves), "covariates": list(COVARIATES),
        },
        "paths": paths,
        "equations": equations,
        "missing": {"target_share": p.missing_share, "attrition_rate": p.attrition_rate,
                    "item_missing_rate": p.item_missing_rate, "mechanism": "MAR on client covariates",
                    "covariate_effects": dict(p.missing_covariate_effects)},
        "realized": sim.realized(),
        "parameters": p.to_dict(),
    })


def _write_folder(study: SimulatedStudy, folder: Path) -> None:
    import yaml

    from .study.io import write_table, write_text

    header = ("# Simulated study written by `fidelitymed simulate` (see truth.json for the true effects).\n"
              "# Format: docs/study-format.md\n")
    write_text(folder / "study.yaml", header + yaml.safe_dump(study.config, sort_keys=False, allow_unicode=True,
                                                              default_flow_style=None, width=100))
    write_table(study.teams, folder / "teams.csv")
    write_table(study.fidelity, folder / "fidelity.csv")
    write_table(study.clients, folder / "clients.csv")
    write_table(study.interviews, folder / "interviews.csv")
    write_text(folder / "truth.json", json.dumps(study.truth, indent=2, sort_keys=True, allow_nan=False) + "\n")


# ------------------------------------------------------------------------------- demo
def write_demo(target: str | os.PathLike | None = None) -> SimulatedStudy:
    """(Re)generate the shipped demo study: seed :data:`DEMO_SEED`, default parameters, n = 311."""
    target = Path(target) if target is not None else _source_demo_path()
    return simulate_study(target, seed=DEMO_SEED, force=True)


def _source_demo_path() -> Path:
    return Path(__file__).resolve().parent / "data" / "demo"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fidelitymed.simulate --demo`` regenerates the shipped demo study."""
    parser = argparse.ArgumentParser(prog="python -m fidelitymed.simulate", description=main.__doc__)
    parser.add_argument("--demo", action="store_true", help="regenerate src/fidelitymed/data/demo")
    parser.add_argument("--out", help="write the demo study here instead")
    args = parser.parse_args(argv)
    if not args.demo:
        parser.error("nothing to do: pass --demo (use `fidelitymed simulate` for other studies)")
    study = write_demo(args.out)
    print(study.summary())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
