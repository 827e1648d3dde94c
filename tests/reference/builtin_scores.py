"""Reference scores of the built-in instruments as scored BEFORE declarations (issue 14).

Run once at commit 03c5dbb (the per-instrument scorers of fidelitymed.instruments before the
declaration path existed):  ``python tests/reference/builtin_scores.py``. It writes
``builtin_scores.npz``: for every ``scoring:`` variant below, random item data (with missing
items and missing codes) and the scores the old code gave, plus the demo study's scores.
``tests/test_declared_instruments.py`` requires the declaration path to reproduce them
bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from fidelitymed.instruments import score_fidelity
from fidelitymed.instruments.codebook import CLIENT_INSTRUMENTS, fidelity_items
from fidelitymed.instruments.scoring import instrument_items, item_ranges, score_instrument
from fidelitymed.study.config import ScoringConfig

HERE = Path(__file__).parent

#: (name, scoring settings): every existing setting away from its default at least once
VARIANTS: list[tuple[str, dict]] = [
    ("default", {}),
    ("rprs_percent", {"rprs": {"metric": "percent_of_max", "max_missing_share": 0.1,
                               "reverse": ["rprs_2", "rprs_17"]}}),
    ("rprs_range", {"rprs": {"item_min": 0, "item_max": 3, "max_missing_share": 0.5,
                             "indices": {"a": ["rprs_1", "rprs_3", "rprs_5"], "b": ["rprs_2", "rprs_24"]}}}),
    ("qoli_mean", {"qoli20": {"total": "mean", "subscale_stat": "sum", "missing_codes": [9], "reverse": ["qoli_3"],
                              "max_missing_share": 0.0}}),
    ("qoli_subs", {"qoli20": {"max_missing_share": 0.35, "missing_codes": [0, 8, 9],
                              "subscales": {"x": ["qoli_1", "qoli_20"], "y": ["qoli_2", "qoli_3", "qoli_4"]}}}),
    ("pgi_exclude", {"pgi": {"points_rule": "exclude", "areas": 3, "rating_max": 100, "points_total": 12}}),
    ("pgi_norm6", {"pgi": {"areas": 6, "points_total": 60, "rating_max": 10}}),
    ("hope4", {"hope": {"points": 4, "max_missing_per_subscale": 1}}),
    ("hope8_3", {"hope": {"points": 8, "max_missing_per_subscale": 3}}),
    ("mcas", {"mcas": {"reverse": ["mcas_16", "mcas_17"], "max_missing_share": 0.3, "item_min": 0, "item_max": 4,
                       "subscales": {"p": ["mcas_1", "mcas_2"], "q": ["mcas_3", "mcas_4", "mcas_5", "mcas_6"]}}}),
    ("ace_count", {"ace": {"missing_rule": "count_answered"}}),
    ("fid_missing", {"fidelity": {"item_missing": "missing", "high_fidelity_threshold": 30}}),
    ("fid_prorate", {"fidelity": {"domain_missing": "prorate", "excluded_domains": []}}),
    ("fid_domains", {"fidelity": {"domains": {"a": 1, "b": 5, "c": 2}, "excluded_domains": ["c"],
                                  "high_fidelity_threshold": 7.5, "domain_missing": "prorate"}}),
]


def random_items(scoring: ScoringConfig, rng: np.random.Generator, n: int = 200) -> pd.DataFrame:
    ranges = item_ranges(scoring)
    data = {}
    for name in CLIENT_INSTRUMENTS:
        for item in instrument_items(name, scoring):
            low, high, codes = ranges[item]
            values = rng.integers(int(low), int(high) + 1, size=n).astype(float)
            values[rng.random(n) < 0.08] = np.nan
            if codes:
                pick = rng.random(n) < 0.05
                values[pick] = rng.choice(np.asarray(codes, dtype=float), size=int(pick.sum()))
            data[item] = values
    # PGI: half of the forms spend exactly points_total (the "exclude" rule keeps those)
    s = scoring.pgi
    half = rng.random(n) < 0.5
    spent = rng.multinomial(s.points_total, np.full(s.areas, 1 / s.areas), size=n).astype(float)
    for k in range(s.areas):
        col = f"pgi_points_{k + 1}"
        data[col] = np.where(half, spent[:, k], data[col])
    fid_domains = scoring.fidelity.domains
    for domain, items in fidelity_items(fid_domains).items():
        for item in items:
            values = rng.integers(2, 11, size=n) / 2.0      # 1.0, 1.5, ..., 5.0
            values = values.astype(float)
            values[rng.random(n) < 0.1] = np.nan
            data[item] = values
    return pd.DataFrame(data)


def scores_of(frame: pd.DataFrame, scoring: ScoringConfig) -> pd.DataFrame:
    parts = [score_instrument(name, frame, scoring) for name in CLIENT_INSTRUMENTS]
    fid = score_fidelity(frame, scoring.fidelity)
    fid["fidelity_high"] = fid["fidelity_high"].astype("Float64").astype(float)
    return pd.concat([*parts, fid], axis=1)


def main() -> None:
    from fidelitymed.instruments.scoring import score_interviews
    from fidelitymed.study.schema import load_study

    rng = np.random.default_rng(20261202)
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, dict] = {}
    for name, settings in VARIANTS:
        scoring = ScoringConfig.model_validate(settings)
        items = random_items(scoring, rng)
        scores = scores_of(items, scoring)
        arrays[f"{name}__items"] = items.to_numpy(dtype=float)
        arrays[f"{name}__scores"] = scores.to_numpy(dtype=float)
        meta[name] = {"settings": settings, "items": list(items.columns), "scores": list(scores.columns)}
    demo = load_study(Path(__file__).parents[2] / "src/fidelitymed/data/demo")
    scored = score_interviews(demo.interviews, demo.config.scoring, schedule=demo.config.schedule)
    score_cols = [c for c in scored.columns if c not in ("client", "wave", "date")]
    arrays["demo__scores"] = scored[score_cols].to_numpy(dtype=float)
    fid = demo.scored_fidelity()
    fid_cols = [c for c in fid.columns if c.startswith("fidelity_")]
    arrays["demo__fidelity"] = fid[fid_cols].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    meta["demo"] = {"scores": score_cols, "fidelity": fid_cols}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez_compressed(HERE / "builtin_scores.npz", **arrays)


if __name__ == "__main__":
    main()
