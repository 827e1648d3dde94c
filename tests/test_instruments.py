"""Scoring: hand-computed cases for every instrument (reverse items, prorating, missing codes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fidelitymed.errors import StudyDataError
from fidelitymed.instruments import (item_ranges, score_ace, score_fidelity, score_hope, score_interviews,
                                     score_mcas, score_pgi, score_qoli20, score_rprs)
from fidelitymed.instruments.codebook import allowed_missing, fidelity_items, load_codebook
from fidelitymed.study.config import (AceScoring, FidelityScoring, HopeScoring, McasScoring, PgiScoring,
                                      Qoli20Scoring, RprsScoring, default_config)

NA = np.nan
CB = load_codebook()


def rows(items, *value_rows):
    return pd.DataFrame([dict(zip(items, r)) for r in value_rows], columns=items, dtype=float)


def test_allowed_missing_is_floor_of_share():
    assert [allowed_missing(0.2, k) for k in (20, 24, 17, 4, 3, 5, 8)] == [4, 4, 3, 0, 0, 1, 1]


# ------------------------------------------------------------------------------------- RPRS
RPRS = CB["rprs"]["items"]


def test_rprs_total_indices_and_prorating():
    full4 = [4] * 24
    full1 = [1] * 24
    mixed = [3] * 20 + [NA] * 4            # 4 of 24 missing (16.7%): prorated, mean 3
    too_many = [3] * 19 + [NA] * 5         # 5 missing (20.8%) > 20%
    split = [2] * 16 + [4] * 8             # strategies mean 2, core mean 4, overall mean (32+32)/24
    out = score_rprs(rows(RPRS, full4, full1, mixed, too_many, split))
    np.testing.assert_allclose(out["rprs_total"], [100, 0, 200 / 3, NA, (64 / 24 - 1) / 3 * 100])
    # core relationship = items 17..24 (8 items: 1 may be missing); mixed has 4 missing there -> missing
    np.testing.assert_allclose(out["rprs_core_relationship"], [100, 0, NA, NA, 100])
    np.testing.assert_allclose(out["rprs_recovery_promoting_strategies"], [100, 0, 200 / 3, 200 / 3, 100 / 3])


def test_rprs_percent_of_max_and_reverse():
    s = RprsScoring(metric="percent_of_max")
    out = score_rprs(rows(RPRS, [3] * 24), s)
    assert out["rprs_total"].iloc[0] == pytest.approx(75.0)
    s = RprsScoring(reverse=["rprs_1", "rprs_2"])
    out = score_rprs(rows(RPRS, [1, 1] + [4] * 22), s)  # reversed 1 -> 4
    assert out["rprs_total"].iloc[0] == pytest.approx(100.0)


def test_rprs_rejects_out_of_scale_values():
    with pytest.raises(StudyDataError) as info:
        score_rprs(rows(RPRS, [5] + [4] * 23, [4] * 23 + [2.5]))
    cells = {(i.row, i.column) for i in info.value.issues}
    assert cells == {(2, "rprs_1"), (3, "rprs_24")}


# ------------------------------------------------------------------------------------ QOLI-20
QOLI = CB["qoli20"]["items"]


def test_qoli20_sum_prorating_missing_codes_and_subscales():
    all5 = [5] * 20
    coded = [6] * 16 + [8, 9, NA, 8]        # 8/9 are missing codes: 4 missing -> 6 x 20
    too_many = [6] * 15 + [8, 9, NA, 8, 9]  # 5 missing -> missing
    fam = [1, 2, 3, 4, 2, 4, 6] + [7] * 13  # living mean 2.5; family (5,6,7) = 2,4,6 -> 4
    out = score_qoli20(rows(QOLI, all5, coded, too_many, fam))
    np.testing.assert_allclose(out["qoli20_total"], [100, 120, NA, 1 + 2 + 3 + 4 + 2 + 4 + 6 + 7 * 13])
    np.testing.assert_allclose(out["qoli20_living_situation"], [5, 6, 6, 2.5])
    np.testing.assert_allclose(out["qoli20_family"], [5, 6, 6, 4])
    # safety = items 17-20: 4 items, 20% of 4 = 0 may be missing
    np.testing.assert_allclose(out["qoli20_safety"], [5, NA, NA, 7])


def test_qoli20_settings_total_mean_and_subscale_sum():
    s = Qoli20Scoring(total="mean", subscale_stat="sum")
    out = score_qoli20(rows(QOLI, [2] * 10 + [4] * 10), s)
    assert out["qoli20_total"].iloc[0] == pytest.approx(3.0)
    assert out["qoli20_living_situation"].iloc[0] == pytest.approx(8.0)
    with pytest.raises(StudyDataError):
        score_qoli20(rows(QOLI, [0] + [4] * 19))


# ---------------------------------------------------------------------------------------- PGI
PGI = [f"pgi_rating_{k}" for k in range(1, 6)] + [f"pgi_points_{k}" for k in range(1, 6)]


def test_pgi_index_by_hand():
    #            ratings              points
    full = [5, 10, 0, NA, NA] + [4, 4, 2, NA, NA]       # 100 x (.5 x .4 + 1 x .4 + 0 x .2) = 60
    half = [5, 10, 0, NA, NA] + [2, 2, 1, NA, NA]       # 5 points spent: normalised -> 60
    no_points = [5, 10, NA, NA, NA] + [5, NA, NA, NA, NA]  # area 2 rated without points: unscorable
    empty = [NA] * 10
    zero = [7, NA, NA, NA, NA] + [0, NA, NA, NA, NA]    # no points spent
    five = [2, 4, 6, 8, 10] + [2, 2, 2, 2, 2]           # mean rating 6 -> 60
    out = score_pgi(rows(PGI, full, half, no_points, empty, zero, five))
    np.testing.assert_allclose(out["pgi_index"], [60, 60, NA, NA, NA, 60])
    out = score_pgi(rows(PGI, full, half), PgiScoring(points_rule="exclude"))
    np.testing.assert_allclose(out["pgi_index"], [60, NA])


def test_pgi_rating_max_setting():
    out = score_pgi(rows(PGI, [50, NA, NA, NA, NA] + [10, NA, NA, NA, NA]), PgiScoring(rating_max=100))
    assert out["pgi_index"].iloc[0] == pytest.approx(50)
    with pytest.raises(StudyDataError):
        score_pgi(rows(PGI, [11, NA, NA, NA, NA] + [10, NA, NA, NA, NA]))


# --------------------------------------------------------------------------------------- Hope
HOPE = CB["hope"]["items"]


def hope_row(values: dict[int, float]):
    return [values.get(k, 1) for k in range(1, 13)]


def test_hope_subscales_ignore_fillers():
    # pathways 1,4,6,8 = 1+2+3+4 = 10; agency 2,9,10,12 = 8+7+6+5 = 26; fillers set high
    r = hope_row({1: 1, 4: 2, 6: 3, 8: 4, 2: 8, 9: 7, 10: 6, 12: 5, 3: 8, 5: 8, 7: 8, 11: 8})
    miss = hope_row({1: 1, 4: 2, 6: 3, 8: 4, 2: NA, 9: 7, 10: 6, 12: 5})
    out = score_hope(rows(HOPE, r, miss))
    np.testing.assert_allclose(out["hope_pathways"], [10, 10])
    np.testing.assert_allclose(out["hope_agency"], [26, NA])
    np.testing.assert_allclose(out["hope_total"], [36, NA])
    out = score_hope(rows(HOPE, miss), HopeScoring(max_missing_per_subscale=1))
    assert out["hope_agency"].iloc[0] == pytest.approx((7 + 6 + 5) / 3 * 4)
    assert out["hope_total"].iloc[0] == pytest.approx(10 + 24)


def test_hope_four_point_form():
    r = hope_row({1: 4, 4: 4, 6: 3, 8: 3, 2: 2, 9: 2, 10: 1, 12: 1})
    out = score_hope(rows(HOPE, r), HopeScoring(points=4))
    assert out["hope_total"].iloc[0] == 20
    with pytest.raises(StudyDataError) as info:
        score_hope(rows(HOPE, hope_row({3: 6})), HopeScoring(points=4))  # a filler out of the 4-point range
    assert info.value.issues[0].column == "hope_3"


# --------------------------------------------------------------------------------------- MCAS
MCAS = CB["mcas"]["items"]


def test_mcas_total_and_subscales():
    all3 = [3] * 17
    prorate = [4] * 14 + [NA] * 3       # 3 of 17 may be missing -> 4 x 17 = 68; behav. (4 items) -> missing
    too_many = [4] * 13 + [NA] * 4
    seq = list(range(1, 6)) + [5, 5, 5] + [2] * 5 + [1, 2, 3, 4]
    out = score_mcas(rows(MCAS, all3, prorate, too_many, seq))
    np.testing.assert_allclose(out["mcas_total"], [51, 68, NA, sum(seq)])
    np.testing.assert_allclose(out["mcas_interference_with_functioning"], [15, 20, 20, 15])
    np.testing.assert_allclose(out["mcas_adjustment_to_living"], [9, 12, 12, 15])
    np.testing.assert_allclose(out["mcas_behavioral_problems"], [12, NA, NA, 10])
    rev = score_mcas(rows(MCAS, [1] + [3] * 16), McasScoring(reverse=["mcas_1"]))
    assert rev["mcas_total"].iloc[0] == 5 + 48


# ---------------------------------------------------------------------------------------- ACE
ACE = CB["ace"]["items"]


def test_ace_count_and_missing_rule():
    yes4 = [1, 0, 1, 1, 0, 0, 0, 0, 0, 1]
    miss = [1, 1, NA, 0, 0, 0, 0, 0, 0, 0]
    out = score_ace(rows(ACE, yes4, miss, [NA] * 10))
    np.testing.assert_allclose(out["ace_total"], [4, NA, NA])
    out = score_ace(rows(ACE, yes4, miss, [NA] * 10), AceScoring(missing_rule="count_answered"))
    np.testing.assert_allclose(out["ace_total"], [4, 2, NA])
    with pytest.raises(StudyDataError):
        score_ace(rows(ACE, [2] + [0] * 9))


# ----------------------------------------------------------------------------------- fidelity
DOMAINS = fidelity_items(FidelityScoring().domains)
FID = [c for items in DOMAINS.values() for c in items]


def fid_row(per_domain: dict[str, list[float]], default=3.0):
    values = {}
    for domain, items in DOMAINS.items():
        given = per_domain.get(domain, [default] * len(items))
        values.update(dict(zip(items, given)))
    return [values[c] for c in FID]


def test_fidelity_domain_means_total_and_threshold():
    high = fid_row({d: [4] * len(i) for d, i in DOMAINS.items()} | {"integration": [1, 1, 1]})
    mixed = fid_row({"caseload": [5, 4], "community_contact": [1, 2, 3, NA], "integration": [5, 5, 5]})
    lost = fid_row({"hope_inducing": [NA, NA, NA]})
    out = score_fidelity(rows(FID, high, mixed, lost))
    # 8 included domains x 4 = 32 (integration excluded): exactly at the threshold
    np.testing.assert_allclose(out["fidelity_total"], [32, 4.5 + 2 + 6 * 3, NA])
    np.testing.assert_allclose(out["fidelity_caseload"], [4, 4.5, 3])
    np.testing.assert_allclose(out["fidelity_community_contact"], [4, 2, 3])
    np.testing.assert_allclose(out["fidelity_integration"], [1, 5, 3])
    assert out["fidelity_high"].tolist() == [True, False, pd.NA]
    strict = score_fidelity(rows(FID, mixed), FidelityScoring(item_missing="missing"))
    assert np.isnan(strict["fidelity_community_contact"].iloc[0]) and np.isnan(strict["fidelity_total"].iloc[0])
    prorated = score_fidelity(rows(FID, lost), FidelityScoring(domain_missing="prorate"))
    assert prorated["fidelity_total"].iloc[0] == pytest.approx(3 * 8)   # 7 domains of mean 3, prorated to 8
    nine = score_fidelity(rows(FID, high), FidelityScoring(excluded_domains=[], high_fidelity_threshold=45))
    assert nine["fidelity_total"].iloc[0] == 33 and not nine["fidelity_high"].iloc[0]


# ---------------------------------------------------------------------------------- all at once
def test_score_interviews_matches_single_instruments_and_respects_schedule():
    rng = np.random.default_rng(3)
    ranges = item_ranges()
    n = 40
    frame = pd.DataFrame({c: rng.integers(lo, hi + 1, n).astype(float) for c, (lo, hi, _) in ranges.items()})
    frame[frame.columns] = frame.mask(rng.random(frame.shape) < 0.1)
    frame.insert(0, "client", [f"c{i}" for i in range(n)])
    frame.insert(1, "wave", rng.choice([0, 4.5, 9], n))
    scores = score_interviews(frame)
    assert list(scores.columns[:2]) == ["client", "wave"]
    pd.testing.assert_frame_equal(scores[["mcas_total"]], score_mcas(frame)[["mcas_total"]])
    pd.testing.assert_frame_equal(scores[["hope_total", "hope_agency", "hope_pathways"]], score_hope(frame))
    cfg = default_config()
    scheduled = score_interviews(frame, cfg.scoring, schedule=cfg.schedule)
    at45 = frame["wave"] == 4.5
    assert scheduled.loc[at45, "qoli20_total"].isna().all()
    assert scheduled.loc[~at45, "rprs_total"].isna().all()
    pd.testing.assert_series_equal(scheduled.loc[at45, "rprs_total"], scores.loc[at45, "rprs_total"])


def test_item_matrix_reads_numeric_and_text_columns_alike_and_names_each_bad_cell():
    """Numeric columns are taken as numbers, other columns coerced cell by cell; a bad cell is reported as given."""
    from fidelitymed.instruments.codebook import item_matrix

    frame = pd.DataFrame({"a": [1.0, 2.0, np.nan, 8.0], "b": [1, 2, 3, 4], "c": ["1", "2", None, "3"]})
    block = item_matrix(frame, ["a", "b", "c"], low=1, high=4, missing_codes=[8], reverse=["b"])
    expected = np.array([[1, 4, 1], [2, 3, 2], [np.nan, 2, np.nan], [np.nan, 1, 3]], dtype=float)
    np.testing.assert_array_equal(block, expected)

    bad = pd.DataFrame({"a": [1.0, 6.0, 2.5], "c": ["1", "x", "2"]})
    with pytest.raises(StudyDataError) as info:
        item_matrix(bad, ["a", "c"], low=1, high=4, instrument="demo")
    cells = {(issue.row, issue.column, issue.value) for issue in info.value.issues}
    assert cells == {(3, "a", 6.0), (4, "a", 2.5), (3, "c", "x")}
    assert all(type(issue.value) in (float, str) for issue in info.value.issues)
