"""The VAE's encoder and decoder towers: MLP or conv, as `keras.Sequential` networks.

MLP: Flatten, then Dense + activation per hidden width, then Dense to the output (the decoder
runs the widths in reverse and reshapes to the image). Conv: stride-2 3x3 convolutions down,
Flatten, Dense to the latent; the decoder goes Dense + Reshape, then stride-2 3x3 transposed
convolutions up to the image. Towers take their layer kinds as arguments, callables
(units or filters, per-layer Lipschitz factor, name) -> layer (`conv` also takes
`transpose=True`), so that LipschitzVAE (Lipschitz layers, GroupSort), StandardVAE (plain layers,
ReLU) and subclasses build the same shapes. Every linear layer of a tower gets the same factor
(budget (1 - slack))^(1/L) for its L linear layers (`nominal_slack`): their product is the
tower's budget, since the activations are 1-Lipschitz.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import keras

from lipvae_tf import layers as ll
from lipvae_tf import lipschitz as lp

__all__ = [
    "NOMINAL_SLACK", "CONV_KERNEL_SIZE", "LayerKind", "nominal_slack", "layer_factor",
    "check_conv_shape", "encoder", "decoder", "plain_dense", "plain_conv", "plain_conv_transpose",
]

# Layers are built at (1 - NOMINAL_SLACK) x the budget, so that the verified bounds (measured
# float32 kernels plus a round-off margin) stay below the budget and the design radius holds.
NOMINAL_SLACK = 1e-5

LayerKind = Callable[..., keras.layers.Layer]


def nominal_slack(linear_layers: int) -> float:
    """The relative slack below its budget at which a tower of `linear_layers` linear layers is
    built: NOMINAL_SLACK, or twice the layers' summed round-off margins when that is more. Each
    layer's verified bound carries its own margin (`lipschitz.rounding_margin`, 4.8e-7 in
    float32), so their product can exceed the nominal product by about linear_layers margins:
    a fixed 1e-5 covered up to about 20 layers, and a 41-layer tower's measured constant was
    above its budget (a review, 2026-12-01)."""
    return max(NOMINAL_SLACK, 2 * linear_layers * lp.rounding_margin("float32"))


def layer_factor(budget: float, linear_layers: int) -> float:
    """The Lipschitz factor of each of `linear_layers` layers whose product is the budget
    (less `nominal_slack`)."""
    return (budget * (1 - nominal_slack(linear_layers))) ** (1 / linear_layers)


# every convolution of the conv towers: CONV_KERNEL_SIZE x CONV_KERNEL_SIZE, stride 2, "same"
CONV_KERNEL_SIZE = 3


def check_conv_shape(image_shape: Sequence[int], conv_filters: Sequence[int]) -> None:
    """Raises ValueError naming image_shape unless the conv tower's halvings divide it and its
    last convolution still sees at least CONV_KERNEL_SIZE pixels per axis (the layers refuse
    smaller inputs: the CPU convolution computes garbage there, `layers.LipschitzConv2D`)."""
    shrink = 2 ** len(conv_filters)
    smallest = CONV_KERNEL_SIZE * shrink // 2  # the last conv sees image_shape / (shrink / 2)
    if (image_shape[0] % shrink or image_shape[1] % shrink
            or min(image_shape[0], image_shape[1]) < smallest):
        raise ValueError(
            f"architecture='conv' halves the image {len(conv_filters)} times with "
            f"{CONV_KERNEL_SIZE} x {CONV_KERNEL_SIZE} kernels: image_shape height and width must "
            f"be multiples of {shrink} and at least {smallest}, got {tuple(image_shape)}"
        )


def encoder(name: str, budget: float, *, image_shape: Sequence[int], latent_dim: int,
            architecture: str, hidden_units: Sequence[int], conv_filters: Sequence[int],
            dense: LayerKind, conv: LayerKind, activation: LayerKind) -> keras.Sequential:
    """Image (image_shape) -> latent_dim features, Lipschitz constant <= budget when the layer
    kinds honour their factors."""
    net = keras.Sequential(name=name)
    net.add(keras.Input(tuple(image_shape)))
    if architecture == "mlp":
        factor = layer_factor(budget, len(hidden_units) + 1)
        net.add(keras.layers.Flatten())
        for i, units in enumerate(hidden_units):
            net.add(dense(units, factor, f"{name}_dense_{i}"))
            net.add(activation(f"{name}_act_{i}"))
    else:
        check_conv_shape(image_shape, conv_filters)
        factor = layer_factor(budget, len(conv_filters) + 1)
        for i, filters in enumerate(conv_filters):
            net.add(conv(filters, factor, f"{name}_conv_{i}"))
            net.add(activation(f"{name}_act_{i}"))
        net.add(keras.layers.Flatten())
    net.add(dense(latent_dim, factor, f"{name}_out"))
    return net


def decoder(budget: float, *, image_shape: Sequence[int], latent_dim: int, architecture: str,
            hidden_units: Sequence[int], conv_filters: Sequence[int], dense: LayerKind,
            conv: LayerKind, activation: LayerKind) -> keras.Sequential:
    """Latent (latent_dim) -> image logits (image_shape), Lipschitz constant <= budget."""
    net = keras.Sequential(name="decoder")
    net.add(keras.Input((latent_dim,)))
    if architecture == "mlp":
        widths = tuple(hidden_units)[::-1]
        factor = layer_factor(budget, len(widths) + 1)
        for i, units in enumerate(widths):
            net.add(dense(units, factor, f"decoder_dense_{i}"))
            net.add(activation(f"decoder_act_{i}"))
        net.add(dense(math.prod(image_shape), factor, "decoder_out"))
        net.add(keras.layers.Reshape(tuple(image_shape)))
    else:
        filters = tuple(conv_filters)[::-1]
        factor = layer_factor(budget, len(filters) + 1)
        shrink = 2 ** len(filters)
        h, w = image_shape[0] // shrink, image_shape[1] // shrink
        net.add(dense(h * w * filters[0], factor, "decoder_dense"))
        net.add(activation("decoder_act_dense"))
        net.add(keras.layers.Reshape((h, w, filters[0])))
        for i, f in enumerate(list(filters[1:]) + [image_shape[2]]):
            net.add(conv(f, factor, f"decoder_conv_{i}", transpose=True))
            if i < len(filters) - 1:
                net.add(activation(f"decoder_act_{i}"))
    return net


def plain_dense(units: int, lipschitz: float, name: str) -> keras.layers.Layer:
    """An unconstrained Dense layer (the factor is ignored: its norm is measured instead)."""
    return keras.layers.Dense(units, name=name)


def plain_conv_transpose(filters: int, lipschitz: float, name: str) -> keras.layers.Layer:
    """An unconstrained stride-2 transposed convolution (the factor is ignored)."""
    return ll.EmptyBatchSafeConv2DTranspose(filters, CONV_KERNEL_SIZE, strides=2, padding="same",
                                            name=name)


def plain_conv(filters: int, lipschitz: float, name: str) -> keras.layers.Layer:
    """An unconstrained stride-2 3x3 convolution (the factor is ignored)."""
    return ll.EmptyBatchSafeConv2D(filters, CONV_KERNEL_SIZE, strides=2, padding="same",
                                   name=name)
