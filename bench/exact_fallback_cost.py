"""What the subspace clip's exact fallback (`SubspaceClip.exact_clip_above`) costs a step that
does not take it: the constraint as the layers apply it (one subspace step, the test of its
largest Ritz value, the `tf.cond`) against the bare `constraints.subspace_clip` step and its
state update, on the six constrained kernels of the MLP VAE of `bench/train_speed.py`, pushed to
1.2x their bound (an Adam step's overshoot, below the fallback's 1.5x). Compiled, interleaved,
the fastest of 9 rounds of 50 calls; ms per call.

    .venv/bin/python bench/exact_fallback_cost.py
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lipvae_tf import constraints  # noqa: E402

SHAPES = [(784, 512), (512, 512), (512, 10), (10, 512), (512, 512), (512, 784)]


def _orthonormal(shape, rng) -> np.ndarray:
    tall = (max(shape), min(shape))
    q = np.linalg.qr(rng.normal(size=tall))[0]
    return (q if shape[0] >= shape[1] else q.T).astype(np.float32)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    rng = np.random.default_rng(0)
    kernels = [tf.Variable(1.2 * _orthonormal(shape, rng)) for shape in SHAPES]
    clips, states = [], []
    for kernel in kernels:
        clip = constraints.SubspaceClip(1.0)
        shape, _, initializer = clip.state_spec(kernel.shape)["subspace"]
        state = tf.Variable(initializer(shape))
        clip.attach(subspace=state)
        clips.append(clip)
        states.append(state)

    @tf.function
    def with_fallback():
        return [clip(kernel) for clip, kernel in zip(clips, kernels)]

    @tf.function
    def bare_step():
        out = []
        for kernel, state in zip(kernels, states):
            clipped, new_state = constraints.subspace_clip(
                tf.convert_to_tensor(kernel), tf.convert_to_tensor(state), 1.0)
            state.assign(new_state)
            out.append(clipped)
        return out

    contenders = {"the constraint (with the fallback's test)": with_fallback,
                  "the bare subspace step": bare_step}
    times = {name: [] for name in contenders}
    for function in contenders.values():
        function()
    for _ in range(9):
        for name, function in contenders.items():
            start = time.perf_counter()
            for _ in range(50):
                function()
            times[name].append((time.perf_counter() - start) / 50 * 1e3)
    for name, values in times.items():
        print(f"{name}: {min(values):.3f} ms")
    first, second = (min(v) for v in times.values())
    print(f"ratio: {first / second:.3f}")


if __name__ == "__main__":
    main()
