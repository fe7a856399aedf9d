"""What a batch of distinct, large tolerances r costs the SavedModel `certify` signature.

Each row of a `certify` request is bisected with its own r, and the certificate's Poisson sums
and bracket grow with r. Since 2026-12-04 an r above the pixel space's diameter sqrt(D) is
certified as sqrt(D) (docs/theory.md section 7, "A tolerance above the diameter"). Side by side
in one run, for one bundled zoo model and 200 bundled test images with distinct r per row: the
bundled SavedModel's `certify` (which clamps), and the in-graph certificate it calls
(`graph_bounds.radius`) on the same frozen constants and std statistics without the clamp, as
`certify` computed it before. Seconds of one call and the process's peak memory after it.

    .venv/bin/python bench/certify_large_r.py [--model fashion_mnist_mlp_r1] [--rows 200]
"""
from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lipvae_tf import data, export, graph_bounds, zoo  # noqa: E402
from lipvae_tf import model as model_lib  # noqa: E402


def _peak_gb() -> float:
    """The process's peak resident memory so far, GB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fashion_mnist_mlp_r1", help="a bundled zoo model")
    parser.add_argument("--rows", type=int, default=200, help="images, one distinct r each")
    parser.add_argument("--unclamped_r", type=float, default=500.0,
                        help="the largest r given to the unclamped certificate (its cost grows "
                             "with r: 4000 took 257 s and 7.4 GB for 200 rows)")
    args = parser.parse_args()
    images = data.load_sample("test")[0][: args.rows]
    rows = len(images)
    vae = zoo.load(args.model)
    certify = zoo.load_saved_model(args.model).signatures["certify"]
    meta = export.read_metadata(zoo.saved_model_path(args.model) / "1")
    constants = vae.lipschitz_constants()
    gamma = vae.posterior_std_bound()
    s, s_max = ((np.full(rows, gamma * np.sqrt(vae.latent_dim)), None) if gamma is not None
                else vae.std_statistics(images))
    slack = model_lib.reconstruction_rounding_slack(vae.image_shape)
    p = np.full(rows, 0.5)

    @tf.function
    def unclamped(r):  # as `certify` computed it before: r less the slack, no clamp
        return graph_bounds.radius(
            meta["method"], constants["encoder_mean"], constants["encoder_std"],
            constants["decoder"], tf.constant(s, tf.float64), (r - slack) * (1 - 2.0**-52),
            tf.constant(p), latent_dim=vae.latent_dim, gamma=gamma,
            std_cap=vae.std_cap_bound(), s_max=None if s_max is None else tf.constant(s_max))

    warm = tf.constant(np.full(rows, 8.0))
    certify(images=tf.constant(images), r=warm, p=tf.constant(p))
    unclamped(warm)
    print(f"{args.model}, {rows} rows, distinct r per row (r0 (1 + i 1e-4)), p = 1/2, "
          f"certify method {meta['method']}")
    print("| r0 | certify (clamped at sqrt(D) = 28) s | radius[0] | in-graph certificate "
          "without the clamp (compiled) s | radius[0] | peak memory GB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r0 in (8.0, 27.0, 100.0, args.unclamped_r):
        r = tf.constant(r0 * (1 + np.arange(rows) * 1e-4))
        start = time.perf_counter()
        served = certify(images=tf.constant(images), r=r, p=tf.constant(p))[
            "certified_radius"].numpy()
        served_s = time.perf_counter() - start
        start = time.perf_counter()
        before = unclamped(r).numpy()
        before_s = time.perf_counter() - start
        print(f"| {r0:g} | {served_s:.2f} | {served[0]:.6g} | {before_s:.2f} | "
              f"{before[0]:.6g} | {_peak_gb():.2f} |")

if __name__ == "__main__":
    main()
