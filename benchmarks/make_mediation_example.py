"""Generate the bundled study-shaped mediation example (src/fidelitymed/data/mediation_example.csv).

Synthetic, seeded and small: 311 clients in 6 sites, X = team fidelity (total score, 8-40 scale,
here ~20-36), M = working alliance (0-100), Y = quality of life at 9 months (QOLI-20 style mean,
1-7), and the study's nine covariates (age, gender, housing, employment, education, adverse
childhood experiences, site, long hospitalization, baseline of the outcome).  True paths:
a = 1.0 alliance points per fidelity point, b = 0.02 QoL points per alliance point,
c' = 0.  Six values of alliance and two of the baseline are missing (listwise deletion demo).

Run once:  python benchmarks/make_mediation_example.py  (rewrites the CSV bit-identically).
``study_like(n, seed)`` is also used by benchmarks/bench_mediation.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "src" / "fidelitymed" / "data" / "mediation_example.csv"
COVARIATES = ["age", "gender", "housing", "employment", "education", "ace", "site", "long_hosp", "qol_baseline"]


def study_like(n: int = 311, seed: int = 20241126, n_sites: int = 6, missing: bool = True) -> pd.DataFrame:
    """A study-shaped data set with ``n`` clients (see the module docstring)."""
    rng = np.random.default_rng(seed)
    site = rng.integers(1, n_sites + 1, size=n)
    site_fid = np.linspace(24.0, 32.0, n_sites)[rng.permutation(n_sites)]
    fidelity = np.clip(site_fid[site - 1] + rng.normal(0, 2.5, n), 20, 36).round(2)
    age = np.clip(rng.normal(42, 12, n), 18, 75).round()
    gender = rng.integers(0, 2, n)
    housing = (rng.random(n) < 0.7).astype(int)
    employment = (rng.random(n) < 0.2).astype(int)
    education = rng.integers(1, 6, n)
    ace = rng.binomial(10, 0.35, n)
    long_hosp = (rng.random(n) < 0.15).astype(int)
    qol_baseline = np.clip(rng.normal(4.0, 1.0, n), 1, 7)
    site_eff = rng.normal(0, 3, n_sites)[site - 1]
    alliance = np.clip(45 + 1.0 * (fidelity - 28) + 0.1 * (age - 42) - 0.8 * ace + site_eff
                       + rng.normal(0, 12, n) + 25, 0, 100).round(1)
    qol = np.clip(1.0 + 0.02 * alliance + 0.5 * qol_baseline - 0.05 * ace + 0.2 * housing
                  + 0.0 * fidelity + rng.normal(0, 0.8, n), 1, 7).round(2)
    frame = pd.DataFrame({
        "client": np.arange(1, n + 1), "fidelity": fidelity, "alliance": alliance, "qol": qol,
        "age": age.astype(int), "gender": gender, "housing": housing, "employment": employment,
        "education": education, "ace": ace, "site": site, "long_hosp": long_hosp,
        "qol_baseline": qol_baseline.round(2),
    })
    if missing:
        frame["alliance"] = frame["alliance"].astype(float)
        frame.loc[rng.choice(n, 6, replace=False), "alliance"] = np.nan
        frame.loc[rng.choice(n, 2, replace=False), "qol_baseline"] = np.nan
    return frame


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    study_like().to_csv(OUT, index=False, lineterminator="\n")
    print(f"wrote {OUT}")
