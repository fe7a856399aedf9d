"""Every figure the package writes shows its data, also in degenerate cases (issue 15 item 4):
drawn patches / points > 0 and data limits that contain the values; and the reports they sit
beside are strict JSON."""
import json

import numpy as np
import pytest
from matplotlib.collections import PathCollection

from lipvae_tf import report

CAPPED = 1.0000216  # the main job: every std at the cap, every radius the same


def _bars(ax):
    """(left, right, height) of every drawn histogram bar with a height > 0, per series."""
    return [[(p.get_x(), p.get_x() + p.get_width(), p.get_height()) for p in container
             if p.get_height() > 0] for container in ax.containers]


@pytest.mark.parametrize("values", [
    np.full(50, CAPPED),  # all equal
    CAPPED + 1e-9 * np.arange(50),  # equal to 1e-9 relative
    np.linspace(0.5, 3.0, 50),  # an ordinary spread
    np.zeros(50),  # all zero (a baseline without a certificate)
], ids=["equal", "nearly_equal", "spread", "zero"])
def test_radius_histogram_shows_every_radius(values):
    radii = {"markov": values, "best": values * 1.0}
    fig = report.radius_histogram_figure(radii, target=None)
    ax = fig.axes[0]
    bars = _bars(ax)
    assert len(bars) == 2
    for series in bars:
        assert series, "no bar drawn"
        assert sum(height for _, _, height in series) == len(values)  # every input counted
        assert min(left for left, _, _ in series) <= values.min()
        assert max(right for _, right, _ in series) >= values.max()
    limits = ax.dataLim
    assert limits.x0 <= values.min() and limits.x1 >= values.max() and limits.y1 > 0
    # identical series (here markov = best) stay distinguishable: each its own hatching
    assert len({container.patches[0].get_hatch() for container in ax.containers}) == 2
    assert not ax.lines  # no target asked for: no target line
    assert "target" not in " ".join(t.get_text() for t in ax.get_legend().get_texts())


def test_equal_radii_above_the_target_are_drawn_right_of_its_line():
    """A newcomer's run: every radius 1.000019 drawn as a bar centred on it, half left of the
    target line at 1, read as a missed target."""
    ax = report.radius_histogram_figure({"best": np.full(1000, 1.000019)}, target=1.0).axes[0]
    series = _bars(ax)[0]
    assert sum(height for _, _, height in series) == 1000
    assert min(left for left, _, _ in series) >= 1.0


def test_no_bar_straddles_the_target_line_when_the_radii_spread():
    """A newcomer's run: with radii from 0.3 to 1.000022 (paper to best), the last of
    linspace(min, max) bins ended at 1.000022, so the bar of the radii above R* = 1 was drawn
    left of the target line."""
    rng = np.random.default_rng(0)
    radii = {"paper": 0.3 + 0.01 * rng.random(200), "best": np.full(200, CAPPED),
             "chi2": np.linspace(0.5, 0.999, 200)}
    ax = report.radius_histogram_figure(radii, target=1.0).axes[0]
    for series, values in zip(_bars(ax), radii.values()):
        assert sum(height for _, _, height in series) == len(values)
        assert all(right <= 1.0 or left >= 1.0 for left, right, _ in series)
    best = _bars(ax)[1]
    assert min(left for left, _, _ in best) >= 1.0 and max(r for _, r, _ in best) >= CAPPED


def test_radius_histogram_draws_the_target_when_one_was_asked_for_and_skips_non_finite():
    values = np.array([1.2, 1.3, np.inf])
    ax = report.radius_histogram_figure({"best": values}, target=1.0).axes[0]
    assert [line.get_xdata()[0] for line in ax.lines] == [1.0]
    assert sum(h for _, _, h in _bars(ax)[0]) == 2
    assert ax.get_legend().get_texts()[0].get_text() == (
        "best (median 1.25, 1.2 to 1.3) (1 not finite, not shown)")
    # a newcomer's run: spread radii (chi2_cap, learned std) had a bare name in the legend,
    # the equal ones "(all N at R)"
    texts = [t.get_text() for t in report.radius_histogram_figure(
        {"chi2_cap": np.linspace(0.5, 0.75, 11), "best": np.full(11, 1.000019)},
        target=1.0).axes[0].get_legend().get_texts()]
    assert texts[:2] == ["chi2_cap (median 0.625, 0.5 to 0.75)", "best (all 11 at 1.000019)"]


def test_reconstructions_draw_every_image():
    rows = {"original": np.random.default_rng(0).random((4, 28, 28, 1)),
            "model": np.full((4, 28, 28, 1), 0.5)}
    fig = report.reconstructions_figure(rows)
    images = [image for ax in fig.axes for image in ax.images]
    assert len(images) == 8
    np.testing.assert_array_equal(images[4].get_array(), np.full((28, 28), 0.5))


def _points(ax) -> np.ndarray:
    offsets = [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]
    return np.concatenate(offsets) if offsets else np.zeros((0, 2))


@pytest.mark.parametrize("certified, margin", [
    (np.array([0.5, 0.7, 1.0]), np.array([0.9, 1.1, 2.0])),
    (np.full(3, CAPPED), np.full(3, 2.0)),  # all equal
    (np.zeros(3), np.array([0.1, 0.2, np.inf])),  # no certificate, one margin never broken
], ids=["spread", "equal", "edges"])
def test_margin_vs_certificate_draws_every_input(certified, margin):
    ax = report.margin_vs_certificate_figure({"a": (certified, margin)}).axes[0]
    points = _points(ax)
    assert len(points) == len(certified)
    assert np.all(np.isfinite(points)) and np.all(points > 0)
    regular = (certified > 0) & np.isfinite(margin)
    for x, y in zip(certified[regular], margin[regular]):
        assert any(np.allclose(point, (x, y)) for point in points)
    limits = ax.dataLim
    assert limits.x0 <= points[:, 0].min() and limits.x1 >= points[:, 0].max()
    assert limits.y0 <= points[:, 1].min() and limits.y1 >= points[:, 1].max()


def test_margin_vs_certificate_labels_its_edges():
    """A newcomer's run (2026-12-04): zero certificates were drawn at a third of the smallest
    radius on the log axis, with nothing on the axes saying that they stand for 0."""
    ax = report.margin_vs_certificate_figure(
        {"a": (np.array([0.0, 1.0, 2.0]), np.array([0.5, np.inf, 3.0]))}).axes[0]
    labels = sorted(t.get_text().strip() for t in ax.texts)
    assert labels == ["x = 0", "y = inf"]
    plain = report.margin_vs_certificate_figure(
        {"a": (np.array([0.5, 1.0]), np.array([0.9, 2.0]))}).axes[0]
    assert len(plain.texts) == 0


def test_margin_vs_certificate_marks_inputs_never_broken():
    """An input the attack never broke has only a lower bound as its margin (the largest radius
    tried): given `upper`, it is drawn as a triangle, counted in the legend, not as a point that
    looks measured (found in a review, 2026-12-04)."""
    certified, margin = np.array([0.5, 0.7, 1.0]), np.array([0.9, 28.0, 2.0])
    upper = np.array([0.95, np.inf, 2.1])
    ax = report.margin_vs_certificate_figure({"a": (certified, margin, upper)}).axes[0]
    markers = {c.get_label(): c for c in ax.collections if isinstance(c, PathCollection)}
    assert set(markers) == {"a", "a: 1 never broken (margin >= the largest radius tried)"}
    np.testing.assert_allclose(markers["a"].get_offsets(), [[0.5, 0.9], [1.0, 2.0]])
    never = markers["a: 1 never broken (margin >= the largest radius tried)"]
    np.testing.assert_allclose(never.get_offsets(), [[0.7, 28.0]])
    assert len(_points(ax)) == 3  # every input drawn once
    with pytest.raises(ValueError, match=r"points\['a'\] must hold arrays of one shape"):
        report.margin_vs_certificate_figure({"a": (certified, margin, upper[:2])})
    with pytest.raises(ValueError, match=r"points\['a'\] must be \(certified, margin\)"):
        report.margin_vs_certificate_figure({"a": (certified,)})


def test_probability_vs_norm_and_pareto_draw_their_values():
    norms, probability = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 1.0])  # flat curve
    ax = report.probability_vs_norm_figure({"a": (norms, probability)}, p=0.5, r=8.0).axes[0]
    curve = [line for line in ax.lines if line.get_label() == "a"][0]
    np.testing.assert_array_equal(curve.get_xdata(), norms)
    np.testing.assert_array_equal(curve.get_ydata(), probability)
    assert ax.dataLim.x1 >= 2.0 and ax.get_ylim()[0] < 1.0 < ax.get_ylim()[1]
    ax = report.pareto_figure({"a": (1.5, -80.0), "b": (1.5, -80.0)}).axes[0]
    points = _points(ax)
    assert len(points) == 2 and np.allclose(points, [[1.5, -80.0]] * 2)
    assert ax.dataLim.x0 <= 1.5 <= ax.dataLim.x1 and ax.dataLim.y0 <= -80 <= ax.dataLim.y1


@pytest.mark.parametrize("as_array", [False, True])
def test_learning_curves_draw_every_epoch_and_mark_the_best(as_array):
    curves = {"a": ([10.0, 20.0, 25.0, 24.0], 3), "b": ([5.0, 5.0], None)}
    # a NumPy curve (e.g. a Keras History's values through np.asarray) draws the same figure:
    # its slice + [best value] once added elementwise and set the scale from the wrong numbers
    given = {name: (np.asarray(values) if as_array else values, best)
             for name, (values, best) in curves.items()}
    fig = report.learning_curves_figure(given)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2
    for ax, (values, best) in zip(visible, curves.values()):
        line = [ln for ln in ax.lines if ln.get_label() in curves][0]
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, len(values) + 1))
        np.testing.assert_array_equal(line.get_ydata(), values)
        marks = _points(ax)
        if best is None:
            assert len(marks) == 0
        else:
            np.testing.assert_array_equal(marks, [[best, values[best - 1]]])
        low, high = ax.get_ylim()
        assert low < min(values[len(values) // 5:]) and max(values) < high
        assert ax.get_title() in curves  # nothing cut off, nothing said
        if best is not None:
            assert low < values[best - 1] < high


def test_learning_curves_say_when_early_epochs_fall_below_the_axis():
    """The scale follows the plateau; a newcomer read the clipped first epochs as missing."""
    fig = report.learning_curves_figure({"m": ([-500.0, 100.0, 101.0, 102.0, 103.0, 104.0], 6)})
    ax = fig.axes[0]
    assert ax.get_ylim()[0] > -500 and ax.get_title() == "m\n(early epochs below the axis)"


def test_learning_curve_panels_do_not_overlap():
    """Notebook 03 showed the zoo's seven curves with titles running into each other and y
    labels over the neighbouring panels (the layout was fixed only when written to a file)."""
    curves = {f"fashion_mnist_model_{i} (finalized)": ([-500.0, *range(100, 130)], 25)
              for i in range(7)}
    fig = report.learning_curves_figure(curves)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # as a notebook shows it: positions as drawn
    renderer = canvas.get_renderer()
    boxes = []
    for ax in fig.axes:
        if ax.get_visible():
            boxes += [ax.title.get_window_extent(renderer),
                      ax.yaxis.label.get_window_extent(renderer),
                      ax.get_window_extent(renderer)]
    owners = [i // 3 for i in range(len(boxes))]
    for i, a in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            if owners[i] != owners[j]:
                assert not a.overlaps(boxes[j]), (i, j)


def test_write_json_writes_strict_json_and_lists_each_non_finite_number(tmp_path):
    # a diverged run's numbers: strict readers (jq, JavaScript) reject bare NaN/Infinity tokens
    record = {"history": {"loss": [1.5, float("nan")]},
              "summary": {"max": np.float32("inf"), "min": np.float64(-np.inf)},
              "per_input": np.array([[0.5, np.nan]]), "count": np.int64(3), "ok": True}
    path = report.write_json(record, str(tmp_path / "sub" / "r.json"))

    def refuse(token):
        raise AssertionError(f"not strict JSON: {token}")

    text = open(path, encoding="utf-8").read()
    written = json.loads(text, parse_constant=refuse)
    assert written["history"]["loss"] == [1.5, None]
    assert written["summary"] == {"max": None, "min": None}
    assert written["per_input"] == [[0.5, None]] and written["count"] == 3 and written["ok"]
    assert written[report.NON_FINITE_KEY] == {
        "history.loss[1]": "nan", "summary.max": "inf", "summary.min": "-inf",
        "per_input[0][1]": "nan"}
    assert record["history"]["loss"][1] != record["history"]["loss"][1]  # the input is unchanged
    # a finite report has no such key
    finite = json.loads(open(report.write_json({"a": [1.0]}, str(tmp_path / "f.json"))).read())
    assert finite == {"a": [1.0]}
    with pytest.raises(ValueError, match="non_finite_values"):
        report.write_json({report.NON_FINITE_KEY: 1}, str(tmp_path / "g.json"))


def test_a_figure_is_written_to_the_png_file_named_and_nowhere_else(tmp_path):
    """An operator's review (2026-12-04): a path without the suffix (or a folder) was written
    as path + ".png" by matplotlib, and the path returned named a file that was not there."""
    radii = {"best": np.array([1.0, 2.0])}
    path = tmp_path / "histogram.PNG"
    assert report.plot_radius_histogram(radii, 1.0, path) == path
    assert path.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match=r"path must name a \.png file to write, got the "
                                         r"folder .*: give the file, e\.g\. .*figure\.png"):
        report.plot_radius_histogram(radii, 1.0, tmp_path)
    with pytest.raises(ValueError, match=r"path must name a \.png file to write \(the figures"):
        report.plot_radius_histogram(radii, 1.0, tmp_path / "histogram")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["histogram.PNG"]
    assert not (tmp_path.parent / (tmp_path.name + ".png")).exists()
