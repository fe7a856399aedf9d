"""Recertify the bundled zoo models with the current certificates, without retraining.

For every bundled model: measure the constants of the unchanged weights, certify the whole test
set with every method (in the model's reconstruction mode) and with `best` for both
reconstructions, audit the new certificate (attack at 0.99 x, 50 images, confidence 0.999),
re-export the SavedModel (its `certify` signature uses the current certificates) and rewrite the
card and the manifest. Training data, weights, estimated margins and the other evaluations stay
as built; the card says when and with which version it was recertified.

    python tools/recertify_zoo.py                   # every bundled model
    python tools/recertify_zoo.py fashion_mnist_mlp_r1
"""
from __future__ import annotations

import sys
import time

import numpy as np

from lipvae_tf import attacks, bounds, export, report, train, zoo
from lipvae_tf.model import RECONSTRUCTIONS


def methods_for(model) -> list[str]:
    names = [m for m in bounds.METHODS if m != "ncx2" or model.posterior_std is not None]
    if model.std_cap is None:
        names = [m for m in names if m not in bounds.CAPPED_METHODS]
    return names


def recertify(name: str) -> dict:
    folder = zoo.verify(name)
    card, config = zoo.model_card(name), zoo.model_config(name)
    images, _ = train.load_images(zoo._train_config(config, "unused", None), "test")
    if zoo._data_checksum(images) != card["data"]["test_sha256"]:
        raise ValueError(f"{name}: the test set differs from the card's (sha256)")
    model = zoo.load(name)
    r, p = card["certificate"]["r"], card["certificate"]["p"]
    print(f"{name}: certifying {len(images)} images ({model.reconstruction})", flush=True)
    radii = {m: model.certified_radius(images, r, p, method=m) for m in methods_for(model)}
    card["certified_radius"] = {m: report.summarize(v) for m, v in radii.items()}
    card["certified_radius_by_reconstruction"] = {
        mode: report.summarize(model.certified_radius(images, r, p, reconstruction=mode))
        for mode in RECONSTRUCTIONS}
    card["constants"] = model.lipschitz_constants()
    card["reconstruction"] = model.reconstruction
    audit_x = images[:50]
    audits = {}
    if card["kind"] != "standard":
        for mode in RECONSTRUCTIONS:
            print(f"{name}: auditing the {mode} certificate on 50 images", flush=True)
            attacked = zoo.load(name)  # a fresh copy: its traced functions follow this mode
            attacked.reconstruction = mode  # the attack follows decode_mean's mode
            certified = attacked.certified_radius(audit_x, r, p)
            upper = attacks.audit_certificate(attacked, audit_x, certified, r, p,
                                              confidence=0.999)
            audits[mode] = {"violations": int(np.sum(upper <= p)),
                            "min_probability_upper": float(upper.min()),
                            "certified_median": float(np.median(certified))}
    card["recertified"] = {"date": time.strftime("%Y-%m-%d"),
                           "lipvae_tf": export._package_version(), "audits": audits}
    export.export_saved_model(model, folder / zoo.SAVED_MODEL, version=1, overwrite=True,
                              finalize=False)
    report.write_json(card, str(folder / "card.json"))
    zoo.write_manifest(folder)
    best = card["certified_radius"]["best"]
    print(f"{name}: best min {best['min']:.4f} median {best['median']:.4f}; "
          f"by reconstruction { {k: round(v['median'], 4) for k, v in card['certified_radius_by_reconstruction'].items()} }; "
          f"audits {audits}", flush=True)
    return card


if __name__ == "__main__":
    for model_name in sys.argv[1:] or zoo.list_models(bundled_only=True):
        recertify(model_name)
