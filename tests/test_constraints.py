"""Constraints keep kernels inside their norm ball during fit, converge on demand, and validate."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from lipvae_tf import constraints as lc
from lipvae_tf import layers as ll
from lipvae_tf.lipschitz import conv_norm_bound, dense_norm


def _singular_values(kernel) -> np.ndarray:
    return np.linalg.svd(np.asarray(kernel, dtype=np.float64), compute_uv=False)


def _mlp(constraint: str, lipschitz: float = 1.0, **kwargs) -> keras.Sequential:
    return keras.Sequential([
        keras.Input((64,)),
        ll.LipschitzDense(96, lipschitz=lipschitz, constraint=constraint, **kwargs),
        ll.GroupSort(),
        ll.LipschitzDense(48, lipschitz=lipschitz, constraint=constraint, **kwargs),
        ll.GroupSort(),
        ll.LipschitzDense(80, lipschitz=lipschitz, constraint=constraint, **kwargs),
    ])


def _fit_on_noise(model: keras.Model, epochs: int = 3) -> None:
    x = np.random.normal(size=(1024, 64)).astype("float32")
    y = np.random.normal(size=(1024, model.output_shape[-1])).astype("float32")
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)


def _kernels(model):
    return [layer.kernel for layer in model.layers if hasattr(layer, "kernel")]


@pytest.mark.parametrize("constraint", ["bjorck", "spectral"])
def test_fit_keeps_kernels_inside_the_ball(constraint):
    model = _mlp(constraint)
    before = [k.numpy().copy() for k in _kernels(model)]
    _fit_on_noise(model)
    for old, kernel in zip(before, _kernels(model)):
        assert not np.array_equal(old, kernel.numpy())  # training did move it
        assert _singular_values(kernel.numpy())[0] <= 1 + 1e-3


def test_spectral_norm_clip_keeps_kernels_near_the_ball_and_finalize_inside():
    """The power-iteration estimate is a lower bound: near, not inside, until finalize."""
    model = _mlp("spectral_norm", lipschitz=2.0)
    _fit_on_noise(model)
    assert all(isinstance(k.constraint, lc.SpectralNormClip) for k in _kernels(model))
    assert max(_singular_values(k.numpy())[0] for k in _kernels(model)) <= 1.05
    lc.finalize_constraints(model)
    assert max(_singular_values(k.numpy())[0] for k in _kernels(model)) <= 1.0


def test_bjorck_with_scale_keeps_singular_values_at_scale_during_fit():
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(
        32, kernel_constraint=lc.BjorckOrthonormal(iterations=2, scale=2.5))])
    _fit_on_noise(model)
    values = _singular_values(model.layers[0].kernel.numpy())
    assert values.max() <= 2.5 * (1 + 1e-3)
    assert values.min() >= 2.5 * (1 - 1e-2)  # orthonormal, not merely clipped


def test_finalize_converges_to_tolerance_from_far_away():
    """Glorot-initialised kernels (singular values up to ~2) converge to 1e-6 and stay below."""
    model = _mlp("bjorck", kernel_initializer="glorot_uniform", bjorck_iterations=1)
    for kernel in _kernels(model):
        kernel.assign(keras.initializers.GlorotUniform()(kernel.shape) * 1.7)
    assert max(_singular_values(k.numpy())[0] for k in _kernels(model)) > 1.2
    report = lc.finalize_constraints(model, tol=1e-6)
    assert len(report) == 3
    for kernel in _kernels(model):
        values = _singular_values(kernel.numpy())
        assert values.max() <= 1 + 1e-6
        assert values.min() >= 1 - 1e-6


def test_finalize_refuses_a_tolerance_emptying_conv_kernels_and_changes_nothing_on_failure():
    """A review: finalize_constraints(tol=1.0) clipped a conv kernel to 0 (its conv clip aims
    at (1 - tol) x the bound), and a Björck kernel that cannot converge (rank-deficient) raised
    after earlier kernels had been rewritten in place, without naming the kernel."""
    conv = keras.Sequential([keras.Input((8, 8, 2)), ll.LipschitzConv2D(4, 3, strides=2)])
    for tol in (1.0, 1.5, 0.0):
        with pytest.raises(ValueError, match=r"tol must be in \(0, 1\)"):
            lc.finalize_constraints(conv, tol=tol)
    model = _mlp("bjorck", kernel_initializer="glorot_uniform")
    first, _, last = _kernels(model)
    first.assign(first * 1.7)  # needs a projection
    last.assign(np.zeros(last.shape, "float32"))  # rank 0: never orthonormal
    before = [k.numpy() for k in _kernels(model)]
    with pytest.raises(RuntimeError, match=rf"{last.path}: Björck did not converge.*smallest "
                                           r"singular value 0.*no kernel was changed"):
        lc.finalize_constraints(model, max_iterations=30)
    for old, kernel in zip(before, _kernels(model)):
        np.testing.assert_array_equal(old, kernel.numpy())


@pytest.mark.parametrize("kind", ["bjorck", "subspace_clip", "spectral_norm"])
def test_finalize_names_a_diverged_kernel_and_changes_nothing(kind):
    """A practitioner's review (2026-12-02): a NaN kernel made finalize() raise NumPy's
    LinAlgError "SVD did not converge", naming nothing."""
    model = _mlp(kind, kernel_initializer="glorot_uniform")
    first, middle, _ = _kernels(model)
    first.assign(first * 1.7)  # needs a projection
    middle.assign(np.full(middle.shape, np.nan, "float32"))
    before = [k.numpy() for k in _kernels(model)]
    with pytest.raises(ValueError, match=rf"{middle.path} holds NaN or Inf values.*no kernel "
                                         "was changed"):
        lc.finalize_constraints(model)
    for old, kernel in zip(before, _kernels(model)):
        np.testing.assert_array_equal(old, kernel.numpy())


def test_finalize_after_fit_respects_scale_and_spectral_clip():
    model = _mlp("spectral", lipschitz=3.0)
    model.layers[0].kernel.assign(model.layers[0].kernel * 4.0)  # far outside
    lc.finalize_constraints(model)
    for kernel in _kernels(model):
        assert _singular_values(kernel.numpy())[0] <= 1 + 1e-6
    scaled = keras.Sequential([keras.Input((8,)), keras.layers.Dense(
        8, kernel_constraint=lc.BjorckOrthonormal(scale=0.3))])
    lc.finalize_constraints(scaled)
    np.testing.assert_allclose(_singular_values(scaled.layers[0].kernel.numpy()), 0.3, rtol=1e-6)
    assert _singular_values(scaled.layers[0].kernel.numpy())[0] <= 0.3


@pytest.mark.parametrize("padding,strides", [("same", 2), ("circular", 1), ("valid", 1)])
def test_finalize_brings_conv_operators_inside(padding, strides):
    layer = ll.LipschitzConv2D(3, 3, strides=strides, padding=padding)
    layer.build((None, 10, 10, 2))
    layer.kernel.assign(np.random.normal(size=(3, 3, 2, 3)).astype("float32") * 2.0)
    assert conv_norm_bound(layer.kernel.numpy(), (10, 10), (strides,) * 2, padding) > 2.0
    lc.finalize_constraints([layer])
    assert conv_norm_bound(layer.kernel.numpy(), (10, 10), (strides,) * 2, padding) <= 1.0


def test_finalize_is_idempotent():
    """A second finalize leaves every kernel bit-identical (exports finalize again)."""
    conv = ll.LipschitzConv2D(3, 3, strides=2, padding="same")
    conv.build((None, 10, 10, 2))
    conv.kernel.assign(np.random.normal(size=(3, 3, 2, 3)).astype("float32") * 2.0)
    layers = [*_mlp("bjorck", bjorck_iterations=1).layers, *_mlp("spectral", lipschitz=2.0).layers,
              conv]
    for kernel in [layer.kernel for layer in layers if hasattr(layer, "kernel")]:
        kernel.assign(kernel * 1.5)
    first = lc.finalize_constraints(layers)
    assert all(used > 0 for used in first.values())
    kernels = [layer.kernel.numpy().copy() for layer in layers if hasattr(layer, "kernel")]
    second = lc.finalize_constraints(layers)
    assert set(second.values()) == {0}
    for old, layer in zip(kernels, [item for item in layers if hasattr(item, "kernel")]):
        np.testing.assert_array_equal(old, layer.kernel.numpy())


def test_bjorck_uses_the_small_gram_side_for_wide_kernels():
    wide = tf.constant(np.random.normal(size=(16, 200)).astype("float32") * 0.05)
    result = lc.BjorckOrthonormal(iterations=30)(wide)
    np.testing.assert_allclose(_singular_values(result), 1.0, atol=1e-5)


def test_spectral_clip_leaves_dense_kernels_inside_untouched():
    kernel = np.random.normal(size=(30, 20)).astype("float32")
    kernel *= 0.9 / dense_norm(kernel)
    clipped = lc.SpectralClip(1.0)(tf.constant(kernel)).numpy()
    assert np.array_equal(clipped, kernel)


def test_spectral_clip_clips_only_the_large_singular_values():
    u, _ = np.linalg.qr(np.random.normal(size=(30, 5)))
    v, _ = np.linalg.qr(np.random.normal(size=(5, 5)))
    values = np.array([3.0, 2.0, 0.8, 0.5, 0.1])
    kernel = (u * values) @ v.T
    clipped = lc.SpectralClip(1.0)(tf.constant(kernel, tf.float32)).numpy()
    np.testing.assert_allclose(_singular_values(clipped), [1.0, 1.0, 0.8, 0.5, 0.1], atol=1e-5)


def test_spectral_clip_on_conv_acts_on_the_operator():
    kernel = np.random.normal(size=(3, 3, 4, 4)).astype("float32")
    constraint = lc.SpectralClip(1.0, input_hw=(12, 12), strides=(2, 2), padding="same")
    assert conv_norm_bound(kernel, (12, 12), (2, 2), "same") > 2.0
    clipped = constraint(tf.constant(kernel)).numpy()
    assert clipped.shape == kernel.shape
    assert conv_norm_bound(clipped, (12, 12), (2, 2), "same") <= 1 + 1e-5
    # Already inside: returned bit for bit.
    inside = kernel * np.float32(0.5 / conv_norm_bound(kernel, (12, 12), (2, 2), "same"))
    assert np.array_equal(constraint(tf.constant(inside)).numpy(), inside)


def test_spectral_clip_on_conv_keeps_most_of_the_kernel():
    """Clipping, not rescaling: singular values below the cap survive (norm of the change is
    far below that of a plain rescale to the same operator norm)."""
    kernel = np.random.normal(size=(3, 3, 2, 2)).astype("float32")
    constraint = lc.SpectralClip(1.0, input_hw=(16, 16), padding="circular")
    norm = conv_norm_bound(kernel, (16, 16), (1, 1), "circular")
    clipped = constraint(tf.constant(kernel)).numpy()
    rescaled = kernel / norm
    assert conv_norm_bound(clipped, (16, 16), (1, 1), "circular") <= 1 + 1e-5
    assert np.linalg.norm(clipped) > 1.2 * np.linalg.norm(rescaled)


def test_constraints_serialise_round_trip():
    for constraint in (lc.BjorckOrthonormal(3, 0.4, 2.0, every=4, power_iterations=2),
                       lc.SpectralClip(1.5, input_hw=(28, 28), strides=(2, 2), padding="valid"),
                       lc.SpectralNormClip(0.5, 3, input_hw=(14, 14), padding="circular")):
        restored = keras.constraints.deserialize(keras.constraints.serialize(constraint))
        assert type(restored) is type(constraint)
        assert restored.get_config() == constraint.get_config()


@pytest.mark.parametrize("make,error,match", [
    (lambda: lc.BjorckOrthonormal(iterations=0), ValueError, "iterations"),
    (lambda: lc.BjorckOrthonormal(iterations=1.5), TypeError, "iterations"),
    (lambda: lc.BjorckOrthonormal(scale=-1.0), ValueError, "scale"),
    (lambda: lc.BjorckOrthonormal(scale=float("nan")), ValueError, "scale"),
    (lambda: lc.BjorckOrthonormal(beta=0.8), ValueError, "beta"),
    (lambda: lc.SpectralClip(max_norm=0.0), ValueError, "max_norm"),
    (lambda: lc.SpectralClip(padding="reflect"), ValueError, "padding"),
    (lambda: lc.SpectralClip(strides=(0, 1)), ValueError, "strides"),
    (lambda: lc.SpectralNormClip(iterations=0), ValueError, "iterations"),
    (lambda: lc.SpectralNormClip(strides=(1, 0)), ValueError, "strides"),
    (lambda: lc.BjorckOrthonormal(every=1.5), TypeError, "every"),
    (lambda: lc.finalize_constraints([], tol=-1e-6), ValueError, "tol"),
])
def test_bad_arguments_raise_clear_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_wrong_kernel_rank_raises():
    with pytest.raises(ValueError, match="rank 2"):
        lc.BjorckOrthonormal()(tf.zeros((3, 3, 2, 2)))
    with pytest.raises(ValueError, match="rank 2 or 4"):
        lc.SpectralClip()(tf.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="input_hw"):
        lc.SpectralClip()(tf.zeros((3, 3, 2, 2)))
    with pytest.raises(ValueError, match="rank 2 or 4"):
        lc.SpectralNormClip().state_spec((3, 2, 2))
    with pytest.raises(ValueError, match="input_hw"):
        lc.SpectralNormClip().state_spec((3, 3, 2, 2))
