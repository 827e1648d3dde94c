"""The report's figures drawn on an executor: the same bytes as in this process, the study's labels.

Figures are :class:`~fidelitymed.report.figures.FigureSpec` objects (picklable builders) that
:func:`~fidelitymed.report.figures.render_figures` turns into PNG, SVG and inline PNG bytes, one
raster draw per figure, on the run's :class:`fidelitymed.parallel.Executor`. The pipeline keeps
its executor open until the report is rendered and closes it afterwards, on an error too.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import pickle
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image
from report_fixture import make_assessments, make_results

from fidelitymed import parallel
from fidelitymed.report import figures as F
from fidelitymed.report.html import render_report
from fidelitymed.study.config import StudyConfig

DECLARED = "Hope-Declared"


def _with_sections(results: dict) -> dict:
    """The fixture with multilevel records (a pair per primary-window model) and a domain analysis."""
    from test_domains import DOMAINS, _study

    from fidelitymed.stats.domains import domain_analysis

    out = copy.deepcopy(results)
    primary = min(r["window_days"] for r in out["mediation"])
    out["multilevel"] = [
        {"outcome": r["outcome"], "outcome_month": r["outcome_month"], "window_days": r["window_days"],
         "primary_window": True, "groups": ["team", "case_manager"], "notes": [],
         "paths": {"a_between": {**r["paths"]["a"], "df": 12.5}, "b_within": r["paths"]["b"],
                   "b_between": r["paths"]["b"]},
         "indirect": {"indirect_between": r["indirect"]}}
        for r in out["mediation"] if r["window_days"] == primary]
    frame, config = _study(n=80)
    out["domains"] = domain_analysis([frame], config, DOMAINS, seed=3).to_dict()
    return json.loads(json.dumps(out))


@pytest.fixture(scope="module")
def results() -> dict:
    return _with_sections(make_results())


@pytest.fixture(scope="module")
def executor():
    with parallel.Executor("processes", workers=2) as ex:
        yield ex


@pytest.fixture(scope="module")
def reports(tmp_path_factory, results, executor):
    from fidelitymed.study.config import StudyConfig

    serial = tmp_path_factory.mktemp("serial")
    workers = tmp_path_factory.mktemp("workers")
    render_report(results, serial, fidelity_assessments=make_assessments(), config=StudyConfig())
    render_report(results, workers, fidelity_assessments=make_assessments(), config=StudyConfig(), executor=executor)
    return serial, workers


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _inline_images(html: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


# --------------------------------------------------------------------------- serial = workers

def test_worker_rendered_report_is_byte_identical_to_serial(reports):
    serial, workers = map(_files, reports)
    assert serial.keys() == workers.keys()
    differ = [name for name in serial if serial[name] != workers[name]]
    assert not differ
    # both hold the catalog's figures, the multilevel figure's files and the heat map's inline image
    assert {"figures/figure1_model.png", "figures/multilevel_paths.png", "figures/multilevel_paths.svg"} <= set(serial)
    html = serial["report.html"].decode("utf-8")
    n_catalog = len([n for n in serial if n.startswith("figures/figure") and n.endswith(".png")])
    images = _inline_images(html)
    assert len(images) == n_catalog + 2                     # + the multilevel figure and the heat map
    assert 'id="fidelity-domains"' in html and 'id="multilevel"' in html


def test_figures_drawn_before_the_results_give_the_same_report(tmp_path, results, reports, executor):
    from fidelitymed.report.html import draw_study_figures
    from fidelitymed.study.config import StudyConfig

    drawn = draw_study_figures(StudyConfig(), make_assessments())
    assert set(drawn) == {"model", "fidelity_trajectories"}
    out = tmp_path / "drawn"
    render_report(results, out, fidelity_assessments=make_assessments(), config=StudyConfig(), executor=executor,
                  drawn=drawn)
    serial = _files(reports[0])
    assert _files(out) == serial
    assert serial["figures/figure1_model.png"] == drawn["model"].png
    # what a study run draws before its first map: the trajectories alone; the rest are drawn after
    some = draw_study_figures(StudyConfig(), make_assessments(), names=("fidelity_trajectories",))
    assert set(some) == {"fidelity_trajectories"}
    out = tmp_path / "some"
    render_report(results, out, fidelity_assessments=make_assessments(), config=StudyConfig(), executor=executor,
                  drawn=some)
    assert _files(out) == serial


def test_drawn_figures_are_not_drawn_again(results, monkeypatch):
    assessments = make_assessments()
    specs = F.figure_specs(results, assessments=assessments)
    drawn = F.render_builders(F.study_figure_builders(assessments=assessments))
    names = [s.name for s in specs]
    assert {"model", "fidelity_trajectories"} <= set(names) and len(set(names)) == len(names)
    redrawn = []
    real = F.render_figure
    monkeypatch.setattr(F, "render_figure", lambda spec: redrawn.append(spec.name) or real(spec))
    out = F.render_figures(specs, {}, drawn=drawn)
    assert [r.key for r in out] == [s.key for s in specs]
    assert sorted(redrawn) == sorted(set(names) - set(drawn))
    by_name = {s.name: r for s, r in zip(specs, out)}
    assert by_name["fidelity_trajectories"].png == drawn["fidelity_trajectories"].png
    assert by_name["fidelity_trajectories"].key.startswith("figureS") and by_name["model"].key == "figure1_model"


def test_inline_images_are_the_print_raster_at_screen_resolution(reports):
    serial, _ = reports
    inline = {}
    for data in _inline_images((serial / "report.html").read_text(encoding="utf-8")):
        image = Image.open(io.BytesIO(data))
        inline[image.size] = (image, len(data))
    for name in ("figure1_model", "multilevel_paths"):
        png = Image.open(serial / "figures" / f"{name}.png")
        assert png.info["dpi"] == pytest.approx((F.PRINT_DPI, F.PRINT_DPI), abs=0.01)
        small, n_bytes = inline[(round(png.width * F.SCREEN_DPI / F.PRINT_DPI),
                                 round(png.height * F.SCREEN_DPI / F.PRINT_DPI))]
        assert small.mode == "P" and small.info["dpi"] == pytest.approx((F.SCREEN_DPI, F.SCREEN_DPI), abs=0.01)
        # the print file box-averaged to the inline size: only resampling and palette differ (about
        # 2.6/255 on average; another figure differs by 16)
        reference = np.asarray(png.convert("RGB").resize(small.size, Image.Resampling.BOX), float)
        assert np.abs(np.asarray(small.convert("RGB"), float) - reference).mean() < 5
        # the multilevel section used to inline its 300 dpi file
        assert n_bytes < (serial / "figures" / f"{name}.png").stat().st_size / 3


# --------------------------------------------------------------------------- specs and catalog

def test_figure_catalog_is_the_specs_drawn(results, tmp_path):
    assessments = make_assessments()
    specs = F.figure_specs(results, assessments=assessments)
    catalog = F.figure_catalog(results, assessments=assessments)
    assert [(s.key, s.number, s.title, s.caption, s.alt) for s in specs] == \
           [(f.key, f.number, f.title, f.caption, f.alt) for f in catalog]
    assert list(F.build_figures(results, assessments=assessments)) == [s.key for s in specs]
    assert specs[0].key == "figure1_model" and specs[-1].key.startswith("figureS")
    by_key = {f.key: f for f in catalog}
    sample = [s for s in specs if any(t in s.key for t in ("mediation_9", "forest", "means", "trajectories"))]
    sample.append(specs[-1])
    assert len(sample) >= 5
    for spec in sample:
        shipped = pickle.loads(pickle.dumps(spec))          # what a worker receives
        rendered = F.render_figure(shipped)
        png, svg = F.save_figure(by_key[spec.key].figure, tmp_path / spec.key)
        assert (rendered.png, rendered.svg) == (png.read_bytes(), svg.read_bytes()), spec.key


def test_print_png_holds_the_pixels_savefig_draws():
    fig = F.conceptual_diagram()
    ours = Image.open(io.BytesIO(F.render_figure(F.FigureSpec("m", "", "", "", "", F.conceptual_diagram)).png))
    buf = io.BytesIO()
    with matplotlib.rc_context(F._RC):
        fig.savefig(buf, format="png", dpi=F.PRINT_DPI, metadata={"Software": None})
    theirs = Image.open(buf)
    assert ours.size == theirs.size == (7 * F.PRINT_DPI, round(3.2 * F.PRINT_DPI))
    assert ours.mode == "RGB"                                 # the opaque figure drops its alpha channel
    assert np.array_equal(np.asarray(ours), np.asarray(theirs.convert("RGB")))
    assert ours.text == {}                                    # no software or date chunk


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_print_png_encoder_round_trips_through_pillow(mode):
    """_png writes its own chunks: Pillow checks their CRCs (verify) and reads back every pixel and the dpi."""
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (37, 53, len(mode)), dtype=np.uint8)
    pixels[:10] = 255                                         # white rows, as around a drawing
    data = F._png(Image.fromarray(pixels, mode), F.PRINT_DPI)
    Image.open(io.BytesIO(data)).verify()
    back = Image.open(io.BytesIO(data))
    assert back.mode == mode and np.array_equal(np.asarray(back), pixels)
    assert back.info["dpi"] == pytest.approx((F.PRINT_DPI, F.PRINT_DPI), abs=0.01)
    assert F._png(Image.fromarray(pixels, mode), F.PRINT_DPI) == data


# --------------------------------------------------------------------------- declared labels

@pytest.fixture(scope="module")
def means_spec(results):
    """The outcome-means figure of results whose Table 2 names instruments as the pipeline writes them."""
    coded = copy.deepcopy(results)
    for row in coded["descriptives"]["table2"]:
        row["variable"] = row["variable"].rsplit("_", 1)[0]    # "hope_9m" -> "hope"
    return next(s for s in F.figure_specs(coded) if s.key.endswith("outcome_means"))


def test_a_declared_label_appears_in_worker_rendered_figures(means_spec, executor):
    config = {"instruments": {"hope": {"label": DECLARED}}}
    serial = F.render_figures([means_spec], config)
    # rendered where this process's context variable does not reach: the task enters the labels itself
    workers = F.render_figures([means_spec], config, executor=executor)
    assert workers == serial
    assert f">{DECLARED}</text>".encode() in workers[0].svg and b">THS</text>" not in workers[0].svg
    undeclared = F.render_figures([means_spec], {}, executor=executor)
    assert DECLARED.encode() not in undeclared[0].svg and b">THS</text>" in undeclared[0].svg
    assert undeclared[0].png != workers[0].png and undeclared[0].inline_png != workers[0].inline_png


# --------------------------------------------------------------------------- the pipeline's executor

@pytest.fixture
def render_log(monkeypatch):
    """Executor.close calls and a stand-in for render_report that records the executor's state."""
    import fidelitymed.report.html as report_html

    log: list[tuple] = []
    close = parallel.Executor.close

    def logged_close(self):
        log.append(("close", self))
        close(self)

    def fake_render(results, folder, *, executor=None, **kwargs):
        log.append(("render", executor, executor is not None and executor._pool is not None))
        if fake_render.fail:
            raise RuntimeError("report failed")
        path = Path(folder) / "report.html"
        path.write_text("<html></html>")
        return path

    fake_render.fail = False
    monkeypatch.setattr(parallel.Executor, "close", logged_close)
    monkeypatch.setattr(report_html, "render_report", fake_render)
    return log, fake_render


def test_the_run_renders_on_its_open_executor_and_closes_it_after(tmp_path, render_log):
    from fidelitymed.pipeline import run_study
    from fidelitymed.simulate import demo_study_path

    log, _ = render_log
    result = run_study(demo_study_path(), out=str(tmp_path / "out"), impute=False, n_boot=20, seed=1,
                       executor={"backend": "processes", "workers": 2})
    (_, ex, pool_alive), = [e for e in log if e[0] == "render"]
    assert pool_alive, "the workers were shut down before the report was rendered"
    assert [e[0] for e in log if e[1] is ex] == ["render", "close"]
    assert ex._pool is None and (result.out / "report.html").exists()


def test_a_failing_report_still_closes_the_executor_and_writes_nothing(tmp_path, render_log):
    from fidelitymed.pipeline import run_study
    from fidelitymed.simulate import demo_study_path

    log, fake_render = render_log
    fake_render.fail = True
    with pytest.raises(RuntimeError, match="report failed"):
        run_study(demo_study_path(), out=str(tmp_path / "out"), impute=False, n_boot=20, seed=1,
                  executor={"backend": "processes", "workers": 2})
    (_, ex, pool_alive), = [e for e in log if e[0] == "render"]
    assert pool_alive and [e[0] for e in log if e[1] is ex] == ["render", "close"] and ex._pool is None
    assert not (tmp_path / "out").exists()


def test_a_run_on_processes_draws_the_same_figures_as_a_serial_run(tmp_path):
    """On processes the run draws the study's figures while the fork server starts (pipeline)."""
    from fidelitymed.pipeline import run_study
    from fidelitymed.simulate import demo_study_path

    runs = {}
    for backend in ("serial", "processes"):
        result = run_study(demo_study_path(), out=str(tmp_path / backend), impute=False, n_boot=20, seed=1,
                           executor={"backend": backend, "workers": 2})
        runs[backend] = result
    stage = "imputation + study figures"
    assert stage in runs["processes"].timings and stage not in runs["serial"].timings
    serial, workers = (_files(runs[b].out / "figures") for b in ("serial", "processes"))
    assert {"figure1_model.png", "figure1_model.svg"} <= set(serial)
    assert any("fidelity_trajectories" in name for name in serial)
    assert serial == workers


# --------------------------------------------------------------------------- scheduling

@pytest.mark.parametrize("on_workers", [False, True])
def test_work_given_as_meanwhile_runs_once_before_the_tables(results, tmp_path, executor, on_workers):
    """render_report(meanwhile=...) is how a study run writes results.json while the workers draw."""
    out = tmp_path / "report"
    seen = []
    render_report(results, out, fidelity_assessments=make_assessments(), config=StudyConfig(),
                  executor=executor if on_workers else None,
                  meanwhile=lambda: seen.append(sorted(p.name for p in out.glob("tables.*"))))
    assert seen == [[]]                                   # once, before tables.xlsx / tables.docx
    assert (out / "tables.xlsx").exists() and (out / "report.html").exists()


def test_figures_come_back_in_spec_order_though_the_diagrams_are_drawn_last(results):
    from fidelitymed.report.multilevel import multilevel_figure_spec

    # as the report asks for them: its sections' figures after the catalogue's diagrams
    specs = [*F.figure_specs(results, assessments=make_assessments()), multilevel_figure_spec(results)]
    names = [s.name for s in specs]
    first_diagram = next(i for i, n in enumerate(names) if n.startswith("diagram_"))
    assert any(not n.startswith("diagram_") for n in names[first_diagram:])  # the reordering matters here
    drawn_order = []
    serial = parallel.Executor("serial")
    real_map = serial.map

    def recording_map(func, tasks, **kwargs):
        drawn_order.extend(t.key[1] for t in tasks)
        return real_map(func, tasks, **kwargs)

    serial.map = recording_map
    rendered = F.render_figures(specs, StudyConfig(), executor=serial)
    assert [r.key for r in rendered] == [s.key for s in specs]
    is_diagram = ["_diagram_" in key for key in drawn_order]
    assert is_diagram == sorted(is_diagram)               # every diagram after every other figure
    alone = F.render_figure(next(s for s in specs if s.name == names[-1]))
    assert rendered[-1].png == alone.png
