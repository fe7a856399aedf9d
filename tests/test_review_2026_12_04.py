"""Faults found by a Keras power user's review (2026-12-04): each test fails on the code before
the fix."""
import keras
import numpy as np
import pytest

from lipvae_tf import layers as ll
from lipvae_tf import lipschitz as lp
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


class _SummaryVAE(lm.LipschitzVAE):
    @property
    def budget_summary(self):  # read-only, a name no certificate code reads
        return self.encoder_mean_budget, self.decoder_budget


def test_a_read_only_property_under_a_new_name_keeps_the_certificate():
    """Any property a subclass added was taken for an override: certified_radius raised
    "_SummaryVAE overrides budget_summary of LipschitzVAE", which has no such attribute."""
    keras.utils.set_random_seed(0)
    ours = _SummaryVAE(posterior_std=0.05, decoder=8.0, **SMALL)
    keras.utils.set_random_seed(0)
    plain = lm.LipschitzVAE(posterior_std=0.05, decoder=8.0, **SMALL)
    x = np.random.default_rng(0).uniform(size=(3, 4, 4, 1)).astype("float32")
    assert ours.budget_summary == (1.0, 8.0)
    np.testing.assert_array_equal(ours.certified_radius(x, 8.0, 0.5),
                                  plain.certified_radius(x, 8.0, 0.5))


def test_a_property_that_may_shadow_what_the_package_reads_still_counts():
    """The rule kept: a property with a setter, or one named as code of the base class or of
    the package reads it (getattr(layer, "factor", ...) included), may change the map."""

    class ReadOnlyFactor(ll.LipschitzDense):
        @property
        def factor(self):
            return 2.0

    class WithSetter(ll.LipschitzDense):
        @property
        def anything_new(self):
            return 1.0

        @anything_new.setter
        def anything_new(self, value):
            pass

    assert lp.overridden_computation(ReadOnlyFactor(4), ll.LipschitzDense) == ("factor",)
    assert lp.overridden_computation(WithSetter(4), ll.LipschitzDense) == ("anything_new",)


@pytest.mark.parametrize("kind", ["spectral", "spectral_norm", "bjorck"])
def test_reconfigured_changes_the_constraint_kind(kind):
    """reconfigured(constraint=...) is documented for the constraint kinds, but the kinds keep
    other state (a subspace, a power-iteration vector, none), so set_weights failed: "changes
    the shapes or number of the weights ... build a new model and train it instead"."""
    keras.utils.set_random_seed(0)
    vae = lm.LipschitzVAE.from_target(1.0, 8.0, **SMALL)  # the default kind, subspace_clip
    x = np.random.default_rng(0).uniform(size=(16, 4, 4, 1)).astype("float32")
    vae.compile(keras.optimizers.Adam(1e-3))
    vae.fit(x, epochs=1, batch_size=8, verbose=0)
    other = vae.reconfigured(constraint=kind)
    assert other.constraint == kind and other.design == vae.design
    assert sum(len(layer.weights) for layers in other._network_layers().values()
               for layer in layers) == len(other.weights)  # every weight is a layer's
    for name, layers in vae._network_layers().items():
        for old, new in zip(layers, other._network_layers()[name]):
            for attribute in ("kernel", "bias"):
                if getattr(old, attribute, None) is not None:
                    np.testing.assert_array_equal(getattr(old, attribute).numpy(),
                                                  getattr(new, attribute).numpy())
    np.testing.assert_array_equal(other.certified_radius(x, 8.0, 0.5),
                                  vae.certified_radius(x, 8.0, 0.5))
    other.compile(keras.optimizers.Adam(1e-3))
    other.fit(x, epochs=1, batch_size=8, verbose=0)  # the new kind's state steers its steps
    with pytest.raises(ValueError, match="changes the shapes or number of the weights"):
        vae.reconfigured(constraint=kind, hidden_units=(8, 4))


@pytest.mark.parametrize("kind", [ll.LipschitzConv2D, ll.LipschitzConv2DTranspose])
def test_a_built_conv_layer_checks_the_rank_and_channels_of_its_inputs(kind):
    """Keras' own Conv2D declares an input_spec; these layers did not, so a rank-3 input
    failed inside TF ("Attr 'data_format' of 'Conv2D' Op passed string 'NWC'") and another
    channel count with "Depth of input (3) is not a multiple of input depth of filter (2)"."""
    layer = kind(4, 3)
    layer.build((None, 8, 8, 2))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 2"):
        layer(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(ValueError, match="expected ndim=4, found ndim=3"):
        layer(np.zeros((1, 8, 8), "float32"))
    assert layer(np.zeros((1, 8, 8, 2), "float32")).shape[-1] == 4


# ----- an adversarial review of robustness upfront (2026-12-04) -----------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(hidden_units=(15,)), r"hidden_units must be multiples of 2 .*GroupSort.*got \(15,\)"),
    (dict(architecture="conv", conv_filters=(3, 6)), r"conv_filters must be multiples of 2"),
    (dict(posterior_std=None, std_cap=1e-20), r"^std_cap=1e-20 is too small for float32"),
])
def test_the_model_names_the_argument_behind_a_layer_error(kwargs, message):
    """An odd width failed inside GroupSort ("needs a last dimension divisible by 2") and a
    cap whose square underflows named StdCap's max_norm: neither named what the user wrote."""
    for build in (lambda: lm.LipschitzVAE(2, **kwargs),
                  lambda: lm.LipschitzVAE.from_target(0.1, 8.0, latent_dim=2, **kwargs)):
        with pytest.raises(ValueError, match=message):
            build()
    if "std_cap" not in kwargs:  # ReLU takes any width
        lm.StandardVAE(2, **kwargs)


def test_a_target_beyond_the_search_says_where_the_search_stops():
    """"is certified for any constants" was claimed where the search for the budget merely
    stopped (at 1e12); lowering the fixed decoder constant was missing from the advice."""
    with pytest.raises(ValueError, match=r"still certified with constants above 1e\+12, where "
                                         r"the search .* stops"):
        lm.LipschitzVAE.from_target(1e-12, 8.0, latent_dim=2, posterior_std=1e-12)
    with pytest.raises(ValueError, match=r"lower target_radius, p, the fixed constants"):
        lm.LipschitzVAE.from_target(1.0, 8.0, latent_dim=2, decoder=100.0)
