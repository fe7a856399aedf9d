"""Keras layers with known Lipschitz constants (l2), for Sequential, Functional and subclassed
models.

Linear layers keep their kernel's operator norm <= 1 with a constraint and multiply by a fixed,
non-trainable `lipschitz` factor, so the layer's constant is `lipschitz` x (measured kernel norm).
The kernel is projected once at build time, so a freshly built layer already satisfies it.
Activations here are 1-Lipschitz and gradient-norm preserving (GroupSort, MaxMin).

References:
- C. Anil, J. Lucas, R. Grosse, "Sorting out Lipschitz function approximation", ICML 2019
  (GroupSort, MaxMin, gradient-norm preservation), https://arxiv.org/abs/1811.05381
- T. Miyato, T. Kataoka, M. Koyama, Y. Yoshida, "Spectral Normalization for Generative
  Adversarial Networks", ICLR 2018, https://arxiv.org/abs/1802.05957
"""
from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from lipvae_tf import checks, conv_spectrum
from lipvae_tf import constraints as lc
from lipvae_tf._fixed_config import FixedConfig

__all__ = [
    "CERTIFIED_DTYPES", "check_compute_dtype", "LipschitzDense", "LipschitzConv2D",
    "LipschitzConv2DTranspose", "EmptyBatchSafeConv2D", "EmptyBatchSafeConv2DTranspose",
    "sort_neighbour_pairs", "GroupSort", "refuse_faulty_cpu_convolution",
    "MaxMin", "Scale", "Shift", "StdCap",
]

_register = keras.saving.register_keras_serializable(package="lipvae_tf")

# Compute dtypes whose arithmetic the package's bounds account for. Under a mixed policy
# (e.g. "mixed_float16") a layer would multiply by a float16 copy of its kernel, whose norm is
# not the measured one and whose rounding (u = 2^-11) is beyond the bounds' margins.
CERTIFIED_DTYPES = ("float32", "float64")


def check_compute_dtype(layer: keras.layers.Layer) -> None:
    """Refuses a layer whose compute dtype is not float32 or float64.

    Args:
        layer: a layer of this module (any Keras layer works: only `compute_dtype`, `name`
            and `dtype_policy` are read).

    Returns:
        None.

    Raises:
        ValueError: naming the layer, its compute dtype and dtype policy, and what to do, for a
            compute dtype outside `CERTIFIED_DTYPES` (e.g. "mixed_float16", "bfloat16").
    """
    if layer.compute_dtype not in CERTIFIED_DTYPES:
        raise ValueError(
            f"dtype: {type(layer).__name__} {layer.name!r} would compute in "
            f"{layer.compute_dtype} (dtype policy {layer.dtype_policy.name!r}); its Lipschitz "
            f"bound is certified for compute dtypes {CERTIFIED_DTYPES} only: pass "
            f"dtype='float32' to the layer or set keras.mixed_precision.set_global_policy("
            f"'float32')"
        )


def _kernel_constraint(kind: str, bjorck_iterations: int = 1, bjorck_every: int = 1,
                       power_iterations: int = lc.DEFAULT_POWER_ITERATIONS,
                       subspace_rank: int = lc.DEFAULT_SUBSPACE_RANK, relaxation: float = 1.0,
                       **conv) -> keras.constraints.Constraint:
    """The dense kernel's constraint of this kind, or the conv one when `conv` (input_hw,
    strides, padding) is given; ValueError naming `constraint` for an unknown kind.
    `relaxation` is the subspace clip's (other kinds have none)."""
    for name, value in (("bjorck_iterations", bjorck_iterations), ("bjorck_every", bjorck_every),
                        ("power_iterations", power_iterations), ("subspace_rank", subspace_rank)):
        checks.positive_int(name, value)  # checked whatever the kind
    kinds = lc.CONV_KINDS if conv else lc.CONSTRAINT_KINDS
    if kind not in kinds:
        raise ValueError(
            f"constraint must be one of {kinds}, got {kind!r}"
            + (f" ({kind!r} works on matrices, not convolution operators)"
               if kind in lc.MATRIX_KINDS else ""))
    if kind == "spectral_norm":
        return lc.SpectralNormClip(1.0, iterations=power_iterations, **conv)
    if kind == "bjorck":
        return lc.BjorckOrthonormal(iterations=bjorck_iterations, every=bjorck_every,
                                    power_iterations=power_iterations)
    if kind == "subspace_clip":
        return lc.SubspaceClip(1.0, rank=subspace_rank, relaxation=relaxation, **conv)
    return lc.SpectralClip(max_norm=1.0, **conv)


class _FiniteWhenLoaded:
    """Loading weights that hold NaN or Inf (a corrupted or tampered file, or one saved from a
    diverged run) raises a ValueError naming the layer, instead of a model whose reconstructions
    are silently NaN."""

    def load_own_variables(self, store) -> None:
        # Keras' load_model collects a layer's error and loads the layer again from its other
        # path in the model, where the store is empty: that second error ("expected 3 variables,
        # but received 0") would replace this one in the message, so it is repeated there
        refused = self.__dict__.get("_refused_load")
        if refused and not len(store.keys()):
            raise ValueError(refused)
        self.__dict__["_refused_load"] = None
        super().load_own_variables(store)
        broken = checks.first_non_finite(self.weights)
        if broken is not None:
            self.__dict__["_refused_load"] = (
                f"layer {self.name!r}: the loaded weight {broken.name!r} holds NaN or Inf "
                "values (a corrupted file, or one saved from a diverged training run)")
            raise ValueError(self.__dict__["_refused_load"])


class _ScaledKernelLayer(_FiniteWhenLoaded, FixedConfig, keras.layers.Layer):
    """Shared parts: the fixed output scale, bias, and projecting the kernel at build time."""

    # the weights too: a graph traced before keeps the variable, a bound would read the new value
    _weight_attributes = frozenset({"kernel", "bias", "power_vector", "constraint_step"})
    _fixed_attributes = frozenset({"lipschitz", "use_bias"}) | _weight_attributes

    def __init__(self, lipschitz: float, use_bias: bool, kernel_initializer, bias_initializer,
                 **kwargs):
        if "activation" in kwargs:  # Keras' Dense takes one; Keras' own error gave no hint
            raise TypeError(
                f"{type(self).__name__} takes no activation (got activation="
                f"{kwargs['activation']!r}): add the activation as a layer of its own after it, "
                "GroupSort(2) or MaxMin (1-Lipschitz and gradient-norm preserving) or a "
                "keras.layers.Activation / ReLU, whose constant the bounds know")
        super().__init__(**kwargs)
        check_compute_dtype(self)
        # a normal float32: a subnormal factor is read as 0 by CPUs with denormals-are-zero
        self.lipschitz = checks.positive_float32("lipschitz", lipschitz)
        self.use_bias = checks.flag("use_bias", use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def _add_kernel_and_bias(self, kernel_shape, bias_size: int, constraint) -> None:
        self.kernel_constraint = constraint
        initializer = self.kernel_initializer
        stateful = isinstance(constraint, lc.StatefulConstraint)
        measure = self._measure_at_build(constraint, len(kernel_shape))
        if measure or not stateful:
            # A fresh layer meets its bound: the initial kernel is computed here, eagerly, and
            # the weight starts from it. A build inside a subclassed model's first call runs in
            # Keras' stateless scope, where variables are initialised later and an assign to
            # them is dropped (an exact clip assigned after add_weight was lost there).
            with tf.init_scope():
                start = keras.ops.convert_to_numpy(
                    self.kernel_initializer(tuple(kernel_shape), dtype=self.variable_dtype))
                if measure:  # the per-step controls only steer: measured and rescaled
                    start = lc.start_inside(start, constraint)
                if not stateful:  # the exact clip or Björck: no layer state to advance
                    start = keras.ops.convert_to_numpy(constraint(tf.constant(start)))
            initializer = keras.initializers.Constant(start)
        self.kernel = self.add_weight(
            name="kernel", shape=kernel_shape, initializer=initializer, constraint=constraint)
        if stateful:  # e.g. the power-iteration vector
            state = {name: self.add_weight(name=name, shape=shape, dtype=dtype,
                                           initializer=initializer, trainable=False)
                     for name, (shape, dtype, initializer)
                     in constraint.state_spec(kernel_shape).items()}
            for name, weight in state.items():
                setattr(self, name, weight)  # layer.power_vector, layer.constraint_step
            constraint.attach(**state)
            # one step of the per-step control, advancing its state (steering only: the kernel
            # is inside already). In a stateless-scope build Keras drops this assign, and the
            # kernel and state start where `start_inside` and their initializers put them.
            self.kernel.assign(constraint(self.kernel.value))
        self.bias = self.add_weight(
            name="bias", shape=(bias_size,), initializer=self.bias_initializer
        ) if self.use_bias else None

    def _rebuild_hint(self, name: str) -> str:
        if name in self._weight_attributes:
            return f"change the weight in place instead (layer.{name}.assign(value))"
        return super()._rebuild_hint(name)

    def _measure_at_build(self, constraint, rank: int) -> bool:
        """Whether the fresh kernel needs `constraints.start_inside`: not after the exact clip,
        nor for a dense kernel from an orthogonal initializer of gain <= 1 (its norm is 1 up to
        float32 rounding, and measuring a large kernel costs a float64 SVD)."""
        if isinstance(constraint, lc.SpectralClip):
            return False
        init = self.kernel_initializer
        orthogonal = isinstance(init, keras.initializers.Orthogonal) and init.gain <= 1
        return rank != 2 or not orthogonal

    def _finish(self, outputs):
        check_compute_dtype(self)  # the policy may have been changed after construction
        outputs = outputs * ops.cast(self.lipschitz, outputs.dtype)
        return outputs + self.bias if self.bias is not None else outputs

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "lipschitz": self.lipschitz,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


@_register
class LipschitzDense(_ScaledKernelLayer):
    """y = lipschitz * x W + b with ||W||_2 <= 1 kept after each optimiser step.

    Its l2 Lipschitz constant is lipschitz x ||W||_2 <= lipschitz; `lipvae_tf.layer_lipschitz_bound`
    measures it from the kernel in use (float64 SVD, the factor as applied in the compute dtype).

    Args:
        units: output features n, a positive int.
        lipschitz: the fixed, non-trainable output factor (> 0, a normal float32: 1.18e-38 to
            3.40e38).
        constraint: the per-step kernel control (`lipvae_tf.constraints.CONSTRAINT_KINDS`):
            "subspace_clip" (default: the singular values above 1 on a `subspace_rank`-dimensional
            subspace tracked by subspace iteration, kept in the non-trainable weight `subspace`;
            O(m n k) per step), "bjorck" (`bjorck_iterations` Björck iterations, orthonormal
            kernel; with `bjorck_every=k` on every k-th step, spectral-norm clipping in between),
            "spectral_norm" (spectral-norm clipping by power iteration, Miyato et al. 2018, O(m n)
            per step: `power_iterations` per step from a vector kept in the non-trainable weight
            `power_vector`) or "spectral" (the exact SVD clip every step). `from_config` of a
            config without "constraint" (one saved before the argument existed, or written by
            hand) takes "bjorck", the kind those files were trained with and whose weights they
            hold (no `subspace` state), not the constructor's default.
        bjorck_iterations, bjorck_every: Björck iterations per projection, and project on every
            k-th step ("bjorck" only).
        use_bias: add a bias (it does not change the Lipschitz constant).
        kernel_initializer, bias_initializer: Keras initializers; the kernel is projected onto
            the ball once at build time, so a freshly built layer already satisfies its bound.
        power_iterations: "spectral_norm" iterations per step.
        subspace_rank: k of "subspace_clip" (at most min(m, n) is used).
        **kwargs: `keras.layers.Layer` arguments (name, dtype: the compute dtype must be float32
            or float64, `CERTIFIED_DTYPES`).

    Input shape:
        (..., m): any leading dimensions, m input features.
    Output shape:
        (..., units).

    Raises:
        TypeError / ValueError: naming `units`, `lipschitz`, `constraint` or another argument
            for a bad value; ValueError for a compute dtype outside `CERTIFIED_DTYPES`.

    References:
        See `lipvae_tf.constraints` (spectral normalisation, Björck orthonormalisation, the
        subspace clip) and docs/theory.md sections 12-14.
    """

    _fixed_attributes = _ScaledKernelLayer._fixed_attributes | {
        "units", "constraint", "bjorck_iterations", "bjorck_every", "power_iterations",
        "subspace_rank"}

    def __init__(
        self,
        units: int,
        lipschitz: float = 1.0,
        constraint: str = lc.DEFAULT_CONSTRAINT,
        bjorck_iterations: int = 1,
        use_bias: bool = True,
        kernel_initializer="orthogonal",
        bias_initializer="zeros",
        bjorck_every: int = 1,
        power_iterations: int = lc.DEFAULT_POWER_ITERATIONS,
        subspace_rank: int = lc.DEFAULT_SUBSPACE_RANK,
        **kwargs,
    ):
        super().__init__(lipschitz, use_bias, kernel_initializer, bias_initializer, **kwargs)
        self.units = checks.positive_int("units", units)
        self.constraint = constraint
        self.bjorck_iterations = bjorck_iterations
        self.bjorck_every = bjorck_every
        self.power_iterations = power_iterations
        self.subspace_rank = subspace_rank
        self._make_constraint()  # validate now, not at build

    def _make_constraint(self) -> keras.constraints.Constraint:
        return _kernel_constraint(self.constraint, self.bjorck_iterations, self.bjorck_every,
                                  self.power_iterations, self.subspace_rank)

    def build(self, input_shape) -> None:
        constraint = self._make_constraint()
        self._add_kernel_and_bias((input_shape[-1], self.units), self.units, constraint)
        # as Keras' Dense: a later call on another width is refused by name, not by a matmul
        self.input_spec = keras.InputSpec(min_ndim=2, axes={-1: input_shape[-1]})

    def call(self, inputs):
        return self._finish(ops.matmul(inputs, self.kernel))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "constraint": self.constraint,
            "bjorck_iterations": self.bjorck_iterations,
            "bjorck_every": self.bjorck_every,
            "power_iterations": self.power_iterations,
            "subspace_rank": self.subspace_rank,
        }

    @classmethod
    def from_config(cls, config: dict):
        # configs saved before `constraint` was an argument, or while Björck was the default,
        # name no kind or "bjorck": a config without one trained with Björck
        return super().from_config({"constraint": "bjorck", **config})


class _LipschitzConvBase(_ScaledKernelLayer):
    """Conv layers whose operator norm (for the built input size) is clipped to <= 1."""

    _fixed_attributes = _ScaledKernelLayer._fixed_attributes | {
        "constraint", "power_iterations", "subspace_rank", "relaxation", "filters",
        "kernel_size", "strides", "padding", "input_hw"}

    paddings: tuple[str, ...] = conv_spectrum.PADDINGS

    def __init__(self, filters: int, kernel_size, strides=(1, 1), padding: str = "same",
                 lipschitz: float = 1.0, use_bias: bool = True,
                 kernel_initializer="orthogonal", bias_initializer="zeros",
                 constraint: str = lc.DEFAULT_CONV_CONSTRAINT,
                 power_iterations: int = lc.DEFAULT_POWER_ITERATIONS,
                 subspace_rank: int = lc.DEFAULT_CONV_SUBSPACE_RANK,
                 relaxation: float = lc.DEFAULT_CONV_RELAXATION, **kwargs):
        super().__init__(lipschitz, use_bias, kernel_initializer, bias_initializer, **kwargs)
        self.constraint = constraint
        self.power_iterations = power_iterations
        self.subspace_rank = subspace_rank
        self.relaxation = lc.check_relaxation("relaxation", relaxation)
        _kernel_constraint(constraint, power_iterations=power_iterations,
                           subspace_rank=subspace_rank, relaxation=relaxation, strides=(1, 1))
        self.filters = checks.positive_int("filters", filters)
        self.kernel_size = checks.int_pair("kernel_size", kernel_size)
        self.strides = checks.int_pair("strides", strides)
        # lower-cased as Keras does; anything but a str is refused as itself (not as 'none')
        self.padding = checks.one_of(
            "padding", padding.lower() if isinstance(padding, str) else padding, self.paddings)

    def _built_input(self, input_shape) -> tuple[int, int]:
        """(height, width) of the input the layer is built for; from then on Keras checks the
        rank and channels of every input (`input_spec`, as its own Conv2D does: a rank-3
        input or another channel count failed inside TF's convolution op)."""
        hw = self._spatial_input(input_shape)
        self.input_spec = keras.InputSpec(ndim=4, axes={-1: int(input_shape[-1])})
        return hw

    def _spatial_input(self, input_shape) -> tuple[int, int]:
        if len(input_shape) != 4 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                f"{type(self).__name__} needs inputs of shape (batch, height, width, channels) "
                f"with known height and width (the operator norm depends on them), "
                f"got {tuple(input_shape)}"
            )
        return int(input_shape[1]), int(input_shape[2])

    def _check_built_size(self, inputs):
        """`inputs`, checked to have the spatial size the layer was built for (the bound holds
        for that size only): a ValueError when the size is known as the layer is called or
        traced, and an in-graph assertion (tf.errors.InvalidArgumentError when the graph runs)
        when it is not: Keras' `predict` retraces with the image size relaxed to None, and such
        a graph ran a 4 x 4 layer on 16 x 16 images, whose operator norm is 7.5 % above the
        bound (an adversarial review, 2026-12-04)."""
        hw = tuple(inputs.shape[1:3])
        message = (f"layer {self.name!r} was built for inputs of spatial size {self.input_hw} "
                   f"(its Lipschitz bound holds for that size only), got inputs of size ")
        if any(known is not None and known != built for known, built in zip(hw, self.input_hw)):
            raise ValueError(message + str(hw))
        if None not in hw:
            return inputs
        size = tf.shape(inputs)[1:3]
        check = tf.debugging.assert_equal(size, tf.constant(self.input_hw, size.dtype),
                                          message=message + "(height, width) =")
        with tf.control_dependencies([check]):
            return tf.identity(inputs)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "constraint": self.constraint,
            "power_iterations": self.power_iterations,
            "subspace_rank": self.subspace_rank,
            "relaxation": self.relaxation,
        }

    @classmethod
    def from_config(cls, config: dict):
        # configs saved before `constraint` was an argument used the exact clip ("spectral")
        return super().from_config({"constraint": "spectral", **config})

    def _conv_constraint(self, operator_hw) -> keras.constraints.Constraint:
        return _kernel_constraint(self.constraint, power_iterations=self.power_iterations,
                                  subspace_rank=self.subspace_rank, relaxation=self.relaxation,
                                  input_hw=operator_hw, strides=self.strides,
                                  padding=self.padding)


@_register
class LipschitzConv2D(_LipschitzConvBase):
    """2-D convolution (channels last) with operator norm <= lipschitz for its input size.

    y = lipschitz * conv(x, K) + b, with the operator norm of x -> conv(x, K) on the built input
    size kept <= 1 after each optimiser step. The norm depends on the input's spatial size, so the
    layer is built for one size and refuses others.

    Args:
        filters: output channels, a positive int.
        kernel_size, strides: an int or a pair of ints.
        padding: "same"/"valid" (zero padding; certified by a guaranteed upper bound: the
            circular operator on a large enough grid) or "circular" (periodic; the operator norm
            is computed exactly). Sedghi et al. 2019; docs/theory.md section 13, "Why the circular
            grid".
        lipschitz: the fixed, non-trainable output factor (> 0, a normal float32: 1.18e-38 to
            3.40e38).
        use_bias, kernel_initializer, bias_initializer: as for `LipschitzDense`.
        constraint: "subspace_clip" (default: the singular values above 1 of each frequency block
            of the operator, on a `subspace_rank`-dimensional subspace per block kept in the
            non-trainable weight `subspace`, taken back to the kernel's taps), "spectral" (the
            exact clip in the frequency domain every step, re-measured and rescaled) or
            "spectral_norm" (spectral-norm clipping by power iteration on the convolution
            operator, vector in the weight `power_vector`; a few convolutions of one image per
            step). See `lipvae_tf.constraints`. `from_config` of a config without
            "constraint" (saved before the argument existed, or written by hand) takes
            "spectral", the kind those files were trained with, not the constructor's default.
        power_iterations: "spectral_norm" iterations per step.
        subspace_rank: k per frequency block of "subspace_clip".
        relaxation: omega in (0, 2), the over-relaxation of "subspace_clip"'s per-step
            correction (`lipvae_tf.constraints.SubspaceClip`; default
            `constraints.DEFAULT_CONV_RELAXATION`, 1: the plain step; 1.5 trains better at
            few epochs, BENCHMARKS.md). Other kinds ignore it.
        **kwargs: `keras.layers.Layer` arguments (float32 or float64 compute dtype only).

    Input shape:
        (batch, height, width, channels), height and width known and >= the kernel's.
    Output shape:
        (batch, new_height, new_width, filters), as `keras.layers.Conv2D`.

    Raises:
        TypeError / ValueError: naming the argument for a bad value; ValueError at build for an
            unknown spatial size or one smaller than the kernel, and at call for another size.
    """

    def build(self, input_shape) -> None:
        self.input_hw = self._built_input(input_shape)
        output_hw = tuple(self.compute_output_shape((None, *self.input_hw, 1))[1:3])
        refuse_faulty_cpu_convolution(self, self.input_hw, int(input_shape[-1]),
                                      self.kernel_size, self.strides, output_hw)
        if self.padding == "circular":
            conv_spectrum.circular_grid(self.input_hw, self.kernel_size, self.strides, "circular")
        kernel_shape = (*self.kernel_size, input_shape[-1], self.filters)
        self._add_kernel_and_bias(kernel_shape, self.filters, self._conv_constraint(self.input_hw))

    def call(self, inputs):
        inputs = self._check_built_size(inputs)
        return _unless_empty(self, inputs, self._convolve, inputs.dtype)

    def _convolve(self, inputs):
        if self.padding == "circular":
            inputs = _wrap_pad(inputs, self.kernel_size)
            outputs = ops.conv(inputs, self.kernel, strides=self.strides, padding="valid")
        else:
            outputs = ops.conv(inputs, self.kernel, strides=self.strides, padding=self.padding)
        return self._finish(outputs)

    def compute_output_shape(self, input_shape):
        h, w = self._spatial_input(input_shape)
        if self.padding == "valid":
            h, w = h - self.kernel_size[0] + 1, w - self.kernel_size[1] + 1
        return (input_shape[0], -(-h // self.strides[0]), -(-w // self.strides[1]), self.filters)


def refuse_faulty_cpu_convolution(layer: keras.layers.Layer, input_hw: tuple[int, int],
                                  in_channels: int, kernel_size: tuple[int, int],
                                  strides: tuple[int, int], output_hw: tuple[int, int]) -> None:
    """Refuse a convolution shape on which TF's CPU convolution (oneDNN) computes wrong values:
    the certified bound would then not hold for what is computed. Measured on TF 2.21 against
    a float64 reference (3000 random shapes; an attacker's review, 2026-12-02):

    - a kernel larger than the input (float32 "same" with strides (1, 2) on a 7 x 1 input and a
      3 x 5 kernel returns values of 1e34, uninitialised memory; "valid" too);
    - strides (1, s > 1), one input channel and an output width of 1, with a batch of more than
      one image: 18 of 51 such shapes came out wrong, by up to 108 % of the output's size (one
      image alone is right, so a certificate tested one image at a time looked fine). A Keras
      Conv1D is this 2-D convolution with height 1.

    A second review (2026-12-03) found no other family: about 12,000 random shapes (batches up
    to 64, 1-16 channels, strides up to 5, dilation, both paddings, float32 and float64, graph
    mode with fused bias and activation) and all 12,178 shapes with an output height or width
    of 1, 1-2 channels and strides 1-4 were wrong only inside the two refused families.

    Args:
        layer: the layer the convolution belongs to (only its class name and `name` are read,
            for the message).
        input_hw: the input's spatial size (height, width).
        in_channels: the number of input channels.
        kernel_size: the kernel's spatial size (kh, kw).
        strides: the strides (s_h, s_w).
        output_hw: the output's spatial size (height, width).

    Returns:
        None (the shape is safe).

    Raises:
        ValueError: naming the layer, its shape and what to change: if the input is smaller
            than the kernel along either axis, or strides are (1, s > 1) with one input channel
            and an output width of 1.
    """
    if any(n < k for n, k in zip(input_hw, kernel_size)):
        raise ValueError(
            f"{type(layer).__name__} {layer.name!r} needs inputs at least as large as its "
            f"kernel: input spatial size {tuple(input_hw)}, kernel_size {tuple(kernel_size)} "
            "(TF's CPU convolution computes garbage on such shapes)")
    if strides[0] == 1 and strides[1] > 1 and in_channels == 1 and output_hw[1] == 1:
        raise ValueError(
            f"{type(layer).__name__} {layer.name!r}: strides {tuple(strides)} on one input "
            f"channel with an output width of 1 (input {tuple(input_hw)}, kernel_size "
            f"{tuple(kernel_size)}) is a shape on which TF's CPU convolution (oneDNN) computes "
            "wrong values for batches of more than one image; use strides (s, s), a padding "
            "or input size that gives an output width > 1, or more input channels")


@_register
class LipschitzConv2DTranspose(_LipschitzConvBase):
    """Transposed convolution for decoders; its norm is that of the conv it is the adjoint of.

    y = lipschitz * conv_transpose(x, K) + b: the adjoint of the strided convolution with K from
    the output grid to the input grid, whose operator norm (kept <= 1, measured on the output
    size) it shares.

    Args:
        As `LipschitzConv2D`, with padding "same" or "valid" only.

    Input shape:
        (batch, height, width, channels), height and width known.
    Output shape:
        (batch, new_height, new_width, filters), as `keras.layers.Conv2DTranspose`.

    Raises:
        As `LipschitzConv2D`.
    """

    _fixed_attributes = _LipschitzConvBase._fixed_attributes | {"output_hw"}

    paddings = ("same", "valid")

    def build(self, input_shape) -> None:
        self.input_hw = self._built_input(input_shape)
        self.output_hw = tuple(self.compute_output_shape(input_shape)[1:3])
        kernel_shape = (*self.kernel_size, self.filters, input_shape[-1])
        # The adjoint conv maps the output grid back to the input grid with the same kernel.
        self._add_kernel_and_bias(kernel_shape, self.filters,
                                  self._conv_constraint(self.output_hw))

    def call(self, inputs):
        inputs = self._check_built_size(inputs)
        # an empty batch (a replica's share of a short last batch) skips the convolution: TF's
        # CPU gradient of conv_transpose returns the output's shape for it (the oneDNN fault of
        # EmptyBatchSafeConv2D), which broke the gradient of every layer before this one
        return _unless_empty(self, inputs, self._convolve, inputs.dtype)

    def _convolve(self, inputs):
        outputs = ops.conv_transpose(
            inputs, self.kernel, strides=self.strides, padding=self.padding
        )
        return self._finish(outputs)

    def compute_output_shape(self, input_shape):
        h, w = self._spatial_input(input_shape)
        out = []
        for n, k, s in zip((h, w), self.kernel_size, self.strides):
            out.append(n * s if self.padding == "same" else n * s + max(k - s, 0))
        return (input_shape[0], out[0], out[1], self.filters)


@_register
class EmptyBatchSafeConv2D(_FiniteWhenLoaded, keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose empty batch gives an empty output of the right shape.

    Otherwise identical (same arguments, weights and bound rule). TF's oneDNN conv2d on CPU
    returns the *input's* shape for an empty batch, which breaks every later layer.

    Args:
        As `keras.layers.Conv2D`.

    Input shape:
        (batch, height, width, channels) (channels-last, as `keras.layers.Conv2D`); batch may
        be 0.
    Output shape:
        (batch, new_height, new_width, filters), as `keras.layers.Conv2D`; for batch 0 a tensor
        of that shape (0 rows) in the layer's compute dtype, without running the convolution.

    Raises:
        As `keras.layers.Conv2D`; ValueError naming the layer when loaded weights hold NaN or
        Inf.
    """

    def call(self, inputs):
        return _unless_empty(self, inputs, lambda x: keras.layers.Conv2D.call(self, x),
                             self.compute_dtype)


@_register
class EmptyBatchSafeConv2DTranspose(_FiniteWhenLoaded, keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` whose empty batch skips the convolution.

    Otherwise identical (same arguments, weights and bound rule). TF's CPU gradient of a
    transposed conv with respect to its input has the output's shape for an empty batch (the
    oneDNN fault of `EmptyBatchSafeConv2D`), which broke a mirrored fit whose last batch left a
    replica nothing.

    Args:
        As `keras.layers.Conv2DTranspose`.

    Input shape:
        (batch, height, width, channels) (channels-last); batch may be 0.
    Output shape:
        (batch, new_height, new_width, filters), as `keras.layers.Conv2DTranspose`; for batch 0
        a tensor of that shape (0 rows) in the layer's compute dtype.

    Raises:
        As `keras.layers.Conv2DTranspose`; ValueError naming the layer when loaded weights hold
        NaN or Inf.
    """

    def call(self, inputs):
        return _unless_empty(self, inputs, lambda x: keras.layers.Conv2DTranspose.call(self, x),
                             self.compute_dtype)


def _unless_empty(layer: keras.layers.Layer, inputs, convolve, dtype):
    """convolve(inputs), or for a batch of size 0 (statically when the size is known) an empty
    output of the layer's output shape and `dtype`."""
    def empty():
        return tf.zeros((0, *layer.compute_output_shape(inputs.shape)[1:]), dtype)

    batch = inputs.shape[0]
    if batch is not None:
        return convolve(inputs) if batch else empty()
    return tf.cond(tf.shape(inputs)[0] > 0, lambda: convolve(inputs), empty)


def _wrap_pad(inputs, kernel_size: tuple[int, int]):
    """Periodic padding so that a 'valid' conv equals a circular one (centred kernel)."""
    for axis, k in ((1, kernel_size[0]), (2, kernel_size[1])):
        before, after = (k - 1) // 2, k - 1 - (k - 1) // 2
        size = inputs.shape[axis]
        pieces = []
        if before:
            pieces.append(ops.take(inputs, list(range(size - before, size)), axis=axis))
        pieces.append(inputs)
        if after:
            pieces.append(ops.take(inputs, list(range(after)), axis=axis))
        inputs = ops.concatenate(pieces, axis=axis)
    return inputs


def _swap_neighbours(values: tf.Tensor) -> tf.Tensor:
    """Features 2i and 2i+1 (last axis) trade places."""
    pairs = tf.reshape(values, (-1, values.shape[-1] // 2, 2))
    return tf.reshape(tf.reverse(pairs, axis=[-1]), tf.shape(values))


def sort_neighbour_pairs(inputs: tf.Tensor) -> tf.Tensor:
    """GroupSort(2): max then min of every pair (2i, 2i+1), with a hand-written gradient.

    A pair either stays or swaps, so the gradient is the upstream gradient with the same swaps.
    Written elementwise against the partner (no size-2 reductions and their masks), forward plus
    backward on (256, 512) features takes 0.8 ms instead of 2.5 ms on this project's 2-core CPU,
    with bit-identical values. Ties count as "stayed" on both sides of a pair: consistent.

    Args:
        inputs: (..., n) with n even and known: a tensor, or anything `tf.convert_to_tensor`
            takes (any real dtype).

    Returns:
        A tensor of the input's shape and dtype: out[..., 2i] = max(x[..., 2i], x[..., 2i+1]),
        out[..., 2i+1] = the min.

    Raises:
        ValueError: for a scalar (rank 0) input, or an odd or unknown last dimension (the
            pairs would not tile it).
    """
    inputs = tf.convert_to_tensor(inputs)
    width = inputs.shape[-1] if inputs.shape.rank else None
    if width is None or width % 2:
        raise ValueError(f"inputs must have an even, known last dimension (pairs of features), "
                         f"got shape {tuple(inputs.shape)}")
    leads = tf.equal(tf.range(inputs.shape[-1]) % 2, 0)

    @tf.custom_gradient
    def sort(x):
        partner = _swap_neighbours(x)
        out = tf.where(leads, tf.maximum(x, partner), tf.minimum(x, partner))
        stayed = tf.equal(out, x)

        def grad(upstream):
            return tf.where(stayed, upstream, _swap_neighbours(upstream))

        return out, grad

    return sort(inputs)


class _ShapePreserving:
    """Elementwise or per-feature layers: the output has the input's shape (Keras'
    `compute_output_shape`, which `TimeDistributed` and symbolic calls need)."""

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@_register
class GroupSort(_ShapePreserving, FixedConfig, keras.layers.Layer):
    """Sorts each consecutive group of `group_size` features (last axis), descending.

    Piecewise a permutation: 1-Lipschitz and gradient-norm preserving (Anil et al. 2019).
    group_size=2 sorts the neighbouring pairs (2i, 2i + 1) (`sort_neighbour_pairs`); the
    `MaxMin` layer pairs feature i with i + n/2 instead: the same operation up to a fixed
    permutation of the features, but not the same outputs.

    Args:
        group_size: features per sorted group, an int >= 2 that divides the last dimension.

    Input shape:
        (..., n), n divisible by group_size. Output shape: the same.

    Raises:
        TypeError / ValueError naming `group_size`; ValueError at build for an n it does not
        divide.
    """

    _fixed_attributes = frozenset({"group_size"})

    def __init__(self, group_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.group_size = checks.positive_int("group_size", group_size, minimum=2)

    def build(self, input_shape) -> None:
        if input_shape[-1] is None or input_shape[-1] % self.group_size:
            raise ValueError(
                f"GroupSort(group_size={self.group_size}) needs a last dimension divisible by "
                f"{self.group_size}, got input shape {tuple(input_shape)}"
            )

    def call(self, inputs):
        if self.group_size == 2:
            return sort_neighbour_pairs(inputs)
        groups = ops.reshape(inputs, (-1, inputs.shape[-1] // self.group_size, self.group_size))
        return ops.reshape(ops.flip(ops.sort(groups, axis=-1), axis=-1), ops.shape(inputs))

    def get_config(self) -> dict:
        return {**super().get_config(), "group_size": self.group_size}


@_register
class MaxMin(_ShapePreserving, keras.layers.Layer):
    """Pairs feature i with feature i + n/2 (last axis): [max(a, b), min(a, b)]. 1-Lipschitz.

    Input shape: (..., n), n even. Output shape: the same. Raises ValueError for an odd n.

    With a = x[..., :n/2] and b = x[..., n/2:], the output is concat([max(a, b), min(a, b)]):
    not the neighbouring pairs of `GroupSort(2)` / `sort_neighbour_pairs`, though also a
    permutation on each piece, so 1-Lipschitz and gradient-norm preserving (Anil et al. 2019).
    No arguments beyond Keras' layer keywords (name, dtype, ...); the compute dtype is not
    checked (`check_compute_dtype`).

    Input shape:
        (..., n), n even and known.

    Output shape:
        (..., n), the same; the layer's compute dtype.

    Raises:
        ValueError: at build, for an odd or unknown last dimension n.
    """

    def build(self, input_shape) -> None:
        if input_shape[-1] is None or input_shape[-1] % 2:
            raise ValueError(f"MaxMin needs an even last dimension, got {tuple(input_shape)}")

    def call(self, inputs):
        a, b = ops.split(inputs, 2, axis=-1)
        return ops.concatenate([ops.maximum(a, b), ops.minimum(a, b)], axis=-1)


@_register
class Scale(_ShapePreserving, FixedConfig, keras.layers.Layer):
    """Multiplies by a fixed factor; Lipschitz constant |factor| (as applied: the factor cast to
    the compute dtype, e.g. float32(1/3) > 1/3, is what `layer_lipschitz_bound` reports).

    Args:
        factor: a finite real number, 0 or of a magnitude float32 holds as a normal number
            (1.18e-38 to 3.40e38).

    Input shape: any. Output shape: the same.

    Raises:
        TypeError naming `factor` for a non-number, ValueError for a non-finite one or one
        outside float32's normal range.
    """

    _fixed_attributes = frozenset({"factor"})

    def __init__(self, factor: float, **kwargs):
        super().__init__(**kwargs)
        check_compute_dtype(self)
        self.factor = checks.finite_real("factor", factor)
        if self.factor != 0:  # 0 or a normal float32 (a subnormal one is read as 0 on CPUs)
            checks.positive_float32("|factor|", abs(self.factor))

    def call(self, inputs):
        check_compute_dtype(self)
        return inputs * ops.cast(self.factor, inputs.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "factor": self.factor}


@_register
class Shift(_ShapePreserving, FixedConfig, keras.layers.Layer):
    """Adds a fixed offset (a translation: an isometry); keeps softplus std outputs above 0.

    Args:
        offset: a positive number that float32 represents as a normal number (1.18e-38 to
            3.40e38; `checks.positive_float32`).

    Input shape: any. Output shape: the same.

    Raises:
        TypeError / ValueError naming `offset`.
    """

    _fixed_attributes = frozenset({"offset"})

    def __init__(self, offset: float, **kwargs):
        super().__init__(**kwargs)
        check_compute_dtype(self)
        self.offset = checks.positive_float32("offset", offset)

    def call(self, inputs):
        check_compute_dtype(self)
        return inputs + ops.cast(self.offset, inputs.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "offset": self.offset}


@_register
class StdCap(_ShapePreserving, FixedConfig, keras.layers.Layer):
    """Projects each example (all non-batch axes) onto the l2 ball of radius max_norm.

    A projection onto a convex set is 1-Lipschitz; it caps ||sigma(x)|| <= S for every input
    in exact arithmetic. The float32 graph applies float32(S) (float32(0.1) > 0.1) and rounds,
    so an output's norm can exceed S by a few units of round-off: `output_norm_bound` is the
    cap a certificate must use. A non-finite input (an upstream overflow) still gives an output
    inside the cap: the projection's limit (infinite entries' signs scaled to norm S, NaN
    entries 0).

    Args:
        max_norm: the cap S, in the units of the std (latent space): a positive number that
            float32 represents as a normal number (1.18e-38 to 3.40e38), as the float32
            graph applies it.

    Input shape: (batch, ...). Output shape: the same.

    Raises:
        TypeError / ValueError naming `max_norm`.
    """

    _fixed_attributes = frozenset({"max_norm"})

    def __init__(self, max_norm: float, **kwargs):
        super().__init__(**kwargs)
        check_compute_dtype(self)
        self.max_norm = checks.positive_float32("max_norm", max_norm)

    def output_norm_bound(self, features: int) -> float:
        """Upper bound (float64) of ||y||_2 for ANY output row y of `features` values that
        `call` can produce in the layer's compute dtype, for any input (non-finite included).

        Derivation (u = unit round-off of the compute dtype, 2^-24 for float32; eta = the
        smallest normal number, the absolute error of a rounding in the underflow range when
        subnormal results are flushed to zero, as TF's CPU kernels do; n =
        features; T = ||x||^2 in exact arithmetic; every step below is one correctly rounded
        operation, |fl(t) - t| <= u|t| + eta, and additions have no eta term):
          c  = fl(max_norm)                       the cap as applied (float32(0.1) > 0.1)
          a_i = fl(x_i^2) >= x_i^2 (1 - u) - eta
          q  = fl(sum a_i) >= (1 - u)^(n-1) sum a_i     (non-negative terms, any summation order)
             >= T (1 - u)^n - n eta
          c2 = fl(c * c) >= c^2 (1 - u) - eta,   m = max(q, c2) (exact)
          r  = fl(sqrt(m)) >= sqrt(m) (1 - u),   d = fl(c / r) <= c (1 + u) / r
          y_i = fl(x_i d),  |y_i| <= |x_i| d (1 + u) + eta
        If T (1 - u)^n <= c^2 (1 - u) then m >= c2 gives T / m <= (1 - u)^-n / (1 - delta);
        otherwise m >= q gives the same, with delta = n eta / (c^2 (1 - u)). Hence
          ||y|| <= (1 + u) d sqrt(T) + sqrt(n) eta
               <= c (1 + u)^2 / (1 - u) * (1 - u)^(-n/2) / sqrt(1 - delta) + sqrt(n) eta,
        evaluated in float64 and rounded up. For float32, S = 0.1 and n = 10 it is
        S (1 + 4.9e-7). An input so large that its squares overflow gives d = 0 and y = 0.
        Non-finite inputs (an upstream overflow): NaN entries count as 0, and a row with k
        infinite entries gives y_i = sign(x_i) fl(c / fl(sqrt(k))) on them and 0 elsewhere,
        ||y|| <= c (1 + u)^2 / (1 - u), inside the bound above.

        Args:
            features: the number of values in one example (the product of its non-batch axes).

        Returns:
            The bound, >= every ||y||_2 the layer can output; use it as S in certificates.

        Raises:
            TypeError / ValueError: if `features` is not an integer >= 1, or if max_norm^2
                underflows in the compute dtype (no useful bound).
        """
        n = checks.positive_int("features", features)
        check_compute_dtype(self)
        info = np.finfo(np.dtype(self.compute_dtype))
        # eta: flush-to-zero drops a square below the smallest normal (2^24 times the
        # half-subnormal of gradual underflow, which a review showed too small: caps below 1e-18
        # were exceeded)
        u, eta = float(info.eps) / 2, float(info.tiny)
        cap = float(ops.convert_to_numpy(ops.cast(self.max_norm, self.compute_dtype)))
        delta = n * eta / (cap * cap * (1 - u))
        if delta >= 0.5:
            raise ValueError(
                f"max_norm={self.max_norm} is too small for {self.compute_dtype}: its square "
                f"underflows, so the cap is not applied reliably"
            )
        bound = (cap * (1 + u) ** 2 / (1 - u) * (1 - u) ** (-n / 2) / math.sqrt(1 - delta)
                 + math.sqrt(n) * eta)
        return bound * (1 + 1e-14)  # float64 evaluation of the formula, rounded up

    def call(self, inputs):
        check_compute_dtype(self)
        axes = tuple(range(1, len(inputs.shape)))
        cap = ops.cast(self.max_norm, inputs.dtype)
        # An upstream overflow (an unconstrained std network's inf, or the NaN of inf - inf)
        # would give inf * 0 = NaN below, and a NaN std breaks the cap that a certificate under
        # absolute round-off relies on (an adversarial review, 2026-12-01). The projection's
        # limit is used instead: the infinite entries' signs scaled to norm S, NaN entries 0.
        infinite = ops.where(ops.isinf(inputs), ops.sign(inputs), ops.zeros_like(inputs))
        infinite_count = ops.sum(ops.abs(infinite), axis=axes, keepdims=True)
        finite = ops.where(ops.isfinite(inputs), inputs, ops.zeros_like(inputs))
        squared_norm = ops.sum(ops.square(finite), axis=axes, keepdims=True)
        # sqrt of max(., cap^2), never of 0: the gradient stays finite at the origin.
        # divide_no_nan, not `/` (a correctly rounded division here, the root is >= cap > 0):
        # TF's graph optimiser rewrites cap / sqrt(m) into cap * rsqrt(m), an approximate
        # reciprocal square root that output_norm_bound's derivation does not cover, and eager
        # and graph results then differed (a review, 2026-12-01); it leaves divide_no_nan alone
        capped = finite * ops.divide_no_nan(cap, ops.sqrt(ops.maximum(squared_norm, cap * cap)))
        limit = infinite * ops.divide_no_nan(cap, ops.sqrt(infinite_count))
        return ops.where(infinite_count > 0, limit, capped)

    def get_config(self) -> dict:
        return {**super().get_config(), "max_norm": self.max_norm}
