"""A results dict that follows docs/results-schema.md exactly, for the report tests.

Numbers are drawn at random (seeded) around the paper's magnitudes; internal consistency
(CIs around estimates, alpha from the ICC rule, significance from alpha and p) is kept so a
report that misreads a field shows it. Recognizable identifiers are planted where a careless
producer might leak them, so the privacy tests can assert they never reach the report.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
from scipy import stats

PLANTED_CLIENT_IDS = ["CLIENT-ZQX-0001", "CLIENT-ZQX-0002"]
PLANTED_CM_IDS = ["CM-ZQX-77", "CM-ZQX-78"]
LABELS = {"qoli20": "QOLI-20", "pgi": "PGI", "hope": "THS", "mcas": "MCAS"}
COVARIATES = ["age", "gender", "housing", "employment", "education", "ace", "site", "long_hospitalization",
              "baseline"]


def _path(rng, coef, se, df):
    t = coef / se
    p = float(2 * stats.t.sf(abs(t), df))
    q = stats.t.ppf(0.975, df)
    return {"coef": coef, "se": se, "t": t, "p": p, "ci_low": coef - q * se, "ci_high": coef + q * se}


def _model(rng, n, k):
    r2 = float(rng.uniform(0.05, 0.5))
    df1, df2 = k, n - k - 1
    F = r2 / df1 / ((1 - r2) / df2)
    return {"r": r2 ** 0.5, "r2": r2, "mse": float(rng.uniform(20, 200)), "F": F, "df1": df1, "df2": df2,
            "p": float(stats.f.sf(F, df1, df2))}


def make_results(seed: int = 7, *, plant_ids: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    icc_of = {}
    icc = []
    for var, n in [("rprs_4.5m", 280), ("rprs_13.5m", 250)] + [(f"{o}_{m}m", 300 - m) for o in LABELS for m in (9, 18)]:
        team = float(rng.uniform(0.0, 0.06))
        cm = float(rng.uniform(0.0, 0.05))
        rule = team + cm
        alpha = 0.01 if rule > 0.05 else 0.05
        icc_of[var] = (rule, alpha)
        icc.append({"y": var, "n": n, "residual_variance": float(rng.uniform(50, 200)),
                    "levels": {"team": {"variance": team * 100, "icc": team},
                               "case_manager": {"variance": cm * 100, "icc": cm, "cumulative_icc": rule}},
                    "icc_for_rule": rule, "alpha": alpha})
    mediation, decisions = [], []
    for window in (180, 90, 270):
        for month, mmonth in ((9, 4.5), (18, 13.5)):
            for o in LABELS:
                n = int(rng.integers(230, 300))
                df = n - 11
                a = _path(rng, float(rng.normal(0.64, 0.1)), 0.21, df)
                b = _path(rng, float(rng.normal(0.08, 0.06)), 0.045, df - 1)
                cp = _path(rng, float(rng.normal(0.0, 0.15)), 0.2, df - 1)
                ab = a["coef"] * b["coef"]
                c = _path(rng, cp["coef"] + ab, 0.2, df)
                ab_lo, ab_hi = ab - 1.9 * abs(ab) * 0.5 - 0.01, ab + 1.1 * abs(ab) + 0.02
                std = float(rng.uniform(0.12, 0.3))
                m_var, y_var = f"rprs_{mmonth:g}m", f"{o}_{month}m"
                alpha = {"a": icc_of[m_var][1], "b": icc_of[y_var][1], "c_prime": icc_of[y_var][1],
                         "c": icc_of[y_var][1]}
                sig = {k: bool(p["p"] < alpha[k]) for k, p in (("a", a), ("b", b), ("c_prime", cp), ("c", c))}
                sig["indirect"] = bool(ab_lo > 0 and sig["a"] and sig["b"])
                rec = {"outcome": o, "outcome_label": LABELS[o], "outcome_month": month, "mediator_month": mmonth,
                       "window_days": window, "primary_window": window == 180,
                       "imputation_scheme": "item-level MICE-PMM, m=20",
                       "x": f"fidelity_{mmonth:g}m_{window}d", "m": m_var, "y": y_var, "covariates": COVARIATES,
                       "n": n, "n_dropped": 311 - n,
                       "paths": {"a": a, "b": b, "c_prime": cp, "c": c},
                       "models": {"mediator": _model(rng, n, 10), "outcome": _model(rng, n, 11),
                                  "total": _model(rng, n, 10)},
                       "indirect": {"effect": ab, "boot_se": (ab_hi - ab_lo) / 3.92, "ci_low": ab_lo, "ci_high": ab_hi},
                       "indirect_partially_std": {"effect": ab / 12, "boot_se": 0.003, "ci_low": ab_lo / 12,
                                                  "ci_high": ab_hi / 12},
                       "indirect_std": {"effect": ab * std, "boot_se": 0.01, "ci_low": ab_lo * std,
                                        "ci_high": ab_hi * std},
                       "n_boot": 5000, "n_boot_failed": 0, "seed": 1000 + len(mediation),
                       "imputations": 20, "pooling": "stacked", "alpha": alpha, "significant": sig}
                mediation.append(rec)
                for path, dv, pv in (("a", m_var, a["p"]), ("b", y_var, b["p"]), ("c_prime", y_var, cp["p"]),
                                     ("c", y_var, c["p"]), ("indirect", y_var, None)):
                    al = alpha.get(path, alpha["b"])
                    decisions.append({"outcome": o, "outcome_month": month, "mediator_month": mmonth,
                                      "window_days": window, "path": path, "dependent_variable": dv,
                                      "icc": icc_of[dv][0], "alpha": al, "p": pv, "significant": sig[path],
                                      "reason": f"ICC {icc_of[dv][0]:.3f} {'>' if al == 0.01 else '<='} .05"})
    hierarchical = []
    for o in LABELS:
        r2a = float(rng.uniform(0.05, 0.1))
        d = float(rng.uniform(0.01, 0.05))
        f = d / ((1 - r2a - d) / 300)
        hierarchical.append({"outcome": o, "y": "rprs_13.5m", "n": 311, "blocks": [
            {"block": 1, "predictors": COVARIATES[:-1], "r2": r2a, "delta_r2": r2a, "f_change": 2.1, "df1": 9,
             "df2": 301, "p": 0.03, "f2": r2a / (1 - r2a)},
            {"block": 2, "predictors": [f"{o}_9m"], "r2": r2a + d, "delta_r2": d, "f_change": f, "df1": 1,
             "df2": 287.6, "p": float(stats.f.sf(f, 1, 287.6)), "f2": d / (1 - r2a - d)}],
            "added": {"variable": f"{o}_9m", **_path(rng, float(rng.normal(0.2, 0.05)), 0.06, 290)}})
    direct = []
    for window in (90, 180, 270):
        for month in (9, 18):
            for o in LABELS:
                p = _path(rng, float(rng.normal(0, 0.2)), 0.2, 280)
                direct.append({"outcome": o, "outcome_month": month, "window_days": window, **p, "n": 291,
                               "alpha": 0.05, "significant": bool(p["p"] < 0.05)})
    table1 = [
        {"characteristic": "Age (years)", "level": None, "n": 311, "percent": None, "mean": 41.23, "sd": 12.71,
         "suppressed": False},
        {"characteristic": "Gender", "level": "Man", "n": 170, "percent": 54.66, "mean": None, "sd": None,
         "suppressed": False},
        {"characteristic": "Gender", "level": "Woman", "n": 141, "percent": 45.34, "mean": None, "sd": None,
         "suppressed": False},
        {"characteristic": "Education", "level": "Less than high school", "n": 3, "percent": 0.96, "mean": None,
         "sd": None, "suppressed": False},
        {"characteristic": "Education", "level": "High school", "n": 120, "percent": 38.59, "mean": None,
         "sd": None, "suppressed": False},
        {"characteristic": "Education", "level": "Post-secondary", "n": 188, "percent": 60.45, "mean": None,
         "sd": None, "suppressed": False},
        {"characteristic": "Housing", "level": "Stable", "n": 250, "percent": 80.39, "mean": None, "sd": None,
         "suppressed": False},
        {"characteristic": "Housing", "level": "Unstable", "n": 61, "percent": 19.61, "mean": None, "sd": None,
         "suppressed": False},
        {"characteristic": "Site", "level": "Site 1", "n": 4, "percent": 1.29, "mean": None, "sd": None,
         "suppressed": False},
        {"characteristic": "Site", "level": "Site 2", "n": 2, "percent": 0.64, "mean": None, "sd": None,
         "suppressed": False},
        {"characteristic": "Site", "level": "Site 3", "n": 305, "percent": 98.07, "mean": None, "sd": None,
         "suppressed": False},
        {"characteristic": "ACE score", "level": None, "n": 298, "percent": None, "mean": 4.12, "sd": 2.51,
         "suppressed": False},
    ]
    header = {}
    for r in table1:
        if r["level"] is not None and r["characteristic"] not in header:
            header[r["characteristic"]] = {"characteristic": r["characteristic"], "level": None, "n": 311,
                                           "percent": None, "mean": None, "sd": None, "suppressed": False}
    with_headers = []
    for r in table1:
        if r["level"] is not None and header.get(r["characteristic"]) is not None:
            with_headers.append(header.pop(r["characteristic"]))
        with_headers.append(r)
    table1 = with_headers
    table2 = []
    for var, label, base in [("fidelity", "SMCM fidelity", 24), ("rprs", "RPRS", 75), ("qoli20", "QOLI-20", 85),
                             ("pgi", "PGI", 45), ("hope", "THS", 44), ("mcas", "MCAS", 58)]:
        months = (4.5, 13.5) if var == "rprs" else (0, 9, 18)
        for k, month in enumerate(months):
            n = int(311 - 20 * k)
            mean = base * (1 + 0.05 * k) + float(rng.normal(0, 0.5))
            t = float(rng.uniform(1, 5))
            comp = None if k == 0 else {"test": "paired t", "vs_month": float(months[0]), "n_pairs": n - 5,
                                        "mean_diff": float(rng.normal(2, 1)), "sd_diff": 5.0, "t": t, "df": n - 6,
                                        "p": float(2 * stats.t.sf(t, n - 6)), "d_z": t / np.sqrt(n - 5)}
            table2.append({"variable": f"{var}_{month:g}m", "label": label, "month": month, "n": n, "mean": mean,
                           "sd": base * 0.2, "comparison": comp})
    by_scale = []
    for inst, months in [("qoli20", (0, 9, 18)), ("pgi", (0, 9, 18)), ("hope", (0, 9, 18)), ("mcas", (0, 9, 18)),
                         ("rprs", (4.5, 13.5))]:
        for m in months:
            miss = int(rng.integers(0, 60))
            by_scale.append({"instrument": inst, "month": m, "n_expected": 311, "n_missing": miss,
                             "share": miss / 311})
    results = {
        "mediation": mediation, "icc": icc, "alpha_decisions": decisions, "hierarchical": hierarchical,
        "direct_effects": direct, "descriptives": {"table1": table1, "table2": table2},
        "missing": {"by_scale": by_scale, "overall_share": 0.116},
        "imputation": {"method": "MICE, predictive mean matching", "m": 20, "chains": [0, 1, 2], "iterations": 10, "donors": 5, "seed": 20241126,
                       "convergence": {"rhat": [{"variable": f"qoli_{k}", "wave": float(w), "rhat": float(r)}
                                                for k, (w, r) in enumerate(zip([0, 9, 18] * 10,
                                                                               1 + rng.gamma(1.0, 0.02, 30)), 1)],
                                       "max_rhat": None}},
        "manifest": {"fidelitymed": "0.1.0", "python": "3.11.2", "packages": {"numpy": "2.4.6", "pandas": "3.1.1"},
                     "seed": 20241126, "config_hash": "ab" * 32,
                     "config": {"name": "Fixture study", "analysis": {"n_boot": 5000, "imputations": 20}},
                     "inputs": {"teams.csv": "11" * 32, "fidelity.csv": "22" * 32, "clients.csv": "33" * 32,
                                "interviews.csv": "44" * 32},
                     "executor": "serial", "settings": {"n_boot": 5000, "imputations": 20, "windows": [90, 180, 270]}},
    }
    conv = results["imputation"]["convergence"]
    conv["max_rhat"] = max(r["rhat"] for r in conv["rhat"])
    if plant_ids:
        results = plant_identifiers(results)
    return results


def plant_identifiers(results: dict) -> dict:
    """Put client / case-manager ids where a leaky producer might: extra record keys, settings."""
    r = copy.deepcopy(results)
    r["mediation"][0]["dropped_clients"] = list(PLANTED_CLIENT_IDS)
    r["mediation"][1]["client"] = PLANTED_CLIENT_IDS[0]
    r["icc"][0]["case_manager_ids"] = list(PLANTED_CM_IDS)
    r["descriptives"]["table2"][1]["comparison"]["client_id"] = PLANTED_CLIENT_IDS[1]
    r["missing"]["by_scale"][0]["clients"] = list(PLANTED_CLIENT_IDS)
    r["missing"]["by_scale"][1]["case_manager"] = PLANTED_CM_IDS[0]
    r["manifest"]["settings"]["excluded_clients"] = list(PLANTED_CLIENT_IDS)
    r["manifest"]["settings"]["case_manager"] = PLANTED_CM_IDS[1]
    r["hierarchical"][0]["blocks"][0]["predictors"] = r["hierarchical"][0]["blocks"][0]["predictors"] + ["client"]
    r["imputation"]["convergence"]["rhat"][0]["client"] = PLANTED_CLIENT_IDS[0]
    r["descriptives"]["table1"][0]["client_ids"] = list(PLANTED_CLIENT_IDS)
    return r


def make_assessments(seed: int = 3, *, plant_ids: bool = True) -> pd.DataFrame:
    """Team fidelity assessments: team, date, total, domain scores (+ planted case-manager ids)."""
    rng = np.random.default_rng(seed)
    domains = ["caseload", "community_contact", "individual_supervision", "group_supervision",
               "strengths_assessment", "recovery_plan", "natural_resources", "hope_inducing"]
    rows = []
    for t in range(1, 15):
        start = pd.Timestamp("2014-10-01") + pd.Timedelta(days=int(rng.integers(0, 60)))
        n_assess = 4 if t == 14 else 6
        for k, months in enumerate((0, 6, 12, 18, 24, 36)[:n_assess]):
            level = min(5.0, 2.6 + 0.08 * months / 1.5 + rng.normal(0, 0.2))
            scores = {d: float(np.clip(level + rng.normal(0, 0.3), 1, 5)) for d in domains}
            row = {"team": f"T{t:02d}", "date": start + pd.DateOffset(months=months), **scores,
                   "total": float(sum(scores.values()))}
            if plant_ids:
                row["case_manager"] = PLANTED_CM_IDS[k % 2]
            rows.append(row)
    return pd.DataFrame(rows)
