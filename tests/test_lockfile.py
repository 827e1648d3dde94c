"""The lock files: complete, hashed, consistent with pyproject.toml and with each other.

``make test`` sets ``FIDELITYMED_LOCK=requirements-test.lock``; the suite then also checks that
the environment it runs in has exactly the locked versions (``make test-latest`` does not set
it: that run is on the newest releases).
"""

from __future__ import annotations

import os
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
RUNTIME, TEST = ROOT / "requirements.lock", ROOT / "requirements-test.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def _parse(path: Path) -> dict[str, tuple[str, list[str]]]:
    """``{canonical name: (version, [hashes])}`` of a pip requirements file with hashes."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            assert current not in pins, f"{path.name}: {current} pinned twice"
            pins[current] = (match.group(3), [])
        else:
            assert current is not None and line.startswith("--hash="), f"{path.name}: unexpected line {raw!r}"
        pins[current][1].extend(h for h in re.findall(r"--hash=(sha256:[0-9a-f]{64})", line))
    return pins


@pytest.fixture(scope="module")
def locks():
    if not RUNTIME.exists():
        pytest.skip("no lock files in this tree")
    return _parse(RUNTIME), _parse(TEST)


def _declared(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    if extra:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    return reqs + [Requirement(r) for r in build]


def test_every_pin_is_exact_and_hashed(locks):
    for pins in locks:
        assert pins
        for name, (version, hashes) in pins.items():
            Version(version)                                  # an exact release, not a range
            assert hashes, f"{name}=={version} has no hash"


def test_declared_dependencies_locked_within_their_ranges(locks):
    runtime, test = locks
    for pins, extra in ((runtime, None), (test, "test")):
        for req in _declared(extra):
            name = canonicalize_name(req.name)
            assert name in pins, f"{req} is not locked"
            assert req.specifier.contains(pins[name][0], prereleases=True), f"{name}=={pins[name][0]} outside {req}"


def test_runtime_pins_identical_in_both_locks(locks):
    runtime, test = locks
    assert set(runtime) <= set(test)
    assert {n: runtime[n][0] for n in runtime} == {n: test[n][0] for n in runtime}
    assert {n: sorted(runtime[n][1]) for n in runtime} == {n: sorted(test[n][1]) for n in runtime}


def test_environment_is_the_lock():
    lock = os.environ.get("FIDELITYMED_LOCK")
    if not lock:
        pytest.skip("not installed from the lock (make test sets FIDELITYMED_LOCK)")
    pins = _parse(ROOT / lock)
    wrong = {}
    for name, (version, _) in pins.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed is None or Version(installed) != Version(version):
            wrong[name] = (version, installed)
    assert not wrong, f"installed versions differ from {lock} (locked, installed): {wrong}"
