"""Exposure: interpolation and window means against a plain day-by-day computation; the rules."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fidelitymed.exposure import collapse_same_day, daily_series, exposure_name, fidelity_exposure

D = pd.Timestamp


def plain_value(day: dt.date, points: list[tuple[dt.date, float]]) -> float:
    """Fidelity on one day, written out by hand: nearest value outside, straight line between."""
    points = sorted(points)
    if day <= points[0][0]:
        return points[0][1]
    if day >= points[-1][0]:
        return points[-1][1]
    for (d0, v0), (d1, v1) in zip(points, points[1:]):
        if d0 <= day <= d1:
            return v0 + (v1 - v0) * (day - d0).days / (d1 - d0).days
    raise AssertionError


def plain_window(interview: dt.date, n: int, points, *, end="before") -> tuple[float, list[float]]:
    last = interview - dt.timedelta(days=1) if end == "before" else interview
    values = [plain_value(last - dt.timedelta(days=k), points) for k in range(n)]
    return sum(values) / n, values


def scored(rows):
    return pd.DataFrame(rows, columns=["team", "date", "fidelity_total"]).assign(date=lambda f: pd.to_datetime(f["date"]))


ASSESS = scored([("A", "2015-01-01", 20.0), ("A", "2015-07-01", 26.0), ("A", "2016-01-01", 30.0),
                 ("B", "2015-02-15", 18.0), ("B", "2015-08-20", 22.5)])


def test_daily_series_matches_hand_interpolation():
    daily = daily_series(ASSESS)
    a = daily[daily["team"] == "A"].set_index("date")["fidelity_total"]
    assert a.index[0] == D("2015-01-01") and a.index[-1] == D("2016-01-01") and len(a) == 366
    pts = [(d.date(), v) for d, v in zip(ASSESS["date"][:3], ASSESS["fidelity_total"][:3])]
    for day in ["2015-01-01", "2015-03-15", "2015-07-01", "2015-10-31", "2016-01-01"]:
        assert a[D(day)] == pytest.approx(plain_value(D(day).date(), pts))
    assert a[D("2015-07-01")] == 26.0


@pytest.mark.parametrize("end", ["before", "on"])
def test_window_means_match_day_by_day(end):
    visits = pd.DataFrame({"team": ["A", "A", "A", "B", "B"],
                           "date": pd.to_datetime(["2015-04-10", "2015-12-31", "2016-06-01", "2015-03-01",
                                                   "2015-09-30"])})
    out = fidelity_exposure(ASSESS, visits, windows=[1, 90, 180, 270], window_end=end)
    for i, row in visits.iterrows():
        pts = [(d.date(), v) for t, d, v in ASSESS.itertuples(index=False) if t == row["team"]]
        for n in (1, 90, 180, 270):
            expected, _ = plain_window(row["date"].date(), n, pts, end=end)
            assert out.loc[i, f"fidelity_{n}d"] == pytest.approx(expected, rel=1e-12)


def test_window_end_convention_on_an_assessment_day():
    visits = pd.DataFrame({"team": ["A"], "date": [D("2015-07-01")]})
    before = fidelity_exposure(ASSESS, visits, windows=[1], window_end="before")
    on = fidelity_exposure(ASSESS, visits, windows=[1], window_end="on")
    assert on["fidelity_1d"].iloc[0] == 26.0                          # the assessment itself
    assert before["fidelity_1d"].iloc[0] == pytest.approx(20 + 6 * 180 / 181)  # the day before


def test_outside_span_carry_flags_and_exclude():
    visits = pd.DataFrame({"team": ["A", "A", "B", "A"],
                           "date": [D("2015-03-01"), D("2015-09-01"), D("2016-03-01"), pd.NaT]})
    carry = fidelity_exposure(ASSESS, visits, windows=[90])
    # 2015-03-01: window 2014-12-01..2015-02-28 -> 31 days before the first assessment (2015-01-01)
    assert carry["days_before_first_90d"].tolist()[:3] == [31, 0, 0]
    # team B dropped out after 2015-08-20: window 2015-12-02..2016-02-29 is entirely after its last assessment
    assert carry["days_after_last_90d"].tolist()[:3] == [0, 0, 90]
    assert carry["carried_90d"].tolist() == [True, False, True, pd.NA]
    assert carry["fidelity_90d"].iloc[2] == 22.5                       # the last score, carried
    assert pd.isna(carry["fidelity_90d"].iloc[3])                      # no interview date
    excl = fidelity_exposure(ASSESS, visits, windows=[90], outside="exclude")
    assert excl["fidelity_90d"].isna().tolist() == [True, False, True, True]
    assert excl["fidelity_90d"].iloc[1] == carry["fidelity_90d"].iloc[1]


def test_two_assessments_on_one_day_are_averaged():
    dup = scored([("A", "2015-01-01", 20.0), ("A", "2015-01-01", 24.0), ("A", "2015-07-01", 26.0)])
    assert collapse_same_day(dup)["fidelity_total"].tolist() == [22.0, 26.0]
    visits = pd.DataFrame({"team": ["A"], "date": [D("2015-01-02")]})
    assert fidelity_exposure(dup, visits, windows=[1])["fidelity_1d"].iloc[0] == 22.0


def test_domain_level_exposure_and_missing_domain_points():
    frame = ASSESS.assign(fidelity_caseload=[2.0, np.nan, 4.0, 3.0, 3.0])
    visits = pd.DataFrame({"team": ["A", "C"], "date": [D("2015-10-01"), D("2015-10-01")]})
    out = fidelity_exposure(frame, visits, windows=[30])
    pts = [(D("2015-01-01").date(), 2.0), (D("2016-01-01").date(), 4.0)]   # the NaN assessment is skipped
    assert out["fidelity_caseload_30d"].iloc[0] == pytest.approx(plain_window(D("2015-10-01").date(), 30, pts)[0])
    assert out.iloc[1].drop(labels=["carried_30d"]).isna().all()        # team C has no assessment
    assert exposure_name("fidelity_total", 180) == "fidelity_180d"


# ------------------------------------------------------------------------------ properties
dates = st.dates(min_value=dt.date(2010, 1, 1), max_value=dt.date(2013, 12, 31))


@st.composite
def teams_and_visits(draw):
    k = draw(st.integers(1, 5))
    days = sorted(draw(st.lists(dates, min_size=k, max_size=k, unique=True)))
    values = draw(st.lists(st.floats(8, 40), min_size=k, max_size=k))
    visits = draw(st.lists(st.dates(min_value=dt.date(2009, 6, 1), max_value=dt.date(2014, 6, 1)),
                           min_size=1, max_size=6))
    window = draw(st.integers(1, 300))
    return list(zip(days, values)), visits, window


@settings(max_examples=60, deadline=None)
@given(teams_and_visits(), st.sampled_from(["before", "on"]))
def test_window_mean_lies_within_the_window_values(data, end):
    points, visit_days, window = data
    frame = scored([("T", d.isoformat(), v) for d, v in points])
    visits = pd.DataFrame({"team": "T", "date": pd.to_datetime([d.isoformat() for d in visit_days])})
    out = fidelity_exposure(frame, visits, windows=[window], window_end=end)
    for i, day in enumerate(visit_days):
        mean, values = plain_window(day, window, points, end=end)
        got = out[f"fidelity_{window}d"].iloc[i]
        assert min(values) - 1e-9 <= got <= max(values) + 1e-9
        assert got == pytest.approx(mean, rel=1e-9, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(teams_and_visits(), st.integers(-2000, 2000))
def test_shifting_all_dates_together_changes_nothing(data, shift):
    points, visit_days, window = data
    delta = dt.timedelta(days=shift)
    frame = scored([("T", d.isoformat(), v) for d, v in points])
    moved = scored([("T", (d + delta).isoformat(), v) for d, v in points])
    visits = pd.DataFrame({"team": "T", "date": pd.to_datetime([d.isoformat() for d in visit_days])})
    visits_moved = visits.assign(date=visits["date"] + delta)
    a = fidelity_exposure(frame, visits, windows=[window, 90])
    b = fidelity_exposure(moved, visits_moved, windows=[window, 90])
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)


# ------------------------------------------------------------------------------ the figure
def test_trajectory_figure_draws_points_line_and_threshold():
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    from fidelitymed.report.trajectories import plot_trajectories

    fig = plot_trajectories(ASSESS, ncols=2)
    assert isinstance(fig, Figure)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["team A", "team B"]
    line, dots, ref = visible[0].get_lines()
    assert len(line.get_xdata()) == 366                               # one value per day, first to last
    np.testing.assert_allclose(dots.get_ydata(), [20, 26, 30])
    assert [mdates.num2date(x).date().isoformat() for x in mdates.date2num(dots.get_xdata())] == \
        ["2015-01-01", "2015-07-01", "2016-01-01"]
    assert ref.get_linestyle() == "--" and list(ref.get_ydata()) == [32, 32]
    fig.canvas.draw()  # renders headless (Agg)


# ------------------------------------------------------------------ fidelity domain exposure
@pytest.mark.parametrize("end", ["before", "on"])
def test_every_domain_exposure_matches_a_plain_day_by_day_computation(end):
    from fidelitymed.exposure import domain_exposure
    from fidelitymed.instruments import score_fidelity
    from fidelitymed.instruments.declaration import builtin_declaration

    rng = np.random.default_rng(14)
    decl = builtin_declaration("fidelity")
    dates = {"A": ["2015-01-01", "2015-06-20", "2016-01-10", "2016-07-01"], "B": ["2015-03-01", "2015-11-15"]}
    rows = [(team, d) for team, ds in dates.items() for d in ds]
    items = pd.DataFrame(rng.integers(2, 11, size=(len(rows), len(decl.items))) / 2.0, columns=decl.items)
    items.loc[1, [c for c in decl.domains["caseload"]]] = np.nan     # caseload not rated at A's 2nd assessment
    scores = score_fidelity(items)
    frame = pd.concat([pd.DataFrame(rows, columns=["team", "date"]).assign(date=lambda f: pd.to_datetime(f["date"])),
                       scores], axis=1)
    visits = pd.DataFrame({"team": ["A", "A", "A", "B", "B"],
                           "date": pd.to_datetime(["2015-02-01", "2015-12-24", "2016-09-30", "2015-04-01",
                                                   "2016-02-29"])})
    windows = [30, 90, 180]
    out = domain_exposure(frame, visits, decl.domains, windows=windows, window_end=end)
    assert list(out.columns) == [f"fidelity_{d}_{w}d" for w in windows for d in decl.domains]
    for i, visit in visits.iterrows():
        for domain in decl.domains:
            pts = [(d.date(), v) for t, d, v in frame[["team", "date", f"fidelity_{domain}"]].itertuples(index=False)
                   if t == visit["team"] and not np.isnan(v)]
            for n in windows:
                expected, _ = plain_window(visit["date"].date(), n, pts, end=end)
                assert out.loc[i, f"fidelity_{domain}_{n}d"] == pytest.approx(expected, rel=1e-12)
