"""load_study / validate_study: every rule, every violation in one pass, spreadsheet row numbers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fidelitymed.errors import ConfigError, StudyDataError
from fidelitymed.instruments.codebook import fidelity_items
from fidelitymed.instruments.scoring import item_ranges, instrument_items
from fidelitymed.study.config import default_config
from fidelitymed.study.io import write_table
from fidelitymed.study.schema import StudyData, load_study, normalize_ids, parse_dates, validate_study

WAVE_DAYS = {0: 0, 4.5: 137, 9: 274, 13.5: 411, 18: 548}


def make_tables(seed: int = 0, n_clients: int = 16) -> dict[str, pd.DataFrame]:
    """A tiny valid study: 3 teams on 2 sites (team C stops after 2 assessments), clients with 5 waves."""
    rng = np.random.default_rng(seed)
    cfg = default_config()
    teams = pd.DataFrame({"team": ["A", "B", "C"], "organization": ["org1", "org1", "org2"],
                          "site": [1, 1, 2], "province": ["ON", "ON", "QC"]})
    fid_items = [c for cols in fidelity_items(cfg.scoring.fidelity.domains).values() for c in cols]
    fid_rows = []
    start = pd.Timestamp("2014-10-01")
    for team, months in (("A", [0, 6, 12, 18, 24]), ("B", [0, 6, 12, 18, 24]), ("C", [0, 6])):
        for k, m in enumerate(months):
            row = {"team": team, "date": (start + pd.DateOffset(months=m)).date().isoformat()}
            row.update({c: int(min(5, 1 + k + rng.integers(0, 2))) for c in fid_items})
            fid_rows.append(row)
    fidelity = pd.DataFrame(fid_rows)
    clients = pd.DataFrame({
        "client": [f"p{i:02d}" for i in range(n_clients)],
        "team": [["A", "B", "C"][i % 3] for i in range(n_clients)],
        "case_manager": [f"{'ABC'[i % 3]}-cm{i % 2}" for i in range(n_clients)],
        "enrollment_date": [(pd.Timestamp("2014-11-01") + pd.Timedelta(days=10 * i)).date().isoformat()
                            for i in range(n_clients)],
        "age": rng.integers(20, 65, n_clients), "gender": rng.integers(0, 2, n_clients),
        "housing": rng.integers(0, 2, n_clients), "employment": rng.integers(0, 2, n_clients),
        "education": rng.integers(1, 4, n_clients), "long_hospitalization": rng.integers(0, 2, n_clients),
    })
    ranges = item_ranges(cfg.scoring)
    rows = []
    for i, client in clients.iterrows():
        enrol = pd.Timestamp(client["enrollment_date"])
        for wave, names in cfg.schedule.items():
            row = {"client": client["client"], "wave": wave,
                   "date": (enrol + pd.Timedelta(days=WAVE_DAYS[wave] + 7)).date().isoformat()}
            for name in names:
                for c in instrument_items(name, cfg.scoring):
                    low, high, _ = ranges[c]
                    row[c] = int(rng.integers(low, high + 1))
            rows.append(row)
    all_items = [c for name in ("rprs", "qoli20", "pgi", "hope", "mcas", "ace")
                 for c in instrument_items(name, cfg.scoring)]
    interviews = pd.DataFrame(rows).reindex(columns=["client", "wave", "date", *all_items])
    return {"teams": teams, "fidelity": fidelity, "clients": clients, "interviews": interviews}


def write_study(root: Path, mutate: Callable[[dict[str, pd.DataFrame]], None] | None = None, *,
                suffix: str = ".csv", yaml_text: str | None = None, **kwargs) -> Path:
    """Write a tiny valid study folder (optionally changed by ``mutate``) into ``root``."""
    tables = make_tables(**kwargs)
    if mutate is not None:
        mutate(tables)
    root.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        write_table(frame, root / f"{name}{suffix}")
    files = ", ".join(f"{n}: {n}{suffix}" for n in tables)
    (root / "study.yaml").write_text(yaml_text or f"name: tiny study\nfiles: {{{files}}}\n")
    return root


def issues_of(root: Path) -> list:
    return validate_study(root)


def test_valid_study_loads_with_normalised_types(tmp_path):
    study = load_study(write_study(tmp_path / "s"))
    assert isinstance(study, StudyData)
    assert study.teams["team"].tolist() == ["A", "B", "C"] and study.teams["site"].tolist() == ["1", "1", "2"]
    assert pd.api.types.is_datetime64_any_dtype(study.fidelity["date"])
    assert pd.api.types.is_datetime64_any_dtype(study.interviews["date"])
    assert study.interviews["wave"].dtype == float
    assert len(study.interviews) == 80 and len(study.fidelity) == 12
    assert set(study.hashes) == {"config", "teams", "fidelity", "clients", "interviews"}
    assert study.to_dict()["interviews_per_wave"] == {"0": 16, "4.5": 16, "9": 16, "13.5": 16, "18": 16}
    assert "3 teams, 12 fidelity assessments, 16 clients" in study.summary()
    scores = study.scored_interviews()
    assert scores.loc[scores["wave"] == 4.5, "rprs_total"].notna().all()
    assert scores.loc[scores["wave"] == 4.5, "qoli20_total"].isna().all()
    with pytest.raises(Exception):
        study.name = "x"


@pytest.mark.parametrize("suffix", [".xlsx", ".sav", ".dta"])
def test_other_table_formats_load_identically(tmp_path, suffix):
    csv = load_study(write_study(tmp_path / "csv"))
    other = load_study(write_study(tmp_path / "other", suffix=suffix))
    pd.testing.assert_frame_equal(csv.scored_interviews(), other.scored_interviews())
    assert other.clients["client"].tolist() == csv.clients["client"].tolist()
    pd.testing.assert_series_equal(other.fidelity["date"], csv.fidelity["date"])


def test_missing_codes_become_missing(tmp_path):
    def mutate(t):
        t["interviews"].loc[0, "qoli_1"] = 8
    study = load_study(write_study(tmp_path / "s", mutate))
    assert np.isnan(study.interviews.loc[0, "qoli_1"])


# ---------------------------------------------------------------- one test per validation rule
def _one(tmp_path, mutate, **kwargs):
    issues = issues_of(write_study(tmp_path / "s", mutate, **kwargs))
    with pytest.raises(StudyDataError) as info:
        load_study(tmp_path / "s")
    assert len(info.value.issues) == len(issues)
    return issues


def test_rule_unknown_team_ids(tmp_path):
    def mutate(t):
        t["clients"].loc[2, "team"] = "Z"
        t["fidelity"].loc[0, "team"] = "Y"
    issues = _one(tmp_path, mutate)
    found = {(i.file, i.row, i.column, i.value) for i in issues}
    assert ("clients.csv", 4, "team", "Z") in found and ("fidelity.csv", 2, "team", "Y") in found
    assert all("listed in teams.csv" in i.expected for i in issues if i.value in ("Z", "Y"))


def test_rule_unknown_client_ids(tmp_path):
    def mutate(t):
        t["interviews"].loc[6, "client"] = "nobody"
    (issue,) = _one(tmp_path, mutate)
    assert (issue.file, issue.row, issue.column, issue.value) == ("interviews.csv", 8, "client", "nobody")
    assert issue.expected == "a client id listed in clients.csv"


def test_rule_duplicate_keys(tmp_path):
    def mutate(t):
        t["clients"].loc[3, "client"] = "p01"
        t["interviews"].loc[1, "wave"] = 0  # p00 gets wave 0 twice (and loses 4.5)
    issues = _one(tmp_path, mutate)
    dup_client = [i for i in issues if i.file == "clients.csv"]
    assert [(i.row, i.value) for i in dup_client] == [(5, "p01")]
    assert "already at row 3" in dup_client[0].expected
    dup_wave = [i for i in issues if i.column == "client + wave"]
    assert [(i.row, i.value) for i in dup_wave] == [(3, "p00, 0")]


def test_rule_item_values_outside_scale(tmp_path):
    def mutate(t):
        t["interviews"].loc[0, "qoli_3"] = 0          # out of 1-7 (8, 9 are codes)
        t["interviews"].loc[1, "rprs_5"] = 2.5        # not a scale point
        t["interviews"].loc[0, "mcas_2"] = 8          # 8 is a QOLI code, not an MCAS one
        t["fidelity"].loc[4, "caseload_1"] = 6
        t["clients"].loc[0, "gender"] = 2
    issues = _one(tmp_path, mutate)
    got = {(i.file, i.row, i.column, i.value) for i in issues}
    assert got == {("interviews.csv", 2, "qoli_3", 0), ("interviews.csv", 3, "rprs_5", 2.5),
                   ("interviews.csv", 2, "mcas_2", 8), ("fidelity.csv", 6, "caseload_1", 6),
                   ("clients.csv", 2, "gender", 2)}
    qoli = next(i for i in issues if i.column == "qoli_3")
    assert qoli.expected == "an integer 1-7 or a missing code 8, 9"


def test_rule_unparseable_and_impossible_dates(tmp_path):
    def mutate(t):
        t["fidelity"].loc[1, "date"] = "2015-02-30"
        t["clients"].loc[1, "enrollment_date"] = "next week"
        t["interviews"].loc[5, "date"] = "1850-01-01"
    issues = _one(tmp_path, mutate)
    got = {(i.file, i.row, i.column, i.value) for i in issues}
    assert got == {("fidelity.csv", 3, "date", "2015-02-30"), ("clients.csv", 3, "enrollment_date", "next week"),
                   ("interviews.csv", 7, "date", "1850-01-01")}


def test_rule_interview_before_enrolment(tmp_path):
    def mutate(t):
        t["interviews"].loc[0, "date"] = "2014-10-15"   # p00 enrolled 2014-11-01
    (issue,) = _one(tmp_path, mutate)
    assert (issue.row, issue.column, issue.value) == (2, "date", "2014-10-15")
    assert "enrollment_date 2014-11-01" in issue.expected


def test_rule_wave_dates_out_of_order(tmp_path):
    def mutate(t):
        t["interviews"].loc[3, "date"] = t["interviews"].loc[1, "date"]  # wave 13.5 on the 4.5 date
    issues = _one(tmp_path, mutate)
    assert [(i.row, i.column) for i in issues] == [(5, "date")]  # wave 18 is still after it
    assert "after the wave 9 interview" in issues[0].expected


def test_rule_unknown_wave(tmp_path):
    def mutate(t):
        t["interviews"].loc[7, "wave"] = 6
    issues = _one(tmp_path, mutate)
    assert (issues[0].row, issues[0].column, issues[0].value) == (9, "wave", 6)
    assert issues[0].expected == "a scheduled wave (months): 0, 4.5, 9, 13.5, 18"


def test_rule_missing_required_columns(tmp_path):
    def mutate(t):
        t["clients"] = t["clients"].drop(columns=["case_manager", "age"])
        t["interviews"] = t["interviews"].drop(columns=["hope_7"])
        t["teams"] = t["teams"].drop(columns=["site"])
    issues = _one(tmp_path, mutate)
    got = {(i.file, i.row, i.column) for i in issues}
    assert got == {("clients.csv", None, "case_manager"), ("clients.csv", None, "age"),
                   ("interviews.csv", None, "hope_7"), ("teams.csv", None, "site")}


def test_rule_team_without_assessment(tmp_path):
    def mutate(t):
        t["fidelity"] = t["fidelity"][t["fidelity"]["team"] != "B"]
    (issue,) = _one(tmp_path, mutate)
    assert (issue.file, issue.row, issue.column, issue.value) == ("teams.csv", 3, "team", "B")


def test_rule_items_at_an_unscheduled_wave_and_answers_without_date(tmp_path):
    def mutate(t):
        t["interviews"].loc[1, "qoli_1"] = 4            # wave 4.5: QOLI not given
        t["interviews"].loc[2, "date"] = None          # wave 9 with answers but no date
    issues = _one(tmp_path, mutate)
    assert [(i.row, i.column) for i in issues] == [(3, "qoli_1"), (4, "date")]
    assert "qoli20 is not given at wave 4.5" in issues[0].expected


def test_same_day_assessments_are_an_error_only_when_configured(tmp_path):
    def mutate(t):
        t["fidelity"].loc[1, "date"] = t["fidelity"].loc[0, "date"]
    assert issues_of(write_study(tmp_path / "a", mutate)) == []
    issues = issues_of(write_study(tmp_path / "b", mutate, yaml_text="exposure: {same_day: error}\n"))
    assert [(i.row, i.column) for i in issues] == [(3, "team + date")]


def test_all_violations_in_one_pass_and_error_message(tmp_path):
    def mutate(t):
        t["clients"].loc[2, "team"] = "Z"
        t["interviews"].loc[6, "client"] = "nobody"
        t["interviews"].loc[0, "qoli_3"] = 0
        t["fidelity"].loc[1, "date"] = "2015-02-30"
    root = write_study(tmp_path / "s", mutate)
    with pytest.raises(StudyDataError) as info:
        load_study(root)
    assert len(info.value.issues) == 4
    text = str(info.value)
    assert text.startswith("4 problems in the data:")
    assert "interviews.csv, row 2, column 'qoli_3': found 0; expected an integer 1-7" in text


def test_unreadable_table_and_bad_config(tmp_path):
    root = write_study(tmp_path / "s")
    (root / "clients.csv").unlink()
    issues = validate_study(root)
    assert issues[0].file == "clients.csv" and "existing readable file" in issues[0].expected
    (root / "study.yaml").write_text("analysis: {n_boot: lots}\n")
    with pytest.raises(ConfigError, match="analysis.n_boot"):
        validate_study(root)


def test_nothing_is_written(tmp_path):
    root = write_study(tmp_path / "s")
    before = sorted((p.name, p.stat().st_mtime_ns) for p in root.iterdir())
    load_study(root)
    validate_study(root)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in root.iterdir()) == before


def test_id_and_date_helpers():
    assert normalize_ids(pd.Series([3, 3.0, " a ", None, 2.5])).tolist()[:3] == ["3", "3", "a"]
    dates, bad = parse_dates(pd.Series(["2015-01-31", "2015-02-29", "", None, "2016-02-29"]))
    assert bad.tolist() == [False, True, False, False, False]
    assert dates.iloc[4] == pd.Timestamp("2016-02-29") and pd.isna(dates.iloc[1])


def test_missing_shares_by_hand(tmp_path):
    def mutate(t):
        iv = t["interviews"]
        iv.loc[0, [f"qoli_{k}" for k in range(1, 6)]] = np.nan   # 5 QOLI items: qoli20 total missing
        iv.loc[1, "rprs_1"] = np.nan                              # 1 RPRS item: still scored
        t["interviews"] = iv[~((iv["client"] == "p07") & (iv["wave"] == 18))]  # a missed interview
    study = load_study(write_study(tmp_path / "s", mutate))
    # scheduled item cells per client: wave 0: 20+10+12+17+10 = 69; 4.5, 13.5: 24; 9, 18: 59 -> 235
    cells = 16 * 235 - 59
    assert study.missing_share() == pytest.approx(6 / cells)
    # scheduled scale scores: 16 clients x (5 + 1 + 4 + 1 + 4) = 240; missing: qoli20 at 0 (1) + 4 at p07's wave 18
    assert study.missing_score_share() == pytest.approx(5 / 240)


def test_rule_text_in_numeric_columns(tmp_path):
    def mutate(t):
        iv = t["interviews"]
        iv["mcas_1"] = iv["mcas_1"].astype(object)
        iv.loc[0, "mcas_1"] = "abc"
        iv["wave"] = iv["wave"].astype(object)
        iv.loc[2, "wave"] = "9m"
    issues = _one(tmp_path, mutate)
    assert {(i.row, i.column, i.value) for i in issues} == {(2, "mcas_1", "abc"), (4, "wave", "9m")}


@pytest.mark.parametrize("suffix", [".xlsx", ".sav"])
def test_real_date_cells_are_read_as_dates(tmp_path, suffix):
    def mutate(t):
        t["fidelity"]["date"] = pd.to_datetime(t["fidelity"]["date"])
        t["clients"]["enrollment_date"] = pd.to_datetime(t["clients"]["enrollment_date"])
        t["interviews"]["date"] = pd.to_datetime(t["interviews"]["date"])
    csv = load_study(write_study(tmp_path / "csv"))
    dated = load_study(write_study(tmp_path / "dated", mutate, suffix=suffix))
    pd.testing.assert_series_equal(dated.interviews["date"], csv.interviews["date"], check_dtype=False)
    pd.testing.assert_series_equal(dated.fidelity["date"], csv.fidelity["date"], check_dtype=False)
