"""`python -m lipvae_tf.train` with the conv kernels' subspace-clip correction multiplied by OMEGA
(over-relaxation; 1 is the package's step; dense kernels untouched). BENCHMARKS.md,
"Over-relaxing the conv kernels' correction".

    .venv/bin/python bench/relaxed_conv_train.py OMEGA --source=idx --epochs=5 \
        --architecture=conv --nobaseline --seed=0 --output_dir=runs/relaxed
"""
import sys

from absl import app

from lipvae_tf import constraints, train

omega = float(sys.argv[1])
_step = constraints._subspace_correction


def relaxed(kernel, subspace, max_norm):
    correction, new_subspace, top = _step(kernel, subspace, max_norm)
    return (correction * omega if kernel.dtype.is_complex else correction), new_subspace, top


constraints._subspace_correction = relaxed
if __name__ == "__main__":
    app.run(train.main, argv=[sys.argv[0]] + sys.argv[2:])
