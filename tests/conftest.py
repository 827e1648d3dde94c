"""Shared pytest configuration: ``--runslow`` turns on the full statistical simulations."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False,
                     help="run the full (slow) statistical simulations as well")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: full statistical simulation, run with --runslow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="full simulation: run with --runslow (make test-full)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture
def runslow(request: pytest.FixtureRequest) -> bool:
    """True when the full simulations were asked for (light versions run otherwise)."""
    return bool(request.config.getoption("--runslow"))
