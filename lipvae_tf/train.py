"""Train a certified LipschitzVAE (robustness stated upfront) and certify the test set.

    python -m lipvae_tf.train --target_radius=1 --r=8 --epochs=20 --output_dir=runs/fmnist

Steps: load data (tfds, IDX files or the bundled sample), design the Lipschitz budget for the
target, train with a progress bar, TensorBoard logs and BackupAndRestore checkpoints (re-running
the same command resumes), apply the converged projection, certify every test image with each
method, and write report.json, figures and the model (.keras) into the output directory.
Optionally trains the standard (unconstrained) VAE the same way as a baseline.
"""
from __future__ import annotations

import dataclasses
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from lipvae_tf import bounds, data, distribute, report  # noqa: E402
from lipvae_tf.model import LipschitzVAE, StandardVAE  # noqa: E402


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run depends on (written into the report)."""

    dataset: str = "fashion_mnist"
    source: str = "auto"
    data_dir: str | None = None
    idx_dir: str | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    architecture: str = "mlp"
    hidden_units: tuple[int, ...] = (512, 512)  # MLP widths (conv: filters are (32, 64))
    latent_dim: int = 10
    target_radius: float | None = 1.0
    r: float = 8.0
    p: float = 0.5
    method: str = "best"
    std_cap: float = 0.1
    posterior_std: float | None = None
    constants: tuple[float, float, float] | None = None  # explicit (M_mu, M_sigma, M_g)
    likelihood: str = "continuous_bernoulli"
    beta: float = 1.0
    epochs: int = 20
    batch_size: int = 128
    learning_rate: float = 1e-3
    ll_samples: int = 64
    baseline: bool = True
    output_dir: str = "runs/latest"
    seed: int = 0
    verbose: int = 1
    strategy: str = "default"  # tf.distribute: default, mirrored or multi_worker


def build_model(config: TrainConfig) -> LipschitzVAE:
    """From the target radius (robustness upfront) or from explicit constants."""
    common = _shape_kwargs(config)
    if config.constants is not None:
        m_mu, m_sigma, m_g = config.constants
        return LipschitzVAE(encoder_mean=m_mu, encoder_std=m_sigma, decoder=m_g,
                            std_cap=config.std_cap, posterior_std=config.posterior_std, **common)
    if config.target_radius is None:
        raise ValueError("give either target_radius or constants")
    return LipschitzVAE.from_target(
        config.target_radius, config.r, config.p, method=config.method, std_cap=config.std_cap,
        posterior_std=config.posterior_std, **common,
    )


def _shape_kwargs(config: TrainConfig) -> dict:
    return dict(latent_dim=config.latent_dim, architecture=config.architecture,
                hidden_units=tuple(config.hidden_units), likelihood=config.likelihood,
                beta=config.beta, seed=config.seed)


def load_images(config: TrainConfig, split: str) -> tuple[np.ndarray, str]:
    """All images of a split as a float32 array, and the source they came from."""
    images, _, source = data.load_arrays(
        config.dataset, split, source=config.source, data_dir=config.data_dir,
        idx_dir=config.idx_dir, limit=config.train_limit if split == "train" else config.test_limit)
    return images, source


def fit(model: LipschitzVAE, train_x: np.ndarray, test_x: np.ndarray, config: TrainConfig,
        run_dir: str, extra_callbacks: tuple = ()) -> dict:
    """ELBO training with progress bar, TensorBoard and resumable checkpoints; history.

    Re-running with the same run_dir after an interruption resumes from the last finished epoch
    (also under another number of replicas). Compiles in the strategy the model was built under;
    data is fed as global batches sharded by tf.data (lipvae_tf.distribute).
    """
    distribute.compile_in_scope(model, lambda: keras.optimizers.Adam(config.learning_rate))
    train_data, steps = distribute.training_dataset(train_x, config.batch_size, seed=config.seed)
    callbacks = [
        keras.callbacks.TensorBoard(os.path.join(run_dir, "logs")),
        keras.callbacks.BackupAndRestore(os.path.join(run_dir, "backup")),
        *extra_callbacks,
    ]
    history = model.fit(train_data, steps_per_epoch=steps, epochs=config.epochs,
                        validation_data=distribute.evaluation_dataset(test_x, config.batch_size),
                        callbacks=callbacks, verbose=config.verbose,
                        shuffle=False)  # the dataset shuffles (per epoch, stateless)
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def certify(model: LipschitzVAE, images: np.ndarray, config: TrainConfig) -> dict:
    """Certified radius of every image with every method that applies to the model."""
    methods = [m for m in bounds.METHODS if m != "ncx2" or model.posterior_std is not None]
    return {m: model.certified_radius(images, config.r, config.p, method=m) for m in methods}


def evaluate(model: LipschitzVAE, test_x: np.ndarray, config: TrainConfig) -> dict:
    """Test ELBO terms (mean over the test set) and the importance-weighted log-likelihood."""
    metrics = model.evaluate(test_x, batch_size=config.batch_size, verbose=0, return_dict=True)
    log_likelihood = model.log_likelihood(test_x, samples=config.ll_samples)
    return {**{k: float(v) for k, v in metrics.items()},
            "log_likelihood_iwae": float(log_likelihood.mean()), "iwae_samples": config.ll_samples}


def train_one(model: LipschitzVAE, name: str, train_x, test_x, config: TrainConfig) -> dict:
    """Train, finalize, evaluate and certify one model; save it as <output_dir>/<name>.keras."""
    run_dir = os.path.join(config.output_dir, name)
    before = model.lipschitz_constants()
    started = time.perf_counter()
    history = fit(model, train_x, test_x, config, run_dir)
    seconds = time.perf_counter() - started
    projection = model.finalize()  # converged projection before certifying ({} if unconstrained)
    radii = certify(model, test_x, config)
    model_path = os.path.join(config.output_dir, f"{name}.keras")
    model.save(model_path)
    return {
        "class": type(model).__name__,
        "constants_at_start": before,
        "constants": model.lipschitz_constants(),
        "finalize_iterations": projection,
        "train_seconds": seconds,
        "history": history,
        "test": evaluate(model, test_x, config),
        "certified_radius": {m: report.summarize(v) for m, v in radii.items()},
        "model_path": model_path,
        "_radii": radii,
    }


def run(config: TrainConfig) -> dict:
    """The whole job; returns the report (also written to <output_dir>/report.json).

    Models are built and trained under `config.strategy`; a non-chief worker of a multi-worker
    run writes into <output_dir>/workers/<task>.
    """
    # first: a MultiWorkerMirroredStrategy must be created before any other TensorFlow work
    strategy = distribute.make_strategy(config.strategy)
    config = dataclasses.replace(
        config, output_dir=distribute.worker_path(config.output_dir, strategy))
    keras.utils.set_random_seed(config.seed)
    os.makedirs(config.output_dir, exist_ok=True)
    train_x, train_source = load_images(config, "train")
    test_x, test_source = load_images(config, "test")
    model = distribute.build_in_scope(strategy, lambda: build_model(config))
    start_radii = certify(model, test_x, config)
    results = {"lipschitz_vae": train_one(model, "lipschitz_vae", train_x, test_x, config)}
    results["lipschitz_vae"]["certified_radius_at_start"] = {
        m: report.summarize(v) for m, v in start_radii.items()
    }
    models = {"lipschitz_vae": model}
    if config.baseline:
        keras.utils.set_random_seed(config.seed)
        baseline = distribute.build_in_scope(strategy,
                                             lambda: StandardVAE(**_shape_kwargs(config)))
        results["standard_vae"] = train_one(baseline, "standard_vae", train_x, test_x, config)
        models["standard_vae"] = baseline
    figures = _figures(models, results, test_x, config)
    for result in results.values():
        result.pop("_radii")
    full = {
        "config": dataclasses.asdict(config),
        "data": {"train_source": train_source, "test_source": test_source,
                 "train_images": len(train_x), "test_images": len(test_x)},
        "design": model.design,
        "target_met": bool(config.target_radius is None or
                           results["lipschitz_vae"]["certified_radius"][config.method]["min"]
                           >= config.target_radius),
        "models": results,
        "figures": figures,
    }
    full["report_path"] = report.write_json(full, os.path.join(config.output_dir, "report.json"))
    return full


def _figures(models: dict, results: dict, test_x: np.ndarray, config: TrainConfig) -> dict:
    paths = {"radius_histogram": report.plot_radius_histogram(
        results["lipschitz_vae"]["_radii"], config.target_radius,
        os.path.join(config.output_dir, "certified_radius_histogram.png"))}
    originals = test_x[:10]
    rows = {"original": originals}
    for name, model in models.items():
        rows[name.replace("_", " ")] = model.reconstruct(originals, sample=False)
    paths["reconstructions"] = report.plot_reconstructions(
        rows, os.path.join(config.output_dir, "reconstructions.png"))
    return paths


# ----- command line -------------------------------------------------------------------------

_DEFAULTS = TrainConfig()
flags.DEFINE_string("dataset", _DEFAULTS.dataset, "fashion_mnist or mnist")
flags.DEFINE_enum("source", _DEFAULTS.source, ["auto", "tfds", "idx", "sample"], "data source")
flags.DEFINE_string("data_dir", None, "tfds data directory")
flags.DEFINE_string("idx_dir", None, "directory of IDX files (*-ubyte[.gz])")
flags.DEFINE_integer("train_limit", None, "use only the first N training images")
flags.DEFINE_integer("test_limit", None, "use only the first N test images")
flags.DEFINE_enum("architecture", _DEFAULTS.architecture, ["mlp", "conv"], "network family")
flags.DEFINE_list("hidden_units", list(map(str, _DEFAULTS.hidden_units)), "MLP widths")
flags.DEFINE_integer("latent_dim", _DEFAULTS.latent_dim, "latent dimension m")
flags.DEFINE_float("target_radius", _DEFAULTS.target_radius, "certified radius R* to design for")
flags.DEFINE_float("r", _DEFAULTS.r, "reconstruction tolerance r (l2)")
flags.DEFINE_float("p", _DEFAULTS.p, "probability level p in [1/2, 1)")
flags.DEFINE_enum("method", _DEFAULTS.method, list(bounds.METHODS), "certificate to design for")
flags.DEFINE_float("std_cap", _DEFAULTS.std_cap, "S: cap on ||sigma(x)||")
flags.DEFINE_float("posterior_std", None, "fixed posterior std gamma (instead of a learned std)")
flags.DEFINE_list("constants", None, "explicit M_mu,M_sigma,M_g (overrides target_radius)")
flags.DEFINE_enum("likelihood", _DEFAULTS.likelihood, ["bernoulli", "continuous_bernoulli",
                                                       "gaussian"], "decoder likelihood")
flags.DEFINE_float("beta", _DEFAULTS.beta, "KL weight")
flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "training epochs")
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "batch size")
flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate, "Adam learning rate")
flags.DEFINE_integer("ll_samples", _DEFAULTS.ll_samples, "importance samples for test log p(x)")
flags.DEFINE_bool("baseline", _DEFAULTS.baseline, "also train the standard VAE baseline")
flags.DEFINE_string("output_dir", _DEFAULTS.output_dir, "where report, figures, models go")
flags.DEFINE_integer("seed", _DEFAULTS.seed, "random seed")
flags.DEFINE_enum("strategy", _DEFAULTS.strategy, list(distribute.STRATEGIES),
                  "tf.distribute strategy (multi_worker reads the cluster from TF_CONFIG)")


def config_from_flags() -> TrainConfig:
    values = {f.name: flags.FLAGS[f.name].value for f in dataclasses.fields(TrainConfig)
              if f.name in flags.FLAGS}
    if values.get("constants") is not None:
        values["constants"] = tuple(float(c) for c in values["constants"])
        if len(values["constants"]) != 3:
            raise app.UsageError("--constants takes three numbers: M_mu,M_sigma,M_g")
    values["hidden_units"] = tuple(int(u) for u in values["hidden_units"])
    return TrainConfig(**values)


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    result = run(config_from_flags())
    print(format_summary(result))


def format_summary(result: dict) -> str:
    """A short table: target, certified radii, test log-likelihood per model."""
    config, lines = result["config"], []
    lines.append(f"data: {result['data']['train_images']} train / {result['data']['test_images']} "
                 f"test images from {result['data']['train_source']}")
    design = result["design"]
    if design:
        lines.append(
            f"robustness stated upfront: every input certified at R* = {design['target_radius']:g}"
            f" for r = {design['r']:g}, p = {design['p']:g} ({design['method']}); budget "
            f"M_mu = {design['encoder_mean']:.3f}, M_sigma = {design['encoder_std']:.3f}, "
            f"M_g = {design['decoder']:.3f}, S = {design['std_cap']}")
    header = (f"{'model':<16}{'cert. min':>11}{'cert. median':>14}{'test log p(x)':>15}"
              f"{'test ELBO':>11}{'train s':>9}")
    lines += [header, "-" * len(header)]
    for name, model in result["models"].items():
        radius = model["certified_radius"][config["method"]]
        lines.append(f"{name:<16}{radius['min']:>11.4f}{radius['median']:>14.4f}"
                     f"{model['test']['log_likelihood_iwae']:>15.1f}{model['test']['elbo']:>11.1f}"
                     f"{model['train_seconds']:>9.1f}")
    lv = result["models"]["lipschitz_vae"]["certified_radius"]
    lines.append("median certified radius per method (Lipschitz VAE): " + ", ".join(
        f"{m} {v['median']:.4f}" for m, v in lv.items()))
    lines.append(f"target met on every test input: {result['target_met']}")
    lines.append(f"report: {result['report_path']} (figures: "
                 f"{', '.join(result['figures'].values())})")
    return "\n".join(lines)


def cli() -> None:
    """Console script entry point (lipvae-train)."""
    app.run(main)


if __name__ == "__main__":
    cli()
