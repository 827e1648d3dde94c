"""Coverage of the a path's 95% CI: multilevel (REML + Satterthwaite) against single-level OLS.

The true model is the demo simulator's alliance equation at 4.5 months (``truth.json``: a, the
team and case-manager variances, the client-level variance), on the demo study's nesting (311
clients, 65 case managers, 14 teams) with the team means of the demo's fidelity exposure as the
team-level X (a 2-1-1 design; see :func:`fidelitymed.stats.multilevel.coverage.coverage_a_path`).

Run:  .venv/bin/python benchmarks/coverage_multilevel.py [--n-rep 2000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import time

import fidelitymed as fm
from fidelitymed.stats.multilevel.coverage import coverage_a_path


def demo_design():
    """Nesting, team-level X and the true alliance equation of the demo study (truth.json)."""
    from fidelitymed.study.schema import load_study

    study = load_study(fm.demo_study_path())
    frame = fm.analysis_frame(study, domains=False)
    x_team = frame.groupby("team")["fidelity_4.5m_180d"].mean().to_dict()
    truth = json.loads((fm.demo_study_path() / "truth.json").read_text())["equations"]["rprs@4.5"]
    clients = study.clients
    return clients["team"].to_numpy(), clients["case_manager"].to_numpy(), x_team, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-rep", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    team, cm, x_team, truth = demo_design()
    start = time.perf_counter()
    res = coverage_a_path(team, cm, x_team, a=truth["exposure"], var_team=truth["var_team"],
                          var_case_manager=truth["var_case_manager"], var_residual=truth["var_client"],
                          intercept=truth["intercept"], n_rep=args.n_rep, seed=args.seed)
    print(f"truth: a = {truth['exposure']}, var_team = {truth['var_team']:.2f}, var_case_manager = "
          f"{truth['var_case_manager']:.2f}, var_client = {truth['var_client']:.2f}; 14 teams, "
          f"{len(set(zip(team, cm)))} case managers, {len(team)} clients")
    print(res.summary())
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
