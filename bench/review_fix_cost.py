"""Certified radii of three zoo models, every method, the first 200 bundled test images (r = 8,
p = 1/2): run on two checkouts to see what a change of the certificates moves.

    PYTHONPATH=<checkout> .venv/bin/python bench/review_fix_cost.py OUT.json
"""
import json
import sys

import numpy as np

from lipvae_tf import data, report, zoo

test, _ = data.load_sample("test")
x = test[:200]
out = {}
for name in ("fashion_mnist_mlp_r1", "fashion_mnist_mlp_r1_paper", "fashion_mnist_conv_r1"):
    model = zoo.load(name)
    for method in report.certificate_methods(model):
        radii = model.certified_radius(x, 8.0, 0.5, method=method)
        out[f"{name} {method}"] = [float(np.median(radii)), float(radii.min())]
json.dump(out, open(sys.argv[1], "w"), indent=1)
