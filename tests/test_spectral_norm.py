"""Spectral-norm clipping by power iteration (`constraint="spectral_norm"`): its estimate, its
state (a non-trainable weight that travels with .keras files, checkpoints and replicas), and
that soundness never depends on it (finalize clips exactly, certificates measure)."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from lipvae_tf import constraints as lc
from lipvae_tf import data
from lipvae_tf import layers as ll
from lipvae_tf import lipschitz as lp
from lipvae_tf.model import LipschitzVAE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
X = data.load_sample("train")[0][:256]


def _exact_norm(layer) -> float:
    """The exact (dense) or certified (conv) operator norm of a layer's kernel, float64."""
    if isinstance(layer, ll.LipschitzDense):
        return lp.dense_norm(layer.kernel.numpy())
    hw = layer.output_hw if isinstance(layer, ll.LipschitzConv2DTranspose) else layer.input_hw
    return lp.conv_norm_bound(layer.kernel.numpy(), hw, layer.strides, layer.padding)


def _kernel_layers(model: LipschitzVAE) -> list:
    return [layer for layer in lc.iter_layers(list(model.lipschitz_networks().values()))
            if isinstance(layer, (ll.LipschitzDense, ll._LipschitzConvBase))]


def _small_vae(**kwargs) -> LipschitzVAE:
    keras.utils.set_random_seed(0)
    shape = dict(latent_dim=4, hidden_units=(32,), conv_filters=(4, 8), seed=0,
                 constraint="spectral_norm", posterior_std=None)  # a learned std, as measured
    return LipschitzVAE.from_target(1.0, 8.0, **{**shape, **kwargs})


def _mlp(**kwargs) -> keras.Sequential:
    kwargs.setdefault("constraint", "spectral_norm")
    return keras.Sequential([
        keras.Input((12, 12, 2)),
        ll.LipschitzConv2D(4, 3, strides=2, **kwargs),
        ll.GroupSort(),
        keras.layers.Flatten(),
        ll.LipschitzDense(16, lipschitz=2.0, **kwargs),
        ll.GroupSort(),
        ll.LipschitzDense(3, **kwargs),
    ])


def _xy(count: int = 64):
    rng = np.random.default_rng(1)
    return (rng.random((count, 12, 12, 2), dtype=np.float32),
            rng.normal(size=(count, 3)).astype(np.float32))


# ----- the estimate ------------------------------------------------------------------------

@pytest.mark.parametrize("padding,strides,transpose", [
    ("same", 2, False), ("valid", 1, False), ("circular", 1, False), ("same", 2, True)])
def test_power_iteration_bounds_the_conv_norm_from_below_and_converges(padding, strides,
                                                                       transpose):
    kind = ll.LipschitzConv2DTranspose if transpose else ll.LipschitzConv2D
    layer = kind(5, 3, strides=strides, padding=padding, constraint="spectral_norm")
    layer.build((None, 8, 8, 3))
    layer.kernel.assign(np.random.default_rng(2).normal(size=layer.kernel.shape) * 0.7)
    exact = _exact_norm(layer)
    constraint = layer.kernel.constraint
    grid = constraint._grid(layer.kernel.shape)
    vector = tf.random.normal(layer.power_vector.shape, seed=3)
    estimates = [float(lc.power_iteration(layer.kernel.value, vector, n, grid,
                                          constraint.strides)[0]) for n in (1, 3, 200)]
    assert all(e <= exact * (1 + 1e-5) for e in estimates)  # never above: a lower bound
    assert estimates[0] <= estimates[1] * (1 + 1e-6)
    assert estimates[-1] == pytest.approx(exact, rel=1e-4)  # the operator the bound certifies


def test_power_iteration_on_a_dense_kernel_is_a_lower_bound_that_converges():
    kernel = tf.constant(np.random.default_rng(4).normal(size=(40, 25)), tf.float32)
    exact = lp.dense_norm(kernel.numpy())
    vector = tf.random.normal((40,), seed=5)
    one, _ = lc.power_iteration(kernel, vector, 1)
    many, top = lc.power_iteration(kernel, vector, 300)
    assert float(one) <= exact and float(many) == pytest.approx(exact, rel=1e-5)
    u = np.linalg.svd(kernel.numpy().astype(np.float64))[0][:, 0]
    assert abs(float(np.dot(top.numpy(), u))) == pytest.approx(1.0, abs=1e-4)


def test_the_clip_rescales_only_kernels_estimated_outside():
    layer = ll.LipschitzDense(6, constraint="spectral_norm")
    layer.build((None, 9))
    inside = layer.kernel.numpy() * np.float32(0.5)
    layer.kernel.assign(inside)
    assert np.array_equal(layer.kernel.constraint(layer.kernel).numpy(), inside)
    layer.kernel.assign(inside * np.float32(8.0))  # norm 4
    for _ in range(30):  # warm-started: each call is one training step's iteration
        layer.kernel.assign(layer.kernel.constraint(layer.kernel))
    assert lp.dense_norm(layer.kernel.numpy()) == pytest.approx(1.0, abs=1e-5)


# ----- the state (of spectral_norm and of subspace_clip, whose state tests live here too) ----

def _subspace_mlp() -> keras.Sequential:
    """The same network under the subspace clip (conv: per frequency block), on _xy's inputs."""
    return _mlp(constraint="subspace_clip", subspace_rank=4)


# constraint kind: (model factory, name of the state weight on each constrained layer)
STATEFUL = {"spectral_norm": (_mlp, "power_vector"), "subspace_clip": (_subspace_mlp, "subspace")}


@pytest.mark.parametrize("kind", sorted(STATEFUL))
def test_the_state_is_non_trainable_and_updated_inside_the_compiled_step(kind):
    make, state = STATEFUL[kind]
    model = make()
    owners = [layer for layer in model.layers if hasattr(layer, state)]
    assert len(owners) == 3  # the conv kernel and both dense ones
    for layer in owners:
        assert any(w is getattr(layer, state) for w in layer.non_trainable_weights)
        assert not any(w is getattr(layer, state) for w in layer.trainable_weights)
    before = [getattr(layer, state).numpy().copy() for layer in owners]
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    assert not model.run_eagerly
    model.fit(*_xy(), batch_size=16, epochs=2, verbose=0)
    for old, layer in zip(before, owners):
        assert not np.array_equal(old, getattr(layer, state).numpy()), layer.name


@pytest.mark.parametrize("kind", sorted(STATEFUL))
def test_the_state_round_trips_through_a_keras_file_bit_for_bit(tmp_path, kind):
    make, state = STATEFUL[kind]
    keras.utils.set_random_seed(0)
    model = make()
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    x, y = _xy()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert all(a.path.endswith(b.path) for a, b in zip(model.weights, loaded.weights))
    assert any(w.path.endswith("/" + state) for w in loaded.non_trainable_weights)
    for a, b in zip(model.weights, loaded.weights):
        assert np.array_equal(a.numpy(), b.numpy()), a.path
    # the loaded states are the ones in use: one more step gives the same weights, bit for bit
    for m in (model, loaded):
        m.fit(x[:16], y[:16], batch_size=16, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(model.weights, loaded.weights):
        assert np.array_equal(a.numpy(), b.numpy()), a.path


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            self.saved = [w.numpy().copy() for w in self.model.weights]
            raise RuntimeError("interrupted")


@pytest.mark.parametrize("kind", sorted(STATEFUL))
def test_backup_and_restore_resumes_the_state_bit_for_bit(tmp_path, kind):
    make, state = STATEFUL[kind]
    x, y = _xy()

    def run(callbacks):
        keras.utils.set_random_seed(0)
        model = make()
        model.compile(keras.optimizers.Adam(1e-2), "mse")
        model.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False, callbacks=callbacks)
        return model

    reference = run([])
    interrupt = _Interrupt()
    with pytest.raises(RuntimeError, match="interrupted"):
        run([keras.callbacks.BackupAndRestore(str(tmp_path)), interrupt])
    # the checkpoint holds the state at the interruption ...
    keras.utils.set_random_seed(1)  # other initial states: the checkpoint must overwrite them
    fresh = make()
    fresh.compile(keras.optimizers.Adam(1e-2), "mse")
    fresh.fit(x[:16], y[:16], epochs=1, verbose=0)  # builds the optimizer
    fresh.load_weights(tmp_path / "latest.weights.h5")
    assert any(w.path.endswith("/" + state) for w in fresh.weights)
    for value, w in zip(interrupt.saved, fresh.weights):
        assert np.array_equal(value, w.numpy()), w.path
    # ... and the resumed run ends where the uninterrupted one does
    resumed = run([keras.callbacks.BackupAndRestore(str(tmp_path))])
    for a, b in zip(reference.weights, resumed.weights):
        assert np.array_equal(a.numpy(), b.numpy()), a.path


@pytest.mark.parametrize("architecture,kind", [("mlp", "spectral_norm"), ("conv", "spectral_norm"),
                                               ("mlp", "subspace_clip"),
                                               ("conv", "subspace_clip")])
def test_two_mirrored_replicas_keep_bit_identical_states(tmp_path, architecture, kind):
    out, saved = tmp_path / "result.json", tmp_path / "mirrored.keras"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    env.pop("TF_CONFIG", None)
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "mirrored_state_worker.py"),
                           out, architecture, saved, kind, STATEFUL[kind][1]],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["replicas"] == 2
    assert result["states"] == result["owners"] >= 4 and all(result["moved"])
    assert result["spread"] == 0.0  # every replica's copy of every weight, states included
    model = keras.saving.load_model(saved)  # a mirrored model's state loads on one device
    model.finalize()
    assert all(_exact_norm(layer) <= 1.0 for layer in _kernel_layers(model))


# ----- soundness never depends on the estimate ---------------------------------------------

@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_after_fit_and_finalize_every_kernel_is_inside_its_bound(architecture):
    model = _small_vae(architecture=architecture)
    assert model.constraint == "spectral_norm"
    layers = _kernel_layers(model)
    assert all(isinstance(layer.kernel.constraint, lc.SpectralNormClip) for layer in layers)
    before = [layer.kernel.numpy().copy() for layer in layers]
    model.compile(keras.optimizers.Adam(3e-3))
    model.fit(X, batch_size=32, epochs=2, verbose=0)
    assert all(not np.array_equal(b, layer.kernel.numpy()) for b, layer in zip(before, layers))
    # the per-step estimate keeps the kernels near the ball ...
    assert max(_exact_norm(layer) for layer in layers) <= 1.1
    report = model.finalize()
    assert set(report) == {layer.kernel.path for layer in layers}
    # ... and finalize puts every one inside it, exactly measured
    for layer in layers:
        assert _exact_norm(layer) <= 1.0, layer.name
    constants = model.lipschitz_constants()
    assert constants["encoder_mean"] <= model.encoder_mean_budget
    assert constants["decoder"] <= model.decoder_budget
    assert model.certified_radius(data.load_sample("test")[0][:64], 8.0).min() >= 1.0
    again = model.finalize()  # idempotent
    assert set(again.values()) == {0}


def test_a_stale_vector_misses_the_norm_but_finalize_and_the_certificate_do_not():
    model = _small_vae()
    layer = model.encoder_mean_net.layers[1]
    assert isinstance(layer, ll.LipschitzDense)
    rows, cols = layer.kernel.shape
    rng = np.random.default_rng(6)
    u, _ = np.linalg.qr(rng.normal(size=(rows, cols)))
    v, _ = np.linalg.qr(rng.normal(size=(cols, cols)))
    singular = np.linspace(0.5, 0.1, cols)
    singular[0] = 3.0
    layer.kernel.assign(((u * singular) @ v.T).astype(np.float32))
    layer.power_vector.assign(u[:, 1].astype(np.float32))  # orthogonal to the top direction
    layer.kernel.assign(layer.kernel.constraint(layer.kernel))  # one step's control
    # the estimate (0.5, the second singular value) says "inside": the kernel stays at norm 3
    assert lp.dense_norm(layer.kernel.numpy()) == pytest.approx(3.0, rel=1e-5)
    assert abs(float(np.dot(layer.power_vector.numpy(), u[:, 0]))) < 1e-3
    # un-finalized, the certificate uses the measured norm (3x the layer's factor) ...
    x = data.load_sample("test")[0][:32]
    measured = np.prod([dense.lipschitz * _exact_norm(dense)
                        for dense in model.encoder_mean_net.layers
                        if isinstance(dense, ll.LipschitzDense)])
    constants = model.lipschitz_constants()
    assert constants["encoder_mean"] >= 2.9 * model.encoder_mean_budget
    assert constants["encoder_mean"] == pytest.approx(measured, rel=1e-6)
    radius = model.certified_radius(x, 8.0)
    assert radius.max() < 1.0  # below the design's radius: the measured norm, not the nominal
    # ... and finalize clips with the exact norm, whatever the vector
    model.finalize()
    assert lp.dense_norm(layer.kernel.numpy()) <= 1.0
    assert abs(float(np.dot(layer.power_vector.numpy(), u[:, 0]))) < 1e-3  # still stale
    assert model.lipschitz_constants()["encoder_mean"] <= model.encoder_mean_budget
    assert model.certified_radius(x, 8.0).min() >= 1.0


# ----- Björck every k steps, the kinds as arguments ----------------------------------------

def test_bjorck_every_k_steps_orthonormalises_on_schedule_and_clips_in_between():
    layer = ll.LipschitzDense(8, constraint="bjorck", bjorck_iterations=30, bjorck_every=3)
    layer.build((None, 12))
    assert int(layer.constraint_step.numpy()) == 1  # the build's projection was step 0
    kernel = np.random.default_rng(7).normal(size=(12, 8)).astype(np.float32)
    singular = []
    for _ in range(3):  # steps 1 and 2: spectral-norm clipping, step 3: Björck
        layer.kernel.assign(kernel)
        layer.kernel.assign(layer.kernel.constraint(layer.kernel))
        singular.append(np.linalg.svd(layer.kernel.numpy().astype(np.float64), compute_uv=False))
    assert singular[0].min() < 0.5 and singular[1].min() < 0.5  # rescaled, not orthonormal
    np.testing.assert_allclose(singular[2], 1.0, atol=1e-4)
    assert int(layer.constraint_step.numpy()) == 4


def test_kinds_are_layer_model_and_command_line_arguments(tmp_path):
    from absl import flags

    from lipvae_tf import train

    kinds = {"spectral_norm": lc.SpectralNormClip, "bjorck": lc.BjorckOrthonormal,
             "spectral": lc.SpectralClip, "subspace_clip": lc.SubspaceClip}
    for kind, cls in kinds.items():
        model = _small_vae(constraint=kind, architecture="conv")
        assert model.get_config()["constraint"] == kind
        dense = model.encoder_mean_net.layers[-1]
        conv = model.encoder_mean_net.layers[0]
        assert isinstance(dense.kernel.constraint, cls)
        # Björck is for matrices: conv kernels take the conv default, the subspace clip
        conv_cls = lc.SubspaceClip if kind in lc.MATRIX_KINDS else cls
        assert isinstance(conv.kernel.constraint, conv_cls)
        assert hasattr(dense, "power_vector") == (kind == "spectral_norm")
        restored = LipschitzVAE.from_config(model.get_config())
        assert restored.constraint == kind
    # configs saved before the argument existed (the zoo's) keep their Björck / exact clip
    legacy = _small_vae(architecture="conv").get_config()
    del legacy["constraint"]
    old = LipschitzVAE.from_config(legacy)
    assert old.constraint == "bjorck"
    conv_config = ll.LipschitzConv2D(4, 3).get_config()
    del conv_config["constraint"]
    assert ll.LipschitzConv2D.from_config(conv_config).constraint == "spectral"
    dense_config = ll.LipschitzDense(4).get_config()
    del dense_config["constraint"]  # layers saved before the argument, or under Björck's default
    assert ll.LipschitzDense.from_config(dense_config).constraint == "bjorck"
    with pytest.raises(ValueError, match="constraint must be one of"):
        LipschitzVAE(constraint="orthogonal")
    with pytest.raises(ValueError, match="not convolution"):
        ll.LipschitzConv2D(4, 3, constraint="bjorck")
    parser = flags.FlagValues()
    parser["constraint"] = train.flags.FLAGS["constraint"]
    parser(["lipvae-train", "--constraint=spectral_norm"])
    assert parser.constraint == "spectral_norm"
    parser(["lipvae-train", "--constraint=bjorck"])
    assert parser.constraint == "bjorck"
    parser(["lipvae-train", "--constraint=subspace_clip"])
    assert parser.constraint == "subspace_clip"
    assert train.TrainConfig().constraint == "subspace_clip"
    # chosen by measurement (BENCHMARKS.md)
    assert LipschitzVAE().constraint == lc.DEFAULT_CONSTRAINT == "subspace_clip"
    assert ll.LipschitzConv2D(4, 3).constraint == lc.DEFAULT_CONV_CONSTRAINT == "subspace_clip"
    assert train.build_model(train.TrainConfig(constraint="bjorck", hidden_units=(16,),
                                               latent_dim=4)).constraint == "bjorck"


def test_spectral_norm_clip_serialises_and_validates():
    constraint = lc.SpectralNormClip(1.5, iterations=2, input_hw=(28, 28), strides=(2, 2),
                                     padding="valid")
    restored = keras.constraints.deserialize(keras.constraints.serialize(constraint))
    assert type(restored) is lc.SpectralNormClip
    assert restored.get_config() == constraint.get_config()
    assert isinstance(constraint.exact(), lc.SpectralClip)
    with pytest.raises(ValueError, match="layer state"):
        restored(tf.zeros((4, 3)))  # no vector attached: says how to get one
    for make, match in [(lambda: lc.SpectralNormClip(iterations=0), "iterations"),
                        (lambda: lc.SpectralNormClip(max_norm=-1.0), "max_norm"),
                        (lambda: lc.SpectralNormClip(padding="reflect"), "padding"),
                        (lambda: lc.BjorckOrthonormal(every=0), "every"),
                        (lambda: ll.LipschitzDense(4, power_iterations=0), "power_iterations"),
                        (lambda: ll.LipschitzDense(4, bjorck_every=0), "bjorck_every")]:
        with pytest.raises(ValueError, match=match):
            make()
