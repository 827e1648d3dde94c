"""Issue 10, the input side: every input failure is one line naming file, row, column or key (exit 2).

Each test first builds the input that used to be silently reinterpreted or to raise a
traceback, then checks the exact message. ``validate`` and ``run`` share the feasibility checks
(:mod:`fidelitymed.study.feasibility`), so a study ``validate`` accepts is one ``run`` can fit.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from test_schema import make_tables, write_study

from fidelitymed.cli import main
from fidelitymed.errors import StudyDataError
from fidelitymed.instruments.scoring import instrument_items
from fidelitymed.study.config import default_config
from fidelitymed.study.io import read_table
from fidelitymed.study.schema import load_study, validate_study


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


def problems(root: Path, capsys) -> tuple[list[str], str]:
    """Run ``fidelitymed validate``; expect exit 2; return the listed problems and stderr."""
    before = snapshot(root)
    code = main(["validate", str(root)])
    captured = capsys.readouterr()
    assert code == 2, captured
    assert snapshot(root) == before
    assert "Traceback" not in captured.err
    lines = captured.out.strip().splitlines()
    return lines[1:], captured.err


def one_error(root: Path, capsys) -> str:
    """Run ``fidelitymed validate`` expecting a one-line error (a configuration error) and exit 2."""
    before = snapshot(root)
    assert main(["validate", str(root)]) == 2
    err = capsys.readouterr().err
    assert snapshot(root) == before
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()


# ============================================================================ tracebacks (exit 2)
def test_time_zone_in_a_date_is_an_error_naming_row_and_column(tmp_path, capsys):
    def mutate(t):
        t["interviews"].loc[3, "date"] = "2015-01-02T10:00:00+05:00"
    listed, _ = problems(write_study(tmp_path / "s", mutate), capsys)
    assert listed == ["interviews.csv, row 5, column 'date': found '2015-01-02T10:00:00+05:00'; expected a date "
                      "YYYY-MM-DD without a time zone offset (dates are calendar days)"]


@pytest.mark.parametrize("text", ["2014-W41-5", "20141011", "2014-10-11T10:00", "11/10/2014", "2014-10-11Z"])
def test_week_compact_and_other_date_forms_are_refused(tmp_path, capsys, text):
    def mutate(t):
        t["clients"].loc[0, "enrollment_date"] = text
    listed, _ = problems(write_study(tmp_path / "s", mutate), capsys)
    assert listed[0].startswith(f"clients.csv, row 2, column 'enrollment_date': found {text!r}; expected a date")


def test_midnight_time_part_and_native_xlsx_dates_are_dates(tmp_path):
    def mutate(t):
        t["clients"]["enrollment_date"] = t["clients"]["enrollment_date"] + "T00:00:00"
    study = load_study(write_study(tmp_path / "csv", mutate))
    assert study.clients["enrollment_date"].iloc[0] == pd.Timestamp("2014-11-01")

    def native(t):   # real datetime cells in the XLSX, with a time of day that the format carries
        t["clients"]["enrollment_date"] = pd.to_datetime(t["clients"]["enrollment_date"]) + pd.Timedelta(hours=9)
    study = load_study(write_study(tmp_path / "xlsx", native, suffix=".xlsx"))
    assert study.clients["enrollment_date"].iloc[0] == pd.Timestamp("2014-11-01")


def test_study_yaml_not_utf8_is_one_line(tmp_path, capsys):
    root = write_study(tmp_path / "s")
    (root / "study.yaml").write_bytes("name: \u00e9tude\n".encode("latin-1"))
    err = one_error(root, capsys)
    assert err == f"error: {root / 'study.yaml'}: not UTF-8 text (byte 6: 0xe9); save study.yaml as UTF-8"


def test_huge_window_is_one_line(tmp_path, capsys):
    root = write_study(tmp_path / "s", yaml_text="exposure: {windows: [1.0e+9], primary_window: 180}\n")
    err = one_error(root, capsys)
    assert err.endswith("study.yaml: exposure.windows[0]: expected less than or equal to 3650; got 1000000000.0")


@pytest.mark.parametrize("key", ["team", "client", "case_manager"])
def test_key_column_as_covariate_is_a_config_error(tmp_path, capsys, key):
    root = write_study(tmp_path / "s", yaml_text=f"analysis: {{covariates: [age, {key}, site]}}\n")
    err = one_error(root, capsys)
    assert err.endswith(f"study.yaml: analysis.covariates: covariates ['{key}'] are id columns (they identify "
                        "clients, teams and case managers and set the nesting); they cannot be covariates")


def test_billion_laughs_study_yaml_via_cli(tmp_path, capsys):
    import time

    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for k in range(1, 9):
        lines.append(f"l{k}: &l{k} [" + ",".join([f"*{'a' if k == 1 else f'l{k - 1}'}"] * 9) + "]")
    root = write_study(tmp_path / "s", yaml_text="\n".join(lines) + "\nname: *l8\n")
    start = time.perf_counter()
    err = one_error(root, capsys)
    assert time.perf_counter() - start < 1.0
    assert "more than 100,000 values once its aliases are expanded" in err


# ============================================================================ explicit parsing
def test_a_team_called_NA_stays_NA(tmp_path):
    def mutate(t):
        t["teams"].loc[0, "team"] = "NA"
        t["fidelity"].loc[t["fidelity"]["team"] == "A", "team"] = "NA"
        t["clients"].loc[t["clients"]["team"] == "A", "team"] = "NA"
        t["clients"]["case_manager"] = t["clients"]["case_manager"].str.replace("A-", "NA-")
    study = load_study(write_study(tmp_path / "s", mutate))
    assert "NA" in set(study.teams["team"]) and (study.clients["team"] == "NA").sum() == 6


def test_pandas_na_spellings_in_numbers_are_errors_not_missing(tmp_path, capsys):
    def mutate(t):
        iv = t["interviews"]
        for col in ("qoli_1", "qoli_2", "qoli_3"):
            iv[col] = iv[col].astype(object)
        iv.loc[0, "qoli_1"], iv.loc[0, "qoli_2"], iv.loc[0, "qoli_3"] = "NA", "null", "#N/A"
    listed, _ = problems(write_study(tmp_path / "s", mutate), capsys)
    assert listed == [f"interviews.csv, row 2, column 'qoli_{k}': found {v!r}; expected an integer 1-7 or a missing "
                      "code 8, 9" for k, v in ((1, "NA"), (2, "null"), (3, "#N/A"))]


def test_files_na_values_lists_extra_missing_spellings(tmp_path):
    def mutate(t):
        iv = t["interviews"]
        iv["qoli_1"] = iv["qoli_1"].astype(object)
        iv.loc[0, "qoli_1"] = "NA"
    root = write_study(tmp_path / "s", mutate,
                       yaml_text="name: tiny\nfiles: {na_values: [NA]}\n")
    study = load_study(root)
    assert np.isnan(study.interviews.loc[0, "qoli_1"]) and not np.isnan(study.interviews.loc[2, "qoli_1"])


def test_duplicate_column_names_are_an_error_naming_file_and_column(tmp_path, capsys):
    root = write_study(tmp_path / "s")
    text = (root / "clients.csv").read_text().splitlines()
    text[0] = text[0].replace(",housing,", ",age,")
    (root / "clients.csv").write_text("\n".join(text) + "\n")
    listed, _ = problems(root, capsys)
    assert listed == ["clients.csv, row 1, column 'age'; expected a unique column name (the header has 'age' "
                      "2 times: columns E, G)"]


def _xlsx_with_formula(path: Path, cached: str | None) -> None:
    """clients.xlsx whose row 12 'age' is ``=A1+1`` (written by openpyxl: no cached value) or with ``cached``."""
    book = openpyxl.load_workbook(path)
    sheet = book.active
    header = [c.value for c in sheet[1]]
    col = header.index("age") + 1
    sheet.cell(row=12, column=col).value = "=A1+1"
    book.save(path)
    if cached is None:
        return
    with zipfile.ZipFile(path) as zin:
        parts = {name: zin.read(name) for name in zin.namelist()}
    sheet_xml = parts["xl/worksheets/sheet1.xml"].decode()
    assert "<f>A1+1</f><v></v>" in sheet_xml
    parts["xl/worksheets/sheet1.xml"] = sheet_xml.replace("<f>A1+1</f><v></v>", f"<f>A1+1</f><v>{cached}</v>").encode()
    with zipfile.ZipFile(path, "w") as zout:
        for name, data in parts.items():
            zout.writestr(name, data)


def test_xlsx_formula_without_cached_value_is_an_error_naming_the_cell(tmp_path, capsys):
    root = write_study(tmp_path / "s", suffix=".xlsx")
    _xlsx_with_formula(root / "clients.xlsx", cached=None)
    listed, _ = problems(root, capsys)
    assert listed == ["clients.xlsx, row 12, column 'age': found '=A1+1'; expected a value: cell E12 holds a "
                      "formula with no cached result (the file was saved by a program that does not compute "
                      "formulas); open and save it in Excel or LibreOffice, or type the value"]


def test_xlsx_formula_with_cached_value_reads_the_value(tmp_path):
    root = write_study(tmp_path / "s", suffix=".xlsx")
    _xlsx_with_formula(root / "clients.xlsx", cached="41")
    assert read_table(root / "clients.xlsx").loc[10, "age"] == 41
    assert load_study(root).clients.loc[10, "age"] == 41


# ============================================================================ feasibility
def test_an_instrument_missing_for_everyone(tmp_path, capsys):
    def mutate(t):
        iv = t["interviews"]
        iv.loc[iv["wave"] == 9, instrument_items("hope", default_config().scoring)] = np.nan
    listed, _ = problems(write_study(tmp_path / "s", mutate), capsys)
    assert listed == ["interviews.csv, column 'hope_1'; expected answers to hope (hope_1 .. hope_12) from at least "
                      "one client at wave 9: hope is scheduled there but every item is empty"]


def test_an_item_nobody_answered_cannot_be_imputed(tmp_path, capsys):
    def mutate(t):
        t["interviews"].loc[t["interviews"]["wave"] == 0, "mcas_4"] = np.nan
    listed, _ = problems(write_study(tmp_path / "s", mutate), capsys)
    assert listed == ["interviews.csv, column 'mcas_4'; expected an answer from at least one client at wave 0: "
                      "nobody answered mcas_4 there, so it cannot be imputed (analysis.impute: true)"]
    # without imputation the score is prorated from the other items: no problem
    root = write_study(tmp_path / "l", mutate, yaml_text="analysis: {impute: false}\n")
    assert validate_study(root) == []


def test_a_wave_nobody_attended(tmp_path, capsys):
    def mutate(t):
        t["interviews"] = t["interviews"][t["interviews"]["wave"] != 13.5]
    listed, _ = problems(write_study(tmp_path / "s", mutate), capsys)
    assert listed == ["interviews.csv, column 'wave': found 13.5; expected interviews at wave 13.5 (it is "
                      "scheduled in study.yaml, but no client has one)"]


def test_an_alliance_wave_with_no_score(tmp_path, capsys):
    def mutate(t):   # 6 of 24 RPRS items empty for everyone at 4.5 months: more than 20 % -> no total
        t["interviews"].loc[t["interviews"]["wave"] == 4.5, [f"rprs_{k}" for k in range(1, 7)]] = np.nan
    root = write_study(tmp_path / "s", mutate, yaml_text="analysis: {impute: false}\n")
    listed, _ = problems(root, capsys)
    assert listed[0] == ("interviews.csv, column 'wave': found 4.5; expected a rprs_total score for at least one "
                         "client at wave 4.5 (the mediator of analysis.waves[0]): every client's is missing "
                         "(too few items answered to score it)")


def test_only_one_team(tmp_path, capsys):
    def mutate(t):
        t["teams"] = t["teams"].iloc[:1]
        t["fidelity"] = t["fidelity"][t["fidelity"]["team"] == "A"]
        t["clients"]["team"] = "A"
        t["clients"]["case_manager"] = "A-cm" + (t["clients"].index % 2).astype(str)
    listed, _ = problems(write_study(tmp_path / "s", mutate), capsys)
    assert "clients.csv, column 'team': found 'A'; expected clients in at least 2 teams (fidelity is a team-level " \
           "variable: with one team it does not vary)" in listed
    # one team is one site too: the categorical covariate has a single level
    assert "teams.csv, column 'site': found '1'; expected the categorical covariate 'site' to take at least 2 " \
           "different values among the clients (every client has the same value, so its effect cannot be " \
           "estimated)" in listed


def test_a_case_manager_in_two_teams(tmp_path, capsys):
    def mutate(t):
        t["clients"].loc[1, "case_manager"] = "A-cm0"   # client p01 is in team B
    listed, _ = problems(write_study(tmp_path / "s", mutate), capsys)
    assert listed == ["clients.csv, row 3, column 'case_manager': found 'A-cm0'; expected a case manager of one "
                      "team: 'A-cm0' is in team 'A' at row 2 and in team 'B' here (case managers are nested in "
                      "teams; give a case manager who changed teams one id per team)"]


def test_too_few_complete_rows_for_the_parameters(tmp_path, capsys):
    def mutate(t):   # listwise: 9 clients lack age -> 7 complete rows < 12 parameters
        t["clients"]["age"] = t["clients"]["age"].astype(float)
        t["clients"].loc[:8, "age"] = np.nan
    root = write_study(tmp_path / "s", mutate, yaml_text="analysis: {impute: false}\n")
    listed, _ = problems(root, capsys)
    assert listed[0] == ("data: found 7; expected more complete rows (x, m, y and every covariate observed; "
                         "analysis.impute: false) than the 12 parameters of the mediation model of qoli20 at "
                         "9 months (fidelity windows 90, 180, 270 days)")
    assert len([line for line in listed if "mediation model" in line]) == 8      # 4 outcomes x 2 waves
    assert len([line for line in listed if "hierarchical regression" in line]) == 4
    # with multiple imputation every client is completed: 16 > 12
    root = write_study(tmp_path / "mi", mutate)
    assert validate_study(root) == []
    # ... but a listwise run of the same study is checked as listwise, by validate and run alike
    assert [str(i) for i in validate_study(root, impute=False)] == listed
    assert main(["validate", str(root), "--no-impute"]) == 2
    assert capsys.readouterr().out.strip().splitlines()[1:] == listed
    from fidelitymed.pipeline import run_study

    with pytest.raises(StudyDataError) as info:
        run_study(root, impute=False, n_boot=10, report=False)
    assert [str(i) for i in info.value.issues] == listed


def test_too_few_clients_even_with_imputation(tmp_path, capsys):
    listed, _ = problems(write_study(tmp_path / "s", n_clients=12), capsys)
    assert listed[0] == ("data: found 12; expected more clients than the 12 parameters of the mediation model of "
                         "qoli20 at 9 months (fidelity windows 90, 180, 270 days)")


def test_a_categorical_covariate_with_one_level_and_a_constant_covariate(tmp_path, capsys):
    def mutate(t):
        t["teams"]["site"] = 7
        t["clients"]["gender"] = 0
    listed, _ = problems(write_study(tmp_path / "s", mutate), capsys)
    assert listed == [
        "clients.csv, column 'gender': found 0; expected the covariate 'gender' to take at least 2 different values "
        "among the clients (every client has the same value, so its effect cannot be estimated)",
        "teams.csv, column 'site': found '7'; expected the categorical covariate 'site' to take at least 2 "
        "different values among the clients (every client has the same value, so its effect cannot be estimated)",
    ]


def test_validate_lists_every_feasibility_problem_at_once_and_run_refuses_the_same(tmp_path, capsys):
    def mutate(t):
        t["clients"].loc[1, "case_manager"] = "A-cm0"
        t["clients"]["gender"] = 0
        t["interviews"] = t["interviews"][t["interviews"]["wave"] != 18]
    root = write_study(tmp_path / "s", mutate)
    listed, err = problems(root, capsys)
    assert len(listed) == 3 and "3 problems (listed above)" in err
    from fidelitymed.pipeline import run_study

    with pytest.raises(StudyDataError) as info:
        run_study(root, n_boot=10, imputations=2, report=False)
    assert [str(i) for i in info.value.issues] == listed
    out = tmp_path / "out"
    assert main(["run", str(root), "--out", str(out), "--quiet", "--n-boot", "10", "--imputations", "2"]) == 2
    assert not out.exists()
    assert "3 problems in the data" in capsys.readouterr().err


def test_the_demo_and_the_tiny_study_are_feasible():
    from fidelitymed.simulate import demo_study_path

    assert validate_study(demo_study_path()) == []
    assert make_tables()["clients"]["case_manager"].nunique() == 6


def test_a_study_specific_covariate_must_be_a_finite_number_unless_categorical(tmp_path, capsys):
    yaml_text = ("analysis: {covariates: [age, gender, housing, employment, education, ace, site, "
                 "long_hospitalization, baseline, income]}\n")

    def mutate(t):
        t["clients"]["income"] = [str(v % 2) for v in range(16)]
        t["clients"].loc[2, "income"] = "inf"
        t["clients"].loc[3, "income"] = "high"
    listed, _ = problems(write_study(tmp_path / "s", mutate, yaml_text=yaml_text), capsys)
    assert listed == [f"clients.csv, row {r}, column 'income': found {v!r}; expected a finite number (or list the "
                      "covariate in analysis.categorical)" for r, v in ((4, "inf"), (5, "high"))]
    categorical = yaml_text.replace("baseline, income]", "baseline, income], categorical: [site, income]")
    assert validate_study(write_study(tmp_path / "c", mutate, yaml_text=categorical)) == []


def test_no_covariates_is_analysable(tmp_path, capsys):
    # validate accepts it, so run must analyse it: the hierarchical regressions then have one block
    root = write_study(tmp_path / "s", yaml_text="analysis: {covariates: [], categorical: []}\n")
    assert validate_study(root) == []
    from fidelitymed.pipeline import run_study

    results = run_study(root, impute=False, n_boot=20, report=False)
    assert results.hierarchical and all(len(r["blocks"]) == 1 for r in results.hierarchical)
    assert len(results.mediation) == 4 * 2 * 3 and all(r["covariates"] == [] for r in results.mediation)


def test_a_constant_exposure_cannot_be_a_predictor(tmp_path, capsys):
    def mutate(t):   # every team rated 3 on every item at every assessment
        items = [c for c in t["fidelity"].columns if c not in ("team", "date")]
        t["fidelity"][items] = 3
    listed, _ = problems(write_study(tmp_path / "s", mutate, yaml_text="exposure: {windows: [180], "
                                     "primary_window: 180}\n"), capsys)
    assert listed == [f"fidelity.csv; expected fidelity_{w}m_180d (the fidelity exposure X at wave "
                      f"{w}, 180-day window) to vary among the clients: every client has 24" for w in ("4.5", "13.5")]


def test_a_table_not_in_utf8_names_file_row_and_byte(tmp_path, capsys):
    root = write_study(tmp_path / "s")
    text = (root / "teams.csv").read_text()
    (root / "teams.csv").write_bytes(text.replace("org2", "org\u00e9").encode("latin-1"))
    listed, _ = problems(root, capsys)
    offset = text.index("org2") + 3
    assert listed == [f"teams.csv, row 4; expected UTF-8 text: byte {offset} (0xe9) is not UTF-8; save the file "
                      "as UTF-8 (in Excel: CSV UTF-8)"]


def test_a_cut_list_of_problems_keeps_the_true_count():
    from fidelitymed.errors import DataIssue

    issues = [DataIssue(None, r, "x", "a", "a number") for r in range(2, 7)]
    err = StudyDataError(issues, total=7)
    assert err.total == 7 and len(err.issues) == 5
    assert str(err).splitlines()[0] == "7 problems in the data (the first 5 listed):"
    assert str(StudyDataError(issues)).splitlines()[0] == "5 problems in the data:"
    assert StudyDataError(issues[:1]).total == 1 and str(StudyDataError(issues[:1])) == str(issues[0])
