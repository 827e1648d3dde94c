"""Output safety of ``fidelitymed run`` / ``demo`` (issue 10, the output side of items 1 and 2).

Nothing the user named is removed unless fidelitymed wrote it (protected input folders, the
marker, the lock, the parent checked first, signals, stale temporary folders); no live formula
in a CSV or XLSX; no absolute path in results.json. Every refusal is one line and exit 2, and
the inputs are byte-identical afterwards.

All runs go through the real CLI entry (:func:`fidelitymed.cli.main`, or the installed
``fidelitymed`` script in a subprocess for the signal cases) on a copy of the demo study with
light settings (``--no-impute --n-boot 50``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import fidelitymed
from fidelitymed.cli import main
from fidelitymed.simulate import demo_study_path
from fidelitymed.study.writers import (FORMULA_PREFIXES, MARKER_NAME, neutralise_formula_text, neutralise_frame,
                                        read_marker, write_table)

DEMO = demo_study_path()
FAST = ["--no-impute", "--n-boot", "50", "--quiet"]


def tree_digest(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` (files, folders, links) with its content hash: any change shows."""
    out: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def leftovers(out: Path) -> list[str]:
    """Hidden siblings of ``out`` a run leaves behind: temporary folders, lock files."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.fixture
def parent(tmp_path) -> Path:
    """``tmp/parent`` holding a copy of the demo study (``study/``) and a file of the user's beside it."""
    parent = tmp_path / "parent"
    shutil.copytree(DEMO, parent / "study")
    (parent / "notes.txt").write_text("the user's own notes\n")
    return parent


def refused(argv: list[str], capsys, *, match: str) -> str:
    """Run the CLI, assert exit 2 with one line on stderr matching ``match``; return that line."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and match in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------ 1. out vs the inputs (deletion cases)

def test_out_that_contains_the_study_is_refused_even_with_force(parent, capsys):
    """Repro of issue 10: ``run parent/study --out parent --force`` deleted the study."""
    before = tree_digest(parent)
    refused(["run", str(parent / "study"), "--out", str(parent), "--force", *FAST], capsys,
            match="contains the study folder")
    assert tree_digest(parent) == before


def test_out_dot_from_the_parent_folder_is_refused(parent, capsys, monkeypatch):
    monkeypatch.chdir(parent)
    before = tree_digest(parent)
    refused(["run", "study", "--out", ".", "--force", *FAST], capsys, match="contains the study folder")
    assert tree_digest(parent) == before


def test_out_equal_to_or_inside_the_study_is_refused(parent, capsys):
    before = tree_digest(parent)
    refused(["run", str(parent / "study"), "--out", str(parent / "study"), "--force", *FAST], capsys,
            match="is the study folder")
    refused(["run", str(parent / "study"), "--out", str(parent / "study" / "results"), "--force", *FAST], capsys,
            match="lies inside the study folder")
    assert tree_digest(parent) == before


def _study_with_outside_input(parent: Path) -> Path:
    """Move clients.csv to ``parent/shared/data/`` and point study.yaml at it with ``../``."""
    data = parent / "shared" / "data"
    data.mkdir(parents=True)
    (parent / "study" / "clients.csv").rename(data / "clients.csv")
    yaml_path = parent / "study" / "study.yaml"
    text = yaml_path.read_text()
    assert "clients: clients.csv" in text
    yaml_path.write_text(text.replace("clients: clients.csv", "clients: ../shared/data/clients.csv"))
    return data


def test_out_at_the_folder_of_an_input_file_outside_the_study_is_refused(parent, capsys):
    data = _study_with_outside_input(parent)
    before = tree_digest(parent)
    study = str(parent / "study")
    refused(["run", study, "--out", str(data), "--force", *FAST], capsys, match="is the folder of the input file")
    refused(["run", study, "--out", str(parent / "shared"), "--force", *FAST], capsys,
            match="contains the folder of the input file")
    refused(["run", study, "--out", str(data / "out"), "--force", *FAST], capsys,
            match="lies inside the folder of the input file")
    assert tree_digest(parent) == before


def test_protection_sees_through_symlinks(parent, capsys, tmp_path):
    """A link to the parent folder (or to the study) is the folder itself."""
    (tmp_path / "link-to-parent").symlink_to(parent)
    (tmp_path / "link-to-study").symlink_to(parent / "study")
    before = tree_digest(parent)
    refused(["run", str(parent / "study"), "--out", str(tmp_path / "link-to-parent" / "study" / "x"), "--force",
             *FAST], capsys, match="lies inside the study folder")
    refused(["run", str(tmp_path / "link-to-study"), "--out", str(parent), "--force", *FAST], capsys,
            match="contains the study folder")
    assert tree_digest(parent) == before


# ------------------------------------------------------------------ 2. the marker: --force replaces only our folders

@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> Path:
    """An output folder written by one real run (it carries the marker); tests copy it."""
    out = tmp_path_factory.mktemp("first") / "out"
    assert main(["run", str(DEMO), "--out", str(out), *FAST]) == 0
    return out


@pytest.fixture
def made_by_run(first_run):
    """``made_by_run(folder, name)``: a copy of :func:`first_run`'s output folder at ``folder/name``."""
    def copy(folder: Path, name: str = "out") -> Path:
        return Path(shutil.copytree(first_run, folder / name, symlinks=True))

    return copy


def test_every_output_folder_carries_a_marker_listing_what_was_written(first_run):
    out = first_run
    marker = json.loads((out / MARKER_NAME).read_text())
    assert marker["tool"] == "fidelitymed" and marker["format"] == "fidelitymed-output/1"
    assert marker["kind"] == "study results" and marker["version"] == fidelitymed.__version__
    written = sorted(str(p.relative_to(out).as_posix()) for p in out.rglob("*") if p.name != MARKER_NAME)
    assert marker["files"] == written
    assert {"results.json", "results.xlsx", "report.html", "tables.xlsx", "mediation.csv"} <= set(written)


def test_marker_and_results_are_byte_identical_for_one_seed(first_run, tmp_path):
    a, b = first_run, tmp_path / "b"
    assert main(["run", str(DEMO), "--out", str(b), *FAST]) == 0
    # (results.xlsx carries the time it was written, as it did before: not claimed here)
    for name in (MARKER_NAME, "results.json", "mediation.csv", "table1.csv", "tables.xlsx"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_force_replaces_a_folder_fidelitymed_wrote(made_by_run, tmp_path, capsys):
    out = made_by_run(tmp_path)
    (out / "results.json").write_text("stale\n")  # an output of ours, edited: still ours to replace
    refused(["run", str(DEMO), "--out", str(out), *FAST], capsys, match="exists; use --force")
    assert (out / "results.json").read_text() == "stale\n"
    assert main(["run", str(DEMO), "--out", str(out), "--force", *FAST]) == 0
    assert json.loads((out / "results.json").read_text())["manifest"]["study"]
    assert leftovers(out) == []


def test_force_refuses_a_folder_without_the_marker(tmp_path, capsys):
    """E.g. a demo-report of an older version, or any folder of the user's."""
    out = tmp_path / "demo-report"
    out.mkdir()
    (out / "results.json").write_text("{}\n")
    before = tree_digest(tmp_path)
    for command in (["run", str(DEMO)], ["demo"]):
        line = refused([*command, "--out", str(out), "--force", *FAST[-1:]], capsys,
                       match="was not written by fidelitymed (no .fidelitymed-output marker)")
        assert "remove it yourself" in line and "even with --force" in line
    assert tree_digest(tmp_path) == before


def test_force_refuses_a_marked_folder_holding_files_of_the_user(made_by_run, tmp_path, capsys):
    out = made_by_run(tmp_path)
    (out / "my-notes.txt").write_text("mine\n")
    (out / "figures" / "edited.png").write_bytes(b"x")
    before = tree_digest(tmp_path)
    line = refused(["run", str(DEMO), "--out", str(out), "--force", *FAST], capsys,
                   match="holds files fidelitymed did not write (figures/edited.png, my-notes.txt)")
    assert "move them away" in line
    assert tree_digest(tmp_path) == before


def test_force_refuses_a_file_and_a_symlink(made_by_run, tmp_path, capsys):
    out = made_by_run(tmp_path)
    (tmp_path / "a-file").write_text("mine\n")
    (tmp_path / "link").symlink_to(out)
    before = tree_digest(tmp_path)
    refused(["run", str(DEMO), "--out", str(tmp_path / "a-file"), "--force", *FAST], capsys,
            match="exists and is not a folder")
    refused(["run", str(DEMO), "--out", str(tmp_path / "link"), "--force", *FAST], capsys,
            match="is a symbolic link")
    assert tree_digest(tmp_path) == before


def test_an_empty_folder_is_used_without_force(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert main(["run", str(DEMO), "--out", str(out), *FAST]) == 0
    assert (out / "results.json").is_file() and (out / MARKER_NAME).is_file()


def test_a_marked_folder_of_another_kind_is_not_replaced(tmp_path, capsys):
    """A simulated study folder (also marked) is never replaced by a run's results."""
    assert main(["simulate", "--out", str(tmp_path / "sim"), "--seed", "3", "--clients", "40"]) == 0
    capsys.readouterr()
    before = tree_digest(tmp_path)
    refused(["run", str(DEMO), "--out", str(tmp_path / "sim"), "--force", *FAST], capsys,
            match="holds a fidelitymed 'output' folder, not 'study results'")
    assert tree_digest(tmp_path) == before


# ------------------------------------------------------------------ 3-5. lock, parent, signals (real processes)

FIDELITYMED = Path(sys.executable).parent / "fidelitymed"
# long enough that a signal sent once the output folder is prepared lands in the analysis
SLOW = ["--imputations", "2", "--n-boot", "50", "--quiet"]


def temp_folders(out: Path) -> list[Path]:
    return sorted(p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.fidelitymed-tmp-"))


def start_run(study: Path, out: Path) -> subprocess.Popen:
    """``fidelitymed run`` in a subprocess; returns once its output folder is prepared (locked, temp made)."""
    proc = subprocess.Popen([str(FIDELITYMED), "run", str(study), "--out", str(out), *SLOW],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not (out.parent.is_dir() and any(read_marker(t) for t in temp_folders(out))):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never prepared its output folder"
        time.sleep(0.05)
    return proc


def stopped_cleanly(run: subprocess.Popen, signum: int, out: Path, status: int, line: str) -> None:
    """Send ``signum``: the run exits with ``status``, prints only ``line`` and leaves nothing behind."""
    # Signalled once the run is analysing.  On a fresh install numba compiles the kernels then, and a
    # signal arriving inside its compile-cache ctypes callback used to be lost (the run went on and
    # exited 0): fidelitymed.interrupt now records it (test_a_signal_lost_in_a_ctypes_callback_...).
    time.sleep(1.0)
    assert run.poll() is None, run.communicate()
    run.send_signal(signum)
    _stdout, err = run.communicate(timeout=120)
    assert run.returncode == status, err
    assert err.strip().splitlines() == [line]
    assert not out.exists() and leftovers(out) == []


def no_analysis(monkeypatch) -> None:
    """Make the analysis (the imputation and the models) fail loudly: a refusal must come before it.

    Loading the study (parsing, validation, feasibility) comes first and may take its time;
    the output folder is checked right after it.
    """
    import fidelitymed.pipeline

    def fail(*args, **kwargs):
        raise AssertionError("the analysis started before the output folder was checked")

    monkeypatch.setattr(fidelitymed.pipeline, "prepare_frames", fail)


def test_a_second_run_into_the_same_target_fails_at_once_and_sigterm_cleans_up(parent, capsys, monkeypatch):
    out = parent.parent / "results"
    before = tree_digest(parent)
    first = start_run(parent / "study", out)
    try:
        no_analysis(monkeypatch)  # the second run is refused before any analysis, not after it
        line = refused(["run", str(parent / "study"), "--out", str(out), "--force", *FAST], capsys,
                       match="is being written by another fidelitymed run")
        assert "wait for it to finish" in line
        assert first.poll() is None
        stopped_cleanly(first, signal.SIGTERM, out, 143, "interrupted (SIGTERM): no output written")
    finally:
        if first.poll() is None:
            first.kill()
    assert tree_digest(parent) == before


def test_a_signal_lost_in_a_ctypes_callback_still_stops_the_run_before_its_outputs(tmp_path, capsys):
    """SIGTERM handled inside a ctypes callback (where numba's compile cache calls back into Python):
    Python drops the handler's exception, so the run must stop at its next check, put nothing in
    place, and print no "Exception ignored" traceback."""
    import ctypes

    from fidelitymed import interrupt
    from fidelitymed.cli import Interrupted, _signals_as_interrupted
    from fidelitymed.study.writers import OutputFolder

    @ctypes.CFUNCTYPE(None)
    def callback():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs here, inside the callback

    out = tmp_path / "results"
    with _signals_as_interrupted():
        with pytest.raises(Interrupted) as stopped:
            with OutputFolder(out) as folder:
                callback()  # the Interrupted raised in it is lost: the body goes on
                assert interrupt.requested() == signal.SIGTERM
                (folder.tmp / "results.json").write_text("{}")
                folder.commit()
        assert stopped.value.signum == signal.SIGTERM
    assert interrupt.requested() is None  # the command's end forgets it
    assert not out.exists() and leftovers(out) == []
    assert "Exception ignored" not in capsys.readouterr().err


def test_ctrl_c_cleans_up_and_exits_130(parent):
    out = parent.parent / "results"
    before = tree_digest(parent)
    stopped_cleanly(start_run(parent / "study", out), signal.SIGINT, out, 130, "interrupted: no output written")
    assert tree_digest(parent) == before


def test_the_next_run_removes_what_a_killed_run_left(parent):
    """SIGKILL cannot be caught: the temp folder (marked) and the lock file stay; neither blocks the next run."""
    out = parent.parent / "results"
    before = tree_digest(parent)
    run = start_run(parent / "study", out)
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL
    stale = temp_folders(out)
    assert len(stale) == 1 and (stale[0] / MARKER_NAME).is_file()
    assert (out.parent / ".results.lock").exists()  # a file, but nobody holds its flock
    # a temp folder of another target, and one of ours without a marker, are not touched
    other = parent.parent / ".other.fidelitymed-tmp-x"
    other.mkdir()
    (other / MARKER_NAME).write_text("{}")
    foreign = parent.parent / ".results.fidelitymed-tmp-mine"
    foreign.mkdir()
    (foreign / "data.txt").write_text("not a marked folder\n")
    assert main(["run", str(parent / "study"), "--out", str(out), *FAST]) == 0
    assert leftovers(out) == [foreign.name]
    assert other.is_dir() and (out / "results.json").is_file()
    assert tree_digest(parent) == before


def test_the_output_parent_is_checked_before_the_analysis(parent, capsys, monkeypatch):
    no_analysis(monkeypatch)
    before = tree_digest(parent)
    refused(["run", str(parent / "study"), "--out", str(parent / "notes.txt" / "out"), *FAST], capsys,
            match="cannot be created")
    assert tree_digest(parent) == before


def test_an_unwritable_parent_is_refused_before_the_analysis(parent, capsys, monkeypatch, tmp_path):
    if os.geteuid() != 0:
        unwritable = tmp_path / "read-only"
        unwritable.mkdir()
        unwritable.chmod(0o555)
    else:  # root may write anywhere but /sys (sysfs refuses new files even to root)
        unwritable = Path("/sys")
        if not unwritable.is_dir() or (unwritable / "fidelitymed-out").exists():
            pytest.skip("no folder that root cannot write")
    no_analysis(monkeypatch)
    try:
        refused(["run", str(parent / "study"), "--out", str(unwritable / "fidelitymed-out"), *FAST], capsys,
                match=f"cannot be written: {str(unwritable)!r}")
    finally:
        if unwritable != Path("/sys"):
            unwritable.chmod(0o755)


def test_parents_made_for_a_run_that_fails_are_removed(parent, capsys, monkeypatch, tmp_path):
    import fidelitymed.pipeline
    from fidelitymed.errors import ConfigError

    out = tmp_path / "new" / "deeper" / "out"

    def fails(*args, **kwargs):
        assert temp_folders(out), "the output folder should be prepared by now"
        raise ConfigError("imputation: a failure after the output folder was prepared")

    monkeypatch.setattr(fidelitymed.pipeline, "prepare_frames", fails)
    refused(["run", str(parent / "study"), "--out", str(out), *FAST], capsys,
            match="a failure after the output folder was prepared")
    assert not (tmp_path / "new").exists()


# ------------------------------------------------------------------ 6. spreadsheet formula injection

EVIL_SITES = {1: '=HYPERLINK("http://evil.example/","click")', 2: "+1", 3: "@SUM(A1:A2)", 4: "-2"}


def test_neutralise_formula_text_touches_only_dangerous_text():
    assert neutralise_formula_text("=1+1") == "'=1+1"
    for text in ("+1", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise_formula_text(text) == "'" + text
    for value in ("Site 1", "a=b", "", -2, -2.5, 0, True, None, float("nan")):
        assert neutralise_formula_text(value) is value
    frame = pd.DataFrame({"site": ["=cmd", "ok", None], "n": [-1, 2, 3], "x": [-0.5, 1.0, float("nan")],
                          "cat": pd.Categorical(["+1", "b", "+1"]), "=col": ["a", "b", "c"]})
    out = neutralise_frame(frame)
    assert out["site"].tolist()[:2] == ["'=cmd", "ok"] and pd.isna(out["site"].iloc[2])
    assert out["n"].tolist() == [-1, 2, 3] and out["n"].dtype == frame["n"].dtype
    assert out["x"].dtype == frame["x"].dtype and out["x"].iloc[0] == -0.5
    assert out["cat"].tolist() == ["'+1", "b", "'+1"]
    assert list(out.columns) == ["site", "n", "x", "cat", "'=col"]
    assert frame["site"].iloc[0] == "=cmd"  # the input is not changed


def test_write_table_neutralises_csv_and_xlsx(tmp_path):
    frame = pd.DataFrame({"label": ["=HYPERLINK(\"http://x\")", "@A1", "plain"], "value": [-1.5, 2.0, -3.0]})
    write_table(frame, tmp_path / "t.csv")
    write_table(frame, tmp_path / "t.xlsx")
    assert csv_fields(tmp_path / "t.csv") == ["label", "value", "'=HYPERLINK(\"http://x\")", "-1.5", "'@A1", "2.0",
                                              "plain", "-3.0"]
    cells = xlsx_cells(tmp_path / "t.xlsx")
    assert ("s", "'=HYPERLINK(\"http://x\")") in cells and ("n", -1.5) in cells
    assert not any(kind == "f" for kind, _ in cells)


def xlsx_cells(path: Path) -> list[tuple[str, object]]:
    """(openpyxl data_type, value) of every non-empty cell of every sheet."""
    import openpyxl

    book = openpyxl.load_workbook(path)
    return [(cell.data_type, cell.value) for sheet in book.worksheets for row in sheet.iter_rows()
            for cell in row if cell.value is not None]


def csv_fields(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        return [field for row in csv.reader(f) for field in row]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def odd_study_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """One run of a demo copy whose site labels are formulas, with one input outside the study folder
    (``../shared/data/clients.csv``) and one named by an absolute path in study.yaml."""
    base = tmp_path_factory.mktemp("odd")
    parent = base / "parent"
    shutil.copytree(DEMO, parent / "study")
    _study_with_outside_input(parent)
    teams = pd.read_csv(parent / "study" / "teams.csv")
    teams["site"] = teams["site"].map(lambda s: EVIL_SITES.get(s, f"Site {s}"))
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    teams.to_csv(elsewhere / "teams.csv", index=False)
    (parent / "study" / "teams.csv").unlink()
    yaml_path = parent / "study" / "study.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("teams: teams.csv", f"teams: {elsewhere / 'teams.csv'}"))
    before = tree_digest(parent), tree_digest(elsewhere)
    out = base / "out"
    assert main(["run", str(parent / "study"), "--out", str(out), *FAST]) == 0
    assert (tree_digest(parent), tree_digest(elsewhere)) == before
    return base, parent / "study", out


def test_formula_site_labels_are_text_in_every_spreadsheet(odd_study_run):
    _base, _study, out = odd_study_run
    wanted = {"'" + label for label in EVIL_SITES.values()}
    for book in ("results.xlsx", "tables.xlsx"):
        cells = xlsx_cells(out / book)
        assert not [v for kind, v in cells if kind == "f"], book
        texts = {v for kind, v in cells if kind == "s"}
        assert wanted <= texts, book
    for csv_path in sorted(out.glob("*.csv")):
        for field in csv_fields(csv_path):
            assert not field.startswith(FORMULA_PREFIXES) or _is_number(field), (csv_path.name, field)
    assert wanted <= set(csv_fields(out / "table1.csv"))
    # results.json is data, not a spreadsheet: the labels are recorded as they are
    table1 = json.loads((out / "results.json").read_text())["descriptives"]["table1"]
    assert set(EVIL_SITES.values()) <= {r.get("level") for r in table1}


# ------------------------------------------------------------------ 7. no absolute paths in the results

def test_inputs_are_recorded_relative_to_the_study_folder(odd_study_run):
    base, _study, out = odd_study_run
    manifest = json.loads((out / "results.json").read_text())["manifest"]
    teams = os.path.relpath(base / "elsewhere" / "teams.csv", base / "parent" / "study")
    assert set(manifest["inputs"]) == {"study.yaml", "fidelity.csv", "interviews.csv",
                                       "../shared/data/clients.csv", teams}
    assert manifest["config"]["files"]["clients"] == "../shared/data/clients.csv"
    assert manifest["config"]["files"]["teams"] == teams
    for path in out.rglob("*"):
        if path.suffix in (".json", ".csv", ".html", ".svg") or path.name == MARKER_NAME:
            text = path.read_text(encoding="utf-8")
            assert str(base) not in text and "/tmp/" not in text, path.name
