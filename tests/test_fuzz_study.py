"""Fuzzing ``fidelitymed validate`` on a small study folder (issue 10, item 8).

A trimmed copy of the demo study (3 of its 14 teams) is mutated cell by cell, column by column
and in study.yaml -- random and unicode text, huge and non-finite numbers, empty cells, dates in
odd forms, dropped columns, duplicated header names, dropped and repeated rows, a table saved
as Latin-1 -- and ``fidelitymed validate`` must exit 0 (valid) or 2 (one-line or listed user
errors): never raise, never print a traceback, never change a byte of its input.

The light version runs in CI (15 examples); ``--runslow`` runs 400.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fidelitymed.cli import main
from fidelitymed.simulate import demo_study_path

TABLES = ("teams", "fidelity", "clients", "interviews")
KEEP_TEAMS = {"T01", "T02", "T03"}


def _read(path: Path) -> list[list[str]]:
    # surrogateescape: a table an earlier mutation saved as Latin-1 keeps its bytes
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        return list(csv.reader(fh))


def _write(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> None:
    with open(path, "w", newline="", encoding=encoding, errors="surrogateescape") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def trimmed_demo(target: Path) -> Path:
    """The demo study restricted to 3 teams, the rows kept verbatim (the file format untouched)."""
    source = demo_study_path()
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "study.yaml", target / "study.yaml")
    for name in ("teams", "fidelity"):
        rows = _read(source / f"{name}.csv")
        _write(target / f"{name}.csv", [rows[0]] + [r for r in rows[1:] if r[0] in KEEP_TEAMS])
    clients = _read(source / "clients.csv")
    kept = [r for r in clients[1:] if r[1] in KEEP_TEAMS]
    _write(target / "clients.csv", [clients[0]] + kept)
    ids = {r[0] for r in kept}
    interviews = _read(source / "interviews.csv")
    _write(target / "interviews.csv", [interviews[0]] + [r for r in interviews[1:] if r[0] in ids])
    return target


@pytest.fixture(scope="module")
def base_study(tmp_path_factory) -> Path:
    root = trimmed_demo(tmp_path_factory.mktemp("fuzz") / "base")
    assert _validate(root)[0] == 0, "the trimmed demo must be valid"
    return root


def _validate(root: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(root)])
    return code, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------------------ mutations
odd_dates = st.sampled_from(["2014-W41-5", "20141011", "2015-01-02T10:00:00+05:00", "2014-10-11T00:00:00",
                             "2015-02-30", "1899-12-31", "2101-01-01", "11/10/2014", "2014-13-01", "0000-00-00",
                             "2014-10-11Z", " 2014-10-11 ", "2014-1-1", "９９９９-01-01"])
numbers = st.one_of(st.integers(-10**30, 10**30).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["1e308", "-0", "0x10", "1_000", "NaN", "inf", "-inf", "1e-400", "4.0", " 3 "]))
texts = st.one_of(st.text(max_size=30), st.text(alphabet=st.characters(min_codepoint=0x80), max_size=10),
                  st.sampled_from(["", " ", "NA", "null", "#N/A", "None", "=1+1", "\t", "é", "T01", "C0001"]))
cell_values = st.one_of(texts, numbers, odd_dates)


@st.composite
def mutation(draw):
    kind = draw(st.sampled_from(["cell", "cell", "cell", "column_cells", "drop_column", "duplicate_header",
                                 "drop_row", "repeat_row", "yaml", "latin1"]))
    table = draw(st.sampled_from(TABLES))
    return kind, table, draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6)), draw(cell_values)


def apply(root: Path, change: tuple) -> None:
    kind, table, i, j, value = change
    value = value.replace("\x00", "")   # a NUL cannot be written by the csv module
    if kind == "yaml":
        lines = (root / "study.yaml").read_text(encoding="utf-8").splitlines()
        keyed = [k for k, line in enumerate(lines) if ":" in line and not line.lstrip().startswith("#")]
        k = keyed[i % len(keyed)]
        key = lines[k].split(":", 1)[0]
        lines[k] = f"{key}: {value}"
        (root / "study.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return
    path = root / f"{table}.csv"
    rows = _read(path)
    header, body = rows[0], rows[1:]
    col = j % len(header)
    if kind == "cell" and body:
        body[i % len(body)][col] = value
    elif kind == "column_cells" and body:
        for r in body[i % len(body)::7]:
            r[col] = value
    elif kind == "drop_column":
        header, body = header[:col] + header[col + 1:], [r[:col] + r[col + 1:] for r in body]
    elif kind == "duplicate_header":
        header = list(header)
        header[col] = header[i % len(header)]
    elif kind == "drop_row" and body:
        del body[i % len(body)]
    elif kind == "repeat_row" and body:
        body.insert(i % len(body), list(body[(i + j) % len(body)]))
    elif kind == "latin1" and body:   # a file saved in a legacy encoding
        body[i % len(body)][col] = "caf\u00e9"
        # what Latin-1 cannot hold becomes "?", as a legacy "save as" does; escaped bytes stay
        legacy = [["".join(c if ord(c) < 256 or 0xDC80 <= ord(c) <= 0xDCFF else "?" for c in cell) for cell in r]
                  for r in [header, *body]]
        _write(path, legacy, encoding="latin-1")
        return
    _write(path, [header, *body])


def _check(base: Path, changes: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "study"
        shutil.copytree(base, root)
        for change in changes:
            apply(root, change)
        before = {p.name: p.read_bytes() for p in root.iterdir()}
        code, out, err = _validate(root)      # a bug raises here: the test fails with its traceback
        assert code in (0, 2), (code, out, err)
        assert "Traceback" not in out + err
        if code == 2:   # one line, or a configuration error listing its key problems one per line
            assert err.startswith("error: "), err
            assert all(line.startswith("  - ") for line in err.splitlines()[1:]), err
        assert {p.name: p.read_bytes() for p in root.iterdir()} == before


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(changes=st.lists(mutation(), min_size=1, max_size=3))
def test_validate_never_crashes_nor_writes(base_study, changes):
    _check(base_study, changes)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(changes=st.lists(mutation(), min_size=1, max_size=6))
def test_validate_never_crashes_nor_writes_many(base_study, changes):
    _check(base_study, changes)
