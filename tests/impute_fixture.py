"""A small demo-shaped study (clients, interviews) with known missingness, for imputation tests.

Latent client traits drive every instrument's items, so items of a scale correlate and waves
correlate; interviews are missing (drop-out, MAR on baseline quality of life) and single items
are missing at random. Used by tests/test_impute.py and benchmarks/compare_imputers.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fidelitymed.instruments.codebook import load_codebook

WAVES = (0.0, 4.5, 9.0, 13.5, 18.0)


def _likert(latent: np.ndarray, low: int, high: int, rng: np.random.Generator, noise: float = 0.8) -> np.ndarray:
    mid = (low + high) / 2
    span = (high - low) / 2
    raw = mid + span * 0.45 * (latent + noise * rng.standard_normal(latent.shape))
    return np.clip(np.rint(raw), low, high)


def make_study(n_clients: int = 311, seed: int = 7, interview_missing: float = 0.10,
               item_missing: float = 0.02) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``(clients, interviews, auxiliary)`` of a synthetic study shaped like the demo."""
    rng = np.random.default_rng(seed)
    cb = load_codebook()
    n = n_clients
    clients = pd.DataFrame({
        "client": [f"c{i:04d}" for i in range(n)],
        "team": rng.integers(1, 15, n),
        "age": np.rint(rng.normal(40, 12, n)).clip(18, 80),
        "gender": rng.integers(0, 2, n),
        "housing": rng.integers(0, 2, n),
        "employment": rng.integers(0, 2, n),
        "education": rng.integers(1, 4, n),
        "long_hospitalization": rng.integers(0, 2, n),
    })
    site = (clients["team"] % 4).map({0: "A", 1: "B", 2: "C", 3: "D"})
    fidelity = 30 + 3 * rng.standard_normal(15)[clients["team"]]
    aux = pd.DataFrame({"client": clients["client"], "site": site,
                        "fidelity_4.5m_180d": fidelity + rng.normal(0, 0.5, n),
                        "fidelity_13.5m_180d": fidelity + 1 + rng.normal(0, 0.5, n)})
    general = rng.standard_normal(n)
    specific = {name: rng.standard_normal(n) for name in ("qoli20", "hope", "mcas", "pgi")}
    alliance = 0.3 * (fidelity - 30) / 3 + rng.standard_normal(n)
    rows = []
    for w in WAVES:
        frame = {"client": clients["client"].to_numpy(), "wave": np.full(n, w)}
        # instruments share a general factor (r about 0.3-0.5 between scales, 0.5-0.6 between waves)
        def trait(name: str) -> np.ndarray:
            return 0.55 * general + 0.55 * specific[name] + 0.6 * rng.standard_normal(n) + 0.2 * alliance
        if w in (4.5, 13.5):
            lat = alliance + 0.4 * rng.standard_normal(n)
            for c in cb["rprs"]["items"]:
                frame[c] = _likert(lat, 1, 4, rng)
        else:
            q_trait, h_trait, m_trait, p_trait = (trait(k) for k in ("qoli20", "hope", "mcas", "pgi"))
            for c in cb["qoli20"]["items"]:
                frame[c] = _likert(q_trait, 1, 7, rng)
            for c in cb["hope"]["items"]:
                frame[c] = _likert(h_trait, 1, 8, rng)
            for c in cb["mcas"]["items"]:
                frame[c] = _likert(0.7 * m_trait, 1, 5, rng)
            used = rng.integers(3, 6, n)
            points = np.zeros((n, 5))
            for i in range(n):
                cut = np.sort(rng.choice(np.arange(1, 10), used[i] - 1, replace=False))
                points[i, : used[i]] = np.diff(np.concatenate([[0], cut, [10]]))
            for k in range(5):
                rating = _likert(p_trait, 0, 10, rng, noise=1.2)
                frame[f"pgi_rating_{k + 1}"] = np.where(k < used, rating, np.nan)
                frame[f"pgi_points_{k + 1}"] = np.where(k < used, points[:, k], np.nan)
            if w == 0:
                for c in cb["ace"]["items"]:
                    frame[c] = (rng.random(n) < 0.35).astype(float)
        rows.append(pd.DataFrame(frame))
    interviews = pd.concat(rows, ignore_index=True)
    items = [c for c in interviews.columns if c not in ("client", "wave")]
    cells = interviews[items].to_numpy()
    hit = (rng.random(cells.shape) < item_missing) & ~np.isnan(cells)
    cells[hit] = np.nan
    interviews[items] = cells
    # "don't know" codes on a few QOLI answers
    q = [c for c in cb["qoli20"]["items"]]
    dk = (rng.random((len(interviews), len(q))) < 0.01) & interviews[q].notna().to_numpy()
    interviews[q] = np.where(dk, 8.0, interviews[q].to_numpy())
    # drop whole interviews: more likely for low baseline quality of life (MAR)
    base = interviews.loc[interviews["wave"] == 0, q].where(lambda d: d < 8).mean(axis=1).to_numpy()
    keep = np.ones(len(interviews), bool)
    for j, w in enumerate(WAVES[1:], start=1):
        logit = np.log(interview_missing / (1 - interview_missing)) - 0.8 * (base - np.nanmean(base))
        drop = rng.random(n) < 1 / (1 + np.exp(-logit))
        keep[j * n: (j + 1) * n] = ~drop
    interviews = interviews[keep].reset_index(drop=True)
    interviews.insert(2, "date", pd.Timestamp("2015-01-01") + pd.to_timedelta(interviews["wave"] * 30.4, unit="D"))
    return clients, interviews, aux
