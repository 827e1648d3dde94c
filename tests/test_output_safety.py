"""Output safety of ``fidelitymed run`` / ``demo`` (issue 10, item 1): nothing the user named is removed
unless fidelitymed wrote it; every refusal is one line, exit 2, inputs byte-identical.

All runs go through the real CLI entry (:func:`fidelitymed.cli.main`, or the installed
``fidelitymed`` script in a subprocess for the signal cases) on a copy of the demo study with
light settings (``--no-impute --n-boot 50``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from fidelitymed.cli import main
from fidelitymed.simulate import demo_study_path

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
