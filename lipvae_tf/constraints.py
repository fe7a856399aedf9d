"""Keras kernel constraints that keep layers Lipschitz: applied after each optimiser step.

Projecting after the step (instead of re-parameterising inside the forward pass) costs nothing at
inference and, warm-started from the previous, already projected kernel, needs only 1-3 Björck
iterations per step. `finalize_constraints` gives the fully converged projection before a
certificate is computed.
"""
from __future__ import annotations

from typing import Iterable

import keras
import numpy as np
import tensorflow as tf

from lipvae_tf import checks, conv_spectrum

# Björck converges for singular values in (0, sqrt((1 + beta) / beta)), which contains (0, sqrt(3))
# for every beta <= 0.5; above this bound on sigma_max^2 the kernel is rescaled first.
_SAFE_GRAM_BOUND = 2.5


def _check_rank(kernel_shape, allowed: tuple[int, ...], owner: str) -> None:
    if len(kernel_shape) not in allowed:
        raise ValueError(
            f"{owner} expects a kernel of rank {' or '.join(map(str, allowed))}, "
            f"got shape {tuple(kernel_shape)}"
        )


def bjorck_orthonormalize(
    kernel: tf.Tensor, iterations: int, beta: float = 0.5, scale: float = 1.0
) -> tf.Tensor:
    """`iterations` Björck steps W <- (1 + beta) W - beta W (W^T W) towards scale x orthonormal.

    The Gram matrix is taken on the smaller side (n x n, n = min(rows, cols)). If a cheap bound
    (max absolute row sum of the Gram) says a singular value may exceed the convergence range,
    the kernel is first divided by the square root of that bound.
    """
    rows, cols = kernel.shape
    tall = rows >= cols
    w = kernel / scale
    for step in range(iterations):
        gram = tf.matmul(w, w, transpose_a=tall, transpose_b=not tall)
        if step == 0:
            gram_bound = tf.reduce_max(tf.reduce_sum(tf.abs(gram), axis=1))
            factor = tf.where(
                gram_bound > _SAFE_GRAM_BOUND, tf.math.rsqrt(gram_bound), tf.ones_like(gram_bound)
            )
            w, gram = w * factor, gram * factor * factor
        correction = tf.matmul(w, gram) if tall else tf.matmul(gram, w)
        w = (1.0 + beta) * w - beta * correction
    return w * scale


def clip_dense_spectrum(kernel: tf.Tensor, max_norm: float) -> tf.Tensor:
    """Exact: every singular value above max_norm is set to max_norm, the rest are kept.

    Written as W - U diag(relu(s - max_norm)) V^T, so a kernel inside the ball is returned
    unchanged bit for bit.
    """
    s, u, v = tf.linalg.svd(kernel)
    excess = tf.nn.relu(s - max_norm)
    return kernel - tf.matmul(u * excess[None, :], v, transpose_b=True)


def clip_conv_spectrum(
    kernel: tf.Tensor,
    max_norm: float,
    grid_hw: tuple[int, int],
    strides: tuple[int, int],
) -> tf.Tensor:
    """Clips the singular values of the convolution operator (not of the reshaped kernel).

    The clip is exact in the frequency domain; truncating back to the kernel's support can push
    the norm up a little, so the result is rescaled by its re-measured norm when needed. A kernel
    whose operator is already inside the ball is returned unchanged.
    """
    blocks = conv_spectrum.frequency_blocks(kernel, grid_hw, strides)
    s, u, v = tf.linalg.svd(blocks)

    def clip() -> tf.Tensor:
        excess = tf.cast(tf.nn.relu(s - max_norm), blocks.dtype)
        clipped = blocks - tf.matmul(u * excess[:, None, :], v, adjoint_b=True)
        result = conv_spectrum.kernel_from_blocks(clipped, kernel.shape, grid_hw, strides)
        norm = conv_spectrum.operator_norm(result, grid_hw, strides)
        return result * tf.minimum(tf.constant(1.0, kernel.dtype), max_norm / norm)

    return tf.cond(tf.reduce_max(s) <= max_norm, lambda: tf.identity(kernel), clip)


@keras.saving.register_keras_serializable(package="lipvae_tf")
class BjorckOrthonormal(keras.constraints.Constraint):
    """Projects a dense kernel onto scale x the (semi-)orthonormal matrices after each step.

    Warm-started from the current kernel, which the previous step left nearly orthonormal, so a
    few iterations per step keep it there. Use `finalize_constraints` for the converged projection.
    """

    def __init__(self, iterations: int = 1, beta: float = 0.5, scale: float = 1.0):
        self.iterations = checks.positive_int("iterations", iterations)
        self.beta = checks.positive_finite("beta", beta)
        if self.beta > 0.5:
            raise ValueError(f"beta must be in (0, 0.5] for Björck to converge, got {beta}")
        self.scale = checks.positive_finite("scale", scale)

    def __call__(self, w: tf.Tensor) -> tf.Tensor:
        _check_rank(w.shape, (2,), "BjorckOrthonormal")
        return bjorck_orthonormalize(w, self.iterations, self.beta, self.scale)

    def get_config(self) -> dict:
        return {"iterations": self.iterations, "beta": self.beta, "scale": self.scale}


@keras.saving.register_keras_serializable(package="lipvae_tf")
class SpectralClip(keras.constraints.Constraint):
    """Clips the largest singular values of a kernel's linear operator to max_norm.

    Dense kernels (rank 2): exact SVD clip. Conv kernels (rank 4, layout (kh, kw, c_in, c_out)):
    the clip acts on the convolution operator for inputs of spatial size `input_hw` with the given
    `strides` and `padding` ("same", "valid" or "circular"), which must then be given.
    """

    def __init__(
        self,
        max_norm: float = 1.0,
        input_hw: tuple[int, int] | None = None,
        strides: tuple[int, int] = (1, 1),
        padding: str = "same",
    ):
        self.max_norm = checks.positive_finite("max_norm", max_norm)
        self.input_hw = None if input_hw is None else checks.int_pair("input_hw", input_hw)
        self.strides = checks.int_pair("strides", strides)
        self.padding = padding.lower()
        if self.padding not in conv_spectrum.PADDINGS:
            raise ValueError(f"padding must be one of {conv_spectrum.PADDINGS}, got {padding!r}")

    def conv_grid(self, kernel_shape) -> tuple[int, int]:
        """The frequency grid on which this constraint measures a conv kernel."""
        if self.input_hw is None:
            raise ValueError(
                "SpectralClip on a conv kernel needs input_hw (the spatial input size): the "
                "operator norm of a convolution depends on it"
            )
        return conv_spectrum.circular_grid(
            self.input_hw, tuple(kernel_shape[:2]), self.strides, self.padding
        )

    def __call__(self, w: tf.Tensor) -> tf.Tensor:
        _check_rank(w.shape, (2, 4), "SpectralClip")
        if len(w.shape) == 2:
            return clip_dense_spectrum(w, self.max_norm)
        return clip_conv_spectrum(w, self.max_norm, self.conv_grid(w.shape), self.strides)

    def get_config(self) -> dict:
        return {
            "max_norm": self.max_norm,
            "input_hw": self.input_hw,
            "strides": self.strides,
            "padding": self.padding,
        }


def iter_layers(model_or_layers) -> Iterable[keras.layers.Layer]:
    """Every leaf layer of a model, a layer or an iterable of them (nested models included)."""
    if isinstance(model_or_layers, keras.layers.Layer):
        children = getattr(model_or_layers, "layers", None)
        if children is None:
            yield model_or_layers
            return
        model_or_layers = children
    for item in model_or_layers:
        yield from iter_layers(item)


def _spectral_norm64(w: np.ndarray) -> float:
    return float(np.linalg.norm(w.astype(np.float64), 2))


def _shrink_until_inside(kernel64: np.ndarray, target: float, measure) -> np.ndarray:
    """Casts to float32 and shrinks until the measured norm of the float32 kernel is <= target."""
    w32 = kernel64.astype(np.float32)
    for _ in range(8):
        norm = measure(w32)
        if norm <= target:
            return w32
        w32 = (w32.astype(np.float64) * (target / norm) * (1 - 2**-22)).astype(np.float32)
    raise RuntimeError("could not bring the kernel inside the norm ball in float32")


def _converge_bjorck(kernel: np.ndarray, c: BjorckOrthonormal, tol: float, max_iter: int):
    singular = np.linalg.svd(kernel.astype(np.float64), compute_uv=False)
    if singular.max() <= c.scale and singular.min() >= c.scale * (1 - 10 * tol):
        return kernel, 0  # already finalized (float32 round-off only): unchanged, so idempotent
    w = kernel.astype(np.float64) / c.scale
    tall = w.shape[0] >= w.shape[1]
    eye = np.eye(min(w.shape))
    for iteration in range(max_iter + 1):
        gram = w.T @ w if tall else w @ w.T
        if np.linalg.norm(gram - eye) <= tol * 0.1:  # Frobenius >= spectral error
            break
        if iteration == max_iter:
            raise RuntimeError(f"Björck did not converge to tol={tol} in {max_iter} iterations")
        w = bjorck_orthonormalize(tf.constant(w), 1, c.beta).numpy()
    final = _shrink_until_inside(w * c.scale, c.scale, _spectral_norm64)
    return final, iteration


def _converge_clip(kernel: np.ndarray, c: SpectralClip, tol: float, max_iter: int):
    if kernel.ndim == 2:
        if _spectral_norm64(kernel) <= c.max_norm:
            return kernel, 0  # inside the ball: a clip leaves it untouched
        clipped = clip_dense_spectrum(tf.constant(kernel, tf.float64), c.max_norm).numpy()
        return _shrink_until_inside(clipped, c.max_norm, _spectral_norm64), 1
    grid = c.conv_grid(kernel.shape)

    def measure(w: np.ndarray) -> float:
        return float(conv_spectrum.operator_norm(tf.constant(w, tf.float64), grid, c.strides))

    if measure(kernel) <= c.max_norm:
        return kernel, 0
    w = kernel.astype(np.float64)
    for iteration in range(1, max_iter + 1):
        w = clip_conv_spectrum(tf.constant(w), c.max_norm * (1 - tol), grid, c.strides).numpy()
        if measure(w) <= c.max_norm:
            break
    return _shrink_until_inside(w, c.max_norm, measure), iteration


def finalize_constraints(model_or_layers, tol: float = 1e-6, max_iterations: int = 500) -> dict:
    """Converged projection of every constrained kernel, in float64, written back in place.

    Björck kernels iterate until ||W^T W - I||_F <= tol / 10; clipped kernels are clipped exactly
    (conv: clip and re-measure until inside). Each float32 result is then re-measured and shrunk
    if rounding left it above its target, so the largest singular value is <= target.
    Returns {variable path: iterations used}.
    """
    tol = checks.positive_finite("tol", tol)
    max_iterations = checks.positive_int("max_iterations", max_iterations)
    report = {}
    for layer in iter_layers(model_or_layers):
        kernel = getattr(layer, "kernel", None)
        constraint = getattr(kernel, "constraint", None)
        if isinstance(constraint, BjorckOrthonormal):
            value, used = _converge_bjorck(kernel.numpy(), constraint, tol, max_iterations)
        elif isinstance(constraint, SpectralClip):
            value, used = _converge_clip(kernel.numpy(), constraint, tol, max_iterations)
        else:
            continue
        kernel.assign(value)
        report[kernel.path] = used
    return report
