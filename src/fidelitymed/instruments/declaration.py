"""Instrument declarations: what an instrument is, as data (issue 14).

A declaration says which item columns an instrument has, their valid scale points, which
items are reverse-keyed, which values mean "no answer", how many items may be missing before
a score is missing, and how the total and the subscales are formed. Every instrument -- the
shipped ones in ``codebook.yaml`` and any a study declares under ``instruments:`` in
``study.yaml`` -- is scored from its declaration by one entry point,
:func:`fidelitymed.instruments.scoring.score_declaration`. Three kinds exist:

:class:`InstrumentDeclaration`
    A client instrument scored by items -> total (+ subscales): ``mean``, ``sum`` (prorated as
    mean of the answered items x number of items), ``count`` (the answered items added up, not
    prorated: ACE) or ``subscale_sum`` (the total is the sum of the subscale scores: Hope).
:class:`PgiDeclaration`
    ``rule: pgi``: the Patient-Generated Index, a rating x points form that no item rule can
    express (Ruta et al. 1994), kept as a named scoring rule.
:class:`FidelityDeclaration`
    The team-level fidelity scale: domains with their items, excluded domains, the total rule
    and the high-fidelity threshold (SMCM, TMACT, IPS-25, Housing First ...).

:func:`parse_declarations` turns the ``instruments:`` mapping into declarations and reports
every problem as one line with its key path (``instruments.wai.reverse[0]: 'wai_13' is not
one of the items``). :func:`builtin_declaration` gives the shipped instruments' declarations
with the ``scoring:`` settings of ``study.yaml`` applied (the settings predate declarations and
stay valid).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal, Union

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

#: ``wai_1..wai_12``: prefix, first number, (same) prefix, last number
_RANGE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*?)(\d+)\s*\.\.\s*([A-Za-z_][A-Za-z0-9_]*?)(\d+)\s*$")
#: instrument keys become column prefixes (``wai`` -> ``wai_total``)
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def expand_items(value: Any) -> Any:
    """Expand the range form: ``"wai_1..wai_12"`` -> ``["wai_1", ..., "wai_12"]``.

    A list may mix names and ranges (``[wai_1..wai_4, wai_extra]``). Anything else is passed
    through for pydantic to judge.

    Raises
    ------
    ValueError
        On a ``..`` entry that is not a valid ascending range with one prefix.
    """
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return value
    out: list[Any] = []
    for entry in value:
        if isinstance(entry, str) and ".." in entry:
            match = _RANGE.match(entry)
            if not match or match.group(1) != match.group(3) or int(match.group(2)) > int(match.group(4)):
                raise ValueError(f"{entry!r} is not a range like wai_1..wai_12 (one prefix, ascending numbers)")
            prefix, first, last = match.group(1), int(match.group(2)), int(match.group(4))
            out.extend(f"{prefix}{k}" for k in range(first, last + 1))
        else:
            out.append(entry)
    return out


def expand_domains(value: Any) -> Any:
    """Domain items: a count ``k`` means ``<domain>_1..<domain>_k`` (the codebook's naming); lists and
    ranges as in :func:`expand_items`."""
    if not isinstance(value, Mapping):
        return value
    out = {}
    for domain, items in value.items():
        if isinstance(items, int) and not isinstance(items, bool):
            items = [f"{domain}_{k}" for k in range(1, items + 1)]
        out[domain] = expand_items(items)
    return out


class _Declaration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    #: display name in tables and figures (default: the instrument's key)
    label: str | None = None
    #: full title and citation
    title: str = ""
    #: free text: the scoring rule in words, status of its facts
    note: str = ""

    def problems(self) -> list[tuple[str, str]]:
        """Semantic problems as ``(sub-path, message)``; empty when the declaration is sound."""
        return []


def _duplicates(items: list[str], key: str) -> list[tuple[str, str]]:
    seen: set[str] = set()
    out = []
    for i, item in enumerate(items):
        if item in seen:
            out.append((f"{key}[{i}]", f"{item!r} is listed twice"))
        seen.add(item)
    return out


def _members(names: list[str], allowed: list[str], key: str, what: str = "one of the items") -> list[tuple[str, str]]:
    allowed_set = set(allowed)
    return [(f"{key}[{i}]", f"{name!r} is not {what}") for i, name in enumerate(names) if name not in allowed_set]


def _range_problems(low: float, high: float, codes: list[float], integer: bool,
                    low_key: str = "min") -> list[tuple[str, str]]:
    out = []
    if not low < high:
        out.append((low_key, f"{low:g} is not below max {high:g}"))
    for i, code in enumerate(codes):
        if low <= code <= high and (not integer or float(code).is_integer()):
            out.append((f"missing_codes[{i}]", f"{code:g} is a valid scale point ({low:g}-{high:g}); a missing "
                                                 "code must lie outside the scale"))
    return out


class InstrumentDeclaration(_Declaration):
    """A client instrument: items -> a total and optional subscales.

    Scoring (:func:`fidelitymed.instruments.scoring.score_declaration`): missing codes become
    missing, reverse-keyed items ``min + max - x``; a score over ``k`` items is missing when more
    than ``floor(max_missing_share x k)`` of them are missing, else the mean of the answered
    items (``mean``) or that mean x ``k`` (``sum``, the usual prorated sum). ``metric`` then
    rescales mean scores: ``zero_to_100`` = (mean - min)/(max - min) x 100 (percent of maximum
    possible, POMP), ``percent_of_max`` = mean/max x 100.
    """

    level: Literal["client"] = "client"
    #: item columns (a list; entries may use the range form ``wai_1..wai_12``)
    items: list[str]
    #: valid item values
    min: float
    max: float
    #: valid values are whole numbers (false: any number in [min, max])
    integer: bool = True
    #: reverse-keyed items, scored ``max + min - value``
    reverse: list[str] = Field(default_factory=list)
    #: values that mean "no answer" (don't know, not applicable): read as missing
    missing_codes: list[float] = Field(default_factory=list)
    #: a score is prorated when at most this share of its items is missing, else missing
    max_missing_share: float = 0.2
    #: total over the scored items: mean | sum | count (not prorated) | subscale_sum
    total: Literal["mean", "sum", "count", "subscale_sum"] = "mean"
    #: subscale name -> its items (``indices`` is accepted as a synonym: RPRS calls them indices)
    subscales: dict[str, list[str]] = Field(default_factory=dict,
                                            validation_alias=AliasChoices("subscales", "indices"))
    #: how subscales are formed (default: like the total; ``count`` and ``subscale_sum`` totals -> sum)
    subscale_total: Literal["mean", "sum"] | None = None
    #: rescaling of mean scores (``raw`` leaves them on the item scale)
    metric: Literal["raw", "zero_to_100", "percent_of_max"] = "raw"
    #: items checked for valid values but never scored (e.g. the Hope Scale's fillers)
    unscored: list[str] = Field(default_factory=list, validation_alias=AliasChoices("unscored", "fillers"))

    @field_validator("items", "reverse", "unscored", mode="before")
    @classmethod
    def _expand(cls, value: Any) -> Any:
        return expand_items(value)

    @field_validator("subscales", mode="before")
    @classmethod
    def _expand_subscales(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: expand_items(v) for k, v in value.items()}
        return value

    @property
    def scored_items(self) -> list[str]:
        """Items that enter the total (``items`` without ``unscored``)."""
        skip = set(self.unscored)
        return [c for c in self.items if c not in skip]

    @property
    def score_names(self) -> list[str]:
        """Scores this declaration yields: ``total`` then the subscales."""
        return ["total", *self.subscales]

    @property
    def subscale_stat(self) -> Literal["mean", "sum"]:
        if self.subscale_total is not None:
            return self.subscale_total
        return "mean" if self.total == "mean" else "sum"

    def item_ranges(self) -> dict[str, tuple[float, float, tuple[float, ...]]]:
        """``{item: (low, high, missing_codes)}`` for validation and imputation."""
        return {c: (self.min, self.max, tuple(self.missing_codes)) for c in self.items}

    def problems(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if not self.items:
            out.append(("items", "at least one item is needed"))
        out += _duplicates(self.items, "items")
        out += _range_problems(self.min, self.max, self.missing_codes, self.integer)
        out += _members(self.reverse, self.items, "reverse")
        out += _members(self.unscored, self.items, "unscored")
        if not 0 <= self.max_missing_share <= 1:
            out.append(("max_missing_share", f"expected a share between 0 and 1; got {self.max_missing_share:g}"))
        scored = self.scored_items
        if self.items and not scored:
            out.append(("unscored", "leaves no item to score"))
        for name, members in self.subscales.items():
            if not members:
                out.append((f"subscales.{name}", "has no items"))
            out += _members(members, scored, f"subscales.{name}",
                            "one of the scored items" if self.unscored else "one of the items")
            out += _duplicates(members, f"subscales.{name}")
        if self.total == "subscale_sum" and not self.subscales:
            out.append(("total", "'subscale_sum' needs subscales"))
        if self.metric != "raw" and (self.total != "mean" or self.subscale_stat != "mean"):
            out.append(("metric", f"{self.metric!r} rescales mean scores; expected total: mean "
                                  "(and mean subscales)"))
        return out


class PgiDeclaration(_Declaration):
    """``rule: pgi``: the Patient-Generated Index (Ruta et al. 1994).

    The client nominates up to ``areas`` areas, rates each ``rating_min..rating_max`` and spends
    ``points_total`` points across them; ``PGI = 100 x sum_i (r_i / rating_max) x (p_i / sum p)``
    (instruments.md s.4). Items: ``pgi_rating_1..k`` and ``pgi_points_1..k``.
    """

    level: Literal["client"] = "client"
    rule: Literal["pgi"] = "pgi"
    areas: int = 5
    rating_min: int = 0
    rating_max: int = 10
    points_total: int = 10
    #: "normalize" = divide by the points actually spent; "exclude" = unscorable unless they equal points_total
    points_rule: Literal["normalize", "exclude"] = "normalize"
    missing_codes: list[float] = Field(default_factory=list)

    @property
    def rating_items(self) -> list[str]:
        return [f"pgi_rating_{k}" for k in range(1, self.areas + 1)]

    @property
    def points_items(self) -> list[str]:
        return [f"pgi_points_{k}" for k in range(1, self.areas + 1)]

    @property
    def items(self) -> list[str]:
        return self.rating_items + self.points_items

    @property
    def scored_items(self) -> list[str]:
        return self.items

    @property
    def score_names(self) -> list[str]:
        return ["index"]

    def item_ranges(self) -> dict[str, tuple[float, float, tuple[float, ...]]]:
        ranges = {c: (self.rating_min, self.rating_max, ()) for c in self.rating_items}
        ranges.update({c: (0, self.points_total, ()) for c in self.points_items})
        return ranges

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.areas < 1:
            out.append(("areas", f"expected at least 1 area; got {self.areas}"))
        if self.points_total < 1:
            out.append(("points_total", f"expected at least 1 point; got {self.points_total}"))
        if not self.rating_min < self.rating_max:
            out.append(("rating_min", f"{self.rating_min:g} is not below rating_max {self.rating_max:g}"))
        return out


class FidelityDeclaration(_Declaration):
    """The team-level fidelity scale.

    A domain score is the mean of its rated items (``item_missing: domain_mean``: an unrated
    item is skipped; ``missing``: the domain is missing); the total is the ``sum`` or ``mean`` of
    the included domain scores (``domain_missing: missing``: missing when one is missing;
    ``prorate``: from the available ones, a sum as their mean x the number of included domains);
    high fidelity is total >= ``high_fidelity_threshold``.
    """

    level: Literal["team"] = "team"
    #: domain -> its items (a list, a range ``tmact_op_1..tmact_op_8``, or a count k for ``<domain>_1..k``)
    domains: dict[str, list[str]]
    excluded_domains: list[str] = Field(default_factory=list)
    min: float = 1
    max: float = 5
    missing_codes: list[float] = Field(default_factory=list)
    #: fidelity ratings are often averaged sub-items, so fractional values are valid by default
    integer: bool = False
    high_fidelity_threshold: float | None = None
    total: Literal["sum", "mean"] = "sum"
    item_missing: Literal["domain_mean", "missing"] = "domain_mean"
    domain_missing: Literal["missing", "prorate"] = "missing"

    @field_validator("domains", mode="before")
    @classmethod
    def _expand_domains(cls, value: Any) -> Any:
        return expand_domains(value)

    @property
    def included_domains(self) -> list[str]:
        return [d for d in self.domains if d not in self.excluded_domains]

    @property
    def items(self) -> list[str]:
        return [c for members in self.domains.values() for c in members]

    @property
    def score_names(self) -> list[str]:
        return [*self.domains, "total", "high"]

    def item_ranges(self) -> dict[str, tuple[float, float, tuple[float, ...]]]:
        return {c: (self.min, self.max, tuple(self.missing_codes)) for c in self.items}

    def problems(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if not self.domains:
            out.append(("domains", "at least one domain is needed"))
        for domain, members in self.domains.items():
            if not members:
                out.append((f"domains.{domain}", "has no items"))
        seen: dict[str, str] = {}
        for domain, members in self.domains.items():
            for i, item in enumerate(members):
                if item in seen:
                    out.append((f"domains.{domain}[{i}]", f"{item!r} is listed twice (also in {seen[item]!r})"
                                if seen[item] != domain else f"{item!r} is listed twice"))
                seen.setdefault(item, domain)
        out += _members(self.excluded_domains, list(self.domains), "excluded_domains", "one of the domains")
        if self.domains and not self.included_domains:
            out.append(("excluded_domains", "leaves no domain to score"))
        out += _range_problems(self.min, self.max, self.missing_codes, self.integer)
        return out


ClientDeclaration = Union[InstrumentDeclaration, PgiDeclaration]
AnyDeclaration = Union[InstrumentDeclaration, PgiDeclaration, FidelityDeclaration]


# ------------------------------------------------------------------------------------ parsing
def _loc_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _pydantic_lines(exc: ValidationError, path: str) -> list[str]:
    lines = []
    for err in exc.errors():
        where = path + _loc_path(tuple(err.get("loc", ())))
        kind, msg = err.get("type", ""), err.get("msg", "invalid value")
        if kind == "extra_forbidden":
            lines.append(f"{where}: unknown key")
        elif kind == "missing":
            lines.append(f"{where}: required key is missing")
        elif kind == "value_error":
            lines.append(f"{where}: {msg.removeprefix('Value error, ')}")
        else:
            shown = repr(err.get("input"))
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            lines.append(f"{where}: {msg[0].lower() + msg[1:]}; got {shown}")
    return lines


def declaration_class(name: str, data: Mapping[str, Any]) -> type[_Declaration]:
    """The declaration kind of ``instruments.<name>``: fidelity, a rule hook, or the item form."""
    if name == "fidelity":  # the one team-level scale; `level: team` elsewhere is refused by the client models
        return FidelityDeclaration
    if data.get("rule") == "pgi":
        return PgiDeclaration
    return InstrumentDeclaration


def parse_declaration(name: str, data: Any, *, path: str) -> tuple[AnyDeclaration | None, list[str]]:
    """Validate one declaration; return it (or None) and its problems as key-path lines."""
    if not isinstance(data, Mapping):
        return None, [f"{path}: expected a mapping of keys (label, items, min, max, ...); got {data!r}"]
    if not _NAME.match(str(name)):
        return None, [f"{path}: {name!r} is not a usable instrument name (letters, digits, _; starting with a "
                      "letter): it prefixes the score columns"]
    data = dict(data)
    if "rule" in data and data["rule"] != "pgi":
        return None, [f"{path}.rule: expected 'pgi' (the only named scoring rule); got {data['rule']!r}"]
    if data.get("level") == "team" and name != "fidelity":
        return None, [f"{path}.level: expected 'client'; got 'team' (the team fidelity scale is declared as "
                      "instruments.fidelity)"]
    cls = declaration_class(str(name), data)
    try:
        decl = cls.model_validate(data)
    except ValidationError as exc:
        return None, _pydantic_lines(exc, path)
    problems = [f"{path}.{key}: {message}" for key, message in decl.problems()]
    return (None if problems else decl), problems


def parse_declarations(mapping: Mapping[str, Any] | None,
                       path: str = "instruments") -> tuple[dict[str, AnyDeclaration], list[str]]:
    """Every declaration of an ``instruments:`` mapping, and all problems found (key-path lines)."""
    declarations: dict[str, AnyDeclaration] = {}
    problems: list[str] = []
    if mapping is None:
        return declarations, problems
    if not isinstance(mapping, Mapping):
        return declarations, [f"{path}: expected a mapping of instrument name -> declaration; got {mapping!r}"]
    for name, data in mapping.items():
        decl, found = parse_declaration(str(name), data, path=f"{path}.{name}")
        problems += found
        if decl is not None:
            declarations[str(name)] = decl
    return declarations, problems


def declare(name: str, data: Mapping[str, Any]) -> AnyDeclaration:
    """One checked declaration from a mapping (the Python way to write ``instruments.<name>``).

    Raises
    ------
    fidelitymed.errors.ConfigError
        With one key-path line per problem.
    """
    from ..errors import ConfigError

    decl, problems = parse_declaration(name, data, path=f"instruments.{name}")
    if problems:
        raise ConfigError("\n".join(problems))
    assert decl is not None
    return decl


# ----------------------------------------------------------------------------------- built-ins
@lru_cache(maxsize=None)
def codebook_declaration(name: str) -> AnyDeclaration:
    """The shipped declaration of a built-in instrument, exactly as ``codebook.yaml`` states it (cached: immutable)."""
    from .codebook import load_codebook

    entry = load_codebook()[name]
    decl, problems = parse_declaration(name, entry, path=f"codebook.yaml:{name}")
    if problems:  # a broken shipped codebook is a bug, not a user error
        raise RuntimeError("; ".join(problems))
    assert decl is not None
    return decl


def _share_for_count(count: int, n_items: int) -> float:
    # the share whose floor(share x n) allowance is exactly ``count`` items
    share = count / n_items
    assert math.floor(share * n_items + 1e-9) == count
    return share


def builtin_declaration(name: str, settings: Any = None) -> AnyDeclaration:
    """A built-in instrument's declaration with its ``scoring.<name>`` settings applied.

    ``settings`` is the instrument's block of :class:`fidelitymed.study.config.ScoringConfig`
    (e.g. ``RprsScoring``); None = the defaults. The settings are the older way to change a
    built-in rule and keep working: each maps onto a declaration field.
    """
    declared = getattr(settings, "declaration", None)
    if name == "fidelity" and isinstance(declared, FidelityDeclaration):
        return declared  # the study declared its own fidelity scale (instruments.fidelity)
    base = codebook_declaration(name)
    if settings is None:
        from ..study import config as _config

        settings = getattr(_config.ScoringConfig(), name)
    s = settings
    if name == "fidelity":
        update: dict[str, Any] = {
            "domains": expand_domains(dict(s.domains)),
            "excluded_domains": list(s.excluded_domains), "high_fidelity_threshold": s.high_fidelity_threshold,
            "item_missing": s.item_missing, "domain_missing": s.domain_missing}
    elif name == "rprs":
        update = {"min": s.item_min, "max": s.item_max, "reverse": list(s.reverse), "subscales": dict(s.indices),
                  "max_missing_share": s.max_missing_share, "metric": s.metric}
    elif name == "qoli20":
        update = {"missing_codes": [float(c) for c in s.missing_codes], "reverse": list(s.reverse),
                  "subscales": dict(s.subscales), "total": s.total, "subscale_total": s.subscale_stat,
                  "max_missing_share": s.max_missing_share}
    elif name == "pgi":
        update = {"areas": s.areas, "rating_max": s.rating_max, "points_total": s.points_total,
                  "points_rule": s.points_rule}
    elif name == "hope":
        members = len(next(iter(base.subscales.values())))  # type: ignore[union-attr]
        update = {"max": s.points, "max_missing_share": _share_for_count(s.max_missing_per_subscale, members)}
    elif name == "mcas":
        update = {"min": s.item_min, "max": s.item_max, "reverse": list(s.reverse), "subscales": dict(s.subscales),
                  "max_missing_share": s.max_missing_share}
    elif name == "ace":
        # count: "missing" = no item may be missing; "count_answered" = any answered item will do
        update = {"max_missing_share": 0.0 if s.missing_rule == "missing" else 1.0}
    else:
        raise KeyError(f"unknown built-in instrument {name!r}")
    return base.model_copy(update=update)
