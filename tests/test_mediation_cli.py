"""``fidelitymed mediate`` with the PROCESS Model 4 options of issue 12: the CLI gives what the API gives."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fidelitymed.cli import main
from fidelitymed.stats.mediation import mediate

DATA = Path(__file__).parent / "reference" / "process_model4.csv"


def _run(tmp_path, capsys, *args):
    out = tmp_path / "r.json"
    assert main(["mediate", str(DATA), "--x", "fidelity", *args, "--json", str(out)]) == 0
    return capsys.readouterr().out, json.loads(out.read_text())


def test_parallel_mc_contrast_covariates_in(tmp_path, capsys):
    text, got = _run(tmp_path, capsys, "--m", "alliance,hope", "--y", "qol", "--cov", "age,ace", "--contrast",
                     "--ci", "monte_carlo", "--n-mc", "2000", "--covariates-in", "mediators", "--seed", "3",
                     "--standardized")
    ref = mediate(pd.read_csv(DATA), "fidelity", ["alliance", "hope"], "qol", covariates=["age", "ace"],
                  contrast=True, ci="monte_carlo", n_mc=2000, covariates_in="mediators", seed=3, standardized=True)
    assert got == json.loads(json.dumps(ref.to_dict()))
    for heading in ("M1 : alliance", "MC ULCI", "(C1)", "Standardized coefficients", "DIRECT AND INDIRECT EFFECTS"):
        assert heading in text


def test_binary_y_detected_boot_coefficients_and_map(tmp_path, capsys):
    text, got = _run(tmp_path, capsys, "--m", "alliance,hope", "--y", "employed", "--cov", "age,ace",
                     "--covariate-map", "age=mediators,ace=mediators+outcome", "--boot", "300", "--seed", "2",
                     "--boot-coefficients", "--contrast-absolute")
    ref = mediate(pd.read_csv(DATA), "fidelity", ["alliance", "hope"], "employed", covariates=["age", "ace"],
                  covariate_map={"age": ["mediators"], "ace": ["mediators", "outcome"]}, n_boot=300, seed=2,
                  boot_coefficients=True, contrast="absolute")
    assert got == json.loads(json.dumps(ref.to_dict()))
    assert "Coding of binary Y" in text and "BOOTSTRAP RESULTS FOR REGRESSION MODEL PARAMETERS" in text
    assert "log-odds" in text


def test_linear_y_override(tmp_path, capsys):
    _, got = _run(tmp_path, capsys, "--m", "alliance", "--y", "employed", "--boot", "0", "--linear-y")
    assert "r2" in got["models"]["outcome"] and "y_coding" not in got


@pytest.mark.parametrize("args, fragment", [
    (["--m", "alliance", "--y", "qol", "--contrast"], "at least two mediators"),
    (["--m", "alliance", "--y", "qol", "--cov", "age", "--covariate-map", "age"], "COVARIATE=EQUATIONS"),
    (["--m", "alliance", "--y", "qol", "--covariates-in", "both"], "covariates_in"),
])
def test_user_errors_one_line_exit_2(capsys, args, fragment):
    assert main(["mediate", str(DATA), "--x", "fidelity", *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1
