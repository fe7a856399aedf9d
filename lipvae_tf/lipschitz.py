"""Verified upper bounds of l2 Lipschitz constants, from the weights actually in use.

Nothing here trusts a nominal constant or a constraint: kernels are read and measured in float64.
Dense: exact largest singular value (SVD). Conv: exact operator norm for circular padding and a
guaranteed upper bound for zero padding (see `conv_spectrum`); never plain power iteration.
A network's bound is the product of its layers' bounds (activations included).
"""
from __future__ import annotations

from typing import Iterable

import keras
import numpy as np
import tensorflow as tf

from lipvae_tf import conv_spectrum, layers as ll

# Relative margin covering float64 round-off of the SVD / FFT (about n * 1e-16 for n <= 1e5).
ROUNDOFF_MARGIN = 1e-10

# Largest slope of each activation (sup |f'|).
ACTIVATION_CONSTANTS = {
    "linear": 1.0, "relu": 1.0, "relu6": 1.0, "leaky_relu": 1.0, "elu": 1.0, "tanh": 1.0,
    "softplus": 1.0, "sigmoid": 0.25, "hard_sigmoid": 1.0 / 6.0,
    "silu": 1.1, "swish": 1.1,  # sup silu' = 1.0998...
    "gelu": 1.13,  # sup gelu' = 1.1289...
}
_ISOMETRIES = (
    keras.layers.InputLayer, keras.layers.Flatten, keras.layers.Reshape, keras.layers.Dropout,
    keras.layers.Identity, ll.GroupSort, ll.MaxMin, ll.StdCap, ll.Shift,
)


def dense_norm(kernel) -> float:
    """Largest singular value of a rank-2 kernel, in float64."""
    return float(np.linalg.norm(np.asarray(kernel, dtype=np.float64), 2))


def conv_norm_bound(kernel, input_hw, strides, padding: str) -> float:
    """Operator norm of a conv with this (kh, kw, c_in, c_out) kernel on inputs of size input_hw.

    Exact for "circular" padding, a guaranteed upper bound for "same" and "valid".
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    grid = conv_spectrum.circular_grid(tuple(input_hw), kernel.shape[:2], tuple(strides), padding)
    return float(conv_spectrum.operator_norm(tf.constant(kernel), grid, tuple(strides)))


def activation_constant(activation) -> float:
    """Lipschitz constant of a Keras activation (function or name); TypeError if unknown."""
    name = activation if isinstance(activation, str) else keras.activations.serialize(activation)
    if isinstance(name, dict):
        name = name.get("config", name.get("class_name"))
    if name not in ACTIVATION_CONSTANTS:
        raise TypeError(f"no Lipschitz constant known for activation {name!r}")
    return ACTIVATION_CONSTANTS[name]


def _keras_conv_input_hw(layer) -> tuple[int, int]:
    try:
        shape = layer.input.shape
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"layer {layer.name!r}: the operator norm of a convolution depends on its input "
            f"size, which is unknown (call the layer in a model with a known input shape)"
        ) from error
    return int(shape[1]), int(shape[2])


def _keras_conv_bound(layer) -> float:
    if layer.data_format != "channels_last" or max(layer.dilation_rate) != 1 or layer.groups != 1:
        raise TypeError(
            f"layer {layer.name!r}: only channels_last, undilated, ungrouped convolutions have "
            f"a verified bound here"
        )
    kernel = layer.kernel.numpy()
    if isinstance(layer, keras.layers.Conv2DTranspose):
        hw = tuple(layer.output.shape[1:3])
    else:
        hw = _keras_conv_input_hw(layer)
    bound = conv_norm_bound(kernel, hw, layer.strides, layer.padding)
    return bound * activation_constant(layer.activation)


def layer_lipschitz_bound(layer: keras.layers.Layer) -> float:
    """Verified upper bound of the l2 Lipschitz constant of one built layer.

    Raises TypeError for a layer whose constant is not known (rather than guessing).
    """
    if isinstance(layer, keras.Model):
        return network_lipschitz_bound(layer)
    if isinstance(layer, ll.LipschitzDense):
        norm = dense_norm(layer.kernel.numpy())
    elif isinstance(layer, ll.LipschitzConv2D):
        norm = conv_norm_bound(layer.kernel.numpy(), layer.input_hw, layer.strides, layer.padding)
    elif isinstance(layer, ll.LipschitzConv2DTranspose):
        norm = conv_norm_bound(layer.kernel.numpy(), layer.output_hw, layer.strides, layer.padding)
    elif isinstance(layer, ll.Scale):
        return abs(layer.factor)
    elif isinstance(layer, _ISOMETRIES):
        return 1.0
    elif isinstance(layer, keras.layers.Activation):
        return activation_constant(layer.activation)
    elif isinstance(layer, keras.layers.Dense):
        return dense_norm(layer.kernel.numpy()) * activation_constant(layer.activation) * (
            1 + ROUNDOFF_MARGIN
        )
    elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
        return _keras_conv_bound(layer) * (1 + ROUNDOFF_MARGIN)
    else:
        raise TypeError(
            f"no verified Lipschitz bound for layer {layer.name!r} of type {type(layer).__name__}"
        )
    return layer.lipschitz * norm * (1 + ROUNDOFF_MARGIN)


def _chain(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of a model that is a plain chain, in order; TypeError otherwise."""
    if isinstance(model, keras.Sequential):
        return list(model.layers)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise TypeError(f"model {model.name!r}: only single-input, single-output chains")
    chain, tensor = [], model.inputs[0]
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if len(layer._inbound_nodes) != 1 or layer.input is not tensor:
            raise TypeError(
                f"model {model.name!r} is not a chain of layers at {layer.name!r}: bound its "
                f"branches yourself and combine them"
            )
        chain.append(layer)
        tensor = layer.output
    if tensor is not model.outputs[0]:
        raise TypeError(f"model {model.name!r}: its output is not the end of its layer chain")
    return chain


def network_lipschitz_bound(model_or_layers: keras.Model | Iterable[keras.layers.Layer]) -> float:
    """Product of the layers' verified bounds for a chain (Sequential, chain-like Functional
    model, or a list of layers applied in order); nested chains are expanded."""
    if isinstance(model_or_layers, keras.Model):
        functional = getattr(model_or_layers, "inputs", None) is not None
        if not (functional or isinstance(model_or_layers, keras.Sequential)):
            raise TypeError(
                f"model {model_or_layers.name!r} is subclassed: bound its sub-networks "
                f"(Sequential / Functional chains or lists of layers) instead"
            )
        model_or_layers = _chain(model_or_layers)
    bound = 1.0
    for layer in model_or_layers:
        bound *= layer_lipschitz_bound(layer)
    return bound
