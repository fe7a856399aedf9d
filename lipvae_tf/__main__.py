"""`python -m lipvae_tf`: the main job, no flags and no download.

Trains a LipschitzVAE whose robustness is stated upfront (every input certified at R* = 1 for
r = 8, p = 1/2) on the Fashion-MNIST sample bundled with the package, trains the standard VAE the
same way, certifies the test images and prints a summary; report and figures go to runs/main_job.
"""
from __future__ import annotations

import argparse

import lipvae_tf

if lipvae_tf._is_cli(__name__):  # a command, not an import: before TensorFlow loads
    lipvae_tf._cli_native_log_level()

from lipvae_tf import report, train

MAIN_JOB = train.TrainConfig(
    source="sample", target_radius=1.0, r=8.0, p=0.5, method="best", latent_dim=10,
    epochs=15, batch_size=128, learning_rate=1e-3, ll_samples=64, output_dir="runs/main_job",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The main job takes no options; --help says what it does and where the flags are."""
    parser = argparse.ArgumentParser(
        prog="python -m lipvae_tf", description=__doc__.split("\n\n", 1)[1].strip(),
        epilog="For other settings use `python -m lipvae_tf.train --help` (or lipvae-train).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    parse_args(argv)
    train.quiet_tensorflow_logs()
    print(f"lipvae_tf main job: target radius R* = {MAIN_JOB.target_radius:g} for r = "
          f"{MAIN_JOB.r:g}, p = {MAIN_JOB.p:g}, on the bundled Fashion-MNIST sample", flush=True)
    with report.one_line_errors("python -m lipvae_tf"):
        result = train.run(MAIN_JOB)
    print()
    print(train.format_summary(result))


if __name__ == "__main__":
    main()
