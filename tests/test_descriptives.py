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


# ----------------------------------------------------------------- Table 1 disclosure control

def _attack(rows: list[dict], n_total: int, threshold: int) -> dict[str, set[int]]:
    """Every value each hidden cell of one categorical characteristic can take, by brute force.

    The reader's knowledge: the shown counts and percentages, N, that the levels add up to n and
    n + Missing = N (no Missing row: nobody missing), and the labels ("<t": 1..t-1; "suppressed":
    a count that was not under t, so >= t). Independent of the LP audit in descriptives.
    """
    import itertools

    head, levels = rows[0], rows[1:]
    missing = next((r for r in levels if r["level"] == "Missing"), None)
    levels = [r for r in levels if r is not missing]

    def choices(r):
        if not r["suppressed"]:
            return [r["n"]]
        if r["suppression"] == "primary":
            return range(1, threshold)
        if r["suppression"] == "withheld":       # no bound but that a listed level has someone
            return range(1, n_total + 1)
        assert r["suppression"] == "complementary"
        return range(threshold, n_total + 1)

    # percentages of shown levels pin n down when they are shown
    n_from_pct = {round(100 * r["n"] / r["percent"]) for r in levels
                  if not r["suppressed"] and r["percent"] is not None and r["n"]}
    feasible: dict[str, set[int]] = {}
    for combo in itertools.product(*(choices(r) for r in levels)):
        n_valid = sum(combo)
        if n_valid > n_total or n_valid not in choices(head) or (n_from_pct and n_valid not in n_from_pct):
            continue
        n_missing = n_total - n_valid
        if missing is None and n_missing != 0:
            continue
        if missing is not None and n_missing not in choices(missing):
            continue
        for r, v in zip(levels, combo, strict=True):
            feasible.setdefault(r["level"], set()).add(v)
        feasible.setdefault("<n>", set()).add(n_valid)
        if missing is not None:
            feasible.setdefault("Missing", set()).add(n_missing)
    return feasible


def _random_characteristic(rng, threshold):
    n_levels = int(rng.integers(1, 5))
    counts = rng.integers(0, 9, n_levels)
    small = rng.random(n_levels) < 0.4                    # many small cells
    counts[small] = rng.integers(1, threshold, int(small.sum()))
    n_missing = int(rng.choice([0, 0, 1, 2, 3, 6]))
    values = np.repeat(np.arange(n_levels, dtype=float), counts)
    values = np.concatenate([values, np.full(n_missing, np.nan)])
    return pd.DataFrame({"x": values}), counts, n_missing


@pytest.mark.parametrize("threshold", [3, 5])
def test_no_hidden_cell_can_be_recovered(threshold):
    rng = np.random.default_rng(threshold)
    audited, withheld = 0, 0
    for _ in range(80):
        data, counts, n_missing = _random_characteristic(rng, threshold)
        if data.empty or len(data) < threshold:
            continue  # N itself under the threshold: nothing can be protected
        rows = table1(data, continuous=[], categorical=["x"], threshold=threshold).to_dict()
        if rows[0]["suppression"] == "withheld":
            # nothing protected it: only the characteristic's name is shown, no level and no count
            assert len(rows) == 1 and rows[0]["n"] is None and any(0 < k < threshold for k in
                                                                   [*counts, n_missing])
            withheld += 1
            continue
        truth = {r["level"]: k for r, k in zip(rows[1:], [*counts[counts > 0], *([n_missing] if n_missing else [])],
                                               strict=True)}
        truth["<n>"] = int(counts.sum())
        for r in rows:
            if r["suppressed"]:
                key = "<n>" if r["level"] is None else r["level"]
                # honest labels: "<t" only under the threshold, "suppressed" (complementary) only at or
                # above it; "withheld" (a whole characteristic that the bounds would give away) claims nothing
                if r["suppression"] != "withheld":
                    assert (truth[key] < threshold) == (r["suppression"] == "primary"), (rows, truth)
                assert r["n"] is None and r["percent"] is None
            else:
                key = "<n>" if r["level"] is None else r["level"]
                assert r["n"] == truth[key]
                assert not 0 < truth[key] < threshold
        feasible = _attack(rows, len(data), threshold)
        for r in rows:
            if r["suppressed"]:
                key = "<n>" if r["level"] is None else r["level"]
                assert truth[key] in feasible[key]
                assert len(feasible[key]) >= 2, f"{key} = {truth[key]} recoverable from {rows}"
                audited += 1
    assert audited > 30          # the random tables did exercise the rule


def test_missing_row_is_not_given_back_by_n_and_N():
    # the case: 3 missing of N = 40 -> "Missing" hidden; n = 37 and N = 40 would give it back
    data = pd.DataFrame({"x": [0.0] * 20 + [1.0] * 17 + [np.nan] * 3})
    rows = table1(data, continuous=[], categorical=["x"], threshold=5).to_dict()
    by = {r["level"]: r for r in rows}
    assert by["Missing"]["suppression"] == "primary"
    assert by[None]["suppression"] == "complementary" and by[None]["n"] is None
    assert by["1"]["suppression"] == "complementary"          # else n = 20 + 17 again
    assert by["0"]["n"] == 20 and by["0"]["percent"] is None   # 20 / n would give n back
    assert len(_attack(rows, 40, 5)["Missing"]) >= 2


def test_characteristic_withheld_when_the_labels_alone_would_tell():
    # 1 and 5 of N = 6: "<5" (1..4) + "suppressed" (>= 5) = 6 leaves only 1 + 5
    data = pd.DataFrame({"x": [0.0] + [1.0] * 5})
    rows = table1(data, continuous=[], categorical=["x"], threshold=5).to_dict()
    assert rows == [{"characteristic": "x", "level": None, "n": None, "percent": None, "mean": None, "sd": None,
                     "suppressed": True, "suppression": "withheld"}]


def test_continuous_n_hidden_when_few_are_missing():
    data = pd.DataFrame({"age": [30.0, 40.0] * 10 + [np.nan] * 2})
    row = table1(data, continuous=["age"], categorical=[], threshold=5).to_dict()[0]
    assert row["suppression"] == "complementary" and row["n"] is None
    assert row["mean"] == pytest.approx(35.0)
    small = table1(data.iloc[:3], continuous=["age"], categorical=[], threshold=5).to_dict()[0]
    assert small["suppression"] == "primary" and small["mean"] is None and small["sd"] is None


def test_suppression_reapplied_is_unchanged_and_labels_are_honest(clients):
    from fidelitymed.descriptives import suppress_rows

    t = table1(clients, continuous=["age", "ace"], categorical=["gender", "employment", "site"], threshold=5)
    rows = t.to_dict()
    assert suppress_rows(rows, 5) == rows
    text = t.summary()
    gender = [r for r in rows if r["characteristic"] == "Gender"]
    assert {r["level"]: r["suppression"] for r in gender}["Missing"] == "primary"
    assert "<5" in text and "suppressed" in text
    employed = next(r for r in rows if r["characteristic"] == "Employment" and r["level"] == "Unemployed")
    assert employed["suppression"] == "complementary"         # 117 clients: "suppressed", never "<5"
