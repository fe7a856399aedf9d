"""Singular-value clipping on a tracked subspace (`constraint="subspace_clip"`): the clip itself
(exact on the subspace, the rest of the spectrum kept), its state (a non-trainable weight that
travels with .keras files, checkpoints and replicas), and that soundness never depends on it."""
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from lipvae_tf import constraints as lc, data, layers as ll
from lipvae_tf import lipschitz as lp
from lipvae_tf.model import LipschitzVAE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
X = data.load_sample("train")[0][:256]


def _kernel(singular, rows: int = 40, cols: int = 24, seed: int = 0):
    """A float64 kernel U diag(singular) V^T with its input-space singular vectors U."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(rows, cols)))
    v, _ = np.linalg.qr(rng.normal(size=(cols, cols)))
    return (u * np.asarray(singular)) @ v.T, u


def _singular(w) -> np.ndarray:
    return np.linalg.svd(np.asarray(w, np.float64), compute_uv=False)


def _dense_layers(model: LipschitzVAE) -> list:
    return [layer for layer in lc.iter_layers(list(model.lipschitz_networks().values()))
            if isinstance(layer, ll.LipschitzDense)]


def _small_vae(**kwargs) -> LipschitzVAE:
    keras.utils.set_random_seed(0)
    shape = dict(latent_dim=4, hidden_units=(32,), seed=0, constraint="subspace_clip")
    return LipschitzVAE.from_target(1.0, 8.0, **{**shape, **kwargs})


def _mlp() -> keras.Sequential:
    return keras.Sequential([
        keras.Input((12,)),
        ll.LipschitzDense(16, lipschitz=2.0, constraint="subspace_clip", subspace_rank=4),
        ll.GroupSort(),
        ll.LipschitzDense(3, constraint="subspace_clip", subspace_rank=4),
    ])


def _xy(count: int = 64):
    rng = np.random.default_rng(1)
    return (rng.normal(size=(count, 12)).astype(np.float32),
            rng.normal(size=(count, 3)).astype(np.float32))


# ----- the clip ----------------------------------------------------------------------------

def test_with_the_top_directions_in_the_subspace_it_is_the_exact_clip():
    singular = np.array([3.0, 2.0, 1.5] + list(np.linspace(0.9, 0.1, 21)))
    kernel, u = _kernel(singular)
    clipped, subspace = lc.subspace_clip(tf.constant(kernel), tf.constant(u[:, :4]), 1.0)
    exact = lc.clip_dense_spectrum(tf.constant(kernel), 1.0)
    np.testing.assert_allclose(clipped.numpy(), exact.numpy(), atol=1e-12)
    np.testing.assert_allclose(_singular(clipped), np.minimum(singular, 1.0), atol=1e-12)
    # the new subspace is the Ritz vectors, sorted: the top input-space singular vectors
    overlap = np.abs(np.sum(subspace.numpy()[:, :3] * u[:, :3], axis=0))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-9)


def test_a_kernel_whose_subspace_is_inside_the_ball_is_returned_bit_for_bit():
    kernel, u = _kernel(np.linspace(0.99, 0.1, 24))
    kernel32 = tf.constant(kernel, tf.float32)
    random = tf.constant(np.random.default_rng(2).normal(size=(40, 8)), tf.float32)
    clipped, _ = lc.subspace_clip(kernel32, random, 1.0)
    assert np.array_equal(clipped.numpy(), kernel32.numpy())


def test_warm_started_from_a_random_subspace_it_converges_into_the_ball():
    singular = np.array([4.0, 3.0, 2.5, 2.0, 1.2] + list(np.linspace(0.8, 0.1, 19)))
    kernel, _ = _kernel(singular, seed=3)
    exact = _singular(lc.clip_dense_spectrum(tf.constant(kernel), 1.0))
    layer = ll.LipschitzDense(24, constraint="subspace_clip", subspace_rank=8,
                              kernel_initializer="zeros")
    layer.build((None, 40))
    assert tuple(layer.subspace.shape) == (40, 8)
    layer.kernel.assign(kernel.astype(np.float32))
    first = _singular(layer.kernel.constraint(layer.kernel))
    assert first.max() > 1.0 + 1e-3  # one step from a random start does not find them all
    for _ in range(20):  # one subspace iteration per training step
        layer.kernel.assign(layer.kernel.constraint(layer.kernel))
    final = _singular(layer.kernel.numpy())
    assert final.max() <= 1.0 + 1e-5
    # the steps before the subspace settled clipped along mixed directions, which took a little
    # off the singular values below the bound: far less than a rescale by 4 would
    np.testing.assert_allclose(final, exact, atol=2e-3)
    assert np.all(final <= exact + 1e-5)


def test_the_spectrum_below_the_bound_is_kept_unlike_the_rescale():
    singular = np.array([2.0] + list(np.linspace(0.9, 0.1, 23)))
    kernel, u = _kernel(singular, seed=4)
    clipped, _ = lc.subspace_clip(tf.constant(kernel), tf.constant(u[:, :2]), 1.0)
    rescaled = kernel / 2.0  # what spectral-norm clipping does with the exact estimate
    np.testing.assert_allclose(_singular(clipped)[1:], singular[1:], atol=1e-12)
    assert _singular(rescaled)[1] == pytest.approx(0.45)


# ----- the state ---------------------------------------------------------------------------

def test_the_subspace_is_non_trainable_state_updated_inside_the_compiled_step():
    model = _mlp()
    dense = [model.layers[0], model.layers[2]]
    assert [tuple(layer.subspace.shape) for layer in dense] == [(12, 4), (16, 3)]
    for layer in dense:
        assert any(w is layer.subspace for w in layer.non_trainable_weights)
        assert not any(w is layer.subspace for w in layer.trainable_weights)
    before = [layer.subspace.numpy().copy() for layer in dense]
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    assert not model.run_eagerly
    model.fit(*_xy(), batch_size=16, epochs=2, verbose=0)
    for old, layer in zip(before, dense):
        assert not np.array_equal(old, layer.subspace.numpy())


def test_the_state_round_trips_through_a_keras_file_bit_for_bit(tmp_path):
    keras.utils.set_random_seed(0)
    model = _mlp()
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    x, y = _xy()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.layers[0].subspace_rank == 4
    assert any("subspace" in w.path for w in loaded.non_trainable_weights)
    for a, b in zip(model.weights, loaded.weights):
        assert np.array_equal(a.numpy(), b.numpy()), a.path
    for m in (model, loaded):  # the loaded subspaces are the ones in use
        m.fit(x[:16], y[:16], batch_size=16, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.weights, loaded.weights):
        assert np.array_equal(a.numpy(), b.numpy()), a.path


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("interrupted")


def test_backup_and_restore_resumes_the_state_bit_for_bit(tmp_path):
    x, y = _xy()

    def run(callbacks):
        keras.utils.set_random_seed(0)
        model = _mlp()
        model.compile(keras.optimizers.Adam(1e-2), "mse")
        model.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False, callbacks=callbacks)
        return model

    reference = run([])
    with pytest.raises(RuntimeError, match="interrupted"):
        run([keras.callbacks.BackupAndRestore(str(tmp_path)), _Interrupt()])
    resumed = run([keras.callbacks.BackupAndRestore(str(tmp_path))])
    assert any("subspace" in w.path for w in resumed.weights)
    for a, b in zip(reference.weights, resumed.weights):
        assert np.array_equal(a.numpy(), b.numpy()), a.path


_MIRRORED = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    from lipvae_tf import data
    from lipvae_tf.model import LipschitzVAE
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = LipschitzVAE.from_target(1.0, 8.0, latent_dim=4, hidden_units=(32,), seed=0,
                                         constraint="subspace_clip")
        model.compile(keras.optimizers.Adam(1e-2))
    subspaces = [w for w in model.non_trainable_weights if "subspace" in w.path]
    before = [w.numpy().copy() for w in subspaces]
    model.fit(data.load_sample("train")[0][:128], batch_size=32, epochs=2, verbose=0,
              shuffle=False)
    spread = 0.0
    for w in model.weights:
        copies = [np.asarray(c) for c in strategy.experimental_local_results(w.value)]
        spread = max([spread] + [float(np.max(np.abs(c.astype(np.float64) - copies[0])))
                                 for c in copies[1:]])
    json.dump({"replicas": strategy.num_replicas_in_sync, "spread": spread,
               "subspaces": len(subspaces),
               "moved": [not np.array_equal(b, w.numpy()) for b, w in zip(before, subspaces)]},
              open(sys.argv[1], "w"))
""")


def test_two_mirrored_replicas_keep_bit_identical_subspaces(tmp_path):
    out = tmp_path / "result.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    env.pop("TF_CONFIG", None)
    done = subprocess.run([sys.executable, "-c", _MIRRORED, out], capture_output=True,
                          text=True, timeout=300, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["replicas"] == 2 and result["subspaces"] >= 4 and all(result["moved"])
    assert result["spread"] == 0.0  # every replica's copy of every weight, subspaces included


# ----- soundness never depends on the subspace ---------------------------------------------

def test_after_fit_and_finalize_every_kernel_is_inside_its_bound():
    model = _small_vae()
    layers = _dense_layers(model)
    constrained = [layer for layer in layers if layer.kernel.constraint is not None]
    assert all(isinstance(layer.kernel.constraint, lc.SubspaceClip) for layer in constrained)
    model.compile(keras.optimizers.Adam(3e-3))
    model.fit(X, batch_size=32, epochs=2, verbose=0)
    assert max(lp.dense_norm(layer.kernel.numpy()) for layer in constrained) <= 1.1
    report = model.finalize()
    assert set(report) == {layer.kernel.path for layer in constrained}
    for layer in constrained:
        assert lp.dense_norm(layer.kernel.numpy()) <= 1.0, layer.name
    constants = model.lipschitz_constants()
    assert constants["encoder_mean"] <= model.encoder_mean_budget
    assert constants["decoder"] <= model.decoder_budget
    assert model.certified_radius(data.load_sample("test")[0][:64], 8.0).min() >= 1.0
    assert set(model.finalize().values()) == {0}  # idempotent


def test_a_stale_subspace_misses_the_norm_but_finalize_and_the_certificate_do_not():
    model = _small_vae()
    layer = model.encoder_mean_net.layers[1]
    assert isinstance(layer, ll.LipschitzDense)
    rows, cols = layer.kernel.shape
    singular = np.array([3.0] + list(np.linspace(0.5, 0.1, cols - 1)))
    kernel, u = _kernel(singular, rows, cols, seed=6)
    layer.kernel.assign(kernel.astype(np.float32))
    layer.subspace.assign(u[:, 1:1 + layer.subspace.shape[1]].astype(np.float32))  # misses u_0
    layer.kernel.assign(layer.kernel.constraint(layer.kernel))  # one step's control
    # the subspace iteration starts orthogonal to the top direction and stays there: norm 3
    assert lp.dense_norm(layer.kernel.numpy()) == pytest.approx(3.0, rel=1e-5)
    x = data.load_sample("test")[0][:32]
    assert model.lipschitz_constants()["encoder_mean"] >= 2.9 * model.encoder_mean_budget
    assert model.certified_radius(x, 8.0).max() < 1.0  # the measured norm, not the nominal
    model.finalize()  # the exact clip, whatever the subspace
    assert lp.dense_norm(layer.kernel.numpy()) <= 1.0
    assert model.lipschitz_constants()["encoder_mean"] <= model.encoder_mean_budget
    assert model.certified_radius(x, 8.0).min() >= 1.0


# ----- arguments, serialisation, the default -----------------------------------------------

def test_subspace_clip_serialises_validates_and_refuses_convolutions():
    constraint = lc.SubspaceClip(1.5, rank=7)
    restored = keras.constraints.deserialize(keras.constraints.serialize(constraint))
    assert type(restored) is lc.SubspaceClip and restored.get_config() == constraint.get_config()
    assert isinstance(constraint.exact(), lc.SpectralClip) and constraint.exact().max_norm == 1.5
    with pytest.raises(ValueError, match="layer state"):
        restored(tf.zeros((4, 3)))  # no subspace attached: says how to get one
    with pytest.raises(ValueError, match="rank"):
        lc.SubspaceClip(rank=0)
    with pytest.raises(ValueError, match="max_norm"):
        lc.SubspaceClip(max_norm=0.0)
    with pytest.raises(ValueError, match="subspace_rank"):
        ll.LipschitzDense(4, subspace_rank=0)
    with pytest.raises(ValueError, match="not convolution operators"):
        ll.LipschitzConv2D(4, 3, constraint="subspace_clip")
    with pytest.raises(ValueError, match="SubspaceClip expects a kernel of rank 2"):
        constraint.state_spec((3, 3, 2, 4))
    # a conv VAE under "subspace_clip": dense kernels clip on the subspace, conv kernels exactly
    model = _small_vae(architecture="conv", conv_filters=(4, 8))
    assert isinstance(model.encoder_mean_net.layers[0].kernel.constraint, lc.SpectralClip)
    assert isinstance(model.encoder_mean_net.layers[-1].kernel.constraint, lc.SubspaceClip)
    assert LipschitzVAE.from_config(model.get_config()).constraint == "subspace_clip"
