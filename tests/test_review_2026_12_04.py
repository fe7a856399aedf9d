"""Faults found by a Keras power user's review (2026-12-04): each test fails on the code before
the fix."""
import keras
import pytest

from lipvae_tf import model as lm

SMALL = dict(latent_dim=2, hidden_units=(8, 8), image_shape=(4, 4, 1))


class _PassThroughVAE(lm.LipschitzVAE):
    """The usual subclass: a pass-through constructor that adds a metric."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra = keras.metrics.Mean(name="extra")


class _OwnKeywordVAE(_PassThroughVAE):
    def __init__(self, *args, weight_of_extra: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.weight_of_extra = weight_of_extra


def test_from_target_takes_the_constructor_keywords_of_a_pass_through_subclass():
    """from_target checked keywords against the subclass's own signature, (*args, **kwargs),
    and refused hidden_units ("unexpected keyword arguments hidden_units"), which the
    constructor takes."""
    vae = _PassThroughVAE.from_target(1.0, 8.0, **SMALL)
    assert type(vae) is _PassThroughVAE and vae.hidden_units == (8, 8)
    own = _OwnKeywordVAE.from_target(1.0, 8.0, weight_of_extra=0.5, **SMALL)
    assert own.weight_of_extra == 0.5 and own.latent_dim == 2
    with pytest.raises(TypeError, match="unexpected keyword arguments hiden_units"):
        _OwnKeywordVAE.from_target(1.0, 8.0, hiden_units=(8,), latent_dim=2)  # a typo
