"""Robustness evaluation of trained VAEs: certificates against attacks (docs/theory.md,
section 8: empirical margins and the certificate audit).

    python -m lipvae_tf.evaluate \\
        --models=lip=runs/a/lipschitz_vae.keras,std=runs/a/standard_vae.keras

Per model: certified radii (every method), the estimated margin of `attacks.estimate_margin`
(Clopper-Pearson, stated confidence), their ratio, an audit of the certificate at 0.99 x its
radius, test log-likelihood, and P(||f(x+delta) - f(x)|| <= r) against the attack norm. Writes
evaluation.json and figures (margin vs certificate, probability vs norm, Pareto, adversarial grids).
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import time
from collections.abc import Sequence

import lipvae_tf

if lipvae_tf._is_cli(__name__):  # a command, not an import: before TensorFlow loads
    lipvae_tf._cli_native_log_level()

import keras
import numpy as np
from absl import flags

from lipvae_tf import attacks, bounds, checks, data, forward_error, report
from lipvae_tf.model import LipschitzVAE, StandardVAE

__all__ = [
    "EvalConfig", "import_modules", "load_models", "load_model_file", "load_test_set",
    "reference_r1", "evaluate_model", "probability_curve", "adversarial_grid", "run",
    "format_table", "define_flags", "parse_models", "config_from_flags", "main",
]


_VERBOSE = True  # progress lines and bars on stdout (long work is never silent)


def _progress(message: str) -> None:
    if _VERBOSE:
        print(message, flush=True)


@dataclasses.dataclass
class EvalConfig:
    """Everything an evaluation depends on (written into the report)."""

    # name -> .keras path: what `run` evaluates (the per-model functions, such as
    # probability_curve, take the model itself and need none)
    models: dict[str, str] = dataclasses.field(default_factory=dict)
    dataset: str = "fashion_mnist"
    source: str = "auto"
    data_dir: str | None = None
    idx_dir: str | None = None
    r: float = 8.0
    p: float = 0.5
    num_inputs: int = 100  # test inputs attacked (the first N)
    test_limit: int | None = None  # test inputs for the log-likelihood and the certificates
    confidence: float = 0.99
    samples: int = 2000
    bisection_steps: int = 8
    restarts: int = 5
    steps: int = 40
    attack_norms: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    grid_radius: float = 2.0
    ll_samples: int = 64
    output_dir: str = "runs/evaluation"
    seed: int = 0
    # modules imported before the models load: those that register the models' classes (a
    # LipschitzVAE subclass decorated with keras.saving.register_keras_serializable)
    imports: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Every setting checked before a model is loaded or an image read (ValueError /
        TypeError naming the setting)."""
        checks.one_of("dataset", self.dataset, data.NAMES)
        checks.one_of("source", self.source, data.SOURCES)
        checks.positive_finite("r", self.r)
        checks.probability_level("p", self.p)
        checks.in_interval("confidence", self.confidence, 0, 1, low_open=True, high_open=True)
        for name, minimum in (("num_inputs", 1), ("samples", 1), ("bisection_steps", 0),
                              ("restarts", 1), ("steps", 0), ("ll_samples", 1)):
            checks.positive_int(name, getattr(self, name), minimum=minimum)
        checks.positive_int("samples", self.samples, maximum=attacks.MAX_TRIALS)
        if self.test_limit is not None:
            checks.positive_int("test_limit", self.test_limit)
        for norm in self.attack_norms:
            checks.positive_finite("attack_norms", norm)
        checks.positive_finite("grid_radius", self.grid_radius)
        checks.seed("seed", self.seed)


def import_modules(names: Sequence[str]) -> None:
    """Imports each named module (dotted names, found on sys.path), so that the Keras classes it
    registers can be loaded; ValueError naming `imports` for a module that cannot be imported.
    Nothing is imported from the model files themselves: a `.keras` file names its class's
    module, but loading a file must not run code it names (Keras' safe_mode, for the same
    reason)."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ValueError(f"imports: cannot import {name!r} ({error}); give modules by their "
                             "dotted name, found on sys.path (PYTHONPATH or the current "
                             "folder)") from None


def load_models(paths: dict[str, str]) -> dict[str, LipschitzVAE]:
    """The models as saved by `train` (`.keras`), with a clear error for a missing file and for a
    class that no imported module registers (TypeError; `import_modules` first)."""
    if not paths:
        raise ValueError("models must name at least one model (name=path.keras)")
    models = {}
    for name, path in paths.items():
        model = load_model_file(name, path)
        if not isinstance(model, LipschitzVAE):
            raise TypeError(f"model {name!r} at {path} is a {type(model).__name__}, "
                            "not a lipvae_tf LipschitzVAE/StandardVAE")
        models[name] = model
    return models


def load_model_file(name: str, path: str | os.PathLike, **kwargs) -> keras.Model:
    """`keras.models.load_model(path, **kwargs)` with errors that name the model and the file.

    Args:
        name: what the messages call the model.
        path: a `.keras` file (`model.save("name.keras")`).
        **kwargs: passed to `keras.models.load_model` (e.g. compile=False).

    Returns:
        The loaded model.

    Raises:
        FileNotFoundError: if there is no file at `path`.
        ValueError: if it is not a .keras archive (`checks.keras_archive`: Keras said "File not
            found" for an empty or truncated one), or its weights cannot be read (h5py's
            OSError for a truncated weights file inside a valid zip).
        TypeError: for a class that no imported module registers (`import_modules` first).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model {name!r}: no file at {path}")
    checks.keras_archive(name, path)
    try:
        return keras.models.load_model(path, **kwargs)
    except OSError as error:
        raise ValueError(f"model {name!r}: {path} cannot be read ({error}): a damaged .keras "
                         "file") from None
    except TypeError as error:
        if not str(error).startswith("Could not locate"):
            raise
        # Keras' message goes on with the whole model config: its first sentence, and how
        # to make the class known
        raise TypeError(f"model {name!r} at {path}: {str(error).split('. ')[0]}: a class no "
                        "imported module registers; import the module that defines it "
                        "(--imports=module, or evaluate.import_modules) and decorate the "
                        "class with @keras.saving.register_keras_serializable()") from None


def load_test_set(config: EvalConfig) -> tuple[np.ndarray, np.ndarray, str]:
    """Test images, labels and the source they came from."""
    return data.load_arrays(config.dataset, "test", source=config.source,
                            data_dir=config.data_dir, idx_dir=config.idx_dir,
                            limit=config.test_limit)


def reference_r1(model: LipschitzVAE, s: np.ndarray, r: float, p: float) -> np.ndarray | None:
    """The published R1 computed the reference code's way: the nominal (budget) constants, with
    the decoder's constant taken before its output map (the logits network's budget: the
    reference code did not count its sigmoid). None for the standard VAE (no budget)."""
    if isinstance(model, StandardVAE):
        return None
    return bounds.paper_markov_radius(
        model.encoder_mean_budget, model.encoder_std_budget,
        model.decoder_budget / model.output_lipschitz(), s, r, p)


def evaluate_model(model: LipschitzVAE, test_x: np.ndarray, config: EvalConfig,
                   log_likelihood_mean: float | None = None) -> dict:
    """Certificates, estimated margins, audit, log-likelihood and the probability curve.

    log_likelihood_mean: the test IWAE mean (config.ll_samples samples) when the caller already
    has it (the zoo's training just measured it); computed otherwise.
    """
    attacked = test_x[:config.num_inputs]
    methods = report.certificate_methods(model)
    all_certified = {m: model.certified_radius(test_x, config.r, config.p, method=m)
                     for m in methods}
    certified = {m: radii[:config.num_inputs] for m, radii in all_certified.items()}
    _progress(f"  estimating the margin of {len(attacked)} inputs (attack: {config.restarts} "
              f"restarts x {config.steps} steps, {config.bisection_steps} bisection steps, "
              f"{config.samples} noise pairs per probability)")
    started = time.perf_counter()
    estimate = attacks.estimate_margin(
        model, attacked, config.r, config.p, confidence=config.confidence, samples=config.samples,
        bisection_steps=config.bisection_steps, restarts=config.restarts, steps=config.steps,
        seed=config.seed, verbose=_VERBOSE)
    margin_seconds = time.perf_counter() - started
    _progress(f"  margins done in {margin_seconds:.0f} s; auditing the certificate")
    best = certified["best"]
    # the inputs with a positive certificate (one input certified 0 skipped the whole audit)
    audited = best > 0
    audit = (attacks.audit_certificate(model, attacked[audited], best[audited], config.r,
                                       config.p, confidence=0.999, seed=config.seed)
             if audited.any() else None)
    _progress(f"  probability against attack norm (norm 0 and the {len(config.attack_norms)} "
              "of --attack_norms)")
    curve = probability_curve(model, attacked, config)
    if log_likelihood_mean is None:
        _progress(f"  test log-likelihood (IWAE, {config.ll_samples} samples, "
                  f"{len(test_x)} images)")
        log_likelihood_mean = float(model.log_likelihood(
            test_x, samples=config.ll_samples, verbose=1 if _VERBOSE else 0).mean())
    paper_ref = reference_r1(model, model.std_norms(attacked), config.r, config.p)
    unbroken = ~np.isfinite(estimate.upper)
    # certificate / margin per input: infinite where the attack broke every radius it tried
    # (margin 0) yet the certificate is positive, undefined (left out) where both are 0; such
    # inputs were dropped and a model without any reported 0.0 (an adversarial review,
    # 2026-12-04). Unbroken inputs' margins are lower bounds, so the median is an upper bound
    # when there are any ("tightness_is_upper_bound").
    held_somewhere = estimate.margin > 0
    ratios = np.full(len(best), np.inf)
    ratios[held_somewhere] = best[held_somewhere] / estimate.margin[held_somewhere]
    defined = held_somewhere | (best > 0)
    return {
        "class": type(model).__name__,
        "constants": model.lipschitz_constants(),
        "test_log_likelihood_iwae": log_likelihood_mean,
        "certified_radius_test_set": {m: report.summarize(v) for m, v in all_certified.items()},
        "certified_radius": {m: report.summarize(v) for m, v in certified.items()},
        "paper_r1_reference_constants": None if paper_ref is None else report.summarize(paper_ref),
        "estimated_margin": report.summarize(estimate.margin),
        # over the inputs the attack broke (the others have no upper bound: inf; NaN in their
        # place made every quantile NaN as soon as one input was unbroken)
        "estimated_margin_upper": report.summarize(
            estimate.upper[~unbroken]) if not unbroken.all() else None,
        "unbroken_inputs": int(unbroken.sum()),
        "tightness_median": float(np.median(ratios[defined])) if defined.any() else None,
        "tightness_inputs": int(defined.sum()),
        "tightness_is_upper_bound": bool(unbroken[defined].any()),
        "certificate_violations": None if audit is None else int(np.sum(audit <= config.p)),
        "audited_inputs": int(audited.sum()),
        "audit_min_probability_upper": None if audit is None else float(audit.min()),
        "probability_curve": curve,
        "margin_seconds": margin_seconds,
        "_per_input": {"certified": best, "margin": estimate.margin, "upper": estimate.upper},
    }


def probability_curve(model: LipschitzVAE, x: np.ndarray, config: EvalConfig) -> dict:
    """Per attack norm, means over the inputs: P(||f(x + delta) - f(x)|| <= r) (point estimate and
    Clopper-Pearson upper bound), and the damage E||f(x + delta) - f(x)|| of the attack and of a
    random perturbation of the same norm."""
    norms, mean, upper, damage, random_damage = [0.0, *config.attack_norms], [], [], [], []
    bar = keras.utils.Progbar(len(norms), unit_name="norm", verbose=1 if _VERBOSE else 0)
    for i, norm in enumerate(norms):
        bar.update(i)
        result = attacks.maximum_damage_attack(model, x, norm, restarts=config.restarts,
                                               steps=config.steps if norm else 0,
                                               seed=config.seed + i)
        damage.append(float(np.mean(result.objective)))
        random_damage.append(float(np.mean(attacks.expected_damage(
            model, x, attacks.random_perturbation(x, norm, seed=config.seed + i)))))
        counts = attacks.robust_counts(model, x, result.delta, config.r, config.samples,
                                       seed=config.seed + 1000 + i)
        mean.append(float(np.mean(counts / config.samples)))
        upper.append(float(np.mean(attacks.clopper_pearson_upper(
            counts, config.samples, config.confidence))))
    bar.update(len(norms), finalize=True)
    return {"norms": norms, "probability": mean, "probability_upper": upper,
            "attack_damage": damage, "random_damage": random_damage}


def adversarial_grid(model: LipschitzVAE, test_x: np.ndarray, test_y: np.ndarray,
                     config: EvalConfig, path: str, count: int = 8,
                     name: str | None = None) -> str:
    """Rows: original, reconstruction, adversarial input, its reconstruction, and the target (an
    image of another class) that the latent attack steers towards under ||delta|| <= grid_radius;
    the title names the model (`name`, when given) and the attack (a newcomer's run,
    2026-12-04: only the file name said which model the grid was of)."""
    x = test_x[:count]
    targets = np.stack([test_x[_other_class(test_y, i)] for i in range(len(x))])
    result = attacks.latent_attack(model, x, targets, radius=config.grid_radius, steps=100,
                                   seed=config.seed)
    adversarial = x + result.delta
    return report.plot_reconstructions({
        "original": x, "reconstruction": model.reconstruct(x, sample=False),
        f"adversarial\n||d|| <= {config.grid_radius:g}": adversarial,
        "adv. recon.": model.reconstruct(adversarial, sample=False), "target": targets,
    }, path, title=f"{name + ': ' if name else ''}latent attack (attacks.latent_attack) towards "
                   f"the target, an image of another class, ||delta||_2 <= "
                   f"{config.grid_radius:g}")


def _other_class(labels: np.ndarray, index: int) -> int:
    """The first image after `index` whose label differs (wrapping around)."""
    order = np.roll(np.arange(len(labels)), -index - 1)
    return int(order[np.argmax(labels[order] != labels[index])])


def run(config: EvalConfig) -> dict:
    """The whole evaluation; returns the report (also written to <output_dir>/evaluation.json)."""
    # here, not in EvalConfig: the module's defaults are one, and importing it must not depend
    # on the current folder
    checks.folder_path("output_dir", config.output_dir)
    forward_error.check_float32_execution()  # before loading and attacking
    keras.utils.set_random_seed(config.seed)
    os.makedirs(config.output_dir, exist_ok=True)
    import_modules(config.imports)
    models = load_models(config.models)
    test_x, test_y, source = load_test_set(config)
    if config.num_inputs > len(test_x):
        raise ValueError(f"num_inputs={config.num_inputs} is more than the {len(test_x)} test "
                         "images")
    # progress only: the table at the end names the data again, on its first line
    print(f"evaluating {len(models)} model(s) on {len(test_x)} test images from {source} "
          f"(attacks on the first {config.num_inputs})", flush=True)
    results = {}
    for name, model in models.items():
        print(f"evaluating {name} ({config.models[name]})", flush=True)
        results[name] = evaluate_model(model, test_x, config)
    out = config.output_dir
    figures = {
        "margin_vs_certificate": report.plot_margin_vs_certificate(
            {n: (v["_per_input"]["certified"], v["_per_input"]["margin"],
                 v["_per_input"]["upper"]) for n, v in results.items()},
            os.path.join(out, "margin_vs_certificate.png")),
        "probability_vs_norm": report.plot_probability_vs_norm(
            {n: (v["probability_curve"]["norms"], v["probability_curve"]["probability"])
             for n, v in results.items()}, config.p, config.r,
            os.path.join(out, "probability_vs_norm.png")),
        "pareto": report.plot_pareto(
            {n: (v["estimated_margin"]["median"], v["test_log_likelihood_iwae"])
             for n, v in results.items()}, os.path.join(out, "pareto.png")),
    }
    for name, model in models.items():
        figures[f"adversarial_grid_{name}"] = adversarial_grid(
            model, test_x, test_y, config, os.path.join(out, f"adversarial_grid_{name}.png"),
            name=name)
    for result in results.values():
        result.pop("_per_input")
    full = {"config": dataclasses.asdict(config),
            "data": {"test_source": source, "test_images": len(test_x)},
            "models": results, "figures": figures}
    full["report_path"] = report.write_json(full, os.path.join(out, "evaluation.json"))
    return full


def format_table(result: dict) -> str:
    """A Markdown table: certificates per method, estimated margin, tightness, log-likelihood;
    after a line naming the test data, before a line explaining the columns."""
    methods = bounds.METHODS
    cols = ["model", *[f"cert. {m}" for m in methods], "R1 ref.", "est. margin", "cert./margin",
            "violations", "test log p(x)"]
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    for name, v in result["models"].items():
        cert = [f"{v['certified_radius'][m]['median']:.4f}" if m in v["certified_radius"]
                else "n/a" for m in methods]
        ref = v["paper_r1_reference_constants"]
        lines.append("| " + " | ".join([
            name, *cert, "n/a" if ref is None else f"{ref['median']:.4f}",
            _margin_cell(v), _tightness_cell(v),
            "n/a" if v["certificate_violations"] is None else str(v["certificate_violations"]),
            f"{v['test_log_likelihood_iwae']:.1f}"]) + " |")
    data = result.get("data") or {}
    if data:
        lines.insert(0, f"data: {data['test_images']} test images from {data['test_source']}")
    lines.append("cert. <method>: median certified radius (l2, pixel space); R1 ref.: the "
                 "published R1 (Barrett et al. 2022) as the reference code computes it, from "
                 "the budget constants with the decoder's taken before its output map (the "
                 "logits network's: up to 12x M_g for the continuous Bernoulli mean), so below "
                 "cert. paper; 0 where it certifies nothing; est. margin: median of the "
                 "largest radius at which the attack did not break r-robustness (>= and a "
                 "count: inputs it never broke, whose margin is only the largest radius tried); "
                 "cert./margin: median over the inputs of best / their margin (<= when unbroken "
                 "inputs took part); violations: audit of the inputs certified > 0")
    return "\n".join(lines)


def _tightness_cell(v: dict) -> str:
    """The median certificate / margin: n/a without any defined ratio, "<=" when unbroken
    inputs (margins that are lower bounds) took part."""
    if v.get("tightness_median") is None:
        return "n/a"
    cell = f"{v['tightness_median']:.3f}"
    return f"<= {cell}" if v.get("tightness_is_upper_bound") else cell


def _margin_cell(v: dict) -> str:
    """The median estimated margin, marked as a lower bound when inputs went unbroken (their
    margin is the largest radius tried, e.g. sqrt(784) = 28 for Fashion-MNIST)."""
    cell = f"{v['estimated_margin']['median']:.4f}"
    unbroken = v.get("unbroken_inputs", 0)
    return f">= {cell} ({unbroken} unbroken)" if unbroken else cell


# ----- command line -------------------------------------------------------------------------

_DEFAULTS = EvalConfig(models={})


def define_flags() -> None:
    """The command line's flags (defined on demand: lipvae_tf.train defines flags of the same
    names, and both modules may be imported in one process)."""
    flags.DEFINE_list("models", None, "models to evaluate, as name=path.keras (or just paths)")
    flags.DEFINE_string("dataset", _DEFAULTS.dataset, "fashion_mnist or mnist")
    flags.DEFINE_enum("source", _DEFAULTS.source, ["auto", "tfds", "idx", "sample"], "data source")
    flags.DEFINE_string("data_dir", None, "tfds data directory")
    flags.DEFINE_string("idx_dir", None, "directory of IDX files (*-ubyte[.gz])")
    flags.DEFINE_float("r", _DEFAULTS.r, "reconstruction tolerance r (l2)")
    flags.DEFINE_float("p", _DEFAULTS.p, "probability level p in [1/2, 1)")
    flags.DEFINE_integer("num_inputs", _DEFAULTS.num_inputs, "test inputs attacked (the first N)")
    flags.DEFINE_integer("test_limit", None, "test inputs for log-likelihood and certificates")
    flags.DEFINE_float("confidence", _DEFAULTS.confidence, "Clopper-Pearson confidence level")
    flags.DEFINE_integer("samples", _DEFAULTS.samples, "noise pairs per probability estimate")
    flags.DEFINE_integer("bisection_steps", _DEFAULTS.bisection_steps, "bisection steps per margin")
    flags.DEFINE_integer("restarts", _DEFAULTS.restarts, "attack restarts (first one from delta=0)")
    flags.DEFINE_integer("steps", _DEFAULTS.steps, "projected gradient steps per attack")
    flags.DEFINE_list("attack_norms", [f"{n:g}" for n in _DEFAULTS.attack_norms],
                      "norms of the probability-vs-norm curve")
    flags.DEFINE_float("grid_radius", _DEFAULTS.grid_radius, "norm cap of the adversarial grid")
    flags.DEFINE_integer("ll_samples", _DEFAULTS.ll_samples, "importance samples for log p(x)")
    flags.DEFINE_string("output_dir", _DEFAULTS.output_dir, "where the report and figures go")
    flags.DEFINE_integer("seed", _DEFAULTS.seed, "random seed")
    flags.DEFINE_list("imports", [], "Python modules to import before the models load (dotted "
                      "names on sys.path): those that register the models' classes, e.g. a "
                      "LipschitzVAE subclass")
    flags.mark_flag_as_required("models")


def parse_models(entries: list[str]) -> dict[str, str]:
    """["name=path", "path", ...] -> {name: path}; a bare path is named by its file stem."""
    models = {}
    for entry in entries:
        name, _, path = entry.rpartition("=") if "=" in entry else ("", "", entry)
        name = name or os.path.splitext(os.path.basename(path))[0]
        if name in models:
            raise ValueError(f"models: the name {name!r} is given twice")
        models[name] = path
    return models


def config_from_flags() -> EvalConfig:
    values = {f.name: flags.FLAGS[f.name].value for f in dataclasses.fields(EvalConfig)}
    values["models"] = parse_models(values["models"])
    values["imports"] = tuple(values["imports"])
    try:
        values["attack_norms"] = tuple(float(n) for n in values["attack_norms"])
    except ValueError:
        raise ValueError(f"attack_norms must be numbers separated by commas, got "
                         f"{','.join(values['attack_norms'])!r}") from None
    return EvalConfig(**values)


def main(argv: list[str]) -> None:
    report.refuse_positional_arguments(argv, "python -m lipvae_tf.evaluate")
    with report.one_line_errors("python -m lipvae_tf.evaluate"):
        result = run(config_from_flags())
    print(format_table(result))
    print(f"report: {result['report_path']}")


if __name__ == "__main__":
    report.quiet_tensorflow_logs()
    define_flags()
    report.run_command(main)
