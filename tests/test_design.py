"""Robustness upfront: the budget reaches the target, is the largest that does, fails clearly."""
import numpy as np
import pytest

from lipvae_tf import design
from lipvae_tf.model import LipschitzVAE


@pytest.mark.parametrize("method", ["paper", "markov", "chi2", "best"])
@pytest.mark.parametrize("target,r,p", [(1.0, 8.0, 0.5), (0.3, 4.0, 0.8), (2.0, 12.0, 0.5)])
def test_budget_certifies_the_target_and_is_the_largest_that_does(method, target, r, p):
    budget = design.design_budget(target, r, p, latent_dim=10, method=method, split="equal")
    assert budget.encoder_mean == budget.encoder_std == budget.decoder
    assert budget.certified_radius >= target
    common = dict(r=r, p=p, latent_dim=10, method=method, std_cap=budget.std_cap)
    m = budget.encoder_mean
    assert design.budget_radius(m, m, m, **common) >= target
    bigger = m * (1 + 1e-9)
    assert design.budget_radius(bigger, bigger, bigger, **common) < target


def test_tighter_certificates_allow_larger_budgets():
    sizes = {m: design.design_budget(1.0, 8.0, latent_dim=10, method=m, split="equal").encoder_mean
             for m in ("paper", "markov", "chi2", "markov_cap", "chi2_cap", "best")}
    assert sizes["paper"] <= sizes["markov"] <= sizes["markov_cap"] <= sizes["best"]
    assert sizes["chi2"] <= sizes["chi2_cap"]
    assert sizes["best"] == pytest.approx(max(sizes.values()), rel=1e-9)


def test_fixed_constants_stay_fixed_and_the_free_ones_adapt():
    budget = design.design_budget(1.0, 8.0, latent_dim=10, decoder=1.5, split="equal")
    assert budget.decoder == 1.5
    free = design.design_budget(1.0, 8.0, latent_dim=10, split="equal")
    assert budget.encoder_mean > free.encoder_mean  # a smaller decoder leaves room for the encoder


def test_fixed_std_budget_uses_gamma():
    budget = design.design_budget(1.0, 8.0, latent_dim=10, method="ncx2", gamma=0.05)
    assert budget.encoder_std == 0.0 and budget.std_cap is None and budget.gamma == 0.05
    assert budget.certified_radius >= 1.0


@pytest.mark.parametrize("kwargs,match", [
    (dict(target_radius=50.0), r"target_radius=50.0 is infeasible.*: raise r, or lower "
     r"target_radius, p, the fixed constants or the posterior.s std \(std_cap\)"),
    (dict(target_radius=1.0, encoder_mean=4.0, encoder_std=4.0, decoder=4.0), "infeasible"),
    (dict(target_radius=-1.0), "target_radius"),
    (dict(target_radius=1.0, r=0.0), "r must be"),
    (dict(target_radius=1.0, p=1.0), "p must be"),
    (dict(target_radius=1.0, p=0.3), "p must be"),
    (dict(target_radius=1.0, method="grid"), "method must be"),
    (dict(target_radius=1.0, std_cap=0.0), "std_cap"),
    (dict(target_radius=1.0, split="half"), "split must be one of"),
    (dict(target_radius=1.0, encoder_mean=9.0), "infeasible"),
    (dict(target_radius=1.0, encoder_mean=-1.0), "encoder_mean"),
])
def test_bad_or_infeasible_requests_name_the_argument(kwargs, match):
    args = dict(r=8.0, p=0.5, latent_dim=10) | kwargs
    with pytest.raises(ValueError, match=match):
        design.design_budget(**args)


def test_budget_reports_its_inputs():
    budget = design.design_budget(0.5, 8.0, 0.6, latent_dim=16, method="chi2", std_cap=0.2)
    as_dict = budget.to_dict()
    assert as_dict["target_radius"] == 0.5 and as_dict["latent_dim"] == 16
    assert as_dict["p"] == 0.6 and as_dict["std_cap"] == 0.2 and as_dict["method"] == "chi2"
    assert np.isfinite(as_dict["certified_radius"])


@pytest.mark.parametrize("target,r,p", [(1.0, 8.0, 0.5), (0.5, 8.0, 0.5), (2.0, 8.0, 0.5),
                                        (1.0, 4.0, 0.5), (0.5, 8.0, 0.9)])
def test_decoder_split_fixes_the_encoder_frees_the_std_and_maximises_the_decoder(target, r, p):
    budget = design.design_budget(target, r, p, latent_dim=10)
    assert budget.split == "decoder" and budget.encoder_std is None  # std left to its cap
    assert budget.encoder_mean == design.DEFAULT_ENCODER_MEAN
    assert budget.certified_radius >= target
    common = dict(r=r, p=p, latent_dim=10, method="best", std_cap=budget.std_cap)
    assert design.budget_radius(budget.encoder_mean, None, budget.decoder, **common) >= target
    bigger = budget.decoder * (1 + 1e-9)
    assert design.budget_radius(budget.encoder_mean, None, bigger, **common) < target
    # the capped certificate at s = S does not depend on the std network's constant
    for m_sigma in (0.0, 1.0, 1e6):
        assert design.budget_radius(budget.encoder_mean, m_sigma, budget.decoder,
                                    **common) >= target
    # more decoder budget than the equal split gives, at the same certified target
    equal = design.design_budget(target, r, p, latent_dim=10, split="equal")
    assert budget.decoder > equal.decoder


def test_an_unconstrained_std_admits_only_the_capped_certificates():
    with pytest.raises(ValueError, match="needs the std network's constant"):
        design.budget_radius(1.0, None, 2.0, r=8.0, p=0.5, latent_dim=10, method="chi2",
                             std_cap=0.1)
    budget = design.design_budget(1.0, 8.0, latent_dim=10, method="chi2")  # uncapped method
    assert budget.encoder_std is not None and budget.encoder_std == budget.decoder


@pytest.mark.parametrize("posterior_std", [0.05, None])
def test_a_deep_tower_still_certifies_its_target(posterior_std):
    """Each layer's verified bound carries its own round-off margin (4.8e-7 in float32): with
    41 linear layers per network a fixed 1e-5 slack was not enough, M_mu measured 1.00000068
    against its budget of 1 and the certificate 0.99999843 < R* = 1 (a review, 2026-12-01)."""
    from lipvae_tf.model import LipschitzVAE

    x = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype("float32")
    model = LipschitzVAE.from_target(1.0, 8.0, 0.5, latent_dim=4, hidden_units=(16,) * 40,
                                     posterior_std=posterior_std, seed=0)
    model.finalize()
    constants = model.lipschitz_constants()
    assert constants["encoder_mean"] <= model.design["encoder_mean"]
    assert constants["decoder"] <= model.design["decoder"]
    assert model.certified_radius(x, 8.0, 0.5).min() >= 1.0


@pytest.mark.parametrize("target", [0.5, 1.0, 2.0])
def test_the_design_certifies_the_target_at_the_fixed_std_the_graph_applies(target):
    """float32(0.05) = 0.05 + 7.5e-10: designed at the nominal gamma, the budget certified
    R* - 1.3e-9 at the std the graph uses (the certificate falls as gamma grows)."""
    from lipvae_tf import bounds
    from lipvae_tf.model import LipschitzVAE, applied_posterior_std

    model = LipschitzVAE.from_target(target, 8.0, 0.5, latent_dim=10, hidden_units=(16,))
    budget = model.design
    applied = model.posterior_std_bound()
    assert applied == applied_posterior_std(0.05) > 0.05 == budget["gamma"]
    radius = bounds.radius("best", budget["encoder_mean"], 0.0, budget["decoder"], 0.0,
                           model.reconstruction_tolerance(8.0), 0.5, latent_dim=10,
                           gamma=applied)
    assert radius >= target
    # and design_budget does so for any gamma_applied it is given, refusing it for a learned std
    direct = design.design_budget(target, 8.0, latent_dim=10, gamma=0.05, gamma_applied=0.051)
    assert direct.gamma == 0.05
    assert design.budget_radius(direct.encoder_mean, 0.0, direct.decoder, r=8.0, p=0.5,
                                latent_dim=10, method="best", gamma=0.051) >= target
    with pytest.raises(ValueError, match="gamma_applied=0.05 applies to a fixed posterior std"):
        design.design_budget(target, 8.0, latent_dim=10, gamma_applied=0.05)


def test_a_target_beyond_the_search_says_where_the_search_stops():
    """"is certified for any constants" was claimed where the search for the budget merely
    stopped (at 1e12); lowering the fixed decoder constant was missing from the advice."""
    with pytest.raises(ValueError, match=r"still certified with constants above 1e\+12, where "
                                         r"the search .* stops"):
        LipschitzVAE.from_target(1e-12, 8.0, latent_dim=2, posterior_std=1e-12)
    with pytest.raises(ValueError, match=r"lower target_radius, p, the fixed constants"):
        LipschitzVAE.from_target(1.0, 8.0, latent_dim=2, decoder=100.0)


def test_a_tolerance_above_the_diameter_is_designed_as_the_diameter():
    """certified_radius takes an r above sqrt(D) as sqrt(D) (every perturbation meets it); a
    design for r = 100 on 28 x 28 images would otherwise promise a radius that the model's
    certificate, taken at 28, does not reach."""
    x = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype("float32")
    vae = LipschitzVAE.from_target(1.0, 100.0, latent_dim=2, hidden_units=(8,))
    assert vae.design["r"] == 28.0
    radius = vae.certified_radius(x, 100.0, 0.5)
    np.testing.assert_array_equal(radius, vae.certified_radius(x, 28.0, 0.5))
    assert np.all(radius >= 1.0)


class _SmallImages(LipschitzVAE):
    """A subclass whose own default image_shape is (4, 6, 3): diameter sqrt(72) = 8.485."""

    def __init__(self, latent_dim=2, image_shape=(4, 6, 3), **kwargs):
        super().__init__(latent_dim, image_shape=image_shape, **kwargs)


def test_from_target_designs_for_the_subclass_default_image_shape():
    """from_target read image_shape from its keywords or (28, 28, 1): a subclass with smaller
    images was designed at the wrong diameter and certified below its target (a review)."""
    vae = _SmallImages.from_target(1.0, 20.0, latent_dim=2, hidden_units=(8,))
    assert vae.image_shape == (4, 6, 3) and vae.design["r"] == pytest.approx(72**0.5)
    x = np.random.default_rng(0).uniform(size=(2, 4, 6, 3)).astype("float32")
    assert np.all(vae.certified_radius(x, 20.0, 0.5) >= 1.0)
