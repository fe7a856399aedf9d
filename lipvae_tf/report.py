"""Reports of training and evaluation runs: radius summaries, figures (matplotlib, written to
files) and the JSON file."""
from __future__ import annotations

import json
import os

import numpy as np
# Figure objects, not pyplot: files only, no display, and the process-wide backend (e.g. inline
# figures in a notebook) is left alone.
from matplotlib.figure import Figure


def summarize(values: np.ndarray) -> dict[str, float]:
    """min / 5% / median / mean / 95% / max of a vector of radii (floats, for JSON)."""
    values = np.asarray(values, np.float64)
    quantiles = np.quantile(values, [0.0, 0.05, 0.5, 0.95, 1.0])
    return {"min": float(quantiles[0]), "q05": float(quantiles[1]), "median": float(quantiles[2]),
            "mean": float(values.mean()), "q95": float(quantiles[3]), "max": float(quantiles[4])}


def plot_radius_histogram(radii: dict[str, np.ndarray], target: float | None, path: str) -> str:
    """Histogram of the certified radii of the test inputs, one series per method."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for method, values in radii.items():
        ax.hist(values, bins=40, alpha=0.55, label=method)
    if target is not None:
        ax.axvline(target, color="black", linestyle="--", label=f"target R* = {target:g}")
    ax.set_xlabel("certified radius (l2, pixel space)")
    ax.set_ylabel("test inputs")
    ax.set_title("Certified radius per test input")
    ax.legend()
    return _save(fig, path)


def plot_reconstructions(rows: dict[str, np.ndarray], path: str) -> str:
    """Grid of images: one row per entry (e.g. originals, Lipschitz VAE, standard VAE)."""
    count = min(len(images) for images in rows.values())
    fig = Figure(figsize=(count * 0.9, len(rows) * 1.05))
    axes = fig.subplots(len(rows), count, squeeze=False)
    for row, (label, images) in enumerate(rows.items()):
        for col in range(count):
            ax = axes[row, col]
            ax.imshow(np.squeeze(images[col]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    return _save(fig, path)


def plot_margin_vs_certificate(points: dict[str, tuple[np.ndarray, np.ndarray]], path: str) -> str:
    """Estimated margin (y) against certified radius (x) per input, log axes, with y = x.

    Points below the line would be certificates proven wrong; inputs with a zero certificate
    cannot sit on a log axis and are counted in the legend instead.
    """
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    low, high = np.inf, 0.0
    for name, (certified, margin) in points.items():
        shown = (certified > 0) & (margin > 0) & np.isfinite(margin)
        label = name if shown.all() else f"{name} ({(~shown).sum()} inputs off the log axes)"
        if not shown.any():  # still named in the legend, with why it has no points
            ax.plot([], [], " ", label=f"{name}: no input on the log axes")
        else:
            ax.scatter(certified[shown], margin[shown], s=12, alpha=0.7, label=label)
            low = min(low, certified[shown].min(), margin[shown].min())
            high = max(high, certified[shown].max(), margin[shown].max())
    if high > 0:
        line = [low / 1.5, high * 1.5]
        ax.plot(line, line, "k--", linewidth=1, label="y = x (certificate = margin)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("certified radius")
    ax.set_ylabel("estimated margin (attack)")
    ax.set_title("Estimated margin vs certificate")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_probability_vs_norm(curves: dict[str, tuple[np.ndarray, np.ndarray]], p: float, r: float,
                             path: str) -> str:
    """Mean estimated P(||f(x + delta) - f(x)|| <= r) under the attack, against ||delta||."""
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
    return _save(fig, path)


def plot_pareto(points: dict[str, tuple[float, float]], path: str) -> str:
    """Test log-likelihood (y) against mean estimated margin (x), one labelled point per model."""
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for name, (margin, log_likelihood) in points.items():
        ax.scatter([margin], [log_likelihood], s=30)
        ax.annotate(name, (margin, log_likelihood), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.set_xlabel("mean estimated margin")
    ax.set_ylabel("test log-likelihood (IWAE)")
    ax.set_title("Robustness vs reconstruction quality")
    return _save(fig, path)


def _save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def write_json(report: dict, path: str) -> str:
    """Writes the report with sorted keys (numpy scalars converted)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2, sort_keys=True, default=_jsonable)
    return path


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
