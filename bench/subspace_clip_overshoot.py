"""How far above their bound the subspace clip leaves kernels during training, and what finalize()
then takes away (BENCHMARKS.md, "The subspace clip during training").

The default model (`from_target(1.0, 8.0)`, latent 10; MLP 256-256 or the conv VAE) on the bundled
sample: EPOCHS epochs at Adam 1e-3, then 2 at 1e-4; after each phase the exact norm of every
kernel over its bound and the test ELBO (1000 images), then the test ELBO after `finalize()`.
OMEGA is the conv kernels' over-relaxation (`conv_relaxation`, in (0, 2); default the package's,
`constraints.DEFAULT_CONV_RELAXATION`). The runs of BENCHMARKS.md before 2026-12-01 17:30 were
made with OMEGA scaling the plain step by a patch (the same step), OMEGA = 4 included.

    .venv/bin/python bench/subspace_clip_overshoot.py mlp|conv [EPOCHS=8] [OMEGA] [SEED=0]
"""
import argparse
import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
import numpy as np

import lipvae_tf as lv
from lipvae_tf import constraints as lc
from lipvae_tf import data
from lipvae_tf import layers as ll
from lipvae_tf import lipschitz as lp

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("arch", choices=("mlp", "conv"))
parser.add_argument("epochs", nargs="?", type=int, default=8)
parser.add_argument("omega", nargs="?", type=float, default=None,
                    help="the conv kernels' over-relaxation (conv only)")
parser.add_argument("seed", nargs="?", type=int, default=0)
args = parser.parse_args()
if args.omega is not None and args.arch == "mlp":
    parser.error("OMEGA acts on conv kernels only (an MLP has none)")
arch, epochs, seed = args.arch, args.epochs, args.seed
omega = lc.DEFAULT_CONV_RELAXATION if args.omega is None else args.omega
x = data.load_sample("train")[0]
xt = data.load_sample("test")[0]
keras.utils.set_random_seed(seed)
kw = dict(hidden_units=(256, 256)) if arch == "mlp" else dict(conv_relaxation=omega)
m = lv.LipschitzVAE.from_target(1.0, 8.0, latent_dim=10, architecture=arch, seed=seed, **kw)
m.compile(optimizer=keras.optimizers.Adam(1e-3))
for lr, ep in ((1e-3, epochs), (1e-4, 2)):
    m.optimizer.learning_rate.assign(lr)
    m.fit(x, epochs=ep, batch_size=128, verbose=0)
    norms = []
    for net in m.lipschitz_networks().values():
        for layer in net.layers:
            if isinstance(layer, (ll.LipschitzDense, ll.LipschitzConv2D,
                                  ll.LipschitzConv2DTranspose)):
                norms.append(lp.layer_lipschitz_bound(layer)
                             / lp.applied_value(layer.lipschitz, "float32"))
    print(arch, "lr", lr, "kernel norms / bound:", np.round(norms, 4), "test elbo",
          round(m.evaluate(xt, verbose=0, return_dict=True)["elbo"], 1))
m.finalize()
print("omega", omega, "seed", seed, "after finalize test elbo",
      round(m.evaluate(xt, verbose=0, return_dict=True)["elbo"], 1))
