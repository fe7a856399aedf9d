"""Write the Fashion-MNIST sample bundled in lipvae_tf/sample_data/ (reproducibly).

The sample lets the package train and test on real images when neither TFDS data nor the IDX
files are on the machine (CI starts empty). It is a seeded, class-balanced choice from the
original IDX files: for each split and each class 0..9, `np.random.default_rng(seed)` picks
`--train-per-class` (300) training and `--test-per-class` (100) test images without replacement;
the picked indices are then sorted, so the sample keeps the original order (classes interleaved).
Defaults give 3000 train + 1000 test images, about 1.75 MB.

The .npz holds uint8 arrays x_train (N, 28, 28), y_train (N,), x_test, y_test, and the original
indices train_index, test_index. It is written byte-for-byte reproducibly (fixed zip timestamps,
fixed compression level), so the sha256 printed at the end is stable for a given zlib; it must
equal `lipvae_tf.data.SAMPLE_SHA256`.

Source files: Debian's `dataset-fashion-mnist` package (`apt-get install dataset-fashion-mnist`),
/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.

    python tools/make_sample.py [--idx-dir DIR] [--out PATH] [--seed 0]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from lipvae_tf import data

# A fixed timestamp (the zip format's earliest) so that the archive bytes do not depend on when
# the script runs.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def balanced_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of `per_class` randomly chosen examples of every class 0..9."""
    chosen = []
    for label in range(data.NUM_CLASSES):
        members = np.flatnonzero(labels == label)
        if len(members) < per_class:
            raise ValueError(f"class {label} has {len(members)} examples, fewer than {per_class}")
        chosen.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A compressed .npz (readable by np.load) whose bytes depend only on `arrays`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compresslevel=9)
    return buffer.getvalue()


def make_sample(idx_dir: Path, train_per_class: int, test_per_class: int,
                seed: int) -> dict[str, np.ndarray]:
    """The sample's arrays, chosen from the IDX files in `idx_dir`."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        images, labels = data.load_idx(idx_dir, split)
        index = balanced_indices(labels, per_class, rng)
        arrays[f"x_{split}"] = images[index]
        arrays[f"y_{split}"] = labels[index]
        arrays[f"{split}_index"] = index.astype(np.int32)
    return arrays


def main() -> None:
    """Parse the command line, write the sample, print its size and sha256."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idx-dir", type=Path, default=data.DEBIAN_FASHION_MNIST_DIR)
    parser.add_argument("--out", type=Path, default=data.SAMPLE_PATH)
    parser.add_argument("--train-per-class", type=int, default=300)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    arrays = make_sample(args.idx_dir, args.train_per_class, args.test_per_class, args.seed)
    content = npz_bytes(arrays)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    print(f"wrote {args.out}: {len(content)} bytes, "
          f"{len(arrays['x_train'])} train + {len(arrays['x_test'])} test images")
    print(f"sha256 {digest}")
    if digest != data.SAMPLE_SHA256:
        print("NOTE: differs from lipvae_tf.data.SAMPLE_SHA256; "
              "update it if this sample is intended")


if __name__ == "__main__":
    main()
