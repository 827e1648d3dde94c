"""Table 1 and Table 2 against pandas/scipy computed independently."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fidelitymed.descriptives import measures_from_columns, table1, table2
from fidelitymed.errors import ConfigError


@pytest.fixture(scope="module")
def clients() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 120
    d = pd.DataFrame({
        "client": np.arange(n), "age": rng.normal(42, 11, n).round(), "ace": rng.integers(0, 11, n).astype(float),
        "gender": rng.integers(0, 2, n).astype(float), "housing": rng.integers(0, 2, n).astype(float),
        "education": rng.choice([1, 2, 3], n, p=[0.3, 0.4, 0.3]).astype(float),
        "site": rng.choice(["A", "B", "C"], n, p=[0.48, 0.49, 0.03])})
    d.loc[:4, "age"] = np.nan
    d.loc[10:12, "gender"] = np.nan
    # exactly 3 unemployed/employed=1 -> a small cell
    d["employment"] = 0.0
    d.loc[[20, 30, 40], "employment"] = 1.0
    return d


def test_table1_counts_and_moments(clients):
    t = table1(clients, continuous=["age", "ace"], categorical=["gender", "education", "employment"], threshold=0)
    f = t.to_frame()
    age = f[f.characteristic == "Age (years)"].iloc[0]
    assert age["n"] == clients["age"].notna().sum()
    assert age["mean"] == pytest.approx(np.nanmean(clients["age"]))
    assert age["sd"] == pytest.approx(np.nanstd(clients["age"], ddof=1))
    woman = f[(f.characteristic == "Gender") & (f.level == "Woman")].iloc[0]
    valid = clients["gender"].notna().sum()
    assert woman["n"] == (clients["gender"] == 1).sum()
    assert woman["percent"] == pytest.approx(100 * (clients["gender"] == 1).sum() / valid)
    missing = f[(f.characteristic == "Gender") & (f.level == "Missing")].iloc[0]
    assert missing["n"] == 3
    levels = list(f[(f.characteristic == "Education") & f.level.notna()]["level"])
    assert levels == ["Less than high school", "High school", "Post-secondary"]


def test_table1_small_cells_suppressed(clients):
    t = table1(clients, continuous=["age"], categorical=["employment", "site"], threshold=5)
    rows = t.to_dict()
    emp = [r for r in rows if r["characteristic"] == "Employment" and r["level"] is not None]
    # 3 employed is suppressed, and the complementary cell too (else 120 - n reveals it)
    assert all(r["suppressed"] and r["n"] is None and r["percent"] is None for r in emp)
    site_c = [r for r in rows if r["characteristic"] == "Site" and r["level"] == "C"][0]
    if (clients["site"] == "C").sum() < 5:
        assert site_c["suppressed"] and site_c["n"] is None
    json.dumps(rows)
    assert "suppressed" in t.summary()
    # no identifier and no id values anywhere
    text = json.dumps(rows)
    assert "client" not in text


def test_table1_refuses_ids(clients):
    with pytest.raises(ConfigError, match="identifier"):
        table1(clients, continuous=["client"], categorical=[])
    with pytest.raises(ConfigError, match="not in the data"):
        table1(clients, continuous=["nope"], categorical=[])


@pytest.fixture(scope="module")
def waves() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 150
    base = rng.normal(80, 15, n)
    d = pd.DataFrame({"qoli20_0m": base, "qoli20_9m": base + rng.normal(3, 10, n),
                      "qoli20_18m": base + rng.normal(5, 10, n),
                      "rprs_4.5m": rng.normal(70, 12, n), "rprs_13.5m": rng.normal(72, 12, n),
                      "fidelity_4.5m_180d": rng.normal(25, 3, n), "fidelity_4.5m_90d": rng.normal(25, 3, n),
                      "fidelity_13.5m_180d": rng.normal(28, 3, n)})
    d.loc[rng.choice(n, 20, replace=False), "qoli20_9m"] = np.nan
    d.loc[rng.choice(n, 15, replace=False), "qoli20_0m"] = np.nan
    return d


def test_measures_from_columns(waves):
    m = measures_from_columns(list(waves.columns), window=180)
    assert m["qoli20"] == {0.0: "qoli20_0m", 9.0: "qoli20_9m", 18.0: "qoli20_18m"}
    assert m["fidelity"] == {4.5: "fidelity_4.5m_180d", 13.5: "fidelity_13.5m_180d"}
    assert list(m) == ["fidelity", "rprs", "qoli20"]


def test_table2_against_scipy(waves):
    t = table2(waves, measures_from_columns(list(waves.columns), window=180))
    rows = {(r["variable"], r["month"]): r for r in t.to_dict()}
    r9 = rows[("qoli20", 9.0)]
    assert r9["n"] == waves["qoli20_9m"].notna().sum()
    assert r9["mean"] == pytest.approx(waves["qoli20_9m"].mean())
    assert r9["sd"] == pytest.approx(waves["qoli20_9m"].std())
    pair = waves[["qoli20_0m", "qoli20_9m"]].dropna()
    ref = stats.ttest_rel(pair["qoli20_9m"], pair["qoli20_0m"])
    c = r9["comparison"]
    assert c["n_pairs"] == len(pair) and c["df"] == len(pair) - 1
    assert c["t"] == pytest.approx(ref.statistic, rel=1e-10)
    assert c["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert c["mean_diff"] == pytest.approx((pair["qoli20_9m"] - pair["qoli20_0m"]).mean())
    assert rows[("qoli20", 0.0)]["comparison"] is None
    ref18 = stats.ttest_rel(waves["rprs_13.5m"], waves["rprs_4.5m"])
    assert rows[("rprs", 13.5)]["comparison"]["t"] == pytest.approx(ref18.statistic, rel=1e-10)
    json.dumps(t.to_dict())
    assert "paired t" in t.summary()
    assert {"vs_month", "t", "p"} <= set(t.to_frame().columns)


def test_table2_threshold(waves):
    small = waves.iloc[:3]
    t = table2(small, {"rprs": {4.5: "rprs_4.5m", 13.5: "rprs_13.5m"}}, threshold=5)
    rows = t.to_dict()
    assert rows[0]["n"] is None and rows[0]["mean"] is None
    assert rows[1]["comparison"]["suppressed"] is True


def test_missing_by_scale_counts_unscored_and_absent():
    from fidelitymed.descriptives import missing_by_scale
    from fidelitymed.study.config import default_config

    cfg = default_config()
    clients = ["c1", "c2", "c3", "c4"]
    # c4 never interviewed at 4.5; c2's RPRS unscorable (NaN); c3 has no 9-month interview
    scores = pd.DataFrame({
        "client": ["c1", "c2", "c3", "c1", "c2", "c4"],
        "wave": [4.5, 4.5, 4.5, 9.0, 9.0, 9.0],
        "rprs_total": [50.0, np.nan, 60.0, np.nan, np.nan, np.nan],
        "qoli20_total": [np.nan, np.nan, np.nan, 80.0, np.nan, 90.0],
    })
    out = missing_by_scale(scores, clients, cfg)
    rows = {(r["instrument"], r["month"]): r for r in out["by_scale"]}
    assert rows[("rprs", 4.5)]["n_missing"] == 2 and rows[("rprs", 4.5)]["n_expected"] == 4
    assert rows[("qoli20", 9.0)]["n_missing"] == 2
    # every scheduled client instrument x wave is counted (absent score columns are all missing)
    assert rows[("mcas", 9.0)]["n_missing"] == 4
    expected_cells = sum(len(v) for v in cfg.schedule.values()) * 4
    missing_cells = sum(r["n_missing"] for r in out["by_scale"])
    assert out["overall_share"] == pytest.approx(missing_cells / expected_cells)
