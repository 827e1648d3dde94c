"""fidelitymed.stats.distributions against scipy.stats: the same numbers, to the bit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from fidelitymed.stats import distributions as D

X = np.array([-np.inf, -40.0, -3.2, -1.0, -1e-12, -0.0, 0.0, 1e-300, 0.3, 1.96, 7.5, 60.0, 1e6, np.inf, np.nan])
Q = np.array([-0.1, 0.0, 1e-300, 1e-12, 0.001, 0.025, 0.5, 0.8, 0.975, 1 - 1e-12, 1.0, 1.5, np.nan])
DF = np.array([0.0, -1.0, 0.5, 1.0, 2.7, 12.0, 310.0, 1e7, np.inf, np.nan])


def same(ours, theirs) -> None:
    assert np.shape(ours) == np.shape(theirs)
    assert type(ours) is type(theirs) or (np.ndim(ours) == 0 and isinstance(ours, np.floating))
    np.testing.assert_array_equal(ours, theirs)            # NaN where scipy has NaN, else the same bits
    assert np.array_equal(np.signbit(ours), np.signbit(theirs))


@pytest.mark.parametrize(("ours", "theirs", "grid"), [
    (D.t_sf, stats.t.sf, X), (D.t_ppf, stats.t.ppf, Q),
    (D.chi2_sf, stats.chi2.sf, X),
])
def test_one_shape_functions_equal_scipy_stats(ours, theirs, grid):
    g, d = np.meshgrid(grid, DF)
    with np.errstate(all="ignore"):
        same(ours(g, d), theirs(g, d))
        for value in grid:                                   # scalars: NumPy scalars, as scipy.stats
            for df in (1.0, 12.0, 310.0):
                same(ours(value, df), theirs(value, df))


@pytest.mark.parametrize(("ours", "theirs", "grid"), [
    (D.norm_sf, stats.norm.sf, X), (D.norm_cdf, stats.norm.cdf, X), (D.norm_ppf, stats.norm.ppf, Q),
])
def test_normal_functions_equal_scipy_stats(ours, theirs, grid):
    same(ours(grid), theirs(grid))
    for value in grid:
        same(ours(value), theirs(value))


@pytest.mark.parametrize(("ours", "theirs", "grid"), [(D.f_sf, stats.f.sf, X), (D.f_isf, stats.f.isf, Q)])
def test_f_functions_equal_scipy_stats(ours, theirs, grid):
    g, d1, d2 = np.meshgrid(grid, [0.0, 1.0, 3.0, 24.0], [-2.0, 1.0, 12.5, 300.0, np.inf], indexing="ij")
    with np.errstate(all="ignore"):
        same(ours(g, d1, d2), theirs(g, d1, d2))
        same(ours(0.05, 3, 120), theirs(0.05, 3, 120))


def test_the_analysis_modules_do_not_import_scipy_stats():
    """The point of the module: a run's process (and a pool's fork server) never loads scipy.stats."""
    import subprocess
    import sys

    # what a study run loads (the power analysis, its own command, keeps scipy.stats' beta and ncf)
    code = ("import sys, fidelitymed._preload, fidelitymed.pipeline, fidelitymed.report.html, fidelitymed.cli, "
            "fidelitymed.descriptives, fidelitymed.study_boot_mi, fidelitymed.stats.domains, "
            "fidelitymed.stats.mi_mediation, fidelitymed.stats.nested, fidelitymed.stats.regression, "
            "fidelitymed.stats.multilevel.coverage; print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
