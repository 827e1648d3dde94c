"""mediate_many: several Model 4 analyses on the same resamples, checked against one mediate() per model.

The reference is :func:`fidelitymed.mediate` itself, whose bootstrap is checked against R (lm,
lavaan) and statsmodels elsewhere: with the same seed every model must get the same resamples,
so the same draws to rounding in the last bits (its moments come from a wider product).
"""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pandas as pd
import pytest

import fidelitymed as fm
from fidelitymed.errors import ConfigError
from fidelitymed.stats import bootstrap as bs
from fidelitymed.stats.process.model4 import _union_columns


@pytest.fixture(scope="module")
def example() -> pd.DataFrame:
    return fm.read_table(files("fidelitymed") / "data" / "mediation_example.csv")


def _assert_same_result(shared, alone):
    assert shared.n == alone.n and shared.n_boot == alone.n_boot
    assert shared.n_boot_failed == alone.n_boot_failed
    assert shared.seed == alone.seed
    assert shared.notes == alone.notes
    np.testing.assert_allclose(shared.boot_draws.to_numpy(), alone.boot_draws.to_numpy(), rtol=1e-9, atol=1e-12)
    a, b = shared.to_frame(), alone.to_frame()
    pd.testing.assert_frame_equal(a, b, rtol=1e-9, atol=1e-12)


MODELS = [
    dict(x="fidelity", m="alliance", y="qol", covariates=["age", "site"], categorical=["site"]),
    dict(x="fidelity", m="alliance", y="qol_baseline", covariates=["age", "site"], categorical=["site"]),
    dict(x="fidelity", m="alliance", y="qol", covariates=["age", "ace"]),  # other covariates
    dict(x="ace", m="alliance", y="qol", covariates=["age"]),  # another X
    dict(x="fidelity", m=["alliance", "qol_baseline"], y="qol", covariates=["age"], contrast=True),
    dict(x="fidelity", m="alliance", y="employment", covariates=["age"]),  # dichotomous Y: its own bootstrap
]


def test_every_model_gets_the_draws_mediate_gives_it_with_the_same_seed(example):
    shared = fm.mediate_many(example, MODELS, n_boot=1500, seed=20261203, save_boot=True)
    assert [r.y for r in shared] == [spec["y"] for spec in MODELS]
    for spec, result in zip(MODELS, shared):
        alone = fm.mediate(example, **spec, n_boot=1500, seed=20261203, save_boot=True)
        _assert_same_result(result, alone)


def test_models_with_other_complete_cases_are_bootstrapped_on_their_own_rows(example):
    data = example.copy()
    data.loc[data.index[:25], "ace"] = np.nan  # only the models that use ace lose rows
    specs = [dict(x="fidelity", m="alliance", y="qol", covariates=["ace"]),
             dict(x="fidelity", m="alliance", y="qol", covariates=["age"])]
    shared = fm.mediate_many(data, specs, n_boot=1000, seed=5, save_boot=True, ci="bca")
    assert shared[0].n < shared[1].n
    for spec, result in zip(specs, shared):
        _assert_same_result(result, fm.mediate(data, **spec, n_boot=1000, seed=5, save_boot=True, ci="bca"))


def test_singular_resamples_are_redrawn_per_model_as_mediate_redraws_them(example):
    data = example.copy()
    rare = np.zeros(len(data))
    rare[[3, 50, 111]] = 1.0  # a dummy of three cases: many resamples leave it constant
    data["rare"] = rare
    specs = [dict(x="fidelity", m="alliance", y="qol", covariates=["rare"]),
             dict(x="fidelity", m="alliance", y="qol", covariates=["age"])]
    shared = fm.mediate_many(data, specs, n_boot=1000, seed=11, save_boot=True)
    assert shared[0].n_boot_failed > 0 and shared[1].n_boot_failed == 0
    for spec, result in zip(specs, shared):
        _assert_same_result(result, fm.mediate(data, **spec, n_boot=1000, seed=11, save_boot=True))


@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_shared_draws_are_bit_identical_across_thread_counts(example, monkeypatch, threads):
    monkeypatch.setenv("FIDELITYMED_THREADS", "1")
    ref = fm.mediate_many(example, MODELS[:4], n_boot=2500, seed=3, save_boot=True)
    monkeypatch.setenv("FIDELITYMED_THREADS", threads)
    got = fm.mediate_many(example, MODELS[:4], n_boot=2500, seed=3, save_boot=True)
    for r, g in zip(ref, got):
        assert np.array_equal(r.boot_draws.to_numpy(), g.boot_draws.to_numpy())


def test_the_union_holds_each_shared_column_once():
    rng = np.random.default_rng(0)
    ones = np.ones((40, 1))
    c, x, y1, y2 = (rng.normal(size=(40, 1)) for _ in range(4))
    union, columns = _union_columns([np.hstack([ones, c, x, y1]), np.hstack([ones, c, x, y2]),
                                     np.hstack([ones, x, y2])])
    assert union.shape == (40, 5)
    assert [list(cols) for cols in columns] == [[0, 1, 2, 3], [0, 1, 2, 4], [0, 2, 4]]
    # a column that differs in the last bit is not shared
    nudged = np.nextafter(c, np.inf)
    union, _ = _union_columns([np.hstack([ones, c]), np.hstack([ones, nudged])])
    assert union.shape == (40, 3)


def test_shared_bootstrap_of_one_model_is_run_bootstrap(example):
    rng = np.random.default_rng(4)
    Z = np.column_stack([np.ones(200), rng.normal(size=(200, 3))])

    def statistic(packed, index):
        return np.column_stack([packed[index[1, 2]], packed[index[3, 3]]]), np.ones(packed.shape[1], bool)

    alone = bs.run_bootstrap(Z[:, [0, 2, 1, 3]], statistic, 1200, 9, threads=1)
    (shared,) = bs.start_shared_bootstrap(Z, [([0, 2, 1, 3], statistic)], 1200, 9, threads=1).results()
    np.testing.assert_allclose(shared.draws, alone.draws, rtol=1e-12)
    with pytest.raises(ValueError, match="single model"):
        bs.start_shared_bootstrap(Z, [([0, 1], statistic), ([0, 2], statistic)], 10, 1, return_indices=True)


def test_shared_bootstrap_of_several_models_is_the_same_whatever_the_chunk():
    """Several models take one RNG block per chunk by default (_SHARED_CHUNK_ELEMENTS); the draws
    are those of any other chunking, to the bit."""
    rng = np.random.default_rng(5)
    Z = np.column_stack([np.ones(150), rng.normal(size=(150, 4))])

    def statistic(packed, index):
        return np.column_stack([packed[index[1, 2]], packed[index[2, 3]]]), np.ones(packed.shape[1], bool)

    models = [([0, 1, 2, 3], statistic), ([0, 1, 2, 4], statistic), ([0, 2, 3, 4], statistic)]
    default = bs.start_shared_bootstrap(Z, models, 2300, 7, threads=1).results()
    for chunk in (500, 1000, 5000):
        other = bs.start_shared_bootstrap(Z, models, 2300, 7, threads=1, chunk_size=chunk).results()
        for a, b in zip(default, other, strict=True):
            np.testing.assert_array_equal(a.draws, b.draws)


def test_a_model_that_is_not_a_mapping_of_x_m_y_is_refused(example):
    with pytest.raises(ConfigError, match="keys x, m, y"):
        fm.mediate_many(example, [dict(x="fidelity", m="alliance")], n_boot=100, seed=1)
    with pytest.raises(ConfigError, match="keys x, m, y"):
        fm.mediate_many(example, [dict(x="fidelity", m="alliance", y="qol", hc=3)], n_boot=100, seed=1)
    with pytest.raises(ConfigError, match="keys x, m, y"):
        fm.mediate_many(example, ["fidelity alliance qol"], n_boot=100, seed=1)
