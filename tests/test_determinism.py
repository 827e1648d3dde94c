"""One seed, one results.json: under 1, 2 and 4 BLAS threads and on serial and process backends.

Each run is a fresh interpreter with ``OPENBLAS_NUM_THREADS`` set before numpy loads its BLAS,
as a user's machine would be. The files must be equal byte for byte except
``manifest.executor`` (which records where the run happened). The Dask backend is compared
with serial in tests/test_pipeline.py::test_backends_identical (same settings).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import json, sys
from fidelitymed.blas import blas_threads
from fidelitymed.pipeline import run_study
from fidelitymed.simulate import demo_study_path

backend, workers, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print(json.dumps(blas_threads()))
run_study(demo_study_path(), out=out, imputations=2, n_boot=50, seed=11, report=False, progress=False,
          executor={"backend": backend, "workers": workers})
"""

RUNS = [("serial", 1, "1"), ("serial", 1, "2"), ("serial", 1, "4"), ("processes", 2, "4")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[tuple[str, int, str], tuple[dict, bytes]]:
    base = tmp_path_factory.mktemp("determinism")
    procs = {}
    for backend, workers, threads in RUNS:
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        env["OPENBLAS_NUM_THREADS"] = threads
        out = base / f"{backend}-{workers}-{threads}"
        procs[(backend, workers, threads)] = (out, subprocess.Popen(
            [sys.executable, "-c", SCRIPT, backend, str(workers), str(out)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    done = {}
    for key, (out, proc) in procs.items():
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-2000:]
        done[key] = (json.loads(stdout.splitlines()[0]), (Path(out) / "results.json").read_bytes())
    return done


def _without_executor(raw: bytes) -> str:
    d = json.loads(raw)
    assert "executor" in d["manifest"]
    d["manifest"]["executor"] = None
    return json.dumps(d, indent=2)


def test_blas_thread_setting_took_effect(runs):
    # numpy's OpenBLAS starts with the requested threads (capped at the core count by OpenBLAS),
    # so the runs below really differ in their BLAS setting.
    numpy_blas = {key: min(threads.values()) for key, (threads, _) in runs.items()}
    assert numpy_blas[("serial", 1, "1")] == 1
    assert numpy_blas[("serial", 1, "2")] == min(2, os.cpu_count() or 1)


def test_results_json_identical_for_any_blas_threads_and_backend(runs):
    serial = [runs[key][1] for key in RUNS if key[0] == "serial"]
    # same executor: the very same bytes
    assert all(raw == serial[0] for raw in serial[1:])
    reference = _without_executor(serial[0])
    for key in RUNS:
        assert _without_executor(runs[key][1]) == reference, f"{key} differs from {RUNS[0]}"
