"""Where a certificate loses against the attack: each global constant set beside the local gain
the bundled zoo model shows around test images.

A certificate uses two global constants, M_mu (encoder mean) and M_g (decoder with its output
nonlinearity), and the posterior noise. For each bundled Lipschitz zoo model and `--images` test
images of the bundled sample this prints, as ratios to the constant the certificate uses:
- encoder: the local Jacobian norm of mu at x (power iteration on J^T J, float32 graph);
- decoder: the local Jacobian norm of g at mu(x) and at 8 noise draws mu(x) + sigma eps, and the
  secant gain ||g(mu + t u) - g(mu)|| / t along the top local direction u at t = 1, 2, 4 (the
  distance an attack has to move mu);
- decoder, split: the logits' network alone against its product-of-norms bound (M_g divided by
  the output factor, 1/12 for the continuous-Bernoulli mean, 1/4 for sigmoid), and what the
  output nonlinearity takes off that Jacobian locally (||diag(g'(eta)) J_eta|| / ||J_eta||)
  against the factor;
- noise: the median damage at the clean input, ||g(mu + sigma eps') - g(mu + sigma eps)|| over
  2000 pairs, against the global bound's median M_g sqrt(2 chi2_m median) sigma;
- MLP decoders: the share of pixels whose logit provably stays away from 0 (where the output
  factor is attained) while the code moves by rho = 0.1 and by rho = M_mu R (R the certified
  radius): |eta_i(mu)| > L_i rho, with L_i = B ||W_L[:, i]|| / ||W_L||_2 the pixel's
  Lipschitz bound (B the logits' network bound, W_L the last kernel). Only such pixels could
  get a smaller local factor than the global one in a certificate over that region; and what
  that would buy: ||diag(v_i) W_L|| / (factor ||W_L||), v_i the largest derivative of g over
  pixel i's interval (the continuous Bernoulli's variance, TFP's, at max(|eta_i| - L_i rho, 0);
  the sigmoid's derivative for "parameter"), the sound local output factor over that region
  against the global one.
Besides them, the certified radius and the card's median estimated margin (attack, 50 images).
Local gains are lower bounds of what an attack can reach (a power iteration at one point); they
say which constant holds the slack, not a radius anyone may certify.

    .venv/bin/python bench/certificate_slack.py [--images 10] [--models NAME,...]
"""
from __future__ import annotations

import argparse
import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402
from scipy import stats  # noqa: E402

from lipvae_tf import data, zoo  # noqa: E402

tfd = tfp.distributions
OUTPUT_FACTORS = {"mean": 1.0 / 12.0, "parameter": 0.25}  # largest derivative of g(eta)


def top_singular(function, point: tf.Tensor, iterations: int = 40, seed: int = 0
                 ) -> tuple[float, tf.Tensor]:
    """(||J_function(point)||_2, the top right singular vector of J_function(point), unit norm,
    shape of point) by power iteration on J^T J (forward-mode JVP, reverse-mode VJP) from a
    random start (stateless key [seed, 1]); point is one row (1, d). The vector's sign
    follows the start."""
    vector = tf.random.stateless_normal(point.shape, [seed, 1], dtype=point.dtype)
    for _ in range(iterations):
        vector = vector / tf.norm(vector)
        with tf.autodiff.ForwardAccumulator(point, vector) as accumulator:
            values = function(point)
        image = accumulator.jvp(values)
        with tf.GradientTape() as tape:
            tape.watch(point)
            values = function(point)
        vector = tape.gradient(values, point, output_gradients=image)
    return float(tf.sqrt(tf.norm(vector))), vector / tf.norm(vector)


def jacobian_norm(function, point: tf.Tensor, seed: int = 0) -> float:
    """||J_function(point)||_2 (`top_singular`)."""
    return top_singular(function, point, seed=seed)[0]


def output_slope(vae, logits: np.ndarray) -> np.ndarray:
    """g'(eta) per pixel, float64: the continuous Bernoulli's variance for the "mean"
    reconstruction (d E[x] / d eta = Var(x), docs/theory.md section 10), the sigmoid's
    derivative otherwise; both even in eta and decreasing in |eta|."""
    eta = tf.constant(logits, tf.float64)
    if vae.likelihood == "continuous_bernoulli" and vae.reconstruction == "mean":
        return tfd.ContinuousBernoulli(logits=eta, dtype=tf.float64).variance().numpy()
    return (tf.sigmoid(eta) * tf.sigmoid(-eta)).numpy()


def measure(name: str, images: np.ndarray, r: float, p: float) -> dict:
    vae = zoo.load(name)
    card = zoo.model_card(name)
    constants = vae.lipschitz_constants()
    m_mu, m_g = constants["encoder_mean"], constants["decoder"]
    factor = OUTPUT_FACTORS[vae.reconstruction if vae.likelihood == "continuous_bernoulli"
                            else "parameter"]
    x = tf.constant(images)
    mu, sigma = (tf.convert_to_tensor(t) for t in vae.posterior_params(x))
    flat = [-1, int(np.prod(vae.image_shape))]

    def decoder(z):
        return tf.reshape(vae.decode_mean(z), flat)

    def logits(z):
        return tf.reshape(vae.decoder_net(z), flat)

    encoder_gain, decoder_at_mu, decoder_cloud, secants, network, output = [], [], [], [], [], []
    certified = vae.certified_radius(images, r, p)
    last = [layer for layer in vae.decoder_net.layers if hasattr(layer, "kernel")][-1]
    if len(last.kernel.shape) == 2:  # a dense output layer (then at most a Reshape)
        kernel = last.kernel.numpy().astype(np.float64)
        pixel_bounds = (m_g / factor) * np.linalg.norm(kernel, axis=0) / np.linalg.norm(kernel, 2)
        at_mu = np.abs(logits(mu).numpy())
        away, local = [], []
        for rho in (0.1, m_mu * float(np.median(certified))):
            away.append(float(np.mean(at_mu > pixel_bounds * rho)))
            nearest = np.maximum(at_mu - pixel_bounds * rho, 0.0)  # |eta| nearest 0 in reach
            local.append(float(np.median([
                np.linalg.norm(kernel * output_slope(vae, row)[None, :], 2)
                / (factor * np.linalg.norm(kernel, 2)) for row in nearest])))
    else:
        away, local = [math.nan, math.nan], [math.nan, math.nan]
    noise_medians = []
    generator = np.random.default_rng(0)
    for i in range(len(images)):
        point = mu[i:i + 1]
        encoder_gain.append(jacobian_norm(
            lambda v: tf.convert_to_tensor(vae.posterior_params(v)[0]), x[i:i + 1]) / m_mu)
        decoder_norm, direction = top_singular(decoder, point)
        decoder_at_mu.append(decoder_norm / m_g)
        cloud = point + sigma[i:i + 1] * generator.standard_normal((8, vae.latent_dim)).astype(
            np.float32)
        decoder_cloud.append(np.median([jacobian_norm(decoder, cloud[j:j + 1], seed=j)
                                        for j in range(8)]) / m_g)
        base = decoder(point)
        secants.append([float(tf.norm(decoder(point + t * direction) - base)) / t / m_g
                        for t in (1.0, 2.0, 4.0)])
        network_norm = jacobian_norm(logits, point)
        network.append(network_norm / (m_g / factor))
        output.append(decoder_norm / network_norm / factor)
        draws = sigma[i] * generator.standard_normal((2, 2000, vae.latent_dim)).astype(np.float32)
        damage = np.linalg.norm(decoder(mu[i] + draws[0]).numpy()
                                - decoder(mu[i] + draws[1]).numpy(), axis=1)
        noise_medians.append(np.median(damage))
    chi_median = float(np.sqrt(stats.chi2.ppf(0.5, vae.latent_dim)))
    noise_bound = m_g * np.sqrt(2.0) * float(np.median(sigma)) * chi_median
    return {
        "name": name, "reconstruction": vae.reconstruction, "m_mu": m_mu, "m_g": m_g,
        "certified": float(np.median(certified)), "away": away, "local": local,
        "margin": card["robustness_evaluation"]["estimated_margin"]["median"],
        "encoder": float(np.median(encoder_gain)), "decoder_mu": float(np.median(decoder_at_mu)),
        "decoder_cloud": float(np.median(decoder_cloud)),
        "secant": np.median(np.asarray(secants), axis=0),
        "network": float(np.median(network)), "output": float(np.median(output)),
        "noise": float(np.median(noise_medians)), "noise_bound": noise_bound,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--models", default=None, help="comma-separated zoo names (default: "
                        "every bundled Lipschitz model)")
    args = parser.parse_args()
    names = (args.models.split(",") if args.models else
             [n for n in zoo.list_models(bundled_only=True)
              if zoo.model_card(n)["kind"] == "lipschitz"])
    images = data.load_sample("test")[0][:args.images]
    print("ratios to the certificate's constant, medians over "
          f"{args.images} test images of the bundled sample")
    print("| model | recon. | certified / margin (median) | encoder J / M_mu | decoder J at mu, "
          "at mu + sigma eps / M_g | secant t = 1, 2, 4 / M_g | logits' net J / bound | "
          "output factor used locally | noise damage / bound | logits away from 0 at "
          "rho = 0.1, M_mu R | sound local output factor / global, same rho |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in names:
        card = zoo.model_card(name)
        settings = card["robustness_evaluation"]["settings"]
        row = measure(name, images, settings["r"], settings["p"])
        print(f"| {name} | {row['reconstruction']} | {row['certified']:.3f} / "
              f"{row['margin']:.2f} | {row['encoder']:.3f} | {row['decoder_mu']:.3f}, "
              f"{row['decoder_cloud']:.3f} | "
              + ", ".join(f"{v:.3f}" for v in row["secant"])
              + f" | {row['network']:.3f} | {row['output']:.3f} | "
              f"{row['noise']:.3f} / {row['noise_bound']:.3f} | "
              + ", ".join(f"{v:.2f}" for v in row["away"]) + " | "
              + ", ".join(f"{v:.3f}" for v in row["local"]) + " |", flush=True)


if __name__ == "__main__":
    main()
