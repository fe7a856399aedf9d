"""What the SavedModel `certify` signature's weight check costs.

`certify` fingerprints the certified networks' variables on every call (farmhash64 of each,
`tf.fingerprint`, lipvae_tf/export.py) and refuses weights edited after export. For each bundled
Lipschitz zoo model: the fingerprint of its weights alone (compiled) against the whole `certify`
call of its SavedModel, at batch 1 and 256, fastest of interleaved rounds.

    .venv/bin/python bench/certify_check_cost.py [--rounds 7] [--calls 50]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from lipvae_tf import data, export, zoo  # noqa: E402


def _compiled_fingerprint(weights):
    """The check's fingerprint of `weights` as a compiled function of no arguments (the
    variables captured, as in the signature's graph)."""
    return tf.function(lambda: export._weights_fingerprint(weights))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=50, help="calls per round")
    args = parser.parse_args()
    images = data.load_sample("test")[0][:256]
    print("| model | weights (M floats) | fingerprint ms | certify ms, batch 1 / 256 | "
          "fingerprint / certify, batch 1 / 256 |")
    print("| --- | --- | --- | --- | --- |")
    for name in zoo.list_models("fashion_mnist", bundled_only=True):
        if zoo.model_card(name)["kind"] != "lipschitz":
            continue
        weights = export._certified_weights(zoo.load(name))
        fingerprint = _compiled_fingerprint(weights)
        certify = zoo.load_saved_model(name).signatures["certify"]
        calls = {"fingerprint": fingerprint}
        for batch in (1, 256):
            x = tf.constant(images[:batch])
            rows = tf.fill([batch], tf.constant(8.0, tf.float64)), tf.fill(
                [batch], tf.constant(0.5, tf.float64))
            calls[f"certify {batch}"] = (lambda x=x, rows=rows, certify=certify:
                                         certify(images=x, r=rows[0], p=rows[1]))
        times = {key: [] for key in calls}
        for call in calls.values():
            call()  # trace / warm up
        for _ in range(args.rounds):
            for key, call in calls.items():
                start = time.perf_counter()
                for _ in range(args.calls):
                    call()
                times[key].append((time.perf_counter() - start) / args.calls * 1e3)
        best = {key: min(values) for key, values in times.items()}
        size = sum(int(np.prod(w.shape)) for w in weights) / 1e6
        print(f"| {name} | {size:.2f} | {best['fingerprint']:.3f} | {best['certify 1']:.3f} / "
              f"{best['certify 256']:.3f} | {best['fingerprint'] / best['certify 1']:.2f} / "
              f"{best['fingerprint'] / best['certify 256']:.2f} |")


if __name__ == "__main__":
    main()
