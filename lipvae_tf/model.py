"""LipschitzVAE: a Keras 3 VAE whose encoder mean, encoder std and decoder have verified
Lipschitz constants, so that every input gets a certified robustness radius (docs/theory.md).

Three separate Sequential networks output distribution parameters; `encode` and `decode` wrap
them in `tfp.distributions`; `train_step` maximises the ELBO. The reconstruction the certificate
is about, g(z), follows `reconstruction`: "mean" (default) is the likelihood's mean E[x | z]
(for the continuous Bernoulli 1/12-Lipschitz in the logits, docs/theory.md section 10), and
"parameter" is sigmoid(logits), the paper's choice (the CB's shape parameter lambda; 1/4). For
Bernoulli and Gaussian likelihoods both are the sigmoid.

References:
- D. P. Kingma, M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014 (the ELBO and the
  reparameterisation), https://arxiv.org/abs/1312.6114
- B. Barrett, A. Camuto, M. Willetts, T. Rainforth, "Certifiably Robust Variational
  Autoencoders", AISTATS 2022, https://arxiv.org/abs/2102.07559
- G. Loaiza-Ganem, J. P. Cunningham, "The continuous Bernoulli: fixing a pervasive error in
  variational autoencoders", NeurIPS 2019 (its mean, eq. 6), https://arxiv.org/abs/1907.06845
- Y. Burda, R. Grosse, R. Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016 (the
  IWAE bound of `log_likelihood`), https://arxiv.org/abs/1509.00519
"""
from __future__ import annotations

import inspect
import math
import os
import types
import warnings
import zipfile
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from keras.src.backend.common import global_state  # private: the flag of the legacy HDF5 save
from numpy.typing import ArrayLike

from lipvae_tf import (
    bounds,
    checks,
    constraints,
    design,
    distribute,
    forward_error,
    keras_inputs,
    towers,
)
from lipvae_tf import layers as ll
from lipvae_tf import lipschitz as lp
from lipvae_tf._fixed_config import FixedConfig
from lipvae_tf._shared_numerics import (
    MAGNITUDE_FLOOR,
    MAGNITUDE_LIMIT,
    fixed_std,
    norm_rounding_factor,
)

# the constructor's `design` argument shadows the module
_check_design_record = design.check_record

__all__ = [
    "LIKELIHOODS", "ARCHITECTURES", "RECONSTRUCTIONS", "SIGMOID_LIPSCHITZ",
    "CONTINUOUS_BERNOULLI_MEAN_LIPSCHITZ", "OUTPUT_ROUNDING", "NOISE_TAIL",
    "reconstruction_rounding_slack", "checked_tolerance", "pixel_space_diameter",
    "applied_posterior_std", "STD_FLOOR", "std_statistics_bounds",
    "LipschitzVAE", "StandardVAE",
]

tfd = tfp.distributions

LIKELIHOODS = ("bernoulli", "continuous_bernoulli", "gaussian")
ARCHITECTURES = ("mlp", "conv")
RECONSTRUCTIONS = ("mean", "parameter")
SIGMOID_LIPSCHITZ = 0.25
# dE[x]/d eta = Var(x) <= 1/12 for the continuous Bernoulli with logit eta (maximal at eta = 0);
# 1/12 has no float64 value, and the nearest one is below it: the next one up
CONTINUOUS_BERNOULLI_MEAN_LIPSCHITZ = math.nextafter(1.0 / 12.0, 1.0)
# The reconstruction is computed in float64 from the float32 logits and rounded once to float32:
# per pixel within 2^-25 (rounding to nearest in [0, 1]) plus float64 error (< 1e-13), so < 2^-24.
OUTPUT_ROUNDING = 2.0**-24
# `absolute_rounding_slack`: the noise bound B may fail with probability NOISE_TAIL (1 - p) per
# draw, which the certificate pays for by p -> p + 2 NOISE_TAIL (1 - p) (still below 1)
NOISE_TAIL = 1e-6


def reconstruction_rounding_slack(image_shape: Sequence[int]) -> float:
    """2 sqrt(D) OUTPUT_ROUNDING: how far (l2) two float32 reconstructions of D pixels can move
    beyond the exact ones; a certificate for r - this slack covers the float32 outputs."""
    return 2 * math.sqrt(math.prod(image_shape)) * OUTPUT_ROUNDING


def _checked_cap(std_cap: float, latent_dim: int) -> float:
    """S as a float32 `StdCap` applies it to `latent_dim` stds, or ValueError naming std_cap for
    a cap whose square underflows (the message named StdCap's max_norm, an argument the caller
    never wrote: an adversarial review, 2026-12-04)."""
    try:
        # named: an auto-named layer would advance Keras' name counter, renaming the model's own
        return ll.StdCap(std_cap, name="std_cap_check").output_norm_bound(latent_dim)
    except ValueError as error:
        raise ValueError(str(error).replace("max_norm=", "std_cap=", 1)) from None


def _applied_cap(layer: keras.layers.Layer, latent_dim: int) -> float:
    """S as the float32 graph applies it (`StdCap.output_norm_bound`) for the last layer of a
    std network, which must be a StdCap that computes as one.

    Raises:
        ValueError: for another layer, or a StdCap subclass that overrides its computation (it
            may not cap, or not at S).
    """
    replaced = lp.overridden_computation(layer, ll.StdCap) if isinstance(layer, ll.StdCap) else ()
    if replaced or not isinstance(layer, ll.StdCap):
        raise ValueError("the std network's last layer must be its StdCap (the certificate "
                         f"relies on it), got {type(layer).__name__}"
                         + (f" overriding {', '.join(replaced)}" if replaced else ""))
    return layer.output_norm_bound(latent_dim)


def _std_statistics_map(margin: float, latent_dim: int, cap: float | None
                        ) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """sigma (batch, m) -> (s, s_max), float64 (batch,): the norm and the largest entry of the
    stds a network computed, raised by its relative rounding `margin` (the norm also by the
    float64 norm's own rounding, `norm_rounding_factor`), then at most `cap` (S as applied)."""
    rounded_up = lp.product_rounded_up(margin, norm_rounding_factor(latent_dim))
    # a cap bounds both maps' stds by itself: the exact map's by S, the graph's by S as
    # applied (>= S), so the margin never lifts s above it
    cap = math.inf if cap is None else cap

    def of_sigma(sigma: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        # in float64: no float32 round-off in s (the outputs themselves are float32), the
        # float64 norm's own rounding covered (s_max x margin rounds by <= 1/2 ulp, far
        # inside the margin's own 1e-10)
        sigma = tf.cast(sigma, tf.float64)
        return (tf.minimum(tf.norm(sigma, axis=-1) * rounded_up, cap),
                tf.minimum(tf.reduce_max(sigma, axis=-1) * margin, cap))

    return of_sigma


def std_statistics_bounds(std_network: keras.Model | Sequence[keras.layers.Layer],
                          sigma: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(s(x), s_max(x)) for a std network of your own: per input, upper bounds of
    ||sigma(x)||_2 and max_i sigma_i(x) of the exact map of `std_network`, from the stds `sigma`
    that its float32 graph computed. What `LipschitzVAE.std_statistics` does for its own
    std network (the same rounding margins, docs/theory.md section 7, "The std"), for the
    `bounds.radius` certificate of a custom model (colab/04_custom_models.ipynb).

    Args:
        std_network: the chain that computed sigma, as a Keras model or a non-empty list of its
            layers in order (its rounding margin is `lipschitz.output_rounding_factor` of it).
            When its last layer is a `StdCap`, both statistics are at most its cap as applied
            (`StdCap.output_norm_bound`), which bounds the exact and the float32 stds alike.
        sigma: the stds, shape (batch, m): each 0 or in [1e-60, 1e75] (the certificates'
            magnitude range; float32 stds always are), m the chain's output width where the
            chain records it (a Keras model, or layers called on Keras inputs), and no row
            above the cap as applied (the chain's outputs never are).

    Returns:
        (s, s_max), float64 arrays of shape (batch,).

    Raises:
        TypeError: naming `std_network` unless it is a Keras model or a list of Keras layers,
            or `sigma` unless it holds real numbers.
        ValueError: naming `sigma` for a shape, value or norm the chain cannot have computed
            (see above), or `std_network` for an empty list; for a last layer that subclasses
            StdCap and overrides its computation, and as `lipschitz.output_rounding_factor` for
            a model that is not a chain.
    """
    if isinstance(std_network, keras.Model):
        layers = lp.chain_layers(std_network)
    elif isinstance(std_network, Sequence) and all(
            isinstance(layer, keras.layers.Layer) for layer in std_network):
        layers = list(std_network)
    else:
        raise TypeError(f"std_network must be a Keras model or a list of Keras layers, got "
                        f"{type(std_network).__name__}")
    if not layers:
        raise ValueError("std_network must hold at least one layer: the chain that computed "
                         "sigma")
    sigma = checks.finite_array("sigma", sigma, ndim=2)
    if not sigma.shape[1] or np.any(sigma < 0):
        raise ValueError(f"sigma must be a (batch, m) array of stds >= 0 with m >= 1, got shape "
                         f"{sigma.shape}" + (f" and minimum {sigma.min()}" if sigma.size else ""))
    nonzero = sigma[sigma > 0]
    if nonzero.size and (nonzero.min() < MAGNITUDE_FLOOR or nonzero.max() > MAGNITUDE_LIMIT):
        # outside it the float64 squares of the norm underflow or overflow
        raise ValueError(f"sigma's non-zero stds must be in [{MAGNITUDE_FLOOR:g}, "
                         f"{MAGNITUDE_LIMIT:g}], got {float(nonzero.min())!r} to "
                         f"{float(nonzero.max())!r}")
    latent_dim = sigma.shape[1]
    width = _chain_output_width(layers)
    if width is not None and width != latent_dim:
        raise ValueError(f"sigma has {latent_dim} columns, but the chain's last layer "
                         f"{layers[-1].name!r} outputs {width}: pass every std it computed")
    cap = (_applied_cap(layers[-1], latent_dim)
           if isinstance(layers[-1], ll.StdCap) else None)
    norms = np.linalg.norm(sigma, axis=1)
    if cap is not None and np.any(norms > cap):
        raise ValueError(f"sigma has rows of norm up to {float(norms.max())!r} "
                         f"above the cap as applied, {cap!r}: the chain's StdCap never outputs "
                         "such stds (are they this network's?)")
    s, s_max = _std_statistics_map(lp.output_rounding_factor(layers), latent_dim, cap)(
        tf.constant(sigma))
    return s.numpy(), s_max.numpy()


def _check_divisor_constants(constants: dict) -> None:
    """A ValueError naming the network whose verified constant the certificates cannot divide
    by (M_mu or M_g below MAGNITUDE_FLOOR: zero or near-zero kernels), instead of bounds.py's
    error about an argument the caller never passed."""
    for key, symbol in (("encoder_mean", "M_mu"), ("decoder", "M_g")):
        if constants[key] < MAGNITUDE_FLOOR:
            raise ValueError(
                f"the {key.replace('_', ' ')} network's verified Lipschitz constant {symbol} = "
                f"{constants[key]!r} is below {MAGNITUDE_FLOOR:g}: its kernels are zero or "
                f"nearly so (check the weights, e.g. after set_weights or load_weights), and "
                f"the certificates divide by {symbol} (docs/theory.md section 5, \"Magnitudes\")")


def _chain_output_width(layers: Sequence[keras.layers.Layer]) -> int | None:
    """The chain's output width: recorded by Keras for its last layer, else that of the last
    layer with a 2-D kernel (a Dense of the chain called eagerly records none) carried through
    the layers after it by their `compute_output_shape`; None where neither is known."""
    width = _recorded_output_width(layers[-1])
    if width is not None:
        return width
    for index in range(len(layers) - 1, -1, -1):
        kernel = getattr(layers[index], "kernel", None)
        if kernel is not None and len(kernel.shape) == 2:
            shape = (None, int(kernel.shape[-1]))
            try:
                for layer in layers[index + 1:]:
                    shape = tuple(layer.compute_output_shape(shape))
            except (TypeError, ValueError, NotImplementedError, AttributeError):  # cannot say
                return None
            return None if shape[-1] is None else int(shape[-1])
    return None


def _recorded_output_width(layer: keras.layers.Layer) -> int | None:
    """The last dimension of a layer's output where Keras recorded it (a layer of a functional
    or Sequential model); None for a layer called only inside a subclassed model's call."""
    try:
        width = layer.output.shape[-1]
    except (AttributeError, ValueError):
        return None
    return None if width is None else int(width)


def pixel_space_diameter(image_shape: Sequence[int]) -> float:
    """sqrt(D), D pixels: the l2 diameter of [0, 1]^D, the most two reconstructions can differ
    by (so every perturbation meets a larger tolerance r)."""
    return math.sqrt(math.prod(image_shape))


def checked_tolerance(r: ArrayLike, image_shape: Sequence[int]) -> tuple[np.ndarray, float]:
    """(r as a float64 array, at most `pixel_space_diameter(image_shape)`; the slack
    `reconstruction_rounding_slack(image_shape)`): the tolerances a certificate of images of
    this shape is computed for. A larger r is certified as the diameter: sound, since a
    certificate for a smaller tolerance holds for a larger one (the true radius there is
    unbounded), and a bound on the certificate's work, which grows with r (a review: 200 rows of
    distinct r near 4000 took 257 s and 7.4 GB in the `certify` signature).

    Raises:
        ValueError: naming r unless every r is finite, at most 1e75 (`bounds.checked`) and above
            that slack.
    """
    (r,) = bounds.checked(r=r)  # finite and > 0, or the ValueError naming r
    slack = reconstruction_rounding_slack(image_shape)
    if np.any(r <= slack):
        raise ValueError(f"r must be > {slack:.3g} (the float32 rounding of the "
                         f"reconstruction), got {np.min(r)}")
    return np.minimum(r, pixel_space_diameter(image_shape)), slack


def _checked_image_shape(image_shape) -> tuple[int, ...]:
    """(height, width, channels), positive integers, or the ValueError / TypeError naming
    image_shape."""
    shape = checks.positive_ints("image_shape", image_shape)
    if len(shape) != 3:
        raise ValueError(f"image_shape must be (height, width, channels), got {image_shape}")
    return shape


def applied_posterior_std(gamma: float) -> float:
    """A fixed posterior std gamma as the graph applies it, as a float64 upper bound:
    `posterior_params` fills sigma with gamma cast to the compute dtype, and float32(gamma) can
    exceed gamma (float32(0.05) = 0.05 + 7.5e-10); tf.cast of a Python float goes through
    float32 even for float64, so the larger of both dtypes' values covers either."""
    return max(float(tf.cast(gamma, dtype).numpy()) for dtype in (tf.float32, tf.float64))


def _computes_in_float32(policy) -> bool:
    """Whether a Keras dtype policy computes and keeps its variables in float32, as the networks
    and certificates of the models here assume."""
    return (policy.compute_dtype, policy.variable_dtype) == ("float32", "float32")


STD_FLOOR = 1e-4  # added after the softplus: the posterior std never reaches 0 (log sigma in KL)
_METRICS = ("loss", "elbo", "reconstruction_log_likelihood", "kl")
# what keras.layers.Layer.__init__ takes beyond a subclass's own parameters (Keras 3)
_KERAS_MODEL_KEYWORDS = frozenset({"activity_regularizer", "trainable", "dtype", "autocast",
                                   "name"})
# Settings that `reconfigured` can change without voiding the design record: training only.
_SETTINGS_KEEPING_THE_DESIGN = frozenset({
    "name", "trainable", "beta", "bjorck_iterations", "constraint", "conv_constraint",
    "conv_relaxation", "seed"})
# certified_radius warns when a measured constant exceeds its budget by more than this
# (relative): a finalized model is at or below it, float32 rounding included
_ABOVE_BUDGET = 1e-4
# The learned std's settings and their defaults, which a fixed-std model accepts (get_config
# writes encoder_std 1.0 for it); any other value would be dropped, so it is refused.
_LEARNED_STD_DEFAULTS = {"std_cap": design.DEFAULT_STD_CAP, "encoder_std": 1.0}
# The kernel control's arguments and their defaults: a StandardVAE (plain layers) takes none.
_KERNEL_CONTROL_DEFAULTS = {
    "constraint": constraints.DEFAULT_CONSTRAINT, "conv_constraint": None,
    "conv_relaxation": constraints.DEFAULT_CONV_RELAXATION, "bjorck_iterations": 1}
# Where save_own_variables stores the noise generator's state (resumed runs draw the same noise).
_SEED_STATE_KEY = "seed_generator_state"
# ... and the fixed factors of the layers (settings, not weights), which load_own_variables
# compares: weights loaded into a model with another budget would compute another map
_FACTORS_KEY = "layer_factors"
_FACTOR_ATTRIBUTES = ("lipschitz", "factor", "offset", "max_norm")
# What a subclass may override and keep its certificate: training, reporting and saving, and the
# tower builders (the certificate measures the layers they build one by one)
_NON_COMPUTING_OVERRIDES = frozenset({
    "train_step", "test_step", "compute_loss", "compute_metrics", "metrics", "reset_metrics",
    "get_metrics_result", "compile", "fit", "evaluate", "get_compile_config",
    "compile_from_config", "summary", "save", "save_weights", "load_weights", "export",
    "from_target", "_dense", "_conv", "_activation"})


def _applies_to_a_learned_std(count: int) -> str:
    """'applies to a learned posterior std' for one setting, 'apply ...' for more."""
    return f"{'applies' if count == 1 else 'apply'} to a learned posterior std"


def _init_parameters(cls: type):
    """(class, its __init__'s parameters) for each class in the MRO of `cls` that defines
    __init__, down to LipschitzVAE (whose **kwargs go to keras.Model)."""
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            yield klass, inspect.signature(klass.__init__).parameters.values()
            if klass is LipschitzVAE:
                return


def _constructor_keywords(cls: type) -> set[str]:
    """The keyword names `cls(...)` takes: its __init__'s, and, while an __init__ passes on
    **kwargs (a subclass's usual `__init__(self, *args, **kwargs)`), those of the classes
    after it in the MRO, down to LipschitzVAE (whose **kwargs go to keras.Model)."""
    names: set[str] = set()
    for _, parameters in _init_parameters(cls):
        names |= {p.name for p in parameters
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return names


def _constructor_default(cls: type, name: str) -> object:
    """The default of the keyword `name` in `cls(...)`: that of the first __init__ in the MRO
    (down to LipschitzVAE) that declares it (a subclass may change the default image_shape),
    or None."""
    for _, parameters in _init_parameters(cls):
        for parameter in parameters:
            if parameter.name == name and parameter.default is not parameter.empty:
                return parameter.default
    return None


def _settings(layer: keras.layers.Layer) -> dict:
    """A copy of the layer's config without Keras' serialisation bookkeeping (saving and
    loading write a `shared_object_id` into the nested dicts of a config, the dtype policy's)
    and without `trainable`."""
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k != "shared_object_id"}
        if isinstance(value, (list, tuple)):
            return type(value)(clean(v) for v in value)
        return value
    config = clean(layer.get_config())
    config.pop("trainable", None)  # freezing a layer does not change what it computes
    config["__class__"] = type(layer)  # a class swapped after tracing computes otherwise
    return config


def _replaced_weights(layer: keras.layers.Layer) -> list[str]:
    """Names of the layer's attributes that hold a tensor or array which is not one of its
    weights: a value assigned over a weight (`dense.bias = tf.constant(...)`) that new traces
    would compute with and graphs traced before would not."""
    return [name for name, value in vars(layer).items()
            if isinstance(value, (tf.Tensor, tf.Variable, keras.Variable, np.ndarray))
            and not lp.is_own_weight(layer, value)]


@keras.saving.register_keras_serializable(package="lipvae_tf")
class LipschitzVAE(FixedConfig, keras_inputs.KerasInputs, keras.Model):
    """VAE with Lipschitz encoder mean (M_mu), encoder std (M_sigma, capped at ||sigma|| <= S, or
    a fixed std gamma) and decoder (M_g, sigmoid included), built from the package's layers.

    Build one from a stated robustness level with `LipschitzVAE.from_target`, train it with
    `compile(optimizer)` + `fit`, call `finalize()`, then `certified_radius(x, r, p)`.

    Args (the constructor takes explicit constants; `from_target` chooses them):
        latent_dim: m, the latent dimension.
        encoder_mean, encoder_std, decoder: the budgets M_mu, M_sigma and M_g (M_g of the
            certified reconstruction g, output map included: the logits get M_g divided by
            `output_lipschitz()`, 1/12 for the continuous Bernoulli's mean, 1/4 for a sigmoid).
        std_cap: S, the cap ||sigma(x)||_2 <= S of a learned std (None: no cap).
        posterior_std: a fixed posterior std gamma in every coordinate (no std network; std_cap
            and encoder_std then do not apply, and a value other than their defaults raises
            ValueError), or None for a learned std.
        architecture: "mlp" (hidden_units) or "conv" (conv_filters; stride-2 3x3 convolutions),
            see `lipvae_tf.towers`. image_shape: (height, width, channels), pixels in [0, 1].
        likelihood: "continuous_bernoulli" (Loaiza-Ganem & Cunningham 2019), "bernoulli" or
            "gaussian" (scale gaussian_scale). reconstruction: "mean" (E[x | z], certified by
            default) or "parameter" (sigmoid of the logits, the paper's lambda).
        constrain_std: False leaves a capped std network without a Lipschitz constraint (the
            cap-aware certificates need only S). beta: the KL weight of the ELBO.
        constraint: the per-step kernel control (`lipvae_tf.constraints.CONSTRAINT_KINDS`);
            bjorck_iterations: Björck steps per step when it is "bjorck". Under "bjorck" with a
            large per-layer budget (e.g. reconstruction "parameter" at R* <= 1) full
            Fashion-MNIST training under Adam 1e-3 fell after epoch 5 (test ELBO up to 392 nats
            below the last epoch's training average; BENCHMARKS.md, "Pareto: `new-param` at the
            other settings"); the default subspace clip did not.
        conv_constraint: the conv kernels' control (None: `constraint`, or for "bjorck", which
            works on matrices only, `constraints.DEFAULT_CONV_CONSTRAINT`, the subspace clip).
        conv_relaxation: omega in (0, 2), the over-relaxation of the conv kernels' subspace clip
            (`constraints.SubspaceClip`, default `constraints.DEFAULT_CONV_RELAXATION`, 1: the
            plain step; 1.5 trains better at few epochs, not to convergence, BENCHMARKS.md).
            It acts on conv kernels under "subspace_clip" only: anything but 1 on an MLP or
            under another conv constraint raises ValueError (no step would use it).
        design: the `LipschitzBudget` dict the model was designed with (kept in its config).
        seed: the seed of the reparameterisation noise generator.

    Input shape: (batch, *image_shape) float32 images in [0, 1]; `call` returns the certified
    reconstruction g(mu(x)) of the same shape. Units: radii and r are l2 in pixel space,
    log-likelihoods and the ELBO in nats. Raises ValueError / TypeError naming the argument for
    a bad value. Reference: Barrett et al. 2022, "Certifiably robust variational autoencoders"
    (AISTATS), https://arxiv.org/abs/2102.07559.

    The settings and the three networks are fixed once built (AttributeError on reassignment:
    graphs traced before would not see the change, certificates would); `reconfigured(**changes)`
    builds a new model with changed settings and these weights.
    """

    # what the traced graphs and the certificates both read (FixedConfig)
    _fixed_attributes = frozenset({
        "latent_dim", "encoder_mean_budget", "decoder_budget", "posterior_std",
        "encoder_std_budget", "std_cap", "architecture", "likelihood", "reconstruction",
        "constrain_std", "hidden_units", "conv_filters", "image_shape", "gaussian_scale",
        "beta", "bjorck_iterations", "constraint", "conv_constraint", "conv_relaxation",
        "design", "seed",
        "encoder_mean_net", "encoder_std_net", "decoder_net"})
    # whether its layers take the kernel control's arguments (_KERNEL_CONTROL_DEFAULTS)
    has_kernel_control = True
    # the hidden layers' activation sorts groups of this many units (GroupSort, Anil et al.
    # 2019): hidden_units / conv_filters are multiples of it
    ACTIVATION_GROUP = 2

    def __init__(
        self,
        latent_dim: int = 10,
        *,
        encoder_mean: float = 1.0,
        encoder_std: float = 1.0,
        decoder: float = 1.0,
        std_cap: float | None = design.DEFAULT_STD_CAP,
        posterior_std: float | None = None,
        architecture: str = "mlp",
        hidden_units: Sequence[int] = (512, 512),
        conv_filters: Sequence[int] = (32, 64),
        image_shape: Sequence[int] = (28, 28, 1),
        likelihood: str = "continuous_bernoulli",
        reconstruction: str = "mean",
        constrain_std: bool = True,
        gaussian_scale: float = 0.1,
        beta: float = 1.0,
        bjorck_iterations: int = 1,
        constraint: str = constraints.DEFAULT_CONSTRAINT,
        design: dict | None = None,
        seed: int | None = None,
        conv_constraint: str | None = None,
        conv_relaxation: float = constraints.DEFAULT_CONV_RELAXATION,
        **kwargs,
    ):
        if kwargs.get("dtype") is not None:
            policy = keras.dtype_policies.get(kwargs["dtype"])
            if not _computes_in_float32(policy):
                raise ValueError(
                    f"dtype must be float32 (its networks and certificates are the float32 "
                    f"graph's), got {policy.name!r}")
        # the networks' layers follow Keras' global policy, whatever the model's own dtype
        policy = keras.config.dtype_policy()
        if not _computes_in_float32(policy):
            raise ValueError(
                f"{type(self).__name__} computes in float32 (its networks and certificates are "
                f"the float32 graph's), but Keras' global dtype policy is {policy.name!r}, "
                f"which its layers would follow: call keras.config.set_dtype_policy('float32') "
                f"(and keras.config.set_floatx('float32')) before building it")
        super().__init__(**kwargs)
        # never XLA: it drops the in-graph input checks (Keras' "auto", an uncompiled model's
        # predict on a GPU and the jit_compile setter all consult this)
        self.supports_jit = False
        self.latent_dim = checks.positive_int("latent_dim", latent_dim)
        self.encoder_mean_budget = checks.positive_float32("encoder_mean", encoder_mean)
        self.decoder_budget = checks.positive_float32("decoder", decoder)
        self.posterior_std = (None if posterior_std is None
                              else checks.positive_float32("posterior_std", posterior_std))
        # checked even where a fixed std makes them unused: a wrong value is a mistake either way
        # (a fixed std's M_sigma is 0, as `lipschitz_constants` and a design record give it)
        encoder_std = checks.non_negative_finite("encoder_std", encoder_std)  # a number first
        if posterior_std is None or encoder_std != 0:
            encoder_std = checks.positive_float32("encoder_std", encoder_std)
        std_cap = None if std_cap is None else checks.positive_float32("std_cap", std_cap)
        if self.posterior_std is None:
            self.encoder_std_budget, self.std_cap = encoder_std, std_cap
            if std_cap is not None:
                _checked_cap(std_cap, self.latent_dim)
        else:
            # a fixed std has neither: a value other than the defaults (compared as the float32
            # the model computes in), std_cap None or encoder_std 0 would be dropped silently (a
            # review, 2026-12-04: std_cap=1e-30 was accepted and ignored)
            dropped = [f"{name}={value!r}" for name, value in (
                ("std_cap", std_cap), ("encoder_std", encoder_std))
                if value is not None and value != 0
                and np.float32(value) != np.float32(_LEARNED_STD_DEFAULTS[name])]
            if dropped:
                raise ValueError(
                    f"{' and '.join(dropped)}: {_applies_to_a_learned_std(len(dropped))}, and "
                    f"posterior_std={self.posterior_std:g} fixes the std (no std network): pass "
                    "posterior_std=None for a learned std, or leave them unset")
            self.encoder_std_budget, self.std_cap = 0.0, None
        self.architecture = checks.one_of("architecture", architecture, ARCHITECTURES)
        self.likelihood = checks.one_of("likelihood", likelihood, LIKELIHOODS)
        self.reconstruction = checks.one_of("reconstruction", reconstruction, RECONSTRUCTIONS)
        constrain_std = checks.flag("constrain_std", constrain_std)
        if not constrain_std and (self.posterior_std is not None or self.std_cap is None):
            raise ValueError("constrain_std=False needs a learned std with a std_cap: the "
                             "certificate then uses the cap instead of the std network's constant")
        self.constrain_std = constrain_std
        self.hidden_units = checks.positive_ints("hidden_units", hidden_units)
        self.conv_filters = checks.positive_ints(
            "conv_filters", conv_filters, minimum_length=1 if architecture == "conv" else 0)
        # the activation's groups: an odd width failed inside GroupSort, naming no argument (an
        # adversarial review, 2026-12-04)
        widths_name = "hidden_units" if self.architecture == "mlp" else "conv_filters"
        widths = getattr(self, widths_name)
        if any(width % self.ACTIVATION_GROUP for width in widths):
            raise ValueError(f"{widths_name} must be multiples of {self.ACTIVATION_GROUP} (the "
                             f"GroupSort activation sorts groups of {self.ACTIVATION_GROUP} "
                             f"units), got {widths}")
        self.image_shape = _checked_image_shape(image_shape)
        self.gaussian_scale = checks.positive_float32("gaussian_scale", gaussian_scale)
        self.beta = checks.non_negative_finite("beta", beta)
        self.bjorck_iterations = checks.positive_int("bjorck_iterations", bjorck_iterations)
        self.constraint = checks.one_of(  # the per-step kernel control
            "constraint", constraint, constraints.CONSTRAINT_KINDS)
        self.conv_constraint = checks.one_of(  # the same kind where it exists for convolutions
            "conv_constraint", constraints.conv_kind(constraint, conv_constraint),
            constraints.CONV_KINDS)
        self.conv_relaxation = constraints.check_relaxation("conv_relaxation", conv_relaxation)
        constraints.check_relaxation_applies(self.conv_relaxation, architecture,
                                             self.conv_constraint)
        # a record its own constants do not reproduce is refused (edited by hand in a config)
        self.design = None if design is None else _check_design_record(design)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

        self.encoder_mean_net = self._encoder("encoder_mean", self.encoder_mean_budget)
        std_net = None
        if self.posterior_std is None:
            std_net = self._encoder("encoder_std", self.encoder_std_budget,
                                    constrained=self.constrain_std)
            std_net.add(keras.layers.Activation("softplus"))
            std_net.add(ll.Shift(STD_FLOOR))
            if self.std_cap is not None:
                std_net.add(ll.StdCap(self.std_cap))
        self.encoder_std_net = std_net
        self.decoder_net = self._decoder(self.decoder_budget / self.output_lipschitz())
        self.trackers = {name: keras.metrics.Mean(name=name) for name in _METRICS}
        # the layers of each network as built, and their settings; plain attributes (not
        # tracked by Keras), read-only mappings, which Keras' weight loader does not walk: as
        # dicts it found the layers again under "_built_layers/container", and a layer whose
        # weights did not fit the file was reported as "expected 3 variables, but received 0"
        # instead of by its shapes (a practitioner's review, 2026-12-02)
        self.__dict__["_built_layers"] = types.MappingProxyType(self._network_layers())
        self.__dict__["_built_configs"] = types.MappingProxyType(self._network_configs())
        self.built = True

    def _rebuild_hint(self, name: str) -> str:
        return (f"build a new model with the value changed and these weights: "
                f"vae.reconfigured({name}=value)")

    def _network_layers(self) -> dict[str, tuple]:
        return {name: tuple(net.layers) for name, net in self.lipschitz_networks().items()}

    def _network_configs(self) -> dict[str, tuple]:
        return {name: tuple(_settings(layer) for layer in layers)
                for name, layers in self._network_layers().items()}

    def _decoder_budget_keeping_logits(self, output_lipschitz: float) -> float:
        """The decoder budget M_g for an output map of constant `output_lipschitz` whose logit
        network is this one: the constructor gives the logits M_g / that constant, so M_g is
        this model's logit budget times it, the float64 value (among a few ulps) whose quotient
        is closest (an exact one does not always exist for 1/12). `reconfigured` then checks
        that every decoder layer applies the same factor."""
        if output_lipschitz == self.output_lipschitz():
            return self.decoder_budget
        logits = self.decoder_budget / self.output_lipschitz()
        around = logits * output_lipschitz
        candidates = [around]
        for direction in (math.inf, -math.inf):
            budget = around
            for _ in range(4):
                budget = float(np.nextafter(budget, direction))
                candidates.append(budget)
        return min(candidates, key=lambda budget: abs(budget / output_lipschitz - logits))

    def _check_certifiable(self) -> None:
        """Raises TypeError when a subclass overrides a method with which the model computes
        (`_check_computes_as_its_class`), RuntimeError when its networks changed
        (`_check_networks_unchanged`) or TensorFlow computes float32 in reduced precision
        (`forward_error.check_float32_execution`), ValueError when a weight of its networks
        holds NaN or Inf (`_check_finite_weights`): the certificate speaks for none of them."""
        self._check_computes_as_its_class()
        self._check_networks_unchanged()
        self._check_own_dtype_policy()
        forward_error.check_float32_execution()
        self._check_finite_weights()

    def _check_finite_weights(self) -> None:
        """ValueError naming the first weight of the certified networks that holds NaN or Inf.
        Kernels were refused where their norms are measured, biases were not: a NaN bias (a
        diverged fit) made every reconstruction NaN while the default certificate, which does
        not read biases, still certified its radius (an adversarial review, 2026-12-03)."""
        for name, net in self.lipschitz_networks().items():
            broken = checks.first_non_finite(net.weights)
            if broken is not None:
                raise ValueError(
                    f"the {name} network's weight {broken.path!r} holds NaN or Inf values (a "
                    "diverged training?), so its outputs are not finite and nothing about them "
                    "can be certified")

    def _check_computes_as_its_class(self) -> None:
        """Raises TypeError when this model's class overrides a method of the package's class
        (LipschitzVAE, or StandardVAE) with which it may compute something else: sampling,
        posterior, decoding, `call`, `reconstruct`, `predict` (`lipschitz.
        overridden_computation`). The certificate assumes the package's noise, std and output
        map: an adversarial review's subclass sampled at 3 sigma and kept its radius (P = 0.36 at
        delta = 0 for p = 1/2). Overrides of training, reporting and saving (`train_step`,
        `compute_loss`, `metrics`, ...) and of the tower builders (`_dense`, `_conv`,
        `_activation`, whose layers are measured one by one) are allowed."""
        base = StandardVAE if isinstance(self, StandardVAE) else LipschitzVAE
        replaced = [name for name in lp.overridden_computation(self, base)
                    if name not in _NON_COMPUTING_OVERRIDES]
        if replaced:
            raise TypeError(
                f"{type(self).__name__} overrides {', '.join(replaced)} of {base.__name__}: "
                "the certificate assumes the package's sampling, std and reconstruction, so it "
                f"does not cover this model. Override only training and reporting methods "
                f"({', '.join(sorted(n for n in _NON_COMPUTING_OVERRIDES if n[0] != '_'))})")

    def _check_networks_unchanged(self) -> None:
        """Raises RuntimeError when a network's layers were added, removed or replaced since
        construction (e.g. `encoder_std_net.pop()`), or a layer's settings changed (e.g. a plain
        Keras layer's `activation` reassigned; the package's own layers refuse that, FixedConfig):
        graphs traced before keep the old layers, so no certificate can speak for both."""
        now = self._network_layers()
        configs = self.__dict__["_built_configs"]
        for name, layers in self.__dict__["_built_layers"].items():
            if len(now[name]) != len(layers) or any(a is not b for a, b in zip(now[name], layers)):
                raise RuntimeError(
                    f"the {name} network's layers changed after the model was built; graphs "
                    "traced before (fit, predict, reconstruct, the attacks) keep the old ones, so "
                    "no certificate covers both. Build a new model instead")
            for layer, config in zip(layers, configs[name]):
                replaced = _replaced_weights(layer)
                if replaced:
                    raise RuntimeError(
                        f"layer {layer.name!r} ({type(layer).__name__}) of the {name} network: "
                        f"{', '.join(replaced)} not among its weights (a tensor assigned over a "
                        "weight?); graphs traced before keep computing with the weight, so no "
                        "certificate covers both. Change a weight in place (.assign(value))")
                if _settings(layer) != config:
                    raise RuntimeError(
                        f"the settings of layer {layer.name!r} ({type(layer).__name__}) of the "
                        f"{name} network changed after the model was built; graphs traced "
                        "before keep the old ones, so no certificate covers both. Build a new "
                        "model instead (vae.reconfigured(...) for the model's own settings)")

    @property
    def dtype_policy(self):
        """Keras' dtype policy of the model itself (float32: Keras casts the model's inputs to
        its compute dtype before `call`)."""
        return keras.Model.dtype_policy.fget(self)

    @dtype_policy.setter
    def dtype_policy(self, value) -> None:
        """Refuses every policy but float32 (ValueError naming dtype_policy): under
        "mixed_bfloat16" Keras rounds the images to bfloat16 before `call`, so `call`, `predict`
        and `serving_default` computed another map than the certified one (an adversarial
        review: two images 2e-6 apart, straddling a bfloat16 rounding, moved the reconstruction
        by 2.2e-2, 1440 x the Lipschitz bound)."""
        policy = keras.dtype_policies.get(value)
        if not _computes_in_float32(policy) or policy.quantization_mode is not None:
            raise ValueError(
                f"dtype_policy of a {type(self).__name__} must stay float32 (its networks and "
                f"certificates are the float32 graph's), got {policy.name!r}")
        keras.Model.dtype_policy.fset(self, value)

    def _check_own_dtype_policy(self) -> None:
        """RuntimeError when the model's own dtype policy is not float32 (set around the
        `dtype_policy` setter): Keras would round the images to its compute dtype before the
        networks see them, which no certificate of the float32 networks covers."""
        policy = self.dtype_policy
        if not _computes_in_float32(policy):
            raise RuntimeError(
                f"this {type(self).__name__}'s own dtype policy is {policy.name!r}: Keras casts "
                f"its images to {policy.compute_dtype} before `call`, so what it computes is not "
                "the float32 map the certificate measures. Build a new model instead")

    def reconfigured(self, **changes) -> LipschitzVAE:
        """A new model of this class from this model's config with `changes` applied (e.g.
        reconstruction="parameter", std_cap=0.2), holding a copy of every weight (kernels,
        biases, constraint state, the noise generator's state). The settings of a built model
        are fixed (its traced graphs would not follow a change); this is how to change one.
        The design record (`design`) is kept only when the changes are training settings
        (beta, seed, the constraint kinds): for any other change it is None, since the budget
        was designed for the old settings. Under another constraint kind the kernels and
        biases are copied and the state the new kind keeps (e.g. its power-iteration vector)
        starts fresh where the old kind kept none of its shape. Unless `decoder` is among the
        changes, the decoder's logit network is kept bit for bit (every layer applies the same
        factor, checked): under a new reconstruction mode or
        likelihood, M_g becomes the logit network's budget times the new output map's constant
        (e.g. x 1/3 from "parameter" to "mean").

        Raises:
            TypeError: for a name the constructor does not take. ValueError: when the changes
                alter the weights' shapes or number (e.g. hidden_units, posterior_std between
                fixed and learned), for std_cap or encoder_std on a model with a fixed std
                (they would be ignored), or for a bad value, naming it.
        """
        config = self.get_config()
        unknown = sorted(set(changes) - set(config))
        if unknown:
            raise TypeError(f"reconfigured() got settings a {type(self).__name__} does not have: "
                            f"{', '.join(unknown)}; its settings: {', '.join(sorted(config))}")
        config.update(changes)
        if self.posterior_std is None and config["posterior_std"] is not None:
            # a learned std's settings do not carry over to a fixed one (the weights' check
            # below then names the real change; a review found encoder_std named instead)
            for name, default in (("std_cap", None),
                                  ("encoder_std", _LEARNED_STD_DEFAULTS["encoder_std"])):
                if name not in changes:
                    config[name] = default
        if config["posterior_std"] is not None:
            # the constructor takes their defaults for a fixed std (a saved config holds
            # them): a change to either would be dropped silently
            ignored = [name for name in ("std_cap", "encoder_std") if name in changes
                       and not (name == "std_cap" and changes[name] is None)]
            if ignored:
                raise ValueError(
                    f"{' and '.join(ignored)} {_applies_to_a_learned_std(len(ignored))}, and "
                    f"this model has a fixed one (posterior_std={config['posterior_std']:g}): a "
                    "learned std has other weights, so build that model with from_target or the "
                    "constructor")
        if "design" not in changes and not set(changes) <= _SETTINGS_KEEPING_THE_DESIGN:
            # the budget was designed for the old settings: its certified radius is no claim
            # about the new model (whose certificates are measured, as always)
            config["design"] = None
        if "decoder" not in changes:
            config["decoder"] = self._decoder_budget_keeping_logits(
                _output_lipschitz(config["likelihood"], config["reconstruction"]))
        model = type(self).from_config(config)
        if "decoder" not in changes:
            for old, new in zip(self.decoder_net.layers, model.decoder_net.layers):
                if hasattr(old, "lipschitz") and (
                        lp.applied_value(old.lipschitz, old.compute_dtype)
                        != lp.applied_value(new.lipschitz, new.compute_dtype)):
                    raise ValueError(
                        f"no decoder budget keeps the factor of decoder layer {old.name!r} under "
                        "the new output map; pass decoder= explicitly")
        try:
            self._copy_weights_to(model)
        except ValueError as error:
            raise ValueError(
                f"reconfigured({', '.join(f'{k}={v!r}' for k, v in changes.items())}) changes the "
                f"shapes or number of the weights ({error}); build a new model and train it "
                "instead") from error
        model.seed_generator.state.assign(self.seed_generator.state)
        return model

    def _copy_weights_to(self, model: LipschitzVAE) -> None:
        """Copies every weight into `model`'s layer of the same place and the same weight name:
        kernels and biases must match (ValueError otherwise); under another constraint kind, a
        state the old kind does not keep (e.g. `subspace` for "spectral_norm"'s `power_vector`)
        keeps `model`'s fresh one, which only steers the next steps (a power user's review,
        2026-12-04: set_weights refused the other kind's state, so the kind could not be
        changed)."""
        ours, theirs = self._network_layers(), model._network_layers()
        if ours.keys() != theirs.keys() or any(
                len(ours[name]) != len(theirs[name]) for name in ours):
            raise ValueError("the networks have other layers")
        for name in ours:
            for old, new in zip(ours[name], theirs[name]):
                values = {weight.name: weight for weight in old.weights}
                for weight in new.weights:
                    value = values.get(weight.name)
                    same = value is not None and tuple(value.shape) == tuple(weight.shape)
                    if same:
                        weight.assign(value)
                    elif weight.name in ("kernel", "bias") or weight.trainable:
                        raise ValueError(f"layer {new.name!r}: weight {weight.name!r} has no "
                                         "counterpart of its shape")

    # ----- construction -------------------------------------------------------------------

    @classmethod
    def from_target(
        cls,
        target_radius: float,
        r: float,
        p: float = 0.5,
        *,
        latent_dim: int = 10,
        method: str = "best",
        posterior_std: float | None = design.DEFAULT_POSTERIOR_STD,
        std_cap: float | None = None,
        split: str = "decoder",
        encoder_mean: float | None = None,
        encoder_std: float | None = None,
        decoder: float | None = None,
        min_lipschitz: float = design.DEFAULT_MIN_LIPSCHITZ,
        **kwargs,
    ) -> LipschitzVAE:
        """A model whose budget certifies every input at >= target_radius (robustness upfront).

        The constants come from `design.design_budget` (split "decoder" by default: the encoder
        mean gets design.DEFAULT_ENCODER_MEAN, the decoder's reconstruction gets the largest
        constant that certifies the target).

        The posterior std: by default fixed, sigma = posterior_std = design.DEFAULT_POSTERIOR_STD
        in every coordinate (no std network; the noise difference gamma (eps' - eps) is certified
        exactly by the noncentral chi-square bound, docs/theory.md section 3), which certifies
        R* with a larger decoder constant than a learned std and trains to a higher log p(x)
        (BENCHMARKS.md, "A fixed posterior std"). posterior_std=None learns it instead, with a
        std network capped at ||sigma(x)||_2 <= std_cap (default design.DEFAULT_STD_CAP), left
        unconstrained under split "decoder" unless encoder_std is given: the certificate then
        assumes only the cap (the cap-aware bounds, section 9).

        Args:
            target_radius: R*, the certified radius every input must get: an l2 distance in
                pixel space (pixels in [0, 1]; a 28 x 28 image has diameter 28).
            r: the r-robustness tolerance: how far (l2, pixel space) the sampled reconstruction
                may move, > 0 (above the diameter sqrt(D), designed as sqrt(D), as certified).
            p: the probability, in [1/2, 1), with which it must stay within r.
            latent_dim: the number of latent coordinates.
            method: the certificate the budget is designed for (`bounds.METHODS`).
            posterior_std: gamma, the fixed posterior std (latent units); None learns it.
            std_cap: S, the cap on ||sigma(x)||_2 of a learned std (latent units).
            split: how the budget is spread (`design.SPLITS`); encoder_mean, encoder_std and
                decoder fix a constant each instead.
            min_lipschitz: the smallest constant a network may be given.
            **kwargs: constructor arguments (e.g. reconstruction="parameter",
                architecture="conv", hidden_units=(512, 512)).

        Returns:
            A built, untrained model whose `design` records the budget; train it with `fit`,
            then `finalize()` before certifying.

        Raises:
            ValueError: naming target_radius when the target is infeasible; naming r, p,
                latent_dim, method, split, std_cap or encoder_std for a bad value (std_cap and
                encoder_std apply to a learned std only).
            TypeError: naming the argument for a value of the wrong type, or the keyword
                arguments that neither this method nor the constructor takes (checked before
                any work, as Python does for a function's unknown keywords).
        """
        known = _constructor_keywords(cls) | _KERAS_MODEL_KEYWORDS
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"{cls.__name__}.from_target got unexpected keyword arguments "
                            f"{', '.join(unknown)}: it takes its own and the constructor's "
                            "(help(lipvae_tf.LipschitzVAE))")
        if posterior_std is not None:  # named as the caller wrote it (the design says gamma)
            posterior_std = checks.positive_float32("posterior_std", posterior_std)
        if std_cap is not None:  # named as the caller wrote it (StdCap says max_norm)
            std_cap = checks.positive_float32("std_cap", std_cap)
        std_cap = design.learned_std_cap(posterior_std, std_cap, encoder_std)
        # designed for what the model will certify: r (at most the diameter of the pixel
        # space) less the float32 rounding of the reconstruction, and the cap as the float32
        # graph applies it
        r_certified, r_slack = checked_tolerance(
            r, _checked_image_shape(kwargs.get("image_shape",
                                               _constructor_default(cls, "image_shape"))))
        applied = (None if posterior_std is not None or std_cap is None
                   else _checked_cap(std_cap, latent_dim))
        budget = design.design_budget(
            target_radius, float(r_certified), p, latent_dim=latent_dim, method=method,
            std_cap=std_cap, gamma=posterior_std, split=split, encoder_mean=encoder_mean,
            encoder_std=encoder_std, decoder=decoder, min_lipschitz=min_lipschitz,
            r_slack=r_slack, std_cap_applied=applied,
            gamma_applied=None if posterior_std is None else applied_posterior_std(posterior_std),
        )
        constrained = budget.encoder_std is not None
        return cls(
            latent_dim, encoder_mean=budget.encoder_mean,
            encoder_std=budget.encoder_std if constrained and budget.encoder_std else 1.0,
            decoder=budget.decoder, std_cap=budget.std_cap, posterior_std=budget.gamma,
            constrain_std=constrained, design=budget.to_dict(),
            **kwargs,
        )

    def _dense(self, units: int, lipschitz: float, name: str) -> keras.layers.Layer:
        return ll.LipschitzDense(units, lipschitz=lipschitz, constraint=self.constraint,
                                 bjorck_iterations=self.bjorck_iterations, name=name)

    def _conv(self, filters: int, lipschitz: float, name: str, transpose: bool = False):
        kind = ll.LipschitzConv2DTranspose if transpose else ll.LipschitzConv2D
        return kind(filters, towers.CONV_KERNEL_SIZE, strides=2, padding="same",
                    lipschitz=lipschitz,
                    constraint=self.conv_constraint, relaxation=self.conv_relaxation, name=name)

    def _activation(self, name: str) -> keras.layers.Layer:
        return ll.GroupSort(self.ACTIVATION_GROUP, name=name)

    def output_lipschitz(self, reconstruction: str | None = None) -> float:
        """Lipschitz constant (per pixel, so in l2) of the map from decoder logits to g(z)."""
        return _output_lipschitz(self.likelihood, self._reconstruction_mode(reconstruction))

    def _reconstruction_mode(self, reconstruction: str | None) -> str:
        if reconstruction is None:
            return self.reconstruction
        return checks.one_of("reconstruction", reconstruction, RECONSTRUCTIONS)

    def _encoder(self, name: str, budget: float, constrained: bool = True) -> keras.Sequential:
        """Image -> latent_dim features with Lipschitz constant <= budget (unless unconstrained:
        plain Dense/Conv layers, for a std network that only the cap controls)."""
        return towers.encoder(
            name, budget, dense=self._dense if constrained else towers.plain_dense,
            conv=self._conv if constrained else towers.plain_conv,
            activation=self._activation, **self._tower_shape())

    def _decoder(self, budget: float) -> keras.Sequential:
        """Latent -> image logits with Lipschitz constant <= budget (before the output map)."""
        return towers.decoder(budget, dense=self._dense, conv=self._conv,
                              activation=self._activation, **self._tower_shape())

    def _tower_shape(self) -> dict:
        return dict(image_shape=self.image_shape, latent_dim=self.latent_dim,
                    architecture=self.architecture, hidden_units=self.hidden_units,
                    conv_filters=self.conv_filters)

    @classmethod
    def from_config(cls, config: dict, custom_objects=None) -> LipschitzVAE:
        # configs saved before these were arguments (the zoo's): the reconstruction was
        # sigmoid(logits), the std network constrained, the kernels trained with Björck
        config = {"reconstruction": "parameter", "constrain_std": True, **config}
        if not cls.has_kernel_control:  # StandardVAE: saved configs carried the defaults
            return super().from_config(
                {k: v for k, v in config.items() if k not in _KERNEL_CONTROL_DEFAULTS},
                custom_objects)
        config = {"constraint": "bjorck", **config}
        if "conv_constraint" not in config:
            # saved before conv kernels could take the subspace clip: Björck and the subspace
            # clip left them to the exact clip, whose kernels carry no state
            legacy = config["constraint"]
            config["conv_constraint"] = ("spectral" if legacy in ("bjorck", "subspace_clip")
                                         else legacy)
        if not constraints.relaxation_acts(
                config.get("architecture", "mlp"),
                constraints.conv_kind(config["constraint"], config["conv_constraint"])):
            # saved where no step used it (every model saved while 1.5 was the default, or one
            # given it before it was refused there): it never acted, so 1 is the same model
            config["conv_relaxation"] = 1.0
        frozen = config.pop("frozen", None)
        model = super().from_config(config, custom_objects)
        model._freeze(frozen or {})
        return model

    def _frozen(self) -> dict[str, dict]:
        """The `trainable` flags of the networks that have a frozen part: {network name:
        {"network": flag, "layers": [flag per layer]}} (empty when nothing is frozen)."""
        return {name: {"network": net.trainable,
                       "layers": [layer.trainable for layer in net.layers]}
                for name, net in self.lipschitz_networks().items()
                if not (net.trainable and all(layer.trainable for layer in net.layers))}

    def _freeze(self, frozen: dict[str, dict]) -> None:
        """Sets the flags `_frozen` recorded (the networks are rebuilt by `__init__`, so Keras'
        per-layer `trainable` in the saved config would otherwise be lost, and the optimizer
        state with it: its variables follow the trainable weights)."""
        networks = self.lipschitz_networks()
        for name, flags in frozen.items():
            if name not in networks or len(flags["layers"]) != len(networks[name].layers):
                raise ValueError(f"frozen: the saved flags of network {name!r} do not fit this "
                                 f"model's networks ({sorted(networks)})")
            networks[name].trainable = bool(flags["network"])
            for layer, flag in zip(networks[name].layers, flags["layers"]):
                layer.trainable = bool(flag)

    def get_config(self) -> dict:
        # keras.saving.save_model(model, "m.h5") writes the legacy format without model.save;
        # Keras asks for the config under this flag there (and only there, or in legacy loads)
        if global_state.get_global_attribute("use_legacy_config", False):
            raise _legacy_hdf5_error("keras.saving.save_model to a .h5 path", self)
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "encoder_mean": self.encoder_mean_budget,
            "encoder_std": self.encoder_std_budget or 1.0,
            "decoder": self.decoder_budget,
            "std_cap": self.std_cap,
            "posterior_std": self.posterior_std,
            "architecture": self.architecture,
            "hidden_units": list(self.hidden_units),
            "conv_filters": list(self.conv_filters),
            "image_shape": list(self.image_shape),
            "likelihood": self.likelihood,
            "reconstruction": self.reconstruction,
            "constrain_std": self.constrain_std,
            "gaussian_scale": self.gaussian_scale,
            "beta": self.beta,
            "bjorck_iterations": self.bjorck_iterations,
            "constraint": self.constraint,
            "conv_constraint": self.conv_constraint,
            "conv_relaxation": self.conv_relaxation,
            "design": self.design,
            "seed": self.seed,
            # a frozen network or layer (fine-tuning): restored by from_config
            **({"frozen": frozen} if (frozen := self._frozen()) else {}),
        }

    def save_own_variables(self, store) -> None:
        """Keras' own variables plus the state of the reparameterisation noise generator, so a
        checkpoint (`save_weights`, `BackupAndRestore`, `.keras`) continues the same noise, and
        the layers' fixed factors, which `load_own_variables` compares with the loading
        model's."""
        super().save_own_variables(store)
        store[_SEED_STATE_KEY] = self.seed_generator.state
        store[_FACTORS_KEY] = self._layer_factors()

    def _layer_factors(self) -> np.ndarray:
        """The fixed numbers of every layer of the three networks, in order (the layer factors
        `lipschitz`, a Scale's factor, a Shift's offset, the std cap; NaN where a layer has
        none), and the fixed posterior std: settings that weights alone do not carry."""
        values = [getattr(layer, name, math.nan) for net in self.lipschitz_networks().values()
                  for layer in net.layers for name in _FACTOR_ATTRIBUTES]
        values.append(math.nan if self.posterior_std is None else self.posterior_std)
        return np.asarray(values, np.float64)

    def load_weights(self, filepath, skip_mismatch: bool = False, **kwargs) -> None:
        """Keras' `load_weights`, with a message that says what went wrong when the file comes
        from a model built with other settings (Keras' own reads "expected 3 variables, but
        received 0" for a layer of a nested network whose shapes differ).

        A file that is refused leaves the model's weights as they were. Keras' `set_weights`
        takes a bare list of arrays, which carries no layer factors to compare: weights copied
        with it from a model of another budget load without a word and compute another map
        than the one trained (certificates stay sound: they measure the weights in use).

        Raises:
            ValueError: naming the settings to compare, when the file does not fit; when it
                was saved with other layer factors (another budget), also under
                `skip_mismatch=True`, which skips shape mismatches only; for a .keras path
                that is not a zip archive; for NaN or Inf values (corrupted).
        """
        path = os.fspath(filepath) if isinstance(filepath, (str, os.PathLike)) else None
        if path and path.endswith(".keras") and os.path.isfile(path) and not zipfile.is_zipfile(
                path):
            raise ValueError(f"filepath {path!r} is not a .keras archive (a zip file): it is "
                             "truncated or not a Keras file")
        before = [weight.numpy() for weight in self.weights]
        self.__dict__["_refused_factors"] = None
        try:
            super().load_weights(filepath, skip_mismatch=skip_mismatch, **kwargs)
            if self.__dict__["_refused_factors"]:
                # skip_mismatch=True: Keras turned load_own_variables' error into a warning
                # ("1 objects could not be loaded") and loaded every layer's weights anyway;
                # other factors are no shape mismatch to skip (a power user's review, 2026-12-04)
                raise ValueError(self.__dict__["_refused_factors"]
                                 + "; skip_mismatch=True does not skip a budget")
            # the package's layers refuse non-finite weights as they load; plain Keras layers
            # (a StandardVAE's Dense) are checked here
            broken = checks.first_non_finite(self.weights)
            if broken is not None:
                raise ValueError(f"the weights in {str(filepath)!r} are corrupted: "
                                 f"{broken.path!r} holds NaN or Inf values")
        except Exception as error:
            # a refused file leaves the model as it was (Keras assigns layer by layer)
            for weight, value in zip(self.weights, before):
                weight.assign(value)
            if not isinstance(error, ValueError) or "could not be loaded" not in str(error):
                raise
            if "holds NaN or Inf" in str(error):
                raise ValueError(f"the weights in {str(filepath)!r} are corrupted: some hold NaN "
                                 f"or Inf values (Keras said: {error})") from error
            raise ValueError(
                f"the weights in {str(filepath)!r} do not fit this model: they were saved from "
                "a model built with other settings (compare latent_dim, hidden_units, "
                "conv_filters, architecture, image_shape, posterior_std, std_cap, constraint); "
                "build this model as that one was built (a .keras file carries its settings: "
                f"keras.models.load_model). Keras said: {error}") from error

    def load_own_variables(self, store) -> None:
        """The inverse of `save_own_variables`. A file written before the noise state was saved
        (no such entry) leaves the generator as it is; one whose layer factors differ from this
        model's (a practitioner's review, 2026-12-02: weights of an R* = 1 model loaded into an
        R* = 2 one without a word, their reconstructions 0.12 apart) raises ValueError."""
        keys = [key for key in store.keys() if key not in (_SEED_STATE_KEY, _FACTORS_KEY)]
        if _FACTORS_KEY in store.keys():  # files written before hold no factors
            saved, ours = np.asarray(store[_FACTORS_KEY], np.float64), self._layer_factors()
            if saved.shape != ours.shape or not np.array_equal(saved, ours, equal_nan=True):
                self.__dict__["_refused_factors"] = (
                    "these weights were saved from a model with other layer factors (another "
                    "Lipschitz budget, reconstruction mode, std cap or posterior std): loaded "
                    "here they would compute another map than the one trained. Build the model "
                    "with the settings of the one that saved them (a .keras file carries them: "
                    "keras.models.load_model)")
                raise ValueError(self.__dict__["_refused_factors"])
        own = self._trainable_variables + self._non_trainable_variables
        if len(keys) != len(own):
            raise ValueError(f"model {self.name!r} expected {len(own)} own variables (plus the "
                             f"noise generator's state), got {len(keys)} in the weights file")
        for i, variable in enumerate(own):
            variable.assign(store[str(i)])
        if _SEED_STATE_KEY in store.keys():
            self.seed_generator.state.assign(np.asarray(store[_SEED_STATE_KEY]))

    # ----- the probabilistic model ---------------------------------------------------------

    def posterior_params(self, x: ArrayLike, training: bool = False
                         ) -> tuple[tf.Tensor, tf.Tensor]:
        """(mu(x), sigma(x)), each (batch, latent_dim): the networks' raw map, for images
        already checked (the attacks call it on perturbed images inside their graphs); `encode`
        checks its images (dtype, shape, NaN/Inf, pixels in [0, 1]) and should be used
        otherwise."""
        mu = self.encoder_mean_net(x, training=training)
        if self.encoder_std_net is None:
            return mu, tf.fill(tf.shape(mu), tf.cast(self.posterior_std, mu.dtype))
        return mu, self.encoder_std_net(x, training=training)

    def encode(self, x: ArrayLike, training: bool = False) -> tfd.MultivariateNormalDiag:
        """The approximate posterior q(z | x) = N(mu(x), diag(sigma(x)^2)) (Kingma & Welling
        2014, section 3): sigma(x) is the std network's (capped) output, or the fixed
        posterior std gamma for every coordinate.

        Args:
            x: images (batch, *image_shape), floating pixels in [0, 1].
            training: Keras' training flag (the networks have no dropout or batch norm, so it
                changes nothing today).

        Returns:
            A `tfd.MultivariateNormalDiag` with batch shape (batch,) and event shape
            (latent_dim,): `.mean()` is mu(x), `.stddev()` is sigma(x) (latent units, float32).

        Raises:
            TypeError / ValueError: naming x, as `call` (dtype, shape, NaN/Inf, pixels outside
                [0, 1]; eager inputs raise before the graph, tensors inside it).
        """
        mu, sigma = self.posterior_params(self.checked_pixels(x), training)
        return tfd.MultivariateNormalDiag(loc=mu, scale_diag=sigma)

    def decode_mean(self, z: ArrayLike, training: bool = False,
                    reconstruction: str | None = None) -> tf.Tensor:
        """g(z), the reconstruction the certificate is about: (batch, *image_shape) float32.

        "mean": E[x | z] of the likelihood (for the continuous Bernoulli 1/(1 - e^-eta) - 1/eta,
        TFP's `ContinuousBernoulli.mean`; Loaiza-Ganem & Cunningham 2019, eq. 6); "parameter":
        sigmoid(logits). Evaluated in float64 from the float32 logits and rounded once to float32
        (within OUTPUT_ROUNDING per pixel of the exact value, which the certificate accounts for).
        Raises ValueError naming z for another shape, or (given eagerly) NaN or Inf entries;
        TypeError naming z for a dtype that is not real numbers (complex, bool).
        """
        return self._decoded_mean(self._checked_latents(z), training, reconstruction)

    def _decoded_mean(self, z, training: bool = False, reconstruction: str | None = None):
        """`decode_mean` of codes the model computed itself (from checked images): unchecked,
        so a NaN from the weights surfaces as Keras reports it (TerminateOnNaN, a NaN loss)."""
        return self._output(self.decoder_net(z, training=training), reconstruction)

    def _checked_latents(self, z) -> tf.Tensor:
        """A user's z as a tensor, or ValueError naming z unless its shape is (batch,
        latent_dim) and, for concrete values (an eager call), every entry is finite; TypeError
        naming z unless it holds real numbers (a complex z lost its imaginary part in the
        layers' cast, a bool one became 0 and 1)."""
        if z is None:
            raise TypeError(f"z must be latent codes (batch, {self.latent_dim}), got None")
        z = tf.convert_to_tensor(z)
        if not (z.dtype.is_floating or z.dtype.is_integer) or z.dtype == tf.bool:
            raise TypeError(f"z must hold real numbers (latent codes), got dtype {z.dtype.name}")
        if z.shape.rank is not None and (z.shape.rank != 2 or z.shape[-1] not in (None,
                                                                                 self.latent_dim)):
            raise ValueError(f"z must have shape (batch, {self.latent_dim}), got {z.shape}")
        if tf.executing_eagerly() and z.dtype.is_floating and not np.all(
                np.isfinite(z.numpy())):
            raise ValueError("z must be finite latent codes; got NaN or Inf")
        return z

    def _output(self, logits, reconstruction: str | None = None):
        wide = tf.cast(logits, tf.float64)
        if (self._reconstruction_mode(reconstruction) == "mean"
                and self.likelihood == "continuous_bernoulli"):
            # dtype=float64 explicitly: TFP's default dtype (float32) would choose the float32
            # cutoffs of its series even for float64 logits (errors up to 1.2e-7 near |eta| 0.32)
            value = tfd.ContinuousBernoulli(logits=wide, dtype=tf.float64).mean()
        else:
            value = tf.sigmoid(wide)
        return tf.cast(value, logits.dtype)

    def decode(self, z: ArrayLike, training: bool = False) -> tfd.Distribution:
        """p(x | z) over whole images (event shape = image_shape), z of shape (batch,
        latent_dim); ValueError naming z for another shape, or (given eagerly) NaN or Inf
        entries; TypeError naming z for complex or bool codes."""
        return self._likelihood(self._checked_latents(z), training)

    def _likelihood(self, z, training: bool = False) -> tfd.Distribution:
        """`decode` of codes the model computed itself: unchecked (see `_decoded_mean`)."""
        logits = self.decoder_net(z, training=training)
        if self.likelihood == "bernoulli":
            pixels = tfd.Bernoulli(logits=logits, dtype=logits.dtype)
        elif self.likelihood == "continuous_bernoulli":
            pixels = tfd.ContinuousBernoulli(logits=logits)
        else:
            pixels = tfd.Normal(loc=tf.sigmoid(logits), scale=self.gaussian_scale)
        return tfd.Independent(pixels, reinterpreted_batch_ndims=len(self.image_shape))

    def _sample_latent(self, mu, sigma):
        # under tf.distribute: this replica's rows of one draw for the global batch, so every
        # example gets the same noise with 1 or N replicas (plain keras.random.normal otherwise)
        eps = distribute.replica_normal(tf.shape(mu), mu.dtype, self.seed_generator)
        return mu + sigma * eps

    def call(self, inputs, training: bool = False):
        """Deterministic reconstruction g(mu(x)) in the model's reconstruction mode (what
        `predict` returns), (batch, *image_shape) float32. The images are checked
        (`checked_pixels`)."""
        inputs = self.checked_pixels(inputs, "inputs")
        return self._decoded_mean(self.encoder_mean_net(inputs, training=training), training)

    @property
    def prior(self) -> tfd.Distribution:
        """p(z) = N(0, I_m), made on each use: not an attribute that TF's tracking walks (a
        tracked TFP distribution made every SavedModel export call LinearOperator's deprecated
        `graph_parents` and log its warning)."""
        return tfd.MultivariateNormalDiag(loc=tf.zeros(self.latent_dim))

    def compute_output_shape(self, input_shape) -> tuple:
        """The reconstruction's shape: the input's, (batch, *image_shape).

        Raises:
            ValueError: for an input shape other than (batch, *image_shape).
        """
        shape = tuple(input_shape)
        if len(shape) != len(self.image_shape) + 1 or any(
                n is not None and n != m for n, m in zip(shape[1:], self.image_shape)):
            raise ValueError(f"input_shape must be (batch, "
                             f"{', '.join(map(str, self.image_shape))}), got {shape}")
        return shape

    def checked_pixels(self, x: ArrayLike, name: str = "x") -> tf.Tensor:
        """x as a tensor, checked inside the graph as `check_images` checks NumPy arrays.

        Raises:
            TypeError: (when traced, or eagerly) for non-floating pixels, e.g. uint8 (divide by
                255).
            ValueError: (when traced, or eagerly) for a shape other than (batch, *image_shape);
                eagerly (`model(x)`, `encode(x)` on a tensor or array), naming `name`, for NaN,
                Inf or a pixel outside [0, 1] (`checks.pixel_range`).
            tf.errors.InvalidArgumentError: (when run in a graph) for a shape other than (batch,
                *image_shape) in a graph traced for any shape; naming `name`, for NaN, Inf or a
                pixel outside [0, 1]: `fit`, `evaluate` and `predict` on a dataset or generator
                (their arrays are checked before, `KerasInputs.check_keras_inputs`) and the
                SavedModel's `serving_default` and `encode` refuse such images instead of
                training on them or answering for them.
        """
        if x is None:  # TensorFlow's own message names no argument
            raise TypeError(f"{name} must be an array or tensor of floating-point images "
                            f"(batch, {', '.join(map(str, self.image_shape))}), got None")
        x = tf.convert_to_tensor(x)
        keras_inputs.check_image_layout(
            name, self.image_shape, x.dtype.is_floating, x.dtype.is_integer, x.dtype.name,
            None if x.shape.rank is None else tuple(x.shape))
        if tf.executing_eagerly():
            # a one-line ValueError, not the Assert's InvalidArgumentError with its traceback
            if tf.size(x) > 0:
                checks.pixel_range(name, bool(tf.reduce_all(tf.math.is_finite(x))),
                                   float(tf.reduce_min(x)), float(tf.reduce_max(x)))
            return x
        expected = (None, *self.image_shape)
        if x.shape.rank is None or not x.shape[1:].is_fully_defined():
            # a trace relaxed to any shape (Keras' predict after a call of another shape): the
            # shape is checked when run (InvalidArgumentError naming both shapes), and the
            # networks get the static shape they need
            x = tf.ensure_shape(x, expected)
        # NaN fails both comparisons, +-Inf one of them
        inside = tf.reduce_all((x >= 0) & (x <= 1))
        # the messages of checks.pixel_range: NaN / Inf said as such, else the range found
        # (one formatted string: Assert's list of values printed "got min and max] [0] [2]"),
        # with the 0-255 hint only where it applies
        low, high = tf.reduce_min(x), tf.reduce_max(x)
        hint = tf.where((low >= 0) & (high <= 255), " (divide 0-255 pixels by 255)", "")
        out_of_range = tf.strings.join([tf.strings.format(
            f"{name} must hold pixel values in [0, 1]; got min {{}} and max {{}}", (low, high)),
            hint])
        message = tf.where(tf.reduce_all(tf.math.is_finite(x)), out_of_range,
                           f"{name} contains NaN or Inf values")
        with tf.control_dependencies([tf.debugging.Assert(inside, [message])]):
            return tf.identity(x)

    def elbo_terms(self, x: ArrayLike, training: bool = False) -> dict:
        """Per-example ELBO, reconstruction log-likelihood, KL (one reparameterised sample);
        x is checked as in `call`."""
        x = self.checked_pixels(x)
        mu, sigma = self.posterior_params(x, training)
        z = self._sample_latent(mu, sigma)
        log_likelihood = self._likelihood(z, training).log_prob(x)
        kl = tfd.kl_divergence(tfd.MultivariateNormalDiag(loc=mu, scale_diag=sigma), self.prior)
        return {"elbo": log_likelihood - kl, "reconstruction_log_likelihood": log_likelihood,
                "kl": kl, "loss": -(log_likelihood - self.beta * kl)}

    # ----- Keras training loop -------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, **kwargs) -> None:
        """Keras' `compile` for the optimizer and the execution options (`run_eagerly`,
        `steps_per_execution`, `jit_compile`, ...).

        The model trains on its own loss, the negative beta-ELBO of each image (nats, averaged
        over the batch, weighted by `sample_weight` / `class_weight` when `fit` gets them), and
        reports its own metrics: loss, elbo, reconstruction_log_likelihood and kl (nats per
        image). Callbacks that watch "elbo" or "val_elbo" need mode="max" (Keras cannot tell the
        direction of a model's own metric).

        The model runs in TF's graph executor, never in XLA: Keras' `jit_compile="auto"`
        (XLA on a GPU) is taken as False, since XLA drops the in-graph checks of the images and
        weights (`tf.debugging` asserts: a NaN pixel then reached every weight), and the
        constraints' exact clip runs its SVDs orders of magnitude slower under XLA.

        Raises:
            ValueError: for `loss`, `loss_weights`, `metrics` or `weighted_metrics`, which this
                model would not use, and for `jit_compile=True`.
        """
        jit_compile = kwargs.pop("jit_compile", "auto")
        if jit_compile not in ("auto", False):
            raise ValueError(
                f"{type(self).__name__}.compile got jit_compile={jit_compile!r}; it runs in "
                "TF's graph executor only (jit_compile='auto' or False): XLA drops the in-graph "
                "checks of the images (NaN, Inf, pixels outside [0, 1] would reach the weights "
                "unseen) and runs the constraints' exact clip far slower")
        given = {"loss": loss, "loss_weights": loss_weights, "metrics": metrics,
                 "weighted_metrics": weighted_metrics}
        unused = [name for name, value in given.items() if value is not None and value != []]
        if unused:
            raise ValueError(
                f"{type(self).__name__}.compile got {', '.join(unused)}, which it would not use: "
                "the model trains on its negative ELBO and reports loss, elbo, "
                "reconstruction_log_likelihood and kl itself; compile it with an optimizer only "
                "(e.g. vae.compile(keras.optimizers.Adam(1e-3)))")
        super().compile(optimizer=optimizer, jit_compile=False, **kwargs)

    def compile_from_config(self, config: dict) -> None:
        """Keras' loading hook: compiles a loaded `.keras` model as it was saved (optimizer and
        execution options), so that the optimizer's state (step count, moments) loads with the
        weights. Keras' own hook skips models that override `compile`, as this one does, and a
        loaded model then had no optimizer: training went on from a fresh one. A file saved
        with jit_compile=True (before `compile` refused it) loads without XLA, and one
        compiled with a loss or metrics through `keras.Model.compile` loads without them (a
        warning names them)."""
        config = keras.saving.deserialize_keras_object(config)
        config.pop("jit_compile", None)
        unused = [name for name in ("loss", "loss_weights", "metrics", "weighted_metrics")
                  if config.pop(name, None) not in (None, [])]
        if unused:  # a file compiled through keras.Model.compile: load it, say what is dropped
            warnings.warn(f"{type(self).__name__}: the saved compile config's "
                          f"{', '.join(unused)} are dropped (the model trains on its own "
                          "negative ELBO and reports its own metrics)", stacklevel=2)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def export(self, filepath, format: str = "tf_saved_model", verbose: bool = True,
               input_signature=None, overwrite: bool = False, **kwargs):
        """Keras' `export` (a SavedModel serving `call`: the deterministic reconstruction),
        with the images' input signature (None, *image_shape) float32 by default: the model is
        built at construction, so Keras has seen no call to take the signature from.
        `lipvae_tf.export.export_saved_model` writes the package's serving contract instead
        (reconstructions, latents, the `certify` signature, metadata).

        Raises:
            FileExistsError: when `filepath` is an existing file or a folder that is not empty,
                unless overwrite=True (Keras wrote over it silently, while
                `export_saved_model` refuses the same).
        """
        overwrite = checks.flag("overwrite", overwrite)
        target = os.fspath(filepath)
        if not overwrite and os.path.lexists(target) and not (
                os.path.isdir(target) and not os.listdir(target)):
            raise FileExistsError(f"{target} exists and is not an empty folder: pass "
                                  "overwrite=True to write over it, or another path")
        if input_signature is None:
            input_signature = [tf.TensorSpec((None, *self.image_shape), tf.float32)]
        return super().export(filepath, format=format, verbose=verbose,
                              input_signature=input_signature, **kwargs)

    @property
    def _default_save_signature(self):
        """The `serving_default` that `tf.saved_model.save(model, path)` writes: `call` on
        (None, *image_shape) float32 images, as `export` serves it. Keras' TF backend takes this
        signature from the shapes of the first build call, and this model is built at
        construction: without it the SavedModel had no signature at all (a practitioner's
        review, 2026-12-03). A property, as Keras' hook is."""
        @tf.function(input_signature=[tf.TensorSpec((None, *self.image_shape), tf.float32)])
        def serving_default(inputs):
            return self(inputs)

        return serving_default

    def save(self, filepath, *args, **kwargs) -> None:
        """Keras' `save` for `.keras` files (bit-exact round trips).

        Raises:
            ValueError: for a legacy HDF5 path (.h5, .hdf5): Keras writes one, then cannot load
                it (it does not know this model's classes). Use `.keras`, `save_weights` with a
                `.weights.h5` path, or `lipvae_tf.export.export_saved_model`.
        """
        if str(filepath).lower().endswith((".h5", ".hdf5")):
            raise _legacy_hdf5_error(f"filepath {str(filepath)!r}", self)
        return super().save(filepath, *args, **kwargs)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _record(self, terms: dict, sample_weight=None) -> dict:
        for name, tracker in self.trackers.items():
            # per example: the replicas' totals and counts add up (on-read SUM) to the global
            # mean, weighted by sample_weight when given (Keras' weighted Mean)
            tracker.update_state(terms[name], sample_weight=sample_weight)
        # (1,)-shaped under multi-worker: Keras' step-output reduction fails on scalars there
        return distribute.step_logs({n: t.result() for n, t in self.trackers.items()})

    @staticmethod
    def _replica_loss(terms: dict, x, sample_weight) -> tf.Tensor:
        """This replica's share of the weighted batch-mean negative ELBO.

        Keras' TF optimizer sums the replicas' gradients (all-reduce SUM), so each replica's
        loss is its sum over the global batch size: the sum is the gradient of the global mean
        for any number of replicas, even uneven splits (1 replica: the plain batch mean).
        Per-example weights (sample_weight, or class_weight, which Keras turns into them)
        multiply each example's loss before that sum, as Keras' "sum_over_batch_size"."""
        global_batch = distribute.global_batch_size(tf.shape(x)[0])
        losses = terms["loss"] if sample_weight is None else terms["loss"] * sample_weight
        return tf.reduce_sum(losses) / tf.cast(global_batch, losses.dtype)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Keras' loss hook for a custom `train_step`: the negative ELBO (nats per image) of the
        images x, averaged over the batch with `sample_weight` (shape (batch,) or (batch, 1)),
        one reparameterised sample per image; under tf.distribute, this replica's share (its
        sum over the global batch size), as Keras' own losses are scaled. The loss `fit`
        minimises (`train_step` computes the same value). y and y_pred are not used: the ELBO
        samples z itself and compares the likelihood with x.

        In a training loop of your own (a custom `train_step`, or `tf.GradientTape` from Keras'
        guide): the per-step Lipschitz control is the kernels' constraint, which a Keras
        optimizer applies after each `apply` / `apply_gradients`; an update written by hand
        (`variable.assign_sub(lr * gradient)`) skips it. Either way, call `finalize()` after
        training (the control only steers; `finalize()` projects exactly), also after `fit`
        with an optimizer's `use_ema=True`, whose averaged weights, swapped in at the end, were
        never projected. Certificates stay sound without it (they measure the weights), but
        fall below the designed radius.

        It also records the batch's ELBO terms in the model's metrics (`self.metrics`: `loss`,
        `elbo`, `reconstruction_log_likelihood`, `kl`, weighted by sample_weight), which
        `compile` does not let you replace: a custom `train_step` returns
        `self.get_metrics_result()` (or `self.compute_metrics(x, None, None)`, which returns the
        same) and `fit` reports what the built-in step reports. (Keras' guide loop that calls
        `metric.update_state(y, y_pred)` on every metric does not apply to this model.)

        Raises:
            TypeError: without x (compute_loss(y=..., y_pred=...) as for a supervised model).
        """
        if x is None:
            raise TypeError("compute_loss needs x=, the images: the loss is the negative ELBO "
                            "of x (y and y_pred are not used)")
        x, weights = keras_inputs.images_and_weights((x, None, sample_weight))
        terms = self.elbo_terms(x, training=training)
        self._record(terms, weights)
        return self._replica_loss(terms, x, weights)

    def train_step(self, data):
        x, sample_weight = keras_inputs.images_and_weights(data)
        with tf.GradientTape() as tape:
            terms = self.elbo_terms(x, training=True)
            loss = self._replica_loss(terms, x, sample_weight)
            # a LossScaleOptimizer (or an optimizer's loss_scale_factor) divides the gradients
            # by its scale in `apply`: the loss is scaled here, as Keras' own train_step does
            # (without it every step was 1/32768 of the optimizer's, a practitioner's review)
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.trainable_variables)
        # after the summed update, each replica projects its identical copy of every kernel
        self.optimizer.apply(gradients, self.trainable_variables)  # constraints applied after
        return self._record(terms, sample_weight)

    def test_step(self, data):
        x, sample_weight = keras_inputs.images_and_weights(data)
        return self._record(self.elbo_terms(x), sample_weight)

    # ----- certificates --------------------------------------------------------------------

    def lipschitz_networks(self) -> dict:
        """The three networks whose constants enter the certificate."""
        nets = {"encoder_mean": self.encoder_mean_net, "decoder": self.decoder_net}
        if self.encoder_std_net is not None:
            nets["encoder_std"] = self.encoder_std_net
        return nets

    def lipschitz_constants(self, reconstruction: str | None = None) -> dict[str, float]:
        """Verified upper bounds (from the weights in use) of M_mu, M_sigma and M_g.

        M_g includes the output map of `reconstruction` (default: the model's mode): x 1/12 for
        the continuous Bernoulli mean, x 1/4 for a sigmoid. M_sigma is 0 for a fixed posterior
        std; for an unconstrained std network (constrain_std=False) it is still the product of
        its layers' measured norms, sound but large (the capped certificates use the cap).

        Args:
            reconstruction: None (the model's mode), "mean" or "parameter".

        Returns:
            {"encoder_mean": M_mu, "encoder_std": M_sigma, "decoder": M_g}, floats: l2
            Lipschitz constants, M_mu and M_sigma from pixel space to latent space, M_g from
            latent space to the certified reconstruction's pixels (`lipschitz.
            network_lipschitz_bound`, docs/theory.md sections 7 and 12).

        Raises:
            ValueError: naming reconstruction for an unknown mode.
            RuntimeError: when a network's layers or their settings changed after construction.
            TypeError: for a layer without a verified bound (`lipschitz.layer_lipschitz_bound`),
                or a subclass that overrides how the model samples, encodes or decodes.
        """
        self._check_certifiable()
        return {
            "encoder_mean": lp.network_lipschitz_bound(self.encoder_mean_net),
            "encoder_std": (0.0 if self.encoder_std_net is None
                            else lp.network_lipschitz_bound(self.encoder_std_net)),
            "decoder": lp.product_rounded_up(lp.network_lipschitz_bound(self.decoder_net),
                                             self.output_lipschitz(reconstruction)),
        }

    def std_cap_bound(self) -> float | None:
        """S as the float32 graph applies it: ||sigma(x)||_2 <= S for every input (float64),
        float32 rounding of the cap included (`StdCap.output_norm_bound`); None without a cap."""
        if self.encoder_std_net is None or self.std_cap is None:
            return None
        self._check_certifiable()
        return _applied_cap(self.encoder_std_net.layers[-1], self.latent_dim)

    def posterior_std_bound(self) -> float | None:
        """The fixed posterior std gamma as the graph applies it (`applied_posterior_std`,
        float64). The certificates decrease in gamma (for a fixed mean
        shift inside the ball, the noise's probability of staying in it falls as the noise
        scales up: Anderson 1955), so they use this value. None for a learned std."""
        if self.posterior_std is None:
            return None
        return applied_posterior_std(self.posterior_std)

    def reconstruction_tolerance(self, r: ArrayLike) -> np.ndarray:
        """The tolerance the exact-arithmetic certificate must meet so that the float32
        reconstructions, each within OUTPUT_ROUNDING per pixel of the exact g(z), move by <= r:
        min(r, sqrt(D)) - 2 sqrt(D) OUTPUT_ROUNDING (D pixels), rounded down (`checked_tolerance`:
        an r above the diameter sqrt(D) is certified as sqrt(D)). r: scalar or array (float64).
        Raises ValueError naming r unless every r is finite and above that slack."""
        r, slack = checked_tolerance(r, self.image_shape)
        return (r - slack) * (1 - 2.0**-52)

    def absolute_rounding_slack(self, x: ArrayLike, r: ArrayLike, p: ArrayLike = 0.5,
                                reconstruction: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per input, how far the float32 graph's round-off can move the two reconstructions a
        certificate compares (at x, and at any x' within the largest radius any certificate for
        r can reach), beyond the exact map of the weights in use: (slack, p') of shape (batch,).

        The absolute errors of `lipvae_tf.forward_error` (dot products, scale factors, biases)
        through the encoder mean, the reparameterisation z = mu + sigma eps and the decoder,
        then the output map's constant: a bound for every noise draw with ||eps||_2 <= B, the
        Laurent & Massart (2000, Lemma 1) bound B^2 = m + 2 sqrt(m t) + 2 t, t = log(1 / tail),
        which fails with probability <= tail = NOISE_TAIL (1 - p) per draw. A certificate for
        r - slack at the level p' = p + 2 tail therefore holds for the float32 reconstructions
        at level p (docs/theory.md section 15). x: (batch, *image_shape) in [0, 1]; r: the
        tolerance the exact certificate would use (l2 in pixel space), p in [1/2, 1). A learned
        std enters through its cap S (||sigma eps|| <= S B), the only bound of what its float32
        network computes at a perturbed input.
        Raises ValueError naming x, r or p, or for a learned std without a cap; TypeError for a
        layer without a forward-error bound.
        """
        return self._absolute_rounding(x, r, p, reconstruction)[:2]

    def _absolute_rounding_std_cap(self) -> float:
        """S, the only bound of a learned std that holds for what the float32 graph computes
        at a perturbed input; ValueError without a cap."""
        std_cap = self.std_cap_bound()
        if std_cap is None:
            raise ValueError(
                "absolute_rounding=True with a learned std needs a std_cap: under float32 "
                "round-off the std network's output can jump by more than M_sigma d (e.g. a "
                "large bias cancelled in a later layer), and only the cap bounds what the graph "
                "computes at a perturbed input (docs/theory.md section 15); use a fixed "
                "posterior_std or a model with std_cap")
        return std_cap

    def _absolute_rounding(self, x, r, p, reconstruction: str | None
                           ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        """`absolute_rounding_slack`'s (slack, p') and the constants of `lipschitz_constants`,
        M_mu and M_g from the layer bounds the forward-error terms measured (every kernel is
        measured once)."""
        # networks changed after tracing: graphs traced before keep the old layers (without
        # this check, a fixed-std model reached no other one on this path: an adversarial
        # review certified 142.5 on a popped-and-replaced encoder layer, 0 of 2000 pairs kept)
        self._check_certifiable()
        # max_i sigma_i at every input: the fixed std as applied, or a learned std's cap, the
        # only bound of what its float32 network computes at a perturbed input (ValueError
        # without one, before any work)
        std_top = (self.posterior_std_bound() if self.encoder_std_net is None
                   else self._absolute_rounding_std_cap())
        x = self.check_images(x)
        r, p = _per_input(len(x), r, p)
        encoder_terms = forward_error.chain_errors(self.encoder_mean_net)
        decoder_terms = forward_error.chain_errors(self.decoder_net)
        # M_mu and M_g as `lipschitz_constants` gives them, from the same layer bounds
        m_mu = forward_error.chain_lipschitz(encoder_terms)
        output = self.output_lipschitz(reconstruction)  # also checks `reconstruction`
        m_g = lp.product_rounded_up(forward_error.chain_lipschitz(decoder_terms), output)
        m_sigma = (0.0 if self.encoder_std_net is None
                   else lp.network_lipschitz_bound(self.encoder_std_net))
        constants = {"encoder_mean": m_mu, "encoder_std": m_sigma, "decoder": m_g}
        reach = r / (m_mu * m_g)  # no certificate of any method reaches r / (M_mu M_g)
        tail = NOISE_TAIL * (1 - p)
        t = -np.log(tail)
        noise = np.sqrt(self.latent_dim + 2 * np.sqrt(self.latent_dim * t) + 2 * t) * (1 + 1e-12)
        dtype = self.encoder_mean_net.compute_dtype
        # ||sigma eps|| <= max_i sigma_i ||eps||
        shift = np.broadcast_to(std_top * noise, (len(x),))

        # a subnormal pixel is read as 0 (denormals-are-zero): an input error at x and at x'
        pixels = forward_error.flushed_input_error(math.prod(self.image_shape), dtype)

        def sampling(mu_size, rows):  # ||fl(mu + fl(sigma eps)) - (mu + sigma eps)||
            return forward_error.reparameterisation_error(mu_size, shift[rows], self.latent_dim,
                                                          dtype)

        pieces = []
        for i in range(0, len(x), 1024):
            rows = slice(i, i + 1024)
            norms, mu = forward_error.activation_norms(self.encoder_mean_net,
                                                       tf.constant(x[rows]))
            mu_centre, mu_error = forward_error.chain_forward_error(
                encoder_terms, norms, deviation=reach[rows], read_error=pixels)
            # another batch's mu at x: its layers' inputs are within the centre errors of
            # this batch's, so their norms can be larger by twice those errors; the chain's
            # error bound at deviation 0 takes that in (section 15), the centre bound does not
            _, mu_any_batch = forward_error.chain_forward_error(encoder_terms, norms,
                                                                read_error=pixels)
            mu_size, perturbed = norms[:, -1], m_mu * reach[rows]
            # so that mu lies within mu_any_batch of the exact one, its norm within
            # mu_centre + mu_any_batch of this batch's
            latent_centre = mu_any_batch + sampling(mu_size + mu_centre + mu_any_batch, rows)
            latent_error = mu_error + sampling(mu_size + mu_centre + perturbed + mu_error, rows)
            norms, _ = forward_error.activation_norms(self.decoder_net, mu)
            # the exact latents' distance from the decoder's centre, mu as computed at x
            _, at_x = forward_error.chain_forward_error(
                decoder_terms, norms, deviation=mu_centre + shift[rows],
                input_error=latent_centre)
            _, at_perturbed = forward_error.chain_forward_error(
                decoder_terms, norms, deviation=mu_centre + perturbed + shift[rows],
                input_error=latent_error)
            pieces.append((at_x + at_perturbed) * output)
        slack = np.concatenate(pieces) if pieces else np.zeros(0)
        return slack * (1 + 1e-12), np.broadcast_to(p + 2 * tail, slack.shape), constants

    def constrained_kernels(self) -> list:
        """The kernel variables under a Lipschitz control, those `finalize()` projects (none
        for a model trained without constraints)."""
        return constraints.constrained_kernels(list(self.lipschitz_networks().values()))

    def finalize(self, tol: float = constraints.DEFAULT_FINALIZE_TOL) -> dict:
        """Converged projection of every constrained kernel, written back in place: call it
        once after training, before certifying or exporting (`constraints.
        finalize_constraints`: Björck kernels iterated to orthonormality, clipped kernels
        clipped exactly by a float64 SVD or, for convolutions, by their FFT blocks). A
        certificate is sound without it (it measures the kernels in use), but tighter after.

        Args:
            tol: the projection's tolerance in (0, 1): Björck stops at ||W^T W - I||_F <=
                tol / 10; conv kernels are clipped at (1 - tol) x their bound.

        Returns:
            {kernel variable path: iterations used (0: the kernel was already inside its
            bound)}, e.g. {"encoder_mean/encoder_mean_dense_0/kernel": 1}.

        Raises:
            ValueError: tol outside (0, 1), or a kernel holding NaN or Inf (no kernel changed).
            RuntimeError: naming the kernel when Björck does not converge (no kernel changed).
        """
        return constraints.finalize_constraints(list(self.lipschitz_networks().values()), tol=tol)

    def std_norms(self, x: ArrayLike, batch_size: int = 1024) -> np.ndarray:
        """s(x) = ||sigma(x)||_2 per input (float64), shape (batch,); `std_statistics`' first
        half, with its errors."""
        return self.std_statistics(x, batch_size)[0]

    def std_statistics(self, x: ArrayLike, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """(s(x), s_max(x)) = (||sigma(x)||_2, max_i sigma_i(x)) per input, float64 (batch,),
        computed in float64 from the float32 stds, both raised by the std network's relative
        rounding margin (`lipschitz.output_rounding_factor`: bounds of the exact map's stds, as
        the constants are bounds of its Lipschitz constants) and s rounded up (never below the
        exact norm: `norm_rounding_factor`), then at most the cap as applied (`std_cap_bound`),
        which bounds the exact and the float32 stds alike. A fixed std: gamma as applied,
        s = gamma sqrt(m) rounded up (`fixed_std`).

        Raises:
            TypeError / ValueError: naming x as `check_images` does, or batch_size unless it
                is an int >= 1.
        """
        batch_size = checks.positive_int("batch_size", batch_size)
        x = self.check_images(x)
        if self.encoder_std_net is None:
            gamma = self.posterior_std_bound()
            s = fixed_std(gamma, self.latent_dim)[1]
            return np.full(len(x), s), np.full(len(x), gamma)
        if not len(x):
            return np.zeros(0), np.zeros(0)
        self._check_certifiable()
        statistics = self._std_statistics_function()
        pieces = [statistics(tf.constant(x[i:i + batch_size]))
                  for i in range(0, len(x), batch_size)]
        return tuple(np.concatenate([piece[k].numpy() for piece in pieces]).astype(np.float64)
                     for k in (0, 1))

    def _std_statistics_function(self):
        """The compiled s(x), s_max(x) of the std network, traced once: its layers and their
        settings are fixed (FixedConfig, `_check_networks_unchanged`)."""
        statistics = self.__dict__.get("_std_statistics")  # plain attribute: not tracked
        if statistics is None:
            net, of_sigma = self.encoder_std_net, self.std_statistics_map()

            @tf.function(reduce_retracing=True)
            def statistics(x):
                return of_sigma(net(x))

            self.__dict__["_std_statistics"] = statistics
        return statistics

    def std_statistics_map(self) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
        """`std_statistics` as a graph map from the std network's output sigma (batch, m) to
        (s, s_max), float64 tensors (batch,), its constants measured now (eagerly: the cap as
        applied is read from the layer). Traced into `std_statistics` and into the exported
        `certify` (`export.export_saved_model`), so both compute the same bounds. For a model with
        a std network (`encoder_std_net`); call it again after the weights change.

        Raises:
            ValueError: for a model with a fixed posterior std (no std network to map).
        """
        if self.encoder_std_net is None:
            raise ValueError(f"std_statistics_map maps the std network's outputs, and this model "
                             f"has a fixed posterior std ({self.posterior_std}): its s(x) is "
                             "std_statistics(x)")
        return _std_statistics_map(lp.output_rounding_factor(self.encoder_std_net),
                                   self.latent_dim, self.std_cap_bound())

    def certified_radius(self, x: ArrayLike, r: float, p: float = 0.5, method: str = "best", *,
                         reconstruction: str | None = None,
                         use_std_cap: bool = True,
                         absolute_rounding: bool = False) -> np.ndarray:
        """Per input (shape (batch,), l2 in pixel space), a radius R such that every
        ||delta||_2 < R keeps P(||f(x + delta) - f(x)||_2 <= r) >= p, f the reconstruction of
        `reconstruction` (default: the model's mode), independent noise in both.

        x (array, tensor, nested lists or a finite tf.data.Dataset of batches) is taken as the
        model takes it, in float32 (`check_images`), and R is an l2 distance
        between float32 images: a perturbation formed in float64 and rounded to float32 on the
        way in is covered for ||delta||_2 < R - sqrt(D) 2^-24 (D pixels; each pixel in [0, 1]
        rounds by <= 2^-25, docs/theory.md section 7).

        Uses verified bounds of the constants of the weights in use, the measured s(x) and
        s_max(x), and the std cap as applied, unless use_std_cap=False: the certificates of
        lipvae_tf <= 0.1, with no std cap and, for a learned std, `best` without the triangle
        forms it now adds when there is no cap (`bounds.best_radius(legacy=True)`). r is
        taken at most as the diameter sqrt(D) of the pixel space (any larger r is met by every
        perturbation) and lowered by the float32 rounding of the reconstruction
        (`reconstruction_tolerance`).
        With absolute_rounding=True, r is lowered further by the absolute round-off of the
        whole float32 graph at x and at the perturbed input, and p raised by the noise bound's
        tail (`absolute_rounding_slack`, docs/theory.md section
        15): the certificate then covers every float32 reconstruction, whatever the weights'
        scale; a learned std is then bounded by its cap alone, at the perturbed input (its
        network's round-off can jump past M_sigma d) and at x (its float32 value there depends
        on the batch it is computed in), so it needs a std cap and a capped method or "best".
        Without it, the exact map of the weights in use with relative rounding
        margins (section 12), which can overstate robustness for weights whose values dwarf
        their differences (e.g. biases of 2^23).

        Returns:
            float64 array (batch,): the radii, l2 in pixel space; 0 where nothing is certified.

        Raises:
            ValueError: for a bad method, r (<= the reconstruction's rounding), p (outside
                [1/2, 1)) or images (shape, NaN/Inf, pixels outside [0, 1]), or
                absolute_rounding=True with a learned std and no cap (or an uncapped method).
            TypeError: naming x for integer or non-numeric images, or the argument of a flag
                that is not a bool; for a subclass that overrides how the model samples,
                encodes or decodes (the certificate assumes the package's; training and
                reporting methods may be overridden).
            RuntimeError: when a network's layers or their settings changed after construction.
        """
        use_std_cap = checks.flag("use_std_cap", use_std_cap)
        absolute_rounding = checks.flag("absolute_rounding", absolute_rounding)
        std_cap = self.std_cap_bound() if use_std_cap else None
        # a learned std under absolute round-off: sigma(x') is bounded by the cap alone
        cap_only = absolute_rounding and self.encoder_std_net is not None
        if cap_only and (std_cap is None or method not in bounds.CAP_ONLY_METHODS):
            raise ValueError(
                f"absolute_rounding=True with a learned std certifies through the std cap alone "
                f"(docs/theory.md section 15): it needs a model with std_cap, use_std_cap=True "
                f"and a method in {bounds.CAP_ONLY_METHODS}; got std_cap={self.std_cap}, "
                f"use_std_cap={use_std_cap}, method={method!r}")
        # every argument before the work (the std network's pass, the layers' measurements)
        gamma = self.posterior_std_bound()
        legacy = not use_std_cap  # lipvae_tf 0.1's certificates (train.LEGACY_CERTIFICATE)
        bounds.check_method(method, gamma=gamma, std_cap=std_cap, cap_only=cap_only,
                            legacy=legacy)
        self.output_lipschitz(reconstruction)  # checks `reconstruction`
        x = self.check_images(x)
        r, p = _per_input(len(x), r, p)
        r_exact = self.reconstruction_tolerance(r)
        if cap_only:
            # the cap at x too: the float32 std at x depends on the batch it is computed in
            # (TF's matrix products sum in a batch-dependent order), so a measured s(x) need
            # not be the std the graph samples with; only the cap bounds every evaluation
            s = s_max = np.full(len(x), std_cap)
        else:
            s, s_max = self.std_statistics(x)
        covered = np.ones(np.shape(s), bool)
        if absolute_rounding:
            slack, p, c = self._absolute_rounding(x, r_exact, p, reconstruction)
            r_exact = r_exact - slack
            covered = r_exact > 0  # a slack beyond r leaves nothing to certify
            r_exact = np.where(covered, r_exact, 1.0)
        else:
            c = self.lipschitz_constants(reconstruction)
        self._warn_if_above_budget(c, reconstruction)
        _check_divisor_constants(c)
        radius = bounds.radius(  # the result has the shape of s
            method, c["encoder_mean"], c["encoder_std"], c["decoder"], s, r_exact, p,
            latent_dim=self.latent_dim, gamma=gamma, std_cap=std_cap,
            s_max=None if self.posterior_std is not None else s_max, cap_only=cap_only,
            legacy=legacy,
        )
        if absolute_rounding:  # the slack holds up to r / (M_mu M_g), which no method reaches
            radius = np.minimum(radius, r_exact / (c["encoder_mean"] * c["decoder"]))
        return np.where(covered, radius, 0.0)

    def _warn_if_above_budget(self, constants: dict, reconstruction: str | None) -> None:
        """UserWarning when the measured constants of a model with constrained kernels exceed
        its budget: the kernels were not projected (`finalize()`), the per-step control only
        steers (a checkpoint saved during training, e.g. by ModelCheckpoint), so the radius,
        sound, is below what the model was designed for."""
        if reconstruction not in (None, self.reconstruction) or not self.constrained_kernels():
            return  # the budget speaks of the model's own reconstruction
        budgets = {"encoder_mean": self.encoder_mean_budget, "decoder": self.decoder_budget}
        if self.encoder_std_net is not None and self.constrain_std and self.encoder_std_budget:
            budgets["encoder_std"] = self.encoder_std_budget
        above = {name: (constants[name], budget) for name, budget in budgets.items()
                 if constants[name] > budget * (1 + _ABOVE_BUDGET)}
        if above:
            warnings.warn(
                "the measured Lipschitz constants are above the model's budget ("
                + ", ".join(f"{name} {value:.6g} > {budget:.6g}"
                            for name, (value, budget) in above.items())
                + "): its kernels are not projected onto their bounds (the per-step control "
                "only steers; finalize() projects exactly), so the radii, sound, are below what "
                "the model was designed for. Call model.finalize() before certifying",
                UserWarning, stacklevel=3)

    # ----- inference helpers ---------------------------------------------------------------

    def reconstruct(self, x: ArrayLike, sample: bool = True, batch_size: int = 1024) -> np.ndarray:
        """f(x) = g(mu + sigma * eps) (one sample per input), or g(mu(x)) with sample=False;
        g follows the model's reconstruction mode (the map `certified_radius` certifies).

        Args:
            x: images (batch, *image_shape), floating pixels in [0, 1] (array, tensor, nested
                lists, or a finite tf.data.Dataset of batches, as `check_images` takes).
            sample: draw eps ~ N(0, I) (True), or decode the posterior mean (False).
            batch_size: images per graph call, >= 1.

        Returns:
            float32 array (batch, *image_shape), pixel values in [0, 1].

        Raises:
            TypeError / ValueError: naming x for bad images (`check_images`), naming sample
                or batch_size for a value of the wrong type or range.
        """
        x = self.check_images(x)
        sample = checks.flag("sample", sample)
        batch_size = checks.positive_int("batch_size", batch_size)
        outputs = [self._reconstruct_batch(tf.constant(x[i:i + batch_size]), sample).numpy()
                   for i in range(0, len(x), batch_size)]
        return np.concatenate(outputs) if outputs else np.zeros((0, *self.image_shape), np.float32)

    @tf.function(reduce_retracing=True)
    def _reconstruct_batch(self, x, sample: bool):
        if not sample:
            return self(x)
        mu, sigma = self.posterior_params(x)
        return self._decoded_mean(self._sample_latent(mu, sigma))

    def log_likelihood(self, x: ArrayLike, samples: int = 64, batch_size: int = 256,
                       verbose: int = 0) -> np.ndarray:
        """Importance-weighted estimate of log p(x) per image: the IWAE bound
        log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x), z_k ~ q(z | x), K = `samples` (Burda,
        Grosse, Salakhutdinov 2016, eq. 8), a lower bound of log p(x) that rises with K.

        Args:
            x: images (batch, *image_shape), floating pixels in [0, 1] (array, tensor, nested
                lists, or a finite tf.data.Dataset of batches, as `check_images` takes).
            samples: K >= 1 importance samples per image.
            batch_size: images per evaluation (memory grows with samples x batch_size).
            verbose: as Keras' `predict`: 1, True or "auto" shows a progress bar over the images
                (10k images at K = 64 take about 20 s on 2 CPU cores), 2 one line at the end,
                0 nothing.

        Returns:
            float64 array (batch,), in nats (the likelihood's density of the pixel values:
            continuous Bernoulli or Gaussian, so values above 0 are normal); empty for no images.

        Raises:
            TypeError / ValueError: naming x for bad images (`check_images`), naming samples,
                batch_size or verbose for a value that is not a positive int (0, 1, 2 or
                "auto" for verbose).
        """
        x = self.check_images(x)
        samples = checks.positive_int("samples", samples)
        batch_size = checks.positive_int("batch_size", batch_size)
        verbose = checks.one_of("verbose", verbose, (0, 1, 2, "auto", False, True))
        bar = keras.utils.Progbar(len(x), unit_name="image",
                                  verbose=1 if verbose == "auto" else int(verbose))
        values = []
        for start in range(0, len(x), batch_size):
            values.append(self._iwae_batch(tf.constant(x[start:start + batch_size]),
                                           samples).numpy())
            bar.add(len(values[-1]))
        return np.concatenate(values).astype(np.float64) if len(x) else np.zeros(0)

    @tf.function(reduce_retracing=True)
    def _iwae_batch(self, x, samples):
        posterior = self.encode(x)
        z = self._sample_latent(
            tf.broadcast_to(posterior.loc, tf.concat([[samples], tf.shape(posterior.loc)], 0)),
            posterior.stddev(),
        )  # (samples, batch, latent)
        flat = tf.reshape(z, (-1, self.latent_dim))
        repeated = tf.reshape(
            tf.broadcast_to(x, tf.concat([[samples], tf.shape(x)], 0)), (-1, *self.image_shape)
        )
        log_px = tf.reshape(self._likelihood(flat).log_prob(repeated), (samples, -1))
        log_w = log_px + self.prior.log_prob(z) - posterior.log_prob(z)
        return tf.reduce_logsumexp(log_w, axis=0) - tf.math.log(tf.cast(samples, log_w.dtype))

    def check_images(self, x: ArrayLike, name: str = "x") -> np.ndarray:
        """x as float32 (batch, *image_shape) in [0, 1], or a TypeError/ValueError naming `name`.

        x: an array, a tensor, nested lists of numbers, or a finite tf.data.Dataset of batches
        (elements (batch, *image_shape), or (images, labels[, weights]) tuples, as `fit`
        takes), whose images are gathered into one array (the certificates, attacks and
        `reconstruct` work on arrays)."""
        if isinstance(x, tf.data.Dataset):
            x = self.dataset_images(x, name)
        array = checks.as_array(name, x)
        if array.dtype == object:  # None, a dict, other objects: not an array of pixels
            raise TypeError(f"{name} must be an array of floating-point images (NumPy array, "
                            f"tensor or nested lists of numbers), got {type(x).__name__}")
        keras_inputs.check_image_layout(
            name, self.image_shape, np.issubdtype(array.dtype, np.floating),
            np.issubdtype(array.dtype, np.integer), array.dtype, array.shape)
        return checks.pixel_values(name, array).astype(np.float32)


@keras.saving.register_keras_serializable(package="lipvae_tf")
class StandardVAE(LipschitzVAE):
    """The baseline: same shapes, plain Dense/Conv layers with ReLU, a learned std without a
    cap unless `std_cap` is given; no `from_target` (TypeError).

    Its `lipschitz_constants()` are still verified upper bounds (products of kernel norms), so it
    can be certified too; the bounds are simply loose and large. Its layers have no kernel
    control: `constraint`, `conv_constraint`, `conv_relaxation` and `bjorck_iterations` other
    than their defaults raise ValueError (they would be ignored).
    """

    has_kernel_control = False

    def __init__(self, latent_dim: int = 10, **kwargs):
        kwargs.setdefault("std_cap", None)
        for name, default in _KERNEL_CONTROL_DEFAULTS.items():
            if name in kwargs and kwargs[name] != default:
                raise ValueError(f"{name}={kwargs[name]!r}: a StandardVAE has plain Keras layers "
                                 f"without a kernel control, so {name} would be ignored; leave it "
                                 "unset")
        super().__init__(latent_dim, **kwargs)

    @classmethod
    def from_target(cls, *args, **kwargs):
        """Refused: a StandardVAE's plain layers take no Lipschitz budget, so a design record
        would claim a radius that its measured constants do not give.

        Raises:
            TypeError: always.
        """
        raise TypeError("StandardVAE.from_target: a StandardVAE's plain layers take no "
                        "Lipschitz budget, so no target radius can be designed into it; use "
                        "LipschitzVAE.from_target(...) for a certified model, or "
                        "StandardVAE(...) for the baseline")

    def get_config(self) -> dict:
        config = super().get_config()
        return {k: v for k, v in config.items() if k not in _KERNEL_CONTROL_DEFAULTS}

    def _dense(self, units: int, lipschitz: float, name: str) -> keras.layers.Layer:
        return keras.layers.Dense(units, name=name)

    def _conv(self, filters: int, lipschitz: float, name: str, transpose: bool = False):
        if not transpose:
            return towers.plain_conv(filters, lipschitz, name)
        return towers.plain_conv_transpose(filters, lipschitz, name)

    ACTIVATION_GROUP = 1  # ReLU: any width

    def _activation(self, name: str) -> keras.layers.Layer:
        return keras.layers.Activation("relu", name=name)


def _legacy_hdf5_error(where: str, model: keras.Model) -> ValueError:
    return ValueError(
        f"{where}: the legacy HDF5 format cannot hold a {type(model).__name__} (it would save, "
        "then fail to load with 'Unknown layer'); save to a .keras file, or weights to a "
        ".weights.h5 file")


def _output_lipschitz(likelihood: str, reconstruction: str) -> float:
    if reconstruction == "mean" and likelihood == "continuous_bernoulli":
        return CONTINUOUS_BERNOULLI_MEAN_LIPSCHITZ
    return SIGMOID_LIPSCHITZ


def _per_input(count: int, r, p) -> tuple[np.ndarray, np.ndarray]:
    """r and p checked (finite, r > 0, p in [1/2, 1)) and broadcast to one per input, (count,);
    ValueError naming them otherwise."""
    r, p = checks.real_array("r", r), checks.real_array("p", p)
    shapes = r.shape, p.shape
    r, p = bounds.checked(r=r, p=p)
    try:
        return np.broadcast_to(r, (count,)), np.broadcast_to(p, (count,))
    except ValueError:
        raise ValueError(f"r and p must be one value or one per input ({count}), got shapes "
                         f"r {shapes[0]} and p {shapes[1]}") from None
