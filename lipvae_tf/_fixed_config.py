"""Attributes that are fixed once set: what traced graphs and certificates must agree on.

A `tf.function` (Keras' compiled train/predict steps, `LipschitzVAE.reconstruct`, the attacks,
SavedModel signatures) copies Python values such as a layer's Lipschitz factor, the std cap or
the reconstruction mode into its graph when it is traced, and reuses that graph afterwards. The
certificates read the attributes each time. Reassigning one after a trace would therefore certify
a model that the graphs no longer compute (an adversarial review: a cap tightened after use
certified 0.045 where the sampled reconstruction failed at delta = 0). So the attributes that
either side reads are fixed once set, and a changed model is built anew from its config.
"""
from __future__ import annotations


class FixedConfig:
    """Mixin for Keras layers and models: the attributes named in `_fixed_attributes` can be
    assigned once (in `__init__`, or in `build` for shapes found there) and never again.

    Raises:
        AttributeError: naming the attribute, on a second assignment, and on `del` of a set one
            (a review: `del vae.posterior_std` cleared it, and the next assignment then passed
            as the first).
    """

    _fixed_attributes: frozenset[str] = frozenset()

    def _rebuild_hint(self, name: str) -> str:
        owner = type(self).__name__
        return (f"build a new {owner} from its config with the value changed "
                f"({owner}.from_config({{**layer.get_config(), {name!r}: value}})) and copy the "
                "weights (set_weights)")

    def _refusal(self, name: str, what: str) -> AttributeError:
        return AttributeError(
            f"{type(self).__name__}.{name} is fixed once set{what}: graphs traced before (fit, "
            "predict, reconstruct, the attacks) would keep the old value while what is "
            "computed afresh (certificates, Lipschitz bounds, the config) would read the new "
            f"one; {self._rebuild_hint(name)}")

    def __setattr__(self, name: str, value) -> None:
        if name in self._fixed_attributes and name in self.__dict__:
            raise self._refusal(name, "")
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name in self._fixed_attributes and name in self.__dict__:
            raise self._refusal(name, " and cannot be deleted")
        super().__delattr__(name)
