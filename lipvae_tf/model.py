"""LipschitzVAE: a Keras 3 VAE whose encoder mean, encoder std and decoder have verified
Lipschitz constants, so that every input gets a certified robustness radius (THEORY.md).

Three separate Sequential networks output distribution parameters; `encode` and `decode` wrap
them in `tfp.distributions`; `train_step` maximises the ELBO. The reconstruction the certificate
is about is g(z) = sigmoid(decoder logits) (the mean for Bernoulli and Gaussian likelihoods, the
shape parameter for the continuous Bernoulli, as in the paper); the sigmoid's 1/4 is accounted.
"""
from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from lipvae_tf import bounds, checks, constraints, design, distribute
from lipvae_tf import layers as ll
from lipvae_tf import lipschitz as lp

tfd = tfp.distributions

LIKELIHOODS = ("bernoulli", "continuous_bernoulli", "gaussian")
ARCHITECTURES = ("mlp", "conv")
SIGMOID_LIPSCHITZ = 0.25
# Layers are built at (1 - NOMINAL_SLACK) x the budget, so that the verified bounds (measured
# float32 kernels plus a round-off margin) stay below the budget and the design radius holds.
NOMINAL_SLACK = 1e-5
STD_FLOOR = 1e-4  # added after the softplus: the posterior std never reaches 0 (log sigma in KL)
_METRICS = ("loss", "elbo", "reconstruction_log_likelihood", "kl")
# Where save_own_variables stores the noise generator's state (resumed runs draw the same noise).
_SEED_STATE_KEY = "seed_generator_state"


@keras.saving.register_keras_serializable(package="lipvae_tf")
class LipschitzVAE(keras.Model):
    """VAE with Lipschitz encoder mean (M_mu), encoder std (M_sigma, capped at ||sigma|| <= S, or
    a fixed std gamma) and decoder (M_g, sigmoid included), built from the package's layers.

    Build one from a stated robustness level with `LipschitzVAE.from_target`, train it with
    `compile(optimizer)` + `fit`, call `finalize()`, then `certified_radius(x, r, p)`.
    """

    def __init__(
        self,
        latent_dim: int = 10,
        *,
        encoder_mean: float = 1.0,
        encoder_std: float = 1.0,
        decoder: float = 1.0,
        std_cap: float | None = 0.1,
        posterior_std: float | None = None,
        architecture: str = "mlp",
        hidden_units: Sequence[int] = (512, 512),
        conv_filters: Sequence[int] = (32, 64),
        image_shape: Sequence[int] = (28, 28, 1),
        likelihood: str = "continuous_bernoulli",
        gaussian_scale: float = 0.1,
        beta: float = 1.0,
        bjorck_iterations: int = 1,
        design: dict | None = None,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.latent_dim = checks.positive_int("latent_dim", latent_dim)
        self.encoder_mean_budget = checks.positive_finite("encoder_mean", encoder_mean)
        self.decoder_budget = checks.positive_finite("decoder", decoder)
        self.posterior_std = (None if posterior_std is None
                              else checks.positive_finite("posterior_std", posterior_std))
        if self.posterior_std is None:
            self.encoder_std_budget = checks.positive_finite("encoder_std", encoder_std)
            self.std_cap = None if std_cap is None else checks.positive_finite("std_cap", std_cap)
        else:
            self.encoder_std_budget, self.std_cap = 0.0, None
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        self.architecture, self.likelihood = architecture, likelihood
        self.hidden_units = tuple(checks.positive_int("hidden_units", u) for u in hidden_units)
        self.conv_filters = tuple(checks.positive_int("conv_filters", f) for f in conv_filters)
        self.image_shape = tuple(checks.positive_int("image_shape", n) for n in image_shape)
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (height, width, channels), got {image_shape}")
        self.gaussian_scale = checks.positive_finite("gaussian_scale", gaussian_scale)
        self.beta = float(beta)
        if not np.isfinite(self.beta) or self.beta < 0:
            raise ValueError(f"beta must be a finite number >= 0, got {beta}")
        self.bjorck_iterations = checks.positive_int("bjorck_iterations", bjorck_iterations)
        self.design = design
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.prior = tfd.MultivariateNormalDiag(loc=tf.zeros(self.latent_dim))

        self.encoder_mean_net = self._encoder("encoder_mean", self.encoder_mean_budget)
        self.encoder_std_net = None
        if self.posterior_std is None:
            self.encoder_std_net = self._encoder("encoder_std", self.encoder_std_budget)
            self.encoder_std_net.add(keras.layers.Activation("softplus"))
            self.encoder_std_net.add(ll.Shift(STD_FLOOR))
            if self.std_cap is not None:
                self.encoder_std_net.add(ll.StdCap(self.std_cap))
        self.decoder_net = self._decoder(self.decoder_budget / SIGMOID_LIPSCHITZ)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in _METRICS}
        self.built = True

    # ----- construction -------------------------------------------------------------------

    @classmethod
    def from_target(
        cls,
        target_radius: float,
        r: float,
        p: float = 0.5,
        *,
        latent_dim: int = 10,
        method: str = "best",
        std_cap: float = 0.1,
        posterior_std: float | None = None,
        min_lipschitz: float = design.DEFAULT_MIN_LIPSCHITZ,
        **kwargs,
    ) -> "LipschitzVAE":
        """A model whose budget certifies every input at >= target_radius (robustness upfront).

        The free constants are the largest common value that `design.design_budget` allows.
        """
        budget = design.design_budget(
            target_radius, r, p, latent_dim=latent_dim, method=method, std_cap=std_cap,
            gamma=posterior_std, min_lipschitz=min_lipschitz,
        )
        return cls(
            latent_dim, encoder_mean=budget.encoder_mean, encoder_std=budget.encoder_std or 1.0,
            decoder=budget.decoder, std_cap=budget.std_cap, posterior_std=budget.gamma,
            design=budget.to_dict(), **kwargs,
        )

    def _layer_factor(self, budget: float, linear_layers: int) -> float:
        return (budget * (1 - NOMINAL_SLACK)) ** (1 / linear_layers)

    def _dense(self, units: int, lipschitz: float, name: str) -> keras.layers.Layer:
        return ll.LipschitzDense(units, lipschitz=lipschitz,
                                 bjorck_iterations=self.bjorck_iterations, name=name)

    def _conv(self, filters: int, lipschitz: float, name: str, transpose: bool = False):
        kind = ll.LipschitzConv2DTranspose if transpose else ll.LipschitzConv2D
        return kind(filters, 3, strides=2, padding="same", lipschitz=lipschitz, name=name)

    def _activation(self, name: str) -> keras.layers.Layer:
        return ll.GroupSort(2, name=name)

    def _encoder(self, name: str, budget: float) -> keras.Sequential:
        """Image -> latent_dim features with Lipschitz constant <= budget."""
        net = keras.Sequential(name=name)
        net.add(keras.Input(self.image_shape))
        if self.architecture == "mlp":
            widths = self.hidden_units
            factor = self._layer_factor(budget, len(widths) + 1)
            net.add(keras.layers.Flatten())
            for i, units in enumerate(widths):
                net.add(self._dense(units, factor, f"{name}_dense_{i}"))
                net.add(self._activation(f"{name}_act_{i}"))
        else:
            self._check_conv_shape()
            factor = self._layer_factor(budget, len(self.conv_filters) + 1)
            for i, filters in enumerate(self.conv_filters):
                net.add(self._conv(filters, factor, f"{name}_conv_{i}"))
                net.add(self._activation(f"{name}_act_{i}"))
            net.add(keras.layers.Flatten())
        net.add(self._dense(self.latent_dim, factor, f"{name}_out"))
        return net

    def _decoder(self, budget: float) -> keras.Sequential:
        """Latent -> image logits with Lipschitz constant <= budget (before the sigmoid)."""
        net = keras.Sequential(name="decoder")
        net.add(keras.Input((self.latent_dim,)))
        if self.architecture == "mlp":
            widths = self.hidden_units[::-1]
            factor = self._layer_factor(budget, len(widths) + 1)
            for i, units in enumerate(widths):
                net.add(self._dense(units, factor, f"decoder_dense_{i}"))
                net.add(self._activation(f"decoder_act_{i}"))
            net.add(self._dense(int(np.prod(self.image_shape)), factor, "decoder_out"))
            net.add(keras.layers.Reshape(self.image_shape))
        else:
            filters = self.conv_filters[::-1]
            factor = self._layer_factor(budget, len(filters) + 1)
            shrink = 2 ** len(filters)
            h, w = self.image_shape[0] // shrink, self.image_shape[1] // shrink
            net.add(self._dense(h * w * filters[0], factor, "decoder_dense"))
            net.add(self._activation("decoder_act_dense"))
            net.add(keras.layers.Reshape((h, w, filters[0])))
            for i, f in enumerate(list(filters[1:]) + [self.image_shape[2]]):
                net.add(self._conv(f, factor, f"decoder_conv_{i}", transpose=True))
                if i < len(filters) - 1:
                    net.add(self._activation(f"decoder_act_{i}"))
        return net

    def _check_conv_shape(self) -> None:
        shrink = 2 ** len(self.conv_filters)
        if self.image_shape[0] % shrink or self.image_shape[1] % shrink:
            raise ValueError(
                f"architecture='conv' halves the image {len(self.conv_filters)} times: "
                f"image_shape height and width must be multiples of {shrink}, got {self.image_shape}"
            )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "latent_dim": self.latent_dim,
            "encoder_mean": self.encoder_mean_budget,
            "encoder_std": self.encoder_std_budget or 1.0,
            "decoder": self.decoder_budget,
            "std_cap": self.std_cap,
            "posterior_std": self.posterior_std,
            "architecture": self.architecture,
            "hidden_units": list(self.hidden_units),
            "conv_filters": list(self.conv_filters),
            "image_shape": list(self.image_shape),
            "likelihood": self.likelihood,
            "gaussian_scale": self.gaussian_scale,
            "beta": self.beta,
            "bjorck_iterations": self.bjorck_iterations,
            "design": self.design,
            "seed": self.seed,
        }

    def save_own_variables(self, store) -> None:
        """Keras' own variables plus the state of the reparameterisation noise generator, so a
        checkpoint (`save_weights`, `BackupAndRestore`, `.keras`) continues the same noise."""
        super().save_own_variables(store)
        store[_SEED_STATE_KEY] = self.seed_generator.state

    def load_own_variables(self, store) -> None:
        """The inverse of `save_own_variables`. A file written before the noise state was saved
        (no such entry) leaves the generator as it is."""
        keys = [key for key in store.keys() if key != _SEED_STATE_KEY]
        own = self._trainable_variables + self._non_trainable_variables
        if len(keys) != len(own):
            raise ValueError(f"model {self.name!r} expected {len(own)} own variables (plus the "
                             f"noise generator's state), got {len(keys)} in the weights file")
        for i, variable in enumerate(own):
            variable.assign(store[str(i)])
        if _SEED_STATE_KEY in store.keys():
            self.seed_generator.state.assign(np.asarray(store[_SEED_STATE_KEY]))

    # ----- the probabilistic model ---------------------------------------------------------

    def posterior_params(self, x, training: bool = False):
        """(mu(x), sigma(x)), each (batch, latent_dim)."""
        mu = self.encoder_mean_net(x, training=training)
        if self.encoder_std_net is None:
            return mu, tf.fill(tf.shape(mu), tf.cast(self.posterior_std, mu.dtype))
        return mu, self.encoder_std_net(x, training=training)

    def encode(self, x, training: bool = False) -> tfd.MultivariateNormalDiag:
        """q(z | x) = N(mu(x), diag(sigma(x)^2))."""
        mu, sigma = self.posterior_params(x, training)
        return tfd.MultivariateNormalDiag(loc=mu, scale_diag=sigma)

    def decode_mean(self, z, training: bool = False):
        """g(z) = sigmoid(decoder logits): the reconstruction the certificate is about."""
        return tf.sigmoid(self.decoder_net(z, training=training))

    def decode(self, z, training: bool = False) -> tfd.Distribution:
        """p(x | z) over whole images (event shape = image_shape)."""
        logits = self.decoder_net(z, training=training)
        if self.likelihood == "bernoulli":
            pixels = tfd.Bernoulli(logits=logits, dtype=logits.dtype)
        elif self.likelihood == "continuous_bernoulli":
            pixels = tfd.ContinuousBernoulli(logits=logits)
        else:
            pixels = tfd.Normal(loc=tf.sigmoid(logits), scale=self.gaussian_scale)
        return tfd.Independent(pixels, reinterpreted_batch_ndims=len(self.image_shape))

    def _sample_latent(self, mu, sigma):
        # under tf.distribute: this replica's rows of one draw for the global batch, so every
        # example gets the same noise with 1 or N replicas (plain keras.random.normal otherwise)
        eps = distribute.replica_normal(tf.shape(mu), mu.dtype, self.seed_generator)
        return mu + sigma * eps

    def call(self, inputs, training: bool = False):
        """Deterministic reconstruction g(mu(x)) (what `predict` returns)."""
        return self.decode_mean(self.encoder_mean_net(inputs, training=training), training)

    def elbo_terms(self, x, training: bool = False) -> dict:
        """Per-example ELBO, reconstruction log-likelihood, KL (one reparameterised sample)."""
        mu, sigma = self.posterior_params(x, training)
        z = self._sample_latent(mu, sigma)
        log_likelihood = self.decode(z, training).log_prob(x)
        kl = tfd.kl_divergence(tfd.MultivariateNormalDiag(loc=mu, scale_diag=sigma), self.prior)
        return {"elbo": log_likelihood - kl, "reconstruction_log_likelihood": log_likelihood,
                "kl": kl, "loss": -(log_likelihood - self.beta * kl)}

    # ----- Keras training loop -------------------------------------------------------------

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _record(self, terms: dict) -> dict:
        for name, tracker in self.trackers.items():
            # per example: the replicas' totals and counts add up (on-read SUM) to the global mean
            tracker.update_state(terms[name])
        # (1,)-shaped under multi-worker: Keras' step-output reduction fails on scalars there
        return distribute.step_logs({n: t.result() for n, t in self.trackers.items()})

    def train_step(self, data):
        x = _images_of(data)
        # Keras' TF optimizer sums the replicas' gradients (all-reduce SUM), so each replica's
        # loss is its sum over the global batch size: the sum is the gradient of the global mean
        # for any number of replicas, even uneven splits (1 replica: the plain batch mean).
        global_batch = distribute.global_batch_size(tf.shape(x)[0])
        with tf.GradientTape() as tape:
            terms = self.elbo_terms(x, training=True)
            loss = tf.reduce_sum(terms["loss"]) / tf.cast(global_batch, terms["loss"].dtype)
        gradients = tape.gradient(loss, self.trainable_variables)
        # after the summed update, each replica projects its identical copy of every kernel
        self.optimizer.apply(gradients, self.trainable_variables)  # constraints applied after
        return self._record(terms)

    def test_step(self, data):
        return self._record(self.elbo_terms(_images_of(data)))

    # ----- certificates --------------------------------------------------------------------

    def lipschitz_networks(self) -> dict:
        """The three networks whose constants enter the certificate."""
        nets = {"encoder_mean": self.encoder_mean_net, "decoder": self.decoder_net}
        if self.encoder_std_net is not None:
            nets["encoder_std"] = self.encoder_std_net
        return nets

    def lipschitz_constants(self) -> dict[str, float]:
        """Verified upper bounds (from the weights in use) of M_mu, M_sigma and M_g.

        M_g includes the output sigmoid (x 1/4); M_sigma is 0 for a fixed posterior std.
        """
        return {
            "encoder_mean": lp.network_lipschitz_bound(self.encoder_mean_net),
            "encoder_std": (0.0 if self.encoder_std_net is None
                            else lp.network_lipschitz_bound(self.encoder_std_net)),
            "decoder": lp.network_lipschitz_bound(self.decoder_net) * SIGMOID_LIPSCHITZ,
        }

    def finalize(self, tol: float = 1e-6) -> dict:
        """Converged projection of every constrained kernel (call before certifying)."""
        return constraints.finalize_constraints(list(self.lipschitz_networks().values()), tol=tol)

    def std_norms(self, x, batch_size: int = 1024) -> np.ndarray:
        """s(x) = ||sigma(x)||_2 per input (float64)."""
        x = self.check_images(x)
        if self.encoder_std_net is None:
            return np.full(len(x), self.posterior_std * np.sqrt(self.latent_dim))
        return np.concatenate([
            self._std_norm_batch(tf.constant(x[i:i + batch_size])).numpy()
            for i in range(0, len(x), batch_size)
        ]).astype(np.float64) if len(x) else np.zeros(0)

    @tf.function(reduce_retracing=True)
    def _std_norm_batch(self, x):
        # the norm in float64: no float32 round-off in s (the outputs themselves are float32)
        return tf.norm(tf.cast(self.encoder_std_net(x), tf.float64), axis=-1)

    def certified_radius(self, x, r: float, p: float = 0.5, method: str = "best") -> np.ndarray:
        """Per input, a radius R such that every ||delta||_2 < R keeps
        P(||f(x + delta) - f(x)||_2 <= r) >= p (independent noise in both reconstructions).

        Uses verified bounds of the constants of the weights in use and the measured s(x).
        """
        s = self.std_norms(x)
        c = self.lipschitz_constants()
        return bounds.radius(  # validates method, r and p; result has the shape of s
            method, c["encoder_mean"], c["encoder_std"], c["decoder"], s, r, p,
            latent_dim=self.latent_dim, gamma=self.posterior_std,
        )

    # ----- inference helpers ---------------------------------------------------------------

    def reconstruct(self, x, sample: bool = True, batch_size: int = 1024) -> np.ndarray:
        """f(x) = g(mu + sigma * eps) (one sample per input), or g(mu(x)) with sample=False."""
        x = self.check_images(x)
        outputs = [self._reconstruct_batch(tf.constant(x[i:i + batch_size]), sample).numpy()
                   for i in range(0, len(x), batch_size)]
        return np.concatenate(outputs) if outputs else np.zeros((0, *self.image_shape), np.float32)

    @tf.function(reduce_retracing=True)
    def _reconstruct_batch(self, x, sample: bool):
        if not sample:
            return self(x)
        mu, sigma = self.posterior_params(x)
        return self.decode_mean(self._sample_latent(mu, sigma))

    def log_likelihood(self, x, samples: int = 64, batch_size: int = 256) -> np.ndarray:
        """Importance-weighted estimate of log p(x) per input (IWAE bound with `samples`)."""
        x = self.check_images(x)
        samples = checks.positive_int("samples", samples)
        return np.concatenate([
            self._iwae_batch(tf.constant(x[i:i + batch_size]), samples).numpy()
            for i in range(0, len(x), batch_size)
        ]).astype(np.float64) if len(x) else np.zeros(0)

    @tf.function(reduce_retracing=True)
    def _iwae_batch(self, x, samples):
        posterior = self.encode(x)
        z = self._sample_latent(
            tf.broadcast_to(posterior.loc, tf.concat([[samples], tf.shape(posterior.loc)], 0)),
            posterior.stddev(),
        )  # (samples, batch, latent)
        flat = tf.reshape(z, (-1, self.latent_dim))
        repeated = tf.reshape(
            tf.broadcast_to(x, tf.concat([[samples], tf.shape(x)], 0)), (-1, *self.image_shape)
        )
        log_px = tf.reshape(self.decode(flat).log_prob(repeated), (samples, -1))
        log_w = log_px + self.prior.log_prob(z) - posterior.log_prob(z)
        return tf.reduce_logsumexp(log_w, axis=0) - tf.math.log(tf.cast(samples, log_w.dtype))

    def check_images(self, x, name: str = "x") -> np.ndarray:
        """x as float32 (batch, *image_shape) in [0, 1], or a TypeError/ValueError naming `name`."""
        array = np.asarray(x.numpy() if isinstance(x, tf.Tensor) else x)
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(
                f"{name} must hold floating-point images in [0, 1], got dtype {array.dtype}"
                + (" (divide integer pixels by 255)" if np.issubdtype(array.dtype, np.integer)
                   else "")
            )
        if array.ndim != len(self.image_shape) + 1 or array.shape[1:] != self.image_shape:
            raise ValueError(
                f"{name} must have shape (batch, {', '.join(map(str, self.image_shape))}), "
                f"got {array.shape}"
            )
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contains NaN or Inf values")
        if array.size and (array.min() < 0 or array.max() > 1):
            raise ValueError(
                f"{name} must hold pixel values in [0, 1], got range "
                f"[{array.min():.4g}, {array.max():.4g}]"
            )
        return array.astype(np.float32)


@keras.saving.register_keras_serializable(package="lipvae_tf")
class StandardVAE(LipschitzVAE):
    """The baseline: same shapes, plain Dense/Conv layers with ReLU, no std cap.

    Its `lipschitz_constants()` are still verified upper bounds (products of kernel norms), so it
    can be certified too; the bounds are simply loose and large.
    """

    def __init__(self, latent_dim: int = 10, **kwargs):
        kwargs.setdefault("std_cap", None)
        super().__init__(latent_dim, **kwargs)

    def _dense(self, units: int, lipschitz: float, name: str) -> keras.layers.Layer:
        return keras.layers.Dense(units, name=name)

    def _conv(self, filters: int, lipschitz: float, name: str, transpose: bool = False):
        kind = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
        return kind(filters, 3, strides=2, padding="same", name=name)

    def _activation(self, name: str) -> keras.layers.Layer:
        return keras.layers.Activation("relu", name=name)


def _images_of(data):
    """The images of a batch given as x, (x,), (x, y) or (x, y, w)."""
    return data[0] if isinstance(data, (tuple, list)) else data
