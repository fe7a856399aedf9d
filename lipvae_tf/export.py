"""SavedModel export with TF Serving signatures, and TF Serving REST request bodies.

`export_saved_model(model, path, version=1)` writes a SavedModel that needs neither lipvae_tf nor
NumPy to run: TF Serving, `tf.saved_model.load` in any Python, or `saved_model_cli`.

Signatures (every one has a batch dimension; H, W, C = model.image_shape, m = latent_dim):

| name | inputs | outputs |
| --- | --- | --- |
| `serving_default` | `images` float32 (None, H, W, C) | `reconstruction` (same shape), g(mu(x)) |
| `encode` | `images` | `latent_mean`, `latent_std` float32 (None, m) |
| `certify` | `images`, `r` and `p` float64 (None,) | `certified_radius` float64 (None,) |
| `metadata` | `ignored` float32 (None,) | the frozen constants, latent_dim, gamma, method, ... |

g is the model's certified reconstruction (`model.reconstruction`: "mean", E[x | z], or "parameter",
sigmoid(logits)); `serving_default` and `certify` both follow it, and the metadata says which.
`certify` evaluates the certificate `method` in the graph (lipvae_tf.graph_bounds: the formulas of
lipvae_tf.bounds in float64, same rounding) with the Lipschitz constants frozen at export time, so
it equals `model.certified_radius(x, r, p, method)` to float64 round-off (up to 1e-12 relative
for p <= 0.999; more near p = 1, where the two sides' CDF lower bounds differ:
lipvae_tf.graph_bounds gives the measured values, each sound) when both are given the same
batch. With a learned std, TF's CPU kernels may compute an image's float32 std a float32 step
differently in batches of different composition, and each side certifies the std it computed
(widened by the std network's rounding margin, so both are sound): 1.8e-5 relative between
one image and a batch of 40 at p = 0.9, and an image certified 0 alone and 1.1e-7 in a batch,
at an r on the threshold (a review, 2026-12-04; README, "Serving").
r and p are float64, not float32: rounding p = 0.9 to float32 gives 0.89999998, a lower level, and
r = 8.1 gives 8.1000004, a larger tolerance; both would certify a slightly larger radius than the
one asked for. JSON numbers are parsed by TF Serving into the signature's dtype, so REST clients
are not affected. The radius is float64 for the same reason (rounding it to float32 could round
up). `metadata` returns, for each row of its unused input, the values frozen at export: TF
Serving's REST API refuses a signature without inputs (tensorflow/serving#1676), so it takes one,
and one row per input row keeps the row format working (`metadata_request()` is the body). A
request cannot raise inside a graph, so rows with r <= 0, a non-finite r, p outside [1/2, 1), or a
non-finite pixel get a NaN radius (never a clipped value). r and p must have one entry per image
(TF Serving's row format, "instances", needs every input to share the batch dimension). An r
above the pixel space's diameter sqrt(D) is certified as sqrt(D), as `certified_radius` does:
sound (any larger r is met by every perturbation) and a bound on the work per row, which grows
with r (200 rows of distinct r near 4000 took 257 s and 7.4 GB before, a review).

The constants hold for the exported weights only. `certify` checks, on every call, that the
variables of the three certified networks are still those it was exported with (a farmhash64
fingerprint of each, `tf.fingerprint`, compared with the one taken at export): a SavedModel whose
weights were edited or corrupted after export (loaded, changed, saved again) gets an
InvalidArgumentError instead of a certificate that does not hold for its weights.

Built with `keras.export.ExportArchive` (it saves the variables its endpoints capture, once each;
`add_endpoint` takes a multi-input `input_signature` whose `tf.TensorSpec` names become the
signature's input names, while a returned dict names the outputs), so no hand-written
`tf.Module` is needed. A JSON copy of the metadata is written to `assets.extra/` (TF Serving's
folder for files that live beside the model and are not loaded by it), readable without TensorFlow.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from numpy.typing import ArrayLike

from lipvae_tf import bounds, checks, constraints, design, graph_bounds
from lipvae_tf import model as model_lib
from lipvae_tf._shared_numerics import MAGNITUDE_LIMIT, fixed_std
from lipvae_tf.model import LipschitzVAE

__all__ = [
    "SIGNATURES", "METADATA_FILE", "FORMAT_VERSION", "export_saved_model", "copy_model_base",
    "read_metadata", "metadata_request", "rest_request",
]

SIGNATURES = ("serving_default", "encode", "certify", "metadata")
METADATA_FILE = os.path.join("assets.extra", "lipvae_tf_metadata.json")
FORMAT_VERSION = 1


def _package_version() -> str:
    import lipvae_tf  # the package imports this module's dependencies, not this module

    return lipvae_tf.__version__


def _target_dir(path, version) -> str:
    path = checks.folder_path("path", path)
    if version is not None:
        version = checks.positive_int("version", version, minimum=0)
        path = os.path.join(path, str(version))
    return os.path.abspath(path)


def _check_target(target: str, overwrite: bool) -> None:
    if os.path.lexists(target) and not os.path.isdir(target):
        raise FileExistsError(f"{target} exists and is not a directory")
    if os.path.isdir(target) and os.listdir(target) and not overwrite:
        raise FileExistsError(
            f"{target} is not empty: pass overwrite=True to replace it, or a new version"
        )
    if (os.path.isdir(target) and os.listdir(target)
            and not os.path.isfile(os.path.join(target, "saved_model.pb"))):
        # overwrite replaces an earlier export, never a folder of something else (a review
        # passed a project folder and lost its files)
        raise FileExistsError(
            f"{target} is not empty and holds no saved_model.pb: overwrite=True replaces an "
            "earlier SavedModel only; pick a new or empty folder")


def _not_versions(folder: str, entries: list[str]) -> list[str]:
    """The entries of `folder` that are not SavedModel versions (N/saved_model.pb)."""
    return [e for e in entries
            if not (e.isdigit() and os.path.isfile(os.path.join(folder, e, "saved_model.pb")))]


def _check_source_base(source) -> str:
    """`source` as a str if it is a TF Serving model base folder: at least one SavedModel
    version (N/saved_model.pb) and nothing else but hidden entries; else a typed error."""
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a path (str or os.PathLike), got {type(source).__name__}")
    source = os.fspath(source)
    if not os.path.isdir(source):
        raise FileNotFoundError(f"source {source!r} is not an existing folder")
    entries = sorted(e for e in os.listdir(source) if not e.startswith("."))
    others = _not_versions(source, entries)
    if not entries or others:
        found = (f"holds {', '.join(others[:3])}{' ...' if len(others) > 3 else ''}" if others
                 else "is empty")
        raise ValueError(f"source {source!r} must be a TF Serving model base folder (version "
                         f"folders N/ holding saved_model.pb, nothing else); it {found}")
    return source


def _check_model_base(target: str, overwrite: bool) -> None:
    """What `copy_model_base` may write over: nothing, an empty folder, or with overwrite=True a
    TF Serving model base folder that holds SavedModel versions (N/saved_model.pb) and nothing
    else."""
    if os.path.lexists(target) and not os.path.isdir(target):
        raise FileExistsError(f"{target} exists and is not a folder")
    entries = sorted(e for e in os.listdir(target) if not e.startswith(".")) if (
        os.path.isdir(target)) else []
    if entries and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True (--overwrite) to "
                              "replace it, or choose another folder")
    others = _not_versions(target, entries)
    if others:
        # overwrite replaces earlier SavedModel versions, never a folder of something else
        raise FileExistsError(
            f"{target} holds {', '.join(others[:3])}{' ...' if len(others) > 3 else ''}, not "
            "only SavedModel versions (N/saved_model.pb): overwrite replaces a TF Serving model "
            "base folder only; pick a new or empty folder")


def copy_model_base(source: str | os.PathLike, target: str | os.PathLike, *,
                    overwrite: bool = False) -> str:
    """Copies a TF Serving model base folder (version folders N/ holding a SavedModel) to
    `target`, as `export_saved_model` writes: into a hidden sibling first, renamed into place, so
    a TF Serving instance watching `target` never sees half a version.

    Args:
        source: the model base folder to copy (e.g. `zoo.saved_model_path(name)`).
        target: the new model base folder; its parent folders are created.
        overwrite: a bool: replace a `target` that holds SavedModel versions (and nothing else;
            every version in it is replaced by the source's: the whole folder is replaced, so
            a version of `target` that `source` lacks is deleted).

    Returns:
        target, as an absolute path.

    Raises:
        TypeError: if overwrite is not a bool, or source or target is not a path.
        FileNotFoundError: if source is not an existing folder.
        ValueError: if source is not a TF Serving model base folder (it is empty, or holds
            anything but version folders N/ with a saved_model.pb; hidden entries aside), or
            target or a folder above it is a file, or that folder is not writable
            (`checks.folder_path`).
        FileExistsError: if target is not empty and overwrite is False, or it holds anything
            other than SavedModel versions.
        OSError: from `shutil.copytree`, if a file cannot be read or written; nothing is left
            behind (the hidden sibling is removed).
    """
    source = _check_source_base(source)
    overwrite = checks.flag("overwrite", overwrite)
    target = os.path.abspath(checks.folder_path("target", target))
    _check_model_base(target, overwrite)
    _write_into_place(target, "copy",
                      lambda folder: shutil.copytree(source, folder, dirs_exist_ok=True),
                      lambda: _check_model_base(target, overwrite))
    return target


def _write_into_place(target: str, kind: str, write: Callable[[str], object],
                      check: Callable[[], object]) -> None:
    """`write(folder)` into a hidden sibling of `target`, then, after `check()` (the target may
    have changed while it was written), `target` replaced by it with one rename: a TF Serving
    instance watching the parent never sees half a version. The sibling is removed on any
    failure."""
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.{kind}-", dir=parent)
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp's 0700 would hide it from a server user
        write(staging)
        check()
        if os.path.isdir(target):
            shutil.rmtree(target)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _snapshot(model: keras.Model) -> list[np.ndarray]:
    return [np.array(w.numpy(), copy=True) for w in model.weights]


def export_saved_model(
    model: LipschitzVAE,
    path: str | os.PathLike,
    *,
    method: str = "best",
    version: int | None = None,
    overwrite: bool = False,
    finalize: bool = True,
) -> str:
    """Writes `model` as a SavedModel with the signatures of this module's docstring.

    path: the SavedModel folder, or with `version=N` the TF Serving model base folder, written to
    `path/N/` (`saved_model.pb` inside). method: the certificate of the `certify` signature, one of
    bounds.METHODS ("ncx2" only for a fixed posterior std). A non-empty target folder is an error
    unless overwrite=True and it holds an earlier SavedModel (saved_model.pb). The SavedModel is
    written to a hidden sibling folder first and renamed into place, so a TF Serving instance
    watching `path` never sees half a version.

    finalize: run `model.finalize()` (the converged projection, in place; it leaves a finalized
    model unchanged) before measuring the constants. Either way the frozen constants are
    `model.lipschitz_constants()` measured on the very weights written (they are compared before
    and after writing), so they are verified upper bounds of the exported network.
    Returns the SavedModel folder.

    Args:
        model: the `LipschitzVAE` (or `StandardVAE`) to export, built.
        path: the SavedModel folder, or with `version` the model base folder (str or
            os.PathLike); missing parent folders are created.
        method: the `certify` signature's certificate, one of `bounds.METHODS`.
        version: None, or the version number N >= 0 (an int): the SavedModel goes to
            `path/N/`.
        overwrite: a bool: replace a non-empty target that holds an earlier SavedModel.
        finalize: a bool: call `model.finalize()` first (it changes the model's kernels in
            place).

    Returns:
        The SavedModel folder (`path` or `path/N`), as an absolute path (a str).

    Raises:
        TypeError: if model is not a `LipschitzVAE`, finalize or overwrite is not a bool,
            version is not an int, or path is not a str / os.PathLike.
        ValueError: for an unknown method, "ncx2" for a learned std, a method the model's
            constants do not allow (`graph_bounds.check_constants`, e.g. "markov_cap" without
            a std cap, "chi2" with latent_dim 1), version < 0, or a path that is (under) a
            file or not writable (`checks.folder_path`); from `model.finalize()`, a kernel
            holding NaN or Inf.
        FileExistsError: if the target exists and is not a folder, is not empty and overwrite
            is False, or is not empty and holds no saved_model.pb.
        RuntimeError: from `model.finalize()` (Björck did not converge), or if the model's
            weights changed while it was written. Nothing is left at the target on an error
            raised while writing.
    """
    if not isinstance(model, LipschitzVAE):
        raise TypeError("model must be a lipvae_tf LipschitzVAE or StandardVAE, got "
                        f"{type(model).__name__}")
    checks.one_of("method", method, bounds.METHODS)
    finalize, overwrite = checks.flag("finalize", finalize), checks.flag("overwrite", overwrite)
    if method == "ncx2" and model.posterior_std is None:
        raise ValueError("method 'ncx2' needs a fixed posterior std (posterior_std=gamma); this "
                         "model learns its std")
    target = _target_dir(path, version)
    _check_target(target, overwrite)
    if finalize:
        model.finalize()
    weights = _snapshot(model)
    constants = model.lipschitz_constants()
    std_cap = model.std_cap_bound()  # S as the float32 graph applies it (None without a cap)
    frozen = graph_bounds.check_constants(  # the ValueError of bounds.radius, before any writing
        method, constants["encoder_mean"], constants["encoder_std"], constants["decoder"],
        latent_dim=model.latent_dim, gamma=model.posterior_std_bound(), std_cap=std_cap)
    metadata = _metadata(model, method, constants, std_cap)

    archive = _archive(model, method, frozen, metadata, std_cap)

    def write(folder: str) -> None:
        archive.write_out(folder, verbose=False)
        if any(not np.array_equal(a, b) for a, b in zip(weights, _snapshot(model))):
            raise RuntimeError("the model's weights changed while it was exported; export again")
        os.makedirs(os.path.join(folder, "assets.extra"), exist_ok=True)
        with open(os.path.join(folder, METADATA_FILE), "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=2, sort_keys=True, allow_nan=False)

    _write_into_place(target, "export", write, lambda: _check_target(target, overwrite))
    return target


def _metadata(model: LipschitzVAE, method: str, constants: dict,
              std_cap: float | None) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "lipvae_tf_version": _package_version(),
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "model_class": type(model).__name__,
        "method": method,
        "lipschitz_constants": {k: float(v) for k, v in constants.items()},
        "latent_dim": model.latent_dim,
        "posterior_std": model.posterior_std,
        "posterior_std_applied": model.posterior_std_bound(),
        "std_cap": model.std_cap,
        "std_cap_applied": std_cap,
        "reconstruction": model.reconstruction,
        "reconstruction_rounding": model_lib.OUTPUT_ROUNDING,
        "image_shape": list(model.image_shape),
        "architecture": model.architecture,
        "likelihood": model.likelihood,
        "design": model.design,
        "design_met": _design_met(model, constants),
        "signatures": {
            "serving_default": {"inputs": {"images": "float32 (None, H, W, C)"},
                                "outputs": {"reconstruction": "float32 (None, H, W, C)"}},
            "encode": {"inputs": {"images": "float32 (None, H, W, C)"},
                       "outputs": {"latent_mean": "float32 (None, m)",
                                   "latent_std": "float32 (None, m)"}},
            "certify": {"inputs": {"images": "float32 (None, H, W, C)", "r": "float64 (None,)",
                                   "p": "float64 (None,)"},
                        "outputs": {"certified_radius": "float64 (None,), NaN for invalid r, p "
                                                        "or pixels"}},
            "metadata": {"inputs": {"ignored": "float32 (None,)"},
                         "outputs": "this file's values, one row per input row (design_met as "
                                    "the string 'true', 'false' or 'none')"},
        },
    }


def _design_met(model: LipschitzVAE, constants: dict) -> bool | None:
    """Whether the exported model is inside the budget its design record describes (the
    measured constants at most the designed ones, the same fixed std or cap and latent size,
    and `design.budget_radius` of the measured constants, for r less this image size's
    rounding slack, at least the record's target_radius), so that the record's certified
    radius holds for it; None without a design record. A model whose weights
    were edited, or that was built with a design record of other settings, has False: its
    certificate (`certify`) is measured, the record is only the intent."""
    design_record = model.design
    if not design_record:
        return None
    inside = (constants["encoder_mean"] <= design_record["encoder_mean"]
              and constants["decoder"] <= design_record["decoder"])
    if (design_record.get("encoder_std") or 0.0) > 0.0:  # else it relies on the cap alone
        inside = inside and constants["encoder_std"] <= design_record["encoder_std"]
    same_noise = (design_record.get("gamma") == model.posterior_std
                  and design_record.get("std_cap") == model.std_cap)
    # the radius depends on m (the chi-square quantiles): a record of another latent_dim
    same_latent = design_record.get("latent_dim") == model.latent_dim
    if not (inside and same_noise and same_latent):
        return False
    # and on the image size, through the reconstruction's rounding slack that from_target
    # took off r: a record of a 28 x 28 model on a 64 x 64 x 3 one was "met" while every
    # input certified 1 % below its target (an adversarial review, 2026-12-04). The guarantee
    # for every input, from the measured constants, as from_target designed it
    try:
        tolerance = float(model.reconstruction_tolerance(design_record["r"]))
    except ValueError:  # r within this image size's rounding slack: nothing is certified
        return False
    guaranteed = design.budget_radius(
        constants["encoder_mean"],
        None if design_record.get("encoder_std") is None else constants["encoder_std"],
        constants["decoder"], r=tolerance, p=design_record["p"], latent_dim=model.latent_dim,
        method=design_record["method"], std_cap=model.std_cap_bound(),
        gamma=model.posterior_std_bound())
    return bool(guaranteed >= design_record["target_radius"])


def _certified_weights(model: LipschitzVAE) -> list:
    """The variables that the networks whose constants `certify` freezes (encoder mean, encoder
    std, decoder) compute with, in a fixed order: every weight but a per-step constraint's
    state (e.g. the subspace of `SubspaceClip`), which steers training and is not exported."""
    steering = set()
    for net in model.lipschitz_networks().values():
        for layer in constraints.iter_layers(net):
            control = getattr(getattr(layer, "kernel", None), "constraint", None)
            if isinstance(control, constraints.StatefulConstraint):
                steering.update(id(w) for w in control.state_weights().values())
    return [w for net in model.lipschitz_networks().values() for w in net.weights
            if id(w) not in steering]


def _weights_fingerprint(weights) -> tf.Tensor:
    """(len(weights), 8) uint8: farmhash64 of each variable's bytes (`tf.fingerprint`), in the
    graph of a signature as at export time. Not a cryptographic digest: it detects weights
    edited or corrupted after export, not an adversary who also rewrites the graph's constant."""
    return tf.concat([tf.fingerprint(tf.reshape(tf.convert_to_tensor(w), [1, -1]))
                      for w in weights], axis=0)


def _archive(model: LipschitzVAE, method: str, frozen: tuple, metadata: dict,
             std_cap: float | None):
    m_mu, m_sigma, m_g, latent_dim, gamma = frozen
    certified_weights = _certified_weights(model)
    # the frozen constants hold for these weights only: `certify` refuses to answer for others
    fingerprint_at_export = _weights_fingerprint(certified_weights).numpy()
    # as model.reconstruction_tolerance: r, at most the pixel space's diameter, less the
    # float32 rounding of the reconstruction
    rounding_slack = model_lib.reconstruction_rounding_slack(model.image_shape)
    diameter = model_lib.pixel_space_diameter(model.image_shape)
    # as model.std_statistics, by the same map (its constants measured here, not in the graph)
    std_statistics = None if model.encoder_std_net is None else model.std_statistics_map()
    images_spec = tf.TensorSpec((None, *model.image_shape), tf.float32, name="images")
    row_spec = {name: tf.TensorSpec((None,), tf.float64, name=name) for name in ("r", "p")}

    def checked_shape(images):
        # a loaded signature does not enforce its spec's shape, and a fixed std's certificate
        # never looks at the pixels: without this, any 4-D batch got a radius
        return tf.ensure_shape(images, images_spec.shape)

    def reconstruct(images):
        images = checked_shape(images)
        return {"reconstruction": tf.cast(model(images, training=False), tf.float32)}

    def encode(images):
        mu, sigma = model.posterior_params(model.checked_pixels(checked_shape(images), "images"),
                                           training=False)
        return {"latent_mean": tf.cast(mu, tf.float32), "latent_std": tf.cast(sigma, tf.float32)}

    def certify(images, r, p):
        images = checked_shape(images)
        unchanged = tf.reduce_all(tf.equal(_weights_fingerprint(certified_weights),
                                           tf.constant(fingerprint_at_export)))
        weights_checked = tf.debugging.Assert(unchanged, [
            "certify: the SavedModel's weights differ from those its Lipschitz constants were "
            "measured on at export (edited or corrupted after export); the frozen constants do "
            "not hold for them. Export the model again (lipvae_tf.export.export_saved_model)"])
        with tf.control_dependencies([weights_checked]):
            images = tf.identity(images)
        s_max = None
        if model.encoder_std_net is None:  # as model.std_statistics: gamma sqrt(m), rounded up
            s = tf.fill(tf.shape(images)[:1],
                        tf.constant(fixed_std(gamma, latent_dim)[1], tf.float64))
        else:
            s, s_max = std_statistics(model.encoder_std_net(images, training=False))
        # one value per image: rank 1 (a loaded signature does not enforce its (None,) spec,
        # and the graph's static rank 1 folds tf.rank away: EnsureShape checks at run time), then
        # the length (assert_equal on the two shapes alone broadcast, and let r of shape (1, 1),
        # (n, n) or () through to the graph's arithmetic)
        r, p = tf.ensure_shape(r, [None]), tf.ensure_shape(p, [None])
        checks_ = [tf.debugging.assert_equal(
            tf.size(v), tf.size(s), message=f"certify: {name} needs one value per image, "
            "shape (batch,)") for name, v in (("r", r), ("p", p))]
        with tf.control_dependencies(checks_):
            # an r above the diameter is certified as the diameter (NaN and inf kept as they are)
            r_certified = tf.where(r > diameter, tf.constant(diameter, tf.float64), r)
            r_exact = (r_certified - rounding_slack) * (1 - 2.0**-52)  # <= 0 (NaN) for tiny r
            # r above the magnitude limit is NaN as certified_radius refuses it (the slack
            # taken off first let r just above 1e75 through, an adversarial review)
            r_exact = tf.where(r <= MAGNITUDE_LIMIT, r_exact,
                               tf.constant(math.nan, tf.float64))
            radius = graph_bounds.radius(method, m_mu, m_sigma, m_g, s, r_exact, p,
                                         latent_dim=latent_dim, gamma=gamma, std_cap=std_cap,
                                         s_max=s_max)
        # as model.check_images: finite pixels in [0, 1] (a graph answers NaN instead of raising)
        pixels_ok = tf.reduce_all(tf.math.is_finite(images) & (images >= 0) & (images <= 1),
                                  axis=[1, 2, 3])
        radius = tf.where(pixels_ok, radius, tf.fill(tf.shape(radius), tf.constant(math.nan,
                                                                                   tf.float64)))
        return {"certified_radius": radius}

    def describe(ignored):
        nan = math.nan
        values = {
            "encoder_mean_lipschitz": tf.constant(m_mu, tf.float64),
            "encoder_std_lipschitz": tf.constant(m_sigma, tf.float64),
            "decoder_lipschitz": tf.constant(m_g, tf.float64),
            "latent_dim": tf.constant(latent_dim, tf.int64),
            "posterior_std": tf.constant(nan if gamma is None else model.posterior_std,
                                         tf.float64),
            "posterior_std_applied": tf.constant(nan if gamma is None else gamma, tf.float64),
            "std_cap": tf.constant(nan if model.std_cap is None else model.std_cap, tf.float64),
            "std_cap_applied": tf.constant(nan if std_cap is None else std_cap, tf.float64),
            "reconstruction": tf.constant(model.reconstruction),
            "image_shape": tf.constant(model.image_shape, tf.int64),
            "method": tf.constant(method),
            "lipvae_tf_version": tf.constant(metadata["lipvae_tf_version"]),
            "format_version": tf.constant(FORMAT_VERSION, tf.int64),
            # as in assets.extra: whether the design record's radius holds for these weights
            # ("true", "false", or "none" without a record), so that a Serving client sees it
            "design_met": tf.constant({True: "true", False: "false", None: "none"}[
                metadata["design_met"]]),
            "design_target_radius": tf.constant(
                (model.design or {}).get("target_radius") or nan, tf.float64),
        }
        rows = tf.shape(ignored)[:1]
        return {name: tf.broadcast_to(value, tf.concat([rows, tf.shape(value)], 0))
                for name, value in values.items()}

    archive = keras.export.ExportArchive()
    # no archive.track(model): the endpoints capture the model's variables, which the archive
    # saves; tracking the Keras wrappers as well would store every weight twice (2x the files and
    # 2x the memory in TF Serving, keras-team/keras#23553)
    archive.add_endpoint("serving_default", reconstruct, input_signature=[images_spec])
    archive.add_endpoint("encode", encode, input_signature=[images_spec])
    archive.add_endpoint("certify", certify,
                         input_signature=[images_spec, row_spec["r"], row_spec["p"]])
    archive.add_endpoint("metadata", describe,
                         input_signature=[tf.TensorSpec((None,), tf.float32, name="ignored")])
    return archive


def read_metadata(export_dir: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata that `export_saved_model` writes beside the SavedModel (no TensorFlow
    needed): the frozen values of the `metadata` signature (constants, std cap as applied,
    reconstruction mode, certificate method, image shape, versions).

    Args:
        export_dir: the folder `export_saved_model` returned (with TF Serving's layout,
            `<base>/<version>`), a str or os.PathLike (not the base folder: its message then
            names the latest version to read).

    Returns:
        The parsed JSON object, a dict.

    Raises:
        FileNotFoundError: naming the folder when it holds no metadata: it does not exist, or
            it is not an `export_saved_model` folder (Keras' `model.export` writes none).
        ValueError: naming the file when it is not valid JSON or not a JSON object (corrupted
            or tampered).
        TypeError: if export_dir is not a str, bytes or os.PathLike (`os.fspath`).
    """
    folder = os.fspath(export_dir)
    path = os.path.join(folder, METADATA_FILE)
    if not os.path.isfile(path):
        versions = sorted((name for name in _listing(folder) if name.isdigit()
                           and os.path.isfile(os.path.join(folder, name, METADATA_FILE))),
                          key=int)  # the folders' own names ("0007" stays "0007")
        if versions:
            kind = (f"the base folder of a versioned export (TF Serving's layout): read "
                    f"{os.path.join(folder, versions[-1])} (versions {', '.join(versions)})")
        elif os.path.isfile(os.path.join(folder, "saved_model.pb")):
            kind = ("a SavedModel without the package's metadata (written by model.export or "
                    "tf.saved_model.save, not lipvae_tf.export.export_saved_model)")
        else:
            kind = "not an exported model folder"
        raise FileNotFoundError(f"{folder} has no {METADATA_FILE}: it is {kind}")
    try:
        with open(path, encoding="utf-8") as f:
            metadata = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}): corrupted or tampered") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{path} holds a JSON {type(metadata).__name__}, not the metadata "
                         "object: corrupted or tampered")
    return metadata


def _listing(folder: str) -> list[str]:
    return os.listdir(folder) if os.path.isdir(folder) else []


def metadata_request() -> dict[str, Any]:
    """The REST body that asks the `metadata` signature for the frozen values (one row)."""
    return {"signature_name": "metadata", "instances": [{"ignored": 0.0}]}


def _per_instance(name: str, value, n: int) -> list[float]:
    array = checks.real_array(name, value)
    if array.ndim == 0:
        array = np.full(n, float(array))
    if array.shape != (n,):
        raise ValueError(f"{name} must be a number or have one value per image ({n}), got shape "
                         f"{array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite (JSON has no NaN or Inf), got {value}")
    return [float(v) for v in array]


def rest_request(images: ArrayLike, signature_name: str = "serving_default", *, r=None,
                 p=None) -> dict[str, Any]:
    """A TF Serving REST predict body in row format for `POST /v1/models/NAME:predict`.

    {"signature_name": name, "instances": [{"images": [[[...]]]}, ...]}; for "certify" each
    instance also holds "r" and "p" (numbers, or sequences with one value per image). images:
    (batch, H, W, C) floats in [0, 1]. The body is JSON serialisable (`json.dumps(body)`); float32
    pixels are written as the doubles equal to them, so the server parses back the same float32.

    Args:
        images: (batch, H, W, C) floating-point pixels in [0, 1] (array_like, tensor), batch
            >= 1.
        signature_name: "serving_default", "encode" or "certify" ("metadata" has its own
            body: `metadata_request`).
        r: "certify" only: the reconstruction tolerance, an l2 distance in pixel space: a
            number or one value per image, finite, above the reconstruction's float32
            rounding slack (`lipvae_tf.model.reconstruction_rounding_slack`) and at most 1e75.
        p: "certify" only: the probability level, a number or one value per image, in
            [1/2, 1).

    Returns:
        A dict {"signature_name": str, "instances": list of one dict per image}: "images"
        nested lists of Python floats (H x W x C, float32 values), and for "certify" "r" and
        "p" Python floats.

    Raises:
        TypeError: if images are not floating point, or r or p is not real.
        ValueError: for another signature_name, images that are not rank 4, empty, ragged, or
            not finite pixels in [0, 1]; r or p missing for "certify" or given for another
            signature; r or p neither a number nor of shape (batch,), or not finite; r at most
            the rounding slack or above 1e75; p outside [1/2, 1).
    """
    if signature_name not in ("serving_default", "encode", "certify"):
        raise ValueError(f"signature_name must be 'serving_default', 'encode' or 'certify', got "
                         f"{signature_name!r}")
    array = checks.as_array("images", images)
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"images must hold floating-point pixels in [0, 1], got {array.dtype}")
    if array.ndim != 4:
        raise ValueError(f"images must have shape (batch, H, W, C), got {array.shape}")
    if not len(array):
        # TF Serving refuses an empty "instances" list ("No values in 'instances' array")
        raise ValueError("images must hold at least one image (TF Serving refuses an empty "
                         "'instances' list)")
    array = checks.pixel_values("images", array).astype(np.float32)
    instances = [{"images": image.tolist()} for image in array]
    if signature_name == "certify":
        if r is None or p is None:
            raise ValueError("signature 'certify' needs r and p")
        r_rows, p_rows = _per_instance("r", r, len(array)), _per_instance("p", p, len(array))
        # the server answers NaN for such rows (a graph cannot raise): refused here, by name, as
        # LipschitzVAE.certified_radius refuses them (r above the reconstruction's rounding
        # slack and at most 1e75)
        if r_rows:
            model_lib.checked_tolerance(r_rows, array.shape[1:])
        if any(not 0.5 <= value < 1 for value in p_rows):
            raise ValueError(f"p must be a probability in [1/2, 1), got {p}")
        for instance, r_i, p_i in zip(instances, r_rows, p_rows):
            instance["r"], instance["p"] = r_i, p_i
    elif r is not None or p is not None:
        raise ValueError(f"r and p belong to the 'certify' signature, not {signature_name!r}")
    return {"signature_name": signature_name, "instances": instances}
