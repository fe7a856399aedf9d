"""Attacks on VAEs and the empirical robustness margin they imply (docs/theory.md section 8).

Everything runs in TF, batched, and is deterministic under `seed` (stateless random ops).
- `maximum_damage_attack`: projected gradient ascent of the expected distance between the
  reconstructions of x + delta and x, over ||delta||_2 <= radius with x + delta in [0, 1].
- `latent_attack`: KL(q(z|x+delta) || q(z|x_target)) minimised under a norm cap or a penalty.
- `estimate_margin`: bisection on the attack radius; each candidate delta is judged by a
  one-sided Clopper-Pearson upper bound on P(||f(x+delta) - f(x)|| <= r).
Certified radius <= true margin <= `MarginEstimate.upper` (with the stated confidence).

References:
- A. Madry, A. Makelov, L. Schmidt, D. Tsipras, A. Vladu, "Towards Deep Learning Models
  Resistant to Adversarial Attacks", ICLR 2018 (projected gradient ascent),
  https://arxiv.org/abs/1706.06083
- G. Gondim-Ribeiro, P. Tabacof, E. Valle, "Adversarial Attacks on Variational Autoencoders",
  2018 (the latent attack), https://arxiv.org/abs/1806.04646
- C. J. Clopper, E. S. Pearson, "The use of confidence or fiducial limits illustrated in the
  case of the binomial", Biometrika 26(4), 1934, pp. 404-413, https://doi.org/10.1093/biomet/26.4.404
"""
from __future__ import annotations

import dataclasses
import math
import sys

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from numpy.typing import ArrayLike

from lipvae_tf import checks
from lipvae_tf._shared_numerics import norm_rounding_factor

__all__ = [
    "AttackResult", "MarginEstimate", "project_ball_box", "reconstruction_distance",
    "maximum_damage_attack", "latent_attack", "random_perturbation", "expected_damage",
    "clopper_pearson_upper", "clopper_pearson_lower", "robust_counts", "estimate_margin",
    "audit_certificate", "MAX_TRIALS",
]

# The most trials a Clopper-Pearson bound takes. tf.math.betainc's float64 relative error grows
# with the parameters: about 2e-15 n measured against scipy (2.8e-9 at n = 10^6), and at
# n = 10^7 it reached 4e-3 near the median, which put U below the exact bound (an adversarial
# review, 2026-12-04: k = 8e6, confidence 0.5, P(Bin(n, U) <= k) = 0.50005 > 0.5).
MAX_TRIALS = 10**6

tfd = tfp.distributions

_PROJECTION_STEPS = 40  # bisection steps of the ball-and-box projection (2^-40 relative)
# Stateless seeds (seed, k): the attacks use k < 2^20 (batch offsets plus small constants), the
# probability counts k >= 2^20, so the noise that judges a delta never overlaps the noise that
# found it.
_COUNT_STREAM = 2**20


@dataclasses.dataclass
class AttackResult:
    """Per input: the perturbation, its l2 norm, and the attack's objective at it.

    Attributes:
        delta: float32 array of the attacked images' shape (batch, *image_shape): the
            perturbation, with x + delta in [0, 1].
        norm: float64 array (batch,): ||delta||_2, an l2 norm in pixel space.
        objective: float64 array (batch,): the attack's objective at delta. For
            `maximum_damage_attack` the estimated E||f(x + delta) - f(x)||_2 (l2, pixel space);
            for `latent_attack` KL(q(z|x + delta) || q(z|x_target)) in nats.
    """

    delta: np.ndarray
    norm: np.ndarray
    objective: np.ndarray


@dataclasses.dataclass
class MarginEstimate:
    """Per input: the margin the attack could not break (`margin`) and the smallest radius at
    which it broke r-robustness with the stated confidence (`upper`; inf if never broken).

    docs/theory.md section 8, "The estimated margin".

    Attributes:
        margin: float64 array (batch,): the largest radius tried (an l2 norm in pixel space) at
            which the attack did not break r-robustness; 0 if it broke it at radius 0.
        upper: float64 array (batch,): the smallest radius tried at which it did (the
            Clopper-Pearson upper bound of P(||f(x + delta) - f(x)||_2 <= r) was <= p); inf if
            never. Certified radius <= true margin <= upper, with probability >= confidence
            for each input (over all of its tests).
        probability_upper: float64 array (batch,): that upper bound at `upper` (at the
            per-test level of `estimate_margin`); NaN if never broken.
        confidence: the confidence of each input's `upper`, in (0, 1).
        samples: the number of noise pairs behind each bound.
        r: the reconstruction tolerance (l2, pixel space).
        p: the probability level, in [1/2, 1).
        test_confidence: the level of each single Clopper-Pearson test, 1 - (1 - confidence) /
            K with K the most tests an input can get (Bonferroni); None where not recorded.
    """

    margin: np.ndarray
    upper: np.ndarray
    probability_upper: np.ndarray  # Clopper-Pearson upper bound at `upper` (nan if unbroken)
    confidence: float
    samples: int
    r: float
    p: float
    test_confidence: float | None = None


# ----- geometry -------------------------------------------------------------------------------

def project_ball_box(delta: tf.Tensor, x: tf.Tensor, radius: tf.Tensor) -> tf.Tensor:
    """Euclidean projection of each delta onto {||d||_2 <= radius} ∩ {0 <= x + d <= 1}.

    KKT: the projection is clip(t * delta, -x, 1 - x) for the largest t in (0, 1] whose norm is
    <= radius; the norm grows with t, so t is found by bisection (always keeping a feasible t).
    docs/theory.md section 8, "The attack". The radius is lowered by 1e-6 relative before the
    projection, so every result lies strictly inside the ball.

    Args:
        delta: float tensor (batch, ...): the perturbations.
        x: tensor of delta's dtype, one image per perturbation (same number of elements per
            row), pixels in [0, 1].
        radius: the l2 radius (pixel space), a scalar or one per row (batch,), >= 0.

    Returns:
        A tensor of delta's shape and dtype: each row projected, with ||d||_2 <= radius and
        0 <= x + d <= 1.

    Raises:
        TypeError: if delta is not floating point, or radius not real.
        ValueError: if x does not hold one image of delta's size per row, or, for concrete
            values (an eager call; a traced one checks shapes only), x has pixels that are not
            finite values in [0, 1] or radius is not one finite value >= 0 or one per row (a
            negative or NaN radius gave NaN rows).
    """
    delta = tf.convert_to_tensor(delta)
    if not delta.dtype.is_floating:
        raise TypeError(f"delta must be a floating-point tensor, got dtype {delta.dtype.name}")
    if delta.shape.rank is not None and delta.shape.rank < 1:
        raise ValueError(f"delta must be a batch (batch, ...) of perturbations, got shape "
                         f"{delta.shape}")
    x = tf.convert_to_tensor(x, delta.dtype)
    if (delta.shape.is_fully_defined() and x.shape.is_fully_defined()
            and (x.shape.num_elements() != delta.shape.num_elements()
                 or x.shape[0] != delta.shape[0])):
        raise ValueError(f"x must hold one image per row of delta {tuple(delta.shape)}, got "
                         f"shape {tuple(x.shape)}")
    # concrete values (an eager call, constants) are checked now; a traced call's are not
    known_x, known_radius = tf.get_static_value(x), tf.get_static_value(radius)
    if known_x is not None:
        checks.pixel_values("x", known_x)
    if known_radius is not None and delta.shape[0] is not None:
        flat = checks.real_array("radius", known_radius).reshape(-1)  # (batch, 1) is fine
        _radii("radius", flat[0] if flat.size == 1 else flat, delta.shape[0])
    return _project_ball_box(delta, x, radius)


def _project_ball_box(delta: tf.Tensor, x: tf.Tensor, radius: tf.Tensor) -> tf.Tensor:
    """`project_ball_box` without the argument checks, for the attacks' traced graphs."""
    flat = tf.reshape(delta, (tf.shape(delta)[0], -1))
    low, high = -tf.reshape(x, tf.shape(flat)), 1.0 - tf.reshape(x, tf.shape(flat))
    radius = tf.reshape(tf.cast(radius, flat.dtype), (-1, 1)) * (1.0 - 1e-6)

    def clipped_norm(t):
        return tf.norm(tf.clip_by_value(t * flat, low, high), axis=1, keepdims=True)

    norm = tf.norm(flat, axis=1, keepdims=True)
    t_low = tf.minimum(1.0, radius / tf.maximum(norm, 1e-30))  # feasible: clipping shrinks
    t_high = tf.ones_like(t_low)
    for _ in tf.range(_PROJECTION_STEPS):
        mid = 0.5 * (t_low + t_high)
        feasible = clipped_norm(mid) <= radius
        t_low, t_high = tf.where(feasible, mid, t_low), tf.where(feasible, t_high, mid)
    t = tf.where(clipped_norm(t_high) <= radius, t_high, t_low)
    return tf.reshape(tf.clip_by_value(t * flat, low, high), tf.shape(delta))


def _unit(gradient: tf.Tensor) -> tf.Tensor:
    flat = tf.reshape(gradient, (tf.shape(gradient)[0], -1))
    flat = flat / tf.maximum(tf.norm(flat, axis=1, keepdims=True), 1e-30)
    return tf.reshape(flat, tf.shape(gradient))


def _per_row(values: tf.Tensor, rank: int) -> tf.Tensor:
    """(batch,) values shaped to broadcast against (batch, ...) tensors of the given rank."""
    return tf.reshape(values, [-1] + [1] * (rank - 1))


def _random_ball(like: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Uniform samples in the unit l2 ball, one per row of `like`."""
    direction = _unit(tf.random.stateless_normal(tf.shape(like), seed=seed, dtype=like.dtype))
    size = tf.cast(tf.reduce_prod(tf.shape(like)[1:]), like.dtype)
    u = tf.random.stateless_uniform(tf.shape(like)[:1], seed=seed + 1, dtype=like.dtype)
    return direction * _per_row(tf.pow(u, 1.0 / size), like.shape.rank)


def _step_size(radius: tf.Tensor, step, steps: int) -> tf.Tensor:
    """Cosine-decayed step length, from radius/4 at the first step to radius/100 at the last."""
    phase = tf.cast(step, radius.dtype) / float(max(steps - 1, 1))
    return radius * (0.01 + 0.12 * (1.0 + tf.cos(math.pi * phase)))


# ----- the attacks ----------------------------------------------------------------------------

# what the attacks use of a model: a LipschitzVAE or StandardVAE has them all
_MODEL_ATTRIBUTES = ("check_images", "posterior_params", "decode_mean", "latent_dim")


def _checked_model(model):
    """`model` if it has what the attacks use (`_MODEL_ATTRIBUTES`, as a lipvae_tf VAE does),
    else a TypeError naming it (a plain Keras model raised an AttributeError)."""
    missing = [name for name in _MODEL_ATTRIBUTES if not hasattr(model, name)]
    if missing:
        raise TypeError(f"model must be a lipvae_tf LipschitzVAE (or StandardVAE), got "
                        f"{type(model).__name__}, which has no {', '.join(missing)}")
    return model


def reconstruction_distance(model: keras.Model, x: ArrayLike, x_prime: ArrayLike, noise: ArrayLike,
                            noise_prime: ArrayLike) -> tf.Tensor:
    """||g(mu(x) + sigma(x) eps) - g(mu(x') + sigma(x') eps')||_2 per noise sample and input;
    noise tensors are (samples, batch, latent_dim); the result is (samples, batch).

    g is `model.decode_mean`, the reconstruction the certificate is about (docs/theory.md
    section 7). Only the shapes are checked here (tensors stay tensors: differentiable and
    traceable).

    Args:
        model: a lipvae_tf `LipschitzVAE` or `StandardVAE` (anything with `check_images`,
            `posterior_params`, `decode_mean` and `latent_dim`).
        x: float32 tensor (batch, *image_shape).
        x_prime: float32 tensor of x's shape.
        noise: float32 tensor (samples, batch, latent_dim): eps, standard normal.
        noise_prime: float32 tensor (samples, batch, latent_dim): eps', independent of eps.

    Returns:
        float32 tensor (samples, batch): the l2 distances in pixel space.

    Raises:
        TypeError: if `model` lacks what the attacks use.
        ValueError: where the shapes are known, if x_prime does not have x's shape (a batch of
            one was broadcast), the images are not a batch of the model's image shape, or a
            noise tensor is not (samples, batch, latent_dim).
    """
    model = _checked_model(model)
    # tensors stay tensors (a caller differentiates through them, or traces this); the shapes
    # are checked where known
    x, x_prime = tf.convert_to_tensor(x), tf.convert_to_tensor(x_prime)
    noise, noise_prime = tf.convert_to_tensor(noise), tf.convert_to_tensor(noise_prime)
    image = tf.TensorShape([None, *model.image_shape])
    if not x.shape.is_compatible_with(image):
        raise ValueError(f"x must have shape (batch, {', '.join(map(str, model.image_shape))})"
                         f", got {tuple(x.shape)}")
    if not x_prime.shape.is_compatible_with(x.shape):
        raise ValueError(f"x_prime must have the shape of x {tuple(x.shape)}, got "
                         f"{tuple(x_prime.shape)}")
    for name, value in (("noise", noise), ("noise_prime", noise_prime)):
        if not value.shape.is_compatible_with([None, x.shape[0], model.latent_dim]):
            raise ValueError(f"{name} must have shape (samples, batch, latent_dim) = (samples, "
                             f"{x.shape[0]}, {model.latent_dim}), got {tuple(value.shape)}")
    if not noise.shape.is_compatible_with(noise_prime.shape):
        raise ValueError(f"noise and noise_prime must have one shape, got {tuple(noise.shape)} "
                         f"and {tuple(noise_prime.shape)}")
    return _distance(model, x, x_prime, noise, noise_prime)


def _distance(model, x, x_prime, noise, noise_prime) -> tf.Tensor:
    """`reconstruction_distance` without the argument checks, for the attacks' graphs."""
    first, second = _reconstruction_pairs(model, x, x_prime, noise, noise_prime)
    return tf.norm(first - second, axis=-1)


def _reconstruction_pairs(model, x, x_prime, noise, noise_prime) -> tuple[tf.Tensor, tf.Tensor]:
    """The float32 reconstructions g(mu(x) + sigma(x) eps) and g(mu(x') + sigma(x') eps'),
    each (samples, batch, pixels)."""
    mu, sigma = model.posterior_params(x)
    mu_p, sigma_p = model.posterior_params(x_prime)
    samples, batch = tf.shape(noise)[0], tf.shape(noise)[1]
    z = tf.reshape(mu + sigma * noise, (-1, model.latent_dim))
    z_p = tf.reshape(mu_p + sigma_p * noise_prime, (-1, model.latent_dim))
    return (tf.reshape(model.decode_mean(z), (samples, batch, -1)),
            tf.reshape(model.decode_mean(z_p), (samples, batch, -1)))


def maximum_damage_attack(model: keras.Model, x: ArrayLike, radius: ArrayLike, *, restarts: int = 5,
                          steps: int = 40, samples: int = 16, eval_samples: int = 64, seed: int = 0,
                          batch_size: int = 256) -> AttackResult:
    """Maximise E||f(x + delta) - f(x)||_2 over ||delta||_2 <= radius, x + delta in [0, 1].

    Projected normalised-gradient ascent on reparameterised samples (fresh noise every step),
    from delta = 0 and `restarts - 1` uniform random starts in the ball; per input, the restart
    with the largest damage on `eval_samples` common noise samples wins. `radius` is a scalar or
    one value per input. Returns delta, ||delta|| and that damage. Step lengths decay from
    radius/4 to radius/100 on a cosine schedule (docs/theory.md section 8, "The attack";
    projected gradient ascent after Madry et al. 2018).

    Args:
        model: a lipvae_tf `LipschitzVAE` or `StandardVAE` (anything with `check_images`,
            `posterior_params`, `decode_mean` and `latent_dim`).
        x: float images of shape (batch, *model.image_shape), pixel values in [0, 1]
            (a NumPy array, tensor, nested list or finite batched `tf.data` dataset,
            gathered into one array; converted to float32).
        radius: the l2 budget of delta (pixel space), a scalar or an array (batch,), finite
            and >= 0.
        restarts: the number of starts per input (the first at delta = 0), >= 1.
        steps: gradient steps per start, >= 0.
        samples: noise pairs per step for the gradient's estimate, >= 1.
        eval_samples: noise pairs, common to all restarts, that pick the best restart, >= 1.
        seed: the seed of the stateless random ops, an int in [0, 2^31).
        batch_size: inputs attacked at once, >= 1.

    Returns:
        An `AttackResult`: delta float32 (batch, *image_shape), its norm float64 (batch,), and
        as objective the damage E||f(x + delta) - f(x)||_2 (float64 (batch,), l2 in pixel space)
        estimated on the eval_samples pairs.

    Raises:
        TypeError / ValueError: naming the argument, before any model call: restarts, samples,
            eval_samples, batch_size >= 1, steps >= 0, seed in [0, 2^31), radius finite >= 0
            (a scalar or of shape (batch,)).
        TypeError: if `model` lacks what the attacks use, or x is not floating point.
        ValueError: if x has the wrong shape, non-finite values or pixels outside [0, 1].
    """
    restarts = checks.positive_int("restarts", restarts)
    steps = checks.positive_int("steps", steps, minimum=0)
    samples = checks.positive_int("samples", samples)
    eval_samples = checks.positive_int("eval_samples", eval_samples)
    seed = checks.seed("seed", seed)
    batch_size = checks.positive_int("batch_size", batch_size)
    x = _checked_model(model).check_images(x)
    radii = _radii("radius", radius, len(x))
    results = []
    for start in range(0, len(x), batch_size):
        stop = min(start + batch_size, len(x))
        results.append(_max_damage_batch(
            model, tf.constant(x[start:stop]), tf.constant(radii[start:stop]), restarts, steps,
            samples, eval_samples, tf.constant([seed, start], tf.int32)))
    return _collect(results, x)


@tf.function(reduce_retracing=True)
def _max_damage_batch(model, x, radius, restarts, steps, samples, eval_samples, seed):
    batch, rank = tf.shape(x)[0], x.shape.rank
    tiled_x = tf.tile(x, [restarts] + [1] * (rank - 1))
    tiled_r = tf.tile(radius, [restarts])
    not_first = tf.cast(tf.range(restarts * batch) >= batch, x.dtype)  # restart 0 starts at 0
    delta = _project_ball_box(_random_ball(tiled_x, seed) * _per_row(tiled_r * not_first, rank),
                              tiled_x, tiled_r)
    noise_shape = (2, samples, restarts * batch, model.latent_dim)
    for i in tf.range(steps):
        noise = tf.random.stateless_normal(noise_shape, seed=seed + tf.stack([7, i + 11]))
        with tf.GradientTape() as tape:
            tape.watch(delta)
            damage = tf.reduce_mean(
                _distance(model, tiled_x + delta, tiled_x, noise[0], noise[1]), 0)
        step = _per_row(_step_size(tiled_r, i, steps), rank)
        delta = _project_ball_box(delta + step * _unit(tape.gradient(damage, delta)),
                                  tiled_x, tiled_r)
    noise = tf.random.stateless_normal((2, eval_samples, batch, model.latent_dim),
                                       seed=seed + tf.constant([3, 5]))
    noise = tf.tile(noise, [1, 1, restarts, 1])
    damage = tf.reduce_mean(
        _distance(model, tiled_x + delta, tiled_x, noise[0], noise[1]), 0)
    best = tf.argmax(tf.reshape(damage, (restarts, batch)), axis=0, output_type=tf.int32)
    pick = best * batch + tf.range(batch)
    return tf.gather(delta, pick), tf.gather(damage, pick)


def latent_attack(model: keras.Model, x: ArrayLike, x_target: ArrayLike, *,
                  radius: ArrayLike | None = None, penalty: float | None = None, steps: int = 100,
                  step_size: float = 0.5, seed: int = 0, batch_size: int = 256) -> AttackResult:
    """Minimise KL(q(z|x+delta) || q(z|x_target)) (Gondim-Ribeiro et al. 2018), x + delta in
    [0, 1], either under ||delta||_2 <= radius (hard cap, projected descent from delta = 0) or
    with the soft penalty `penalty` * ||delta||_2 (no cap). Give exactly one of the two.

    Normalised-gradient steps with cosine decay (from radius/4, or from `step_size` with a
    penalty); the best iterate per input is kept. The objective reported is the KL.
    The attack is deterministic; `seed` is checked and kept for a uniform signature.
    With a penalty, delta stays in the pixel box and in the ball of the box's diameter sqrt(D).

    Args:
        model: a lipvae_tf `LipschitzVAE` or `StandardVAE` (anything with `check_images`,
            `posterior_params`, `decode_mean` and `latent_dim`).
        x: float images of shape (batch, *model.image_shape), pixel values in [0, 1]
            (a NumPy array, tensor, nested list or finite batched `tf.data` dataset,
            gathered into one array; converted to float32).
        x_target: float images of x's shape, pixels in [0, 1]: the posteriors to reach.
        radius: the hard l2 cap on delta (pixel space), a scalar or an array (batch,), finite
            and >= 0; or None with a penalty.
        penalty: the weight lambda of lambda * ||delta||_2 added to the KL (nats per unit of
            l2 norm), finite and > 0; or None with a radius.
        steps: descent steps, >= 1.
        step_size: the first step length under a penalty (with a radius the first step is
            radius/4), finite and > 0.
        seed: an int in [0, 2^31), checked and unused.
        batch_size: inputs attacked at once, >= 1.

    Returns:
        An `AttackResult`: the best delta per input (float32, x's shape), its norm float64
        (batch,), and as objective KL(q(z|x + delta) || q(z|x_target)) in nats, float64
        (batch,).

    Raises:
        TypeError / ValueError: naming the argument, before any model call (steps,
            batch_size >= 1, step_size and penalty finite > 0, seed in [0, 2^31), radius
            finite >= 0, exactly one of radius / penalty, x_target of x's shape).
        TypeError: if `model` lacks what the attacks use, or x or x_target is not floating
            point.
        ValueError: if x or x_target has the wrong shape, non-finite values or pixels outside
            [0, 1].
    """
    if (radius is None) == (penalty is None):
        raise ValueError("give exactly one of radius (hard norm cap) or penalty (soft)")
    steps = checks.positive_int("steps", steps)
    step_size = checks.positive_finite("step_size", step_size)
    checks.seed("seed", seed)
    batch_size = checks.positive_int("batch_size", batch_size)
    lam = 0.0 if penalty is None else checks.positive_finite("penalty", penalty)
    x = _checked_model(model).check_images(x)
    x_target = model.check_images(x_target, "x_target")
    if x_target.shape != x.shape:
        raise ValueError(f"x_target must have the shape of x {x.shape}, got {x_target.shape}")
    if radius is not None:
        radii = _radii("radius", radius, len(x))
    else:
        radii = np.full(len(x), math.sqrt(x[0].size) if len(x) else 1.0, np.float32)
    results = []
    for start in range(0, len(x), batch_size):
        stop = min(start + batch_size, len(x))
        lengths = (radii[start:stop] if penalty is None
                   else np.full(stop - start, 4 * step_size, np.float32))
        results.append(_latent_batch(
            model, tf.constant(x[start:stop]), tf.constant(x_target[start:stop]),
            tf.constant(radii[start:stop]), tf.constant(lengths), tf.constant(lam, tf.float32),
            steps))
    return _collect(results, x)


@tf.function(reduce_retracing=True)
def _latent_batch(model, x, x_target, radius, lengths, lam, steps):
    mu_t, sigma_t = model.posterior_params(x_target)
    target = tfd.MultivariateNormalDiag(mu_t, sigma_t)

    def objective(delta):
        mu, sigma = model.posterior_params(x + delta)
        kl = tfd.kl_divergence(tfd.MultivariateNormalDiag(mu, sigma), target)
        squared = tf.reduce_sum(tf.reshape(delta, (tf.shape(x)[0], -1)) ** 2, axis=1)
        return kl, kl + lam * tf.sqrt(squared + 1e-12)  # smooth at 0: no NaN gradient

    rank = x.shape.rank
    delta = tf.zeros_like(x)
    best_delta = delta
    best_kl, best_total = objective(delta)
    for i in tf.range(steps):
        with tf.GradientTape() as tape:
            tape.watch(delta)
            _, total = objective(delta)
        step = _per_row(_step_size(lengths, i, steps), rank)
        delta = _project_ball_box(delta - step * _unit(tape.gradient(total, delta)), x, radius)
        kl, total = objective(delta)
        better = total < best_total
        best_total = tf.where(better, total, best_total)
        best_kl = tf.where(better, kl, best_kl)
        best_delta = tf.where(_per_row(better, rank), delta, best_delta)
    return best_delta, best_kl


def random_perturbation(x: ArrayLike, radius: ArrayLike, seed: int = 0) -> np.ndarray:
    """A uniformly random direction of norm `radius` per input, projected onto the pixel box
    (the baseline an attack must beat).

    Args:
        x: images (batch, ...), real values in [0, 1], converted to float32.
        radius: the l2 norm (pixel space), a scalar or an array (batch,), finite and >= 0.
        seed: the seed of the stateless random direction, an int in [0, 2^31).

    Returns:
        float32 array of x's shape: the perturbations, each of l2 norm <= radius (less where
        the box or the projection's 1e-6 margin cuts it) and with x + delta in [0, 1].

    Raises:
        TypeError: if seed is not an int, or radius or x not real.
        ValueError: if seed is outside [0, 2^31), radius is not finite and >= 0 or not a
            scalar or of shape (batch,), or x has no batch axis, non-finite values or pixels
            outside [0, 1].
    """
    seed = checks.seed("seed", seed)
    x = checks.real_array("x", x)
    if x.ndim < 2:
        raise ValueError(f"x must be a batch (batch, ...) of images, got shape {x.shape}")
    x = checks.pixel_values("x", x).astype(np.float32)
    radii = _radii("radius", radius, len(x))
    direction = _unit(tf.random.stateless_normal(x.shape, seed=(seed, 17)))
    return _project_ball_box(direction * _per_row(tf.constant(radii), len(x.shape)),
                             tf.constant(x), tf.constant(radii)).numpy()


def expected_damage(model: keras.Model, x: ArrayLike, delta: ArrayLike, samples: int = 64,
                    seed: int = 0) -> np.ndarray:
    """E||f(x + delta) - f(x)||_2 per input, from `samples` independent noise pairs.

    Args:
        model: a lipvae_tf `LipschitzVAE` or `StandardVAE` (anything with `check_images`,
            `posterior_params`, `decode_mean` and `latent_dim`).
        x: float images of shape (batch, *model.image_shape), pixel values in [0, 1]
            (a NumPy array, tensor, nested list or finite batched `tf.data` dataset,
            gathered into one array; converted to float32).
        delta: perturbations of exactly x's shape, finite, with x + delta in [0, 1].
        samples: the number of noise pairs, >= 1.
        seed: the seed of the stateless noise, an int in [0, 2^31).

    Returns:
        float64 array (batch,): the mean l2 distance (pixel space) over the noise pairs.

    Raises:
        TypeError: if samples or seed is not an int.
        ValueError: if samples < 1, seed is outside [0, 2^31), or delta does not have x's shape
            or is not finite.
        TypeError: if `model` lacks what the attacks use, x is not floating point or delta not
            real.
        ValueError: if x or x + delta has the wrong shape, non-finite values or pixels outside
            [0, 1].
    """
    samples = checks.positive_int("samples", samples)
    seed = checks.seed("seed", seed)
    x = _checked_model(model).check_images(x)
    perturbed = _perturbed(model, x, delta)
    noise = tf.random.stateless_normal((2, samples, len(x), model.latent_dim), seed=(seed, 23))
    distance = _distance(model, tf.constant(perturbed), tf.constant(x), noise[0], noise[1])
    return tf.reduce_mean(distance, axis=0).numpy().astype(np.float64)


def _collect(results, x) -> AttackResult:
    if not results:
        return AttackResult(np.zeros_like(x), np.zeros(0), np.zeros(0))
    delta = np.concatenate([d.numpy() for d, _ in results])
    objective = np.concatenate([o.numpy() for _, o in results]).astype(np.float64)
    norm = np.linalg.norm(delta.reshape(len(delta), -1).astype(np.float64), axis=1)
    return AttackResult(delta, norm, objective)


def _radii(name: str, radius, count: int) -> np.ndarray:
    """A scalar or one radius per input, each finite, >= 0 and finite in float32, as float32
    (count,)."""
    values = checks.real_array(name, radius)
    bad = ~np.isfinite(values) | (values < 0)
    if np.any(bad):
        raise ValueError(f"{name} must be finite and >= 0, got {float(values[bad].flat[0])!r}"
                         + (f" (and {int(bad.sum()) - 1} more)" if bad.sum() > 1 else ""))
    if values.ndim == 0:
        values = np.full(count, float(values))
    if values.shape != (count,):
        raise ValueError(f"{name} must be a scalar or have shape ({count},), got {values.shape}")
    largest = float(np.finfo(np.float32).max)
    if np.any(values > largest):  # inf in the float32 graph: every delta came back NaN
        raise ValueError(f"{name} must be <= {largest:.6g} (the attacks compute in float32), "
                         f"got {np.max(values)!r}")
    return values.astype(np.float32)


def _perturbed(model, x: np.ndarray, delta) -> np.ndarray:
    """x + delta (float32), for a delta of exactly x's shape (no silent broadcasting), finite,
    whose perturbed images stay in [0, 1] (the attacks' deltas do: `project_ball_box`)."""
    delta = checks.real_array("delta", delta).astype(np.float32)
    if delta.shape != x.shape:
        raise ValueError(f"delta must have the shape of x {x.shape}, got {delta.shape}")
    if not np.all(np.isfinite(delta)):
        raise ValueError("delta must be finite")
    return model.check_images(x + delta, "x + delta")


# ----- statistics -----------------------------------------------------------------------------

def clopper_pearson_upper(successes: ArrayLike, trials: ArrayLike, confidence: float) -> np.ndarray:
    """One-sided Clopper-Pearson upper bound U: P(true probability <= U) >= confidence.

    U solves I_U(k + 1, n - k) = confidence (regularised incomplete beta); U = 1 when k = n.
    Found by 60 bisection steps on the upper tail, I_{1-U}(n - k, k + 1) = 1 - confidence
    (tf.math.betainc, float64), against (1 - confidence)(1 - 1e-9 - 1e-14 n): the tail keeps
    its relative accuracy as confidence nears 1, where 1 minus the CDF cancels (the CDF's 1e-16
    absolute error put U below the exact bound at confidence 1 - 1e-9, an adversarial review,
    2026-12-04), and the relative margin covers the tail's own round-off (about 2e-15 n), so
    the returned U (raised by 1e-12 besides) is never below the exact one. At most MAX_TRIALS
    trials: beyond, betainc's error grows past any margin (4e-3 at n = 10^7).
    Clopper & Pearson 1934; docs/theory.md section 8, "The probability at a delta".

    Args:
        successes: k, array_like of integers in [0, trials].
        trials: n, integers >= 1, broadcast to the shape of successes.
        confidence: the one-sided confidence level, in (0, 1).

    Returns:
        float64 array of successes' shape: U, in (0, 1].

    Raises:
        TypeError: if confidence is not a real number.
        ValueError: if confidence is not in (0, 1), successes are not integers in [0, trials],
            trials < 1 or > MAX_TRIALS, or trials does not broadcast to the shape of successes.
    """
    k, n, confidence = _binomial_args(successes, trials, confidence)
    low, high = np.zeros_like(k), np.ones_like(k)
    a, b = k + 1.0, np.maximum(n - k, 1.0)
    # 1 - confidence is exact for confidence >= 1/2; the relative margin covers betainc's own
    # error, about 2e-15 n (measured against scipy up to n = MAX_TRIALS: at most 2.8e-9 there)
    tail = (1.0 - confidence) * (1.0 - (1e-9 + 1e-14 * n))
    for _ in range(60):
        mid = 0.5 * (low + high)
        # P(Beta(k + 1, n - k) > mid) = I_{1 - mid}(n - k, k + 1); 1 - mid is exact for
        # mid >= 1/2, where U near 1 needs it
        below = tf.math.betainc(b, a, 1.0 - mid).numpy() > tail
        low, high = np.where(below, mid, low), np.where(below, high, mid)
    return np.where(k >= n, 1.0, np.minimum(high + 1e-12, 1.0))


def clopper_pearson_lower(successes: ArrayLike, trials: ArrayLike, confidence: float) -> np.ndarray:
    """One-sided Clopper-Pearson lower bound L: P(true probability >= L) >= confidence.

    L = 1 - U(n - k, n), U the `clopper_pearson_upper` bound of the failures (Clopper & Pearson
    1934).

    Args:
        successes: k, array_like of integers in [0, trials].
        trials: n, integers >= 1, broadcast to the shape of successes.
        confidence: the one-sided confidence level, in (0, 1).

    Returns:
        float64 array of successes' shape: L, in [0, 1).

    Raises:
        TypeError: if confidence is not a real number.
        ValueError: if confidence is not in (0, 1), successes are not integers in [0, trials],
            trials < 1 or > MAX_TRIALS, or trials does not broadcast to the shape of successes.
    """
    k, n, confidence = _binomial_args(successes, trials, confidence)
    return np.maximum(1.0 - clopper_pearson_upper(n - k, n, confidence), 0.0)


def _binomial_args(successes, trials, confidence):
    confidence = checks.in_interval("confidence", confidence, 0, 1, low_open=True,
                                    high_open=True)
    k, n = _counts("successes", successes), _counts("trials", trials)
    try:
        n = np.broadcast_to(n, k.shape)
    except ValueError:
        raise ValueError(f"trials (shape {n.shape}) must broadcast to the shape of successes "
                         f"{k.shape}") from None
    if np.any(n < 1) or np.any(k > n):
        raise ValueError("successes must be integers in [0, trials] and trials >= 1")
    if np.any(n > MAX_TRIALS):
        raise ValueError(f"trials must be <= MAX_TRIALS = {MAX_TRIALS}, got {int(n.max())}: "
                         "beyond, tf.math.betainc is not accurate enough for a bound that is "
                         "never below the exact one")
    return k, n, confidence


def _counts(name: str, value) -> np.ndarray:
    """Counts as float64: integers (integer dtypes, or whole finite floats) >= 0, else a
    TypeError (strings, bools: '3' and True were read as 3 and 1) or ValueError naming `name`
    (NaN and inf trials gave a bound of 1e-12, 10.5 a bound of 0.43)."""
    counts = checks.real_array(name, value)
    if not np.all(np.isfinite(counts)) or np.any(counts != np.round(counts)) or np.any(
            counts < 0):
        raise ValueError(f"{name} must be integers >= 0 (counts), got {value!r}")
    return counts


def robust_counts(model: keras.Model, x: ArrayLike, delta: ArrayLike, r: float, samples: int,
                  seed: int = 0, chunk: int = 500) -> np.ndarray:
    """Per input, how many of `samples` independent noise pairs give
    ||f(x + delta) - f(x)||_2 <= r (the successes of a binomial experiment).

    The noise is drawn from a stream of `seed` that the attacks never use, so the noise that
    judges a delta is independent of the noise that found it. The distance between the two
    float32 reconstructions is computed in float64 (their difference exactly) and rounded up,
    so a pair counts only when it really is within r (docs/theory.md section 8, "The
    probability at a delta").

    Args:
        model: a lipvae_tf `LipschitzVAE` or `StandardVAE` (anything with `check_images`,
            `posterior_params`, `decode_mean` and `latent_dim`).
        x: float images of shape (batch, *model.image_shape), pixel values in [0, 1]
            (a NumPy array, tensor, nested list or finite batched `tf.data` dataset,
            gathered into one array; converted to float32).
        delta: perturbations of exactly x's shape, finite, with x + delta in [0, 1].
        r: the reconstruction tolerance, an l2 distance in pixel space, finite and > 0.
        samples: the number of independent noise pairs per input, >= 1.
        seed: the seed of the stateless noise, an int in [0, 2^31).
        chunk: noise pairs evaluated at once, >= 1.

    Returns:
        int64 array (batch,): the counts, each in [0, samples].

    Raises:
        TypeError / ValueError: naming the argument, before any model call (r finite > 0,
            samples and chunk >= 1, seed in [0, 2^31), delta real, of x's shape and finite).
        TypeError: if `model` lacks what the attacks use, or x is not floating point.
        ValueError: if x or x + delta has the wrong shape, non-finite values or pixels outside
            [0, 1].
    """
    r = checks.positive_finite("r", r)
    samples = checks.positive_int("samples", samples)
    seed = checks.seed("seed", seed)
    chunk = checks.positive_int("chunk", chunk)
    x = _checked_model(model).check_images(x)
    perturbed = tf.constant(_perturbed(model, x, delta))
    rounded_up = tf.constant(norm_rounding_factor(math.prod(x.shape[1:])), tf.float64)
    counts = np.zeros(len(x), np.int64)
    if not len(x):
        return counts
    for i, start in enumerate(range(0, samples, chunk)):
        size = min(chunk, samples - start)
        counts += _count_batch(model, perturbed, tf.constant(x), tf.constant(r, tf.float64),
                               size, tf.constant([seed, _COUNT_STREAM + i], tf.int32),
                               rounded_up).numpy()
    return counts


@tf.function(reduce_retracing=True)
def _count_batch(model, perturbed, x, r, size, seed, rounded_up):
    noise = tf.random.stateless_normal((2, size, tf.shape(x)[0], model.latent_dim), seed=seed)
    first, second = _reconstruction_pairs(model, perturbed, x, noise[0], noise[1])
    # a float32 norm can round a distance above r down to r (the audit would be lenient): the
    # difference of two float32 values is exact in float64, its norm rounded up
    difference = tf.cast(first, tf.float64) - tf.cast(second, tf.float64)
    distance = tf.norm(difference, axis=-1) * rounded_up
    return tf.reduce_sum(tf.cast(distance <= r, tf.int64), axis=0)


# ----- the estimated margin -------------------------------------------------------------------

def estimate_margin(model: keras.Model, x: ArrayLike, r: float, p: float = 0.5, *,
                    confidence: float = 0.99, samples: int = 2000, bisection_steps: int = 10,
                    initial_radius: float = 1.0, max_radius: float | None = None, restarts: int = 5,
                    steps: int = 40, attack_samples: int = 16, seed: int = 0,
                    verbose: bool | None = None) -> MarginEstimate:
    """Per input, the largest radius at which the maximum-damage attack cannot push
    P(||f(x + delta) - f(x)||_2 <= r) to p or below.

    A candidate radius counts as broken when the attack's delta has a one-sided Clopper-Pearson
    upper bound (from `samples` noise pairs) <= p. The broken radius is first bracketed by
    doubling from `initial_radius` up to `max_radius` (default: the diameter of the pixel box,
    sqrt(D)), then bisected `bisection_steps` times (geometrically once the lower end is
    positive). Each input is tested at most K = 1 + (doubling steps) + bisection_steps times,
    and each test runs at the Bonferroni level 1 - (1 - confidence) / K, so that the reported
    `upper` is above the true margin with probability >= `confidence` for each input (union
    bound over its tests; docs/theory.md section 8).

    verbose: a progress bar (keras.utils.Progbar on stdout) over the attack calls, with the
    number of inputs still attacked and the median radius being tried (not the margin): True
    shows it, False hides it, None (default) shows it only in interactive use (a terminal, an
    IPython or Jupyter session).
    The results do not depend on it. docs/theory.md section 8, "The estimated margin".

    Args:
        model: a lipvae_tf `LipschitzVAE` or `StandardVAE` (anything with `check_images`,
            `posterior_params`, `decode_mean` and `latent_dim`).
        x: float images of shape (batch, *model.image_shape), pixel values in [0, 1]
            (a NumPy array, tensor, nested list or finite batched `tf.data` dataset,
            gathered into one array; converted to float32).
        r: the reconstruction tolerance, an l2 distance in pixel space, finite and > 0.
        p: the probability level, in [1/2, 1).
        confidence: the confidence of each input's `upper` over all of its tests, in (0, 1)
            (each test's Clopper-Pearson bound runs at 1 - (1 - confidence) / K).
        samples: noise pairs behind each probability bound, in [1, MAX_TRIALS].
        bisection_steps: bisection steps after the bracket, >= 0.
        initial_radius: the first radius of the doubling bracket (l2, pixel space), finite > 0.
        max_radius: the largest radius tried (l2, pixel space), finite > 0; None: sqrt(D), D
            the number of pixels per image.
        restarts, steps, attack_samples: `maximum_damage_attack`'s restarts (>= 1), steps
            (>= 0) and samples (>= 1).
        seed: an int in [0, 2^31); the attacks' and the counts' seeds are derived from it.
        verbose: True, False or None, see above.

    Returns:
        A `MarginEstimate` with margin, upper and probability_upper as float64 arrays (batch,)
        (radii as l2 norms in pixel space); empty arrays for an empty x.

    Raises:
        TypeError / ValueError: naming the argument, before the first attack: r, initial_radius
            and max_radius finite > 0; p in [1/2, 1); confidence in (0, 1); samples in
            [1, MAX_TRIALS]; restarts, attack_samples >= 1; steps, bisection_steps >= 0; seed
            in [0, 2^31); verbose True, False or None.
        TypeError: if `model` lacks what the attacks use, or x is not floating point.
        ValueError: if x has the wrong shape, non-finite values or pixels outside [0, 1].
    """
    r = checks.positive_finite("r", r)
    p = checks.probability_level("p", p)
    confidence = checks.in_interval("confidence", confidence, 0, 1, low_open=True,
                                    high_open=True)
    samples = checks.positive_int("samples", samples, maximum=MAX_TRIALS)  # Clopper-Pearson's
    bisection_steps = checks.positive_int("bisection_steps", bisection_steps, minimum=0)
    # > 0: doubling from 0 would stay at 0 for ever
    initial_radius = checks.positive_finite("initial_radius", initial_radius)
    if max_radius is not None:
        max_radius = checks.positive_finite("max_radius", max_radius)
    attack = dict(restarts=checks.positive_int("restarts", restarts),
                  steps=checks.positive_int("steps", steps, minimum=0),
                  samples=checks.positive_int("attack_samples", attack_samples))
    seed = checks.seed("seed", seed)
    if verbose is not None and not isinstance(verbose, bool):
        raise TypeError(f"verbose must be True, False or None, got {type(verbose).__name__}")
    show = _interactive() if verbose is None else verbose
    x = _checked_model(model).check_images(x)
    if max_radius is None:
        max_radius = math.sqrt(x[0].size) if len(x) else 1.0
    n = len(x)
    if n == 0:  # nothing to attack: an empty estimate, without attacks or a progress bar
        empty = np.zeros(0)
        return MarginEstimate(margin=empty, upper=empty.copy(), probability_upper=empty.copy(),
                              confidence=confidence, samples=samples, r=r, p=p,
                              test_confidence=confidence)
    calls = iter(range(1, 10**6))
    # at most: radius 0, the doubling bracket, the bisection (fewer when every input is settled)
    most_calls = 1 + _doubling_steps(min(initial_radius, max_radius), max_radius) + bisection_steps
    # an input is tested up to most_calls times, and any false break at a radius below its
    # margin lowers `upper`: Bonferroni over those tests (an adversarial review found 5 % of
    # inputs with a false `upper` at confidence 0.99 when each test ran at 0.99)
    per_test = 1 - (1 - confidence) / most_calls
    bar = keras.utils.Progbar(most_calls, unit_name="attack", verbose=1 if show else 0,
                              stateful_metrics=["inputs", "radius tried (median)"])
    shown = [0]  # attack calls shown so far

    def broken(radius: np.ndarray, rows: np.ndarray):
        """(broken?, upper bound) for the inputs `rows` at the given radii."""
        call = next(calls)
        result = maximum_damage_attack(model, x[rows], radius,
                                       seed=(seed * 7919 + call) % checks.SEED_LIMIT, **attack)
        counts = robust_counts(model, x[rows], result.delta, r, samples,
                               seed=(seed + 104729 * call) % checks.SEED_LIMIT)
        upper = clopper_pearson_upper(counts, samples, per_test)
        shown[0] = min(call, most_calls)
        bar.update(shown[0], [("inputs", len(rows)),
                              ("radius tried (median)", float(np.median(radius)))])
        return upper <= p, upper

    low = np.zeros(n)
    high = np.full(n, np.inf)
    prob_at_high = np.full(n, np.nan)
    everything = np.arange(n)

    def attack_at(radius: np.ndarray, rows: np.ndarray) -> None:
        """Attack `rows` at `radius`: a broken radius lowers `high`, a held one raises `low`."""
        is_broken, upper = broken(radius, rows)
        high[rows[is_broken]], prob_at_high[rows[is_broken]] = radius[is_broken], upper[is_broken]
        low[rows[~is_broken]] = radius[~is_broken]

    attack_at(np.zeros(n), everything)  # no perturbation at all
    trial = np.full(n, min(initial_radius, max_radius))
    while True:  # bracket: double until broken or past max_radius
        rows = everything[np.isinf(high) & (trial <= max_radius)]
        if not len(rows):
            break
        attack_at(trial[rows], rows)
        trial[rows] = np.where(trial[rows] >= max_radius, np.inf,
                               np.minimum(2 * trial[rows], max_radius))
    for _ in range(bisection_steps):
        rows = everything[np.isfinite(high) & (high > 0)]
        if not len(rows):
            break
        attack_at(np.where(low[rows] > 0, np.sqrt(low[rows] * high[rows]), 0.5 * high[rows]),
                  rows)
    if shown[0] < most_calls:  # settled early: close the bar (Progbar would print 0 as 0.0000e+00)
        bar.update(most_calls)
    return MarginEstimate(margin=low, upper=high, probability_upper=prob_at_high,
                          confidence=confidence, samples=samples, r=r, p=p,
                          test_confidence=per_test)


def _doubling_steps(start: float, stop: float) -> int:
    """How many radii the bracket of `estimate_margin` tries at most: start, 2 start, ... up to
    and including stop."""
    count, trial = 0, start
    while trial <= stop:
        count += 1
        trial = math.inf if trial >= stop else min(2 * trial, stop)
    return count


def _interactive() -> bool:
    """A terminal on stdout, or an IPython / Jupyter session: where a progress bar is wanted."""
    ipython = sys.modules.get("IPython")
    if ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None:
        return True
    return hasattr(sys, "ps1") or bool(getattr(sys.stdout, "isatty", lambda: False)())


def audit_certificate(model: keras.Model, x: ArrayLike, radius: ArrayLike, r: float, p: float = 0.5,
                      *, fraction: float = 0.99, confidence: float = 0.999, samples: int = 4000,
                      restarts: int = 5, steps: int = 60, attack_samples: int = 16,
                      seed: int = 0) -> np.ndarray:
    """Attack every input at `fraction` x its certified `radius` and return the one-sided
    Clopper-Pearson upper bound of P(||f(x + delta) - f(x)||_2 <= r) at the attack's delta.

    A sound certificate keeps every bound above p (up to the 1 - confidence chance per input);
    a bound <= p is a certificate proven wrong at that confidence. docs/theory.md section 8,
    "The audit".

    Args:
        model: a lipvae_tf `LipschitzVAE` or `StandardVAE` (anything with `check_images`,
            `posterior_params`, `decode_mean` and `latent_dim`).
        x: float images of shape (batch, *model.image_shape), pixel values in [0, 1]
            (a NumPy array, tensor, nested list or finite batched `tf.data` dataset,
            gathered into one array; converted to float32).
        radius: the certified radii (l2, pixel space), a scalar or an array (batch,), finite
            and >= 0.
        r: the reconstruction tolerance, an l2 distance in pixel space, finite and > 0.
        p: the probability level of the certificate, in [1/2, 1).
        fraction: the attack's radius as a fraction of `radius`, in (0, 1].
        confidence: the one-sided Clopper-Pearson confidence, in (0, 1).
        samples: noise pairs behind each bound, in [1, MAX_TRIALS].
        restarts, steps, attack_samples: `maximum_damage_attack`'s restarts (>= 1), steps
            (>= 1: with none, the "attack" is its random starts, which cannot be expected to
            catch a broken certificate) and samples (>= 1).
        seed: an int in [0, 2^31 - 1): the attack uses seed, the counts seed + 1.

    Returns:
        float64 array (batch,): the Clopper-Pearson upper bound of
        P(||f(x + delta) - f(x)||_2 <= r) at the attack's delta, in (0, 1].

    Raises:
        TypeError / ValueError: naming the argument, before the attack: r finite > 0, p in
            [1/2, 1), fraction in (0, 1], confidence in (0, 1), samples in [1, MAX_TRIALS],
            restarts, attack_samples, steps >= 1, seed in [0, 2^31 - 1), radius finite >= 0.
        TypeError: if `model` lacks what the attacks use, or x is not floating point.
        ValueError: if x has the wrong shape, non-finite values or pixels outside [0, 1].
    """
    r = checks.positive_finite("r", r)
    checks.probability_level("p", p)
    fraction = checks.in_interval("fraction", fraction, 0, 1, low_open=True)
    confidence = checks.in_interval("confidence", confidence, 0, 1, low_open=True,
                                    high_open=True)
    samples = checks.positive_int("samples", samples, maximum=MAX_TRIALS)  # Clopper-Pearson's
    restarts = checks.positive_int("restarts", restarts)
    steps = checks.positive_int("steps", steps)
    attack_samples = checks.positive_int("attack_samples", attack_samples)
    seed = checks.seed("seed", seed)
    if seed + 1 >= checks.SEED_LIMIT:
        raise ValueError(f"seed must be an integer in [0, 2**31 - 1), got {seed}")
    x = _checked_model(model).check_images(x)
    attack_radius = _radii("radius", radius, len(x)) * np.float32(fraction)
    result = maximum_damage_attack(model, x, attack_radius, restarts=restarts, steps=steps,
                                   samples=attack_samples, seed=seed)
    counts = robust_counts(model, x, result.delta, r, samples, seed=seed + 1)
    return clopper_pearson_upper(counts, samples, confidence)
