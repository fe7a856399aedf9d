"""Robustness upfront: the budget reaches the target, is the largest that does, fails clearly."""
import numpy as np
import pytest

from lipvae_tf import design


@pytest.mark.parametrize("method", ["paper", "markov", "chi2", "best"])
@pytest.mark.parametrize("target,r,p", [(1.0, 8.0, 0.5), (0.3, 4.0, 0.8), (2.0, 12.0, 0.5)])
def test_budget_certifies_the_target_and_is_the_largest_that_does(method, target, r, p):
    budget = design.design_budget(target, r, p, latent_dim=10, method=method)
    assert budget.encoder_mean == budget.encoder_std == budget.decoder
    assert budget.certified_radius >= target
    common = dict(r=r, p=p, latent_dim=10, method=method, std_cap=budget.std_cap)
    m = budget.encoder_mean
    assert design.budget_radius(m, m, m, **common) >= target
    bigger = m * (1 + 1e-9)
    assert design.budget_radius(bigger, bigger, bigger, **common) < target


def test_tighter_certificates_allow_larger_budgets():
    sizes = {m: design.design_budget(1.0, 8.0, latent_dim=10, method=m).encoder_mean
             for m in ("paper", "markov", "chi2", "best")}
    assert sizes["paper"] <= sizes["markov"] <= sizes["best"]
    assert sizes["best"] == pytest.approx(max(sizes.values()), rel=1e-9)


def test_fixed_constants_stay_fixed_and_the_free_ones_adapt():
    budget = design.design_budget(1.0, 8.0, latent_dim=10, decoder=1.5)
    assert budget.decoder == 1.5
    free = design.design_budget(1.0, 8.0, latent_dim=10)
    assert budget.encoder_mean > free.encoder_mean  # a smaller decoder leaves room for the encoder


def test_fixed_std_budget_uses_gamma():
    budget = design.design_budget(1.0, 8.0, latent_dim=10, method="ncx2", gamma=0.05)
    assert budget.encoder_std == 0.0 and budget.std_cap is None and budget.gamma == 0.05
    assert budget.certified_radius >= 1.0


@pytest.mark.parametrize("kwargs,match", [
    (dict(target_radius=50.0), "target_radius=50.0 is infeasible"),
    (dict(target_radius=1.0, encoder_mean=4.0, encoder_std=4.0, decoder=4.0), "infeasible"),
    (dict(target_radius=-1.0), "target_radius"),
    (dict(target_radius=1.0, r=0.0), "r must be"),
    (dict(target_radius=1.0, p=1.0), "p must be"),
    (dict(target_radius=1.0, p=0.3), "p must be"),
    (dict(target_radius=1.0, method="grid"), "method must be"),
    (dict(target_radius=1.0, std_cap=0.0), "std_cap"),
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
