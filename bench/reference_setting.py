"""The reference code's evaluation setting (docs/theory.md section 9, "Reference setting"),
reproduced with lipvae_tf.

Fashion-MNIST (60k train / 10k test), MLP 784-512-512-10 towers, GroupSort, std capped at S = 0.1,
r = 8, p = 1/2, and the three networks' constants all equal to M for M in 5..10, plus the standard
VAE of the same shape. As in the reference code, M is the constant of the decoder *before* its
sigmoid, so our verified M_g (sigmoid included) is M / 4, while the published R1 is computed the
reference way, with M for all three constants.

Step 1 trains every model (skipped when its .keras file exists, so the script resumes).
Step 2 runs `python -m lipvae_tf.evaluate` on all of them and writes runs/reference/eval.
Run: `.venv/bin/python bench/reference_setting.py [--epochs 5] [--skip_eval] [evaluate flags]`
(flags it does not know, e.g. `--restarts=3`, go to `python -m lipvae_tf.evaluate`).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from lipvae_tf import train  # noqa: E402

CONSTANTS = (5.0, 6.0, 7.0, 8.0, 9.0, 10.0)
ROOT = "runs/reference"


def config(constant: float, epochs: int) -> train.TrainConfig:
    """One model of the sweep (the first run also trains the standard VAE)."""
    return train.TrainConfig(
        source="auto", latent_dim=10, std_cap=0.1, r=8.0, p=0.5, target_radius=None,
        constants=(constant, constant, constant / 4), epochs=epochs, batch_size=128,
        learning_rate=1e-3, ll_samples=64, baseline=constant == CONSTANTS[0],
        output_dir=os.path.join(ROOT, f"M{constant:g}"), verbose=2,
    )


def model_paths() -> dict[str, str]:
    paths = {f"M{c:g}": os.path.join(ROOT, f"M{c:g}", "lipschitz_vae.keras") for c in CONSTANTS}
    paths["standard"] = os.path.join(ROOT, f"M{CONSTANTS[0]:g}", "standard_vae.keras")
    return paths


def train_all(epochs: int) -> None:
    for constant in CONSTANTS:
        cfg = config(constant, epochs)
        needed = [model_paths()[f"M{constant:g}"]] + ([model_paths()["standard"]]
                                                       if cfg.baseline else [])
        if all(os.path.exists(path) for path in needed):
            print(f"{cfg.output_dir} already trained, skipped")
            continue
        print(f"training {cfg.output_dir}")
        print(train.format_summary(train.run(cfg)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--skip_eval", action="store_true")
    parser.add_argument("--num_inputs", type=int, default=100)
    args, evaluate_flags = parser.parse_known_args()  # the rest goes to lipvae_tf.evaluate
    train_all(args.epochs)
    if args.skip_eval:
        return
    paths = model_paths()
    subprocess.run([
        sys.executable, "-m", "lipvae_tf.evaluate",
        "--models=" + ",".join(f"{name}={path}" for name, path in paths.items()),
        "--r=8", "--p=0.5", f"--num_inputs={args.num_inputs}",
        f"--output_dir={os.path.join(ROOT, 'eval')}", *evaluate_flags,
    ], check=True)


if __name__ == "__main__":
    main()
