"""Verified upper bounds of l2 Lipschitz constants, from the weights actually in use.

Nothing here trusts a nominal constant or a constraint: kernels are read as the layer computes
with them (cast to its compute dtype) and measured in float64; scale factors are taken as applied
(after the cast to the compute dtype, e.g. float32(1/3) > 1/3). Dense: exact largest singular value
(SVD). Conv: exact operator norm for circular padding and a guaranteed upper bound for zero
padding (see `conv_spectrum`); never plain power iteration. Every bound that involves arithmetic
in the compute dtype carries a round-off margin for that dtype (`rounding_margin`).
A network's bound is the product of its layers' bounds (activations included).

Bounds are looked up by layer class in a registry; `register_lipschitz_bound` adds a rule for a
layer class of your own. A layer without a rule raises TypeError (never a guess).
"""
from __future__ import annotations

import fractions
import functools
import hashlib
import math
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import keras
import ml_dtypes
import numpy as np
import tensorflow as tf
from keras.src.models.functional import Functional  # the class of every Functional model
from numpy.typing import ArrayLike, DTypeLike

from lipvae_tf import checks, conv_spectrum
from lipvae_tf import layers as ll

__all__ = [
    "ROUNDOFF_MARGIN", "ROUNDING_ULPS", "ACTIVATION_CONSTANTS", "register_lipschitz_bound",
    "unit_roundoff", "rounding_margin", "applied_value", "is_own_weight", "applied_kernel",
    "dense_norm", "conv_norm_bound", "activation_constant", "layer_lipschitz_bound",
    "network_lipschitz_bound", "product_rounded_up", "output_rounding_factor",
    "numpy_dtype", "scaled_bound", "chain_layers", "FLOAT32_TINY", "subnormal_part_norm",
    "overridden_computation", "computes_as", "rounds_its_input", "REFUSED_ACTIVATIONS",
]

# Relative margin covering float64 round-off of the SVD / FFT (about n * 1e-16 for n <= 1e5).
ROUNDOFF_MARGIN = 1e-10
# Allowance, in units of the compute dtype's unit round-off u (float32: 2^-24), for the rounding
# of one layer's elementwise steps after its linear map: the product by the applied factor, the
# bias, the activation, the cap's division. Each correctly rounded step is off by at most u
# relative; eight covers a layer's few steps with room. See `rounding_margin`.
ROUNDING_ULPS = 8

# Largest slope of each activation (sup |f'|).
ACTIVATION_CONSTANTS = {
    "linear": 1.0, "relu": 1.0, "relu6": 1.0, "leaky_relu": 1.0, "tanh": 1.0,
    "softplus": 1.0, "sigmoid": 0.25, "hard_sigmoid": 1.0 / 6.0,
    "silu": 1.1, "swish": 1.1,  # sup silu' = 1.0998...
    "gelu": 1.13,  # sup gelu' = 1.1289...
}

# Activations refused although sup |f'| is known, and why: their float32 values break the
# model of arithmetic the bounds rest on (each elementwise step correctly rounded, relative).
REFUSED_ACTIVATIONS = {
    "elu": "TensorFlow computes elu(x) as exp(x) - 1 below 0, not with expm1, so near 0 its "
           "float32 values are off by up to 2^-24 absolute, not relative: |elu(2x) - elu(x)| / "
           "|x| reaches 4 at x = -1.5e-8 and |elu(x) - elu(0)| / |x| reaches 2 (measured; an "
           "adversarial review, 2026-12-04), where its constant is 1",
}

LayerT = TypeVar("LayerT", bound=Callable[[keras.layers.Layer], float])
_RULES: dict[type, Callable[[keras.layers.Layer], float]] = {}


def register_lipschitz_bound(*layer_classes: type) -> Callable[[LayerT], LayerT]:
    """Decorator: `rule(layer) -> float` becomes the verified bound for these layer classes.

    The rule receives a built layer and must return an upper bound of its l2 Lipschitz constant
    as the layer computes (use `applied_kernel`, `applied_value` and `rounding_margin`). A rule
    also covers subclasses that compute as the registered class (`computes_as`: they override
    none of its methods but `__init__`, `get_config`, `from_config`, `__repr__`); a subclass
    that overrides `call` or anything `call` relies on (Keras' `convolution_op`, this package's
    `_convolve`, ...) computes something else and needs its own rule. A later registration for
    the same class replaces the earlier one.

    Example:
        @register_lipschitz_bound(MyScale)
        def _my_scale(layer):
            return abs(applied_value(layer.factor, layer.compute_dtype)) * (
                1 + rounding_margin(layer.compute_dtype))

    Args:
        *layer_classes: one or more subclasses of `keras.layers.Layer`.

    Returns:
        The decorator; it returns the rule unchanged.

    Raises:
        TypeError: if no class is given or one is not a Keras layer class.
    """
    if not layer_classes:
        raise TypeError("register_lipschitz_bound needs at least one layer class")
    for cls in layer_classes:
        if not (isinstance(cls, type) and issubclass(cls, keras.layers.Layer)):
            raise TypeError(
                f"register_lipschitz_bound expects keras.layers.Layer subclasses, got {cls!r}"
            )

    def decorator(rule: LayerT) -> LayerT:
        if not callable(rule):
            raise TypeError(f"a Lipschitz bound rule must be callable, got {rule!r}")
        for cls in layer_classes:
            _RULES[cls] = rule
        return rule

    return decorator


# Overriding these changes how an object is made, described, saved or built, not the map it
# computes (a bound is measured from the weights in use and the sizes the layer checks at call).
_HARMLESS_OVERRIDES = frozenset({
    "__init__", "__repr__", "__str__", "__eq__", "__hash__", "__init_subclass__", "get_config",
    "from_config", "build", "build_from_config", "get_build_config", "compute_output_spec",
    "save_own_variables", "load_own_variables",
})
# Keras puts these on layer and model instances (wrappers of the class's own build and
# quantize; the compiled loss, traced step functions and trackers of a model).
_KERAS_INSTANCE_ATTRIBUTES = frozenset({
    "build", "quantize", "loss", "_compile_loss", "_functional", "_loss_tracker",
    "predict_function", "train_function", "test_function", "make_predict_function",
})
_CLASS_DICT = type.__dict__["__dict__"]  # a class's own namespace, whatever its metaclass says


def _namespace(cls: type) -> Mapping[str, Any]:
    return _CLASS_DICT.__get__(cls)


def _is_code(name: str, value: Any) -> bool:
    """Methods, properties and other descriptors, and callables: what can compute. Plain data
    (a class's own `__firstlineno__`, `supports_masking`, Keras' export names) cannot, nor can
    the `__dict__` and `__weakref__` slots Python gives every class of its own."""
    if name in ("__dict__", "__weakref__") and type(value) is type(_CLASS_DICT):
        return False
    return callable(value) or hasattr(type(value), "__get__")


def overridden_computation(obj: Any, base: type) -> tuple[str, ...]:
    """The attributes with which `obj` (an instance of `base` or of a subclass) may compute
    something other than `base` does, sorted: every method, property or other descriptor that
    a class of `obj`'s type adds to `base`'s (wherever in the MRO it sits) under a name `base`
    has, every property it adds that may shadow an instance attribute `base` or the package
    reads (such as `kernel` or `lipschitz`: one with a setter or deleter, which can intercept
    base's own assignments, or one whose name appears in the code of `base`'s classes or of
    lipvae_tf, `_names_in_code`; a read-only property under a name no such code mentions, e.g.
    a summary for the user, is harmless), a metaclass of its own ("__class__": it may hide
    the class's namespace from lookups), and callables set on the instance under a name `base`
    has. Overrides of construction, description, saving and building (`__init__`,
    `get_config`, `build`, ...) do not count. A Keras weight-standardised Conv2D overrides
    only `convolution_op`, not `call`, and computes with another kernel: a bound derived for
    `base` (or a forward-error analysis of it) does not cover any of these. Nothing is cached:
    a class changed after a first check is checked as it is now.

    Raises:
        TypeError: if `obj` is not an instance of `base`.
    """
    if not isinstance(obj, base):
        raise TypeError(f"expected an instance of {base.__name__}, got {type(obj).__name__}")
    kind = type(obj)
    names = set()
    if type(kind) is not type(base):
        names.add("__class__")
    known = set().union(*(_namespace(cls) for cls in base.__mro__))
    for cls in kind.__mro__:
        if cls in base.__mro__:
            continue
        for name, value in _namespace(cls).items():
            if name in _HARMLESS_OVERRIDES or not _is_code(name, value):
                continue
            if name in known or (hasattr(type(value), "__set__") and _may_shadow(
                    name, value, base)):
                names.add(name)
    names.update(name for name, value in vars(obj).items()
                 if callable(value) and name not in _KERAS_INSTANCE_ATTRIBUTES and name in known)
    return tuple(sorted(names))


def _may_shadow(name: str, descriptor: Any, base: type) -> bool:
    """Whether a data descriptor a subclass adds may change what `base` or the package reads:
    anything but a read-only property whose name no code of `base`'s classes or of lipvae_tf
    mentions (base's __init__ cannot have assigned it: the assignment would raise)."""
    read_only = (isinstance(descriptor, property) and descriptor.fset is None
                 and descriptor.fdel is None)
    modules = frozenset(module for module in tuple(sys.modules)
                        if module.split(".")[0] == "lipvae_tf")
    return not read_only or name in _names_in_code(base, modules)


@functools.cache
def _names_in_code(base: type, modules: frozenset[str]) -> frozenset[str]:
    """Every attribute name (co_names) and identifier-like string constant (getattr by name)
    in the functions of `base`'s MRO and of the lipvae_tf `modules` (those imported now),
    nested code included: the names that code may read from an instance. Collected once per
    base class and set of imported modules."""
    codes, seen, names = [], set(), set()

    def add(value: Any) -> None:
        for item in (value.fget, value.fset, value.fdel) if isinstance(value, property) else (
                getattr(value, "__func__", value),):
            code = getattr(item, "__code__", None)
            if code is not None:
                codes.append(code)

    for cls in base.__mro__:
        for value in _namespace(cls).values():
            add(value)
    for module_name in modules:
        module = sys.modules[module_name]
        for value in list(vars(module).values()):
            if isinstance(value, type) and value.__module__ == module_name:
                for member in _namespace(value).values():
                    add(member)
            else:
                add(value)
    while codes:
        code = codes.pop()
        if code in seen:
            continue
        seen.add(code)
        names.update(code.co_names)
        for constant in code.co_consts:
            if isinstance(constant, str) and constant.isidentifier():
                names.add(constant)
            elif hasattr(constant, "co_names"):
                codes.append(constant)
    return frozenset(names)


def computes_as(obj: Any, base: type) -> bool:
    """True when `obj` is an instance of `base` that computes exactly as `base` does: it
    replaces none of `base`'s methods or attributes (`overridden_computation` is empty)."""
    return isinstance(obj, base) and not overridden_computation(obj, base)


def _rule_for(layer: keras.layers.Layer) -> Callable[[keras.layers.Layer], float]:
    kind = type(layer)
    for cls in kind.__mro__:
        rule = _RULES.get(cls)
        if rule is None:
            continue
        replaced = overridden_computation(layer, cls)
        if replaced:
            raise TypeError(
                f"no verified Lipschitz bound for layer {layer.name!r} of type {kind.__name__}: "
                f"it overrides {', '.join(replaced)} of "
                f"{cls.__name__}, whose bound does not apply; register one with "
                f"lipvae_tf.lipschitz.register_lipschitz_bound({kind.__name__})"
            )
        return rule
    raise TypeError(
        f"no verified Lipschitz bound for layer {layer.name!r} of type {kind.__name__}; "
        f"register one with lipvae_tf.lipschitz.register_lipschitz_bound({kind.__name__})"
    )


# ----- measurements ---------------------------------------------------------------------------

def unit_roundoff(dtype: DTypeLike | tf.DType) -> float:
    """u = eps / 2 of a floating dtype (float32: 2^-24): one correct rounding is off by <= u."""
    return float(ml_dtypes.finfo(numpy_dtype(dtype)).eps) / 2


def rounding_margin(dtype: DTypeLike | tf.DType) -> float:
    """Relative margin a bound carries for a layer computing in `dtype`.

    ROUNDOFF_MARGIN (float64 SVD/FFT round-off) plus ROUNDING_ULPS x u(dtype) for the layer's
    correctly rounded elementwise steps (float32: 4.8e-7). Constants are already taken as
    applied (`applied_value`, `applied_kernel`), so this margin only covers rounding. A long
    dot product's accumulation error (up to gamma_n sum_i |x_i w_i|, absolute) is not covered,
    even between x and 0 (docs/theory.md section 12); `lipvae_tf.forward_error` bounds it.
    """
    return ROUNDOFF_MARGIN + ROUNDING_ULPS * unit_roundoff(dtype)


def numpy_dtype(dtype: DTypeLike | tf.DType) -> np.dtype:
    """The NumPy dtype of a Keras dtype name or object (bfloat16 through TensorFlow's).

    Raises:
        TypeError: for None (Keras reads it as its default float type, which would pass a
            missing dtype off as float32) or anything that is not a dtype.
    """
    if dtype is None:
        raise TypeError("dtype must be a dtype (e.g. 'float32'), got None")
    name = keras.backend.standardize_dtype(dtype)
    if name == "bfloat16":
        return tf.bfloat16.as_numpy_dtype
    return np.dtype(name)


def applied_value(value: float, dtype: DTypeLike | tf.DType) -> float:
    """A Python scalar as a layer applies it: cast to `dtype` (e.g. float32(1/3)), as float64.

    Raises:
        TypeError: if `value` is not a real number (a string would reach TensorFlow's cast).
        ValueError: if it is not a scalar, is NaN or infinite, or rounds to infinity in
            `dtype` (the layer would apply inf).
    """
    array = checks.real_array("value", value)  # a Python or NumPy scalar, a 0-d array/tensor
    if array.ndim:
        raise ValueError(f"value must be a scalar, got shape {array.shape}")
    value = checks.finite_real("value", float(array))
    with np.errstate(over="ignore"):  # rounded as the cast rounds (TF's cast of 1e40 raised)
        if not np.isfinite(np.float64(value).astype(numpy_dtype(dtype))):
            raise ValueError(f"value {value} is beyond the largest finite {numpy_dtype(dtype)}: "
                             "a layer computing in that dtype would apply inf")
    applied = keras.ops.cast(value, dtype)
    # then to float64, exactly (NumPy cannot convert a bfloat16 tensor itself)
    return float(keras.ops.convert_to_numpy(keras.ops.cast(applied, "float64")))


def is_own_weight(layer: keras.layers.Layer, value: Any) -> bool:
    """Whether `value` is one of `layer.weights` itself (identity, not equal values): a tensor
    assigned over a weight is not, and graphs traced before it still compute with the weight."""
    return any(value is weight for weight in layer.weights)


def applied_kernel(layer: keras.layers.Layer, name: str = "kernel") -> np.ndarray:
    """The layer's weight `name` cast to the layer's compute dtype (what `call` multiplies by),
    as float64 (exact: every float16/bfloat16/float32 value is a float64).

    Raises:
        TypeError: when `layer.<name>` is not one of the layer's own weights (e.g. a tensor
            assigned over it): graphs traced before would keep computing with the weight, so a
            bound measured from the new value would not be the bound of what they compute.
        ValueError: naming the layer, when the weight holds NaN or Inf.
    """
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(f"layer must be a keras.layers.Layer, got {type(layer).__name__}")
    if not layer.built:
        raise ValueError(f"layer {layer.name!r} is not built, so it has no {name} yet: call it "
                         "on an input (or build it) first")
    if not hasattr(layer, name):
        raise ValueError(f"layer {layer.name!r} of type {type(layer).__name__} has no weight "
                         f"{name!r}")
    kernel = getattr(layer, name)
    if not is_own_weight(layer, kernel):
        raise TypeError(
            f"layer {layer.name!r}: its {name} is a {type(kernel).__name__}, not one of the "
            f"layer's weights, so graphs traced before (fit, predict, reconstruct) may still "
            f"compute with the weight it replaced; change a weight in place with "
            f"layer.{name}.assign(value) instead")
    value = keras.ops.convert_to_numpy(
        keras.ops.cast(keras.ops.convert_to_tensor(kernel), layer.compute_dtype)
    ).astype(np.float64)
    if not np.all(np.isfinite(value)):  # an SVD of it fails without naming the layer
        raise ValueError(f"layer {layer.name!r}: its {name} holds NaN or Inf values (a diverged "
                         "training?), so it has no Lipschitz bound")
    return value


# Norms already measured, by the exact bytes of the kernel they were measured on (and the
# conv's geometry): certifying with several methods, or a report, asked for the constants a dozen
# times, and each asked for an SVD of every kernel again (39 of a 59 s command). The key is a
# 128-bit digest of the float64 kernel, so a kernel that changed by one ulp is measured again.
_NORM_CACHE: OrderedDict[bytes, float] = OrderedDict()
_NORM_CACHE_SIZE = 256


def _measured(kernel: np.ndarray, geometry: tuple, measure: Callable[[], float]) -> float:
    """`measure()` for this float64 `kernel` and `geometry`, or the value it gave before."""
    digest = hashlib.blake2b(np.ascontiguousarray(kernel).tobytes(), digest_size=16)
    digest.update(repr((kernel.shape, geometry)).encode())
    key = digest.digest()
    if key in _NORM_CACHE:
        _NORM_CACHE.move_to_end(key)
        return _NORM_CACHE[key]
    value = float(measure())
    _NORM_CACHE[key] = value
    if len(_NORM_CACHE) > _NORM_CACHE_SIZE:
        _NORM_CACHE.popitem(last=False)
    return value


# float32's smallest normal number. TF's CPU kernels run with flush-to-zero and
# denormals-are-zero set: a subnormal result is written as 0 and a subnormal operand (a kernel
# entry, a bias, a pixel) is read as 0, so the graph may compute with a kernel whose subnormal
# entries are 0 (docs/theory.md section 12).
FLOAT32_TINY = float(np.finfo(np.float32).tiny)


def subnormal_part_norm(kernel: ArrayLike) -> float:
    """||K - flush(K)||_F, flush(K) the kernel with its float32-subnormal entries (0 < |k| <
    `FLOAT32_TINY`) set to 0, as a CPU with denormals-are-zero reads it; 0 for a kernel without
    such entries (every trained kernel so far). The operator norms below add it (dense) or
    sqrt(kh kw) times it (conv: the conv with a kernel D has norm <= sum over taps ||D_ij||_2
    <= sqrt(kh kw) ||D||_F), so they bound the map with K and the map with flush(K)."""
    kernel = np.asarray(kernel, dtype=np.float64)
    part = np.where(np.abs(kernel) < FLOAT32_TINY, kernel, 0.0)
    return float(np.linalg.norm(part.ravel())) * (1 + 1e-15) if np.any(part) else 0.0


def dense_norm(kernel: ArrayLike) -> float:
    """Largest singular value of a rank-2 kernel, in float64 (measured once per kernel value),
    plus `subnormal_part_norm` (the norm of the kernel a denormals-are-zero CPU multiplies by is
    <= that sum).

    Raises:
        TypeError / ValueError: naming `kernel`, unless it is a finite real matrix.
    """
    kernel = checks.finite_array("kernel", kernel, ndim=2)
    return _measured(kernel, ("dense",), lambda: np.linalg.norm(kernel, 2)
                     + subnormal_part_norm(kernel))


def conv_norm_bound(kernel: ArrayLike, input_hw: tuple[int, int], strides: tuple[int, int],
                    padding: str) -> float:
    """Operator norm of a conv with this (kh, kw, c_in, c_out) kernel on inputs of size input_hw.

    Exact for "circular" padding, a guaranteed upper bound for "same", "valid" and "causal"
    (any zero padding of at most k - 1 per axis is a restriction of the circular conv on a grid
    >= n + k - 1), plus sqrt(kh kw) `subnormal_part_norm` (the kernel with its subnormal entries
    read as 0). Measured once per kernel value and geometry.

    Raises:
        TypeError / ValueError: naming the argument, for a kernel that is not a finite real
            rank-4 array (NaN entries gave a bound of 0), an input size or stride that is not an
            int >= 1 or a pair of them, or a padding other than "same", "valid", "causal" or
            "circular".
    """
    kernel = checks.finite_array("kernel", kernel, ndim=4)
    input_hw = checks.int_pair("input_hw", input_hw)
    strides = checks.int_pair("strides", strides)
    if not isinstance(padding, str):
        raise TypeError(f"padding must be a str, got {type(padding).__name__}")
    padding = checks.one_of("padding", padding.lower(), (*conv_spectrum.PADDINGS, "causal"))
    padding = "valid" if padding == "causal" else padding
    grid = conv_spectrum.circular_grid(input_hw, kernel.shape[:2], strides, padding)
    taps = math.sqrt(kernel.shape[0] * kernel.shape[1])
    return _measured(kernel, ("conv", grid, tuple(strides)), lambda: conv_spectrum.operator_norm(
        tf.constant(kernel), grid, tuple(strides)) + taps * subnormal_part_norm(kernel))


@functools.cache  # built once: every Keras layer's bound asks
def _known_functions() -> dict[Callable, str]:
    """The functions whose constant is known, by identity: Keras' activations, and the
    TensorFlow and keras.ops functions that compute the same map with their defaults."""
    known = {keras.activations.get(name): name for name in ACTIVATION_CONSTANTS}
    ops = keras.ops
    known.update({
        tf.nn.relu: "relu", tf.nn.relu6: "relu6", tf.math.tanh: "tanh",
        tf.math.sigmoid: "sigmoid", tf.nn.softplus: "softplus", tf.nn.silu: "silu",
        tf.nn.leaky_relu: "leaky_relu",  # alpha 0.2
        ops.relu: "relu", ops.relu6: "relu6", ops.tanh: "tanh",
        ops.sigmoid: "sigmoid", ops.softplus: "softplus", ops.silu: "silu",
        ops.leaky_relu: "leaky_relu", ops.hard_sigmoid: "hard_sigmoid",
    })
    return known


def activation_constant(activation: str | Callable | None) -> float:
    """Lipschitz constant sup |f'| of a Keras activation: a name in ACTIVATION_CONSTANTS, or one
    of the functions that compute it (Keras' own, `keras.activations.get(name)`, and the same
    maps in `tf.nn` / `keras.ops` with their default arguments), recognised by identity.

    Raises:
        TypeError: for any other activation, including a function of the user's that carries a
            known name (a function named "relu" may compute 5 relu(x): the name proves nothing),
            and for one in REFUSED_ACTIVATIONS (by name, or Keras', tf.nn's and keras.ops'
            function), with the reason.
    """
    refused = _refused_activation(activation)
    if refused:
        raise TypeError(f"activation {refused!r} is refused: {REFUSED_ACTIVATIONS[refused]}; "
                        "use another activation, or register a rule for a layer that applies "
                        "it (`register_lipschitz_bound`)")
    if isinstance(activation, str):
        if activation not in ACTIVATION_CONSTANTS:
            raise TypeError(f"no Lipschitz constant known for activation {activation!r}")
        return ACTIVATION_CONSTANTS[activation]
    try:
        name = _known_functions().get(activation)
    except TypeError:  # unhashable
        name = None
    if name is None:
        raise TypeError(
            f"no Lipschitz constant known for activation {activation!r}: only Keras' own "
            f"activations ({', '.join(sorted(ACTIVATION_CONSTANTS))}) and the tf.nn / keras.ops "
            f"functions of those maps are known, by identity, not by name (register a rule "
            f"for a layer that applies your function, `register_lipschitz_bound`)")
    return ACTIVATION_CONSTANTS[name]


def _refused_activation(activation) -> str | None:
    """The REFUSED_ACTIVATIONS name of `activation` (a name, or Keras', tf.nn's or keras.ops'
    function of it), else None."""
    if isinstance(activation, str):
        return activation if activation in REFUSED_ACTIVATIONS else None
    for name in REFUSED_ACTIVATIONS:
        functions = (keras.activations.get(name), getattr(tf.nn, name, None),
                     getattr(keras.ops, name, None))
        if any(activation is function for function in functions if function is not None):
            return name
    return None


# ----- rules for this package's layers --------------------------------------------------------

@register_lipschitz_bound(ll.LipschitzDense)
def _lipschitz_dense(layer: ll.LipschitzDense) -> float:
    ll.check_compute_dtype(layer)  # refused at build; a policy set afterwards is refused here
    return scaled_bound(layer, dense_norm(applied_kernel(layer)))


@register_lipschitz_bound(ll.LipschitzConv2D)
def _lipschitz_conv(layer: ll.LipschitzConv2D) -> float:
    ll.check_compute_dtype(layer)
    norm = conv_norm_bound(applied_kernel(layer), layer.input_hw, layer.strides, layer.padding)
    return scaled_bound(layer, norm)


@register_lipschitz_bound(ll.LipschitzConv2DTranspose)
def _lipschitz_conv_transpose(layer: ll.LipschitzConv2DTranspose) -> float:
    ll.check_compute_dtype(layer)
    # The adjoint conv maps the output grid back to the input grid with the same kernel.
    norm = conv_norm_bound(applied_kernel(layer), layer.output_hw, layer.strides, layer.padding)
    return scaled_bound(layer, norm)


def scaled_bound(layer: keras.layers.Layer, norm: float) -> float:
    """The bound of a layer that multiplies its linear map (operator norm <= `norm`) by its
    factor `lipschitz`: the factor as the layer applies it, times `norm`, plus rounding.

    Raises:
        TypeError: for a layer without a `lipschitz` factor (the package's Lipschitz layers).
    """
    if not hasattr(layer, "lipschitz"):
        raise TypeError(f"layer {getattr(layer, 'name', layer)!r} of type "
                        f"{type(layer).__name__} has no lipschitz factor to scale by")
    norm = checks.non_negative_finite("norm", norm)
    dtype = layer.compute_dtype
    return applied_value(layer.lipschitz, dtype) * norm * (1 + rounding_margin(dtype))


@register_lipschitz_bound(ll.Scale)
def _scale(layer: ll.Scale) -> float:
    dtype = layer.compute_dtype
    return abs(applied_value(layer.factor, dtype)) * (1 + rounding_margin(dtype))


@register_lipschitz_bound(ll.StdCap, ll.Shift)
def _rounded_isometry(layer: keras.layers.Layer) -> float:
    """1 in exact arithmetic (a projection onto a ball; a translation), plus rounding."""
    return 1.0 + rounding_margin(layer.compute_dtype)


@register_lipschitz_bound(keras.layers.Dropout)
def _dropout(layer: keras.layers.Dropout) -> float:
    """The identity at inference (training=False), which is what certificates evaluate; a
    layer called with training=True in a Functional model drops and scales on every call."""
    if any(_training_on(node) for node in layer._inbound_nodes):
        raise ValueError(f"layer {layer.name!r} is called with training=True: it computes "
                         "dropout on every call (x 1 / (1 - rate) on the kept values), which "
                         "the bound of the inference-time identity does not cover")
    return _exact_isometry(layer)


@register_lipschitz_bound(
    keras.layers.InputLayer, keras.layers.Flatten, keras.layers.Reshape,
    keras.layers.Identity, ll.GroupSort, ll.MaxMin,
)
def _exact_isometry(layer: keras.layers.Layer) -> float:
    """Layers that only move or permute values (exact in every dtype): constant 1. Dropout is
    the identity at inference (training=False), which is what certificates evaluate; while
    training it scales the kept values by 1 / (1 - rate), which this bound does not cover."""
    return 1.0


# ----- rules for Keras layers -----------------------------------------------------------------

@register_lipschitz_bound(keras.layers.Activation)
def _keras_activation(layer: keras.layers.Activation) -> float:
    constant = activation_constant(layer.activation)
    if layer.activation is keras.activations.linear:
        return constant  # the identity: exact
    return constant * (1 + rounding_margin(layer.compute_dtype))


@register_lipschitz_bound(keras.layers.ReLU, keras.layers.LeakyReLU)
def _keras_relu(layer) -> float:
    """Keras' ReLU layer max(x, 0) capped at max_value, with slope negative_slope below its
    threshold, and LeakyReLU (slope negative_slope below 0): constant max(1, |slope|). A
    threshold t != 0 makes ReLU jump from negative_slope x 0 = 0 to t at x = t: no Lipschitz
    constant at all."""
    max_value = getattr(layer, "max_value", None)
    if max_value is not None and not math.isfinite(float(max_value)):
        raise ValueError(f"layer {layer.name!r}: max_value {max_value} is not a finite number "
                         "(NaN caps every output to NaN)")
    threshold = float(getattr(layer, "threshold", 0.0))
    if threshold != 0:
        raise ValueError(f"layer {layer.name!r}: ReLU with threshold {threshold} is "
                         "discontinuous at the threshold, so it has no Lipschitz constant")
    try:  # NaN, or beyond the dtype's range (max(1.0, nan) is 1.0: never pass it on)
        slope = abs(applied_value(layer.negative_slope, layer.compute_dtype))
    except ValueError:
        raise ValueError(f"layer {layer.name!r}: negative_slope {layer.negative_slope} as "
                         f"applied in {layer.compute_dtype} is not a finite number") from None
    if slope == 0:
        return 1.0  # max(x, 0) and min(., max_value): exact in every dtype
    return max(1.0, slope) * (1 + rounding_margin(layer.compute_dtype))


def _keras_checks(layer) -> None:
    """Keras features that make `layer.kernel` a tensor computed in the graph, not a weight."""
    if getattr(layer, "quantization_mode", None):
        raise TypeError(
            f"layer {layer.name!r} of type {type(layer).__name__} is quantized "
            f"({layer.quantization_mode}): no verified bound for quantized kernels"
        )
    if getattr(layer, "lora_enabled", False):
        # the graph computes kernel + (alpha / rank) A B in the compute dtype: a product and a
        # sum whose rounding no rule here bounds (and before this check the error said, wrongly,
        # that a tensor had been assigned over the kernel)
        raise TypeError(
            f"layer {layer.name!r} of type {type(layer).__name__} has LoRA enabled (rank "
            f"{layer.lora_rank}): its kernel is computed in the graph as kernel + "
            f"(lora_alpha / lora_rank) x lora_kernel_a @ lora_kernel_b, whose rounding has no "
            f"verified bound; certify a copy without LoRA whose kernel is assigned "
            f"layer.kernel.numpy()"
        )


@register_lipschitz_bound(keras.layers.Dense)
def _keras_dense(layer: keras.layers.Dense) -> float:
    _keras_checks(layer)
    dtype = layer.compute_dtype
    return dense_norm(applied_kernel(layer)) * activation_constant(layer.activation) * (
        1 + rounding_margin(dtype))


def _keras_spatial(layer, shape, what: str) -> tuple[int, ...]:
    spatial = tuple(shape[1:-1])
    if any(n is None for n in spatial):
        raise ValueError(
            f"layer {layer.name!r}: the operator norm of a convolution depends on its {what} "
            f"size, which is not fully known ({tuple(shape)})"
        )
    return tuple(int(n) for n in spatial)


def _keras_conv_input_shape(layer) -> tuple:
    """The input shape a Keras convolution is bounded for: that of its model's input. A Keras
    conv runs on any spatial size, and its norm depends on the size, so a layer shared by
    models of different input sizes has no single bound (LipschitzConv2D refuses other sizes
    at call; a plain Keras conv cannot, see `_keras_conv`)."""
    try:
        shapes = {tuple(node.input_tensors[0].shape) for node in layer._inbound_nodes}
        shapes.add(tuple(layer.input.shape))
    except (AttributeError, IndexError, ValueError) as error:
        raise ValueError(
            f"layer {layer.name!r}: the operator norm of a convolution depends on its input "
            f"size, which only a call in a model fixes (build() does not: the layer runs on "
            f"any size); call it in a model with a known input shape, e.g. keras.Sequential("
            f"[keras.Input(shape), layer])"
        ) from error
    if len({shape[1:] for shape in shapes}) > 1:
        raise ValueError(
            f"layer {layer.name!r} is called on inputs of several sizes "
            f"({', '.join(str(shape[1:]) for shape in sorted(shapes, key=str))}): the operator "
            "norm of a convolution depends on its input size, so no one bound covers them; "
            "give each model its own layer")
    return tuple(layer.input.shape)


@register_lipschitz_bound(
    keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    ll.EmptyBatchSafeConv2D, ll.EmptyBatchSafeConv2DTranspose,  # the same maps, empty batches aside
)
def _keras_conv(layer) -> float:
    """Keras Conv1D/Conv2D and their transposes (channels_last, undilated, ungrouped).

    A transposed conv has the norm of the conv it is the adjoint of: that conv runs on the
    transposed layer's output grid with the same kernel. 1-D layers are 2-D ones of height 1.
    The bound is for the input size of the model the layer is in (`_keras_conv_input_shape`):
    a model built by a first call and then run eagerly on another size computes a map this
    bound does not cover (Keras does not record such calls; LipschitzConv2D refuses them).
    """
    _keras_checks(layer)
    transposed = isinstance(layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose))
    if (layer.data_format != "channels_last" or max(layer.dilation_rate) != 1
            or getattr(layer, "groups", 1) != 1):
        raise TypeError(
            f"layer {layer.name!r} of type {type(layer).__name__}: only channels_last, "
            f"undilated, ungrouped convolutions have a verified bound here"
        )
    input_shape = _keras_conv_input_shape(layer)
    output_hw = _keras_spatial(layer, layer.compute_output_shape(input_shape), "output")
    input_hw = _keras_spatial(layer, input_shape, "input")
    hw = output_hw if transposed else input_hw
    kernel, strides = applied_kernel(layer), tuple(layer.strides)
    if kernel.ndim == 3:  # 1-D: height 1, as TF computes it
        kernel, strides = kernel[None], (1, *strides)
        hw, input_hw, output_hw = (1, *hw), (1, *input_hw), (1, *output_hw)
    if not transposed:
        # causal: Keras pads k - 1 zeros on the left and runs a "valid" convolution, which
        # then sees an input at least as long as the kernel
        run_hw = ((1, input_hw[1] + kernel.shape[1] - 1) if layer.padding == "causal"
                  else input_hw)
        ll.refuse_faulty_cpu_convolution(layer, run_hw, int(input_shape[-1]),
                                         kernel.shape[:2], strides, output_hw)
    bound = conv_norm_bound(kernel, hw, strides, layer.padding)
    return bound * activation_constant(layer.activation) * (
        1 + rounding_margin(layer.compute_dtype))


# ----- public entry points --------------------------------------------------------------------

def layer_lipschitz_bound(layer: keras.layers.Layer) -> float:
    """Verified upper bound of the l2 Lipschitz constant of one built layer.

    Looks the layer's class up in the registry (`register_lipschitz_bound`); a model is bounded
    as a chain (`network_lipschitz_bound`).

    Args:
        layer: a built Keras layer (or a chain-like model).

    Returns:
        The bound, as a float, for the layer as it computes (its compute dtype's kernel and
        factors, plus that dtype's round-off margin).

    Raises:
        TypeError: for a layer whose constant is not known (rather than guessing), naming its
            class; for a registered rule that returns something other than a real number.
        ValueError: for a layer that is not built, a convolution whose input size is
            unknown, a layer whose compute dtype is not float32 or float64 (Keras rounds its
            input to that dtype: `layers.check_compute_dtype`), or a registered rule that
            returns a negative or non-finite bound.
    """
    if isinstance(layer, keras.Model):
        return network_lipschitz_bound(layer)
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(f"layer must be a keras.layers.Layer, got {type(layer).__name__}")
    rule = _rule_for(layer)  # the TypeError for an unknown layer first
    # every layer, the package's and Keras' alike: in float16 / bfloat16 Keras casts the input
    # to the compute dtype, a rounding by up to 2^-8 relative that even a layer which only moves
    # values (Flatten, GroupSort: bound 1) does not undo, and float16 overflows at 65504 (an
    # adversarial review, 2026-12-04: GroupSort in bfloat16 bounded by 1 measured 1.0029)
    ll.check_compute_dtype(layer)
    try:
        value = rule(layer)
    except AttributeError:  # a rule reads weights (kernel, bias) that an unbuilt layer lacks
        if layer.built:
            raise
        raise ValueError(f"layer {layer.name!r} is not built: its bound is measured from its "
                         "weights; build it (call it on an input, or layer.build(input_shape)) "
                         "first") from None
    # a rule registered by a user returns anything: a bound is a real number >= 0, finite
    # (a negative one made a network's bound negative, NaN or inf an error naming nothing)
    rule_name = getattr(rule, "__qualname__", repr(rule))
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"the Lipschitz rule {rule_name} for layer {layer.name!r} "
                        f"({type(layer).__name__}) returned {type(value).__name__} {value!r}, "
                        "not a real number")
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"the Lipschitz rule {rule_name} for layer {layer.name!r} "
                         f"({type(layer).__name__}) returned {value}: a bound must be finite "
                         "and >= 0")
    if rounds_its_input(layer):  # one more correctly rounded step: one more margin
        value = product_rounded_up(value, 1 + rounding_margin(layer.compute_dtype))
    return value


def rounds_its_input(layer: keras.layers.Layer) -> bool:
    """Whether Keras rounds the layer's input when it casts it to the layer's compute dtype:
    some call of the layer in a Functional or Sequential graph takes a floating tensor of a
    finer dtype (float64 into a float32 layer). A layer without such graph calls (called
    eagerly, or given in a list) is taken to receive its compute dtype."""
    own = unit_roundoff(layer.compute_dtype)
    for node in getattr(layer, "_inbound_nodes", ()):  # private Keras API
        for tensor in node.input_tensors:
            dtype = keras.backend.standardize_dtype(tensor.dtype)
            if keras.backend.is_float_dtype(dtype) and unit_roundoff(dtype) < own:
                return True
    return False


def chain_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of a model that is a plain chain, in order.

    A built Sequential is walked in the Functional graph its `call` runs (`_functional`).

    Raises:
        TypeError: for a model that is not a Sequential or Functional chain of single-input
            layers, or whose class overrides what Sequential / Functional compute (a `call`
            of its own: its layers in order are then not the map it computes).
        ValueError: for a chain whose `keras.Input` has a floating dtype other than float32 or
            float64, or a layer called with `training` other than None or False.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    base = keras.Sequential if isinstance(model, keras.Sequential) else Functional
    if not isinstance(model, base):
        raise TypeError(f"model {model.name!r} of type {type(model).__name__} is subclassed: "
                        "bound its sub-networks (Sequential / Functional chains or lists of "
                        "layers) instead")
    replaced = overridden_computation(model, base)
    if replaced:
        raise TypeError(
            f"model {model.name!r} of type {type(model).__name__} overrides "
            f"{', '.join(replaced)} of {base.__name__}: its layers "
            "in order are not the map it computes, so their bounds do not bound it"
        )
    if isinstance(model, keras.Sequential):
        # once built, Sequential.call runs the Functional graph `_functional` (private Keras
        # API), which its `build` wires: walk that graph, not the list of layers (a subclass
        # whose build called each layer twice computed 9 x while bounded by 3; a review)
        functional = getattr(model, "_functional", None)
        if functional is None:
            return list(model.layers)
        if not isinstance(functional, Functional) or overridden_computation(
                functional, Functional):
            raise TypeError(f"model {model.name!r}: the graph it runs is not a plain Keras "
                            "Functional model, so its layers in order are not its map")
        model = functional
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise TypeError(f"model {model.name!r}: only single-input, single-output chains")
    input_dtype = keras.backend.standardize_dtype(model.inputs[0].dtype)
    if keras.backend.is_float_dtype(input_dtype) and input_dtype not in ll.CERTIFIED_DTYPES:
        # the model casts what it is given to its Input's dtype: a rounding by up to 2^-8
        # relative before the first layer (an adversarial review, 2026-12-04)
        raise ValueError(f"dtype: model {model.name!r} takes its input as {input_dtype} "
                         f"(keras.Input(dtype={input_dtype!r})) and rounds what it is given to "
                         f"it; bounds are certified for {ll.CERTIFIED_DTYPES} only")
    # follow the tensor from the input: each step is the one call in this model that takes it
    # (a layer shared within the chain is called once per step; one shared with another model,
    # or a nested model, has other calls too, which are not this model's nodes)
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    own = {id(node) for nodes in model._nodes_by_depth.values() for node in nodes}  # private
    chain, tensor = [], model.inputs[0]
    while tensor is not model.outputs[0] and len(chain) <= len(own):
        steps = [(layer, node) for layer in layers for node in layer._inbound_nodes
                 if id(node) in own and len(node.input_tensors) == 1
                 and node.input_tensors[0] is tensor]
        if len(steps) != 1 or len(steps[0][1].output_tensors) != 1:
            where = f"after {chain[-1].name!r}" if chain else "at its input"
            takers = ", ".join(sorted({layer.name for layer, _ in steps})) or "no layer"
            raise TypeError(
                f"model {model.name!r} is not a chain of layers {where}: the tensor there goes "
                f"to {takers} ({len(steps)} calls); bound its branches yourself and combine "
                "them")
        layer, node = steps[0]
        if _training_on(node):
            # e.g. Monte Carlo dropout: the bounds are of the inference-time maps
            raise ValueError(
                f"model {model.name!r} calls {layer.name!r} with training=True, so every call "
                "computes its training-time map (dropout on), which the bounds do not cover")
        chain.append(layer)
        tensor = node.output_tensors[0]
    if tensor is not model.outputs[0] or {id(layer) for layer in chain} != {
            id(layer) for layer in layers}:
        raise TypeError(f"model {model.name!r}: its output is not the end of its layer chain")
    return chain


def _training_on(node) -> bool:
    """Whether a graph call passes a `training` that is not None or False: True, and anything
    else Keras reads as true or cannot read before it runs (1, np.True_, a tensor). Only `is
    True` was refused, and Dropout called with training=1 was bounded by 1 while it doubled
    differences at rate 0.5 (an adversarial review, 2026-12-04)."""
    training = node.arguments.kwargs.get("training")
    if training is None or isinstance(training, (bool, np.bool_)):
        return bool(training)
    return True


def network_lipschitz_bound(model_or_layers: keras.Model | Iterable[keras.layers.Layer]) -> float:
    """Product of the layers' verified bounds for a chain (Sequential, chain-like Functional
    model, or a list of layers applied in order); nested chains are expanded.

    Args:
        model_or_layers: a Sequential or chain-like Functional model, or layers in order.

    Returns:
        The product of `layer_lipschitz_bound` over the chain, each multiplication rounded up
        (`product_rounded_up`); 1.0 for an empty chain (the identity).

    Raises:
        TypeError: for a subclassed or branching model, a model overriding what Sequential /
            Functional compute (`chain_layers`), or a layer without a known bound.
        ValueError: as `layer_lipschitz_bound` raises it, for a chain whose input is of a
            reduced-precision dtype, or a call with training on (`chain_layers`).
    """
    if isinstance(model_or_layers, keras.Model):
        model_or_layers = chain_layers(model_or_layers)
    elif isinstance(model_or_layers, keras.layers.Layer) or isinstance(
            model_or_layers, (str, bytes)) or not isinstance(model_or_layers, Iterable):
        raise TypeError("model_or_layers must be a Keras model or an iterable of layers, got "
                        f"{type(model_or_layers).__name__}"
                        + (" (bound one layer with layer_lipschitz_bound)"
                           if isinstance(model_or_layers, keras.layers.Layer) else ""))
    bound = 1.0
    for layer in model_or_layers:
        bound = product_rounded_up(bound, layer_lipschitz_bound(layer))
    return bound


def output_rounding_factor(model_or_layers: keras.Model | Iterable[keras.layers.Layer]
                           ) -> float:
    """prod (1 + `rounding_margin`) over the chain's layers that round (all but the exact
    isometries: Flatten, Reshape, GroupSort, ...), once more for each layer whose input
    Keras rounds to its compute dtype (`rounds_its_input`): the relative margin by which a value the
    chain computes in its compute dtype is taken as a bound of the exact map's value, the same
    margin its `network_lipschitz_bound` carries (docs/theory.md section 12; relative, so it
    shares that section's caveat about absolute rounding)."""
    if isinstance(model_or_layers, keras.Model):
        model_or_layers = chain_layers(model_or_layers)
    factor = 1.0
    for layer in model_or_layers:
        ll.check_compute_dtype(layer)
        rounding = 1 + rounding_margin(layer.compute_dtype)
        if _rule_for(layer) not in (_exact_isometry, _dropout):
            factor = product_rounded_up(factor, rounding)
        if rounds_its_input(layer):
            factor = product_rounded_up(factor, rounding)
    return factor


def product_rounded_up(a: float, b: float) -> float:
    """a x b for non-negative float64 a, b, never below the exact product: the rounded product
    (IEEE 754, within half an ulp), moved up one ulp when it is below the exact one.

    Raises:
        TypeError / ValueError: naming `a` or `b`, unless each is a finite number >= 0; a
            ValueError when the product overflows float64.
    """
    a, b = checks.non_negative_finite("a", a), checks.non_negative_finite("b", b)
    product = a * b
    if math.isinf(product):
        raise ValueError(f"the product {a} x {b} overflows float64")
    if fractions.Fraction(product) < fractions.Fraction(a) * fractions.Fraction(b):
        return math.nextafter(product, math.inf)
    return product
