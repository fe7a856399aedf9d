"""The model zoo: pretrained certified VAEs per dataset, sha256-verified.

Layout (keras_hub-preset style), one folder per model under `zoo/<dataset>/<model>/`:
    config.json      how the model is trained and evaluated (always present)
    model.keras      the weights                    } written by `build`, listed with their
    saved_model/1/   the TF Serving SavedModel      } sha256 in manifest.json
    card.json        the metric card (evaluation numbers, training command, data checksum)
    manifest.json    sha256 of every file above
A config whose weights are not bundled (e.g. MNIST here) can be listed and built, not loaded.

    python -m lipvae_tf.zoo list
    python -m lipvae_tf.zoo card fashion_mnist_mlp_r1
    python -m lipvae_tf.zoo table                           # the bundled cards side by side
    python -m lipvae_tf.zoo curves --output=curves.png      # their validation-ELBO curves
    python -m lipvae_tf.zoo build fashion_mnist_mlp_r1      # train, evaluate, export, manifest
    python -m lipvae_tf.zoo verify fashion_mnist_mlp_r1     # recompute the card's certificates
    python -m lipvae_tf.zoo reexport fashion_mnist_mlp_r1   # SavedModel again, same weights
    python -m lipvae_tf.zoo export fashion_mnist_mlp_r1 --output=/models/fmnist
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import lipvae_tf

if lipvae_tf._is_cli(__name__):  # a command, not an import: before TensorFlow loads
    lipvae_tf._cli_native_log_level()

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from lipvae_tf import attacks, bounds, checks, data, evaluate, export, report, train
from lipvae_tf.model import RECONSTRUCTIONS, LipschitzVAE, StandardVAE

__all__ = [
    "ZOO_DIR", "BUNDLED_ZOO_DIR", "zoo_dir", "FILES", "SAVED_MODEL", "KINDS", "CONFIG_KEYS",
    "OPTIONAL_CONFIG_KEYS", "ZooIntegrityError",
    "list_models", "model_dir",
    "model_config", "sha256_file", "verify", "load", "load_saved_model", "saved_model_path",
    "model_card", "build", "AUDIT_IMAGES", "certified_by_reconstruction", "reconstruction_errors",
    "audit_reconstructions", "write_manifest", "reexport", "certified_quantiles", "cards_table",
    "validation_curves", "plot_curves", "main",
]

BUNDLED_ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo"
# None: `zoo_dir()` reads $LIPVAE_ZOO_DIR when it is used (it was read once, at import, so a
# variable set later in the same process was ignored); a path set here takes precedence.
ZOO_DIR: Path | None = None
FILES = ("model.keras", "card.json", "config.json")
SAVED_MODEL = "saved_model"
KINDS = ("lipschitz", "standard")  # config.json's "kind": a LipschitzVAE or a StandardVAE
# config.json's keys: the required ones, then the optional ones ("weights": why none are bundled)
CONFIG_KEYS = ("name", "dataset", "kind", "description", "train")
OPTIONAL_CONFIG_KEYS = ("evaluate", "weights")


class ZooIntegrityError(ValueError):
    """A zoo file is missing from its manifest, absent, or does not match its sha256."""


def _restore(folder: Path, name: str | None) -> str:
    """What a user can do about a damaged bundled model: the zoo has no download, and its
    weights ship with the repository, not with the pip package (MANIFEST.in)."""
    rebuild = f"rebuild it with `python -m lipvae_tf.zoo build {name or '<its name>'} --overwrite`"
    if Path(folder).resolve().is_relative_to(BUNDLED_ZOO_DIR):
        return f"restore the repository's copy (git checkout -- {folder}) or {rebuild}"
    # a zoo of the user's own (LIPVAE_ZOO_DIR, ZOO_DIR) is not in this repository's git
    return f"restore your copy of {folder} (it is outside the repository's zoo/) or {rebuild}"


def _read_json(path: Path, keys: tuple[str, ...] = (), name: str | None = None) -> dict:
    """A zoo JSON file (in a model's folder) as a dict holding `keys`, or ZooIntegrityError
    naming the file (every zoo file is a JSON object: config, card, manifest)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ZooIntegrityError(
            f"{path}: unreadable ({error}); {_restore(path.parent, name)}") from error
    if not isinstance(value, dict):
        raise ZooIntegrityError(f"{path}: not a table of values (corrupted or tampered); "
                                f"{_restore(path.parent, name)}")
    missing = [key for key in keys if key not in value]
    if missing:
        raise ZooIntegrityError(f"{path}: no {', '.join(map(repr, missing))} (corrupted or "
                                f"tampered); {_restore(path.parent, name)}")
    return value


def _checked_config(folder: Path, name: str | None) -> dict:
    """config.json of a model folder with every value checked as the training and the
    evaluation will check it, or ZooIntegrityError naming the file: a typo of "kind" built a
    LipschitzVAE, "train": [] raised a bare AttributeError, a negative learning rate was
    accepted, and a missing "description" failed `zoo list` with "error: description" (an
    operator's review, 2026-12-04)."""
    path = folder / "config.json"
    config = _read_json(path, CONFIG_KEYS, name)
    try:
        unknown = sorted(set(config) - {*CONFIG_KEYS, *OPTIONAL_CONFIG_KEYS})
        if unknown:
            raise ValueError(f"unknown keys {unknown}; a config holds {CONFIG_KEYS} and "
                             f"optionally {OPTIONAL_CONFIG_KEYS}")
        for key in ("name", "description", "weights"):
            if key in config and not isinstance(config[key], str):
                raise TypeError(f"{key!r} must be a str, got {config[key]!r}")
        checks.one_of("kind", config["kind"], KINDS)
        checks.one_of("dataset", config["dataset"], data.NAMES)
        for key in ("train", "evaluate"):
            if not isinstance(config.get(key, {}), dict):
                raise TypeError(f"{key!r} must be a table of settings, got {config[key]!r}")
        trained = _train_config(config, "unused", None)  # TrainConfig checks every setting
        if trained.dataset != config["dataset"]:
            raise ValueError(f"'train' reads dataset {trained.dataset!r}, the model's is "
                             f"{config['dataset']!r}")
        if "models" in config.get("evaluate", {}):  # build names the model it evaluates
            raise ValueError("'evaluate' cannot set 'models': the build evaluates the model "
                             "it trains")
        evaluate.EvalConfig(**config.get("evaluate", {}))
    except (TypeError, ValueError) as error:  # TrainConfig(**{"typo": 1}) is a TypeError
        raise ZooIntegrityError(f"{path}: {error} (corrupted or tampered); "
                                f"{_restore(folder, name)}") from error
    return config


@contextlib.contextmanager
def _card_values(name: str):
    """Reading a verified card's values: a KeyError, TypeError, ValueError or AttributeError
    becomes ZooIntegrityError naming card.json (a card that verifies, its sha256 edited with
    it, but lacks a value printed only the key's name, and "curve": [1] raised a bare
    AttributeError: an operator's review, 2026-12-04)."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        what = (f"has no {error.args[0]!r}" if isinstance(error, KeyError)
                else f"holds a value of the wrong kind ({error})")
        raise ZooIntegrityError(
            f"{model_dir(name) / 'card.json'}: the card {what} (tampered, or written by "
            f"another version); {_restore(model_dir(name), name)}") from error


def zoo_dir() -> Path:
    """The zoo folder in use: `ZOO_DIR` if set, else $LIPVAE_ZOO_DIR as it is now, else the
    repository's `zoo/`.

    Raises:
        FileNotFoundError: naming the folder and where it came from, when it does not exist (an
            empty list of models said nothing about a mistyped LIPVAE_ZOO_DIR).
    """
    if ZOO_DIR is not None:
        root, source = Path(ZOO_DIR), "lipvae_tf.zoo.ZOO_DIR"
    elif os.environ.get("LIPVAE_ZOO_DIR"):
        root, source = Path(os.environ["LIPVAE_ZOO_DIR"]).expanduser(), "LIPVAE_ZOO_DIR"
    else:
        root, source = BUNDLED_ZOO_DIR, "the repository's zoo/"
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise FileNotFoundError(f"the zoo folder {root} (from {source}) {what}")
    return root


def _folders(root: Path | None = None) -> dict[str, Path]:
    """{name: folder}; a folder whose config.json is unreadable (or names no str) is listed
    under the name its path gives (<dataset>_<folder>), so that only that model fails, with
    ZooIntegrityError. A model folder is one with a config.json, a manifest or a model file:
    one whose config.json was a folder, or missing, was left out without a word. A name claimed
    by two folders keeps the first (in path order), with a warning naming both (the second one
    was silently unreachable: an operator's review, 2026-12-04)."""
    root = Path(root) if root is not None else zoo_dir()
    folders = {}
    for folder in sorted(root.glob("*/*")):
        if folder.is_dir() and any((folder / f).exists() for f in (*FILES, "manifest.json")):
            try:
                name = _read_json(folder / "config.json", ("name",))["name"]
                if not isinstance(name, str):  # a list was "unhashable"
                    raise ZooIntegrityError(f"a name that is not a str: {name!r}")
            except ZooIntegrityError:
                name = f"{folder.parent.name}_{folder.name}"
            if name in folders:
                warnings.warn(f"zoo model {name!r} is named in {folders[name]} and in {folder}: "
                              f"the second is left out (rename it in its config.json)",
                              stacklevel=3)
                continue
            folders[name] = folder
    return folders


def list_models(dataset: str | None = None, *, bundled_only: bool = False) -> list[str]:
    """Names of the zoo models (optionally of one dataset, or only those with weights). A model
    whose config.json is unreadable, missing or fails its checks (`model_config`) is left out
    with a warning naming the file and what is wrong.

    Args:
        dataset: None (every dataset) or a dataset name, e.g. "fashion_mnist".
        bundled_only: if True, only the models with bundled weights (a manifest.json).

    Returns:
        The names, in the order of their folders' paths under `zoo_dir()`.

    Raises:
        TypeError: if bundled_only is not a bool.
        ValueError: if dataset is not None or one of `lipvae_tf.data.NAMES` (an unknown name
            listed nothing, without a word).
        FileNotFoundError: if the zoo folder does not exist (`zoo_dir`).
    """
    bundled_only = checks.flag("bundled_only", bundled_only)
    if dataset is not None:
        checks.one_of("dataset", dataset, data.NAMES)
    names = []
    for name, folder in _folders().items():
        try:
            config = _checked_config(folder, name)
        except ZooIntegrityError as error:
            warnings.warn(f"zoo model {name!r} left out: {error}", stacklevel=2)
            continue
        if dataset not in (None, config["dataset"]):
            continue
        if bundled_only and not (folder / "manifest.json").is_file():
            continue
        names.append(name)
    return names


def model_dir(name: str) -> Path:
    """The folder of a zoo model, or a KeyError listing the known names (a TypeError for a
    name that is not a string).

    Args:
        name: the zoo model's name (`list_models`), a str.

    Returns:
        The model's folder, `zoo_dir()/<dataset>/<model>`.

    Raises:
        TypeError: if name is not a str.
        KeyError: if no zoo model has that name.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a zoo model name (a str), got {type(name).__name__}; "
                        "zoo.list_models() names them")
    folders = _folders()
    if name not in folders:
        raise KeyError(f"no zoo model {name!r}; known: {', '.join(folders) or 'none'}")
    return folders[name]


def model_config(name: str) -> dict:
    """The model's config.json: training and evaluation settings, checked.

    Args:
        name: the zoo model's name (`list_models`), a str.

    Returns:
        The config as a dict: "name", "dataset" (one of `lipvae_tf.data.NAMES`), "kind" (one
        of `KINDS`), "description" and "train" (`train.TrainConfig` settings), optionally
        "evaluate" (`evaluate.EvalConfig` settings) and "weights" (why none are bundled).

    Raises:
        TypeError, KeyError: as `model_dir`.
        ZooIntegrityError: if config.json is unreadable, lacks a key of `CONFIG_KEYS`, has one
            that is unknown, or holds a value that `TrainConfig`, `EvalConfig` or the checks
            above refuse (the message names the file and the value).
    """
    return _checked_config(model_dir(name), name)


def sha256_file(path: Path) -> str:
    """The hex sha256 digest of the file's bytes, read in 1 MiB blocks.

    Args:
        path: the file.

    Returns:
        64 lowercase hex digits.

    Raises:
        OSError: if the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _bundled_files(folder: Path) -> list[str]:
    """Every file a built model ships, relative to its folder (manifest.json excluded)."""
    files = [f for f in FILES if (folder / f).is_file()]
    saved = folder / SAVED_MODEL
    files += sorted(str(p.relative_to(folder)) for p in saved.rglob("*") if p.is_file())
    return files


def verify(name: str) -> Path:
    """Check every file of the manifest against its sha256; the model's folder if all match.

    Args:
        name: the zoo model's name (`list_models`), a str.

    Returns:
        The model's folder.

    Raises:
        TypeError: if name is not a str.
        KeyError: if no zoo model has that name.
        ZooIntegrityError: if manifest.json is unreadable or missing while the folder holds
            model files, a file is unlisted, listed but missing, or fails its sha256.
        FileNotFoundError: if the model has no bundled weights (no manifest, no model files).
    """
    folder = model_dir(name)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        shipped = [f for f in _bundled_files(folder) if f != "config.json"]
        if shipped:
            raise ZooIntegrityError(f"zoo model {name!r}: manifest.json is missing, though the "
                                    f"folder holds {shipped[0]}; {_restore(folder, name)}")
        config = model_config(name)
        reason = config.get("weights", "not built yet")
        source = config["train"].get("source")
        needs = (" (it reads the data with TFDS, which downloads it when it is not prepared "
                 "yet: that needs internet access)" if source == "tfds" else "")
        raise FileNotFoundError(
            f"zoo model {name!r} has no bundled weights ({reason}); build them with "
            f"`python -m lipvae_tf.zoo build {name}`{needs}")
    manifest = _read_json(manifest_path, ("sha256",), name)["sha256"]
    if not isinstance(manifest, dict):
        raise ZooIntegrityError(f"{manifest_path}: 'sha256' is not a table of files")
    unlisted = set(_bundled_files(folder)) - set(manifest)
    if unlisted:
        raise ZooIntegrityError(
            f"zoo model {name!r}: files not in the manifest: {sorted(unlisted)}")
    # a built model ships all of these: a manifest that omits one (and a folder without it)
    # passed, and `verify` said "every file matches" before failing to load model.keras (an
    # operator's review, 2026-12-04)
    version = f"{SAVED_MODEL}/1"
    omitted = [f for f in (*FILES, f"{version}/saved_model.pb",
                           f"{version}/variables/variables.index") if f not in manifest]
    if not any(f.startswith(f"{version}/variables/variables.data-") for f in manifest):
        omitted.append(f"{version}/variables/variables.data-*")
    if omitted:
        raise ZooIntegrityError(
            f"zoo model {name!r}: manifest.json does not list {', '.join(omitted)}, which every "
            f"built model ships (removed or tampered); {_restore(folder, name)}")
    for relative, expected in manifest.items():
        path = folder / relative
        if not path.is_file():
            raise ZooIntegrityError(f"zoo model {name!r}: {relative} is missing")
        if sha256_file(path) != expected:
            raise ZooIntegrityError(
                f"zoo model {name!r}: {relative} does not match its sha256 in manifest.json "
                f"(corrupted or tampered); {_restore(folder, name)}")
    return folder


def load(name: str) -> LipschitzVAE:
    """The verified zoo model, ready to certify (its kernels were finalized before saving),
    compiled with Adam at the learning rate of its training so that `evaluate` and `fit` work
    as on a model of your own (the file holds no optimizer state: fine-tuning starts a fresh
    one). Raises what `verify` raises: ZooIntegrityError for files that fail their checksums,
    FileNotFoundError for a listed model without bundled weights.

    Args:
        name: the zoo model's name (`list_models`), a str.

    Returns:
        The compiled model (a `LipschitzVAE`, or a `StandardVAE` for a standard model).

    Raises:
        TypeError, KeyError, ZooIntegrityError, FileNotFoundError: as `verify` raises them,
            before the model is loaded.
    """
    model = _load_keras(verify(name), name)
    rate = _train_config(model_config(name), "unused", None).learning_rate
    model.compile(keras.optimizers.Adam(rate))
    # built now, as training would build it: a compiled model whose optimizer has only its
    # iteration count and rate saves those alone, and loading that file made Keras warn
    # "Skipping variable loading for optimizer" (the loaded optimizer builds all its slots)
    model.optimizer.build(model.trainable_variables)
    return model


def _load_keras(folder: Path, name: str, **kwargs) -> keras.Model:
    """The verified folder's model.keras, or ZooIntegrityError for a file that is no .keras
    archive or whose weights cannot be read (truncated with its manifest entry: Keras said
    "File not found", h5py "Unable to synchronously open file")."""
    try:
        return evaluate.load_model_file(name, folder / "model.keras", **kwargs)
    except ValueError as error:
        raise ZooIntegrityError(f"{error} (corrupted or tampered); "
                                f"{_restore(folder, name)}") from None


def load_saved_model(name: str):
    """The verified SavedModel (`tf.saved_model.load`), with the TF Serving signatures.

    Args:
        name: the zoo model's name (`list_models`), a str.

    Returns:
        The loaded SavedModel of version 1, with the signatures of `export.SIGNATURES`.

    Raises:
        TypeError, KeyError, ZooIntegrityError, FileNotFoundError: as `verify` raises them,
            before the SavedModel is loaded.
    """
    return tf.saved_model.load(str(verify(name) / SAVED_MODEL / "1"))


def reexport(name: str) -> Path:
    """Writes a bundled model's SavedModel again from its verified `model.keras`, with the
    installed package's graph, and rewrites the manifest: for maintainers, after a change to the
    exported graph (`certify`'s certificates, input checks) that the bundled SavedModels should
    carry. The weights are not touched (no `finalize`: the bundled kernels were finalized before
    saving) and the `certify` signature keeps the certificate method it had ("best" for a model
    without a SavedModel yet); the frozen constants are measured again on those weights, so they
    can differ from before only in the last digits of the float64 SVD.

    Args:
        name: the zoo model's name (`list_models`), a str.

    Returns:
        The new SavedModel version folder, `<model folder>/saved_model/1`.

    Raises:
        TypeError, KeyError, ZooIntegrityError, FileNotFoundError: as `verify` raises them,
            before anything is written.
        OSError: if the SavedModel or the manifest cannot be written.
    """
    folder = verify(name)
    base = folder / SAVED_MODEL
    method = (export.read_metadata(base / "1")["method"]
              if (base / "1" / "saved_model.pb").is_file() else "best")
    model = _load_keras(folder, name, compile=False)
    written = export.export_saved_model(model, base, method=method, version=1, overwrite=True,
                                        finalize=False)
    write_manifest(folder)
    return Path(written)


def saved_model_path(name: str) -> Path:
    """The TF Serving model base folder (holding version 1) of a verified zoo model.

    Args:
        name: the zoo model's name (`list_models`), a str.

    Returns:
        `<model folder>/saved_model`.

    Raises:
        TypeError, KeyError, ZooIntegrityError, FileNotFoundError: as `verify` raises them.
    """
    return verify(name) / SAVED_MODEL


def model_card(name: str) -> dict:
    """The verified metric card.

    Args:
        name: the zoo model's name (`list_models`), a str.

    Returns:
        card.json as a dict (evaluation numbers, training command, data checksums).

    Raises:
        TypeError, KeyError, ZooIntegrityError, FileNotFoundError: as `verify` raises them.
        ZooIntegrityError: also if card.json is unreadable or not a table.
    """
    return _read_json(verify(name) / "card.json", name=name)


# ----- building -------------------------------------------------------------------------------

def _train_config(config: dict, run_dir: str, epochs: int | None) -> train.TrainConfig:
    settings = {**config["train"], "output_dir": run_dir, "baseline": False}
    if epochs is not None:
        settings["epochs"] = epochs
    for key in ("hidden_units", "constants"):
        if settings.get(key) is not None:
            settings[key] = tuple(settings[key])
    return train.TrainConfig(**settings)


def _data_checksum(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def build(name: str, *, epochs: int | None = None, run_root: str = "runs/zoo",
          overwrite: bool = False) -> dict:
    """Train, certify, evaluate (attacks) and export a zoo model; write card and manifest.

    `epochs` overrides the config (for quick trials; the card records what was used).
    A model that already has weights (a manifest) is replaced only with overwrite=True: the
    bundled models are tracked by git, and a quick trial must not silently replace them.
    Writes model.keras, saved_model/1, card.json and manifest.json into the model's folder; a
    finished training of the same config in `<run_root>/<name>` is reused.

    Args:
        name: the zoo model's name (`list_models`), a str.
        epochs: None (the config's), or the number of epochs to train.
        run_root: the folder of the training runs.
        overwrite: a bool: replace existing weights.

    Returns:
        The card (the dict written to card.json).

    Raises:
        TypeError: if overwrite is not a bool, name is not a str, or epochs not an int.
        KeyError: if no zoo model has that name.
        FileExistsError: if the model has weights and overwrite is False.
        ValueError: if epochs < 1, or if run_root, or a folder above it, is a file
            (`checks.folder_path`).
        ZooIntegrityError: if config.json is unreadable.
    """
    overwrite = checks.flag("overwrite", overwrite)
    if epochs is not None:  # before the weights check, which would hide a bad value
        epochs = checks.positive_int("epochs", epochs)
    checks.folder_path("run_root", run_root)  # before the training whose checkpoints go there
    folder = model_dir(name)
    if (folder / "manifest.json").is_file() and not overwrite:
        raise FileExistsError(
            f"zoo model {name!r} already has weights in {folder}; pass overwrite=True "
            "(--overwrite) to replace them, or point LIPVAE_ZOO_DIR at another folder")
    config = model_config(name)
    run_dir = os.path.join(run_root, name)
    cfg = _train_config(config, run_dir, epochs)
    keras.utils.set_random_seed(cfg.seed)
    train_x, train_source = train.load_images(cfg, "train")
    test_x, test_source = train.load_images(cfg, "test")
    model = (StandardVAE(**train._shape_kwargs(cfg)) if config["kind"] == "standard"
             else train.build_model(cfg))
    model, trained = _trained(name, model, train_x, test_x, cfg)
    print(f"zoo build {name}: robustness evaluation (attacks on "
          f"{config.get('evaluate', {}).get('num_inputs', 'the default number of')} inputs)",
          flush=True)
    evaluation = evaluate.EvalConfig(models={name: trained["model_path"]},
                                     **config.get("evaluate", {}))
    measured = trained["test"]  # train_one's IWAE on the same images: reuse it when comparable
    robustness = evaluate.evaluate_model(
        model, test_x, evaluation,
        log_likelihood_mean=(measured["log_likelihood_iwae"]
                             if measured["iwae_samples"] == evaluation.ll_samples else None))
    robustness.pop("_per_input")
    r, p = cfg.r, cfg.p
    by_reconstruction, audits = {}, {}
    if config["kind"] != "standard":
        by_reconstruction = certified_by_reconstruction(model, test_x, r, p)
        audits = audit_reconstructions(trained["model_path"], test_x[:AUDIT_IMAGES], r, p)
    errors = reconstruction_errors(model, test_x)
    card = {
        "name": name, "dataset": cfg.dataset, "kind": config["kind"],
        "description": config["description"],
        "training_command": f"python -m lipvae_tf.zoo build {name}"
                            + ("" if epochs is None else f" --override_epochs={epochs}"),
        "data": {"train_source": train_source, "test_source": test_source,
                 "train_images": len(train_x), "test_images": len(test_x),
                 "train_sha256": _data_checksum(train_x), "test_sha256": _data_checksum(test_x)},
        "train_config": dataclasses.asdict(cfg),
        "train_seconds": trained["train_seconds"], "epochs": trained["epochs_trained"],
        "epoch_cap": cfg.epochs, "stopped_early": trained["stopped_early"],
        "best_epoch": trained["best_epoch"],  # counted from 1
        "validation": trained["validation"],
        # the learning curve, one value per epoch (validation ELBO in nats, learning rate)
        "curve": {key: trained["history"][key] for key in ("elbo", "val_elbo", "val_finalized_elbo",
                                                          "learning_rate")
                  if key in trained["history"]},
        "final_val_elbo": trained["history"].get("val_elbo", [None])[-1],
        "test": trained["test"],
        "reconstruction": getattr(model, "reconstruction", None),
        "median_l2_reconstruction_error": float(np.median(errors)),
        "certified_radius_by_reconstruction": by_reconstruction,
        "audits_by_reconstruction": audits,
        "constants": trained["constants"], "design": model.design,
        "certified_radius": trained["certified_radius"],
        "certificate": {"r": cfg.r, "p": cfg.p},
        "robustness_evaluation": {"settings": dataclasses.asdict(evaluation) | {"models": None},
                                  **robustness},
        "versions": {"lipvae_tf": export._package_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__, "python": platform.python_version()},
        "built": time.strftime("%Y-%m-%d"),
    }
    # without the optimizer state (2/3 of the files for Adam): zoo models are for inference
    inference = keras.models.load_model(trained["model_path"], compile=False)
    inference.save(folder / "model.keras")
    export.export_saved_model(inference, folder / SAVED_MODEL, version=1, overwrite=True)
    report.write_json(card, str(folder / "card.json"))
    write_manifest(folder)
    print(f"zoo build {name}: written to {folder}", flush=True)
    return card


AUDIT_IMAGES = 50  # the audit: attack at 0.99 x the certificate, confidence 0.999


def _trained(name: str, model, train_x: np.ndarray, test_x: np.ndarray,
             cfg: train.TrainConfig) -> tuple:
    """(trained model, train.train_one's record). A finished training of the same config in
    the run folder (<run_root>/<name>/trained.json and model.keras) is reused, so that a build
    interrupted during its evaluation does not train again; delete that folder to retrain
    after changing the training code."""
    record_path = Path(cfg.output_dir) / "trained.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        # (compared as JSON: the record's tuples came back as lists)
        wanted = json.loads(json.dumps(dataclasses.asdict(cfg)))
        if record["train_config"] == wanted and os.path.isfile(record["model_path"]):
            print(f"zoo build {name}: reusing the finished training in {cfg.output_dir}",
                  flush=True)
            return keras.models.load_model(record["model_path"]), record
    print(f"zoo build {name}: training (at most {cfg.epochs} epochs)", flush=True)
    trained = train.train_one(model, "model", train_x, test_x, cfg, keep_checkpoint=True)
    trained.pop("_radii")
    report.write_json({**trained, "train_config": dataclasses.asdict(cfg)}, str(record_path))
    # the record written: a rerun reuses it from now on, no longer the checkpoint
    shutil.rmtree(train.checkpoint_dir(os.path.join(cfg.output_dir, "model")), ignore_errors=True)
    return model, trained


def certified_by_reconstruction(model: keras.Model, images: np.ndarray, r: float, p: float,
                                modes: Sequence[str] = RECONSTRUCTIONS) -> dict:
    """{mode: summary of the `best` certified radius of `images` for that reconstruction}.

    Args:
        model: a `LipschitzVAE`.
        images: float32 (N, *image_shape), pixels in [0, 1].
        r: the reconstruction tolerance (l2, pixel space), > 0.
        p: the probability level, in [1/2, 1).
        modes: the reconstruction modes (default: `lipvae_tf.model.RECONSTRUCTIONS`).

    Returns:
        {mode: `report.summarize` of the radii (l2, pixel space)}.

    Raises:
        TypeError, ValueError: as `LipschitzVAE.certified_radius` raises them; TypeError for
            modes given as one str (iterated letter by letter).
    """
    # a dict gives its keys (a card's section; empty for a standard VAE)
    modes = _collection("modes", modes, "a collection of reconstruction modes, e.g. ('mean',)")
    return {mode: report.summarize(model.certified_radius(images, r, p, reconstruction=mode))
            for mode in modes}


def reconstruction_errors(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """||x - g(mu(x))||_2 per image (pixel space), g the model's certified reconstruction.

    Args:
        model: a `LipschitzVAE` (its `predict` returns g(mu(x))).
        images: float32 (N, *image_shape), pixels in [0, 1].

    Returns:
        array (N,) of the images' float dtype: the l2 errors in pixel space.
    """
    reconstructed = model.predict(images, batch_size=1000, verbose=0)
    return np.linalg.norm((reconstructed - images).reshape(len(images), -1), axis=1)


def audit_reconstructions(model_path: str | Path, images: np.ndarray, r: float,
                          p: float) -> dict:
    """The audit of the `best` certificate for each reconstruction mode: an attack at 0.99 x
    the certificate (confidence 0.999, attacks.audit_certificate) on `images`; violations
    (upper confidence bound of the probability <= p), the smallest upper bound and the median
    certificate, per mode. Images certified at radius 0 are not attacked.
    docs/theory.md section 8, "The audit".

    Args:
        model_path: a saved `LipschitzVAE` (.keras file).
        images: float32 (N, *image_shape), pixels in [0, 1].
        r: the reconstruction tolerance (l2, pixel space), > 0.
        p: the probability level, in [1/2, 1).

    Returns:
        {mode: {"violations": int, "audited_images": int, "min_probability_upper": float or
        None (no image audited), "certified_median": float (l2, pixel space)}}.
    """
    audits = {}
    trained = keras.models.load_model(model_path, compile=False)
    for mode in RECONSTRUCTIONS:
        print(f"auditing the {mode} certificate on {len(images)} images", flush=True)
        attacked = trained.reconfigured(reconstruction=mode)
        certified = attacked.certified_radius(images, r, p)
        positive = certified > 0  # a radius of 0 certifies nothing there is to attack
        upper = (attacks.audit_certificate(attacked, images[positive], certified[positive], r,
                                           p, confidence=0.999)
                 if positive.any() else np.ones(0))
        audits[mode] = {"violations": int(np.sum(upper <= p)),
                        "audited_images": int(positive.sum()),
                        "min_probability_upper": float(upper.min()) if upper.size else None,
                        "certified_median": float(np.median(certified))}
    return audits


def write_manifest(folder: Path) -> Path:
    """manifest.json with the sha256 of every bundled file of the model folder.

    Args:
        folder: the model's folder.

    Returns:
        The path of the manifest written.

    Raises:
        TypeError: if folder is not a str or os.PathLike.
        NotADirectoryError: if folder is not an existing folder.
        OSError: if a file cannot be read or the manifest cannot be written.
    """
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder must be a path (str or os.PathLike), got "
                        f"{type(folder).__name__}")
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"folder {str(folder)!r} is not an existing folder")
    path = folder / "manifest.json"
    path.write_text(json.dumps(
        {"sha256": {f: sha256_file(folder / f) for f in _bundled_files(folder)}},
        indent=2, sort_keys=True) + "\n")
    return path


def certified_quantiles(name: str, images: np.ndarray) -> dict:
    """The card's certified-radius summaries recomputed from the loaded model: per method
    ("certified_radius") and, for `best`, per reconstruction mode
    ("certified_radius_by_reconstruction", empty for the standard VAE), and the Lipschitz
    constants they used, measured from its weights ("constants").

    Args:
        name: the zoo model's name (`list_models`), a str.
        images: float32 (N, *image_shape), pixels in [0, 1], e.g. the test images.

    Returns:
        {"certified_radius": {method: summary}, "certified_radius_by_reconstruction":
        {mode: summary}, "constants": `LipschitzVAE.lipschitz_constants()`}, each summary a
        `report.summarize` dict (l2, pixel space).

    Raises:
        TypeError, KeyError, ZooIntegrityError, FileNotFoundError: as `verify` raises them.
    """
    model, card = load(name), model_card(name)
    with _card_values(name):  # the card's settings, checked before the certificates
        r = checks.positive_finite("r", card["certificate"]["r"])
        p = checks.probability_level("p", card["certificate"]["p"])
        methods = [checks.one_of("method", m, bounds.METHODS) for m in card["certified_radius"]]
        modes = [checks.one_of("reconstruction", m, RECONSTRUCTIONS)
                 for m in card.get("certified_radius_by_reconstruction", {})]
    return {
        "certified_radius": {m: report.summarize(model.certified_radius(images, r, p, method=m))
                             for m in methods},
        "certified_radius_by_reconstruction": certified_by_reconstruction(
            model, images, r, p, modes=modes),
        "constants": model.lipschitz_constants(),
    }


def _cell(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _posterior_std(card: dict) -> str:
    """How a card's model sets its posterior std: fixed gamma, learned under a cap S, learned."""
    design = card.get("design") or {}  # the model's own settings (a config may say "auto")
    if design.get("gamma"):
        return f"fixed {design['gamma']:g}"
    if design.get("std_cap"):
        return f"cap {design['std_cap']:g}"
    return "learned"


def _collection(name: str, values, expected: str) -> list:
    """`values` (a list, tuple, set, generator, dict keys) as a list, or a TypeError naming
    `name` with the `expected` description for a single str (iterated, "abc" asked for "a", "b"
    and "c") or anything that is not iterable."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be {expected}, got {values!r}")
    return list(values)


def _model_names(names) -> list[str] | None:
    """`names` as a list of str (`_collection`), or None."""
    if names is None:
        return None
    expected = "a list of model names (str) or None"
    names = _collection("names", names, expected)
    if not all(isinstance(name, str) for name in names):
        raise TypeError(f"names must be {expected}, got {names!r}")
    return names


def cards_table(names: list[str] | None = None) -> str:
    """A Markdown table comparing the cards of bundled models (default: all of them).

    The posterior std is fixed (gamma), learned under a cap S, or learned. Certified radii are
    `best` over the whole test set for the model's own reconstruction
    (min / median) and the median for each mode; margins, tightness and violations come from
    the attacks on 50 test images; log p(x) is IWAE-64 on the test set (nats); the l2 error is
    ||x - g(mu(x))||_2 in pixel space.

    Args:
        names: the models, or None for every model with bundled weights.

    Returns:
        The table as one Markdown string.

    Raises:
        TypeError, KeyError, ZooIntegrityError, FileNotFoundError: as `verify` raises them.
    """
    cols = ["model", "R*, r", "recon.", "posterior std", "constants (mu, sigma, g)",
            "cert. min / median",
            "median: mean / parameter", "est. margin median", "cert./margin", "violations",
            "test log p(x)", "test ELBO", "l2 error", "epochs (best; cap)", "train s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for name in _model_names(names) or list_models(bundled_only=True):
        card = model_card(name)
        with _card_values(name):
            lines.append(_card_row(name, card))
    return "\n".join(lines)


def _card_row(name: str, card: dict) -> str:
    """One row of `cards_table`; KeyError / TypeError for a card without its values."""
    cert, robust = card["certified_radius"]["best"], card["robustness_evaluation"]
    constants = card["constants"]
    by_mode = card.get("certified_radius_by_reconstruction") or {}
    audits = card.get("audits_by_reconstruction") or {}
    violations = ([a["violations"] for a in audits.values()] if audits else
                  [robust["certificate_violations"]])
    target = card["train_config"].get("target_radius")
    stopped = card.get("best_epoch")
    return "| " + " | ".join([
        name, f"{_cell(target, 'g')}, {card['certificate']['r']:g}",
        card.get("reconstruction") or "n/a", _posterior_std(card),
        ", ".join(f"{constants[k]:.3g}" for k in ("encoder_mean", "encoder_std", "decoder")),
        "n/a" if card["kind"] == "standard" else f"{cert['min']:.3f} / {cert['median']:.3f}",
        " / ".join(f"{by_mode[m]['median']:.3f}" for m in RECONSTRUCTIONS if m in by_mode)
        or "n/a",
        f"{robust['estimated_margin']['median']:.3f}", _cell(robust["tightness_median"], ".3f"),
        "n/a" if None in violations else " / ".join(map(str, violations)),
        f"{card['test']['log_likelihood_iwae']:.1f}", f"{card['test']['elbo']:.1f}",
        _cell(card.get("median_l2_reconstruction_error"), ".2f"),
        f"{card['epochs']} ({_cell(stopped, 'd')}; {card.get('epoch_cap', card['epochs'])})",
        f"{card['train_seconds']:.0f}"]) + " |"


def validation_curves(names: Sequence[str] | None = None
                      ) -> dict[str, tuple[list[float], int | None]]:
    """Each model's validation-ELBO curve (nats per epoch) and its restored best epoch, as
    `report.learning_curves_figure` takes them. The curve is the one early stopping followed:
    the finalized model's (`val_finalized_elbo`, labelled "NAME (finalized)") where the card has
    it, else `val_elbo`; models without a curve are left out.

    Args:
        names: the models, or None for every model with bundled weights.

    Returns:
        {label: (validation ELBO per epoch, best epoch 1-based or None)}.

    Raises:
        TypeError, KeyError, ZooIntegrityError, FileNotFoundError: as `verify` raises them.
    """
    curves = {}
    names = _model_names(names)
    for name in list_models(bundled_only=True) if names is None else names:
        card = model_card(name)
        with _card_values(name):
            curve, best = card.get("curve", {}), card.get("best_epoch")
            for key, label in (("val_finalized_elbo", f"{name} (finalized)"),
                               ("val_elbo", name)):
                if curve.get(key):
                    values = [checks.finite_real(f"curve {key}", v) for v in curve[key]]
                    if best is not None:
                        checks.positive_int("best_epoch", best, maximum=len(values))
                    curves[label] = (values, best)
                    break
    return curves


def plot_curves(path: str | Path, names: list[str] | None = None) -> str:
    """The `validation_curves` of the bundled models (default: all), best epoch marked, as a
    PNG at `path`; the path.

    Args:
        path: the PNG file to write.
        names: the models, or None for every model with bundled weights.

    Returns:
        path, as a str.

    Raises:
        ValueError: if no card of these models has a learning curve.
        TypeError, KeyError, ZooIntegrityError, FileNotFoundError: as `verify` raises them.
    """
    curves = validation_curves(names or None)
    if not curves:
        raise ValueError("no bundled model card has a learning curve")
    return report.plot_learning_curves(curves, str(path))


def _compare_card(card: dict, recomputed: dict) -> int:
    """Prints each constant and certified-radius summary of the card beside its recomputed
    value (`certified_quantiles`); the number that differ (relative 1e-6)."""
    mismatches = 0
    measured = recomputed["constants"]  # from the weights the radii were recomputed with
    for key, value in card.get("constants", {}).items():
        ok = bool(np.isclose(measured[key], value, rtol=1e-6))
        print(f"constant {key:<12} card {value:.9g} measured {measured[key]:.9g} "
              f"{'OK' if ok else 'MISMATCH'}")
        mismatches += not ok
    for section, label in (("certified_radius", "method"),
                           ("certified_radius_by_reconstruction", "best, reconstruction")):
        for key, summary in card.get(section, {}).items():
            again = recomputed[section][key]
            ok = all(np.isclose(again[k], v, rtol=1e-6) for k, v in summary.items())
            print(f"{label} {key:<10} card median {summary['median']:.6f} recomputed "
                  f"{again['median']:.6f} {'OK' if ok else 'MISMATCH'}")
            mismatches += not ok
    return mismatches


# ----- command line -------------------------------------------------------------------------

flags.DEFINE_integer("override_epochs", None, "build: train this many epochs, not the config's")
flags.DEFINE_string("output", None, "export: TF Serving base folder to copy the SavedModel to; "
                    "curves: the PNG to write (default zoo_curves.png)")
flags.DEFINE_bool("overwrite", False, "build: replace a model's existing weights; export: "
                  "replace the SavedModel versions in an existing --output folder (a folder "
                  "that holds anything else is refused)")


def main(argv: list[str]) -> None:
    """The `python -m lipvae_tf.zoo` command (see the module docstring), run by absl.

    Args:
        argv: the command line: the program, then a command of list, card, table, curves,
            build, verify, reexport or export, then a model name for card, build, verify,
            reexport and export.

    Raises:
        SystemExit: with a one-line message for a bad command line, or when the command fails
            with an error of `report.USER_ERRORS` (ZooIntegrityError included).
    """
    with report.one_line_errors("python -m lipvae_tf.zoo"):
        _main(argv)


def _main(argv) -> None:
    commands = ("list", "card", "table", "curves", "build", "verify", "reexport", "export")
    without_name = ("list", "table", "curves")
    usage = f"usage: python -m lipvae_tf.zoo {{{'|'.join(commands)}}} [NAME]"
    # a bad command line is one line saying what is wrong (ValueError, printed by main)
    if len(argv) < 2:
        raise ValueError(f"no command; {usage}")
    if argv[1] not in commands:
        raise ValueError(f"unknown command {argv[1]!r}; {usage}")
    if argv[1] in without_name and len(argv) > 2:
        raise ValueError(f"{argv[1]} takes no NAME, got {' '.join(argv[2:])!r}")
    if argv[1] not in without_name and len(argv) != 3:
        raise ValueError(f"{argv[1]} needs one model NAME (python -m lipvae_tf.zoo list), got "
                         f"{len(argv) - 2}")
    command, name = argv[1], (argv[2] if len(argv) > 2 else None)
    # a flag the command does not read is a mistake to report, not to ignore
    used = {"curves": {"output"}, "build": {"override_epochs", "overwrite"},
            "export": {"output", "overwrite"}}.get(command, set())
    # the package's other flags too (this module imports train's: --epochs, --p, ... were
    # accepted and ignored, whatever their value); run as a script, this module's own flags are
    # filed under its path, not its name: so every flag but absl's and TensorFlow's
    unused = sorted(f for f in flags.FLAGS if flags.FLAGS[f].present and f not in used
                    and not flags.FLAGS.find_module_defining_flag(f, "").startswith(
                        ("absl", "tensorflow")))
    if unused:
        raise ValueError(f"{command} does not take {', '.join('--' + f for f in unused)}")
    if command == "list":
        for model in list_models():
            bundled = (model_dir(model) / "manifest.json").is_file()
            print(f"{model:<32} {model_config(model)['description']}"
                  + ("" if bundled else "  [weights not bundled]"))
    elif command == "table":
        print(cards_table())
    elif command == "curves":
        # checked before the plot, naming the flag
        print(plot_curves(checks.png_path("output", flags.FLAGS.output or "zoo_curves.png")))
    elif command == "card":
        print(json.dumps(model_card(name), indent=2, sort_keys=True))
    elif command == "build":
        epochs = flags.FLAGS.override_epochs  # named as the user wrote it, not as build's
        if epochs is not None:  # argument (the message said "epochs must be ...")
            epochs = checks.positive_int("--override_epochs", epochs)
        card = build(name, epochs=epochs, overwrite=flags.FLAGS.overwrite)
        print(json.dumps(card["certified_radius"], indent=2))
    elif command == "verify":
        card, config = model_card(name), model_config(name)
        cfg = _train_config(config, "unused", None)
        images, _ = train.load_images(cfg, "test")
        print(f"zoo verify {name}: every file matches its sha256; certifying the {len(images)} "
              "test images again with each method and reconstruction", flush=True)
        recomputed = certified_quantiles(name, images)
        with _card_values(name):
            mismatches = _compare_card(card, recomputed)
        if mismatches:
            raise ValueError(f"{mismatches} constants or certified-radius summaries of {name!r} "
                             "differ from its card")
    elif command == "reexport":
        written = reexport(name)
        print(f"zoo reexport {name}: SavedModel written again to {written} "
              f"(certify: {export.read_metadata(written)['method']}); manifest updated")
    elif command == "export":
        if not flags.FLAGS.output:
            raise ValueError("export needs --output")
        checks.folder_path("output", flags.FLAGS.output)  # naming the flag
        export.copy_model_base(saved_model_path(name), flags.FLAGS.output,
                               overwrite=flags.FLAGS.overwrite)
        print(f"SavedModel of {name} copied to {flags.FLAGS.output} (TF Serving base folder)")


if __name__ == "__main__":
    train.quiet_tensorflow_logs()
    report.run_command(main)
