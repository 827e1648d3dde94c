"""Make the reference data sets fitted by ``multilevel_lme4.R`` and ``multilevel_cr2.R``.

Run from the repository root:  python tests/reference/multilevel_data.py

``multilevel_study.csv`` is shaped like the study: 14 teams in 2 sites, 40 case managers (2-5 per
team, ids repeating across teams), 311 clients in unbalanced groups; ``fidelity`` is a team
property (2-1-1 design), ``x_client`` a client-level predictor that varies within teams; the
mediator ``alliance`` and outcome ``outcome`` have team and case-manager random intercepts.
``multilevel_boundary.csv`` has a mediator without team variance (lme4 fits a singular model:
the team variance on its boundary 0).
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def study_like(rng: np.random.Generator, n_team: int = 14, n_cm: int = 40, n: int = 311) -> pd.DataFrame:
    cm_per_team = np.full(n_team, 2)
    extra = rng.choice(n_team * 3, size=n_cm - 2 * n_team, replace=False) % n_team
    np.add.at(cm_per_team, extra, 1)
    cm_team = np.repeat(np.arange(n_team), cm_per_team)
    weights = rng.gamma(2.0, 1.0, size=n_cm)
    sizes = np.maximum(2, np.round(weights / weights.sum() * n)).astype(int)
    while sizes.sum() != n:  # fix the total by +/-1 on random case managers
        j = rng.integers(n_cm)
        sizes[j] += 1 if sizes.sum() < n else (-1 if sizes[j] > 2 else 0)
    cm_of_row = np.repeat(np.arange(n_cm), sizes)
    team_of_row = cm_team[cm_of_row]
    cm_label = np.concatenate([np.arange(1, k + 1) for k in cm_per_team])
    site = (np.arange(n_team) >= n_team // 2).astype(int)
    fidelity = rng.normal(4.0, 0.35, n_team) + 0.2 * site
    u_team_m, u_cm_m = rng.normal(0, 3.5, n_team), rng.normal(0, 1.0, n_cm)
    u_team_y, u_cm_y = rng.normal(0, 2.0, n_team), rng.normal(0, 2.0, n_cm)
    x_client = rng.normal(0, 1, n) + 0.5 * fidelity[team_of_row]
    m = (30 + 1.5 * fidelity[team_of_row] + 0.8 * x_client + 1.0 * site[team_of_row]
         + u_team_m[team_of_row] + u_cm_m[cm_of_row] + rng.normal(0, 5, n))
    y = (20 + 0.3 * m + 0.5 * x_client - 1.0 * site[team_of_row]
         + u_team_y[team_of_row] + u_cm_y[cm_of_row] + rng.normal(0, 6, n))
    return pd.DataFrame({"team": [f"T{t + 1:02d}" for t in team_of_row],
                         "case_manager": [f"cm{cm_label[j]}" for j in cm_of_row],
                         "site": site[team_of_row], "fidelity": fidelity[team_of_row].round(4),
                         "x_client": x_client.round(4), "alliance": m.round(3), "outcome": y.round(3)})


def main() -> None:
    rng = np.random.default_rng(20261202)
    study_like(rng).to_csv(HERE / "multilevel_study.csv", index=False)
    boundary = study_like(rng)
    # overwrite the mediator by noise centred within teams: the team means carry less variation
    # than independent noise would, so REML puts the team variance on its boundary 0
    noise = pd.Series(rng.normal(0, 5, len(boundary)))
    noise -= noise.groupby(boundary["team"]).transform("mean")
    boundary["alliance"] = (40 + 0.5 * boundary["x_client"] + noise).round(3)
    boundary.to_csv(HERE / "multilevel_boundary.csv", index=False)


if __name__ == "__main__":
    main()
