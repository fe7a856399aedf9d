"""The conv bound is >= the true operator norm of the real TF convolution, and exact where
claimed."""
import numpy as np
import pytest
import tensorflow as tf
from operators import exact_norm, power_iteration_norm

from lipvae_tf import layers as ll
from lipvae_tf.constraints import finalize_constraints
from lipvae_tf.lipschitz import conv_norm_bound, layer_lipschitz_bound

CASES = [  # (input size, kernel size, c_in, c_out, stride)
    (8, 3, 2, 3, 1),
    (8, 3, 3, 2, 2),
    (9, 5, 1, 2, 2),
    (10, 3, 2, 2, 1),
    (12, 4, 2, 1, 3),
    (7, 2, 2, 4, 1),
]


def _kernel(k, c_in, c_out, seed):
    return np.random.default_rng(seed).normal(size=(k, k, c_in, c_out))


def _conv_op(kernel, stride, padding):
    return lambda x: tf.nn.conv2d(x, kernel, stride, padding.upper())


def _circular_op(kernel, stride):
    k = kernel.shape[0]
    return lambda x: tf.nn.conv2d(ll._wrap_pad(x, (k, k)), kernel, stride, "VALID")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_zero_padding_bound_is_above_true_norm(case, padding):
    n, k, c_in, c_out, s = case
    kernel = _kernel(k, c_in, c_out, seed=n * 100 + k)
    op = _conv_op(tf.constant(kernel), s, padding)
    exact = exact_norm(op, (n, n, c_in))
    iterated = power_iteration_norm(op, (n, n, c_in))
    bound = conv_norm_bound(kernel, (n, n), (s, s), padding)
    assert iterated == pytest.approx(exact, rel=1e-6)  # the reference is converged
    assert bound >= exact * (1 - 1e-12)
    assert bound <= 1.25 * exact  # worst measured: 1.20 (9x9 input, 5x5 kernel, valid, stride 2)


@pytest.mark.parametrize("case", [c for c in CASES if c[0] % c[4] == 0 and c[0] >= c[1]])
def test_circular_padding_norm_is_exact(case):
    n, k, c_in, c_out, s = case
    kernel = _kernel(k, c_in, c_out, seed=n + k)
    op = _circular_op(tf.constant(kernel), s)
    exact = exact_norm(op, (n, n, c_in))
    bound = conv_norm_bound(kernel, (n, n), (s, s), "circular")
    assert bound == pytest.approx(exact, rel=1e-9)
    assert power_iteration_norm(op, (n, n, c_in)) == pytest.approx(bound, rel=1e-6)


@pytest.mark.parametrize("input_hw,kernel_hw,strides", [((12, 10), (3, 5), (1, 2)),
                                                        ((9, 12), (3, 3), (3, 2)),
                                                        ((30, 30), (3, 3), (2, 2))])
def test_circular_norm_on_rectangular_grids_is_exact_to_float64_round_off(input_hw, kernel_hw,
                                                                           strides):
    """Non-square strides: the FFT version scaled the blocks by tf.cast(math.sqrt(S)), rounded
    to float32 first, and was off by 1.7e-8 (S = 2) and -3.6e-8 (S = 6) relative."""
    kernel = np.random.default_rng(11).normal(size=(*kernel_hw, 2, 3))

    def op(x):
        return tf.nn.conv2d(ll._wrap_pad(x, kernel_hw), tf.constant(kernel), strides, "VALID")

    exact = exact_norm(op, (*input_hw, 2))
    bound = conv_norm_bound(kernel, input_hw, strides, "circular")
    assert bound == pytest.approx(exact, rel=1e-12)


def test_zero_padding_bound_tightens_on_realistic_sizes():
    """28x28 input, 3x3 kernel: the guaranteed bound is within 5% of the true norm."""
    kernel = _kernel(3, 2, 2, seed=7)
    for stride in (1, 2):
        op = _conv_op(tf.constant(kernel), stride, "same")
        true_norm = power_iteration_norm(op, (28, 28, 2), iterations=4000)
        bound = conv_norm_bound(kernel, (28, 28), (stride, stride), "same")
        assert true_norm <= bound <= 1.05 * true_norm


@pytest.mark.parametrize("padding,stride", [("same", 1), ("same", 2), ("valid", 2), ("valid", 1)])
def test_transposed_conv_bound_is_above_true_norm(padding, stride):
    layer = ll.LipschitzConv2DTranspose(3, 3, strides=stride, padding=padding, lipschitz=1.5)
    layer.build((None, 5, 5, 2))
    kernel = tf.constant(_kernel(3, 3, 2, seed=stride), tf.float32)
    layer.kernel.assign(kernel)
    op = lambda x: tf.cast(layer(tf.cast(x, tf.float32)) - layer.bias, tf.float64)  # noqa: E731
    exact = exact_norm(op, (5, 5, 2))
    bound = layer_lipschitz_bound(layer)
    assert bound >= exact * (1 - 1e-6)
    assert bound <= 1.6 * exact
    assert power_iteration_norm(op, (5, 5, 2)) <= bound


def test_reshaped_kernel_norm_is_not_a_bound():
    """Why the operator matters: an all-ones 3x3 kernel has reshaped norm 3, operator norm 9."""
    kernel = np.ones((3, 3, 1, 1))
    reshaped = np.linalg.norm(kernel.reshape(9, 1), 2)
    exact = exact_norm(_circular_op(tf.constant(kernel), 1), (6, 6, 1))
    assert reshaped == pytest.approx(3.0)
    assert exact == pytest.approx(9.0)
    assert conv_norm_bound(kernel, (6, 6), (1, 1), "circular") == pytest.approx(9.0)


@pytest.mark.parametrize("constraint", ["spectral", "subspace_clip"])
def test_conv_layer_bound_scales_with_lipschitz_and_uses_kernel_in_use(constraint):
    layer = ll.LipschitzConv2D(2, 3, padding="circular", lipschitz=3.0, constraint=constraint)
    layer.build((None, 8, 8, 2))
    op = lambda x: tf.cast(layer(tf.cast(x, tf.float32)) - layer.bias, tf.float64)  # noqa: E731
    assert layer_lipschitz_bound(layer) == pytest.approx(exact_norm(op, (8, 8, 2)), rel=1e-5)
    # fresh, the layer is inside its bound: the build's one step of steering clips the blocks
    # and the projection onto 3x3 kernels pushed the norm up again (1.24x), so the build now
    # measures the kernel and rescales it inside (constraints.start_inside)
    assert layer_lipschitz_bound(layer) <= 3.0 * (1 + 1e-5)
    if constraint == "subspace_clip":
        finalize_constraints([layer])
        assert layer_lipschitz_bound(layer) == pytest.approx(exact_norm(op, (8, 8, 2)), rel=1e-5)
    assert layer_lipschitz_bound(layer) <= 3.0 * (1 + 1e-5)
    layer.kernel.assign(layer.kernel * 2.0)  # bypass the constraint: the bound must follow
    assert layer_lipschitz_bound(layer) == pytest.approx(exact_norm(op, (8, 8, 2)), rel=1e-5)
    assert layer_lipschitz_bound(layer) > 5.9


def test_a_measured_norm_is_reused_only_for_the_same_kernel_bytes(monkeypatch):
    """Certifying with every method asked for the constants a dozen times, each an SVD of every
    kernel (a newcomer's profile: 39 of 59 s). The norms are remembered by the kernel's exact
    bytes: a kernel changed by one ulp is measured again, and gets its own norm."""
    from lipvae_tf import conv_spectrum, lipschitz

    calls = {"dense": 0, "conv": 0}
    svd_norm, fft_norm = np.linalg.norm, conv_spectrum.operator_norm

    def counted_norm(*args, **kwargs):
        calls["dense"] += 1
        return svd_norm(*args, **kwargs)

    def counted_operator_norm(*args, **kwargs):
        calls["conv"] += 1
        return fft_norm(*args, **kwargs)

    monkeypatch.setattr(np.linalg, "norm", counted_norm)
    monkeypatch.setattr(conv_spectrum, "operator_norm", counted_operator_norm)
    rng = np.random.default_rng(7)
    kernel = rng.normal(size=(40, 30)).astype(np.float32)
    first = lipschitz.dense_norm(kernel)
    assert lipschitz.dense_norm(kernel.copy()) == first and calls["dense"] == 1
    bumped = kernel.copy()
    row, col = np.unravel_index(np.argmax(np.abs(kernel)), kernel.shape)
    bumped[row, col] = np.nextafter(bumped[row, col], np.float32(np.inf) * np.sign(
        bumped[row, col]))  # one ulp larger in magnitude
    assert lipschitz.dense_norm(bumped) == svd_norm(bumped.astype(np.float64), 2)
    assert calls["dense"] == 2
    assert lipschitz.dense_norm(kernel.T) == pytest.approx(first) and calls["dense"] == 3
    conv = rng.normal(size=(3, 3, 2, 4))
    a = conv_norm_bound(conv, (8, 8), (1, 1), "same")
    assert conv_norm_bound(conv, (8, 8), (1, 1), "same") == a and calls["conv"] == 1
    conv_norm_bound(conv, (8, 8), (1, 1), "circular")  # another grid: measured
    conv_norm_bound(conv, (8, 8), (2, 2), "same")  # another stride: measured
    assert calls["conv"] == 3
