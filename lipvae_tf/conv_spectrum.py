"""Singular values of strided 2-D convolutions, computed exactly in the frequency domain.

A circular (periodic) cross-correlation with stride s on an N_h x N_w grid (N divisible by s)
splits, after a 2-D DFT, into independent blocks: for each output frequency xi the block

    B(xi) = [K(xi + a_1) ... K(xi + a_S)] / sqrt(S),   S = s_h * s_w,

stacks the kernel's c_out x c_in transfer matrices at the S frequencies that alias onto xi
(`frequency_blocks` returns their transposes B(xi)^T, which have the same singular values).
The operator's singular values are the union of the blocks' singular values, so its norm is
max_xi sigma_max(B(xi)) -- exact, not estimated.

A zero-padded ("same"/"valid") convolution on an n_h x n_w input is a restriction of the
circular one on any grid N >= n + k - 1 (the input embeds isometrically, the outputs it keeps are
a subset), so the circular norm on that grid is a guaranteed upper bound. See docs/theory.md
section 13, "Why the circular grid" (and section 7 for its use in the certificate).

References:
- H. Sedghi, V. Gupta, P. M. Long, "The Singular Values of Convolutional Layers", ICLR 2019
  (the block structure for stride 1), https://arxiv.org/abs/1805.10408; the strided blocks
  follow from the same DFT argument with the S aliased frequencies (docs/theory.md sections 13,
  "Why the circular grid", and 14, "Conv kernels").
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import tensorflow as tf

from lipvae_tf import checks

__all__ = [
    "PADDINGS", "circular_grid", "check_grid", "conjugate_half", "frequency_blocks",
    "kernel_from_blocks", "operator_norm", "wrap_pad", "circular_conv", "conv_gram_step",
]

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

    A zero-padded convolution is a restriction of the circular one on any grid N >= n + k - 1,
    so its norm there is an upper bound (docs/theory.md section 13, "Why the circular grid").

    Args:
        input_hw: the input's spatial size (n_h, n_w), an int >= 1 or a pair of them.
        kernel_hw: the kernel's spatial size (k_h, k_w), an int >= 1 or a pair of them.
        strides: the strides (s_h, s_w), an int >= 1 or a pair of them.
        padding: "same", "valid" or "circular" (case-insensitive), a str.

    Returns:
        The grid (N_h, N_w), a pair of Python ints, each a multiple of its stride.

    Raises:
        ValueError: naming the argument: for an unknown padding or one that is not a str, sizes
            or strides that are not ints >= 1 or pairs of them; for "circular", an input size
            not divisible by the stride or smaller than the kernel.
    """
    if not isinstance(padding, str):
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    padding = checks.one_of("padding", padding.lower(), PADDINGS)
    input_hw = checks.int_pair("input_hw", input_hw)
    kernel_hw = checks.int_pair("kernel_hw", kernel_hw)
    strides = checks.int_pair("strides", strides)
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


def check_grid(grid_hw: Any, strides: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """A circular grid and its strides, checked: a grid that its stride does not divide has no
    block decomposition (docs/theory.md section 13), and the products of this module would
    quietly compute another operator on it.

    Args:
        grid_hw: the circular grid (N_h, N_w), an int >= 1 or a pair of them.
        strides: the strides (s_h, s_w), an int >= 1 or a pair of them.

    Returns:
        (grid_hw, strides) as pairs of Python ints.

    Raises:
        ValueError: naming the argument, for a value that is not an int >= 1 or a pair of them,
            or a grid size not divisible by its stride.
    """
    grid_hw, strides = checks.int_pair("grid_hw", grid_hw), checks.int_pair("strides", strides)
    if grid_hw[0] % strides[0] or grid_hw[1] % strides[1]:
        raise ValueError(f"grid_hw must be divisible by the strides, got grid_hw {grid_hw} and "
                         f"strides {strides}")
    return grid_hw, strides


def _tap_transform(
    kernel_hw: tuple[int, int], grid_hw: tuple[int, int], strides: tuple[int, int]
) -> np.ndarray:
    """The 2-D DFT restricted to the kernel's taps, over sqrt(S): (N_h * N_w, kh * kw), complex128.

    Rows are the frequencies u = (a_h M_h + xi_h, a_w M_w + xi_w) in the order
    (xi_h, xi_w, a_h, a_w), so that the rows of one block B(xi) are adjacent; column (t_h, t_w) is
    exp(-2 pi i (u_h t_h / N_h + u_w t_w / N_w)) / sqrt(S). A kernel has only kh * kw taps, so its
    spectrum on the grid is this small matrix times the (kh * kw, c_in * c_out) kernel: one
    matrix product, already in block order, instead of an FFT of the padded kernel and a
    transpose (2.8x faster for a 3x3, 32 -> 64 kernel on a 16 x 16 grid). The 1/sqrt(S) is
    applied in float64 here: the FFT version divided by tf.cast(math.sqrt(S), complex128), which
    goes through float32, so for S = 2 or 6 (strides (1, 2), (3, 2)) its float64 norms were off
    by float32's rounding of sqrt(S): 3.6e-8 relative below the true norm for S = 6.
    """
    grid_hw, strides = check_grid(grid_hw, strides)
    (kh, kw), (n_h, n_w), (s_h, s_w) = kernel_hw, grid_hw, strides
    m_h, m_w = n_h // s_h, n_w // s_w
    # frequency index of (xi, a) along one axis: a * M + xi
    u_h = (np.arange(s_h)[None, :] * m_h + np.arange(m_h)[:, None]).reshape(-1)  # (xi_h, a_h)
    u_w = (np.arange(s_w)[None, :] * m_w + np.arange(m_w)[:, None]).reshape(-1)
    rows = np.exp(-2j * np.pi * np.outer(u_h, np.arange(kh)) / n_h).reshape(m_h, s_h, kh)
    cols = np.exp(-2j * np.pi * np.outer(u_w, np.arange(kw)) / n_w).reshape(m_w, s_w, kw)
    taps = np.einsum("xat,ybv->xyabtv", rows, cols).reshape(n_h * n_w, kh * kw)
    return taps / math.sqrt(s_h * s_w)


def conjugate_half(
    grid_hw: tuple[int, int], strides: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """One block of each pair {B(xi), B(-xi)}: (block indices, weights 2 or 1).

    For a real kernel B(-xi) is the complex conjugate of B(xi) with its alias columns permuted
    (frequency -u = -(a M + xi) is alias -a - 1 of output frequency M - xi), so the two have the
    same singular values, and a correction applied to one and mirrored on the other adds twice
    its real part to the kernel. Blocks with xi = -xi (mod M) pair with themselves: weight 1.

    Args:
        grid_hw: the circular grid (N_h, N_w), a pair of ints, each divisible by its stride.
        strides: the strides (s_h, s_w), a pair of ints >= 1.

    Returns:
        (block indices, weights): a 1-D int64 array of indices into the M_h * M_w blocks
        (M = N / s, row-major in (xi_h, xi_w), as `frequency_blocks` orders them), and a
        float64 array of the same length holding 2.0 or 1.0. Nothing is validated.
    """
    m_h, m_w = grid_hw[0] // strides[0], grid_hw[1] // strides[1]
    index = np.arange(m_h * m_w)
    partner = ((-(index // m_w)) % m_h) * m_w + (-(index % m_w)) % m_w
    kept = index <= partner
    return index[kept], np.where(index[kept] == partner[kept], 1.0, 2.0)


def _selected_taps(
    kernel_hw: tuple[int, int], grid_hw: tuple[int, int], strides: tuple[int, int],
    block_indices: np.ndarray | None,
) -> np.ndarray:
    """`_tap_transform`'s rows of the given blocks (all blocks for None)."""
    taps = _tap_transform(kernel_hw, grid_hw, strides)
    if block_indices is None:
        return taps
    per_block = strides[0] * strides[1]
    return taps.reshape(-1, per_block, taps.shape[-1])[block_indices].reshape(-1, taps.shape[-1])


def frequency_blocks(
    kernel: tf.Tensor,
    grid_hw: tuple[int, int],
    strides: tuple[int, int],
    block_indices: np.ndarray | None = None,
) -> tf.Tensor:
    """The blocks of a (kh, kw, c_in, c_out) kernel, transposed: B(xi)^T, shape
    (M_h * M_w, S * c_in, c_out), or only those of `block_indices` (e.g. `conjugate_half`).

    M = N / s is the output grid. B(xi)^T has B(xi)'s singular values (the operator's, xi by xi);
    the transposed layout is what the DFT gives without moving data. The kernel's dtype decides
    the precision (float64 -> complex128).

    Sedghi et al. 2019 for stride 1; the strided blocks alias S = s_h s_w frequencies
    (docs/theory.md sections 13 and 14, "Conv kernels").

    Args:
        kernel: (kh, kw, c_in, c_out) real tensor (or NumPy array), float32 or float64.
        grid_hw: the circular grid (N_h, N_w), a pair of ints, each divisible by its stride.
        strides: the strides (s_h, s_w), a pair of ints >= 1.
        block_indices: None (every block), or a 1-D integer array of block indices.

    Returns:
        complex64 (float32 kernel) or complex128 (float64 kernel) tensor of shape
        (blocks, S * c_in, c_out), blocks = M_h * M_w or len(block_indices).

    Raises:
        ValueError: naming the argument, for a grid_hw or strides that is not an int >= 1 or a
            pair of them, or a grid not divisible by its stride (`check_grid`); a kernel that is
            not rank 4 fails to unpack (not named).
    """
    kh, kw, c_in, c_out = kernel.shape
    s_h, s_w = strides
    taps = _selected_taps((kh, kw), grid_hw, strides, block_indices)
    flat = tf.reshape(kernel, (kh * kw, c_in * c_out))
    spectrum = tf.complex(tf.matmul(tf.constant(taps.real, kernel.dtype), flat),
                          tf.matmul(tf.constant(taps.imag, kernel.dtype), flat))
    # rows (xi, a), columns (c_in, c_out): block xi is the (a, c_in) x c_out matrix B(xi)^T
    return tf.reshape(spectrum, [-1, s_h * s_w * c_in, c_out])


def kernel_from_blocks(
    blocks: tf.Tensor,
    kernel_shape: tuple[int, int, int, int],
    grid_hw: tuple[int, int],
    strides: tuple[int, int],
    block_indices: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> tf.Tensor:
    """Inverse of `frequency_blocks` (same layout), truncated to the kernel's (kh, kw) support.

    The truncation is the orthogonal projection onto kernels of that support, so it can move
    singular values; callers that need a guarantee re-measure afterwards. It is linear in
    `blocks`: the real part of the inverse DFT at the kernel's taps only. With `block_indices`
    and `weights` from `conjugate_half`, `blocks` holds one block of each conjugate pair and
    stands for both.

    Args:
        blocks: complex tensor (blocks, S * c_in, c_out), in `frequency_blocks`' layout.
        kernel_shape: (kh, kw, c_in, c_out), the kernel to return.
        grid_hw: the circular grid (N_h, N_w) the blocks were taken on.
        strides: the strides (s_h, s_w).
        block_indices: None (every block), or the indices `blocks` holds (`conjugate_half`).
        weights: None, or the per-block weights of `conjugate_half` (2 or 1).

    Returns:
        Real tensor of shape `kernel_shape`, in the real dtype of `blocks` (complex64 ->
        float32, complex128 -> float64).

    Raises:
        ValueError: naming the argument, for a grid_hw or strides that `check_grid` refuses;
            otherwise nothing is validated by name: mismatched shapes fail in `tf.reshape` /
            `tf.matmul` (InvalidArgumentError) or NumPy (ValueError).
    """
    kh, kw, c_in, c_out = kernel_shape
    n_h, n_w = grid_hw
    s_h, s_w = strides
    spectrum = tf.reshape(blocks, [-1, c_in * c_out])
    # inverse DFT: K = S Re(F^H blocks) / (N_h N_w), F = _tap_transform (which carries 1/sqrt(S))
    taps = _selected_taps((kh, kw), grid_hw, strides, block_indices)
    if weights is not None:
        taps = taps * np.repeat(np.asarray(weights, np.float64), s_h * s_w)[:, None]
    inverse = np.conj(taps).T * (s_h * s_w / (n_h * n_w))
    real_dtype = spectrum.dtype.real_dtype
    flat = (tf.matmul(tf.constant(inverse.real, real_dtype), tf.math.real(spectrum))
            - tf.matmul(tf.constant(inverse.imag, real_dtype), tf.math.imag(spectrum)))
    return tf.reshape(flat, (kh, kw, c_in, c_out))


def operator_norm(
    kernel: tf.Tensor, grid_hw: tuple[int, int], strides: tuple[int, int]
) -> tf.Tensor:
    """Largest singular value of the strided circular convolution on `grid_hw` (a scalar).

    max_xi sigma_max(B(xi)) over `frequency_blocks` (Sedghi et al. 2019; docs/theory.md
    section 13): exact, not estimated, up to the SVD's round-off.

    Args:
        kernel: (kh, kw, c_in, c_out) real tensor, float32 or float64.
        grid_hw: the circular grid (N_h, N_w), each divisible by its stride.
        strides: the strides (s_h, s_w).

    Returns:
        Scalar tensor (shape ()) of the kernel's dtype: the l2 operator norm.

    Raises:
        As `frequency_blocks`.
    """
    singular_values = tf.linalg.svd(frequency_blocks(kernel, grid_hw, strides), compute_uv=False)
    return tf.reduce_max(singular_values)


def wrap_pad(inputs: tf.Tensor, kernel_hw: tuple[int, int]) -> tf.Tensor:
    """Periodic padding of (batch, h, w, c) so that a "VALID" conv equals a circular one.

    Pads (k - 1) // 2 rows / columns before and the rest of k - 1 after, wrapped around.

    Args:
        inputs: (batch, h, w, c) tensor with static h and w.
        kernel_hw: the kernel's spatial size (k_h, k_w).

    Returns:
        Tensor of inputs' dtype, shape (batch, h + k_h - 1, w + k_w - 1, c).

    Raises:
        InvalidArgumentError: (`tf.errors`, from the gather) when a padding exceeds the input
            size (e.g. a 7 x 7 kernel on a 2 x 2 input); nothing is validated by name.
    """
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

    Args:
        inputs: (batch, N_h, N_w, c_in) tensor with static N_h, N_w (divisible by the strides
            for the block structure above; not checked).
        kernel: (kh, kw, c_in, c_out) tensor of the inputs' dtype.
        strides: the strides (s_h, s_w).

    Returns:
        Tensor (batch, N_h / s_h, N_w / s_w, c_out) of the inputs' dtype (ceil(N / s) where N
        is not divisible).

    Raises:
        InvalidArgumentError: (`tf.errors`) for a kernel of another dtype or channel count
            than the inputs (TF's conv2d); nothing is validated by name.
    """
    padded = wrap_pad(inputs, tuple(kernel.shape[:2]))
    return tf.nn.conv2d(padded, kernel, strides=(1, *strides, 1), padding="VALID")


def conv_gram_step(
    vector: tf.Tensor, kernel: tf.Tensor, strides: tuple[int, int]
) -> tuple[tf.Tensor, tf.Tensor]:
    """(A x, A^T A x) for the circular conv A on the grid of x (shape (1, N_h, N_w, c_in)).

    The adjoint comes from automatic differentiation (a transposed convolution of one image),
    so it is the exact adjoint of the operator whatever the padding arithmetic.

    Args:
        vector: a `tf.Tensor` x of shape (1, N_h, N_w, c_in), the kernel's dtype (a NumPy
            array is refused by `GradientTape.watch`, a ValueError).
        kernel: (kh, kw, c_in, c_out) tensor.
        strides: the strides (s_h, s_w).

    Returns:
        (A x, A^T A x): tensors of shapes (1, N_h / s_h, N_w / s_w, c_out) and that of
        `vector`, in its dtype.

    Raises:
        ValueError: for a `vector` that is not a tensor.
        InvalidArgumentError: (`tf.errors`) for a kernel of another dtype than `vector`.
    """
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(vector)
        image = circular_conv(vector, kernel, strides)
    return image, tape.gradient(image, vector, output_gradients=tf.stop_gradient(image))
