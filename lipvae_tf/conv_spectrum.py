"""Singular values of strided 2-D convolutions, computed exactly in the frequency domain.

A circular (periodic) cross-correlation with stride s on an N_h x N_w grid (N divisible by s)
splits, after a 2-D DFT, into independent blocks: for each output frequency xi the block

    B(xi) = [K(xi + a_1) ... K(xi + a_S)] / sqrt(S),   S = s_h * s_w,

stacks the kernel's c_out x c_in transfer matrices at the S frequencies that alias onto xi.
The operator's singular values are the union of the blocks' singular values, so its norm is
max_xi sigma_max(B(xi)) -- exact, not estimated.

A zero-padded ("same"/"valid") convolution on an n_h x n_w input is a restriction of the
circular one on any grid N >= n + k - 1 (the input embeds isometrically, the outputs it keeps are
a subset), so the circular norm on that grid is a guaranteed upper bound. See docs/theory.md section 7.
"""
from __future__ import annotations

import math

import tensorflow as tf

PADDINGS = ("same", "valid", "circular")


def circular_grid(
    input_hw: tuple[int, int],
    kernel_hw: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
) -> tuple[int, int]:
    """Grid on which the circular convolution bounds (or equals) the convolution in use.

    For "circular" padding it is the input grid itself (the norm is then exact); for zero
    padding it is the smallest multiple of the stride that is >= n + k - 1.
    """
    padding = padding.lower()
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    grid = []
    for n, k, s in zip(input_hw, kernel_hw, strides):
        if padding == "circular":
            if n % s:
                raise ValueError(
                    f"circular padding needs input size divisible by the stride, got "
                    f"input size {n} and stride {s}"
                )
            if n < k:
                raise ValueError(f"circular padding needs input size >= kernel size, got {n} < {k}")
            grid.append(n)
        else:
            grid.append(s * math.ceil((n + k - 1) / s))
    return grid[0], grid[1]


def frequency_blocks(
    kernel: tf.Tensor, grid_hw: tuple[int, int], strides: tuple[int, int]
) -> tf.Tensor:
    """Blocks B(xi) of a (kh, kw, c_in, c_out) kernel, shape (M_h * M_w, c_out, S * c_in).

    M = N / s is the output grid. The kernel's dtype decides the precision (float64 -> complex128).
    """
    kh, kw, c_in, c_out = kernel.shape
    n_h, n_w = grid_hw
    s_h, s_w = strides
    m_h, m_w = n_h // s_h, n_w // s_w
    padded = tf.pad(kernel, [[0, n_h - kh], [0, n_w - kw], [0, 0], [0, 0]])
    complex_dtype = tf.complex128 if kernel.dtype == tf.float64 else tf.complex64
    spectrum = tf.signal.fft2d(tf.cast(tf.transpose(padded, [3, 2, 0, 1]), complex_dtype))
    # Frequency u = a * M + xi: split each axis into (alias a, output frequency xi).
    spectrum = tf.reshape(spectrum, [c_out, c_in, s_h, m_h, s_w, m_w])
    blocks = tf.transpose(spectrum, [3, 5, 0, 2, 4, 1])
    blocks = tf.reshape(blocks, [m_h * m_w, c_out, s_h * s_w * c_in])
    return blocks / tf.cast(math.sqrt(s_h * s_w), complex_dtype)


def kernel_from_blocks(
    blocks: tf.Tensor,
    kernel_shape: tuple[int, int, int, int],
    grid_hw: tuple[int, int],
    strides: tuple[int, int],
) -> tf.Tensor:
    """Inverse of `frequency_blocks`, truncated to the kernel's (kh, kw) support.

    The truncation is the orthogonal projection onto kernels of that support, so it can move
    singular values; callers that need a guarantee re-measure afterwards.
    """
    kh, kw, c_in, c_out = kernel_shape
    n_h, n_w = grid_hw
    s_h, s_w = strides
    m_h, m_w = n_h // s_h, n_w // s_w
    scaled = blocks * tf.cast(math.sqrt(s_h * s_w), blocks.dtype)
    spectrum = tf.reshape(scaled, [m_h, m_w, c_out, s_h, s_w, c_in])
    spectrum = tf.transpose(spectrum, [2, 5, 3, 0, 4, 1])
    spectrum = tf.reshape(spectrum, [c_out, c_in, n_h, n_w])
    full = tf.math.real(tf.signal.ifft2d(spectrum))
    return tf.transpose(full, [2, 3, 1, 0])[:kh, :kw]


def operator_norm(
    kernel: tf.Tensor, grid_hw: tuple[int, int], strides: tuple[int, int]
) -> tf.Tensor:
    """Largest singular value of the strided circular convolution on `grid_hw` (a scalar)."""
    singular_values = tf.linalg.svd(frequency_blocks(kernel, grid_hw, strides), compute_uv=False)
    return tf.reduce_max(singular_values)


def wrap_pad(inputs: tf.Tensor, kernel_hw: tuple[int, int]) -> tf.Tensor:
    """Periodic padding of (batch, h, w, c) so that a "VALID" conv equals a circular one."""
    for axis, k in ((1, kernel_hw[0]), (2, kernel_hw[1])):
        before, after = (k - 1) // 2, k - 1 - (k - 1) // 2
        size = inputs.shape[axis]
        pieces = [tf.gather(inputs, list(range(size - before, size)), axis=axis)] if before else []
        pieces.append(inputs)
        if after:
            pieces.append(tf.gather(inputs, list(range(after)), axis=axis))
        inputs = tf.concat(pieces, axis=axis)
    return inputs


def circular_conv(
    inputs: tf.Tensor, kernel: tf.Tensor, strides: tuple[int, int]
) -> tf.Tensor:
    """Strided circular cross-correlation of (batch, N_h, N_w, c_in) inputs on their own grid.

    Its singular values are those of `frequency_blocks(kernel, (N_h, N_w), strides)` (a shift of
    the kernel's alignment multiplies each block by a unitary diagonal), so on `circular_grid`
    its norm is the operator norm this package certifies for the layer.
    """
    padded = wrap_pad(inputs, tuple(kernel.shape[:2]))
    return tf.nn.conv2d(padded, kernel, strides=(1, *strides, 1), padding="VALID")


def conv_gram_step(
    vector: tf.Tensor, kernel: tf.Tensor, strides: tuple[int, int]
) -> tuple[tf.Tensor, tf.Tensor]:
    """(A x, A^T A x) for the circular conv A on the grid of x (shape (1, N_h, N_w, c_in)).

    The adjoint comes from automatic differentiation (a transposed convolution of one image),
    so it is the exact adjoint of the operator whatever the padding arithmetic.
    """
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(vector)
        image = circular_conv(vector, kernel, strides)
    return image, tape.gradient(image, vector, output_gradients=tf.stop_gradient(image))
