"""``study.yaml``: the study configuration as a pydantic v2 model.

Every key has a default that reproduces the paper (Methods and Data Analysis of the SMCM
study; scoring defaults from the codebook, i.e. ``shared/reference/instruments.md``). Unknown
keys and wrong types are errors: :func:`load_config` / :func:`parse_config` turn pydantic's
``ValidationError`` into one :class:`~fidelitymed.errors.ConfigError` whose message has one
line per problem, each naming the key path (``scoring.rprs.metric``) and what was expected.

Sections
--------
``name``, ``files``
    Study name; the four table files, relative to the folder of ``study.yaml``.
``schedule``
    Wave (months since baseline) -> instruments given at that wave.
``scoring``
    One block per instrument; every inferred (I) or partly verified (P) scoring fact of the
    codebook is a setting here (see ``docs/study-data.md`` for the table).
``exposure``
    Fidelity exposure windows and the rules of :mod:`fidelitymed.exposure`.
``analysis``
    What the pipeline analyses (issue 5): outcomes and their scores, wave pairs, mediator,
    covariates, imputation, bootstrap, alpha rule, executor, the fidelity-domain analysis.
``instruments``
    The study's own instrument declarations (issue 14; :mod:`fidelitymed.instruments.declaration`):
    new instruments, a replacement of a built-in one, or the fidelity scale (``fidelity``).
"""

from __future__ import annotations

import hashlib
import json
import os
import reprlib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, ValidationError, field_validator,
                      model_validator)

from ..errors import ConfigError
from ..instruments.codebook import load_codebook
from ..instruments.declaration import FidelityDeclaration, parse_declarations
from .redcap import RedcapInterviews

#: a built-in instrument (rprs, qoli20, pgi, hope, mcas, ace) or one declared under ``instruments:``
#: (checked against both by :func:`_cross_problems`)
InstrumentName = str
#: PROCESS Model 4 takes at most 10 parallel mediators (Hayes 2022)
MAX_PARALLEL_MEDIATORS = 10


def _mediator_entry(entry: str, names) -> tuple[str, str | None] | None:
    """``"rprs"`` -> ``("rprs", None)``; ``"rprs_core_relationship"`` -> ``("rprs", "core_relationship")``."""
    if entry in names:
        return entry, None
    for instrument in sorted(names, key=len, reverse=True):
        if entry.startswith(f"{instrument}_") and len(entry) > len(instrument) + 1:
            return instrument, entry[len(instrument) + 1:]
    return None


def _known_instruments(extra=()) -> set[str]:
    from ..instruments.codebook import CLIENT_INSTRUMENTS

    return set(CLIENT_INSTRUMENTS) | set(extra)

#: upper bounds that keep a run finite (issue 10): larger values are typing errors, not designs
MAX_N_BOOT = 1_000_000
MAX_IMPUTATIONS = 1_000
MAX_WINDOW_DAYS = 3_650
#: a study.yaml is a few KB; these bound what a hostile or broken file can make us build
MAX_CONFIG_BYTES = 1_000_000
MAX_YAML_NODES = 100_000
#: id columns of the tables: they identify rows and nest clients, they are never covariates
KEY_COLUMNS = ("client", "team", "case_manager")

WindowDays = Annotated[int, Field(ge=1, le=MAX_WINDOW_DAYS)]
#: months since baseline; NaN/inf are refused (a wave must be a real month)
Month = Annotated[float, Field(allow_inf_nan=False)]

_CB = load_codebook()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _default(instrument: str, key: str) -> Any:
    value = _CB[instrument][key]
    return dict(value) if isinstance(value, dict) else (list(value) if isinstance(value, list) else value)


# --------------------------------------------------------------------------------------- files
#: a file name, or a mapping = a REDCap export; the tags are dropped from error key paths
_FILE_TAGS = ("table", "redcap")
InterviewsFile = Annotated[Union[Annotated[str, Tag("table")], Annotated[RedcapInterviews, Tag("redcap")]],
                           Discriminator(lambda v: "redcap" if isinstance(v, (dict, RedcapInterviews)) else "table")]


class FilesConfig(_Model):
    """Table files, relative to the study folder (CSV, XLSX, SAV or DTA), and how CSV cells are read."""

    teams: str = "teams.csv"
    fidelity: str = "fidelity.csv"
    clients: str = "clients.csv"
    #: a table (one row per client x wave) or a REDCap export (``{path, format: redcap, events, ...}``)
    interviews: InterviewsFile = "interviews.csv"
    #: extra spellings of a missing CSV/XLSX text cell besides the empty cell, e.g. ["NA", "-99"]
    #: (default none: a team called "NA" stays "NA"; pandas' own NA list is never used)
    na_values: list[str] = Field(default_factory=list)

    @field_validator("na_values")
    @classmethod
    def _na_values(cls, value: list[str]) -> list[str]:
        if any(not v.strip() for v in value):
            raise ValueError("empty cells are always missing; list only non-empty spellings")
        return value


# ------------------------------------------------------------------------------------- scoring
class FidelityScoring(_Model):
    """SMCM fidelity scale (codebook ``fidelity``)."""

    #: items per domain (item names ``<domain>_1..k``); I: the per-domain item list was not found
    domains: dict[str, int] = Field(default_factory=lambda: _default("fidelity", "domains"))
    #: domains left out of the total; the paper drops SA-treatment-plan integration (V)
    excluded_domains: list[str] = Field(default_factory=lambda: ["integration"])
    #: total >= threshold counts as high fidelity (32 of 40 in the paper; not verified)
    high_fidelity_threshold: float = 32.0
    #: an unrated item: "domain_mean" = skip it (mean of the rated items of its domain, I),
    #: "missing" = its domain (and so the total) is missing
    item_missing: Literal["domain_mean", "missing"] = "domain_mean"
    #: a domain with no usable rating: "missing" = the total is missing (I, default); "prorate" =
    #: total = mean of the available included domain means x number of included domains
    domain_missing: Literal["missing", "prorate"] = "missing"
    #: a declared scale (``instruments.fidelity``) whose items and rules replace the codebook's
    _declaration: FidelityDeclaration | None = PrivateAttr(default=None)

    @property
    def declaration(self) -> FidelityDeclaration | None:
        return self._declaration

    @field_validator("domains")
    @classmethod
    def _positive_counts(cls, value: dict[str, int]) -> dict[str, int]:
        if not value:
            raise ValueError("at least one domain is needed")
        bad = [k for k, v in value.items() if v < 1]
        if bad:
            raise ValueError(f"item counts must be >= 1 (domains {bad})")
        return value

    @model_validator(mode="after")
    def _excluded_known(self) -> FidelityScoring:
        unknown = [d for d in self.excluded_domains if d not in self.domains]
        if unknown:
            raise ValueError(f"excluded_domains {unknown} are not among domains {list(self.domains)}")
        if len(self.excluded_domains) >= len(self.domains):
            raise ValueError("excluded_domains leaves no domain to score")
        return self

    @property
    def included_domains(self) -> list[str]:
        return [d for d in self.domains if d not in self.excluded_domains]


def _check_members(groups: dict[str, list[str]], items: list[str], what: str) -> None:
    for name, members in groups.items():
        unknown = [m for m in members if m not in items]
        if unknown:
            raise ValueError(f"{what} {name!r}: {unknown} are not items of the instrument")
        if not members:
            raise ValueError(f"{what} {name!r} has no items")


class RprsScoring(_Model):
    """Recovery-Promoting Relationships Scale (codebook ``rprs``)."""

    #: "zero_to_100" = (mean - min)/(max - min) x 100 (I, default); "percent_of_max" = mean/max x 100
    metric: Literal["zero_to_100", "percent_of_max"] = "zero_to_100"
    #: prorate when at most this share of the items of the total / an index is missing (I)
    max_missing_share: float = Field(0.2, ge=0, le=1)
    #: valid item values: 4-point agree-disagree coded 1-4 (P)
    item_min: int = 1
    item_max: int = 4
    #: reverse-keyed items (I: none)
    reverse: list[str] = Field(default_factory=list)
    #: index membership (I: 16 recovery-promoting strategies + 8 core relationship)
    indices: dict[str, list[str]] = Field(default_factory=lambda: _default("rprs", "indices"))

    @model_validator(mode="after")
    def _check(self) -> RprsScoring:
        items = list(_CB["rprs"]["items"])
        _check_members(self.indices, items, "index")
        if self.reverse:
            _check_members({"reverse": self.reverse}, items, "list")
        if self.item_max <= self.item_min:
            raise ValueError("item_max must exceed item_min")
        return self


class Qoli20Scoring(_Model):
    """QOLI-20 (codebook ``qoli20``)."""

    max_missing_share: float = Field(0.2, ge=0, le=1)
    #: don't know / not applicable codes read as missing (I)
    missing_codes: list[int] = Field(default_factory=lambda: _default("qoli20", "missing_codes"))
    #: reverse-keyed items (I: none)
    reverse: list[str] = Field(default_factory=list)
    #: subscale membership (I: At Home/Chez Soi usage)
    subscales: dict[str, list[str]] = Field(default_factory=lambda: _default("qoli20", "subscales"))
    #: total = "sum" of the 20 items, 20-140 (I), or their "mean", 1-7
    total: Literal["sum", "mean"] = "sum"
    #: subscale score = "mean" of its items (I) or their "sum"
    subscale_stat: Literal["mean", "sum"] = "mean"

    @model_validator(mode="after")
    def _check(self) -> Qoli20Scoring:
        items = list(_CB["qoli20"]["items"])
        _check_members(self.subscales, items, "subscale")
        if self.reverse:
            _check_members({"reverse": self.reverse}, items, "list")
        clash = [c for c in self.missing_codes if _CB["qoli20"]["min"] <= c <= _CB["qoli20"]["max"]]
        if clash:
            raise ValueError(f"missing_codes {clash} are valid scale points 1-7")
        return self


class PgiScoring(_Model):
    """Patient-Generated Index (codebook ``pgi``)."""

    #: number of nominated areas (columns pgi_rating_1..k, pgi_points_1..k)
    areas: int = Field(default_factory=lambda: int(_CB["pgi"]["areas"]), ge=1)
    #: ratings run 0..rating_max (I: improved form 0-10)
    rating_max: int = Field(default_factory=lambda: int(_CB["pgi"]["rating_max"]), ge=1)
    #: points to spend (I: 10)
    points_total: int = Field(default_factory=lambda: int(_CB["pgi"]["points_total"]), ge=1)
    #: "normalize" = divide by the points actually spent (I); "exclude" = unscorable unless
    #: the points spent equal points_total
    points_rule: Literal["normalize", "exclude"] = "normalize"


class HopeScoring(_Model):
    """Adult (Trait) Hope Scale (codebook ``hope``)."""

    #: response format: 8-point (1-8, total 8-64) or the 1991 4-point (1-4, total 8-32). Not verified which one.
    points: Literal[4, 8] = 8
    #: items that may be missing per 4-item subscale before it is missing (I: 0; 1 = 25% allowed)
    max_missing_per_subscale: int = Field(0, ge=0, le=3)


class McasScoring(_Model):
    """Multnomah Community Ability Scale (codebook ``mcas``)."""

    max_missing_share: float = Field(0.2, ge=0, le=1)
    #: 1 = extreme impairment ... 5 = no impairment (I)
    item_min: int = 1
    item_max: int = 5
    #: reverse-keyed items (I: none, anchors already run higher = better)
    reverse: list[str] = Field(default_factory=list)
    #: subscale item order (I; names and counts V)
    subscales: dict[str, list[str]] = Field(default_factory=lambda: _default("mcas", "subscales"))

    @model_validator(mode="after")
    def _check(self) -> McasScoring:
        items = list(_CB["mcas"]["items"])
        _check_members(self.subscales, items, "subscale")
        if self.reverse:
            _check_members({"reverse": self.reverse}, items, "list")
        if self.item_max <= self.item_min:
            raise ValueError("item_max must exceed item_min")
        return self


class AceScoring(_Model):
    """Adverse Childhood Experiences (codebook ``ace``)."""

    #: "missing" = any missing item makes the score missing (default); "count_answered" = count the yes answers given
    missing_rule: Literal["missing", "count_answered"] = "missing"


class ScoringConfig(_Model):
    """Per-instrument scoring settings (and the study's declarations, attached by :class:`StudyConfig`)."""

    _declarations: dict[str, Any] = PrivateAttr(default_factory=dict)

    fidelity: FidelityScoring = Field(default_factory=FidelityScoring)
    rprs: RprsScoring = Field(default_factory=RprsScoring)
    qoli20: Qoli20Scoring = Field(default_factory=Qoli20Scoring)
    pgi: PgiScoring = Field(default_factory=PgiScoring)
    hope: HopeScoring = Field(default_factory=HopeScoring)
    mcas: McasScoring = Field(default_factory=McasScoring)
    ace: AceScoring = Field(default_factory=AceScoring)

    @property
    def declarations(self) -> dict[str, Any]:
        """The study's client-instrument declarations (``instruments:`` of ``study.yaml``)."""
        return dict(self._declarations)


# ------------------------------------------------------------------------------------ exposure
class ExposureConfig(_Model):
    """Fidelity exposure (:mod:`fidelitymed.exposure`)."""

    #: window lengths in days; the paper: 180 primary, 90 and 270 as sensitivity analyses
    windows: list[WindowDays] = Field(default_factory=lambda: [90, 180, 270])
    primary_window: WindowDays = 180
    #: days before a team's first / after its last assessment: "carry" the nearest score and
    #: flag the exposure, or "exclude" (the exposure is missing when its window reaches them)
    outside_assessments: Literal["carry", "exclude"] = "carry"
    #: the window is the N days ending the day "before" the interview (default) or ending "on" it
    window_end: Literal["before", "on"] = "before"
    #: two assessments of one team on one day: "mean" of their scores, or "error" (a validation issue)
    same_day: Literal["mean", "error"] = "mean"

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("at least one window is needed")
        if any(w < 1 for w in value):
            raise ValueError("windows are positive numbers of days")
        if len(set(value)) != len(value):
            raise ValueError("windows must be distinct")
        return value

    @model_validator(mode="after")
    def _primary(self) -> ExposureConfig:
        if self.primary_window not in self.windows:
            raise ValueError(f"primary_window {self.primary_window} is not one of windows {self.windows}")
        return self


# ------------------------------------------------------------------------------------ analysis
class WavePair(_Model):
    """An outcome wave and the alliance (mediator) wave matched to it."""

    outcome: Month
    mediator: Month


class AlphaRule(_Model):
    """The paper's nesting rule: ICC > icc_threshold -> adjusted_alpha for paths into that variable."""

    icc_threshold: float = Field(0.05, ge=0, le=1)
    alpha: float = Field(0.05, gt=0, lt=1)
    adjusted_alpha: float = Field(0.01, gt=0, lt=1)
    #: which ICC triggers the rule: "team", "case_manager" (cumulative: two clients of one case
    #: manager, team share included; the default, since the dependence that inflates Type-I error
    #: is that of the smallest clusters) or "max" of all fitted ICCs
    level: Literal["team", "case_manager", "max"] = "case_manager"


class MultilevelConfig(_Model):
    """Multilevel mediation next to the single-level models (``fidelitymed.mediate_multilevel``)."""

    enabled: bool = False
    #: nested grouping columns, outermost first: random intercepts (1 | team) + (1 | team:case_manager)
    groups: list[Literal["team", "case_manager"]] = Field(default_factory=lambda: ["team", "case_manager"],
                                                          min_length=1, max_length=2)
    #: cluster-mean centring of X and M at the outermost group (between / within paths)
    decompose: bool = True
    #: Monte Carlo draws for the CIs of the indirect effects
    n_mc: int = Field(20000, ge=100)

    @model_validator(mode="after")
    def _check(self) -> MultilevelConfig:
        if len(set(self.groups)) != len(self.groups) or self.groups[0] != "team":
            raise ValueError("groups must be [team] or [team, case_manager] (outermost first)")
        return self


class ExecutorConfig(_Model):
    """Where the independent model tasks run (:mod:`fidelitymed.parallel`)."""

    backend: Literal["serial", "processes", "dask"] = "serial"
    #: worker count (None = number of CPUs)
    workers: int | None = Field(None, ge=1, le=4096)
    #: address of an existing dask scheduler, e.g. tcp://host:8786 (None = a LocalCluster)
    scheduler: str | None = None


class DomainsConfig(_Model):
    """The fidelity-domain analysis (:mod:`fidelitymed.stats.domains`; issue 14)."""

    enabled: bool = False
    #: adjustment across domains: "holm" (family-wise) or "fdr_bh" (Benjamini-Hochberg false discovery rate)
    adjust: Literal["holm", "fdr_bh"] = "holm"
    #: also fit all domains as simultaneous X's (one model per outcome x wave) with VIFs and condition number
    simultaneous: bool = False
    #: domains to analyse (default: the fidelity scale's included domains)
    domains: list[str] | None = None


DEFAULT_SCORES: dict[str, str] = {"qoli20": "total", "pgi": "index", "hope": "total", "mcas": "total",
                                  "rprs": "total", "ace": "total"}
#: client-table covariates, plus the derived ones: ace (baseline interview), site (teams
#: table) and ``baseline`` (the analysed outcome at the baseline wave)
DERIVED_COVARIATES = ("ace", "site", "baseline")


class AnalysisConfig(_Model):
    """What the pipeline analyses (issue 5 item 1); defaults reproduce the paper, except ``pooling``
    (``boot_mi``, as the coverage simulation found; the paper's is ``stacked``)."""

    outcomes: list[InstrumentName] = Field(default_factory=lambda: ["qoli20", "pgi", "hope", "mcas"], min_length=1)
    #: which score of each instrument is analysed (score names of fidelitymed.instruments.scoring)
    scores: dict[InstrumentName, str] = Field(default_factory=lambda: dict(DEFAULT_SCORES))
    #: the mediator instrument (its score: ``scores``), or a list of 2-10 parallel mediators, each an
    #: instrument or one of its scores (``rprs_core_relationship``); a list of one is the single mediator
    mediator: InstrumentName | list[str] = "rprs"
    #: outcome wave <- mediator wave (months); the paper: 9 <- 4.5, 18 <- 13.5
    waves: list[WavePair] = Field(default_factory=lambda: [WavePair(outcome=9, mediator=4.5),
                                                           WavePair(outcome=18, mediator=13.5)],
                                  min_length=1)
    baseline_wave: Month = 0
    covariates: list[str] = Field(default_factory=lambda: ["age", "gender", "housing", "employment", "education",
                                                           "ace", "site", "long_hospitalization", "baseline"])
    categorical: list[str] = Field(default_factory=lambda: ["site"])
    impute: bool = True
    imputations: int = Field(20, ge=1, le=MAX_IMPUTATIONS)
    #: chained-equation iterations per imputation chain; 20 gets the demo's largest R-hat to 1.066
    #: (10 left it at 1.1005, above the 1.1 rule)
    imputation_iterations: int = Field(20, ge=1, le=1000)
    #: how the indirect effects' CIs are pooled over the imputations. The default follows the
    #: coverage simulation (docs/imputation.md): boot_mi (bootstrap, then impute) reached the
    #: nominal 95% where stacked (the paper's procedure) and rubin_mc undercovered; with parallel
    #: mediators, which Boot-MI does not cover, the default is stacked
    pooling: Literal["stacked", "boot_mi", "rubin_mc"] = "boot_mi"
    #: pooling boot_mi: B resamples x M imputations each (von Hippel & Bartlett 2021: B = 200, M = 2)
    boot_mi_resamples: int = Field(200, ge=2, le=MAX_N_BOOT)
    boot_mi_imputations: int = Field(2, ge=2, le=100)
    #: pooling boot_mi: the indirect effects' interval -- "percentile" limits of the per-resample
    #: means (Schomaker & Heumann 2018; nominal coverage in tests/coverage_sim.py) or von Hippel &
    #: Bartlett's (2021) symmetric "von_hippel" t interval (undercovers the skewed ab there)
    boot_mi_interval: Literal["percentile", "von_hippel"] = "percentile"
    n_boot: int = Field(5000, ge=1, le=MAX_N_BOOT)
    conf: float = Field(0.95, gt=0, lt=1)
    ci: Literal["percentile", "bca"] = "percentile"
    seed: int | None = Field(20241126, ge=0)
    alpha_rule: AlphaRule = Field(default_factory=AlphaRule)
    multilevel: MultilevelConfig = Field(default_factory=MultilevelConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    domains: DomainsConfig = Field(default_factory=DomainsConfig)
    #: table cells with fewer clients than this are suppressed in reports
    small_cell_threshold: int = Field(5, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _default_pooling(cls, data: Any) -> Any:
        # Boot-MI pools one mediator's indirect effect: parallel mediators default to stacked
        if isinstance(data, dict) and "pooling" not in data:
            mediator = data.get("mediator")
            if isinstance(mediator, (list, tuple)) and len(mediator) > 1:
                return {**data, "pooling": "stacked"}
        return data

    @field_validator("covariates")
    @classmethod
    def _no_key_columns(cls, value: list[str]) -> list[str]:
        keys = [c for c in value if c in KEY_COLUMNS]
        if keys:
            raise ValueError(f"covariates {keys} are id columns (they identify clients, teams and case "
                             f"managers and set the nesting); they cannot be covariates")
        return value

    @field_validator("scores")
    @classmethod
    def _complete_scores(cls, value: dict[str, str]) -> dict[str, str]:
        # a partial mapping overrides the defaults; instruments not named keep theirs
        return {**DEFAULT_SCORES, **value}

    @model_validator(mode="after")
    def _check(self) -> AnalysisConfig:
        unknown = [c for c in self.categorical if c not in self.covariates]
        if unknown:
            raise ValueError(f"categorical {unknown} are not among covariates")
        if len(set(self.covariates)) != len(self.covariates):
            raise ValueError("covariates must be distinct")
        for instrument in dict.fromkeys(inst for inst, _ in self.mediator_scores()):
            if instrument in self.outcomes:
                raise ValueError(f"the mediator {instrument!r} cannot also be an outcome")
        if self.parallel and self.pooling == "boot_mi":
            raise ValueError("pooling: boot_mi pools the indirect effect of one mediator; with parallel "
                             "mediators use pooling: stacked or rubin_mc")
        return self

    @model_validator(mode="before")
    @classmethod
    def _one_mediator(cls, data: Any) -> Any:
        # a list of one is the single mediator (instrument + its score): the same config, hash and results
        if isinstance(data, dict) and isinstance(data.get("mediator"), list) and len(data["mediator"]) == 1:
            entry = data["mediator"][0]
            names = _known_instruments([*(data.get("outcomes") or []), *(data.get("scores") or {})])
            resolved = _mediator_entry(entry, names) if isinstance(entry, str) else None
            if resolved is not None:
                instrument, score = resolved
                data = dict(data, mediator=instrument)
                if score is not None:
                    data["scores"] = {**(data.get("scores") or {}), instrument: score}
        return data

    @field_validator("mediator")
    @classmethod
    def _mediator_list(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list):
            # entries that name no instrument: analysis.mediator[i] in _cross_problems
            if not 1 <= len(value) <= MAX_PARALLEL_MEDIATORS:
                raise ValueError(f"expected 1 to {MAX_PARALLEL_MEDIATORS} mediators; got {len(value)}")
            if len(set(value)) != len(value):
                raise ValueError(f"parallel mediators must be distinct; got {value}")
        return value

    @property
    def parallel(self) -> bool:
        """Parallel mediators (``mediator`` lists two or more)."""
        return isinstance(self.mediator, list)

    def mediator_scores(self) -> list[tuple[str, str | None]]:
        """(instrument, score name or None for ``scores[instrument]``) of every mediator, in order."""
        if not isinstance(self.mediator, list):
            return [(self.mediator, None)]
        names = _known_instruments([*self.outcomes, *self.scores])
        return [r for r in (_mediator_entry(e, names) for e in self.mediator) if r is not None]

    def mediator_columns(self) -> list[str]:
        """Score column of every mediator, e.g. ``["rprs_total"]`` or ``["rprs_recovery_promoting_strategies", ...]``."""
        return [f"{inst}_{score}" if score is not None else self.score_column(inst)
                for inst, score in self.mediator_scores()]

    def score_column(self, instrument: str) -> str:
        """Column of the analysed score, e.g. ``qoli20_total`` (see :mod:`fidelitymed.instruments.scoring`)."""
        return f"{instrument}_{self.scores.get(instrument, 'total')}"


# ---------------------------------------------------------------------------------------- root
def _default_schedule() -> dict[float, list[InstrumentName]]:
    return {0.0: ["qoli20", "pgi", "hope", "mcas", "ace"], 4.5: ["rprs"], 9.0: ["qoli20", "pgi", "hope", "mcas"],
            13.5: ["rprs"], 18.0: ["qoli20", "pgi", "hope", "mcas"]}


class StudyConfig(_Model):
    """The whole ``study.yaml``."""

    name: str = "SMCM fidelity study"
    files: FilesConfig = Field(default_factory=FilesConfig)
    #: wave in months -> instruments given at that wave
    schedule: dict[Month, list[InstrumentName]] = Field(default_factory=_default_schedule)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    exposure: ExposureConfig = Field(default_factory=ExposureConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    #: the study's instrument declarations, checked with key paths by parse_config (raw here)
    instruments: dict[str, Any] = Field(default_factory=dict)
    _ignored_settings: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _attach_declarations(self) -> StudyConfig:
        # the scoring settings travel everywhere the scorers go; they carry the declarations along
        if not self.instruments:
            return self
        declared, _problems = parse_declarations(self.instruments)  # problems: reported by parse_config
        # settings given for a declared built-in would be silently ignored: remembered for parse_config
        self._ignored_settings = [name for name in self.instruments if name in self.scoring.model_fields_set
                                  and getattr(self.scoring, name, None) is not None
                                  and getattr(self.scoring, name).model_fields_set]
        scoring = self.scoring.model_copy()
        scoring._declarations = {k: v for k, v in declared.items() if not isinstance(v, FidelityDeclaration)}
        fidelity = declared.get("fidelity")
        if isinstance(fidelity, FidelityDeclaration):
            settings = FidelityScoring.model_construct(
                domains={d: len(items) for d, items in fidelity.domains.items()},
                excluded_domains=list(fidelity.excluded_domains),
                high_fidelity_threshold=(float("nan") if fidelity.high_fidelity_threshold is None
                                         else float(fidelity.high_fidelity_threshold)),
                item_missing=fidelity.item_missing, domain_missing=fidelity.domain_missing)
            settings._declaration = fidelity
            scoring = scoring.model_copy(update={"fidelity": settings})
            scoring._declarations = {k: v for k, v in declared.items() if not isinstance(v, FidelityDeclaration)}
        object.__setattr__(self, "scoring", scoring)
        return self

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: dict[float, list[str]]) -> dict[float, list[str]]:
        if not value:
            raise ValueError("at least one wave is needed")
        if any(w < 0 for w in value):
            raise ValueError("waves are months since baseline (>= 0)")
        return dict(sorted(value.items()))

    @property
    def waves(self) -> list[float]:
        """Scheduled waves in increasing order."""
        return sorted(self.schedule)

    def instruments_at(self, wave: float) -> list[str]:
        return list(self.schedule.get(float(wave), []))

    def hash(self) -> str:
        """SHA-256 of the canonical JSON of the full configuration (defaults included)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------ cross checks
def _score_names(instrument: str, scoring: ScoringConfig) -> list[str]:
    from ..instruments.scoring import instrument_declarations

    decl = instrument_declarations(scoring).get(instrument)
    return list(decl.score_names) if decl is not None else ["total"]


def _instrument_problems(cfg: StudyConfig) -> list[str]:
    """Declarations and the instrument names used elsewhere (issue 14), with key paths."""
    from ..instruments.codebook import CLIENT_INSTRUMENTS

    _declared, problems = parse_declarations(cfg.instruments)
    client = set(CLIENT_INSTRUMENTS) | {k for k in cfg.instruments if k != "fidelity"}
    expected = ", ".join(sorted(client))
    for name in cfg._ignored_settings:
        # a declaration replaces the built-in: settings given for it as well would be silently ignored
        problems.append(f"scoring.{name}: the instrument is declared under instruments.{name}; "
                        f"put its rules in the declaration (these settings would be ignored)")
    fidelity = cfg.scoring.fidelity.declaration
    if fidelity is not None and fidelity.high_fidelity_threshold is None:
        problems.append("instruments.fidelity.high_fidelity_threshold: required key is missing (the report "
                        "and the trajectories mark high fidelity)")
    for wave, names in cfg.schedule.items():
        for i, name in enumerate(names):
            if name not in client:
                problems.append(f"schedule.{wave:g}[{i}]: unknown instrument {name!r}; expected one of {expected} "
                                f"(or declare it under instruments:)")
    a = cfg.analysis
    for i, name in enumerate(a.outcomes):
        if name not in client:
            problems.append(f"analysis.outcomes[{i}]: unknown instrument {name!r}; expected one of {expected}")
    if not a.parallel and a.mediator not in client:
        problems.append(f"analysis.mediator: unknown instrument {a.mediator!r}; expected one of {expected}")
    for i, entry in enumerate(a.mediator if a.parallel else []):
        resolved = _mediator_entry(entry, client)
        names = _score_names(resolved[0], cfg.scoring) if resolved is not None else []
        if resolved is None or (resolved[1] is not None and resolved[1] not in names):
            known = f" (scores of {resolved[0]}: {[f'{resolved[0]}_{n}' for n in names]})" if resolved else ""
            problems.append(f"analysis.mediator[{i}]: {entry!r} is not a scheduled instrument score{known}")
    if a.parallel and a.multilevel.enabled:
        problems.append(f"analysis.multilevel.enabled: multilevel mediation takes one mediator; "
                        f"analysis.mediator lists {len(a.mediator)} (disable it or analyse one mediator)")
    for name in a.scores:
        if name not in client:
            problems.append(f"analysis.scores.{name}: unknown instrument {name!r}; expected one of {expected}")
    domains = list(cfg.scoring.fidelity.domains)
    for i, d in enumerate(a.domains.domains or []):
        if d not in domains:
            problems.append(f"analysis.domains.domains[{i}]: {d!r} is not a fidelity domain; expected one of "
                            f"{', '.join(domains)}")
    interviews = cfg.files.interviews
    if isinstance(interviews, RedcapInterviews):
        for event, wave in interviews.events.items():
            if wave is not None and float(wave) not in cfg.schedule:
                problems.append(f"files.interviews.events.{event}: expected a wave of schedule {cfg.waves}; "
                                f"got {float(wave):g}")
    return problems


def _cross_problems(cfg: StudyConfig) -> list[str]:
    """Consistency between sections, each problem with the key path it concerns."""
    problems: list[str] = _instrument_problems(cfg)
    if problems:
        return problems
    a = cfg.analysis
    for inst, score in a.scores.items():
        names = _score_names(inst, cfg.scoring)
        if score not in names:
            problems.append(f"analysis.scores.{inst}: expected one of {names}; got {score!r}")
    if a.baseline_wave not in cfg.schedule:
        problems.append(f"analysis.baseline_wave: expected a wave of schedule {cfg.waves}; got {a.baseline_wave:g}")
    mediator_instruments = list(dict.fromkeys(inst for inst, _ in a.mediator_scores()))
    for i, pair in enumerate(a.waves):
        for role, wave, needed in (("outcome", pair.outcome, a.outcomes),
                                   ("mediator", pair.mediator, mediator_instruments)):
            if wave not in cfg.schedule:
                problems.append(f"analysis.waves[{i}].{role}: expected a wave of schedule {cfg.waves}; got {wave:g}")
                continue
            absent = [inst for inst in needed if inst not in cfg.schedule[wave]]
            if absent:
                problems.append(f"analysis.waves[{i}].{role}: instruments {absent} are not scheduled at wave {wave:g}")
        if pair.mediator > pair.outcome:
            problems.append(f"analysis.waves[{i}]: expected the mediator wave before the outcome wave; "
                            f"got mediator {pair.mediator:g} > outcome {pair.outcome:g}")
    if "baseline" in a.covariates and a.baseline_wave in cfg.schedule:
        absent = [o for o in a.outcomes if o not in cfg.schedule[a.baseline_wave]]
        if absent:
            problems.append(f"analysis.covariates: 'baseline' needs {absent} at baseline wave {a.baseline_wave:g}")
    if "ace" in a.covariates and "ace" not in cfg.schedule.get(a.baseline_wave, []):
        problems.append(f"analysis.covariates: 'ace' needs the ace instrument at baseline wave {a.baseline_wave:g}")
    return problems


# ------------------------------------------------------------------------------------ loading
def _field_type(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class reached by following ``loc`` (to list allowed keys of an unknown one)."""
    current: Any = model
    for part in loc[:-1]:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = field.annotation
        args = getattr(current, "__args__", ())
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            nested = [t for t in args if isinstance(t, type) and issubclass(t, BaseModel)]
            if nested:
                current = nested[0]
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _render_path(loc: tuple) -> str:
    """``scoring.rprs.metric``, ``analysis.waves[0].outcome``, ``schedule.4.5[1]`` (dict keys dotted, list indices bracketed)."""
    import typing

    current: Any = StudyConfig
    path = ""
    for part in loc:
        if part == "[key]":
            path += " (key)"
            continue
        if part in _FILE_TAGS and path == "files.interviews":
            current = RedcapInterviews if part == "redcap" else str
            continue
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            path += ("." if path else "") + str(part)
            current = field.annotation if field is not None else None
        elif origin is dict:
            path += ("." if path else "") + str(part)
            current = typing.get_args(current)[1]
        elif origin is list:
            path += f"[{part}]"
            current = typing.get_args(current)[0]
        else:
            path += f"[{part}]" if isinstance(part, int) else ("." if path else "") + str(part)
            current = None
        args = typing.get_args(current) if current is not None else ()
        if current is not None and typing.get_origin(current) not in (dict, list) and not (
                isinstance(current, type) and issubclass(current, BaseModel)):
            nested = [t for t in args if isinstance(t, type) and issubclass(t, BaseModel)]
            current = nested[0] if nested else current
    return path or "(top level)"


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 2, 4, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 50, 50, 40


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr`` of a value cut to ``limit`` characters without ever rendering all of it.

    ``reprlib`` stops at a fixed depth and length, so a value built by nested YAML aliases
    (billions of elements once expanded) is shown in microseconds.
    """
    shown = _REPR.repr(value)
    return shown if len(shown) <= limit else shown[:limit - 3] + "..."


def _format_error(err: dict[str, Any]) -> str:
    loc = tuple(err.get("loc", ()))
    path = _render_path(loc)
    kind = err.get("type", "")
    value = err.get("input")
    if kind == "extra_forbidden":
        owner = _field_type(StudyConfig, loc)
        allowed = f" (allowed: {', '.join(owner.model_fields)})" if owner is not None else ""
        return f"{path}: unknown key{allowed}"
    msg = err.get("msg", "invalid value")
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "too_short":
        least = (err.get("ctx") or {}).get("min_length", 1)
        return f"{path}: expected at least {least} item{'s' if least != 1 else ''}; got {short_repr(value)}"
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
        return f"{path}: {msg}"
    shown = short_repr(value) if not isinstance(value, dict) else "a mapping"
    return f"{path}: expected {msg[0].lower() + msg[1:]}; got {shown}" if msg.startswith(("Input should", "input should")) \
        else f"{path}: {msg}; got {shown}"


def parse_config(data: dict[str, Any] | None, *, source: str = "study.yaml") -> StudyConfig:
    """Validate a mapping (e.g. the parsed YAML) into a :class:`StudyConfig`.

    Raises
    ------
    ConfigError
        One message, one line per problem, each naming the key path and the expected type.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level; got {type(data).__name__}")
    try:
        cfg = StudyConfig.model_validate(data)
    except ValidationError as exc:
        lines = [_format_error(e).replace("Input should be", "input should be") for e in exc.errors()]
        lines = [line.replace("expected input should be ", "expected ") for line in lines]
        raise ConfigError(_join(source, lines)) from None
    problems = _cross_problems(cfg)
    if problems:
        raise ConfigError(_join(source, problems))
    return cfg


def _join(source: str, lines: list[str]) -> str:
    if len(lines) == 1:
        return f"{source}: {lines[0]}"
    return f"{source}: {len(lines)} problems:\n" + "\n".join(f"  - {line}" for line in lines)


def load_config(path: str | os.PathLike) -> StudyConfig:
    """Read and validate ``study.yaml`` (or the ``study.yaml`` of a study folder).

    Raises
    ------
    ConfigError
        If the file is missing, is not valid YAML, or any key is unknown or of the wrong type.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "study.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; expected a study.yaml (run `fidelitymed template DIR` for one)")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {size:,} bytes; expected a study.yaml of at most {MAX_CONFIG_BYTES:,} bytes")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: 0x{raw[exc.start]:02x}); "
                          f"save study.yaml as UTF-8") from None
    return parse_config(parse_yaml(text, source=str(path)), source=str(path))


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with duplicate keys refused and alias expansion bounded.

    PyYAML resolves ``*alias`` to the anchored node itself, so nested aliases ("billion
    laughs") cost nothing to parse but expand to billions of elements in anything that walks
    the result (validation, error messages). :func:`parse_yaml` therefore counts the nodes of
    the expanded tree before constructing Python objects.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:
            # e.g. a timestamp-like scalar that is no date (2014-13-01): name it and its line
            raise yaml.constructor.ConstructorError(
                None, None, f"{short_repr(getattr(node, 'value', ''))} is not a valid value ({exc})",
                node.start_mark) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise _DuplicateKey(f"line {line}: duplicate key {short_repr(key)} "
                                        f"(first at line {first}); each key may appear once")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(Exception):
    pass


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes of the tree once every alias is expanded, stopping as soon as ``limit`` is passed."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            raise _TooLarge("refused: a YAML alias refers to a node that contains it (a recursive alias)")
        on_path.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                raise _TooLarge(f"refused: the YAML holds more than {limit:,} values once its aliases are "
                                f"expanded; a study.yaml needs a few hundred")
        on_path.discard(key)
        sizes[key] = total
        return total

    return size(root)


class _TooLarge(Exception):
    pass


def parse_yaml(text: str, *, source: str = "study.yaml") -> Any:
    """Parse YAML text safely: duplicate keys and alias bombs are :class:`ConfigError`.

    Raises
    ------
    ConfigError
        One line: invalid YAML (with line and column), a duplicate key (with its line), or a
        document that expands to more than ``MAX_YAML_NODES`` values.
    """
    loader = None
    try:
        loader = _BoundedLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, MAX_YAML_NODES)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" line {mark.line + 1}, column {mark.column + 1}:"
        elif isinstance(exc, yaml.reader.ReaderError):
            line = text.count("\n", 0, exc.position) + 1
            where = f" line {line}, column {exc.position - (text.rfind(chr(10), 0, exc.position) + 1) + 1}:"
        else:
            where = ""
        reason = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc).splitlines()[0]
        if isinstance(exc, yaml.reader.ReaderError):
            reason = f"character U+{exc.character:04X} is not allowed in YAML"
        raise ConfigError(f"{source}:{where} not valid YAML ({reason})") from None
    except _DuplicateKey as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except _TooLarge as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: refused: the YAML is nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def default_config() -> StudyConfig:
    """The configuration that reproduces the paper."""
    return StudyConfig()
