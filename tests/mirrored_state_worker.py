"""Trains a small LipschitzVAE on 2 mirrored logical CPUs; reports how far the replicas' copies of
its weights (the per-step control's state included) are apart.

Usage: python tests/mirrored_state_worker.py OUT.json ARCHITECTURE SAVED.keras CONSTRAINT STATE
with STATE the name of the constraint's layer weight (power_vector, subspace). Writes
{"replicas", "spread", "moved", "states", "owners"} to OUT.json and the model to SAVED.keras.
"""
import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from lipvae_tf import constraints, data  # noqa: E402
from lipvae_tf.model import LipschitzVAE  # noqa: E402


def main(out: str, architecture: str, saved: str, constraint: str, state: str) -> None:
    keras.utils.set_random_seed(0)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = LipschitzVAE.from_target(1.0, 8.0, latent_dim=4, hidden_units=(32,),
                                         architecture=architecture, conv_filters=(4, 8), seed=0,
                                         constraint=constraint)
        model.compile(keras.optimizers.Adam(1e-2))
    states = [w for w in model.non_trainable_weights if w.path.endswith("/" + state)]
    owners = [layer for layer in constraints.iter_layers(list(model.lipschitz_networks().values()))
              if hasattr(layer, state)]
    before = [w.numpy().copy() for w in states]
    model.fit(data.load_sample("train")[0][:128], batch_size=32, epochs=2, verbose=0,
              shuffle=False)
    spread = 0.0
    for w in model.weights:
        copies = [np.asarray(c) for c in strategy.experimental_local_results(w.value)]
        spread = max([spread] + [float(np.max(np.abs(c.astype(np.float64) - copies[0])))
                                 for c in copies[1:]])
    model.save(saved)
    with open(out, "w", encoding="utf-8") as handle:
        json.dump({"replicas": strategy.num_replicas_in_sync, "spread": spread,
                   "moved": [not np.array_equal(b, w.numpy()) for b, w in zip(before, states)],
                   "states": len(states), "owners": len(owners)}, handle)


if __name__ == "__main__":
    main(*sys.argv[1:6])
