"""The certificates of `lipvae_tf.bounds` as TensorFlow float64 graph code (SavedModel signatures).

A served model must certify inside its graph, without Python or NumPy, so every formula of
bounds.py is written again here with TF ops, operation by operation in the same order and with the
same safety rounding (closed forms rounded down by 64 ulps, noncentral chi-square terms rounded down
with the same error bounds, the same bisection rule and step count). Run eagerly, the closed forms
equal bounds.py's bit for bit. In a graph (a tf.function, a SavedModel, TF Serving) TF's optimiser
may reassociate a few float64 operations (e.g. x / c -> x * (1 / c)): a few ulps, well inside the
64-ulp rounding, except where a difference cancels: near the Markov and paper forms' threshold
(budget (1 - p) r^2 / M_g^2 close to 2 s^2) one ulp of the budget is a large part of the slack,
and the graph's radius can be 1.4x NumPy's, or positive where NumPy's is 0 (an adversarial
review, 2026-12-03); both stay below the exact root, the margins being relative to the budget.
The bisections differ by at most their 1e-12 bracket where TF's and NumPy's
log/exp (both accurate to a few ulps, different code) tip a comparison. `tests/test_export.py`
measures both on random settings (largest: 1.2e-13 relative; it allows 1e-9). The noncentral
chi-square certificate compares 1 - p with the last terms of two different lower bounds of the
CDF, which differ by about 1e-12: two adversarial reviews found the graph's radius above NumPy's
by up to 9.1e-13 relative at p = 0.999 (latent_dim 1, 2026-12-02), 7.1e-11 at p = 1 - 1e-6,
5.4e-8 at p = 1 - 1e-9 and 0.9 % at p = 1 - 1e-12 over 40 random settings (on an exported
default model: 2.2e-11, 2.1e-8 and 5.3e-5), every one sound (scipy's exact tail at the graph's
radius stays below 1 - p; both radii are below scipy's exact root). The summation windows of a
request are padded to its longest, and extra terms only raise a lower bound, so at such p a row's
radius can also depend on the other rows of its request (each value sound).

Cost: per bisection step (about 40) the noncentral chi-square certificate sums two windows of about
10 r / (gamma M_g) terms for each distinct (r, p) pair of a batch (padded to the longest). A
request usually holds one pair; one with many distinct large r costs time and memory in proportion.

Conventions: the Lipschitz constants, gamma and latent_dim are Python numbers frozen into the graph
(validated when the graph is built, with the errors of bounds.py); s, r and p are float64 tensors
that broadcast. The per-method functions check their Python-number constants when called (the
errors of bounds.checked: m_mu = 0 certified an infinite radius), and the tensor arguments whose
values are known when called (Python numbers, NumPy arrays, eager tensors) as bounds.py checks
them; in a graph being traced the values are unknown, and the functions assume valid tensors.
`radius()` is the serving entry point: a graph cannot raise on a request, so it returns NaN where
r <= 0, r is not finite, p is outside [1/2, 1), s is negative or not finite, or r, r / M_g or s
exceed the magnitude limit of `bounds.checked`.
"""
from __future__ import annotations

import contextvars
import math

import numpy as np
import tensorflow as tf

from lipvae_tf import _shared_numerics as numerics
from lipvae_tf import bounds, checks

__all__ = [
    "METHODS", "paper_markov_radius", "markov_radius", "inglot_log_tail", "chi2_radius",
    "ncx2_cdf_lower", "ncx2_radius", "chi2_quantile_upper", "capped_markov_radius",
    "capped_chi2_radius", "best_radius", "check_constants", "radius",
]

_U = numerics.UNIT_ROUNDOFF  # 2^-53
_LIMIT = numerics.MAGNITUDE_LIMIT
_FLOOR = numerics.MAGNITUDE_FLOOR
_F64 = tf.float64
METHODS = bounds.METHODS

# The arguments, result and errors that the per-method certificates share, written once and put
# into each docstring where it says <graph ...> (`_graph_docs`).
_GRAPH_DOCS = {
    "<graph certificate arguments>": (
        "m_mu: M_mu, the Lipschitz constant of the encoder mean: a Python (or NumPy 0-d) real\n"
        "    number > 0, frozen into the graph.\n"
        "m_sigma: M_sigma, the Lipschitz constant of the encoder std: a real number >= 0.\n"
        "m_g: M_g, the Lipschitz constant of the reconstruction g: a real number > 0.\n"
        "s: ||sigma(x)||_2, the std's l2 norm at x: float64 tensor (or a Python number, list or\n"
        "    NumPy array, converted to float64; a float32 or int tensor is cast), >= 0.\n"
        "r: the reconstruction tolerance, an l2 distance in pixel space: float64 tensor, > 0.\n"
        "p: the probability level: float64 tensor, in [1/2, 1)."),
    "<graph certified radius>": (
        "float64 tensor of the broadcast shape of s, r and p: the certified radius R, an l2 norm\n"
        "in pixel space (every ||delta||_2 < R keeps P(||f(x + delta) - f(x)||_2 <= r) >= p); 0\n"
        "where nothing is certified."),
    "<graph constant errors>": (
        "TypeError: for a constant that is a tensor, not a real number, or an array of more\n"
        "    than 0 dimensions.\n"
        "ValueError: for a constant that `bounds.checked` refuses (e.g. m_mu = 0)."),
    "<graph tensor errors>": (
        "ValueError: for tensor arguments (s, r, p, s_max) whose values are known when called\n"
        "    (Python numbers, NumPy arrays, eager tensors) and that bounds.py refuses: p outside\n"
        "    [1/2, 1), s < 0 or above a std_cap, s_max above s or below s / sqrt(latent_dim),\n"
        "    r / M_g outside [1e-60, 1e75], shapes that do not broadcast, ... In a graph being\n"
        "    traced the values are unknown (no in-graph asserts): `radius` maps invalid ones to\n"
        "    NaN.\n"
        "TypeError: for a tensor argument that is not real (bool, complex, string).\n"
        "InvalidArgumentError: (`tf.errors`, when the ops run) if traced tensor arguments do not\n"
        "    broadcast."),
}
_graph_docs = numerics.docstring_placeholders(_GRAPH_DOCS)


def _frozen(**constants) -> list[float]:
    """The constants as Python floats, with the errors of `bounds.checked` (a divisor M_mu or
    M_g of 0 gave an infinite radius). They are frozen into the graph, so tensors are refused.

    Raises:
        TypeError: for a tensor or a value that is not a real number.
        ValueError: for a value that `bounds.checked` refuses.
    """
    for name, value in constants.items():
        if value is None:  # bounds.py's ValueError for a missing std_cap / gamma
            raise ValueError(f"{name} is required here: a real number, frozen into the graph, "
                             "got None")
        if isinstance(value, (tf.Tensor, tf.Variable)):
            raise TypeError(f"{name} must be a Python number (frozen into the graph), got a "
                            f"{type(value).__name__}")
        if np.ndim(value) != 0:
            raise TypeError(f"{name} must be a real number (frozen into the graph), got an array "
                            f"of shape {np.shape(value)}")
    return [float(value) for value in bounds.checked(**constants)]


# set while `radius` runs the per-method certificates on its masked rows (invalid ones replaced
# by harmless stand-ins, answered NaN): the values there are the graph's, not the caller's
_VALUES_MASKED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "lipvae_tf_graph_bounds_values_masked", default=False)


def _checked_now(**values) -> None:
    """The errors of `bounds.checked` for the tensor arguments whose values exist now (Python
    numbers, NumPy arrays, eager tensors), so that a direct call refuses what bounds.py refuses
    (ValueError naming the argument); None is skipped. Symbolic tensors (a graph being traced)
    have no values yet: a graph cannot raise on a request, and `radius`, the serving entry
    point, gives NaN for their invalid elements instead."""
    known = {name: _known(value) for name, value in values.items()}
    known = {name: value for name, value in known.items() if value is not None}
    if known:
        bounds.checked(**known)


def _known(value) -> np.ndarray | None:
    """A tensor argument's values as a float64 array, or None when there are none to check: None,
    a symbolic tensor, any tensor or variable while a graph is traced (a tf.Variable there is
    not symbolic, but has no values to read), or every argument while `radius` dispatches the
    rows it has masked."""
    if value is None or _VALUES_MASKED.get() or tf.is_symbolic_tensor(value):
        return None
    if isinstance(value, (tf.Tensor, tf.Variable)) and not tf.executing_eagerly():
        return None
    return np.asarray(value.numpy() if isinstance(value, (tf.Tensor, tf.Variable)) else value,
                      np.float64)


def _checked_std_now(s, std_cap: float | None, s_max, latent_dim: int) -> None:
    """`bounds.check_std_statistics` for known s and s_max (after `_checked_now`): s above the
    cap, s_max above s or below s / sqrt(latent_dim)."""
    s = _known(s)
    if s is not None:
        bounds.check_std_statistics(s, std_cap=std_cap, s_max=_known(s_max),
                                    latent_dim=latent_dim)


def _t(value) -> tf.Tensor:
    """`value` as a float64 tensor: a tensor of another real dtype is cast (exactly: float16,
    float32 and ints up to 2^53 are float64 numbers), anything else converted."""
    if isinstance(value, (tf.Tensor, tf.Variable)) and value.dtype != _F64:
        if not (value.dtype.is_floating or value.dtype.is_integer):
            raise TypeError(f"the certificate's tensors must be real, got a {value.dtype.name} "
                            "tensor")
        return tf.cast(value, _F64)
    return tf.convert_to_tensor(value, _F64)


def _broadcast(*values) -> list[tf.Tensor]:
    """The values as float64 tensors broadcast to their common shape."""
    tensors = [_t(v) for v in values]
    shape = tf.shape(tensors[0])
    for tensor in tensors[1:]:
        shape = tf.broadcast_dynamic_shape(shape, tf.shape(tensor))
    return [tf.broadcast_to(tensor, shape) for tensor in tensors]


def _budget(m_g: float, r, p):
    """(1 - p) r^2 / M_g^2 (bounds._budget)."""
    return (1 - p) * tf.square(r) / (m_g * m_g)


@_graph_docs
def paper_markov_radius(m_mu: float, m_sigma: float, m_g: float, s, r, p) -> tf.Tensor:
    """bounds.paper_markov_radius: the published closed form R1, rounded down by 64 ulps.

    R1 = (sqrt(A (1 - p) r^2 / M_g^2 - 4 M_mu^2 s^2) - 2 M_sigma s) / A, A = M_mu^2 + M_sigma^2
    (Barrett et al. 2022, section 3, with r^2/2 replaced by (1 - p) r^2; docs/theory.md
    section 1), computed rationalised and rounded down as bounds.paper_markov_radius.

    Args:
        <graph certificate arguments>

    Returns:
        <graph certified radius>

    Raises:
        <graph constant errors>
        <graph tensor errors>
    """
    m_mu, m_sigma, m_g = _frozen(m_mu=m_mu, m_sigma=m_sigma, m_g=m_g)
    _checked_now(s=s, r=r, p=p, m_g=m_g)
    s, r, p = _t(s), _t(r), _t(p)
    a = m_mu * m_mu + m_sigma * m_sigma
    budget = _budget(m_g, r, p)
    # bounds.paper_markov_radius: the rationalised root, rounded down
    slack = budget * (1 - 8 * _U) - 4 * tf.square(s) * (1 + 8 * _U)
    inside = a * budget * (1 + 8 * _U) - 4 * (m_mu * m_mu) * tf.square(s) * (1 - 8 * _U)
    radius = tf.maximum(slack, 0.0) / (tf.sqrt(tf.maximum(inside, 0.0)) + 2 * m_sigma * s) * (
        1 - 64 * _U)
    return tf.where(slack > 0, radius, tf.zeros_like(radius))  # 0/0 where slack <= 0: masked


@_graph_docs
def markov_radius(m_mu: float, m_sigma: float, m_g: float, s, r, p) -> tf.Tensor:
    """bounds.markov_radius: largest d with M_mu^2 d^2 + (s + M_sigma d)^2 + s^2 <= budget.

    budget = (1 - p) r^2 / M_g^2 (Markov's inequality on the exact second moment of z' - z;
    docs/theory.md section 1). Closed form, the positive root in rationalised form, rounded down
    by 64 ulps.

    Args:
        <graph certificate arguments>

    Returns:
        <graph certified radius>

    Raises:
        <graph constant errors>
        <graph tensor errors>
    """
    m_mu, m_sigma, m_g = _frozen(m_mu=m_mu, m_sigma=m_sigma, m_g=m_g)
    _checked_now(s=s, r=r, p=p, m_g=m_g)
    s, r, p = _t(s), _t(r), _t(p)
    a = m_mu * m_mu + m_sigma * m_sigma
    slack = _budget(m_g, r, p) * (1 - 8 * _U) - 2 * tf.square(s) * (1 + 8 * _U)
    positive = tf.maximum(slack, 0.0)
    discriminant = tf.square(m_sigma * s) + a * positive
    radius = positive / (tf.sqrt(discriminant) + m_sigma * s) * (1 - 64 * _U)
    return tf.where(slack > 0, radius, tf.zeros_like(radius))  # 0/0 where slack <= 0: masked


def inglot_log_tail(u, m: int) -> tf.Tensor:
    """bounds.inglot_log_tail: log of Inglot's bound on P(chi2_m >= u) (+inf for u <= m - 2);
    m an int >= 2, as there (TypeError / ValueError naming m).

    The bound is C_m u^(m/2) e^(-u/2) / (u - m + 2), C_m = pi^(-1/2) e^(m/2) m^(-(m-1)/2)
    (Inglot 2010; docs/theory.md section 2).

    Args:
        u: float64 tensor (or a Python number, list or NumPy array) of chi-square thresholds,
            any shape. +inf gives -inf; NaN and u <= m - 2 give +inf.
        m: the degrees of freedom (the latent dimension), a Python int >= 2.

    Returns:
        float64 tensor of u's shape: the natural log of the bound.

    Raises:
        TypeError: if m is not an int (a float or a bool).
        ValueError: if m < 2.
        TypeError: for a u that is a tensor but not real (float32 and int tensors are cast).
    """
    m = checks.positive_int("m", m, minimum=2, maximum=numerics.MAX_DEGREES)
    u = _t(u)
    log_c = -0.5 * math.log(math.pi) + 0.5 * (m - (m - 1) * math.log(m))
    valid = u > m - 2
    safe_u = tf.where(valid & tf.math.is_finite(u), u, tf.fill(tf.shape(u), _t(float(m))))
    value = log_c + 0.5 * m * tf.math.log(safe_u) - 0.5 * safe_u - tf.math.log(safe_u - m + 2)
    inf = tf.fill(tf.shape(u), _t(math.inf))
    return tf.where(valid, tf.where(tf.math.is_inf(u), -inf, value), inf)


def _chi2_u(d, m_mu, m_sigma, m_g, s, r, gamma):
    reach = tf.maximum(r / m_g * (1 - 4 * _U) - m_mu * d * (1 + 4 * _U), 0.0)  # bounds._chi2_u
    if gamma is not None:
        return tf.square(reach) / (2 * (gamma * gamma))
    return tf.square(reach) / tf.square(m_sigma * d + 2 * s)  # u = inf where there is no noise


def _chi2(m_mu, m_sigma, m_g, s, r, p, latent_dim, gamma, ignore=None) -> tf.Tensor:
    """chi2_radius; rows where `ignore` is True do not delay the stopping rule (result 0 there)."""
    s, r, p = _broadcast(s, r, p)
    shape = tf.shape(s)
    ignore = tf.zeros(shape, tf.bool) if ignore is None else tf.broadcast_to(ignore, shape)
    log_level = tf.math.log1p(-p)

    def certified(d):
        u = _chi2_u(d, m_mu, m_sigma, m_g, s, r, gamma)
        return (u > latent_dim - 2) & (inglot_log_tail(u, latent_dim) <= log_level)

    def body(step, lo, hi, done):
        mid = 0.5 * (lo + hi)
        good = certified(mid)
        lo, hi = tf.where(good, mid, lo), tf.where(good, hi, mid)
        done = tf.reduce_all((hi - lo <= 1e-12 * hi) | ignore)
        return step + 1, lo, hi, done

    lo = tf.zeros_like(s)  # stays 0 where nothing is certified
    hi = r / (m_g * m_mu)  # u(hi) = 0: never certified
    _, lo, _, _ = tf.while_loop(
        lambda step, lo, hi, done: (step < bounds.BISECTION_STEPS) & tf.logical_not(done),
        body, (tf.constant(0), lo, hi, tf.constant(False)),
    )
    return tf.where(ignore, tf.zeros_like(lo), lo)


@_graph_docs
def chi2_radius(m_mu: float, m_sigma: float, m_g: float, s, r, p, *, latent_dim: int,
                gamma: float | None = None) -> tf.Tensor:
    """bounds.chi2_radius: Inglot chi-square certificate by bisection (same steps, same stop rule:
    every element is halved until all brackets are within 1e-12 relative, at most 200 times).

    d is certified when u(d) > m - 2 and Inglot's tail bound at u(d) is <= 1 - p, with
    u(d) = (r/M_g - M_mu d)^2 / (M_sigma d + 2 s)^2 (learned std) or (r/M_g - M_mu d)^2 /
    (2 gamma^2) (fixed std). Barrett et al. 2022, section 3 (R2); docs/theory.md section 2.
    The bisection is a `tf.while_loop`, so it runs in a graph too.

    Args:
        <graph certificate arguments>
        latent_dim: m, the latent dimension, a Python int >= 2.
        gamma: None for a learned std, or the fixed posterior std gamma, a real number > 0
            (m_sigma and s are then unused by the formula, but still broadcast).

    Returns:
        <graph certified radius>

    Raises:
        TypeError: if latent_dim is not an int, or a constant (gamma included) is a tensor,
            not a real number, or an array of more than 0 dimensions.
        ValueError: if latent_dim < 2, or for a constant that `bounds.checked` refuses.
        <graph tensor errors>
    """
    latent_dim = checks.positive_int("latent_dim", latent_dim, minimum=2,
                                     maximum=numerics.MAX_DEGREES)
    m_mu, m_sigma, m_g = _frozen(m_mu=m_mu, m_sigma=m_sigma, m_g=m_g)
    if gamma is not None:
        (gamma,) = _frozen(gamma=gamma)
    _checked_now(s=s, r=r, p=p, m_g=m_g)
    return _chi2(m_mu, m_sigma, m_g, s, r, p, latent_dim, gamma)


# ---- exact noncentral chi-square certificate (fixed std) ----------------------------------------

def _log_poisson(n, mu):
    """bounds._log_poisson: log Poisson(n; mu) for real n >= 0 and a bound on its error."""
    n, mu = _broadcast(n, mu)
    z = n + 1.0
    shift = tf.math.ceil(tf.maximum(numerics.STIRLING_FROM - z, 0.0))
    big = z + shift
    product = tf.ones_like(z)
    for k in range(numerics.STIRLING_FROM):
        product *= tf.where(k < shift, z + k, tf.ones_like(z))
    log_product = tf.where(shift > 0, tf.math.log(product), tf.zeros_like(z))
    inverse = 1.0 / big
    inverse_squared = inverse * inverse
    series = tf.fill(tf.shape(big), _t(numerics.STIRLING[-1]))
    for coefficient in reversed(numerics.STIRLING[:-1]):
        series = series * inverse_squared + coefficient
    series *= inverse
    log_big = tf.math.log(big)
    head = tf.where(n == 0, tf.zeros_like(n), n * tf.math.log(mu / big))
    value = (head + (big - mu) - (shift + 0.5) * log_big - numerics.HALF_LOG_2PI - series
             + log_product)
    magnitude = n + tf.abs(head) + tf.abs(big - mu) + (shift + 1) * log_big + log_product
    error = (16 * _U * (magnitude + tf.abs(value) + 4)
             + numerics.STIRLING_NEXT * tf.pow(inverse, 15.0))
    at_zero = mu == 0  # Poisson(0) is a point mass at n = 0
    minus_inf = tf.fill(tf.shape(n), _t(-math.inf))
    value = tf.where(at_zero, tf.where(n == 0, tf.zeros_like(n), minus_inf), value)
    return value, tf.where(at_zero, tf.zeros_like(error), error)


def _window(mu):
    """bounds._window: Poisson(mu) has mass <= e^-46 per side outside [lo, hi]."""
    tail = numerics.POISSON_TAIL
    lo = tf.maximum(tf.math.ceil(mu - tf.sqrt(2 * tail * mu)), 0.0)
    hi = tf.math.floor(mu + tail / 3 + tf.sqrt(tail**2 / 9 + 2 * tail * mu))
    return lo, hi


def ncx2_cdf_lower(x, m: int, lam) -> tf.Tensor:
    """bounds.ncx2_cdf_lower for finite x >= 0 and lam >= 0 (1-D tensors of one length) and an
    integer m: a guaranteed lower bound on P(chi2'_m(lam) <= x), the same sums rounded the same way
    (one padded block instead of NumPy's blocks of similar length: padding adds exact zeros).

    Poisson mixture of central chi-square CDFs (Johnson, Kotz & Balakrishnan 1995, chapter 29),
    rearranged with DLMF 8.7.1 into one sum of positive terms, every term rounded down; beyond
    `MAX_TERMS` (100 000) terms, Cantelli's bound (docs/theory.md section 3). Unlike the NumPy
    twin it does not take +inf, NaN or negative x / lam, and does not broadcast.

    Args:
        x: 1-D float64 tensor (or list / NumPy array) of CDF arguments, finite and >= 0.
        m: the degrees of freedom, a Python int >= 1.
        lam: 1-D float64 tensor of noncentralities, finite and >= 0, of x's length.

    Returns:
        1-D float64 tensor of x's length, in [0, 1].

    Raises:
        TypeError: if m is not an int, or x or lam is a tensor that is not real.
        ValueError: if m < 1, x or lam is not 1-D (a scalar included), or x or lam, known
            when called, holds a value that is not finite or below 0 (in a graph being
            traced they are unknown and not checked).
        InvalidArgumentError: (`tf.errors`, when the ops run) if x and lam differ in length.
    """
    m = checks.positive_int("m", m, maximum=numerics.MAX_DEGREES)
    for name, value in (("x", x), ("lam", lam)):
        known = _known(value)
        if known is not None and not np.all(np.isfinite(known) & (known >= 0)):
            raise ValueError(f"{name} must be finite and >= 0, got {known}")
    return _ncx2_cdf_lower(x, m, lam)


def _ncx2_cdf_lower(x, m: int, lam) -> tf.Tensor:
    """`ncx2_cdf_lower` without the value checks (the certificates' own calls: rows masked
    afterwards may hold any value)."""
    x, lam = _t(x), _t(lam)
    if x.shape.rank != 1 or lam.shape.rank != 1:
        raise ValueError(f"x and lam must be 1-D tensors of one length, got shapes "
                         f"{x.shape} and {lam.shape} (bounds.ncx2_cdf_lower takes any shape)")
    y, mu, half_m = x / 2, lam / 2, m / 2
    y_lo, y_hi = _window(y)
    j_lo, j_hi = _window(mu)
    i_lo = tf.maximum(tf.maximum(tf.math.ceil(y_lo - half_m), 0.0), j_lo)
    i_hi = tf.math.floor(y_hi - half_m)
    j_hi = tf.minimum(j_hi, i_hi)
    length = tf.maximum(i_hi - i_lo, j_hi - j_lo) + 1
    exact = length <= numerics.MAX_TERMS

    # Cantelli bound where the sums would be too long
    mean, variance = m + lam, 2 * (m + 2 * lam)
    t = tf.maximum(x - mean - 8 * _U * (x + mean), 0.0)
    rough = tf.square(t) / (variance + tf.square(t)) * (1 - 64 * _U)

    zero = tf.zeros_like(x)
    count_i = tf.where(exact, i_hi - i_lo + 1, zero)
    count_j = tf.where(exact, j_hi - j_lo + 1, zero)
    one = tf.ones([1], _F64)  # the width of an empty batch
    width_i = tf.cast(tf.reduce_max(tf.concat([count_i, one], 0)), tf.int32)
    width_j = tf.cast(tf.reduce_max(tf.concat([count_j, one], 0)), tf.int32)
    j = j_lo[:, None] + tf.range(width_j, dtype=_F64)[None, :]
    log_w, error_w = _log_poisson(j, mu[:, None])
    weights = tf.where(j <= j_hi[:, None], tf.exp(log_w - error_w), tf.zeros_like(j))
    cumulative = tf.cumsum(weights, axis=1)
    i = i_lo[:, None] + tf.range(width_i, dtype=_F64)[None, :]
    log_pi, error_pi = _log_poisson(half_m + i, y[:, None])
    masses = tf.where(i <= i_hi[:, None], tf.exp(log_pi - error_pi), tf.zeros_like(i))
    column = tf.clip_by_value(tf.minimum(i, j_hi[:, None]) - j_lo[:, None], 0.0,
                              tf.cast(width_j - 1, _F64))
    picked = tf.gather(cumulative, tf.cast(column, tf.int32), axis=1, batch_dims=1)
    total = tf.reduce_sum(masses * picked, axis=1)
    total = total * (1 - 8 * _U * (count_i + count_j + 16))
    summed = tf.where((count_i > 0) & (count_j > 0), total, zero)
    return tf.clip_by_value(tf.where(exact, summed, rough), 0.0, 1.0)


def _ncx2_rows(m_mu, m_g, r, p, latent_dim, gamma) -> tf.Tensor:
    """bounds.ncx2_radius on 1-D r and p (each row bisected until its own bracket is closed)."""
    x = tf.square(r) / (2 * (gamma * gamma) * (m_g * m_g)) * (1 - 8 * _U)
    scale = (m_mu * m_mu) / (2 * (gamma * gamma)) * (1 + 8 * _U)
    finite = tf.math.is_finite(x)
    x = tf.where(finite, x, tf.zeros_like(x))  # r / (gamma M_g) > ~1e154 overflows: reported as 0
    lo = tf.zeros_like(x)
    hi = r / (m_g * m_mu)
    active = finite & (_ncx2_cdf_lower(x, latent_dim, tf.zeros_like(x)) >= p)

    def body(step, lo, hi, active):
        rows = tf.where(active)  # only the open brackets are evaluated (their sums are padded
        lo_a, hi_a = tf.gather_nd(lo, rows), tf.gather_nd(hi, rows)  # to the longest one)
        mid = 0.5 * (lo_a + hi_a)
        lam = scale * tf.square(mid) * (1 + 4 * _U)  # rounded up
        good = _ncx2_cdf_lower(tf.gather_nd(x, rows), latent_dim, lam) >= tf.gather_nd(p, rows)
        lo = tf.tensor_scatter_nd_update(lo, rows, tf.where(good, mid, lo_a))
        hi = tf.tensor_scatter_nd_update(hi, rows, tf.where(good, hi_a, mid))
        return step + 1, lo, hi, active & (hi - lo > 1e-12 * hi)

    _, lo, _, _ = tf.while_loop(
        lambda step, lo, hi, active: (step < bounds.BISECTION_STEPS) & tf.reduce_any(active),
        body, (tf.constant(0), lo, hi, active),
    )
    return lo


@_graph_docs
def ncx2_radius(m_mu: float, m_g: float, r, p, *, latent_dim: int, gamma: float) -> tf.Tensor:
    """bounds.ncx2_radius: exact worst case for a fixed std gamma, by bisection per element.

    The radius depends only on (r, p), so it is computed once per distinct (r, p) pair of the
    batch (a request usually has one) and gathered back: same values, far less work.

    d is certified when ncx2_cdf_lower(r^2 / (2 gamma^2 M_g^2), m, M_mu^2 d^2 / (2 gamma^2))
    >= p (the exact worst case for sigma = gamma * 1; docs/theory.md section 3).

    Args:
        m_mu: M_mu, a Python real number > 0 (frozen into the graph).
        m_g: M_g, a Python real number > 0.
        r: the reconstruction tolerance, an l2 distance in pixel space: float64 tensor, > 0.
        p: the probability level: float64 tensor, in [1/2, 1).
        latent_dim: m, a Python int >= 1.
        gamma: the fixed posterior std, a Python real number > 0 (required).

    Returns:
        float64 tensor of the broadcast shape of r and p: the certified radius R, an l2 norm in
        pixel space; 0 where even d = 0 is not certified (or r / (gamma M_g) overflows).

    Raises:
        TypeError: if latent_dim is not an int, or a constant is a tensor, not a real number,
            or an array of more than 0 dimensions.
        ValueError: if latent_dim < 1, gamma is None, or a constant that `bounds.checked`
            refuses.
        ValueError: for r or p whose values are known when called (Python numbers, NumPy
            arrays, eager tensors) and that `bounds.checked` refuses, as bounds.py does (p
            outside [1/2, 1), r <= 0, r / M_g outside [1e-60, 1e75], ...). In a graph
            being traced the values are unknown (no in-graph asserts): `radius` maps
            invalid ones to NaN.
        InvalidArgumentError: (`tf.errors`, raised by the op when run) if r and p do not
            broadcast. Tensors of another real dtype (float32, ints) are cast to float64;
            a bool, complex or string tensor is a TypeError.
    """
    latent_dim = checks.positive_int("latent_dim", latent_dim, maximum=numerics.MAX_DEGREES)
    m_mu, m_g, gamma = _frozen(m_mu=m_mu, m_g=m_g, gamma=gamma)
    _checked_now(r=r, p=p, m_g=m_g)
    r, p = _broadcast(r, p)
    shape = tf.shape(r)
    r, p = tf.reshape(r, [-1]), tf.reshape(p, [-1])
    pairs = tf.stack([tf.bitcast(r, tf.int64), tf.bitcast(p, tf.int64)], axis=1)
    unique, index = tf.raw_ops.UniqueV2(x=pairs, axis=[0], out_idx=tf.int32)
    values = tf.bitcast(unique, _F64)
    radii = _ncx2_rows(m_mu, m_g, values[:, 0], values[:, 1], latent_dim, gamma)
    return tf.reshape(tf.gather(radii, index), shape)


# ---- certificates that use the std cap (bounds.capped_markov_radius, capped_chi2_radius) ---------

def chi2_quantile_upper(latent_dim: int, p) -> tf.Tensor:
    """bounds.chi2_quantile_upper for a float64 tensor p: the same bracket and bisection, run
    once per distinct p of the batch; latent_dim an int >= 1 (TypeError / ValueError naming
    it). Both are sound, and agree to the last bits wherever the CDF's lower bound verifies p
    near the quantile; for p within about 1e-11 of 1, where that bound's own round-off
    (about 1e-13, differently rounded by NumPy's and TF's log/exp) is no longer small against
    1 - p, the bisections stop at different points, up to 1e-5 relative apart (a review,
    2026-12-03: 1.0e-5 at m = 2, p = 1 - 1e-12).

    q is a verified upper bound of the p-quantile of chi2_m: P(chi2_m <= q) >= p, bisected on
    `ncx2_cdf_lower(q, m, 0)` from the smaller of Cantelli's and Laurent & Massart's (2000,
    Lemma 1) bounds (docs/theory.md section 9.2).

    Args:
        latent_dim: m, the degrees of freedom, a Python int >= 1.
        p: float64 tensor (or a Python number, list or NumPy array) of probability levels in
            [1/2, 1), any shape.

    Returns:
        float64 tensor of p's shape: q for each p.

    Raises:
        TypeError: if latent_dim is not an int, or p is a tensor that is not real.
        ValueError: if latent_dim < 1, or p, known when called, is not in [1/2, 1) (in a
            graph being traced it is unknown and not checked; p = 1 would give +inf).
    """
    latent_dim = checks.positive_int("latent_dim", latent_dim, maximum=numerics.MAX_DEGREES)
    _checked_now(p=p)
    return _chi2_quantile_upper(latent_dim, p)


def _chi2_quantile_upper(latent_dim: int, p) -> tf.Tensor:
    """`chi2_quantile_upper` for a checked latent_dim and p in [1/2, 1)."""
    p = _t(p)
    shape = tf.shape(p)
    unique, index = tf.unique(tf.reshape(p, [-1]))
    # bounds._quantile_bracket: the smaller of Cantelli's and Laurent & Massart's proven ends
    cantelli = (latent_dim + tf.sqrt(2 * latent_dim * unique / (1 - unique))) * (1 + 16 * _U)
    t = -tf.math.log(1 - unique) * (1 + 8 * _U)  # rounded up
    laurent_massart = (latent_dim + 2 * tf.sqrt(latent_dim * t) + 2 * t) * (1 + 16 * _U)
    hi = tf.minimum(cantelli, laurent_massart)
    _, hi = _bisect(lambda q: _ncx2_cdf_lower(q, latent_dim, tf.zeros_like(q)) < unique,
                    tf.zeros_like(hi), hi, rtol=1e-15)
    return tf.reshape(tf.gather(hi, index), shape)


def _bisect(moves_lo, lo, hi, rtol: float = 1e-12):
    """bounds._bisect in the graph: lo moves to the midpoints where `moves_lo` holds, hi to the
    others, until every bracket is within rtol relative (at most BISECTION_STEPS halvings)."""
    def body(step, lo, hi):
        mid = 0.5 * (lo + hi)
        good = moves_lo(mid)
        return step + 1, tf.where(good, mid, lo), tf.where(good, hi, mid)

    _, lo, hi = tf.while_loop(
        lambda step, lo, hi: (step < bounds.BISECTION_STEPS)
        & tf.reduce_any(hi - lo > rtol * hi),
        body, (tf.constant(0), lo, hi))
    return lo, hi


def _triangle_radius(m_mu, m_sigma, s, reach, factor, base, std_cap):
    """bounds._triangle_radius: largest d with M_mu d + sqrt(factor (min(s + M_sigma d, S)^2
    + base)) <= reach (closed-form cap branch, bisected M_sigma branch), rounded the same way;
    std_cap None: the M_sigma branch alone."""
    if std_cap is None:
        capped = tf.zeros_like(reach)
    else:
        noise = tf.sqrt(factor * (std_cap * std_cap + base)) * (1 + 8 * _U)
        capped = tf.maximum(reach - noise, 0.0) / m_mu * (1 - 8 * _U)

    def fits(d):
        spread = tf.sqrt(factor * (tf.square(s + m_sigma * d) + base))
        return (m_mu * d + spread) * (1 + 16 * _U) <= reach

    start = tf.zeros_like(reach)
    lo, _ = _bisect(fits, start, reach / m_mu)
    return tf.maximum(capped, tf.where(fits(start), lo, tf.zeros_like(lo)))


@_graph_docs
def capped_markov_radius(m_mu: float, m_sigma: float, m_g: float, s, r, p, *,
                         std_cap: float) -> tf.Tensor:
    """bounds.capped_markov_radius: the whole-second-moment and the noise-only Markov forms.

    Whole second moment: M_mu^2 d^2 + S^2 + s^2 <= (1 - p) r^2 / M_g^2; noise only:
    M_mu d + sqrt((min(s + M_sigma d, S)^2 + s^2) / (1 - p)) <= r / M_g; the result is the
    largest of the two and `markov_radius` (docs/theory.md section 9.1, eq. (9.0)). No
    cap_only argument (the NumPy twin's cap_only=False).

    Args:
        <graph certificate arguments>
        std_cap: S, a bound of ||sigma(x')||_2 for every input x', a Python real number > 0
            (required; s <= S).

    Returns:
        <graph certified radius>

    Raises:
        TypeError: for a constant that is a tensor, not a real number, or an array of more
            than 0 dimensions.
        ValueError: if std_cap is None, or for a constant that `bounds.checked` refuses.
        <graph tensor errors>
    """
    m_mu, m_sigma, m_g, std_cap = _frozen(m_mu=m_mu, m_sigma=m_sigma, m_g=m_g, std_cap=std_cap)
    _checked_now(s=s, r=r, p=p, m_g=m_g)
    _checked_std_now(s, std_cap, None, 1)
    s, r, p = _broadcast(s, r, p)
    slack = _budget(m_g, r, p) * (1 - 8 * _U) - (std_cap * std_cap + tf.square(s)) * (1 + 8 * _U)
    whole = tf.sqrt(tf.maximum(slack, 0.0)) / m_mu * (1 - 64 * _U)
    whole = tf.where(slack > 0, whole, tf.zeros_like(whole))
    triangle = _markov_triangle(m_mu, m_sigma, m_g, s, r, p, std_cap)
    return tf.maximum(tf.maximum(whole, triangle), markov_radius(m_mu, m_sigma, m_g, s, r, p))


def _markov_triangle(m_mu, m_sigma, m_g, s, r, p, std_cap):
    """bounds._markov_triangle: the noise-only Markov form on checked constants and broadcast
    tensors; std_cap None: no cap."""
    reach = r / m_g * (1 - 4 * _U)
    return _triangle_radius(m_mu, m_sigma, s, reach, 1 / (1 - p) * (1 + 4 * _U), tf.square(s),
                            std_cap)


@_graph_docs
def capped_chi2_radius(m_mu: float, m_sigma: float, m_g: float, s, r, p, *, latent_dim: int,
                       std_cap: float, s_max=None) -> tf.Tensor:
    """bounds.capped_chi2_radius: M_mu d + sqrt(q V(d)) <= r / M_g, q the verified quantile.
    s_max is raised to s / sqrt(latent_dim) where it is below (no coordinate of sigma(x) is
    below its root mean square; `radius` gives NaN where it is below by more than rounding).

    V(d) = min(s + M_sigma d, S)^2 + s_max^2 bounds every coordinate's noise variance, and q is
    `chi2_quantile_upper(latent_dim, p)` (docs/theory.md section 9.2). No cap_only argument.

    Args:
        <graph certificate arguments>
        latent_dim: m, the latent dimension, a Python int >= 1.
        std_cap: S, a bound of ||sigma(x')||_2 for every input x', a Python real number > 0
            (required; s <= S).
        s_max: None (s), or max_i sigma_i(x): a float64 tensor broadcastable to the broadcast
            shape of s, r and p (s / sqrt(latent_dim) <= s_max <= s).

    Returns:
        <graph certified radius>

    Raises:
        TypeError: if latent_dim is not an int, or a constant is a tensor, not a real number,
            or an array of more than 0 dimensions.
        ValueError: if latent_dim < 1, std_cap is None, or for a constant that `bounds.checked`
            refuses.
        <graph tensor errors>
    """
    latent_dim = checks.positive_int("latent_dim", latent_dim, maximum=numerics.MAX_DEGREES)
    m_mu, m_sigma, m_g, std_cap = _frozen(m_mu=m_mu, m_sigma=m_sigma, m_g=m_g, std_cap=std_cap)
    _checked_now(s=s, r=r, p=p, m_g=m_g, s_max=s_max)
    _checked_std_now(s, std_cap, s_max, latent_dim)
    return _triangle_chi2_radius(m_mu, m_sigma, m_g, s, r, p, latent_dim=latent_dim, s_max=s_max,
                                 std_cap=std_cap)


def _triangle_markov_radius(m_mu: float, m_sigma: float, m_g: float, s, r, p) -> tf.Tensor:
    """bounds._triangle_markov_radius: capped_markov_radius's noise-only form without a cap."""
    m_mu, m_sigma, m_g = _frozen(m_mu=m_mu, m_sigma=m_sigma, m_g=m_g)
    return _markov_triangle(m_mu, m_sigma, m_g, *_broadcast(s, r, p), None)


def _triangle_chi2_radius(m_mu: float, m_sigma: float, m_g: float, s, r, p, *, latent_dim: int,
                          s_max=None, std_cap: float | None = None) -> tf.Tensor:
    """bounds._triangle_chi2_radius (std_cap None: no cap) and, with a checked std_cap,
    capped_chi2_radius; s_max raised to s / sqrt(latent_dim) where it is below (as there)."""
    latent_dim = checks.positive_int("latent_dim", latent_dim, maximum=numerics.MAX_DEGREES)
    m_mu, m_sigma, m_g = _frozen(m_mu=m_mu, m_sigma=m_sigma, m_g=m_g)
    s, r, p = _broadcast(s, r, p)
    s_max = s if s_max is None else tf.broadcast_to(_t(s_max), tf.shape(s))
    s_max = tf.maximum(s_max, s / math.sqrt(latent_dim))
    q = _chi2_quantile_upper(latent_dim, p) * (1 + 4 * _U)
    reach = r / m_g * (1 - 4 * _U)
    return _triangle_radius(m_mu, m_sigma, s, reach, q, tf.square(s_max), std_cap)


# what _best takes the maximum of, as bounds.best_radius takes it (numerics.best_candidates);
# chi2 is bound per call to the elements it ignores
_FORMS = numerics.CertificateForms(
    chi2=None, paper_markov_radius=paper_markov_radius, markov_radius=markov_radius,
    capped_markov_radius=capped_markov_radius, capped_chi2_radius=capped_chi2_radius,
    triangle_markov_radius=_triangle_markov_radius, triangle_chi2_radius=_triangle_chi2_radius,
    ncx2_radius=ncx2_radius)


@_graph_docs
def best_radius(m_mu: float, m_sigma: float, m_g: float, s, r, p, *, latent_dim: int,
                gamma: float | None = None, std_cap: float | None = None,
                s_max=None) -> tf.Tensor:
    """bounds.best_radius: the largest of the sound certificates that apply, same candidates
    (never bounds' legacy=True: a served model certifies with the current ones). Its constants
    are checked as `radius` checks them (ValueError / TypeError).

    The candidates are those of `bounds.best_radius` (`_shared_numerics.best_candidates`;
    docs/theory.md sections 1-3, 5 and 9): chi-square (latent_dim >= 2), then for a learned
    std the paper and tighter Markov forms and the capped (with std_cap) or uncapped triangle
    forms, for a fixed std the Markov forms with M_sigma = 0, s = gamma sqrt(m), and the
    noncentral chi-square form. No cap_only or legacy argument.

    Args:
        <graph certificate arguments>
        latent_dim: m, the latent dimension, a Python int >= 1.
        gamma: None for a learned std, or the fixed posterior std, a Python real number > 0.
        std_cap: None, or S for a learned std under a cap, a Python real number > 0.
        s_max: None (s), or max_i sigma_i(x), a float64 tensor (s / sqrt(latent_dim) <=
            s_max <= s).

    Returns:
        <graph certified radius>

    Raises:
        TypeError / ValueError: those of `check_constants` (method "best").
        <graph tensor errors>
    """
    m_mu, m_sigma, m_g, latent_dim, gamma = check_constants(
        "best", m_mu, m_sigma, m_g, latent_dim=latent_dim, gamma=gamma, std_cap=std_cap)
    _checked_now(s=s, r=r, p=p, m_g=m_g, s_max=s_max)
    _checked_std_now(s, std_cap, s_max, latent_dim)
    return _best(m_mu, m_sigma, m_g, s, r, p, latent_dim, gamma, None, std_cap, s_max)


def _best(m_mu, m_sigma, m_g, s, r, p, latent_dim, gamma, ignore=None, std_cap=None,
          s_max=None):
    s, r, p = _broadcast(s, r, p)
    forms = _FORMS._replace(chi2=lambda *args: _chi2(*args, ignore))
    candidates = numerics.best_candidates(
        forms, tf.zeros_like(s), m_mu, m_sigma, m_g, s, r, p, latent_dim=latent_dim,
        gamma=gamma, std_cap=std_cap, s_max=s_max)
    shape = tf.shape(candidates[0])
    best = tf.broadcast_to(candidates[0], shape)
    for candidate in candidates[1:]:
        best = tf.maximum(best, tf.broadcast_to(candidate, shape))
    return best


def check_constants(method: str, m_mu: float, m_sigma: float, m_g: float, *, latent_dim: int,
                    gamma: float | None = None, std_cap: float | None = None,
                    ) -> tuple[float, float, float, int, float | None]:
    """The frozen constants as Python floats, or the ValueError bounds.radius would raise.

    Checked in Python when the graph is built (nothing here is a graph op).

    Args:
        method: one of `METHODS`.
        m_mu, m_sigma, m_g: the Lipschitz constants, Python (or NumPy 0-d) real numbers:
            m_mu, m_g > 0, m_sigma >= 0 (`bounds.checked`'s rules).
        latent_dim: m, a Python int >= 1 (>= 2 for "chi2").
        gamma: None, or the fixed posterior std, a real number > 0.
        std_cap: None, or the std cap S, a real number > 0 (validated, not returned).

    Returns:
        (m_mu, m_sigma, m_g, latent_dim, gamma): three Python floats, an int, and a float or
        None.

    Raises:
        ValueError: for an unknown method, a capped method ("markov_cap", "chi2_cap") without
            std_cap, std_cap with gamma, "ncx2" without gamma, "chi2" with latent_dim < 2,
            latent_dim < 1, or a constant that `bounds.checked` refuses.
        TypeError: (not only the ValueError of the first line) if latent_dim is not an int, or
            a constant is a tensor, not a real number, or an array of more than 0 dimensions.
    """
    if method in bounds.CAPPED_METHODS and std_cap is None:
        raise ValueError(f"method {method!r} needs std_cap (a learned std capped by StdCap)")
    if std_cap is not None:
        if gamma is not None:
            raise ValueError("std_cap does not apply to a fixed encoder std (gamma): pass one")
        _frozen(std_cap=std_cap)
    checks.one_of("method", method, METHODS)
    latent_dim = checks.positive_int("latent_dim", latent_dim, maximum=numerics.MAX_DEGREES)
    values = dict(m_mu=m_mu, m_sigma=m_sigma, m_g=m_g)
    if gamma is not None:
        values["gamma"] = gamma
    checked = _frozen(**values)  # finite, positive / non-negative, not tensors
    if method == "ncx2" and gamma is None:
        raise ValueError("method 'ncx2' needs gamma: it applies only to a fixed encoder std "
                         "sigma = gamma * 1 (a learned std has no exact noncentral chi-square law)")
    if method == "chi2" and latent_dim < 2:
        raise ValueError(f"method {method!r} needs latent_dim >= 2 (Inglot's bound), got "
                         f"{latent_dim}")
    gamma = checked[3] if gamma is not None else None
    if gamma is not None:
        numerics.check_fixed_std_norm(gamma, latent_dim)
    return checked[0], checked[1], checked[2], latent_dim, gamma


def radius(method: str, m_mu: float, m_sigma: float, m_g: float, s, r, p, *, latent_dim: int,
           gamma: float | None = None, std_cap: float | None = None, s_max=None) -> tf.Tensor:
    """bounds.radius in the graph: the certificate `method` for float64 s, r, p (broadcast).

    Constants are validated now (ValueError, as bounds.radius). Elements with r <= 0 or not finite,
    p outside [1/2, 1) or not finite, s < 0 or not finite, r, r / M_g or s above
    MAGNITUDE_LIMIT (1e75, where bounds.checked raises), r / M_g below MAGNITUDE_FLOOR (1e-60),
    s above std_cap, or (a learned std with
    std_cap or s_max given) s_max not finite, above s or below s / sqrt(latent_dim) by more than
    S_MAX_SLACK get NaN (a graph cannot raise on a request; NaN is never mistaken for a radius).
    They do not change the other elements.

    Args:
        method: one of `METHODS` (as `bounds.radius`, without cap_only and legacy).
        m_mu: M_mu, the Lipschitz constant of the encoder mean: a Python (or NumPy 0-d) real
            number > 0, frozen into the graph.
        m_sigma: M_sigma, the Lipschitz constant of the encoder std: a real number >= 0.
        m_g: M_g, the Lipschitz constant of the reconstruction g: a real number > 0.
        s: ||sigma(x)||_2, the std's l2 norm at x: float64 tensor (or a Python number, list or
            NumPy array, converted to float64); invalid values give NaN.
        r: the reconstruction tolerance, an l2 distance in pixel space: float64 tensor.
        p: the probability level: float64 tensor.
        latent_dim: m, the latent dimension, a Python int >= 1 ("chi2" needs >= 2).
        gamma: None for a learned std, or the fixed posterior std, a Python real number > 0.
        std_cap: None, or S for a learned std under a cap, a Python real number > 0.
        s_max: None (s), or max_i sigma_i(x), a float64 tensor broadcast to s's shape.

    Returns:
        float64 tensor of the broadcast shape of s, r and p: the certified radius R, an l2 norm
        in pixel space (every ||delta||_2 < R keeps P(||f(x + delta) - f(x)||_2 <= r) >= p); 0
        where nothing is certified, NaN for the invalid elements listed above.

    Raises:
        ValueError / TypeError: in Python, when the graph is built: those of `check_constants`
            (an unknown or inapplicable method, bad constants or latent_dim; TypeError for a
            constant given as a tensor, or a tensor argument that is not real: float32 and int
            tensors are cast to float64).
        InvalidArgumentError: (`tf.errors`, when the ops run) if s, r and p (or s_max) do not
            broadcast. No other error depends on the tensors' values: there are no in-graph
            asserts (`tf.debugging`); invalid values give NaN instead.
    """
    m_mu, m_sigma, m_g, latent_dim, gamma = check_constants(
        method, m_mu, m_sigma, m_g, latent_dim=latent_dim, gamma=gamma, std_cap=std_cap)
    s, r, p = _broadcast(s, r, p)
    shape = tf.shape(s)
    # the reach's limits as bounds.checked tests them, against products of Python floats (TF
    # rewrote r / M_g >= FLOOR into r (1 / M_g), an ulp off, and gave NaN at r / M_g = 1e-60)
    valid = (tf.math.is_finite(r) & (r > 0) & tf.math.is_finite(p) & (p >= 0.5) & (p < 1)
             & tf.math.is_finite(s) & (s >= 0) & (r <= _LIMIT) & (r <= _LIMIT * m_g)
             & (r >= _FLOOR * m_g)
             & (s <= _LIMIT))
    if std_cap is not None:  # bounds.radius raises where the cap is exceeded: NaN here
        valid &= s <= std_cap
    if gamma is None and (std_cap is not None or s_max is not None):  # and where s_max is bad
        s_max = s if s_max is None else tf.broadcast_to(_t(s_max), shape)
        valid &= tf.math.is_finite(s_max) & (s_max >= 0) & (s_max <= _LIMIT) & (
            s_max <= s * (1 + 4 * _U)) & (
            s_max >= s / math.sqrt(latent_dim) * (1 - bounds.S_MAX_SLACK))
        s_max = tf.where(valid, s_max, tf.zeros_like(s_max))
    s = tf.where(valid, s, tf.zeros_like(s))  # harmless stand-ins, replaced by NaN below
    r = tf.where(valid, r, tf.fill(shape, _t(m_g)))  # a reach of 1
    p = tf.where(valid, p, tf.fill(shape, _t(0.5)))
    if gamma is not None and method in ("paper", "markov"):
        m_sigma, s = numerics.fixed_std(gamma, latent_dim)
    masked = _VALUES_MASKED.set(True)
    try:
        result = _dispatch(method, m_mu, m_sigma, m_g, s, r, p, latent_dim, gamma, valid,
                           std_cap, s_max)
    finally:
        _VALUES_MASKED.reset(masked)
    result = tf.broadcast_to(result, shape)
    return tf.where(valid, result, tf.fill(shape, _t(math.nan)))


def _dispatch(method, m_mu, m_sigma, m_g, s, r, p, latent_dim, gamma, valid, std_cap, s_max):
    """`radius`' certificate `method` on its masked rows."""
    if method == "paper":
        result = paper_markov_radius(m_mu, m_sigma, m_g, s, r, p)
    elif method == "markov":
        result = markov_radius(m_mu, m_sigma, m_g, s, r, p)
    elif method == "chi2":
        result = _chi2(m_mu, m_sigma, m_g, s, r, p, latent_dim, gamma, ~valid)
    elif method == "ncx2":
        result = ncx2_radius(m_mu, m_g, r, p, latent_dim=latent_dim, gamma=gamma)
    elif method == "markov_cap":
        result = capped_markov_radius(m_mu, m_sigma, m_g, s, r, p, std_cap=std_cap)
    elif method == "chi2_cap":
        result = capped_chi2_radius(m_mu, m_sigma, m_g, s, r, p, latent_dim=latent_dim,
                                    std_cap=std_cap, s_max=s_max)
    else:
        result = _best(m_mu, m_sigma, m_g, s, r, p, latent_dim, gamma, ~valid, std_cap, s_max)
    return result
