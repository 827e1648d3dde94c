"""The package imports, the CLI starts, and user errors become one line with exit status 2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fidelitymed
from fidelitymed.cli import main
from fidelitymed.errors import StudyDataError
from fidelitymed.seeding import child_sequence, generator
from fidelitymed.study.io import atomic_directory, read_table, write_table


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == fidelitymed.__version__


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".sav", ".dta"])
def test_read_write_roundtrip(tmp_path, suffix):
    frame = pd.DataFrame({"x": [1.0, 2.5, np.nan], "site": [1.0, 2.0, 2.0]})
    path = tmp_path / f"data{suffix}"
    write_table(frame, path)
    back = read_table(path)
    pd.testing.assert_frame_equal(back[["x", "site"]].astype(float), frame, check_dtype=False)


def test_read_table_errors_name_the_file(tmp_path):
    with pytest.raises(StudyDataError, match="missing.csv"):
        read_table(tmp_path / "missing.csv")
    bad = tmp_path / "data.txt"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(StudyDataError, match="data.txt"):
        read_table(bad)


def test_child_streams_are_keyed_not_ordered():
    a = generator(7, ("window", 180, 3)).standard_normal(4)
    b = generator(7, ("window", 180, 3)).standard_normal(4)
    c = generator(7, ("window", 180, 4)).standard_normal(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert child_sequence(7, (1, 2)).spawn_key == (1, 2)


def test_atomic_directory_keeps_target_on_failure(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as tmp:  # a folder fidelitymed wrote: only such a folder may be replaced
        (tmp / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target, force=True) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("boom")
    assert (target / "keep.txt").read_text() == "old"
    assert not (target / "new.txt").exists()


def test_every_public_name_resolves():
    for name in fidelitymed.__all__:
        assert getattr(fidelitymed, name) is not None, name
