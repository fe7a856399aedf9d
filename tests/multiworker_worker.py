"""One worker of the two-process MultiWorkerMirroredStrategy test (tests/test_distribute.py).

    TF_CONFIG='{"cluster": {"worker": [...]}, "task": {"type": "worker", "index": I}}' \
        python tests/multiworker_worker.py OUT_PREFIX RUN_DIR

Without TF_CONFIG it trains the same thing as one process on one device (the reference).
Creates the strategy first (collectives must be set up before any other TensorFlow work), trains
the tiny VAE with train.fit for a few steps, and writes OUT_PREFIX.json (losses, largest singular
value and target of every Björck kernel, certificates after finalize()) and OUT_PREFIX.npz (the
trained kernels, before finalize()).
"""
from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from lipvae_tf import distribute  # noqa: E402

STRATEGY = distribute.make_strategy("multi_worker" if "TF_CONFIG" in os.environ else "default")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from lipvae_tf import constraints, data, train  # noqa: E402

# Björck, whose kernels sit on the bound after every step, so that the replicas' kernels can be
# checked against it during training (test_subspace_clip checks the default kind's replicas); a
# learned std, so that the unconstrained std network's kernels are compared across workers too
CONFIG = train.TrainConfig(hidden_units=(32,), latent_dim=4, target_radius=1.0, r=8.0, p=0.5,
                           epochs=2, batch_size=64, verbose=0, seed=0, constraint="bjorck",
                           posterior_std=None)


def main(out_prefix: str, run_dir: str) -> None:
    print(distribute.worker_description(STRATEGY), flush=True)  # what train.run prints
    train_x = data.load_sample("train")[0][:256]
    test_x = data.load_sample("test")[0][:64]
    keras.utils.set_random_seed(CONFIG.seed)
    model = distribute.build_in_scope(STRATEGY, lambda: train.build_model(CONFIG))
    history = train.fit(model, train_x, test_x, CONFIG, distribute.worker_path(run_dir, STRATEGY))
    layers = constraints.iter_layers(list(model.lipschitz_networks().values()))
    every_kernel = [k for k in (getattr(layer, "kernel", None) for layer in layers)
                    if k is not None]  # the std network's are unconstrained (under its cap)
    kernels = [k for k in every_kernel
               if isinstance(getattr(k, "constraint", None), constraints.BjorckOrthonormal)]
    values = {k.path: k.numpy() for k in kernels}
    result = {
        "replicas": STRATEGY.num_replicas_in_sync,
        "chief": distribute.is_chief(STRATEGY),
        "history": history,
        "iterations": int(model.optimizer.iterations.numpy()),
        "sigma_max": {p: float(np.linalg.norm(v.astype(np.float64), 2)) for p, v in values.items()},
        "constrained": sorted(values),
        "targets": {k.path: k.constraint.scale for k in kernels},
        "design_radius": CONFIG.target_radius,
    }
    np.savez(out_prefix + ".npz", **{k.path.replace("/", "__"): k.numpy() for k in every_kernel})
    model.finalize()
    result["radius"] = model.certified_radius(test_x, r=CONFIG.r, p=CONFIG.p).tolist()
    with open(out_prefix + ".json", "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main(*sys.argv[1:3])
