"""`fidelitymed template DIR` and `fidelitymed validate PATH`."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from test_schema import make_tables, write_study

from fidelitymed.cli import app, main
from fidelitymed.errors import FidelityMedError
from fidelitymed.study.config import default_config, parse_config
from fidelitymed.study.template import table_headers, template_yaml, write_template


def _keys(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            yield path
            if not (prefix.endswith(("domains", "indices", "subscales", "scores", "schedule")) or k == "schedule"):
                yield from _keys(v, path)


def test_template_yaml_states_every_key_with_its_default():
    data = yaml.safe_load(template_yaml())
    assert parse_config(data) == default_config()
    stated = set(_keys(data))
    defaults = set(_keys(default_config().model_dump(mode="json")))
    assert defaults - stated == set()
    assert template_yaml().count("#") > 40   # commented


def test_template_command_writes_headers_and_refuses_non_empty(tmp_path, capsys):
    target = tmp_path / "new"
    assert main(["template", str(target)]) == 0
    assert sorted(p.name for p in target.iterdir()) == ["clients.csv", "fidelity.csv", "interviews.csv",
                                                         "study.yaml", "teams.csv"]
    for name, header in table_headers().items():
        assert (target / f"{name}.csv").read_text().strip().split(",") == header
    assert "caseload_1" in table_headers()["fidelity"] and "ace_10" in table_headers()["interviews"]
    before = (target / "study.yaml").read_text()
    capsys.readouterr()
    assert main(["template", str(target)]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert (target / "study.yaml").read_text() == before
    (tmp_path / "empty").mkdir()
    write_template(tmp_path / "empty")   # an existing empty folder is fine
    with pytest.raises(FidelityMedError):
        write_template(tmp_path / "empty")


def test_filled_template_validates(tmp_path, capsys):
    target = write_template(tmp_path / "t")
    tables = make_tables()
    for name, header in table_headers().items():
        frame = tables[name].reindex(columns=header)
        frame.to_csv(target / f"{name}.csv", index=False)
    assert main(["validate", str(target)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "interviews at 13.5 months" in out


def test_validate_success_prints_a_summary(tmp_path, capsys):
    root = write_study(tmp_path / "s")
    assert main(["validate", str(root)]) == 0
    out = capsys.readouterr().out
    for fragment in ["tiny study", "teams", "│    3", "fidelity assessments", "clients", "interviews at 4.5 months",
                     "item cells missing (interviews held)", "scale scores missing"]:
        assert fragment in out, fragment


def test_validate_lists_every_problem_one_per_line_and_exits_2(tmp_path, capsys):
    def mutate(t):
        t["clients"].loc[2, "team"] = "Z"
        t["interviews"].loc[0, "qoli_3"] = 0
        t["interviews"].loc[7, "wave"] = 6
    root = write_study(tmp_path / "s", mutate)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in root.iterdir())
    assert main(["validate", str(root)]) == 2
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[0].startswith("3 problems in") and "header = row 1" in lines[0]
    assert lines[1:] == [
        "clients.csv, row 4, column 'team': found 'Z'; expected a team id listed in teams.csv",
        "interviews.csv, row 2, column 'qoli_3': found 0; expected an integer 1-7 or a missing code 8, 9",
        "interviews.csv, row 9, column 'wave': found 6; expected a scheduled wave (months): 0, 4.5, 9, 13.5, 18",
    ]
    assert "3 problems (listed above)" in captured.err
    assert sorted((p.name, p.stat().st_mtime_ns) for p in root.iterdir()) == before


def test_validate_reports_config_errors_by_key(tmp_path, capsys):
    root = write_study(tmp_path / "s", yaml_text="exposure: {windows: [90, 180], primary: 180}\n")
    assert main(["validate", str(root)]) == 2
    err = capsys.readouterr().err
    assert "exposure.primary: unknown key (allowed: windows, primary_window" in err


def test_validate_empty_tables(tmp_path, capsys):
    target = write_template(tmp_path / "t")
    assert main(["validate", str(target)]) == 2
    out = capsys.readouterr().out
    assert out.count("expected at least one data row (the table is empty)") == 4
    assert isinstance(pd.read_csv(target / "teams.csv"), pd.DataFrame)


@pytest.mark.parametrize(("options", "started"), [
    ({"backend": "processes", "workers": 2}, True), ({"backend": None, "workers": 2}, True),
    ({"backend": "serial", "workers": None}, False), ({"backend": None, "workers": None}, False),
])
@pytest.mark.parametrize("command", ["run", "demo"])
def test_run_on_processes_starts_the_fork_server_before_the_analysis_is_read(monkeypatch, tmp_path, options, started,
                                                                            command):
    """`run --backend processes` (and `demo`) start the fork server first, so it imports the
    analysis while the command imports its own -- for `demo` before the simulator that finds the
    demo study; the run itself is what `run_study` does (stubbed here)."""
    from fidelitymed import parallel, pipeline, simulate

    calls = []
    monkeypatch.setattr(parallel, "start_fork_server", lambda: calls.append("fork server"))
    real_demo_path = simulate.demo_study_path
    monkeypatch.setattr(simulate, "demo_study_path", lambda: calls.append("demo study") or real_demo_path())

    class Done(Exception):
        pass

    def stub(*args, **kwargs):
        calls.append(("run", (kwargs.get("executor") or {}).get("backend")))
        raise Done

    monkeypatch.setattr(pipeline, "run_study", stub)
    argv = [command, *([str(tmp_path / "study")] if command == "run" else []), "--out", str(tmp_path / "out"), "--quiet"]
    argv += [*(["--backend", options["backend"]] if options["backend"] else []),
             *(["--workers", str(options["workers"])] if options["workers"] else [])]
    with pytest.raises(Done):
        app(args=argv, standalone_mode=False)
    assert calls[0] == "fork server" if started else "fork server" not in calls
    assert calls[-1] == ("run", "processes" if started else options["backend"])


@pytest.mark.parametrize("argv, code", [(["--version"], 0), (["validate", "no-such-study"], 2)])
def test_the_script_entry_returns_mains_exit_code_and_leaves_the_collector_frozen(argv, code):
    """``console_main`` (the ``fidelitymed`` script, ``python -m fidelitymed``) is :func:`main` and
    then a shutdown without the interpreter's last full collections; run in a child process, as
    it freezes the garbage collector of the process it ends."""
    import subprocess
    import sys

    probe = ("import gc, sys; from fidelitymed.cli import console_main; sys.argv = ['fidelitymed', *sys.argv[1:]]; "
             "c = console_main(); print(c, gc.isenabled(), gc.get_freeze_count() > 1000, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == f"{code} False True"
    module = subprocess.run([sys.executable, "-m", "fidelitymed", *argv], capture_output=True, text=True, timeout=120)
    assert module.returncode == code
