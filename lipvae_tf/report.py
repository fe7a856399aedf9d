"""Reports of training and evaluation runs: radius summaries, figures (matplotlib, written to
files) and the JSON file."""
from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterator

import numpy as np

# Figure objects, not pyplot: files only, no display, and the process-wide backend (e.g. inline
# figures in a notebook) is left alone.
from matplotlib.figure import Figure

from lipvae_tf import checks

# the key under which write_json lists the NaN and infinite numbers it wrote as null
NON_FINITE_KEY = "non_finite_values"

__all__ = [
    "certificate_methods", "quiet_tensorflow_logs", "run_command", "refuse_positional_arguments",
    "one_line_errors", "USER_ERRORS",
    "summarize", "histogram_bins",
    "radius_histogram_figure", "plot_radius_histogram", "reconstructions_figure",
    "plot_reconstructions", "margin_vs_certificate_figure", "plot_margin_vs_certificate",
    "probability_vs_norm_figure", "plot_probability_vs_norm", "pareto_figure", "plot_pareto",
    "learning_curves_figure", "plot_learning_curves", "write_json", "NON_FINITE_KEY",
]


def certificate_methods(model) -> list[str]:
    """The methods of bounds.METHODS that apply to `model` (a LipschitzVAE): "ncx2" needs a
    fixed posterior std, the capped ones a std cap.

    Args:
        model: a `LipschitzVAE` (its `posterior_std` and `std_cap` are read).

    Returns:
        The method names, in the order of bounds.METHODS.
    """
    from lipvae_tf import bounds

    capped = getattr(bounds, "CAPPED_METHODS", ())
    return [m for m in bounds.METHODS
            if (m != "ncx2" or model.posterior_std is not None)
            and (m not in capped or model.std_cap is not None)]


def quiet_tensorflow_logs() -> None:
    """For the command-line entry points: TensorFlow's and absl's (TFDS') Python logs at ERROR
    only. Never called on import: a library user keeps their own logging settings."""
    import tensorflow as tf
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    tf.get_logger().setLevel("ERROR")


_HELP_FLAGS = ("--help", "-?", "--helpfull", "--helpshort", "--helpxml")


def run_command(main: Callable[[list[str]], None]) -> None:
    """`absl.app.run(main)` for the command-line entry points, except that asking for help
    (--help, -?, --helpfull, ...) exits with status 0, as argparse does, where absl exits with 1
    after printing it (so `lipvae-train --help && ...` stopped).

    Args:
        main: the command's main function, called by absl with the remaining argv.

    Raises:
        SystemExit: as absl raises it, with status 0 instead of 1 after a help flag.
    """
    from absl import app

    arguments = sys.argv[1:sys.argv.index("--")] if "--" in sys.argv else sys.argv[1:]
    asked_for_help = any(argument in _HELP_FLAGS for argument in arguments)
    try:
        app.run(main)
    except SystemExit as exit_:
        if asked_for_help and exit_.code == 1:
            raise SystemExit(0) from None
        raise


def refuse_positional_arguments(argv: list[str], program: str) -> None:
    """Exits with one line naming the stray arguments when `argv` (absl's, the program first)
    holds positional arguments, for a command whose every setting is a flag (absl's own
    UsageError printed the whole --help before its message).

    Raises:
        SystemExit: with "<program>: error: unexpected arguments ...".
    """
    if len(argv) > 1:
        sys.exit(f"{program}: error: unexpected arguments {argv[1:]}: every setting is a "
                 "--flag=value (see --help)")


# what a command's user can fix (a bad setting; a file missing, existing, unwritable or where a
# folder was expected): one line, no traceback
USER_ERRORS = (ValueError, TypeError, KeyError, FileNotFoundError, FileExistsError,
               NotADirectoryError, IsADirectoryError, PermissionError,
               checks.ReducedPrecisionError)


@contextlib.contextmanager
def one_line_errors(program: str) -> Iterator[None]:
    """For the command-line entry points: an error of USER_ERRORS raised inside exits with the
    one line "<program>: error: <message>" (status 1) instead of a traceback; any other error
    keeps its traceback (a fault of the package, to report). A reader that closes the pipe
    early (`python -m lipvae_tf.zoo card NAME | head`) ends the command quietly, with status 1,
    as the Python documentation advises for SIGPIPE (library/signal.html, "Note on SIGPIPE").

    Raises:
        SystemExit: for an error of USER_ERRORS (a KeyError's message without repr quotes), and
            for a closed standard output.
    """
    try:
        yield
    except USER_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        sys.exit(f"{program}: error: {message}")
    except BrokenPipeError:
        # Python flushes stdout again at exit, into the same closed pipe: point it at devnull
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)


def summarize(values: np.ndarray) -> dict[str, float]:
    """min / 5% / median / mean / 95% / max of a vector of radii (floats, for JSON).

    Args:
        values: 1-D array_like of finite real numbers, at least one (e.g. radii, l2 in pixel
            space).

    Returns:
        {"min", "q05", "median", "mean", "q95", "max"}: Python floats, in the values' units
        (quantiles by NumPy's default linear interpolation).

    Raises:
        TypeError: if values are not real numbers.
        ValueError: if values is empty, not 1-D, or holds NaN or Inf (NumPy's quantiles of
            them are all NaN).
    """
    values = checks.finite_array("values", values, ndim=1)
    if not values.size:
        raise ValueError("values must hold at least one number to summarize, got none")
    quantiles = np.quantile(values, [0.0, 0.05, 0.5, 0.95, 1.0])
    return {"min": float(quantiles[0]), "q05": float(quantiles[1]), "median": float(quantiles[2]),
            "mean": float(values.mean()), "q95": float(quantiles[3]), "max": float(quantiles[4])}


def histogram_bins(values: np.ndarray, count: int = 40, edge: float | None = None
                   ) -> np.ndarray:
    """`count` shared bins over the finite `values`, never of zero width: values that are all
    equal (or equal to 1e-6 relative, e.g. every std at its cap) get bins that start at their
    value and span 2% of it, so their bar is drawn where they are and never reaches below them
    (centred on it, a bar of radii at 1.00002 straddled the target line at 1 and read as missed:
    a newcomer's run). With `edge` (e.g. the target R*), spread values get bins of the same
    width shifted so that `edge` is one of their edges: no bar straddles it, and values >= edge
    are drawn right of it (the last of linspace(min, max) bins ended at radii of 1.00002, left
    of the target line at 1: another newcomer's run).

    Args:
        values: array_like of real numbers; non-finite ones are ignored.
        count: the number of bins (one or two more with `edge`).
        edge: None, or a value that must be a bin edge.

    Returns:
        float64 array of increasing bin edges (count + 1 of them, up to count + 3 with `edge`);
        [0, 1] split evenly when no value is finite.

    Raises:
        TypeError: if values are not real numbers, count is not an int or edge not a real.
        ValueError: if count < 1 or edge is not finite.
    """
    count = checks.positive_int("count", count)
    if edge is not None:
        edge = checks.finite_real("edge", edge)
    finite = checks.real_array("values", values)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return np.linspace(0.0, 1.0, count + 1)
    low, high = float(finite.min()), float(finite.max())
    scale = max(abs(low), abs(high), 1e-12)
    if high - low <= 1e-6 * scale:
        # from 1e-9 below the value (drawn bars carry round-off; the bar must contain it)
        return np.linspace(low - 1e-9 * scale, low + 0.02 * scale, count + 1)
    if edge is None:
        return np.linspace(low, high, count + 1)
    width = (high - low) / count
    first = math.floor((low - edge) / width)
    last = math.floor((high - edge) / width) + 1  # high < edge + last * width: inside a bin
    return edge + width * np.arange(first, last + 1, dtype=np.float64)


def radius_histogram_figure(radii: dict[str, np.ndarray], target: float | None) -> Figure:
    """The figure of `plot_radius_histogram` (one series per method, shared bins that show the
    radii even when they are all equal; the target line only when a target was asked for).

    Args:
        radii: {method: certified radii (N,), l2 in pixel space}; non-finite ones are counted
            in the legend, not drawn.
        target: R* (l2, pixel space) for a dashed line, or None.

    Returns:
        A matplotlib `Figure` (not attached to pyplot).
    """
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    arrays = {m: np.asarray(v, np.float64).ravel() for m, v in radii.items()}
    # each series its own hatching: methods that certify the same radii (e.g. best and ncx2)
    # draw the same bars, and both stay visible
    hatches = ("", "//", "\\\\", "..", "xx", "--", "++")
    shown = [v[np.isfinite(v)] for v in arrays.values()]
    bins = histogram_bins(np.concatenate(shown) if shown else np.zeros(0), edge=target)
    for index, (method, values) in enumerate(arrays.items()):
        finite = values[np.isfinite(values)]
        label = method
        if finite.size and np.ptp(finite) <= 1e-6 * max(abs(finite).max(), 1e-12):
            label = f"{method} (all {finite.size} at {finite.mean():.7g})"
        elif finite.size:  # every entry says where its bars are, not only the equal ones
            label = (f"{method} (median {np.median(finite):.4g}, {finite.min():.4g} to "
                     f"{finite.max():.4g})")
        if finite.size < values.size:
            label += f" ({values.size - finite.size} not finite, not shown)"
        ax.hist(finite, bins=bins, alpha=0.55, label=label,
                hatch=hatches[index % len(hatches)])
    if target is not None:
        ax.axvline(target, color="black", linestyle="--", label=f"target R* = {target:g}")
    ax.set_xlabel("certified radius (l2, pixel space)")
    ax.set_ylabel("test inputs")
    ax.set_title("Certified radius per test input")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the bars
    fig.tight_layout()
    return fig


def plot_radius_histogram(radii: dict[str, np.ndarray], target: float | None, path: str) -> str:
    """Histogram of the certified radii of the test inputs, one series per method; the target
    R* as a dashed line when one was asked for (None: explicit constants, no target).

    Args:
        radii, target: as for `radius_histogram_figure`.
        path: the PNG file to write.

    Returns:
        path.
    """
    return _save(radius_histogram_figure(radii, target), path)


def reconstructions_figure(rows: dict[str, np.ndarray], title: str | None = None) -> Figure:
    """Grid of images: one row per entry (e.g. originals, Lipschitz VAE, standard VAE), the
    entry's key as the row's label; `title` above the grid.

    Args:
        rows: {label: images (n, H, W) or (n, H, W, 1), pixels in [0, 1]}; the shortest row
            sets the number of columns.
        title: a title above the grid, or None.

    Returns:
        A matplotlib `Figure`.
    """
    count = min(len(images) for images in rows.values())
    fig = Figure(figsize=(count * 0.9 + 1.2, len(rows) * 1.05 + (0.3 if title else 0.0)))
    axes = fig.subplots(len(rows), count, squeeze=False)
    for row, (label, images) in enumerate(rows.items()):
        for col in range(count):
            ax = axes[row, col]
            ax.imshow(np.squeeze(images[col]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_reconstructions(rows: dict[str, np.ndarray], path: str, title: str | None = None
                         ) -> str:
    """Writes `reconstructions_figure` to `path` (PNG); returns the path.

    Args:
        rows, title: as for `reconstructions_figure`.
        path: the PNG file to write.

    Returns:
        path.
    """
    return _save(reconstructions_figure(rows, title), path)

def margin_vs_certificate_figure(points: dict[str, tuple[np.ndarray, ...]]) -> Figure:
    """Estimated margin (y) against certified radius (x) per input, log axes, with y = x.

    Points below the line would be certificates proven wrong. Values a log axis cannot show (a
    zero certificate or margin, an infinite margin) are drawn as crosses at the edge of the
    axes (a third of the smallest positive value, three times the largest), counted in the
    legend, on a dotted line labelled with the value it stands for (0 or inf): every input is
    drawn. Given the attack's `upper` radii, inputs it never broke
    (upper inf: their margin is only a lower bound, the largest radius tried) are drawn as
    upward triangles, counted in the legend.

    Args:
        points: {name: (certified radii (N,), estimated margins (N,))} or {name: (certified,
            margins, upper (N,))}, all l2 in pixel space, one value per input: `upper` is
            `attacks.MarginEstimate.upper`, the smallest radius the attack broke (inf: never).

    Returns:
        A matplotlib `Figure`.

    Raises:
        ValueError: if a name's arrays do not have one shape (N,), or it has not 2 or 3 of them.
    """
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    arrays = {n: _margin_points(n, values) for n, values in points.items()}
    regular = np.concatenate([v[(v > 0) & np.isfinite(v)] for pair in arrays.values()
                              for v in pair[:2]] or [np.zeros(0)])
    low = regular.min() if regular.size else 1.0
    high = regular.max() if regular.size else 1.0
    floor, ceiling = low / 3, high * 3
    edges = set()  # which edges hold crosses: each gets a dotted line labelled 0 or inf
    for name, (certified, margin, unbroken) in arrays.items():
        on_axes = (certified > 0) & (margin > 0) & np.isfinite(margin) & np.isfinite(certified)
        for shown, marker, label in (
                (on_axes & ~unbroken, "o", name),
                (on_axes & unbroken, "^", f"{name}: {(on_axes & unbroken).sum()} never broken "
                                          "(margin >= the largest radius tried)")):
            if shown.any():
                ax.scatter(certified[shown], margin[shown], s=12 if marker == "o" else 24,
                           marker=marker, alpha=0.7, label=label)
        if (~on_axes).any():
            x = np.where(certified > 0, np.minimum(certified, ceiling), floor)[~on_axes]
            y = np.where(np.isfinite(margin), np.where(margin > 0, margin, floor), ceiling)
            ax.scatter(x, y[~on_axes], s=20, marker="x", label=(
                f"{name}: {(~on_axes).sum()} at an edge (certificate or margin 0, or infinite)"))
            if (certified[~on_axes] <= 0).any():
                edges.add(("x", "0"))
            if (margin[~on_axes] <= 0).any():
                edges.add(("y", "0"))
            if (~np.isfinite(margin[~on_axes])).any():
                edges.add(("y", "inf"))
    ax.plot([floor, ceiling], [floor, ceiling], "k--", linewidth=1,
            label="y = x (certificate = margin)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    # a newcomer's run (2026-12-04): the standard VAE's zero certificates sat at x = 0.32 of
    # the log axis with no tick saying so; the edges now carry their value
    for axis, value in sorted(edges):
        at = floor if value == "0" else ceiling
        line = ax.axvline if axis == "x" else ax.axhline
        line(at, color="gray", linestyle=":", linewidth=0.8)
        if axis == "x":
            ax.text(at, 1.0, f" x = {value}", transform=ax.get_xaxis_transform(), fontsize=7,
                    color="gray", ha="left", va="top", rotation=90)
        else:
            ax.text(1.0, at, f"y = {value} ", transform=ax.get_yaxis_transform(), fontsize=7,
                    color="gray", ha="right", va="bottom")
    ax.set_xlabel("certified radius (l2, pixel space)")
    ax.set_ylabel("estimated margin (attack; l2, pixel space)")
    ax.set_title("Estimated margin vs certificate")
    ax.legend(fontsize=7)
    return fig


def _margin_points(name: str, values: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(certified, margin, never broken?) as float64, float64, bool arrays of one shape (N,)."""
    if not isinstance(values, (tuple, list)) or len(values) not in (2, 3):
        raise ValueError(f"points[{name!r}] must be (certified, margin) or (certified, margin, "
                         f"upper), got {type(values).__name__} of length "
                         f"{len(values) if hasattr(values, '__len__') else 'none'}")
    arrays = [np.asarray(v, np.float64) for v in values]
    if any(a.ndim != 1 or a.shape != arrays[0].shape for a in arrays):
        raise ValueError(f"points[{name!r}] must hold arrays of one shape (N,), got shapes "
                         f"{[a.shape for a in arrays]}")
    unbroken = ~np.isfinite(arrays[2]) if len(arrays) == 3 else np.zeros(arrays[0].shape, bool)
    return arrays[0], arrays[1], unbroken


def plot_margin_vs_certificate(points: dict[str, tuple[np.ndarray, ...]], path: str) -> str:
    """Writes `margin_vs_certificate_figure` to `path` (PNG); returns the path.

    Args:
        points: as for `margin_vs_certificate_figure`.
        path: the PNG file to write.

    Returns:
        path.
    """
    return _save(margin_vs_certificate_figure(points), path)

def probability_vs_norm_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], p: float,
                               r: float) -> Figure:
    """Mean estimated P(||f(x + delta) - f(x)|| <= r) under the attack, against ||delta||.

    Args:
        curves: {name: (attack norms ||delta||_2 (K,), l2 in pixel space, mean estimated
            probabilities (K,) in [0, 1])}.
        p: the probability level, drawn as a dashed line.
        r: the reconstruction tolerance (l2, pixel space), for the axis label.

    Returns:
        A matplotlib `Figure`.
    """
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, (norms, probability) in curves.items():
        ax.plot(norms, probability, marker="o", label=name)
    ax.axhline(p, color="black", linestyle="--", linewidth=1, label=f"p = {p:g}")
    ax.set_xlabel("attack norm ||delta||_2")
    ax.set_ylabel(f"P(||f(x+delta) - f(x)|| <= {r:g})")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Robustness probability under the maximum-damage attack")
    ax.legend(fontsize=7)
    return fig


def plot_probability_vs_norm(curves: dict[str, tuple[np.ndarray, np.ndarray]], p: float, r: float,
                             path: str) -> str:
    """Writes `probability_vs_norm_figure` to `path` (PNG); returns the path.

    Args:
        curves, p, r: as for `probability_vs_norm_figure`.
        path: the PNG file to write.

    Returns:
        path.
    """
    return _save(probability_vs_norm_figure(curves, p, r), path)

def pareto_figure(points: dict[str, tuple[float, float]]) -> Figure:
    """Test log-likelihood (y) against median estimated margin (x), one labelled point per model
    (the median, as the evaluation's table shows it).

    Args:
        points: {model name: (median estimated margin, l2 in pixel space; test log-likelihood
            (IWAE) in nats)}.

    Returns:
        A matplotlib `Figure`.
    """
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, (margin, log_likelihood) in points.items():
        ax.scatter([margin], [log_likelihood], s=30)
        ax.annotate(name, (margin, log_likelihood), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.set_xlabel("median estimated margin (l2, pixel space)")
    ax.set_ylabel("test log-likelihood (IWAE)")
    ax.set_title("Robustness vs reconstruction quality")
    return fig


def plot_pareto(points: dict[str, tuple[float, float]], path: str) -> str:
    """Writes `pareto_figure` to `path` (PNG); returns the path.

    Args:
        points: as for `pareto_figure`.
        path: the PNG file to write.

    Returns:
        path.
    """
    return _save(pareto_figure(points), path)


def learning_curves_figure(curves: dict[str, tuple[list[float], int | None]]) -> Figure:
    """Validation ELBO (nats) against epoch, one line per model, its best epoch circled.

    curves: name -> (validation ELBO per epoch, best epoch 1-based or None). Each model on its
    own panel: their scales differ by thousands of nats (the standard VAE against the others).

    Args:
        curves: {name: (validation ELBO per epoch in nats, a sequence or array of at least
            one; best epoch, 1-based, or None)}, at least one; up to 4 panels per row.

    Returns:
        A matplotlib `Figure`.

    Raises:
        ValueError: for no curves, an empty curve, or a best epoch outside [1, epochs].
    """
    if not curves:
        raise ValueError("curves must hold at least one model's curve")
    curves = {name: ([float(v) for v in np.ravel(values)], best)
              for name, (values, best) in curves.items()}
    for name, (values, best) in curves.items():
        if not values:
            raise ValueError(f"the curve of {name!r} is empty")
        if best is not None and not (isinstance(best, (int, np.integer))
                                     and 1 <= best <= len(values)):
            raise ValueError(f"the best epoch of {name!r} must be an int in [1, {len(values)}] "
                             f"(1-based) or None, got {best!r}")
    fig = Figure(figsize=(4 * min(len(curves), 4), 3 * -(-len(curves) // 4)))
    axes = np.atleast_1d(fig.subplots(-(-len(curves) // 4), min(len(curves), 4))).ravel()
    for ax, (name, (values, best)) in zip(axes, curves.items()):
        epochs = np.arange(1, len(values) + 1)
        ax.plot(epochs, values, marker=".", label=name)
        if best is not None:
            ax.scatter([best], [values[best - 1]], s=80, facecolors="none", edgecolors="red",
                       zorder=3, label=f"best epoch {best}")
        # the last 80% of the curve (and the best epoch) set the scale: the first epochs would
        # flatten the plateau
        shown = np.asarray(values[len(values) // 5:] + ([] if best is None
                                                         else [values[best - 1]]), np.float64)
        shown = shown[np.isfinite(shown)]
        title = name
        if shown.size:
            spread = max(float(shown.max() - shown.min()), 1.0)
            ax.set_ylim(shown.min() - 0.1 * spread, shown.max() + 0.1 * spread)
            if np.nanmin(values) < shown.min() - 0.1 * spread:  # said, not silently cut off
                title += "\n(early epochs below the axis)"  # a second line: panels sit close
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation ELBO (nats)")
        ax.legend(fontsize=7, loc="best")
    for ax in axes[len(curves):]:
        ax.set_visible(False)
    fig.tight_layout()  # shown as it is (a notebook) too: titles and labels must not overlap
    return fig


def plot_learning_curves(curves: dict[str, tuple[list[float], int | None]], path: str) -> str:
    """Writes `learning_curves_figure` to `path` (PNG); returns the path.

    Args:
        curves: as for `learning_curves_figure`.
        path: the PNG file to write.

    Returns:
        path.
    """
    return _save(learning_curves_figure(curves), path)


def _save(fig, path: str) -> str:
    """Writes `fig` as a PNG at `path` exactly, the path checked first (`checks.png_path`: a
    .png file, not a folder; a missing folder is created, a file in its place refused)."""
    folder = os.path.dirname(os.path.abspath(checks.png_path("path", path)))
    os.makedirs(folder, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    return path


def write_json(report: dict, path: str) -> str:
    """Writes the report with sorted keys (numpy scalars converted), as strict JSON.

    JSON (RFC 8259) has no NaN or Infinity, and Python's `json` would write them as bare tokens
    that other readers (jq, JavaScript, most JSON libraries) reject. So each non-finite number
    (a diverged run's loss, say) is written as null, and the top-level key
    `NON_FINITE_KEY` lists where each one was and what it was ("nan", "inf", "-inf"): valid
    JSON, and nothing lost.

    Args:
        report: a JSON-serialisable dict; NumPy scalars and arrays are converted to Python
            numbers and lists. The parent folders of `path` are created.
        path: the JSON file to write.

    Returns:
        path.

    Raises:
        TypeError: for a value that is neither JSON-serialisable nor a NumPy scalar or array.
        ValueError: for a report that already has a `NON_FINITE_KEY` key.
    """
    if NON_FINITE_KEY in report:
        raise ValueError(f"report must not have the key {NON_FINITE_KEY!r}: write_json uses it "
                         "to list the non-finite numbers it writes as null")
    non_finite: dict[str, str] = {}
    strict = _finite_or_null(report, "", non_finite)
    if non_finite:
        strict[NON_FINITE_KEY] = non_finite
    text = json.dumps(strict, indent=2, sort_keys=True, default=_jsonable, allow_nan=False)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def _finite_or_null(value, where: str, non_finite: dict[str, str]):
    """A copy of a nested report with NumPy values as Python ones and each NaN or infinite
    number as None, recorded in `non_finite` under its path (e.g. "models.vae.history.loss[3]")."""
    if isinstance(value, dict):
        return {key: _finite_or_null(item, f"{where}.{key}" if where else str(key), non_finite)
                for key, item in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(item, f"{where}[{i}]", non_finite) for i, item in enumerate(value)]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        non_finite[where] = repr(value)
        return None
    return value


def _jsonable(value):
    # NumPy values are already Python ones (`_finite_or_null`): anything left is not JSON
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
