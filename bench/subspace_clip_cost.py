"""Where the subspace clip's time goes: its matrix products against its k x k Ritz step.

The default per-step control (`constraints.subspace_clip`, rank k = 16) on the six constrained
kernels of bench/train_speed.py's MLP VAE (784-512-512-16 encoder mean, 16-512-512-784 decoder),
random kernels, compiled. Parts, each for all six kernels in one `tf.function`:
  full      the committed step (`constraints.subspace_clip`)
  products  its four products with W alone: W^T V, W (W^T V) with unit columns, T = W^T Y and
            the rank-k update W - Y T^T (the same shapes and multiply-adds, no Ritz step)
  ritz      its Rayleigh-Ritz step alone (`constraints._ritz_coefficients` on (rows, k) and
            (cols, k) inputs: two k x k Gram products, two float64 eigh)
Interleaved rounds; the fastest round of each part is compared with the full step's fastest
(noise from other processes only ever adds time).

    .venv/bin/python bench/subspace_clip_cost.py [--rounds 9] [--calls 50]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lipvae_tf import constraints  # noqa: E402

SHAPES = ((784, 512), (512, 512), (512, 16), (16, 512), (512, 512), (512, 784))
RANK = constraints.DEFAULT_SUBSPACE_RANK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=50, help="calls per round")
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    def tensor(shape, scale=1.0):
        return tf.constant((rng.normal(size=shape) * scale).astype("float32"))

    kernels = [tensor(shape, 1 / np.sqrt(shape[0])) for shape in SHAPES]
    ranks = [min(RANK, *shape) for shape in SHAPES]
    states = [tensor((shape[0], k)) for shape, k in zip(SHAPES, ranks)]
    images = [tensor((shape[1], k)) for shape, k in zip(SHAPES, ranks)]

    @tf.function
    def full():
        return [constraints.subspace_clip(w, v, 1.0) for w, v in zip(kernels, states)]

    @tf.function
    def products():
        updated = []
        for w, v in zip(kernels, states):
            y = constraints._unit_columns(tf.matmul(w, tf.matmul(w, v, transpose_a=True)))
            t = tf.matmul(w, y, transpose_a=True)
            updated.append(w - tf.matmul(y, t, transpose_b=True))
        return updated

    @tf.function
    def ritz():
        return [constraints._ritz_coefficients(v, t) for v, t in zip(states, images)]

    parts = {"full": full, "products": products, "ritz": ritz}
    for part in parts.values():
        part()  # trace
    times = {name: [] for name in parts}
    for _ in range(args.rounds):
        for name, part in parts.items():
            start = time.perf_counter()
            for _ in range(args.calls):
                part()
            times[name].append((time.perf_counter() - start) / args.calls * 1e3)
    mac = sum(4 * rows * cols * k for (rows, cols), k in zip(SHAPES, ranks))
    print(f"subspace clip, k = {RANK}, kernels {SHAPES}: {mac / 1e6:.1f} M multiply-adds "
          f"per step in the products; {os.cpu_count()} CPU cores, {args.rounds} rounds of "
          f"{args.calls} calls")
    fastest_full = min(times["full"])
    for name, values in times.items():
        print(f"  {name:9s} ms: min {min(values):6.3f}  median {np.median(values):6.3f}  "
              f"x full (min) {min(values) / fastest_full:5.2f}")


if __name__ == "__main__":
    main()
