"""The dense subspace clip's rank k against quality, on the bundled sample.

A smaller k makes the per-step control cheaper (4 m n k multiply-adds per kernel): the question
for issue 14's batch-128 goal is what it costs. The default recipe (`python -m lipvae_tf.train
--source=sample --epochs=10 --nobaseline`: R* = 1, r = 8, p = 1/2, fixed posterior std) with
the dense kernels' `subspace_rank` set to each k, test log p(x) (IWAE-64) on the sample's 1000
test images, per seed.

    .venv/bin/python bench/subspace_rank.py [--ranks 16,12,8] [--seeds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from lipvae_tf import layers as ll  # noqa: E402
from lipvae_tf import train  # noqa: E402
from lipvae_tf.model import LipschitzVAE  # noqa: E402


def quality(rank: int, seed: int) -> dict:
    """Trains the default recipe with dense kernels of subspace rank `rank`; its report's
    numbers."""
    original = LipschitzVAE._dense

    def dense(self, units, lipschitz, name):
        return ll.LipschitzDense(units, lipschitz=lipschitz, constraint=self.constraint,
                                 bjorck_iterations=self.bjorck_iterations, subspace_rank=rank,
                                 name=name)

    LipschitzVAE._dense = dense
    try:
        with tempfile.TemporaryDirectory() as out:
            config = train.TrainConfig(source="sample", epochs=10, baseline=False, seed=seed,
                                       output_dir=out, verbose=0)
            train.run(config)
            with open(os.path.join(out, "report.json")) as f:
                report = json.load(f)["models"]["lipschitz_vae"]
    finally:
        LipschitzVAE._dense = original
    return {"rank": rank, "seed": seed, "log_px": report["test"]["log_likelihood_iwae"],
            "elbo": report["test"]["elbo"],
            "radius_min": report["certified_radius"]["best"]["min"],
            "train_seconds": report["train_seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default="16,12,8")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    ranks = [int(k) for k in args.ranks.split(",")]
    results = {k: [] for k in ranks}
    for seed in range(args.seeds):
        for k in ranks:
            row = quality(k, seed)
            results[k].append(row["log_px"])
            print(json.dumps(row), flush=True)
    print("\nrank  test log p(x) per seed          mean")
    for k, values in results.items():
        print(f"{k:>4}  {'  '.join(f'{v:7.1f}' for v in values)}  {sum(values) / len(values):7.1f}")


if __name__ == "__main__":
    main()
