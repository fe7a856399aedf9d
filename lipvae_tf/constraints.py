"""Keras kernel constraints that keep layers Lipschitz: applied after each optimiser step.

Projecting after the step (instead of re-parameterising inside the forward pass) costs nothing at
inference. Four kinds (`CONSTRAINT_KINDS`, the layers' and the model's `constraint=` argument):

- "spectral_norm" (`SpectralNormClip`, the fast one): spectral-norm clipping by power iteration
  (Miyato et al. 2018). One power iteration on W^T W per step, warm-started from a vector kept as
  layer state, estimates ||W||_2 from below; the kernel is divided by the estimate when it exceeds
  the bound. O(mn) per dense kernel (a few convolutions of one image per conv kernel).
- "bjorck" (`BjorckOrthonormal`): 1-3 Björck iterations per step (Björck & Bowie 1971; Anil et
  al. 2019) keep the kernel orthonormal (gradient-norm preserving), 2 m n^2 per kernel and
  iteration; with `every=k` only every k-th step, spectral-norm clipping in between.
- "spectral" (`SpectralClip`): the exact clip of the singular values (SVD; frequency blocks for
  conv, then a re-measure and a rescale) after every step.
- "subspace_clip" (`SubspaceClip`, the default): singular-value clipping on the top-k singular
  subspace, tracked across steps by subspace iteration (the block power method) with a
  Rayleigh-Ritz step. Every singular value the subspace holds above the bound is set to the
  bound and the rest of the spectrum is kept, like the exact clip, at O(m n k) per dense kernel;
  a conv kernel gets it per frequency block of its operator (batched, complex), taken back to
  the kernel's taps by the inverse DFT.

The per-step control only steers training. `finalize_constraints` (`LipschitzVAE.finalize`)
projects once with exact norms, and certificates always measure the kernels in use, so soundness
never depends on the power-iteration estimate or the subspace (both under-estimate).

References:
- T. Miyato, T. Kataoka, M. Koyama, Y. Yoshida, "Spectral Normalization for Generative
  Adversarial Networks", ICLR 2018, https://arxiv.org/abs/1802.05957
- Å. Björck, C. Bowie, "An iterative algorithm for computing the best estimate of an orthogonal
  matrix", SIAM J. Numer. Anal. 8(2), 1971, https://doi.org/10.1137/0708036
- C. Anil, J. Lucas, R. Grosse, "Sorting out Lipschitz function approximation", ICML 2019,
  https://arxiv.org/abs/1811.05381
- G. H. Golub, C. F. Van Loan, "Matrix Computations", 4th ed., 2013, section 8.2.4 (orthogonal
  (subspace) iteration) and section 8.1.5 (Rayleigh-Ritz); H. Sedghi, V. Gupta, P. M. Long,
  "The Singular Values of Convolutional Layers", ICLR 2019 (clipping singular values as the
  projection onto the operator-norm ball), https://arxiv.org/abs/1805.10408
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from lipvae_tf import checks, conv_spectrum

__all__ = [
    "CONSTRAINT_KINDS", "DEFAULT_CONSTRAINT", "DEFAULT_CONV_CONSTRAINT", "MATRIX_KINDS",
    "CONV_KINDS", "DEFAULT_POWER_ITERATIONS", "DEFAULT_SUBSPACE_RANK",
    "DEFAULT_CONV_SUBSPACE_RANK", "DEFAULT_CONV_RELAXATION", "DEFAULT_EXACT_CLIP_ABOVE",
    "DEFAULT_FINALIZE_TOL", "check_relaxation", "relaxation_acts", "check_relaxation_applies",
    "conv_kind",
    "bjorck_orthonormalize",
    "clip_dense_spectrum", "clip_conv_spectrum", "power_iteration", "subspace_clip",
    "StatefulConstraint",
    "BjorckOrthonormal", "SpectralNormClip", "SubspaceClip", "SpectralClip", "iter_layers",
    "constrained_kernels", "finalize_constraints", "start_inside",
]

# Björck converges for singular values in (0, sqrt((1 + beta) / beta)), which contains (0, sqrt(3))
# for every beta <= 0.5; above this bound on sigma_max^2 the kernel is rescaled first.
_SAFE_GRAM_BOUND = 2.5

CONSTRAINT_KINDS = ("spectral_norm", "bjorck", "spectral", "subspace_clip")
# Chosen by measurement (BENCHMARKS.md, "Spectral-norm clipping"): the subspace clip keeps what
# makes the exact clip train best (singular values above the bound set to it, the rest kept) at
# O(mnk) per step. On the bundled sample its test ELBO is above Björck's at equal epochs, and its
# step is 1.06-1.14x the plain VAE's against Björck's 1.5-1.9x; spectral_norm is faster still but
# far worse (its rescale shrinks the whole spectrum). Conv kernels too (per frequency block):
# on the bundled sample it trains a better conv VAE than the exact clip every step, whose
# re-measure and rescale after the projection onto 3x3 kernels shrink the whole spectrum, in a
# fraction of its time (BENCHMARKS.md, "The subspace clip for conv kernels").
DEFAULT_CONSTRAINT = "subspace_clip"
DEFAULT_CONV_CONSTRAINT = "subspace_clip"
# Kinds that work on matrices only: a model given one of them puts its conv kernels under
# DEFAULT_CONV_CONSTRAINT, and a conv layer refuses them.
MATRIX_KINDS = ("bjorck",)
CONV_KINDS = tuple(kind for kind in CONSTRAINT_KINDS if kind not in MATRIX_KINDS)
# Power iterations per training step. Miyato et al. use 1: the vector is warm-started from the
# previous step, whose kernel differs by one optimiser update.
DEFAULT_POWER_ITERATIONS = 1
# Ritz values of "subspace_clip" this many units of round-off above the bound count as on it
_ROUNDOFF_ULPS = 8
# Dimension k of the subspace that "subspace_clip" tracks (BENCHMARKS.md: 16 keeps most of the
# exact clip's quality at a fraction of Björck's cost).
DEFAULT_SUBSPACE_RANK = 16
# k of "subspace_clip" per frequency block of a conv kernel (a 3x3, 32 -> 64 stride-2 kernel on a
# 14 x 14 input has 64 blocks of 128 x 64, 34 up to conjugation). Measured (BENCHMARKS.md): k = 2
# trains as well as k = 4 and 8 on the bundled sample at 10 epochs, k = 1 about 40 nats worse
DEFAULT_CONV_SUBSPACE_RANK = 2
# The conv layers' over-relaxation of the subspace clip's correction (K <- K - omega P(K),
# docs/theory.md section 14, "Over-relaxation": the relaxed step converges for omega in (0, 2)).
# Measured (BENCHMARKS.md, "Over-relaxing the conv kernels' correction"): omega = 1.5 trains
# better conv VAEs at equal epochs (+12 nats on the bundled sample over 3 seeds at 10 epochs,
# +32 and +46 on the full data at 5), but not to convergence with the zoo's early stopping
# (finalized validation ELBO 1429 and 1472 over two seeds against 1484 at omega = 1), so the
# plain step stays the default.
DEFAULT_CONV_RELAXATION = 1.0


def check_relaxation(name: str, value: Any) -> float:
    """`value` as a float if it is an over-relaxation factor omega in the open interval (0, 2),
    where the relaxed subspace-clip step converges (docs/theory.md section 14); TypeError /
    ValueError naming `name` otherwise.

    Args:
        name: the argument's name, for the message.
        value: the factor omega to check (a Python or NumPy real number).

    Returns:
        `value` as a Python float in (0, 2).

    Raises:
        TypeError: if `value` is not a real number (a bool or a string is not).
        ValueError: if it is NaN or outside the open interval (0, 2).
    """
    return checks.in_interval(name, value, 0.0, 2.0, low_open=True, high_open=True)


def conv_kind(constraint: str, conv_constraint: str | None = None) -> str:
    """The conv kernels' control of a model whose dense kernels are under `constraint`:
    `conv_constraint` if given, else `constraint` where it exists for convolutions, else
    (for the matrix-only kinds, `MATRIX_KINDS`) `DEFAULT_CONV_CONSTRAINT`.

    Args:
        constraint: the dense kernels' kind, one of `CONSTRAINT_KINDS`.
        conv_constraint: the conv kernels' kind, one of `CONV_KINDS`, or None for the default
            derived from `constraint`.

    Returns:
        The conv kernels' kind, a str in `CONV_KINDS`.

    Raises:
        ValueError: if `constraint` is not one of `CONSTRAINT_KINDS` or `conv_constraint` not one
            of `CONV_KINDS` (an unknown kind passed through would be refused later, elsewhere).
    """
    checks.one_of("constraint", constraint, CONSTRAINT_KINDS)
    if conv_constraint is not None:
        return checks.one_of("conv_constraint", conv_constraint, CONV_KINDS)
    return DEFAULT_CONV_CONSTRAINT if constraint in MATRIX_KINDS else constraint


def relaxation_acts(architecture: str, conv_constraint: str) -> bool:
    """Whether an over-relaxation acts on a model: on conv kernels under the subspace clip only
    (an MLP, or conv kernels under another control, train exactly as with 1).

    Args:
        architecture: "mlp" or "conv".
        conv_constraint: the conv kernels' kind, one of `CONV_KINDS` (checked for an MLP too).

    Returns:
        True for architecture "conv" with conv constraint "subspace_clip", else False.

    Raises:
        ValueError: for an architecture other than "mlp" / "conv", or a conv constraint not in
            `CONV_KINDS`.
    """
    checks.one_of("architecture", architecture, ("mlp", "conv"))
    checks.one_of("conv_constraint", conv_constraint, CONV_KINDS)
    return architecture == "conv" and conv_constraint == "subspace_clip"


def check_relaxation_applies(relaxation: float, architecture: str, conv_constraint: str) -> None:
    """ValueError if an over-relaxation other than 1 is asked for where no step uses it
    (`relaxation_acts`): the setting would be silently ignored.

    Args:
        relaxation: the over-relaxation factor omega (compared with 1.0; its range is checked
            by `check_relaxation`, not here).
        architecture: "mlp" or "conv".
        conv_constraint: the conv kernels' kind, one of `CONV_KINDS`.

    Returns:
        None.

    Raises:
        ValueError: if `relaxation != 1` and the model has no step it acts on, or (from
            `relaxation_acts`, whatever the relaxation) for an unknown `architecture` or
            `conv_constraint`.
    """
    acts = relaxation_acts(architecture, conv_constraint)  # validates both, whatever relaxation
    if relaxation != 1.0 and not acts:
        raise ValueError(
            f"conv_relaxation={relaxation!r} acts on the conv kernels' subspace clip only; this "
            f"model has architecture={architecture!r} and conv constraint {conv_constraint!r}: "
            "leave conv_relaxation at 1")

# SubspaceClip clips exactly in a step whose largest Ritz value is above this multiple of the
# bound: above the 1.38 seen under Adam at 1e-3, below what SGD with momentum finds in every step
# (up to 10 at learning rate 1e-3, 249 at 1e-2; docs/theory.md section 14, BENCHMARKS.md "Large
# optimiser steps")
DEFAULT_EXACT_CLIP_ABOVE = 1.5
# `finalize_constraints`: Björck iterates until ||W^T W - I||_F <= tol / 10 (the clips are exact and
# do not use it); the certificate measures the result whatever the tolerance
DEFAULT_FINALIZE_TOL = 1e-6


def _max_norm(value: Any) -> float:
    """The bound c of a clip: a finite number > 0 (a negative one flipped the kernel's sign)."""
    return checks.positive_finite("max_norm", value)


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

    Args:
        kernel: a rank-2 (rows, cols) float tensor (float32 or float64).
        iterations: the number of Björck steps, an int >= 1 (unrolled into the graph).
        beta: the step size, in (0, 0.5] (0.5: the second-order Björck iteration).
        scale: the target spectral norm: the iteration runs on `kernel / scale` and the result
            is multiplied back.

    Returns:
        A tensor of `kernel`'s shape (rows, cols) and dtype, closer to `scale` x a
        (semi-)orthonormal matrix (converged only after enough iterations:
        `finalize_constraints`).

    Raises:
        ValueError: for a kernel that is not rank 2, `iterations` < 1, `beta` outside (0, 0.5]
            (Björck diverges above) or NaN, or a `scale` that is not finite and > 0.
        TypeError: for `iterations` that is not an int, or a `beta` / `scale` that is not a real
            number (bools are not).
    """
    _check_rank(kernel.shape, (2,), "bjorck_orthonormalize")
    iterations = checks.positive_int("iterations", iterations)
    beta = checks.in_interval("beta", beta, 0.0, 0.5, low_open=True)
    scale = checks.positive_finite("scale", scale)
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

    Args:
        kernel: a rank-2 (rows, cols) float tensor (or anything `tf.linalg.svd` takes, e.g. a
            NumPy array).
        max_norm: the bound c on the spectral norm, a finite number > 0.

    Returns:
        A tensor of `kernel`'s shape and dtype whose singular values are min(s_i, c).

    Raises:
        ValueError: for a kernel that is not rank 2, or a `max_norm` that is not finite and > 0.
        TypeError: for a `max_norm` that is not a real number (e.g. None).
    """
    _check_rank(kernel.shape, (2,), "clip_dense_spectrum")
    max_norm = _max_norm(max_norm)
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

    The operator is the strided circular cross-correlation on `grid_hw` (`conv_spectrum`; a
    zero-padded layer's grid is `conv_spectrum.circular_grid`), whose singular values are those
    of the frequency blocks (Sedghi et al. 2019; docs/theory.md section 13).

    Args:
        kernel: a rank-4 float tensor (kh, kw, c_in, c_out); float64 is computed in complex128.
        max_norm: the bound c on the operator norm, a finite number > 0.
        grid_hw: the circular grid (N_h, N_w), an int >= 1 or a pair of them; each N must be a
            multiple of its stride.
        strides: the strides (s_h, s_w), an int >= 1 or a pair of them.

    Returns:
        A tensor of `kernel`'s shape and dtype whose circular operator norm on `grid_hw` is at
        most `max_norm` (up to the float round-off of the re-measure).

    Raises:
        ValueError: naming the argument, for a kernel that is not rank 4, a `max_norm` that is
            not finite and > 0, or a `grid_hw` / `strides` that is not an int >= 1 or a pair of
            them, or a grid not divisible by its stride (`conv_spectrum.check_grid`).
        TypeError: for a `max_norm` that is not a real number.
    """
    _check_rank(kernel.shape, (4,), "clip_conv_spectrum")
    max_norm = _max_norm(max_norm)
    grid_hw, strides = conv_spectrum.check_grid(grid_hw, strides)
    blocks = conv_spectrum.frequency_blocks(kernel, grid_hw, strides)
    s, u, v = tf.linalg.svd(blocks)

    def clip() -> tf.Tensor:
        excess = tf.cast(tf.nn.relu(s - max_norm), blocks.dtype)
        clipped = blocks - tf.matmul(u * excess[:, None, :], v, adjoint_b=True)
        result = conv_spectrum.kernel_from_blocks(clipped, kernel.shape, grid_hw, strides)
        norm = conv_spectrum.operator_norm(result, grid_hw, strides)
        return result * tf.minimum(tf.constant(1.0, kernel.dtype), max_norm / norm)

    return tf.cond(tf.reduce_max(s) <= max_norm, lambda: tf.identity(kernel), clip)


def _l2_norm(values: tf.Tensor) -> tf.Tensor:
    return tf.sqrt(tf.reduce_sum(tf.square(values)))


def power_iteration(
    kernel: tf.Tensor,
    vector: tf.Tensor,
    iterations: int = DEFAULT_POWER_ITERATIONS,
    grid_hw: tuple[int, int] | None = None,
    strides: tuple[int, int] = (1, 1),
) -> tuple[tf.Tensor, tf.Tensor]:
    """`iterations` power iterations on A^T A from `vector`: (estimate of ||A||_2, new vector).

    A is x -> x W for a dense kernel (vector: (rows,)), or the strided circular convolution on
    `grid_hw` for a (kh, kw, c_in, c_out) kernel (vector: (N_h, N_w, c_in)), whose norm is the one
    `lipschitz` certifies. Each iteration computes y = A x and w = A^T y and returns
    ||w|| / ||y||, a lower bound of ||A||_2 (Cauchy-Schwarz: ||A x||^2 <= ||A^T A x|| for ||x|| = 1,
    so it is at least the Rayleigh estimate ||A x|| of Miyato et al. 2018), and w / ||w||.
    The estimate is scale invariant in `vector`; a vector in the null space is kept as it is.

    Args:
        kernel: a dense (rows, cols) or conv (kh, kw, c_in, c_out) float tensor; its dtype is
            the dtype of the iteration.
        vector: the warm start, shape (rows,) for a dense kernel or (N_h, N_w, c_in) for a conv
            kernel (any float dtype; cast to the kernel's).
        iterations: the number of power iterations, an int >= 1 (unrolled into the graph).
        grid_hw: the circular grid (N_h, N_w) of a conv kernel (required for one; ignored for a
            dense kernel).
        strides: the conv's strides, an int >= 1 or a pair of them, dividing `grid_hw`
            (ignored for a dense kernel).

    Returns:
        (sigma, new_vector): sigma a scalar tensor of the kernel's dtype, a lower bound of
        ||A||_2 (0 for a vector in the null space); new_vector the normalised w, of `vector`'s
        shape and dtype.

    Raises:
        ValueError: naming the argument, for a kernel of rank other than 2 or 4, a vector of
            another shape than (rows,) / (N_h, N_w, c_in), a conv kernel without `grid_hw`,
            `iterations` < 1, or a conv kernel's `grid_hw` / `strides` that is not an int >= 1
            or a pair of them, or a grid not divisible by its stride.
        TypeError: for `iterations` that is not an int.
    """
    _check_rank(kernel.shape, (2, 4), "power_iteration")
    iterations = checks.positive_int("iterations", iterations)
    dense = len(kernel.shape) == 2
    if dense:
        expected = (kernel.shape[0],)
    elif grid_hw is None:
        raise ValueError("power_iteration of a conv kernel needs grid_hw, the grid of the "
                         "circular convolution it estimates the norm of")
    else:
        grid_hw, strides = conv_spectrum.check_grid(grid_hw, strides)
        expected = (*grid_hw, kernel.shape[2])
    if tuple(vector.shape) != tuple(expected):
        raise ValueError(f"vector must have shape {tuple(expected)} for a kernel of shape "
                         f"{tuple(kernel.shape)}, got {tuple(vector.shape)}")
    # the vector is float32 layer state; a float64 kernel iterates in float64
    x = tf.reshape(tf.cast(vector, kernel.dtype), (1, -1) if dense else (1, *vector.shape))
    sigma = tf.zeros((), kernel.dtype)
    for _ in range(iterations):
        if dense:
            y = tf.matmul(x, kernel)
            w = tf.matmul(y, kernel, transpose_b=True)
        else:
            y, w = conv_spectrum.conv_gram_step(x, kernel, strides)
        w_norm = _l2_norm(w)
        sigma = w_norm / tf.maximum(_l2_norm(y), tf.constant(np.finfo(np.float32).tiny, w.dtype))
        x = tf.where(w_norm > 0, w / tf.maximum(w_norm, np.finfo(np.float32).tiny), x)
    return sigma, tf.cast(tf.reshape(x, vector.shape), vector.dtype)


def _ritz_coefficients(basis: tf.Tensor, image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Rayleigh-Ritz from a basis and its image: (coefficients C, Ritz values s), 64-bit.

    With B = `basis` (..., n, k) and M = `image` (..., m, k) its image under a linear map A
    (M = A B), the Ritz pairs of A on span(B) solve the generalized eigenproblem
    (M^H M) c = s^2 (B^H B) c (Golub & Van Loan, section 8.1.5); `_ritz_from_grams` solves it
    from the two Gram matrices, formed here in float64 (complex128).
    """
    wide = tf.complex128 if basis.dtype.is_complex else tf.float64
    basis64, image64 = tf.cast(basis, wide), tf.cast(image, wide)
    return _ritz_from_grams(tf.matmul(basis64, basis64, adjoint_a=True),
                            tf.matmul(image64, image64, adjoint_a=True))


def _ritz_from_grams(basis_gram: tf.Tensor, image_gram: tf.Tensor
                     ) -> tuple[tf.Tensor, tf.Tensor]:
    """Rayleigh-Ritz from the Gram matrices G = B^H B of a basis B and M^H M of its image M = A B
    (both (..., k, k), float64 or complex128): (coefficients C, Ritz values s).

    Whitening by G = E diag(g) E^H, with H = E diag(g)^(-1/2), turns (M^H M) c = s^2 G c into
    the Hermitian k x k eigenproblem of H^H M^H M H. Returns C (..., k, k) with C^H G C = I on the
    kept directions, so B C is orthonormal, and the real Ritz values s >= 0 (..., k), both sorted
    by s, largest first. Real or complex, with any leading batch dimensions.
    B need not be orthonormal: directions whose Gram eigenvalue is below float32 round-off of the
    largest are dropped (their columns of C are zero). The k x k work is in the Grams' 64-bit
    dtype, so the Ritz values carry only the round-off of the float32 products.
    """
    # a non-finite input (a kernel that has diverged) gives no Ritz pairs (C = 0, s = 0)
    basis_gram, image_gram = _finite_or_zero(basis_gram, image_gram)
    gram, vectors = tf.linalg.eigh(basis_gram)
    gram = tf.math.real(gram)
    kept = gram > tf.reduce_max(gram, axis=-1, keepdims=True) * np.finfo(np.float32).eps
    scales = tf.where(kept, tf.math.rsqrt(tf.where(kept, gram, 1.0)), 0.0)
    whiten = vectors * tf.cast(scales, basis_gram.dtype)[..., None, :]
    restricted = tf.matmul(whiten, tf.matmul(image_gram, whiten), adjoint_a=True)
    squares, rotation = tf.linalg.eigh(restricted)  # ascending
    coefficients = tf.reverse(tf.matmul(whiten, rotation), [-1])
    return coefficients, tf.sqrt(tf.maximum(tf.reverse(tf.math.real(squares), [-1]), 0.0))


def _finite_or_zero(*grams: tf.Tensor) -> list[tf.Tensor]:
    """The 64-bit Gram matrices as they are when all are finite, else all zero, so that a
    non-finite kernel (one that has diverged) reaches the loss, where the user sees its NaN,
    rather than the eigensolver, which would raise. The diagonals suffice: they are sums of
    squared moduli (no cancellation), so a NaN or inf anywhere in a factor shows there, and float32
    entries cannot overflow a 64-bit Gram."""
    finite = tf.math.is_finite(tf.add_n(
        [tf.reduce_sum(tf.math.real(tf.linalg.diag_part(gram))) for gram in grams]))
    zero = tf.zeros((), grams[0].dtype)  # broadcast: the batch size may be unknown
    return [tf.where(finite, gram, zero) for gram in grams]


def _clip_weights(singular: tf.Tensor, max_norm: float, real: tf.DType) -> tf.Tensor:
    """(s - c)_+ / s for singular or Ritz values s (any real dtype), the factor each direction's
    stretch loses in the clip to c. Values within `_ROUNDOFF_ULPS` units of `real`'s round-off of
    c (the kernel's real dtype) count as on the bound and get 0: those of an orthonormal kernel are
    c +- a few ulps, and clipping that noise would change it."""
    threshold = max_norm * (1 + _ROUNDOFF_ULPS * np.finfo(real.as_numpy_dtype).eps)
    return tf.where(singular > threshold, 1 - max_norm / singular, tf.zeros_like(singular))


def _unit_columns(matrix: tf.Tensor) -> tf.Tensor:
    """Each column (axis -2) divided by its l2 norm (a zero column stays zero, whatever its
    scale)."""
    if matrix.dtype.is_complex:
        # complex64 norms overflow to inf above about 1.8e19, and TF's complex division by inf
        # gives NaN, not 0: the norms in float64 and a real reciprocal instead
        norms = tf.norm(tf.abs(tf.cast(matrix, tf.complex128)), axis=-2, keepdims=True)
        scales = tf.math.divide_no_nan(tf.ones_like(norms), norms)
        return matrix * tf.cast(tf.cast(scales, matrix.dtype.real_dtype), matrix.dtype)
    norms = tf.norm(matrix, axis=-2, keepdims=True)
    return tf.math.divide_no_nan(matrix, norms)


def subspace_clip(
    kernel: tf.Tensor, subspace: tf.Tensor, max_norm: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """One subspace iteration, then clips the singular values it finds: (kernel, new subspace).

    With A the map x -> x W of the (rows, cols) kernel and V the (rows, k) `subspace` (in A's
    input space):
      Y = W (W^T V)            one subspace iteration on A^T A: x -> x W W^T
      T = W^T Y                the image of Y under A
      Rayleigh-Ritz on span(Y) (`_ritz_coefficients`: from the k x k Gram matrices of Y and T,
      coefficients C and Ritz values s): input-space Ritz vectors U = Y C (orthonormal),
      output-space ones R = T C / s, W^T U = R diag(s)
      W <- W - U diag(max(s - c, 0)) R^T
    so W's restriction to span(U) has its singular values min(s, c) and the rest of W is kept:
    it is the exact clip (`clip_dense_spectrum`) when span(Y) holds every singular vector above c.
    The Ritz values s are lower bounds of the top singular values (up to round-off), so the
    result can still exceed c outside the subspace; nothing relies on it (`finalize_constraints`
    clips exactly). The new subspace is U, the Ritz vectors sorted by s, which warm-starts the
    next step (a direction of Y dropped as dependent keeps its old column). A kernel
    whose Ritz values are all <= c (1 + 8 eps) is returned unchanged bit for bit: an orthonormal
    kernel too when Y is well conditioned, as it is from the previous step's Ritz vectors; from
    an ill-conditioned state the Gram form's round-off (eps cond(Y)) can take up to 1e-4 off it
    (docs/theory.md section 14, "Limits", with the other limits of this step: range, rank, speed
    of finding). Costs 4 rows cols k multiply-adds (three products and the update),
    (rows + cols) k^2 for the two Gram matrices, and two k x k symmetric eigenproblems. The Ritz
    step from Gram matrices replaced a QR of Y and the SVD of Q^T W: the same pairs, the control
    in 0.83-0.88x the time (bench/subspace_clip_variants.py, BENCHMARKS.md).
    With k = min(rows, cols) (static shapes) the subspace spans the kernel's smaller side and
    the step is the exact clip whatever the state: it is computed directly, from the
    eigendecomposition of the (k, k) Gram matrix W^T W or W W^T in float64 (3 rows cols k
    multiply-adds, one eigenproblem), and the new subspace is the input-space singular vectors.

    Args:
        kernel: a rank-2 (rows, cols) float tensor W.
        subspace: the (rows, k) basis V of the tracked subspace, k >= 1 (it need not be
            orthonormal; the previous call's new subspace is the usual value).
        max_norm: the bound c, a finite number > 0.

    Returns:
        (kernel, new_subspace): the clipped kernel, of `kernel`'s shape (rows, cols) and dtype,
        and the new (rows, k) subspace in `subspace`'s dtype.

    Raises:
        ValueError: for a kernel that is not rank 2, a subspace that is not (rows, k) with
            k >= 1, or a `max_norm` that is not finite and > 0.
        TypeError: for a `max_norm` that is not a real number.
    """
    _check_rank(kernel.shape, (2,), "subspace_clip")
    if len(subspace.shape) != 2 or subspace.shape[0] != kernel.shape[0] or not subspace.shape[1]:
        raise ValueError(f"subspace must have shape ({kernel.shape[0]}, k), k >= 1, for a kernel "
                         f"of shape {tuple(kernel.shape)}, got {tuple(subspace.shape)}")
    max_norm = _max_norm(max_norm)
    correction, new_subspace, _ = _subspace_correction(kernel, subspace, max_norm)
    return kernel - correction, new_subspace


def _subspace_correction(
    kernel: tf.Tensor, subspace: tf.Tensor, max_norm: float
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """`subspace_clip`'s step as (U diag(max(s - c, 0)) R^H, new subspace, largest Ritz value),
    for real or complex kernels (..., rows, cols) with any leading batch dimensions (the operator
    x -> W^H x, which for a real kernel is x -> x W); the largest Ritz value is over all of them
    (a real scalar). The correction is exactly zero when no Ritz value is above the bound.
    A subspace of k = min(rows, cols) columns spans the kernel's smaller side: the step is then
    the exact clip, computed from the small Gram matrix (`_full_rank_correction`)."""
    sides = (subspace.shape[-1], *kernel.shape[-2:])
    if None not in sides and sides[0] == min(sides[1:]):  # static shapes only (a traced
        return _full_rank_correction(kernel, subspace, max_norm)  # None takes the Ritz step)
    v = tf.cast(subspace, kernel.dtype)
    # a non-finite state (a corrupted checkpoint, a user's assignment) would make a finite
    # kernel NaN and stay so: the columns of the identity instead, a full-rank start
    healthy = tf.reduce_all(tf.math.is_finite(tf.abs(v) if v.dtype.is_complex else v))
    v = tf.where(healthy, v, tf.eye(tf.shape(v)[-2], tf.shape(v)[-1], dtype=v.dtype))
    # The images are kept as rows, (k, cols) = (W^H V)^H and (W^H Y)^H: V^H W streams W in its
    # stored order, measured 10-25 % faster on this CPU than W^H V, and the update's second
    # factor then needs no transpose. Unit columns before the third product keep its float32
    # values near ||W|| whatever the scale of the state.
    images_v = tf.matmul(v, kernel, adjoint_a=True)
    y = _unit_columns(tf.matmul(kernel, images_v, adjoint_b=True))  # W W^H V
    images = tf.matmul(y, kernel, adjoint_a=True)  # T^H, T = W^H Y
    wide = tf.complex128 if kernel.dtype.is_complex else tf.float64
    y64, images64 = tf.cast(y, wide), tf.cast(images, wide)
    coefficients, ritz = _ritz_from_grams(tf.matmul(y64, y64, adjoint_a=True),
                                          tf.matmul(images64, images64, adjoint_b=True))
    real = kernel.dtype.real_dtype
    weights = _clip_weights(ritz, max_norm, real)
    coefficients = tf.cast(coefficients, kernel.dtype)
    inputs = tf.matmul(y, coefficients)  # U
    # U diag((s - c)_+ / s) (T C)^H, with (T C)^H = C^H T^H = diag(s) R^H
    correction = tf.matmul(inputs * tf.cast(weights, kernel.dtype)[..., None, :],
                           tf.matmul(coefficients, images, adjoint_a=True))
    # a dropped direction (a column of U that is not of unit norm) keeps its old column
    squared_norms = tf.reduce_sum(tf.square(tf.abs(inputs) if kernel.dtype.is_complex
                                            else inputs), axis=-2)
    unit = tf.abs(squared_norms - 1.25) < 1.0  # norm in (0.5, 1.5)
    new_subspace = tf.where(unit[..., None, :], inputs, v)
    return correction, tf.cast(new_subspace, subspace.dtype), tf.cast(tf.reduce_max(ritz), real)


def _full_rank_correction(kernel: tf.Tensor, subspace: tf.Tensor, max_norm: float
                          ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """`_subspace_correction` for a subspace of k = min(rows, cols) columns, which spans the
    (..., rows, cols) kernel's smaller side: the exact clip, from the eigendecomposition of the
    small Gram matrix in float64 (complex128). (correction, new subspace, largest singular value.)

    For rows >= cols, W^H W = E diag(s^2) E^H: the input-space singular vectors are U = W E
    diag(1 / s) and the correction is U diag((s - c)_+) E^H = (W E) diag((1 - c / s)_+) E^H; for
    rows < cols, W W^H = E diag(s^2) E^H, U = E and the correction is E diag((1 - c / s)_+) E^H W.
    The new subspace is U, sorted by s, largest first (what the Ritz step would find; a column
    that is zero in float32 keeps the old one). The products of float32 entries are exact in
    float64, so for a float32 kernel s carries only the summation's round-off; singular values
    within `_ROUNDOFF_ULPS` units of float32 round-off of c count as on the bound, and a kernel
    with none above it gets an exactly zero correction. (A float64 kernel's Gram rounds its
    products too: s can then sit a few float64 ulps above the band, and an orthonormal float64
    kernel move by about 1e-15, as in the Ritz step.) A kernel with a non-finite entry gets a
    zero Gram matrix (its NaN reaches the loss, not the eigensolver). About 3 rows cols k
    multiply-adds (the Gram, in float64, W E or E^H W, and the update) and one k x k
    eigenproblem: for the latent heads (512 x 16) far fewer operations than the Ritz step."""
    real = kernel.dtype.real_dtype
    wide = tf.complex128 if kernel.dtype.is_complex else tf.float64
    tall = kernel.shape[-2] >= kernel.shape[-1]
    kernel64 = tf.cast(kernel, wide)
    gram = tf.matmul(kernel64, kernel64, adjoint_a=tall, adjoint_b=not tall)
    squares, vectors = tf.linalg.eigh(_finite_or_zero(gram)[0])
    singular = tf.sqrt(tf.maximum(tf.reverse(tf.math.real(squares), [-1]), 0.0))
    vectors = tf.cast(tf.reverse(vectors, [-1]), kernel.dtype)  # largest first
    shrink = tf.cast(_clip_weights(singular, max_norm, real), kernel.dtype)[..., None, :]
    if tall:
        stretched = tf.matmul(kernel, vectors)  # W E = U diag(s)
        correction = tf.matmul(stretched * shrink, vectors, adjoint_b=True)
        # unit columns of W E, not W E / s: a tiny s (round-off of a rank-deficient Gram) with
        # W e flushed to zero in float32 gave 0 x inf = NaN; a zero column keeps the old one
        inputs = _unit_columns(stretched)
        found = tf.reduce_sum(tf.abs(inputs), axis=-2) > 0
    else:
        inputs, found = vectors, singular > 0
        correction = tf.matmul(vectors * shrink, tf.matmul(vectors, kernel, adjoint_a=True))
    new_subspace = tf.where(found[..., None, :], inputs, tf.cast(subspace, kernel.dtype))
    return (correction, tf.cast(new_subspace, subspace.dtype),
            tf.cast(tf.reduce_max(singular), real))


def _rescale(kernel: tf.Tensor, sigma: tf.Tensor, max_norm: float) -> tf.Tensor:
    """kernel x min(1, max_norm / sigma): a kernel whose estimate is inside is left as it is."""
    return kernel * tf.minimum(tf.constant(1.0, kernel.dtype), max_norm / sigma)


class StatefulConstraint(keras.constraints.Constraint):
    """A constraint that keeps state between steps as weights of the layer that owns the kernel.

    `state_spec(kernel_shape)` names the weights it needs; the layer creates them (non-trainable,
    so they are saved in `.keras` files and checkpoints, and under `tf.distribute` each replica
    updates its identical copy from the identical kernel) and hands them over with `attach`.

    A subclass reads its state with `_weight(name)`, which raises a ValueError (naming the
    package's layers) when called before `attach`: calling a stateful constraint on a kernel
    outside those layers without attaching its weights first fails that way.
    """

    def state_spec(self, kernel_shape: Sequence[int]
                   ) -> dict[str, tuple[tuple[int, ...], str, object]]:
        """{weight name: (shape, dtype, initializer)} of the state for a kernel of this shape.

        Args:
            kernel_shape: the kernel's shape, (rows, cols) or (kh, kw, c_in, c_out).

        Returns:
            A dict from weight name to (shape tuple, dtype name, Keras initializer or its
            name); {} for this base class (no state).
        """
        return {}

    def attach(self, **weights) -> None:
        """Gives the constraint the layer's state weights (as named by `state_spec`).

        Args:
            **weights: the layer's state variables, by the names of `state_spec` (replaces any
                attached before; the names are not checked here).
        """
        self._state = dict(weights)

    def state_weights(self) -> dict:
        """The attached state weights by name ({} before `attach`)."""
        return dict(getattr(self, "_state", {}))

    def _weight(self, name: str):
        state = getattr(self, "_state", {})
        if name not in state:
            raise ValueError(
                f"{type(self).__name__} keeps {name!r} as layer state: use it through the "
                f"package's layers (LipschitzDense, LipschitzConv2D, LipschitzConv2DTranspose "
                f"with constraint=...), or create the weights of state_spec(kernel_shape) and "
                f"call attach(...) first"
            )
        return state[name]


def _power_vector_spec(kernel_shape, grid_hw) -> tuple[tuple[int, ...], str, object]:
    shape = (kernel_shape[0],) if len(kernel_shape) == 2 else (*grid_hw, kernel_shape[2])
    # any nonzero start works (the estimate is scale invariant); the global Keras seed decides it
    return tuple(int(n) for n in shape), "float32", keras.initializers.RandomNormal(stddev=1.0)


@keras.saving.register_keras_serializable(package="lipvae_tf")
class BjorckOrthonormal(StatefulConstraint):
    """Projects a dense kernel onto scale x the (semi-)orthonormal matrices after each step.

    Warm-started from the current kernel, which the previous step left nearly orthonormal, so a
    few iterations per step keep it there (Björck & Bowie 1971; Anil et al. 2019). With
    `every=k > 1` the Björck iterations run on every k-th step only (the first call included) and
    the steps in between clip the spectral norm by power iteration (`SpectralNormClip`); that
    needs layer state (a step counter and the power-iteration vector). Use
    `finalize_constraints` for the converged projection.

    Args:
        iterations: Björck steps per projection (`bjorck_orthonormalize`), an int >= 1.
        beta: the Björck step size, in (0, 0.5].
        scale: the target spectral norm (the kernel is kept near `scale` x orthonormal).
        every: run the Björck steps on every `every`-th call only (an int >= 1; 1: every call,
            no layer state).
        power_iterations: power iterations per call of the steps in between (`every > 1`), an
            int >= 1.

    Input shape:
        A rank-2 kernel (rows, cols), float32 or float64.

    Output shape:
        The same shape and dtype.

    Raises:
        TypeError: at construction, for an `iterations`, `every` or `power_iterations` that is
            not an int, or a `beta` / `scale` that is not a real number.
        ValueError: at construction, for `iterations`, `every` or `power_iterations` < 1, a
            `beta` outside (0, 0.5] or a `scale` that is not finite and > 0; when called, for a
            kernel that is not rank 2, or (with `every > 1`) before its state is attached.
    """

    def __init__(self, iterations: int = 1, beta: float = 0.5, scale: float = 1.0,
                 every: int = 1, power_iterations: int = DEFAULT_POWER_ITERATIONS):
        self.iterations = checks.positive_int("iterations", iterations)
        self.beta = checks.positive_finite("beta", beta)
        if self.beta > 0.5:
            raise ValueError(f"beta must be in (0, 0.5] for Björck to converge, got {beta}")
        self.scale = checks.positive_finite("scale", scale)
        self.every = checks.positive_int("every", every)
        self.power_iterations = checks.positive_int("power_iterations", power_iterations)

    def state_spec(self, kernel_shape: Sequence[int]) -> dict:
        if self.every == 1:
            return {}
        return {"power_vector": _power_vector_spec(kernel_shape, None),
                "constraint_step": ((), "int64", "zeros")}

    def __call__(self, w: tf.Tensor) -> tf.Tensor:
        _check_rank(w.shape, (2,), "BjorckOrthonormal")
        if self.every == 1:
            return bjorck_orthonormalize(w, self.iterations, self.beta, self.scale)
        kernel = tf.convert_to_tensor(w)
        vector, step = self._weight("power_vector"), self._weight("constraint_step")
        sigma, new_vector = power_iteration(kernel, tf.convert_to_tensor(vector),
                                            self.power_iterations)
        vector.assign(new_vector)
        due = tf.equal(tf.math.floormod(tf.convert_to_tensor(step), self.every), 0)
        step.assign_add(tf.ones((), step.dtype))
        return tf.cond(
            due, lambda: bjorck_orthonormalize(kernel, self.iterations, self.beta, self.scale),
            lambda: _rescale(kernel, sigma, self.scale))

    def get_config(self) -> dict:
        return {"iterations": self.iterations, "beta": self.beta, "scale": self.scale,
                "every": self.every, "power_iterations": self.power_iterations}


@keras.saving.register_keras_serializable(package="lipvae_tf")
class SpectralNormClip(StatefulConstraint):
    """Spectral-norm clipping by power iteration (Miyato et al. 2018): W <- W min(1, c / s).

    s is a warm-started power-iteration estimate of the operator norm (`power_iteration`): of the
    dense kernel, or of the convolution for inputs of spatial size `input_hw` with `strides` and
    `padding` (on the circular grid whose norm bounds the layer's, as `SpectralClip` measures it;
    for a transposed conv pass the output size: its norm is that of the conv it is the adjoint
    of). Costs two kernel-vector products per iteration (dense) or a convolution and a transposed
    convolution of one image (conv). The vector is layer state (`state_spec`), updated in the
    compiled train step.

    s never exceeds the true norm, so a kernel may end a step outside the ball by the estimate's
    error: up to 1.27x the bound in the first SGD steps from a random start and 1.19x under Adam
    (a review, 2026-12-02), <= 2 % once the vector has warmed up (docs/theory.md section 13).
    Nothing relies on it. `finalize_constraints` clips exactly (SVD; frequency blocks), certificates
    measure exact norms. Kernels are allowed to be contractions (no orthonormality is imposed).

    Args:
        max_norm: the bound c on the operator norm, a finite number > 0.
        iterations: power iterations per step, an int >= 1.
        input_hw: the conv's spatial input size (a transposed conv: its output size), an int
            >= 1 or a pair of them; required for conv kernels, unused for dense ones.
        strides: the conv's strides, an int >= 1 or a pair of them.
        padding: "same", "valid" or "circular" (case-insensitive).

    Input shape:
        A dense kernel (rows, cols) or a conv kernel (kh, kw, c_in, c_out).

    Output shape:
        The same shape and dtype.

    Raises:
        TypeError: at construction, for a `max_norm` that is not a real number or
            `iterations` that is not an int.
        ValueError: at construction, naming the argument, for a bad value of any argument;
            when called (or in `state_spec`), for a kernel of rank other than 2 or 4, a conv
            kernel without `input_hw` or whose grid is refused by
            `conv_spectrum.circular_grid`; when called before its state is attached.
    """

    def __init__(
        self,
        max_norm: float = 1.0,
        iterations: int = DEFAULT_POWER_ITERATIONS,
        input_hw: tuple[int, int] | None = None,
        strides: tuple[int, int] = (1, 1),
        padding: str = "same",
    ):
        self.max_norm = checks.positive_finite("max_norm", max_norm)
        self.iterations = checks.positive_int("iterations", iterations)
        # the exact clip onto the same ball validates and keeps the operator's arguments
        self._exact = SpectralClip(self.max_norm, input_hw, strides, padding)
        self.input_hw, self.strides, self.padding = (
            self._exact.input_hw, self._exact.strides, self._exact.padding)

    def exact(self) -> SpectralClip:
        """The exact clip onto the same ball (what `finalize_constraints` applies once)."""
        return self._exact

    def _grid(self, kernel_shape) -> tuple[int, int] | None:
        return None if len(kernel_shape) == 2 else self._exact.conv_grid(kernel_shape)

    def state_spec(self, kernel_shape: Sequence[int]) -> dict:
        _check_rank(kernel_shape, (2, 4), "SpectralNormClip")
        return {"power_vector": _power_vector_spec(kernel_shape, self._grid(kernel_shape))}

    def __call__(self, w: tf.Tensor) -> tf.Tensor:
        _check_rank(w.shape, (2, 4), "SpectralNormClip")
        kernel = tf.convert_to_tensor(w)
        vector = self._weight("power_vector")
        sigma, new_vector = power_iteration(kernel, tf.convert_to_tensor(vector),
                                            self.iterations, self._grid(w.shape), self.strides)
        vector.assign(new_vector)
        return _rescale(kernel, sigma, self.max_norm)

    def get_config(self) -> dict:
        return {"max_norm": self.max_norm, "iterations": self.iterations,
                "input_hw": self.input_hw, "strides": self.strides, "padding": self.padding}


@keras.saving.register_keras_serializable(package="lipvae_tf")
class SubspaceClip(StatefulConstraint):
    """Singular-value clipping on a tracked subspace: every step, the top-k singular values above
    `max_norm` are set to `max_norm` and the rest of the spectrum is kept (`subspace_clip`).

    Dense kernels: the (rows, k) subspace of the matrix. Conv and transposed-conv kernels (rank 4,
    with `input_hw`, `strides`, `padding` as for `SpectralClip`): the convolution operator on the
    circular grid that the certificate measures splits into frequency blocks B(xi)
    (`conv_spectrum.frequency_blocks`), and each block gets its own rank-k subspace clip, batched;
    the correction sum_xi U diag(excess) R^H is taken back to the kernel's taps by the (linear)
    inverse DFT, which projects it onto kernels of that support (so the result may sit slightly
    above the bound; the next step, and `finalize_constraints`, correct it). Cost per conv step:
    one DFT of the kernel by a matrix product, about 4 (S c_in) c_out k complex multiply-adds per
    frequency block, and the inverse DFT.

    The subspace is layer state (the non-trainable weight `subspace`: (rows, k) for a dense
    kernel; for a conv kernel (blocks, S c_in, k, 2), real and imaginary parts, for one block of
    each conjugate pair B(xi), B(-xi) (`conv_spectrum.conjugate_half`); saved in `.keras` files
    and checkpoints, identical on every replica), so one subspace iteration per step from the
    previous step's Ritz vectors follows the top singular directions as training moves them.
    Like the exact clip (`SpectralClip`), and unlike the rescale of `SpectralNormClip`, it leaves
    singular values below the bound alone; unlike Björck it lets them be below the bound.
    Steering only: `finalize_constraints` clips exactly, and certificates measure exact norms.

    Args:
        max_norm: the bound c on the operator norm.
        rank: k, the subspace dimension per matrix or frequency block (at most the block's
            smaller side is used). Cost per dense step about 4 rows cols k multiply-adds.
        input_hw, strides, padding: the convolution's spatial input size (a transposed conv:
            its output size), strides and padding; conv kernels only.
        exact_clip_above: a step whose largest Ritz value exceeds exact_clip_above x max_norm
            clips exactly instead (`SpectralClip`: SVDs, slower). The subspace tracks the top
            directions of small steps; a kernel found that far outside the ball moved faster
            than one subspace iteration per step can follow (SGD with momentum put kernels
            above 1.5x their bound in every step of an epoch, up to 10x at learning rate 1e-3
            and 249x at 1e-2, and diverged without this), while under Adam at 1e-3 the
            subspace clip finds at most 1.38x (docs/theory.md section 14, "Large steps").
            math.inf: never. The package's layers build their constraint with the default;
            set it on `layer.kernel.constraint` before the first trace (a traced step keeps
            the value it was traced with), and it is not saved with the layer.
        relaxation: omega in (0, 2), the factor of the correction: K <- K - omega x (the
            correction). 1: the subspace clip itself. Conv kernels: over-relaxation of the
            alternation between the block clip and the projection onto the kernel's taps, which
            converges for every omega in (0, 2) (docs/theory.md section 14, "Over-relaxation");
            the package's conv layers take it as `relaxation` (default
            `DEFAULT_CONV_RELAXATION`, 1). Dense kernels: above 1 it pulls the clipped singular
            values below the bound (the dense layers use 1).

    Input shape:
        A dense kernel (rows, cols) or a conv kernel (kh, kw, c_in, c_out).

    Output shape:
        The same shape and dtype.

    Raises:
        TypeError / ValueError: naming `max_norm`, `rank`, `input_hw`, `strides`, `padding`,
            `exact_clip_above` or `relaxation` for a bad value; ValueError for a kernel of
            another rank, or a conv kernel without `input_hw`, and when called before its
            `subspace` state is attached (`StatefulConstraint`).
    """

    def __init__(
        self,
        max_norm: float = 1.0,
        rank: int = DEFAULT_SUBSPACE_RANK,
        input_hw: tuple[int, int] | None = None,
        strides: tuple[int, int] = (1, 1),
        padding: str = "same",
        exact_clip_above: float = DEFAULT_EXACT_CLIP_ABOVE,
        relaxation: float = 1.0,
    ):
        self.max_norm = checks.positive_finite("max_norm", max_norm)
        self.rank = checks.positive_int("rank", rank)
        self.relaxation = check_relaxation("relaxation", relaxation)
        # a multiple of max_norm; inf: never the exact clip
        self.exact_clip_above = checks.in_interval("exact_clip_above", exact_clip_above, 1.0,
                                                   math.inf)
        self._exact = SpectralClip(self.max_norm, input_hw, strides, padding)
        self.input_hw, self.strides, self.padding = (
            self._exact.input_hw, self._exact.strides, self._exact.padding)

    def exact(self) -> SpectralClip:
        """The exact clip onto the same ball (what `finalize_constraints` applies once)."""
        return self._exact

    def _half(self, kernel_shape) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
        """(grid, block indices, weights): the blocks a conv kernel's step works on."""
        grid = self._exact.conv_grid(kernel_shape)
        return (grid, *conv_spectrum.conjugate_half(grid, self.strides))

    def _block_shape(self, kernel_shape) -> tuple[int, int, int]:
        """(blocks, S c_in, c_out): one block of each conjugate pair, as `frequency_blocks`."""
        kh, kw, c_in, c_out = (int(n) for n in kernel_shape)
        _, indices, _ = self._half(kernel_shape)
        return len(indices), self.strides[0] * self.strides[1] * c_in, c_out

    def state_spec(self, kernel_shape: Sequence[int]) -> dict:
        _check_rank(kernel_shape, (2, 4), "SubspaceClip")
        # any start of full rank works; the global Keras seed decides it
        start = keras.initializers.RandomNormal(stddev=1.0)
        if len(kernel_shape) == 2:
            rows, cols = (int(n) for n in kernel_shape)
            return {"subspace": ((rows, min(self.rank, rows, cols)), "float32", start)}
        blocks, rows, cols = self._block_shape(kernel_shape)
        return {"subspace": ((blocks, rows, min(self.rank, rows, cols), 2), "float32", start)}

    def __call__(self, w: tf.Tensor) -> tf.Tensor:
        _check_rank(w.shape, (2, 4), "SubspaceClip")
        subspace = self._weight("subspace")
        kernel, state = tf.convert_to_tensor(w), tf.convert_to_tensor(subspace)
        stepped, state, top = self._round(kernel, state)
        subspace.assign(state)
        # A kernel found far outside the ball (SGD's steps, a large learning rate) moved faster
        # than one subspace iteration per step can follow: the exact clip instead (an SGD run
        # with momentum diverged to NaN in 8 steps without it). Under Adam at 1e-3 no step
        # takes it.
        far = top > self.exact_clip_above * self.max_norm
        return tf.cond(far, lambda: tf.cast(self._exact(kernel), kernel.dtype),
                       lambda: stepped)

    def _round(self, kernel: tf.Tensor, state: tf.Tensor
               ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """One subspace clip: (kernel, state, largest Ritz value found before the clip)."""
        if len(kernel.shape) == 2:
            correction, state, top = _subspace_correction(kernel, state, self.max_norm)
            return kernel - self._relaxed(correction), state, top
        # each B(xi)^T is clipped as a matrix (its singular values are B(xi)'s), the subspace
        # in its row space; B(-xi) is B(xi) conjugated, so one block of each pair stands for both
        grid, indices, weights = self._half(kernel.shape)
        blocks = conv_spectrum.frequency_blocks(kernel, grid, self.strides, indices)
        correction, state, top = _subspace_correction(
            blocks, tf.complex(state[..., 0], state[..., 1]), self.max_norm)
        stepped = kernel - self._relaxed(conv_spectrum.kernel_from_blocks(
            correction, kernel.shape, grid, self.strides, indices, weights))
        return stepped, tf.stack([tf.math.real(state), tf.math.imag(state)], -1), top

    def _relaxed(self, correction: tf.Tensor) -> tf.Tensor:
        # omega = 1 (the default) adds no op to the per-step graph
        if self.relaxation == 1.0:
            return correction
        return correction * tf.constant(self.relaxation, correction.dtype)

    def get_config(self) -> dict:
        return {"max_norm": self.max_norm, "rank": self.rank, "input_hw": self.input_hw,
                "strides": self.strides, "padding": self.padding,
                "exact_clip_above": self.exact_clip_above, "relaxation": self.relaxation}


@keras.saving.register_keras_serializable(package="lipvae_tf")
class SpectralClip(keras.constraints.Constraint):
    """Clips the largest singular values of a kernel's linear operator to max_norm.

    Dense kernels (rank 2): exact SVD clip. Conv kernels (rank 4, layout (kh, kw, c_in, c_out)):
    the clip acts on the convolution operator for inputs of spatial size `input_hw` with the given
    `strides` and `padding` ("same", "valid" or "circular"), which must then be given.

    Args:
        max_norm: the bound c on the operator norm, a finite number > 0.
        input_hw: the conv's spatial input size (a transposed conv: its output size), an int
            >= 1 or a pair of them; required for conv kernels, unused for dense ones.
        strides: the conv's strides, an int >= 1 or a pair of them.
        padding: "same", "valid" or "circular" (case-insensitive).

    Input shape:
        A dense kernel (rows, cols) or a conv kernel (kh, kw, c_in, c_out).

    Output shape:
        The same shape and dtype (`clip_dense_spectrum`, `clip_conv_spectrum`).

    Raises:
        TypeError: at construction, for a `max_norm` that is not a real number.
        ValueError: at construction, naming the argument, for a `max_norm` that is not finite
            and > 0, a bad `input_hw` / `strides`, or an unknown `padding`; when called, for a
            kernel of rank other than 2 or 4, or a conv kernel without `input_hw` (or one
            `conv_spectrum.circular_grid` refuses).
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
        self.padding = checks.one_of("padding", str(padding).lower(), conv_spectrum.PADDINGS)

    def conv_grid(self, kernel_shape: Sequence[int]) -> tuple[int, int]:
        """The frequency grid on which this constraint measures a conv kernel.

        Args:
            kernel_shape: the conv kernel's shape (kh, kw, c_in, c_out) (only (kh, kw) is used).

        Returns:
            The circular grid (N_h, N_w), a pair of ints (`conv_spectrum.circular_grid`).

        Raises:
            ValueError: without `input_hw`, or for circular padding with an input size not
                divisible by the stride or smaller than the kernel.
        """
        if self.input_hw is None:
            raise ValueError(
                "a clip of a conv kernel (SpectralClip, SubspaceClip) needs input_hw (the "
                "spatial input size): the operator norm of a convolution depends on it"
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


def iter_layers(model_or_layers: keras.layers.Layer | Iterable[keras.layers.Layer]
                ) -> list[keras.layers.Layer]:
    """Every leaf layer of a model, a layer or an iterable of them (nested models included);
    a TypeError naming the argument for anything else (e.g. None), raised by the call itself.

    A leaf is a layer without a `layers` attribute.

    Args:
        model_or_layers: a Keras model or layer, or an iterable (not a str / bytes) of them,
            nested to any depth.

    Returns:
        A list of each leaf `keras.layers.Layer`, depth first, in `layers` order.

    Raises:
        TypeError: for an argument (or an item, at any depth) that is neither a Keras layer nor
            a non-string iterable.
    """
    leaves: list[keras.layers.Layer] = []
    _collect_leaves(model_or_layers, leaves)
    return leaves


def _collect_leaves(model_or_layers, leaves: list) -> None:
    """Appends `iter_layers`' leaves of `model_or_layers` to `leaves`."""
    if isinstance(model_or_layers, keras.layers.Layer):
        children = getattr(model_or_layers, "layers", None)
        if children is None:
            leaves.append(model_or_layers)
            return
        model_or_layers = children
    if isinstance(model_or_layers, (str, bytes)) or not isinstance(model_or_layers, Iterable):
        raise TypeError(f"model_or_layers must be a Keras model, a layer or an iterable of "
                        f"them, got {type(model_or_layers).__name__}")
    for item in model_or_layers:
        _collect_leaves(item, leaves)


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


def _conv_measure(c: SpectralClip, kernel_shape):
    """w -> the float64 operator norm of conv kernel w on the grid `c` measures it on."""
    grid = c.conv_grid(kernel_shape)

    def measure(w: np.ndarray) -> float:
        return float(conv_spectrum.operator_norm(tf.constant(w, tf.float64), grid, c.strides))

    return measure


def start_inside(kernel: np.ndarray, constraint: keras.constraints.Constraint) -> np.ndarray:
    """A fresh kernel inside its constraint's ball, for a layer being built: returned unchanged
    when its exact norm (float64 SVD; for a conv kernel, the operator norm on the constraint's
    grid) is at most the bound (`max_norm`; Björck: `scale`), else rescaled onto the bound and
    re-measured in float32 until inside. The per-step controls only steer (one subspace or power
    iteration from a random start), so without this a fresh conv layer was at 1.2-2x its bound.

    Args:
        kernel: the fresh kernel, a NumPy array (or nested lists / a tensor) of shape
            (rows, cols) or (kh, kw, c_in, c_out).
        constraint: the kernel's `BjorckOrthonormal`, `SpectralClip`, `SpectralNormClip` or
            `SubspaceClip` (a `BjorckOrthonormal` only for a rank-2 kernel).

    Returns:
        `np.asarray(kernel)` itself (its dtype kept) when already inside, else a float32 array
        of the same shape whose exact norm is <= the bound.

    Raises:
        TypeError: if `constraint` is not one of this module's constraints, or `kernel` does
            not hold real numbers.
        ValueError: for a kernel that is not a finite rank-2 or rank-4 array (rank 2 only
            under a `BjorckOrthonormal`), or a conv kernel whose constraint has no `input_hw`
            (`SpectralClip.conv_grid`).
        RuntimeError: if 8 float32 rescales do not bring the kernel inside (not seen in
            practice).
    """
    if not isinstance(constraint, (BjorckOrthonormal, SpectralClip, SpectralNormClip,
                                   SubspaceClip)):
        raise TypeError("constraint must be a BjorckOrthonormal, SpectralClip, SpectralNormClip "
                        f"or SubspaceClip, got {type(constraint).__name__}")
    checks.finite_array("kernel", kernel, ndim=(2, 4))
    kernel = np.asarray(kernel)
    if isinstance(constraint, BjorckOrthonormal):
        _check_rank(kernel.shape, (2,), "BjorckOrthonormal")  # dense kernels only
        bound, exact = constraint.scale, None
    else:
        exact = constraint if isinstance(constraint, SpectralClip) else constraint.exact()
        bound = exact.max_norm
    measure = _spectral_norm64 if kernel.ndim == 2 else _conv_measure(exact, kernel.shape)
    norm = measure(kernel)
    if norm <= bound:
        return kernel
    return _shrink_until_inside(kernel.astype(np.float64) * (bound / norm), bound, measure)


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
            raise RuntimeError(
                f"Björck did not converge to tol={tol} in {max_iter} iterations (smallest "
                f"singular value {singular.min():.3g} x {c.scale:.6g}: a rank-deficient kernel "
                "cannot be orthonormalised)")
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
    measure = _conv_measure(c, kernel.shape)
    if measure(kernel) <= c.max_norm:
        return kernel, 0
    w = kernel.astype(np.float64)
    for iteration in range(1, max_iter + 1):  # noqa: B007 (returned: the count used)
        w = clip_conv_spectrum(tf.constant(w), c.max_norm * (1 - tol), grid, c.strides).numpy()
        if measure(w) <= c.max_norm:
            break
    return _shrink_until_inside(w, c.max_norm, measure), iteration


def constrained_kernels(model_or_layers: keras.Model | Iterable[keras.layers.Layer]) -> list:
    """The kernel variables that `finalize_constraints` projects: every leaf layer's `kernel`
    whose constraint is one of this module's Lipschitz controls (`BjorckOrthonormal`,
    `SpectralClip`, `SpectralNormClip`, `SubspaceClip`), in layer order.

    Args:
        model_or_layers: a Keras model or layer, or an iterable of them (`iter_layers`).

    Returns:
        A list of the kernel variables (`keras.Variable`), possibly empty.

    Raises:
        TypeError: from `iter_layers`, for an argument that is not a layer or an iterable of
            layers.
    """
    controls = (BjorckOrthonormal, SpectralClip, SpectralNormClip, SubspaceClip)
    return [layer.kernel for layer in iter_layers(model_or_layers)
            if isinstance(getattr(getattr(layer, "kernel", None), "constraint", None), controls)]


def finalize_constraints(model_or_layers: keras.Model | Iterable[keras.layers.Layer],
                         tol: float = DEFAULT_FINALIZE_TOL, max_iterations: int = 500) -> dict:
    """Converged projection of every constrained kernel, in float64, written back in place.

    Björck kernels iterate until ||W^T W - I||_F <= tol / 10; clipped kernels (`SpectralClip`, and
    `SpectralNormClip` and `SubspaceClip`, whose estimates are not trusted here) are clipped
    (dense: exactly, by a float64 SVD; conv: at (1 - tol) x the bound, re-measured until inside).
    Each float32 result is then re-measured and shrunk if rounding left it above its target, so
    the largest singular value is <= target. Every kernel is computed before any is written, so
    a failure leaves the model as it was.

    Args:
        model_or_layers: a Keras model or layer, or an iterable of them (`iter_layers`); the
            kernels found by `constrained_kernels` are projected.
        tol: the tolerance, in the open interval (0, 1).
        max_iterations: the most Björck iterations (or conv clip rounds) per kernel, an int
            >= 1.

    Returns:
        {variable path: iterations used} (a str -> int dict; 0 for a kernel already inside, or
        already orthonormal to within the tolerance).

    Raises:
        TypeError: for a `tol` that is not a real number, `max_iterations` that is not an int,
            or (from `iter_layers`) a `model_or_layers` that is not layers.
        ValueError: tol outside (0, 1) (a conv kernel would be clipped to 0 or below), or
            max_iterations < 1.
        RuntimeError: naming the kernel, when Björck does not converge (e.g. a rank-deficient
            kernel, whose zero singular values stay zero), or when rounding to float32 leaves a
            kernel outside its ball after 8 rescales; no kernel is changed then.
        ValueError: naming the kernel, when it holds NaN or Inf; no kernel is changed then.
    """
    tol = checks.in_interval("tol", tol, 0, 1, low_open=True, high_open=True)
    max_iterations = checks.positive_int("max_iterations", max_iterations)
    projected = []
    for kernel in constrained_kernels(model_or_layers):
        constraint = kernel.constraint
        if not np.all(np.isfinite(kernel.numpy())):
            # before the SVD, whose LinAlgError ("SVD did not converge") names nothing
            raise ValueError(f"{kernel.path} holds NaN or Inf values (a diverged training?), so "
                             "it cannot be projected; no kernel was changed")
        try:
            if isinstance(constraint, BjorckOrthonormal):
                value, used = _converge_bjorck(kernel.numpy(), constraint, tol, max_iterations)
            elif isinstance(constraint, SpectralClip):
                value, used = _converge_clip(kernel.numpy(), constraint, tol, max_iterations)
            else:  # SpectralNormClip, SubspaceClip: their estimates steered training
                value, used = _converge_clip(kernel.numpy(), constraint.exact(), tol,
                                             max_iterations)
        except RuntimeError as err:
            raise RuntimeError(f"{kernel.path}: {err}; no kernel was changed") from err
        projected.append((kernel, value, used))
    for kernel, value, _ in projected:
        kernel.assign(value)
    return {kernel.path: used for kernel, _, used in projected}
