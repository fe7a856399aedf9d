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

from lipvae_tf import export, report, train, zoo


def recertify(name: str) -> dict:
    folder = zoo.verify(name)
    card, config = zoo.model_card(name), zoo.model_config(name)
    images, _ = train.load_images(zoo._train_config(config, "unused", None), "test")
    if zoo._data_checksum(images) != card["data"]["test_sha256"]:
        raise ValueError(f"{name}: the test set differs from the card's (sha256)")
    model = zoo.load(name)
    r, p = card["certificate"]["r"], card["certificate"]["p"]
    print(f"{name}: certifying {len(images)} images ({model.reconstruction})", flush=True)
    card["certified_radius"] = {
        m: report.summarize(model.certified_radius(images, r, p, method=m))
        for m in report.certificate_methods(model)}
    card["certified_radius_by_reconstruction"] = (
        {} if card["kind"] == "standard" else zoo.certified_by_reconstruction(model, images, r, p))
    card["constants"] = model.lipschitz_constants()
    card["reconstruction"] = model.reconstruction
    audits = ({} if card["kind"] == "standard" else zoo.audit_reconstructions(
        folder / "model.keras", images[:zoo.AUDIT_IMAGES], r, p))
    card["audits_by_reconstruction"] = audits
    card["recertified"] = {"date": time.strftime("%Y-%m-%d"),
                           "lipvae_tf": export._package_version(), "audits": audits}
    export.export_saved_model(model, folder / zoo.SAVED_MODEL, version=1, overwrite=True,
                              finalize=False)
    report.write_json(card, str(folder / "card.json"))
    zoo.write_manifest(folder)
    best = card["certified_radius"]["best"]
    by_reconstruction = {k: round(v["median"], 4)
                         for k, v in card["certified_radius_by_reconstruction"].items()}
    print(f"{name}: best min {best['min']:.4f} median {best['median']:.4f}; "
          f"by reconstruction {by_reconstruction}; "
          f"audits {audits}", flush=True)
    return card


if __name__ == "__main__":
    for model_name in sys.argv[1:] or zoo.list_models(bundled_only=True):
        recertify(model_name)
