"""Absolute round-off of the float32 forward pass (lipvae_tf.forward_error, docs/theory.md section
15): the bound covers what the graph computes, and the certificate that uses it survives weights
built to exploit round-off, which the default certificate does not."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

import lipvae_tf as lv
from lipvae_tf import attacks
from lipvae_tf import forward_error as fe
from lipvae_tf import layers as ll
from lipvae_tf.model import LipschitzVAE


def _chain(kind: str, dtype: str = "float32") -> keras.Sequential:
    if kind == "dense":
        return keras.Sequential([
            keras.Input((32,), dtype=dtype),
            ll.LipschitzDense(24, lipschitz=1 / 3, dtype=dtype),
            ll.GroupSort(2, dtype=dtype),
            ll.LipschitzDense(16, lipschitz=7.0, dtype=dtype),
            ll.MaxMin(dtype=dtype),
            ll.LipschitzDense(6, lipschitz=0.1, dtype=dtype),
        ])
    return keras.Sequential([
        keras.Input((8, 8, 2), dtype=dtype),
        ll.LipschitzConv2D(4, 3, padding="same", lipschitz=1 / 3, dtype=dtype),
        ll.GroupSort(2, dtype=dtype),
        ll.LipschitzConv2DTranspose(2, 3, strides=2, padding="same", lipschitz=3.0, dtype=dtype),
        keras.layers.Flatten(dtype=dtype),
        ll.LipschitzDense(5, lipschitz=1 / 7, dtype=dtype),
    ])


@pytest.mark.parametrize("kind", ["dense", "conv"])
@pytest.mark.parametrize("bias_scale", [1.0, 2.0**20])
def test_the_bound_covers_the_float32_graph_against_its_exact_map(kind, bias_scale):
    """float32 outputs against the same weights evaluated in float64 (whose own error, ~1e-16
    relative, is far below float32's), at measured inputs and at inputs within the deviation."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    net32, net64 = _chain(kind), _chain(kind, "float64")
    for layer in net32.layers:
        if getattr(layer, "bias", None) is not None:  # huge biases: values dwarf differences
            layer.bias.assign(rng.normal(size=layer.bias.shape).astype("float32") * bias_scale)
    net64.set_weights([w.astype(np.float64) for w in net32.get_weights()])
    shape = net32.input_shape[1:]
    x = (rng.uniform(size=(64, *shape)) * 40).astype("float32")
    deviation = 3.0
    step = rng.normal(size=x.shape)
    step *= deviation * rng.uniform(size=(64,) + (1,) * len(shape)) / np.linalg.norm(
        step.reshape(64, -1), axis=1).reshape((64,) + (1,) * len(shape))
    x_near = (x + step).astype("float32")
    assert np.all(np.linalg.norm((x_near - x).reshape(64, -1).astype(np.float64), axis=1)
                  <= deviation)

    norms, outputs = fe.activation_norms(net32, tf.constant(x))
    centre, near = fe.chain_forward_error(fe.chain_errors(net32), norms, deviation=deviation)
    for inputs, bound in ((x, centre), (x_near, near)):
        computed = net32(inputs).numpy().astype(np.float64).reshape(64, -1)
        exact = net64(inputs.astype(np.float64)).numpy().reshape(64, -1)
        error = np.linalg.norm(computed - exact, axis=1)
        assert np.all(error <= bound), (error / bound).max()
        assert error.max() > 0  # the graph does round: the comparison is not vacuous
    np.testing.assert_array_equal(outputs.numpy(), net32(x).numpy())
    if bias_scale > 1:  # the absolute error is what the relative margins miss
        assert centre.min() > 1e-3


def test_unknown_layers_have_no_forward_error_bound():
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(TypeError, match="no forward-error bound for layer .* Dense"):
        fe.chain_errors(net)


def test_product_roundoff_follows_tensor_float_32():
    expected = (2.0**-10 + 2.0**-22 if tf.config.list_logical_devices("GPU")
                and tf.config.experimental.tensor_float_32_execution_enabled() else 0.0)
    assert fe.product_roundoff("float32") == expected
    assert fe.product_roundoff("float64") == 0.0


def _exploiting_model(r: float):
    """The default model (fixed std 0.05, mean reconstruction, `best`) with no hidden layers and
    isometric kernels, then an encoder bias of 2^23 that the decoder bias cancels: the exact map,
    so every constant and the default certificate, is unchanged, but float32 quantises mu to
    integers, so the 0.05 noise vanishes from z (found by an adversarial review, 2026-12-01)."""
    m, side, p = 10, 28, 0.5
    model = lv.LipschitzVAE.from_target(0.5, r, p, latent_dim=m, hidden_units=(),
                                        image_shape=(side, side, 1), min_lipschitz=1e-3, seed=0)
    rng = np.random.default_rng(0)
    encoder_kernel = np.linalg.qr(rng.standard_normal((side * side, m)))[0].astype("float32")
    decoder_kernel = np.linalg.qr(rng.standard_normal((side * side, m)))[0].T.astype("float32")
    encoder, decoder = model.encoder_mean_net.layers[-1], model.decoder_net.layers[0]
    encoder.kernel.assign(encoder_kernel)
    decoder.kernel.assign(decoder_kernel)
    model.finalize()
    c_enc, c_dec = (float(np.float32(layer.lipschitz)) for layer in (encoder, decoder))
    big = 2.0**23
    kernel64 = encoder_kernel.astype(np.float64)
    # mu(x) - 2^23 = 0.499 per coordinate: just below the rounding tie
    shift = 0.499 / c_enc - 0.5 * kernel64.sum(0)
    x = (0.5 + kernel64 @ shift).reshape(1, side, side, 1).astype("float32")
    encoder.bias.assign(np.full(m, big, np.float32))
    decoder.bias.assign((-(np.full((1, m), big) @ decoder_kernel.astype(np.float64))
                         * c_dec)[0].astype("float32"))
    return model, x


def test_the_absolute_certificate_survives_weights_that_exploit_round_off():
    r, p, draws = 0.1, 0.5, 4000
    model, x = _exploiting_model(r)
    default = model.certified_radius(x, r, p)[0]
    assert default > 0.5  # the exact map's certificate, blind to the quantised mu
    pair = tf.constant(np.repeat(x, draws, 0))
    first = model._reconstruct_batch(pair, True).numpy().reshape(draws, -1).astype(np.float64)
    second = model._reconstruct_batch(pair, True).numpy().reshape(draws, -1).astype(np.float64)
    kept = int(np.sum(np.linalg.norm(first - second, axis=1) <= r))
    upper = stats.beta.ppf(0.999, kept + 1, draws - kept)  # Clopper-Pearson, one-sided
    # even without a perturbation the float32 reconstructions move by more than r: the default
    # certificate is caught (this check must be able to fail, or the test proves nothing) ...
    assert upper < p
    # ... and the certificate with the absolute round-off certifies nothing here
    assert model.certified_radius(x, r, p, absolute_rounding=True)[0] == 0.0
    slack, level = model.absolute_rounding_slack(x, model.reconstruction_tolerance(r), p)
    assert slack[0] > r and level[0] == pytest.approx(p + 2 * lv.model.NOISE_TAIL * (1 - p))


def _std_jumping_model(std_cap):
    """A learned std whose network's float32 round-off jumps (an adversarial review,
    2026-12-01): a bias of 2^30 cancelled exactly in the next layer quantises the std's
    pre-activation to steps of 64, so a perturbation of 0.01 moves the computed std from 0.007
    to 4 while s(x) + M_sigma d promises at most 0.07. The mean and the decoder are benign."""
    m = 2
    model = LipschitzVAE(m, encoder_mean=1.0, encoder_std=1.0, decoder=2.0, std_cap=std_cap,
                         hidden_units=(2, 2), image_shape=(4, 4, 1), likelihood="bernoulli",
                         reconstruction="parameter", seed=0)
    kernels = [layer for layer in model.encoder_std_net.layers if hasattr(layer, "kernel")]
    big = np.float32(2.0**30)
    first = np.zeros((16, 2), np.float32)
    first[:, 0] = 16.0  # norm 64
    kernels[0].kernel.assign(first)
    kernels[0].bias.assign([big, 0.0])
    kernels[1].kernel.assign(np.eye(2, dtype=np.float32))
    kernels[1].bias.assign([-(big * np.float32(kernels[1].lipschitz)), 0.0])  # cancels exactly
    last = np.zeros((2, m), np.float32)
    last[0] = 0.1 / np.sqrt(m)
    kernels[2].kernel.assign(last)
    kernels[2].bias.assign([-5.0] * m)
    x = np.full((1, 4, 4, 1), 0.24875, np.float32)  # x W0 just below 64: 2^30 + it rounds down
    return model, x, np.full_like(x, 0.0025)  # ||delta|| = 0.01, along W0's column


def test_the_absolute_certificate_bounds_a_learned_std_by_its_cap_alone():
    r, p, draws = 0.5, 0.5, 4000
    model, x, delta = _std_jumping_model(std_cap=10.0)
    norm = float(np.linalg.norm(delta))
    sigma_x, sigma_moved = (model.encoder_std_net(v).numpy() for v in (x, x + delta))
    assert np.linalg.norm(sigma_moved) > 50 * np.linalg.norm(sigma_x)  # the jump
    kept = int(attacks.robust_counts(model, x, delta, r, draws, seed=1)[0])
    # the perturbation breaks the property (this check must be able to fail) ...
    assert float(attacks.clopper_pearson_upper(kept, draws, 0.999)) < p
    # ... which the certificates that trust s + M_sigma d claim to survive (the exact map's
    # default, and what absolute_rounding=True gave before the std was bounded by its cap)
    assert model.certified_radius(x, r, p)[0] > norm
    for method in ("paper", "markov", "chi2"):
        assert model.certified_radius(x, r, p, method=method)[0] > norm
    # the absolute certificate uses the cap alone for sigma(x'): below the broken perturbation
    assert model.certified_radius(x, r, p, absolute_rounding=True)[0] < norm
    with pytest.raises(ValueError, match="std cap alone"):
        model.certified_radius(x, r, p, method="chi2", absolute_rounding=True)
    with pytest.raises(ValueError, match="std cap alone"):
        model.certified_radius(x, r, p, use_std_cap=False, absolute_rounding=True)
    uncapped, x, _ = _std_jumping_model(std_cap=None)
    with pytest.raises(ValueError, match="std_cap"):
        uncapped.certified_radius(x, r, p, absolute_rounding=True)
    with pytest.raises(ValueError, match="needs a std_cap"):
        uncapped.absolute_rounding_slack(x, r, p)


def _unconstrained_std_model(image_shape, hidden):
    return LipschitzVAE(2 if image_shape == (4, 4, 1) else 1, encoder_mean=1.0, decoder=1.0,
                        std_cap=0.1, posterior_std=None, constrain_std=False,
                        hidden_units=(hidden,), image_shape=image_shape,
                        likelihood="bernoulli", reconstruction="parameter", seed=0)


def _dense_layers(network):
    return [layer for layer in network.layers if hasattr(layer, "kernel")]


def test_the_absolute_certificate_survives_a_std_network_that_overflows():
    """An adversarial review, 2026-12-01: an unconstrained std network with kernels of 1e37
    overflows to inf at x + delta, StdCap gave inf * 0 = NaN, and the reconstruction at x + delta
    was NaN (0 of 2000 draws within r) inside a certified radius of 0.36. The cap now outputs
    the projection's limit, so ||sigma(x')|| <= S holds for what the graph computes."""
    model = _unconstrained_std_model((4, 4, 1), 4)
    first, second = _dense_layers(model.encoder_std_net)
    for layer in (first, second):
        kernel = np.zeros(layer.kernel.shape, np.float32)
        kernel[0, 0] = 1e37
        layer.kernel.assign(kernel)
        layer.bias.assign(np.zeros(layer.bias.shape, np.float32))
    x = np.full((1, 4, 4, 1), 0.5, np.float32)
    x[0, 0, 0, 0] = 0.0
    delta = np.zeros_like(x)
    delta[0, 0, 0, 0] = 1e-3  # 1e34 * 1e37 overflows
    r, p, draws = 0.5, 0.5, 2000
    assert model.certified_radius(x, r, p, absolute_rounding=True)[0] > 1e-3
    sigma = model.posterior_params(tf.constant(x + delta))[1].numpy().astype(np.float64)
    assert np.all(np.isfinite(sigma))
    assert np.linalg.norm(sigma) <= model.std_cap_bound()
    kept = int(attacks.robust_counts(model, x, delta, r, draws, seed=1)[0])
    assert float(attacks.clopper_pearson_lower(kept, draws, 0.999)) >= p


def test_the_absolute_certificate_bounds_the_std_at_x_by_its_cap():
    """An adversarial review, 2026-12-01: the float32 std at x depends on the batch it is
    computed in (TF's matrix product with one output column sums a batch of 1 in another
    order than a batch of 2). Measured alone, sigma(x) = 1e-4; sampled in a batch of 2, the
    cap S. The measured s(x) certified a radius > 0 although the property fails at delta = 0;
    under absolute_rounding=True the std at x is bounded by the cap too."""
    hidden = 64
    model = _unconstrained_std_model((2, 2, 1), hidden)
    first, second = _dense_layers(model.encoder_std_net)
    first.kernel.assign(np.zeros(first.kernel.shape, np.float32))
    bias = np.zeros(hidden, np.float32)
    bias[[0, 9]] = [2.0**30, -(2.0**30)]
    bias[[1, 4, 16, 32]] = 1.0
    first.bias.assign(bias)  # constant hidden values, sorted pairs kept by GroupSort
    kernel = np.zeros(second.kernel.shape, np.float32)
    kernel[[0, 1, 4, 9, 16, 32], 0] = -50.0  # -200 exactly, -100 or -50 in float32
    second.kernel.assign(kernel)
    second.bias.assign([75.0])
    for layer in _dense_layers(model.encoder_mean_net):
        layer.kernel.assign(1e-4 * np.eye(*layer.kernel.shape, dtype=np.float32))
        layer.bias.assign(np.zeros(layer.bias.shape, np.float32))
    decoder = _dense_layers(model.decoder_net)
    for layer, bias in zip(decoder, ([0.0] + [-1000.0] + [0.0] * (hidden - 2), [0.0] * 4)):
        kernel = np.zeros(layer.kernel.shape, np.float32)
        kernel[0, 0] = 1.0
        layer.kernel.assign(kernel)
        layer.bias.assign(np.asarray(bias, np.float32))
    x = np.full((1, 2, 2, 1), 0.5, np.float32)
    pair = np.concatenate([x, x])
    alone, in_pair = (model.std_statistics(v)[0][0] for v in (x, pair))
    assert alone < 1e-3 and in_pair > 0.09  # the batch decides the std
    r = float(1.1 * np.sqrt(lv.bounds.chi2_quantile_upper(1, 0.5)) * 0.1
              * model.lipschitz_constants()["decoder"])
    draws = 20000
    kept = int(attacks.robust_counts(model, pair, np.zeros_like(pair), r, draws, seed=3)[0])
    # the property fails at delta = 0 when f(x) is sampled in a batch of 2 (able to fail) ...
    assert float(attacks.clopper_pearson_upper(kept, draws, 0.999)) < 0.5
    # ... which the exact map's certificate, with the std measured alone, claims to hold ...
    assert model.certified_radius(x, r, 0.5)[0] > 0
    # ... and the certificate under absolute round-off does not: it never measures the std
    assert model.certified_radius(x, r, 0.5, absolute_rounding=True)[0] == 0.0
    model.std_statistics = None  # a call would raise TypeError
    assert model.certified_radius(x, r, 0.5, absolute_rounding=True)[0] == 0.0


def test_the_absolute_certificate_costs_little_on_a_trained_model(trained_default_model):
    model, images = trained_default_model
    exact = model.certified_radius(images, 8.0, 0.5)
    covered = model.certified_radius(images, 8.0, 0.5, absolute_rounding=True)
    assert np.all(covered <= exact) and np.all(covered >= 0.9 * exact)
    assert np.all(covered < exact)  # the slack is never 0: rounding is absolute
    with pytest.raises(TypeError, match="absolute_rounding must be a bool"):
        model.certified_radius(images, 8.0, 0.5, absolute_rounding="yes")
    with pytest.raises(ValueError, match="p must be in"):
        model.absolute_rounding_slack(images, 8.0, 1.0)


def test_the_absolute_certificate_uses_the_verified_constants(trained_default_model):
    """The constants that come with the forward-error terms (each kernel measured once) are
    `lipschitz_constants`' bit for bit: the radius is the exact certificate's formula at
    r - slack and p'."""
    model, images = trained_default_model
    r = model.reconstruction_tolerance(8.0)
    slack, level = model.absolute_rounding_slack(images, r, 0.5)
    c = model.lipschitz_constants()
    s, _ = model.std_statistics(images)
    expected = np.minimum(
        lv.bounds.radius("best", c["encoder_mean"], c["encoder_std"], c["decoder"], s, r - slack,
                         level, latent_dim=model.latent_dim, gamma=model.posterior_std_bound()),
        (r - slack) / (c["encoder_mean"] * c["decoder"]))
    np.testing.assert_array_equal(
        model.certified_radius(images, 8.0, 0.5, absolute_rounding=True), expected)


@pytest.fixture(scope="module")
def trained_default_model():
    keras.utils.set_random_seed(1)
    images = lv.data.load_sample("train")[0][:512]
    model = lv.LipschitzVAE.from_target(1.0, 8.0, latent_dim=4, hidden_units=(64, 64), seed=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(images, epochs=1, batch_size=128, verbose=0)
    model.finalize()
    return model, images[:64]


def test_the_bound_is_nearly_attained_by_a_rounded_bias():
    """Identity kernel, bias 2^20 (float32 spacing 0.125 there), inputs just below half a
    spacing: every output rounds down by almost u |value|, the offset term u ||b|| of the
    bound. A bound 5 % too small would fail here (the first test alone would not notice: its
    errors are far below the worst case)."""
    n = 16
    layer = ll.LipschitzDense(n, lipschitz=1.0, kernel_initializer="identity")
    net = keras.Sequential([keras.Input((n,)), layer])
    layer.kernel.assign(np.eye(n, dtype="float32"))
    layer.bias.assign(np.full(n, 2.0**20, np.float32))
    x = np.full((1, n), 0.0624, np.float32)
    computed = net(x).numpy().astype(np.float64)
    exact = x.astype(np.float64) + 2.0**20
    error = np.linalg.norm(computed - exact)
    norms, _ = fe.activation_norms(net, tf.constant(x))
    bound = fe.chain_forward_error(fe.chain_errors(net), norms)[0][0]
    assert error <= bound
    assert error >= 0.95 * bound, (error, bound)


@pytest.mark.parametrize("kind", [ll.LipschitzConv2D, ll.LipschitzConv2DTranspose])
def test_a_conv_bias_counts_at_every_output_position(kind):
    """The test above for a 1x1 convolution: the bias is added at each of the 6 x 6 pixels, so
    the rounding offset is u sqrt(36) ||b||, not u ||b|| (a review: the error of a conv layer
    was 5-8.5x its bound)."""
    channels = 4
    layer = kind(channels, 1, padding="same", lipschitz=1.0, constraint="spectral")
    net = keras.Sequential([keras.Input((6, 6, channels)), layer])
    layer.kernel.assign(np.eye(channels, dtype="float32")[None, None])
    layer.bias.assign(np.full(channels, 2.0**20, np.float32))
    x = np.full((1, 6, 6, channels), 0.0624, np.float32)
    computed = net(x).numpy().astype(np.float64)
    error = np.linalg.norm(computed - (x.astype(np.float64) + 2.0**20))
    norms, _ = fe.activation_norms(net, tf.constant(x))
    bound = fe.chain_forward_error(fe.chain_errors(net), norms)[0][0]
    assert error <= bound
    assert error >= 0.95 * bound, (error, bound)


def test_a_dense_bias_counts_at_every_position_of_a_higher_rank_input():
    """An adversarial review (2026-12-04): a LipschitzDense on (1024, 1) inputs adds its bias at
    each of the 1024 positions, but the offset counted it once: error 1.9e-6 against a bound
    of 6.0e-8 (31.7 x, about sqrt(1024))."""
    positions = 1024
    dense = ll.LipschitzDense(1, lipschitz=1.0, bias_initializer="ones")
    net = keras.Sequential([keras.Input((positions, 1)), dense])
    dense.kernel.assign(np.array([[np.float32(0.99 * 2.0**-24)]], np.float32))
    x = np.ones((1, positions, 1), np.float32)
    computed = net(x).numpy().astype(np.float64)
    exact = x.astype(np.float64) * float(dense.kernel.numpy()[0, 0]) + 1.0
    error = np.linalg.norm(computed - exact)
    norms, _ = fe.activation_norms(net, tf.constant(x))
    bound = fe.chain_forward_error(fe.chain_errors(net), norms)[0][0]
    assert error > 1e-6  # every position rounds 1 + 0.99 u down to 1
    assert error <= bound <= 3 * error
    unbuilt = ll.LipschitzDense(1)
    unbuilt.build((None, 4))  # no graph call: its input's positions are unknown
    with pytest.raises(ValueError, match="has no known input shape"):
        fe.layer_error(unbuilt)


@pytest.mark.parametrize("cast", [ll.GroupSort, keras.layers.Flatten])
def test_a_chain_of_several_compute_dtypes_is_refused(cast):
    """An adversarial review (2026-12-04): a float32 GroupSort (or Flatten) between float64
    layers rounds its input to float32, which the terms did not count: error 8.8e-8 against a
    bound of 4.4e-15."""
    net = keras.Sequential([
        keras.Input((4,), dtype="float64"),
        ll.LipschitzDense(4, kernel_initializer="identity", use_bias=False, dtype="float64",
                          constraint="spectral"),
        cast(2) if cast is ll.GroupSort else cast(),
        ll.LipschitzDense(4, kernel_initializer="identity", use_bias=False, dtype="float64",
                          constraint="spectral")])
    x = np.array([[1 + 2.0**-30, 1 / 3, np.pi, 1e-3]])
    assert np.abs(net(x).numpy() - np.sort(x.reshape(2, 2), axis=1).reshape(1, 4)
                  if cast is ll.GroupSort else net(x).numpy() - x).max() > 1e-9
    with pytest.raises(ValueError, match=r"computes in several dtypes \(float32, float64\)"):
        fe.chain_errors(net)


def test_the_error_bound_at_deviation_zero_covers_another_batchs_computation():
    """mu at x computed in another batch (the sampling batch) has layer inputs up to twice the
    centre errors away from the measured ones: its error bound is the centre recursion run on
    norms n_k + 2 c_k, which the chain's error bound at deviation 0 gives and the centre bound
    alone (what the absolute certificate used before 2026-12-02) falls short of."""
    keras.utils.set_random_seed(0)
    net = _chain("dense")
    for layer in net.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(np.full(layer.bias.shape, 1e3, np.float32))
    x = np.random.default_rng(1).uniform(size=(8, *net.input_shape[1:])).astype("float32")
    terms = fe.chain_errors(net)
    norms, _ = fe.activation_norms(net, tf.constant(x))
    centre, any_batch = fe.chain_forward_error(terms, norms)
    # the centre bound at each layer's input, then the recursion on the inflated norms
    inflated, centres = norms.copy(), np.zeros(len(x))
    for k, term in enumerate(terms):
        inflated[:, k] = norms[:, k] + 2 * centres
        centres = term.lipschitz * centres + term.slope * norms[:, k] + term.offset
    other_batch, _ = fe.chain_forward_error(terms, inflated)
    assert np.all(any_batch >= other_batch) and np.all(any_batch > centre)


def test_a_long_dot_product_rounds_beyond_the_relative_margin_and_the_forward_error_covers_it():
    """784 terms per output, each product just above half an ulp of the running sum: round to
    nearest adds up to an ulp per term, so even the pair (x, 0), whose difference is the value
    itself, moves by ~n u relative, far beyond the layer bound's relative margin of 8 u (an
    adversarial review, 2026-12-02: 4.6e-5 relative at batch 1, 95x the margin; docs/theory.md
    section 12 says so). The default certificate is one of the exact map; the forward error of
    absolute_rounding=True (section 15) covers this, in whatever batch the graph sums it."""
    n = 784
    column = np.full(n, 2.0**-12 * (1 + 2.0**-8), np.float32)
    column[0] = 1.0
    layer = ll.LipschitzDense(1, lipschitz=1.0, use_bias=False, constraint="spectral")
    net = keras.Sequential([keras.Input((n,)), layer])
    layer.kernel.assign(column[:, None])
    bound = lv.layer_lipschitz_bound(layer)
    exact = float(np.dot(column.astype(np.float64), column.astype(np.float64)))
    excess = []
    for batch in (1, 7, 64):
        x = np.repeat(column[None, :], batch, 0)
        computed = net(x).numpy().astype(np.float64)[:, 0]
        assert net(np.zeros_like(x)).numpy().max() == 0.0
        excess.append(computed.max() / float(np.linalg.norm(column.astype(np.float64))) / bound)
        norms, _ = fe.activation_norms(net, tf.constant(x))
        error_bound = fe.chain_forward_error(fe.chain_errors(net), norms)[0]
        assert np.all(np.abs(computed - exact) <= error_bound), (computed - exact, error_bound)
    # the ratio ||f(x) - f(0)|| / ||x|| of the float32 graph beyond the layer's bound: the limit
    # the theory states (8 u = 4.8e-7 of margin; the rounding here is 10-100x that)
    assert max(excess) - 1 > 4e-6, excess


def _flush_to_zero_model():
    """An adversarial review (2026-12-02): TF's CPU kernels flush subnormal results to zero, so
    a product below 2^-126 errs by up to 2^-126, 2^24 times the half-subnormal that gradual
    underflow allows. A decoder kernel of 2^-126 followed by one of 2^126 has an ordinary exact
    map (M_g 1/12), but in float32 z_i 2^-126 is flushed to 0 for |z_i| < 1: with mu = 1 and a
    std of 0.01 the reconstruction jumps whenever the noise takes a coordinate across 1."""
    m = 4
    model = LipschitzVAE(m, hidden_units=(32, 32), posterior_std=0.01, decoder=1.0 / 12, seed=0)
    head = model.encoder_mean_net.layers[-1]
    head.kernel.assign(head.kernel * 1e-6)
    head.bias.assign(tf.ones(m))
    first, second, last = _dense_layers(model.decoder_net)
    kernel = np.zeros((m, 32), np.float32)
    kernel[np.arange(m), 2 * np.arange(m)] = np.float32(2.0**-126)
    first.kernel.assign(kernel)
    first.bias.assign(tf.zeros(32))
    second.kernel.assign(np.eye(32, dtype=np.float32) * np.float32(2.0**126))
    second.bias.assign(tf.zeros(32))
    last.bias.assign(tf.zeros(784))
    return model, np.full((1, 28, 28, 1), 0.5, np.float32)


def test_the_absolute_certificate_covers_flush_to_zero():
    r, p, draws = 0.05, 0.5, 4000
    model, x = _flush_to_zero_model()
    assert model.certified_radius(x, r, p)[0] > 1e5  # the exact map's certificate
    # the float32 graph: 1e-20 * 1e-20 and the decoder's products below 2^-126 give 0
    assert tf.constant(1e-20) * tf.constant(1e-20) == 0
    z = tf.constant(np.full((1, 4), 0.999, np.float32))
    assert float(tf.norm(model.decoder_net(z))) == 0.0
    pair = tf.constant(np.repeat(x, draws, 0))
    first = model._reconstruct_batch(pair, True).numpy().reshape(draws, -1).astype(np.float64)
    second = model._reconstruct_batch(pair, True).numpy().reshape(draws, -1).astype(np.float64)
    kept = int(np.sum(np.linalg.norm(first - second, axis=1) <= r))
    # the reconstructions of x itself move by more than r (the check can fail) ...
    assert stats.beta.ppf(0.999, kept + 1, draws - kept) < p
    # ... and the absolute certificate, with eta = 2^-126, certifies nothing (599319 with the
    # half-subnormal 2^-150: its slack was 1.25e-5)
    assert model.certified_radius(x, r, p, absolute_rounding=True)[0] == 0.0
    slack, _ = model.absolute_rounding_slack(x, model.reconstruction_tolerance(r), p)
    assert slack[0] > r


def test_subnormal_weights_and_inputs_count_as_read_as_zero():
    """A CPU with denormals-are-zero reads a subnormal kernel entry, bias or pixel as 0: the
    operator norms cover both kernels, and the forward error counts the difference."""
    from lipvae_tf import lipschitz as lp

    tiny = np.finfo(np.float32).tiny
    kernel = np.array([[1.0, 1.0], [1.0, 0.5 * tiny]], np.float64)
    flushed = kernel.copy()
    flushed[1, 1] = 0.0
    assert lp.subnormal_part_norm(kernel) == pytest.approx(0.5 * tiny, rel=1e-12)
    assert lp.dense_norm(kernel) >= np.linalg.norm(flushed, 2)
    assert lp.subnormal_part_norm(np.eye(3)) == 0.0  # normal kernels are measured as before
    layer = ll.LipschitzDense(2, lipschitz=1.0, kernel_initializer="zeros",
                              bias_initializer="zeros")
    keras.Sequential([keras.Input((2,)), layer])
    normal = fe.layer_error(layer)
    layer.kernel.assign(kernel.astype(np.float32))
    layer.bias.assign(np.array([0.0, 0.25 * tiny], np.float32))
    error = fe.layer_error(layer)
    assert error.slope >= normal.slope + 0.5 * tiny * (1 - 1e-9)  # the kernel's flushed entry
    assert error.offset >= 0.25 * tiny  # the bias's flushed entry
    # a pixel of 1e-40 is read as 0, at x and at x'
    assert fe.flushed_input_error(784, "float32") == pytest.approx(28 * tiny)
    assert float(tf.constant(1e-40, tf.float32) * tf.constant(1.0)) == 0.0
    with pytest.raises(ValueError, match="lipschitz must lie between"):
        ll.LipschitzDense(2, lipschitz=1e-40)
    with pytest.raises(ValueError, match=r"\|factor\| must lie between"):
        ll.Scale(1e-40)


def test_the_absolute_certificate_covers_overflow():
    """An adversarial review (2026-12-02): the round-off model |fl(t) - t| <= u |t| + eta has no
    overflow case. An encoder layer of kernel +-1e38 on a background pixel and biases +-3e38
    (the next layer sums the two units: the exact mu is 0 everywhere) overflows to inf, then
    inf - inf = NaN, once the pixel exceeds 0.44, inside the absolute certificate of 0.749;
    every reconstruction there is NaN. Values that may overflow now have no error bound."""
    m = 2
    model = LipschitzVAE(m, posterior_std=0.05, hidden_units=(32, 32), seed=0)
    x = np.zeros((1, 28, 28, 1), np.float32)
    first, second, last = _dense_layers(model.encoder_mean_net)
    kernel = np.zeros(first.kernel.shape, np.float32)
    kernel[0, :2] = 1e38, -1e38
    bias = np.zeros(first.bias.shape, np.float32)
    bias[:2] = 3e38, -3e38
    first.kernel.assign(kernel)
    first.bias.assign(bias)
    kernel = np.zeros(second.kernel.shape, np.float32)
    kernel[:2, 0] = 2e-38
    second.kernel.assign(kernel)
    second.bias.assign(np.zeros(second.bias.shape, np.float32))
    last.kernel.assign(np.eye(*last.kernel.shape, dtype=np.float32))
    last.bias.assign(np.zeros(m, np.float32))
    moved = x.copy()
    moved[0, 0, 0, 0] = 0.45
    assert np.all(np.isnan(model.encoder_mean_net(moved).numpy()))  # the check can fail
    with pytest.warns(UserWarning, match="above the model's budget"):
        assert model.certified_radius(x, 3.0, 0.5)[0] > 0.45  # the exact map's certificate
        assert model.certified_radius(x, 3.0, 0.5, absolute_rounding=True)[0] < 0.45
    slack, _ = model.absolute_rounding_slack(x, 3.0, 0.5)
    assert np.isinf(slack[0])


@pytest.mark.parametrize("lipschitz", [0.5, 1.0, 2.0])
def test_the_overflow_bound_covers_the_partial_sums_before_the_factor(lipschitz):
    """A review (2026-12-03): a layer computes x W, then multiplies by its factor c; for c < 1
    the partial sums, not the output, are the largest values. c = 0.5, a kernel of 2^-0.5 and
    inputs of 3e38: the partial sums of 4.2e38 overflow to inf, while the bound (scaled by c)
    said 2.1e38 < 3.4e38 and gave a finite error bound. Now every c whose graph overflows
    gets an infinite error bound."""
    layer = lv.LipschitzDense(1, lipschitz=lipschitz, use_bias=False)
    net = keras.Sequential([keras.Input((2,)), layer])
    layer.kernel.assign(np.full((2, 1), 2**-0.5, np.float32))
    x = np.full((1, 2), 3e38, np.float32)
    assert np.isinf(net(x).numpy()).all()  # the check can fail: the graph overflows
    terms = fe.chain_errors(net)
    norms, _ = fe.activation_norms(net, x)
    assert np.isinf(fe.chain_forward_error(terms, norms)).all()
    # far from overflow the bound stays finite
    small = np.full((1, 2), 1.0, np.float32)
    assert np.isfinite(fe.chain_forward_error(terms, fe.activation_norms(net, small)[0])).all()
