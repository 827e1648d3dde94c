"""REDCap intake: a realistic export (written here, REDCap's own column conventions) gives the
same interviews table and the same scores as the same data in the native layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fidelitymed.errors import StudyDataError
from fidelitymed.instruments.scoring import instrument_declarations, item_ranges, score_interviews
from fidelitymed.study.config import default_config
from fidelitymed.study.redcap import (DICT_CHOICES, DICT_FIELD, RedcapInterviews, parse_choices,
                                      read_redcap_interviews)

DEMO = Path(__file__).parents[1] / "src/fidelitymed/data/demo"
EVENTS = {"baseline_arm_1": 0, "month_45_arm_1": 4.5, "month_9_arm_1": 9, "month_135_arm_1": 13.5,
          "month_18_arm_1": 18}
FORMS = {"rprs": "recovery_promoting_relationships", "qoli20": "quality_of_life_interview",
         "pgi": "patient_generated_index", "hope": "adult_hope_scale", "mcas": "multnomah_community_ability",
         "ace": "adverse_childhood_experiences"}
CONFIG = default_config()
DECLS = instrument_declarations(CONFIG.scoring)
ITEMS = [c for name in ("rprs", "qoli20", "pgi", "hope", "mcas", "ace") for c in DECLS[name].items]


def native_interviews(n_clients: int = 40) -> pd.DataFrame:
    """The demo interviews of the first clients; missing ACE answers set to 'no' (a checkbox
    cannot hold 'missing'), so both layouts carry exactly the same data."""
    frame = pd.read_csv(DEMO / "interviews.csv")
    frame = frame[frame["client"].isin(sorted(frame["client"].unique())[:n_clients])].reset_index(drop=True)
    ace = [f"ace_{k}" for k in range(1, 11)]
    frame.loc[frame["wave"] == 0, ace] = frame.loc[frame["wave"] == 0, ace].fillna(0)
    return frame


def _integer_text(values: pd.Series) -> pd.Series:
    return values.map(lambda v: "" if pd.isna(v) else f"{v:g}")


def redcap_export(native: pd.DataFrame) -> pd.DataFrame:
    """The same data as REDCap exports it: record x event rows, checkbox ACE, form status
    columns, a screening event, a repeating contact log and a text missing-data code."""
    wave_event = {float(w): e for e, w in EVENTS.items()}
    rows = pd.DataFrame({"record_id": native["client"], "redcap_event_name": native["wave"].map(wave_event),
                         "redcap_repeat_instrument": "", "redcap_repeat_instance": "",
                         "interview_date": native["date"]})
    for name, form in FORMS.items():
        cols = DECLS[name].items
        given = [float(w) for w, names in CONFIG.schedule.items() if name in names]
        at = native["wave"].isin(given)
        if name == "ace":
            for k in range(1, 11):           # checkbox field "ace": one 0/1 column per choice
                rows[f"ace___{k}"] = np.where(at, native[f"ace_{k}"].fillna(0), 0).astype(int)
        else:
            for c in cols:
                rows[c] = _integer_text(native[c])
        rows[f"{form}_complete"] = np.where(at, "2", "")
    # a text missing-data code where the native table has a blank
    blank = np.flatnonzero((native["wave"] == 0) & native["qoli_1"].isna())
    assert blank.size, "the demo has blank QOLI items at baseline"
    rows.loc[blank[0], "qoli_1"] = "UNK"
    screening = rows.iloc[:2].assign(redcap_event_name="screening_arm_1", interview_date="2014-10-01")
    contact = rows.iloc[:1].assign(redcap_repeat_instrument="contact_log", redcap_repeat_instance="1",
                                   interview_date="")
    for c in ITEMS:
        contact[c] = "" if not c.startswith("ace") else 0
    contact = contact.rename(columns={}).assign(contact_note="phoned")
    out = pd.concat([screening, rows, contact], ignore_index=True)
    for c in ITEMS:
        if c.startswith("ace_"):
            out = out.drop(columns=c, errors="ignore")
    return out


def dictionary() -> pd.DataFrame:
    def radio(low, high, extra=()):
        return " | ".join([f"{k}, label {k}" for k in range(low, high + 1)] + [f"{k}, {t}" for k, t in extra])

    rows = [("record_id", "recovery_promoting_relationships", "text", "", "", ""),
            ("interview_date", "recovery_promoting_relationships", "text", "", "", "")]
    for c in DECLS["rprs"].items:
        rows.append((c, FORMS["rprs"], "radio", radio(1, 4), "", ""))
    for c in DECLS["qoli20"].items:
        rows.append((c, FORMS["qoli20"], "radio", radio(1, 7, [(8, "Don't know"), (9, "Not applicable")]), "", ""))
    for c in DECLS["pgi"].rating_items + DECLS["pgi"].points_items:
        rows.append((c, FORMS["pgi"], "text", "", "0", "10"))
    for c in DECLS["hope"].items:
        rows.append((c, FORMS["hope"], "dropdown", radio(1, 8), "", ""))
    for c in DECLS["mcas"].items:
        rows.append((c, FORMS["mcas"], "radio", radio(1, 5), "", ""))
    rows.append(("ace", FORMS["ace"], "checkbox", " | ".join(f"{k}, experience {k}" for k in range(1, 11)), "", ""))
    rows.append(("contact_note", "contact_log", "notes", "", "", ""))
    frame = pd.DataFrame(rows, columns=[DICT_FIELD, "Form Name", "Field Type", DICT_CHOICES, "Text Validation Min",
                                        "Text Validation Max"])
    frame.insert(2, "Section Header", "")
    frame.insert(4, "Field Label", frame[DICT_FIELD])
    frame["Text Validation Type OR Show Slider Number"] = np.where(frame["Field Type"] == "text", "integer", "")
    return frame


def write_study(tmp_path: Path, *, dictionary_frame: pd.DataFrame | None = None, **settings):
    native = native_interviews()
    redcap_export(native).to_csv(tmp_path / "export.csv", index=False)
    (dictionary_frame if dictionary_frame is not None else dictionary()).to_csv(tmp_path / "dictionary.csv",
                                                                                 index=False)
    source = RedcapInterviews(path="export.csv", dictionary="dictionary.csv",
                              events={**EVENTS, "screening_arm_1": None}, **settings)
    return native, source


def read(tmp_path, source):
    item_of = {c: name for name, d in DECLS.items() for c in d.items}
    return read_redcap_interviews(tmp_path, source, items=ITEMS, ranges=item_ranges(CONFIG.scoring),
                                  item_instrument=item_of, schedule=CONFIG.schedule)


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[["client", "wave", "date", *ITEMS]].copy()
    out[ITEMS] = out[ITEMS].apply(pd.to_numeric).astype(float)
    out["client"] = out["client"].astype(str)
    out["date"] = out["date"].astype(str)
    return out.sort_values(["client", "wave"]).reset_index(drop=True)


def test_redcap_export_equals_the_native_layout_and_scores_the_same(tmp_path):
    native, source = write_study(tmp_path, repeating="ignore")
    got = read(tmp_path, source)
    pd.testing.assert_frame_equal(_comparable(got), _comparable(native))
    native_scores = score_interviews(_comparable(native), CONFIG.scoring, schedule=CONFIG.schedule)
    redcap_scores = score_interviews(_comparable(got), CONFIG.scoring, schedule=CONFIG.schedule)
    pd.testing.assert_frame_equal(redcap_scores, native_scores)
    assert redcap_scores["ace_total"].notna().sum() == (native["wave"] == 0).sum()


def test_repeating_instruments_are_refused_by_default_with_their_row(tmp_path):
    _, source = write_study(tmp_path)
    with pytest.raises(StudyDataError) as info:
        read(tmp_path, source)
    (issue,) = info.value.issues
    n_rows = len(pd.read_csv(tmp_path / "export.csv"))
    assert (issue.file, issue.row, issue.column, issue.value) == ("export.csv", n_rows + 1,
                                                                  "redcap_repeat_instrument", "contact_log")
    assert "repeating: ignore" in issue.expected


def test_repeating_events_and_unknown_events_are_errors(tmp_path):
    _, source = write_study(tmp_path, repeating="ignore")
    export = pd.read_csv(tmp_path / "export.csv", dtype=str, keep_default_na=False)
    export.loc[5, "redcap_repeat_instance"] = "2"
    export.loc[6, "redcap_event_name"] = "month_24_arm_1"
    export.to_csv(tmp_path / "export.csv", index=False)
    with pytest.raises(StudyDataError) as info:
        read(tmp_path, source)
    found = {(i.row, i.column) for i in info.value.issues}
    assert found == {(7, "redcap_repeat_instance"), (8, "redcap_event_name")}


def test_two_events_of_one_record_at_one_wave_are_an_error(tmp_path):
    native, source = write_study(tmp_path, repeating="ignore")
    source = source.model_copy(update={"events": {**source.events, "baseline_arm_2": 0}})
    export = pd.read_csv(tmp_path / "export.csv", dtype=str, keep_default_na=False)
    extra = export.iloc[[2]].assign(redcap_event_name="baseline_arm_2")
    pd.concat([export, extra], ignore_index=True).to_csv(tmp_path / "export.csv", index=False)
    with pytest.raises(StudyDataError) as info:
        read(tmp_path, source)
    (issue,) = info.value.issues
    assert issue.row == len(export) + 2 and "already has wave 0 at row 4" in issue.expected


def test_data_dictionary_codes_and_ranges_are_checked_against_the_declarations(tmp_path):
    bad = dictionary()
    f = bad[DICT_FIELD]
    bad.loc[f == "qoli_3", DICT_CHOICES] = bad.loc[f == "qoli_3", DICT_CHOICES].iloc[0] + " | 10, Other"
    bad.loc[f == "mcas_2", DICT_CHOICES] = "0, None | 1, a | 2, b | 3, c | 4, d | 5, e"
    bad.loc[f == "pgi_points_1", "Text Validation Max"] = "60"
    bad.loc[f == "ace", DICT_CHOICES] = " | ".join(f"{k}, e{k}" for k in range(1, 10))   # no code 10
    bad = bad[f != "hope_7"]
    _, source = write_study(tmp_path, dictionary_frame=bad, repeating="ignore")
    with pytest.raises(StudyDataError) as info:
        read(tmp_path, source)
    got = sorted((i.column, str(i.value).removesuffix(".0")) for i in info.value.issues)
    assert got == sorted([(DICT_CHOICES, "10"), (DICT_CHOICES, "0"), ("Text Validation Max", "60"),
                          (DICT_CHOICES, bad.loc[bad[DICT_FIELD] == "ace", DICT_CHOICES].iloc[0]),
                          (DICT_FIELD, "hope_7")])
    assert all(i.file == "dictionary.csv" for i in info.value.issues)


def test_missing_columns_are_named(tmp_path):
    native, source = write_study(tmp_path, repeating="ignore")
    export = pd.read_csv(tmp_path / "export.csv", dtype=str, keep_default_na=False).drop(columns=["rprs_3", "ace___2"])
    export.to_csv(tmp_path / "export.csv", index=False)
    with pytest.raises(StudyDataError) as info:
        read(tmp_path, source)
    assert {i.column for i in info.value.issues} == {"rprs_3", "ace_2"}
    assert any("checkbox column ace___2" in i.expected for i in info.value.issues)


def test_parse_choices():
    assert parse_choices("1, Never | 2, Sometimes, often |3,x") == ["1", "2", "3"]
    assert parse_choices(np.nan) == []


def test_a_study_with_a_redcap_export_loads_like_the_native_study(tmp_path):
    """The whole validator on both layouts of the same data: same interviews, same scores."""
    import shutil

    import yaml

    from fidelitymed.study.schema import load_study, validate_study

    native = native_interviews(n_clients=10_000)
    folders = {}
    for layout in ("native", "redcap"):
        folder = tmp_path / layout
        shutil.copytree(DEMO, folder)
        cfg = yaml.safe_load((folder / "study.yaml").read_text())
        if layout == "native":
            native.to_csv(folder / "interviews.csv", index=False)
        else:
            (folder / "interviews.csv").unlink()
            redcap_export(native).to_csv(folder / "export.csv", index=False)
            dictionary().to_csv(folder / "dictionary.csv", index=False)
            cfg["files"]["interviews"] = {"path": "export.csv", "format": "redcap", "dictionary": "dictionary.csv",
                                          "events": {**EVENTS, "screening_arm_1": None}, "repeating": "ignore"}
        (folder / "study.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        folders[layout] = folder
    a, b = load_study(folders["native"]), load_study(folders["redcap"])
    order = ["client", "wave"]
    left = a.interviews.sort_values(order).reset_index(drop=True)
    right = b.interviews.sort_values(order).reset_index(drop=True)[list(left.columns)]
    pd.testing.assert_frame_equal(left, right, check_dtype=False)
    pd.testing.assert_frame_equal(a.scored_interviews().sort_values(order).reset_index(drop=True),
                                  b.scored_interviews().sort_values(order).reset_index(drop=True))
    assert "dictionary" in b.hashes
    # a bad value is reported at its row in the export (not in the converted table)
    export = pd.read_csv(folders["redcap"] / "export.csv", dtype=str, keep_default_na=False)
    position = int(np.flatnonzero(export["redcap_event_name"] == "month_45_arm_1")[0])
    export.loc[position, "rprs_1"] = "7"
    export.to_csv(folders["redcap"] / "export.csv", index=False)
    (issue,) = validate_study(folders["redcap"])
    assert (issue.file, issue.row, issue.column, issue.value) == ("export.csv", position + 2, "rprs_1", 7)
