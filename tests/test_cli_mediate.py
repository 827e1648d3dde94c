"""``fidelitymed mediate``: output, JSON, file formats and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.resources import files

import pandas as pd
import pytest

from fidelitymed.cli import main
from fidelitymed.stats.mediation import mediate

EXAMPLE = files("fidelitymed") / "data" / "mediation_example.csv"
BASE = [str(EXAMPLE), "--x", "fidelity", "--m", "alliance", "--y", "qol"]


def test_prints_summary_and_writes_json(tmp_path, capsys):
    out = tmp_path / "res.json"
    code = main(["mediate", *BASE, "--cov", "age,ace,site", "--cat", "site", "--boot", "500",
                 "--seed", "4", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "Model  : 4" in text and "Indirect effect(s) of X on Y:" in text and "site[T.2]" in text
    got = json.loads(out.read_text())
    ref = mediate(pd.read_csv(EXAMPLE), "fidelity", "alliance", "qol", covariates=["age", "ace", "site"],
                  categorical=["site"], n_boot=500, seed=4).to_dict()
    assert got == json.loads(json.dumps(ref))


def test_options_hc_conf_ci(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["mediate", *BASE, "--boot", "300", "--seed", "1", "--hc", "hc3", "--conf", "90",
                 "--ci", "bca", "--normal", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "se(HC3)" in text and "F(HC3)" in text and "90.0000" in text and "Normal theory test" in text
    d = json.loads(out.read_text())
    ref = mediate(pd.read_csv(EXAMPLE), "fidelity", "alliance", "qol", n_boot=300, seed=1, hc=3, conf=0.9, ci="bca")
    assert d["indirect"]["ci_low"] == pytest.approx(ref.indirect["ci_low"], rel=1e-12)


def test_conf_as_fraction_or_percent_gives_the_same_result(tmp_path, capsys):
    """--conf is a fraction everywhere (as study.yaml and power); a percent is read as one, with a note."""
    outs = []
    for value in ("0.9", "90"):
        out = tmp_path / f"r{value}.json"
        assert main(["mediate", *BASE, "--boot", "200", "--seed", "3", "--conf", value, "--json", str(out)]) == 0
        outs.append(json.loads(out.read_text()))
    captured = capsys.readouterr()
    assert "read as a percent" in captured.err and captured.err.count("note:") == 1
    assert captured.out.count("90.0000") == 2   # PROCESS's "Level of confidence" line, both runs
    assert outs[0]["indirect"] == outs[1]["indirect"]


@pytest.mark.parametrize("suffix", [".xlsx", ".sav", ".dta"])
def test_other_file_formats(tmp_path, capsys, suffix):
    from fidelitymed.study.io import write_table

    frame = pd.read_csv(EXAMPLE)[["fidelity", "alliance", "qol", "age"]].dropna()
    path = tmp_path / f"d{suffix}"
    write_table(frame, path)
    assert main(["mediate", str(path), "--x", "fidelity", "--m", "alliance", "--y", "qol", "--cov", "age",
                 "--boot", "0"]) == 0
    assert f"Size:  {len(frame)}" in capsys.readouterr().out


@pytest.mark.parametrize("args, fragment", [
    (["--x", "nope"], "nope"),
    (["--cov", "agee"], "agee"),
    (["--boot", "-5"], "n_boot"),
    (["--conf", "1"], "conf"),
    (["--conf", "120"], "conf"),
    (["--hc", "HC9"], "hc"),
    (["--ci", "studentized"], "ci"),
])
def test_bad_arguments_one_line_exit_2(capsys, args, fragment):
    argv = ["mediate", *BASE, "--boot", "0"]
    # later options override earlier ones in click, so the bad value wins
    code = main(argv + args)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error:") and err.count("\n") == 1 and fragment in err


def test_bad_data_and_unreadable_file(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    frame = pd.read_csv(EXAMPLE)
    frame["qol"] = frame["qol"].astype(object)
    frame.loc[3, "qol"] = "missing?"
    frame.to_csv(bad, index=False)
    assert main(["mediate", str(bad), "--x", "fidelity", "--m", "alliance", "--y", "qol", "--boot", "0"]) == 2
    err = capsys.readouterr().err
    assert "row 5" in err and "'qol'" in err and "missing?" in err and err.count("\n") == 1
    garbage = tmp_path / "g.xlsx"
    garbage.write_bytes(b"not a spreadsheet")
    assert main(["mediate", str(garbage), "--x", "a", "--m", "b", "--y", "c"]) == 2
    assert "g.xlsx" in capsys.readouterr().err
    assert main(["mediate", str(tmp_path / "absent.csv"), "--x", "a", "--m", "b", "--y", "c"]) == 2


def test_console_script_subprocess():
    proc = subprocess.run([sys.executable, "-m", "fidelitymed", "mediate", *BASE, "--x", "nope", "--boot", "0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "nope" in proc.stderr



def test_cli_impute_pools_and_matches_api(tmp_path):
    """`--impute m --pool rubin_mc` equals the API call `mediate(..., impute=m, pool=...)`."""
    path = files("fidelitymed") / "data" / "mediation_example.csv"
    out = tmp_path / "mi.json"
    rc = main(["mediate", str(path), "--x", "fidelity", "--m", "alliance", "--y", "qol", "--cov", "age,site",
               "--cat", "site", "--boot", "300", "--seed", "5", "--impute", "3", "--pool", "rubin_mc",
               "--json", str(out)])
    assert rc == 0
    written = json.loads(out.read_text())
    assert written["imputations"] == 3 and written["pooling"] == "rubin_mc"
    frame = pd.read_csv(path)
    api = mediate(frame, "fidelity", "alliance", "qol", covariates=["age", "site"], categorical=["site"],
                  n_boot=300, seed=5, impute=3, pool="rubin_mc").to_dict()
    assert written["paths"]["a"]["coef"] == pytest.approx(api["paths"]["a"]["coef"], rel=1e-12)
    assert written["indirect"]["ci_low"] == pytest.approx(api["indirect"]["ci_low"], rel=1e-12)


def test_impute_rejects_options_it_cannot_honour():
    from fidelitymed.errors import ConfigError

    frame = pd.read_csv(files("fidelitymed") / "data" / "mediation_example.csv")
    with pytest.raises(ConfigError, match="impute"):
        mediate(frame, "fidelity", "alliance", "qol", impute=3, ci="bca", n_boot=100, seed=1)
