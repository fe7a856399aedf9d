"""Absolute round-off of a network's forward pass, bounded (docs/theory.md section 15).

The Lipschitz bounds of `lipvae_tf.lipschitz` hold for the exact map of the applied weights, with
a relative margin for the rounding of the elementwise steps. Rounding is also an absolute error,
of the order of u times the size of the values: a bias of 2^23 quantises a float32
pre-activation to integers, however small the input's perturbation, and a dot product of n terms
can drift by about n u of its value even between x and 0 (docs/theory.md section 12). This module
bounds that error, for a chain of layers and every input near a measured one:

    ||f_computed(x') - f(x')||_2 <= E,   for every x' with ||x' - x||_2 <= deviation,

f the exact map, f_computed the float32 graph. A certificate that lowers r by the E of both
reconstructions it compares covers everything the graph computes.

Model of the arithmetic (Higham 2002, chapter 3): every operation is correctly rounded,
|fl(t) - t| <= u |t| + eta (u the unit round-off of the compute dtype, eta its smallest normal
number: TF's CPU kernels flush subnormal results to zero, an error of up to eta, 2^24 times the
half-subnormal of gradual underflow; and they read subnormal operands as zero, so a kernel or
bias entry below eta is applied as 0, covered as a perturbation of the weights); a dot product
of n terms, in any order and with or without fused multiply-adds, is off by at most
gamma_n sum_i |x_i w_i| + (1 + gamma_n) 2n eta (n products and n - 1 additions, each of which
may flush), gamma_n = n u / (1 - n u). TF's CPU kernels
evaluate matrix products (Eigen) and convolutions (oneDNN, direct algorithm) as dot products.
Under TensorFloat-32 (NVIDIA Ampere and later, TF's default there) the factors are first rounded
to 10-bit mantissas, so each product is off by a further theta = 2^-10 + 2^-22 relative
(`product_roundoff`). FFT or Winograd convolutions, which cuDNN may choose on a GPU, have other
error laws and are not covered.

One layer y = fl(fl(fl(h W) c) + b) (a LipschitzDense; a conv with W its operator, n taps per
output) with ||h_computed|| <= H adds at most

    local(H) = c H (g A + D + (2u + u^2)(||W|| + g A + D)) + u ||b|| + ||b - flush(b)||
               + sqrt(outputs) ((1 + u)^2 c (1 + gamma_n) 2n + 2) eta,

g = gamma_n + (1 + gamma_n) theta, A = || |W| ||_2 the norm of the entrywise absolute kernel (for
a conv: of the convolution with |K|), D the operator-norm bound of the kernel's subnormal part
(`lipschitz.subnormal_part_norm`, 0 for every trained kernel so far) and flush(b) the bias with
its subnormal entries 0 (the bias image's, for a conv); permutations and reshapes (GroupSort,
MaxMin, Flatten, Reshape) add nothing. A Scale by f adds u |f| H + sqrt(outputs) eta.
Through a chain of layers with bounds L_k the errors add up as
e_{k+1} <= L_k e_k + local_k(H_k), with H_k bounded from the activation norms measured at x, the
exact maps' Lipschitz bounds times the deviation, and the errors themselves. Where a value the
layer computes may reach the dtype's largest finite number (peak(H) = c A (1 + g)(1 + u)^2 H +
(max |b| + 2n eta)(1 + u)), it may overflow to inf and then NaN: the bound is inf there.

References:
- N. J. Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., SIAM 2002, sections
  2.2 (the model of arithmetic) and 3.1 (inner products).
- K. Jia, M. Rinard, "Exploiting Verified Neural Networks via Floating Point Numerical Error",
  SAS 2021, https://arxiv.org/abs/2003.03021 (why a certificate must cover round-off).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os

import keras
import numpy as np
import tensorflow as tf
from numpy.typing import ArrayLike, DTypeLike

from lipvae_tf import checks
from lipvae_tf import layers as ll
from lipvae_tf import lipschitz as lp

__all__ = ["LayerError", "product_roundoff", "layer_error", "chain_errors", "activation_norms",
           "chain_forward_error", "chain_lipschitz", "reparameterisation_error",
           "flushed_input_error", "reduced_precision_settings", "check_float32_execution"]

# only move or permute values: no rounding at all
_EXACT = (ll.GroupSort, ll.MaxMin, keras.layers.Flatten, keras.layers.Reshape,
          keras.layers.InputLayer, keras.layers.Identity)
_SAFE = 1 + 1e-12  # float64 evaluation of the bounds below, rounded up


@dataclasses.dataclass(frozen=True)
class LayerError:
    """A layer's share of the forward error: Lipschitz bound L and local(H) = slope H + offset;
    and peak(H) = peak_slope H + peak_offset, a bound of the magnitude of every value the layer
    computes (products, partial sums, outputs) from an input of norm <= H, which must stay
    below `limit`, the compute dtype's largest finite number: above it a value may overflow to
    inf (and inf - inf is NaN), which no rounding bound covers."""

    lipschitz: float
    slope: float
    offset: float
    peak_slope: float = 0.0
    peak_offset: float = 0.0
    limit: float = math.inf


def _tensor_float_32() -> bool:
    """Whether float32 matrix products may run in TensorFloat-32 (a GPU is visible and TF allows
    it: `tf.config.experimental.enable_tensor_float_32_execution`)."""
    return (bool(tf.config.list_logical_devices("GPU"))
            and tf.config.experimental.tensor_float_32_execution_enabled())


# oneDNN's fpmath modes: anything but "strict" lets it compute float32 convolutions and matrix
# products in bfloat16, float16 or TF32 (its own variable, and TensorFlow's, which sets it)
_FPMATH_VARIABLES = ("TF_SET_ONEDNN_FPMATH_MODE", "ONEDNN_DEFAULT_FPMATH_MODE")


def reduced_precision_settings() -> list[str]:
    """The settings of this process under which TensorFlow computes "float32" operations in a
    narrower format on a CPU, which neither the Lipschitz bounds' relative margins nor this
    module's absolute bounds cover: oneDNN's fpmath mode (`TF_SET_ONEDNN_FPMATH_MODE`,
    `ONEDNN_DEFAULT_FPMATH_MODE`) other than strict, and Grappler's automatic mixed precision
    (`tf.config.optimizer.set_experimental_options`, "auto_mixed_precision*"). An adversarial
    review (2026-12-03) measured, on this project's CPU (AMX, AVX512-BF16), relative errors of
    2.1e-3 (convolutions) and 1.6e-3 (matrix products) instead of 3e-7, an ordinary model's
    computed ratio 30.3 against its bound 7.83, and certified radii violated at P = 0.
    TensorFloat-32 on a GPU is covered (`product_roundoff`) and not listed.

    Returns:
        One line per setting found, naming it and how to turn it off; [] for none.
    """
    found = [f"{name}={os.environ[name]!r} (unset it, or set it to STRICT, before TensorFlow "
             f"starts)" for name in _FPMATH_VARIABLES
             if os.environ.get(name, "").strip().upper() not in ("", "STRICT")]
    options = tf.config.optimizer.get_experimental_options()
    found += [f"Grappler's {name} (tf.config.optimizer.set_experimental_options({{{name!r}: "
              "False}))" for name, value in sorted(options.items())
              if name.startswith("auto_mixed_precision") and value]
    return found


def check_float32_execution() -> None:
    """Raises `checks.ReducedPrecisionError` (a RuntimeError) naming the settings of
    `reduced_precision_settings`, if any: a certificate of the float32 graph does not cover what
    TensorFlow computes under them."""
    found = reduced_precision_settings()
    if found:
        raise checks.ReducedPrecisionError(
            "TensorFlow is set to compute float32 operations in reduced precision, which no "
            "certificate here covers (relative errors near 1e-3 instead of 1e-7): "
            + "; ".join(found))


def product_roundoff(dtype: DTypeLike | tf.DType) -> float:
    """theta: the relative error of one product of a matrix product or convolution beyond the
    accumulation's (0, or 2^-10 + 2^-22 when float32 products may run in TensorFloat-32)."""
    if tf.as_dtype(dtype) == tf.float32 and _tensor_float_32():
        return 2.0**-10 + 2.0**-22
    return 0.0


def _eta(dtype) -> float:
    """The absolute error of one rounding in the underflow range: the smallest normal number,
    since TF's CPU kernels flush subnormal results to zero (half the smallest subnormal, the
    error of gradual underflow, is 2^-24 of it and holds only without flush-to-zero)."""
    return float(np.finfo(lp.numpy_dtype(dtype)).tiny)


def _linear_error(layer, norm: float, absolute_norm: float, subnormal_norm: float, taps: int,
                  outputs: int) -> LayerError:
    """The terms of a linear layer whose operator (kernel, or convolution) has norm `norm`; its
    Lipschitz bound is the one `lipschitz.layer_lipschitz_bound` computes from that norm.
    subnormal_norm: D, the operator-norm bound of the kernel's subnormal part (which a CPU with
    denormals-are-zero reads as 0)."""
    dtype = layer.compute_dtype
    u, eta = lp.unit_roundoff(dtype), _eta(dtype)
    if taps * u >= 0.5:
        raise ValueError(f"layer {layer.name!r}: {taps} terms per output are too many for "
                         f"{dtype} (n u >= 1/2)")
    gamma = taps * u / (1 - taps * u)
    g = gamma + (1 + gamma) * product_roundoff(dtype)
    c = lp.applied_value(layer.lipschitz, dtype)
    bias = flushed_bias = 0.0
    if layer.bias is not None:
        # the bias vector is added at each of the outputs / len(b) positions (a convolution's
        # pixels; 1 for a dense layer): the added image has norm sqrt(positions) ||b||
        b = lp.applied_kernel(layer, "bias")
        positions = math.sqrt(outputs / b.size)
        bias = positions * float(np.linalg.norm(b))
        flushed_bias = positions * lp.subnormal_part_norm(b)
    d = subnormal_norm
    slope = c * (g * absolute_norm + d + (2 * u + u * u) * (norm + g * absolute_norm + d))
    # per output: the dot product's 2 taps flushes (n products, n - 1 additions), scaled by c;
    # then the product by c and the bias addition, one flush each
    underflow = ((1 + u) ** 2 * c * (1 + gamma) * 2 * taps + 2) * eta
    offset = u * bias + flushed_bias + math.sqrt(outputs) * underflow
    # a partial sum of output j is <= (1 + g) sum_i |h_i w_ij| + 2 n eta <= (1 + g) A H + 2 n eta
    # (a row of the operator has norm <= A; the flushes), then times c and plus b_j, each rounded.
    # The partial sums are formed before the product by c: for c < 1 they are the largest values
    # (a review, 2026-12-03: c = 0.5 and partial sums of 4.2e38 overflowed to inf while the
    # bound, scaled by c, said 2.1e38), hence max(1, c (1 + u)^2)
    largest_bias = float(np.max(np.abs(b))) if layer.bias is not None else 0.0
    through_c = max(1.0, c * (1 + u) ** 2)
    peak_slope = through_c * absolute_norm * (1 + g)
    peak_offset = largest_bias * (1 + u) + 2 * taps * eta * through_c
    return LayerError(lp.scaled_bound(layer, norm), slope * _SAFE, offset * _SAFE,
                      peak_slope * _SAFE, peak_offset * _SAFE, _largest(dtype))


def _largest(dtype) -> float:
    """The compute dtype's largest finite number."""
    return float(np.finfo(lp.numpy_dtype(dtype)).max)


def _outputs_per_example(layer: keras.layers.Layer) -> int:
    """The number of values of one example that `layer` outputs (it must be built in a model)."""
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        raise ValueError(f"layer {layer.name!r} has no known output shape: build it in a model "
                         "before bounding its forward error") from None
    return math.prod(int(n) for n in shape[1:])


def _dense_positions(layer: keras.layers.Layer) -> int:
    """The largest number of positions (the product of the dimensions between batch and
    features) of an input a dense layer receives in its graph calls."""
    shapes = [tuple(node.input_tensors[0].shape) for node in layer._inbound_nodes  # private
              if node.input_tensors]
    if not shapes or any(None in shape[1:-1] for shape in shapes):
        raise ValueError(f"layer {layer.name!r} has no known input shape: build it in a model "
                         "(with known dimensions between batch and features) before bounding "
                         "its forward error")
    return max(math.prod(shape[1:-1]) for shape in shapes)


def layer_error(layer: keras.layers.Layer) -> LayerError:
    """The forward-error terms of one built layer (see the module docstring).

    Raises:
        TypeError: for a layer whose rounding is not analysed here (only this package's linear
            layers and the exact reshaping and sorting layers are, and a subclass only when it
            computes as its class, `lipschitz.computes_as`).
    """
    # each analysis below is of one class's computation: a subclass that overrides any of its
    # methods (a call, a _convolve or _finish of its own) computes something else
    if any(lp.computes_as(layer, kind) for kind in _EXACT):
        return LayerError(lp.layer_lipschitz_bound(layer), 0.0, 0.0)
    if lp.computes_as(layer, ll.LipschitzDense):
        kernel = lp.applied_kernel(layer)
        # on an input of rank > 2 the matrix product and the bias act at every position
        # (a review, 2026-12-04: 1024 positions and the bias counted once, 31.7 x the bound)
        outputs = _dense_positions(layer) * kernel.shape[1]
        return _linear_error(layer, lp.dense_norm(kernel), lp.dense_norm(np.abs(kernel)),
                             lp.subnormal_part_norm(kernel), kernel.shape[0], outputs)
    transposed = lp.computes_as(layer, ll.LipschitzConv2DTranspose)
    if transposed or lp.computes_as(layer, ll.LipschitzConv2D):
        kernel = lp.applied_kernel(layer)
        # the operator norm (of the conv, or of the conv a transposed conv is the adjoint of)
        hw = layer.output_hw if transposed else layer.input_hw
        norms = [lp.conv_norm_bound(k, hw, layer.strides, layer.padding)
                 for k in (kernel, np.abs(kernel))]
        kh, kw, c_in, c_out = kernel.shape
        taps = kh * kw * (c_out if transposed else c_in)  # terms summed per output, at most
        outputs = math.prod(layer.compute_output_shape((1, *layer.input_hw,
                                                        c_out if transposed else c_in))[1:])
        subnormal = math.sqrt(kh * kw) * lp.subnormal_part_norm(kernel)
        return _linear_error(layer, norms[0], norms[1], subnormal, taps, outputs)
    if lp.computes_as(layer, ll.Scale):
        # fl(h f): u |h f| + eta per value (a flushed product)
        dtype = layer.compute_dtype
        factor = abs(lp.applied_value(layer.factor, dtype))
        offset = math.sqrt(_outputs_per_example(layer)) * _eta(dtype)
        return LayerError(lp.layer_lipschitz_bound(layer),
                          lp.unit_roundoff(dtype) * factor * _SAFE, offset * _SAFE,
                          factor * (1 + lp.unit_roundoff(dtype)) * _SAFE, _eta(dtype),
                          _largest(dtype))
    raise TypeError(f"no forward-error bound for layer {layer.name!r} of type "
                    f"{type(layer).__name__} (only this package's linear layers and the exact "
                    "reshaping and sorting layers are analysed, and only as those classes "
                    "compute: not a subclass that overrides their methods)")


def chain_errors(network: keras.Model) -> list[LayerError]:
    """`layer_error` of every layer of a chain (Sequential or chain-like Functional), in order.

    Raises:
        ValueError: for a chain whose layers (or whose input) are not all of one compute dtype:
            the casts between them round, which the terms do not count (a review, 2026-12-04:
            a float32 GroupSort between float64 layers, error 8.8e-8 against a bound of
            4.4e-15).
        TypeError: as `layer_error` raises it.
    """
    layers = lp.chain_layers(network)
    dtypes = {keras.backend.standardize_dtype(layer.compute_dtype) for layer in layers}
    if getattr(network, "inputs", None):
        dtypes.add(keras.backend.standardize_dtype(network.inputs[0].dtype))
    if len(dtypes) > 1:
        raise ValueError(f"network {network.name!r} computes in several dtypes "
                         f"({', '.join(sorted(dtypes))}): the casts between its layers round, "
                         "which the forward-error bound does not count; give every layer (and "
                         "the input) one dtype")
    return [layer_error(layer) for layer in layers]


def chain_lipschitz(terms: list[LayerError]) -> float:
    """The chain's Lipschitz bound from its terms: the product `network_lipschitz_bound`
    computes, in the same order and rounded up the same way (so the same float)."""
    return functools.reduce(lp.product_rounded_up, (term.lipschitz for term in terms), 1.0)


def reparameterisation_error(mu_size: ArrayLike, shift: ArrayLike, latent_dim: int,
                             dtype: DTypeLike | tf.DType) -> np.ndarray:
    """Bound of ||fl(mu + fl(sigma eps)) - (mu + sigma eps)||_2 for ||mu_computed|| <= mu_size and
    ||sigma eps|| <= shift (arrays broadcast): u ||sigma eps|| + u (||mu|| + (1 + u) ||sigma eps||)
    plus the underflow terms, one flushed value per operation and coordinate (docs/theory.md
    section 15)."""
    u = lp.unit_roundoff(dtype)
    error = u * shift + u * (mu_size + (1 + u) * shift) + 2 * math.sqrt(latent_dim) * _eta(dtype)
    # |mu_i + sigma_i eps_i| <= ||mu|| + ||sigma eps||, rounded twice: inf where it may overflow
    peak = (np.asarray(mu_size, np.float64) + shift) * (1 + u) ** 2 * _SAFE
    return np.where(peak < _largest(dtype), error, np.inf)


def flushed_input_error(values: int, dtype: DTypeLike | tf.DType) -> float:
    """Bound of ||x_read - x||_2 for an input of `values` values that a CPU with
    denormals-are-zero reads (its subnormal entries as 0): sqrt(values) times the smallest
    normal number."""
    return math.sqrt(values) * _eta(dtype)


def activation_norms(network: keras.Model, inputs: ArrayLike) -> tuple[np.ndarray, tf.Tensor]:
    """(norms, outputs): the l2 norm (per example, float64, rounded up; (batch, layers + 1)) of
    the computed input of every layer of the chain and of its output, running the layers one by
    one, and the outputs so computed (the centre of the next chain)."""
    values = tf.convert_to_tensor(inputs)
    norms = []
    for layer in [None, *lp.chain_layers(network)]:
        if layer is not None:
            values = layer(values)
        flat = tf.reshape(tf.cast(values, tf.float64), (tf.shape(values)[0], -1))
        norms.append(tf.norm(flat, axis=1).numpy() * _SAFE)
    return np.stack(norms, axis=1), values


def chain_forward_error(terms: list[LayerError], norms: np.ndarray, deviation: ArrayLike = 0.0,
                        input_error: ArrayLike = 0.0,
                        read_error: ArrayLike = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the output error at the measured inputs and at every input near them.

    Args:
        terms: `chain_errors` of the chain.
        norms: (batch, len(terms) + 1), `activation_norms` at the measured (centre) inputs c.
        deviation: (batch,) or scalar, d: the exact inputs x' considered have ||x' - c|| <= d.
        input_error: (batch,) or scalar: ||computed input - x'||, when the input the chain
            receives is itself a computed approximation of x'.
        read_error: scalar: ||input as the first layer reads it - input||, at c and at x'
            alike (`flushed_input_error`: a CPU with denormals-are-zero reads subnormal
            entries as 0).

    Returns:
        (centre error, error): bounds of ||f_computed(c) - f(c)|| and of
        ||f_computed(x'_computed) - f(x')|| for every such x', shape (batch,); inf where a bound
        overflows.
    """
    norms = np.asarray(norms, np.float64)
    centre = np.full(norms.shape[:1], float(read_error))
    error = np.broadcast_to(np.asarray(input_error, np.float64) + read_error,
                            norms.shape[:1]).copy()
    reach = np.broadcast_to(np.asarray(deviation, np.float64), norms.shape[:1]).copy()
    with np.errstate(over="ignore", invalid="ignore"):
        for k, term in enumerate(terms):
            # ||computed input of layer k at x'|| <= its norm at c + (c's error + reach + error)
            size = norms[:, k] + centre + reach + error
            # a value that may overflow (inf, then NaN) has no error bound: inf
            centre_fits = term.peak_slope * (norms[:, k] + centre) + term.peak_offset < term.limit
            fits = term.peak_slope * size + term.peak_offset < term.limit
            centre = np.where(centre_fits, term.lipschitz * centre + term.slope * norms[:, k]
                              + term.offset, np.inf)
            error = np.where(fits, term.lipschitz * error + term.slope * size + term.offset,
                             np.inf)
            reach = term.lipschitz * reach
    return (np.where(np.isfinite(centre), centre * _SAFE, np.inf),
            np.where(np.isfinite(error), error * _SAFE, np.inf))
