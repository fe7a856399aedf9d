"""Every argument of the public attack functions is checked before the first expensive call
(issue 15, item 5): a stub model counts its calls and must see none."""
import numpy as np
import pytest

from lipvae_tf import attacks, checks


class StubModel:
    """Looks like a VAE to the attacks; any use of its networks is counted (and fails)."""

    latent_dim = 2

    def __init__(self):
        self.calls = 0

    def check_images(self, x, name="x"):
        array = np.asarray(x, np.float32)
        if array.ndim != 4 or array.min(initial=0) < 0 or array.max(initial=0) > 1:
            raise ValueError(f"{name} must be images with pixel values in [0, 1]")
        return array

    def posterior_params(self, x):
        self.calls += 1
        raise AssertionError("an expensive call happened before the arguments were checked")

    decode_mean = posterior_params


X = np.full((2, 3, 3, 1), 0.5, np.float32)
DELTA = np.zeros_like(X)

CASES = [  # (function, positional args after the model, kwargs, error, argument named)
    (attacks.estimate_margin, (X, 8.0), dict(initial_radius=0.0), ValueError, "initial_radius"),
    (attacks.estimate_margin, (X, 8.0), dict(initial_radius=-1.0), ValueError, "initial_radius"),
    (attacks.estimate_margin, (X, 8.0), dict(initial_radius=float("inf")), ValueError,
     "initial_radius"),
    (attacks.estimate_margin, (X, 8.0), dict(confidence=1.5), ValueError, "confidence"),
    (attacks.estimate_margin, (X, 8.0), dict(confidence=0.0), ValueError, "confidence"),
    (attacks.estimate_margin, (X, 8.0), dict(confidence="high"), TypeError, "confidence"),
    (attacks.estimate_margin, (X, 8.0), dict(restarts=0), ValueError, "restarts"),
    (attacks.estimate_margin, (X, 8.0), dict(steps=-1), ValueError, "steps"),
    (attacks.estimate_margin, (X, 8.0), dict(steps=2.5), TypeError, "steps"),
    (attacks.estimate_margin, (X, 8.0), dict(attack_samples=0), ValueError, "attack_samples"),
    (attacks.estimate_margin, (X, 8.0), dict(bisection_steps=-1), ValueError, "bisection_steps"),
    (attacks.estimate_margin, (X, 8.0), dict(samples=0), ValueError, "samples"),
    (attacks.estimate_margin, (X, 8.0), dict(max_radius=0.0), ValueError, "max_radius"),
    (attacks.estimate_margin, (X, 8.0), dict(seed=-1), ValueError, "seed"),
    (attacks.estimate_margin, (X, 8.0), dict(seed=2**31), ValueError, "seed"),
    (attacks.estimate_margin, (X, 8.0), dict(seed=1.0), TypeError, "seed"),
    (attacks.estimate_margin, (X, 8.0), dict(verbose=1), TypeError, "verbose"),
    (attacks.estimate_margin, (X, 8.0), dict(verbose="yes"), TypeError, "verbose"),
    (attacks.estimate_margin, (X, 8.0), dict(p=0.3), ValueError, "p must"),
    (attacks.estimate_margin, (X, float("nan")), {}, ValueError, "r must"),
    (attacks.estimate_margin, (X, "8"), {}, TypeError, "r must"),
    (attacks.estimate_margin, (X * 3, 8.0), {}, ValueError, "x must"),
    (attacks.audit_certificate, (X, 1.0, 8.0), dict(fraction=1.5), ValueError, "fraction"),
    (attacks.audit_certificate, (X, 1.0, 8.0), dict(fraction=0.0), ValueError, "fraction"),
    (attacks.audit_certificate, (X, 1.0, 8.0), dict(confidence=1.0), ValueError, "confidence"),
    (attacks.audit_certificate, (X, 1.0, 8.0), dict(p=1.0), ValueError, "p must"),
    (attacks.audit_certificate, (X, 1.0, 8.0), dict(samples=0), ValueError, "samples"),
    (attacks.audit_certificate, (X, 1.0, 8.0), dict(restarts=0), ValueError, "restarts"),
    (attacks.audit_certificate, (X, 1.0, 8.0), dict(steps=-2), ValueError, "steps"),
    # random starts alone are no audit: they would report a broken certificate as unbroken
    (attacks.audit_certificate, (X, 1.0, 8.0), dict(steps=0), ValueError, "steps"),
    (attacks.audit_certificate, (X, 1.0, 8.0), dict(attack_samples=0), ValueError,
     "attack_samples"),
    (attacks.audit_certificate, (X, 1.0, 8.0), dict(seed=2**31 - 1), ValueError, "seed"),
    (attacks.audit_certificate, (X, 1.0, -8.0), {}, ValueError, "r must"),
    (attacks.audit_certificate, (X, [1.0, -1.0], 8.0), {}, ValueError, "radius"),
    (attacks.maximum_damage_attack, (X, 1.0), dict(batch_size=0), ValueError, "batch_size"),
    (attacks.maximum_damage_attack, (X, 1.0), dict(batch_size=-5), ValueError, "batch_size"),
    (attacks.maximum_damage_attack, (X, 1.0), dict(restarts=0), ValueError, "restarts"),
    (attacks.maximum_damage_attack, (X, 1.0), dict(steps=-1), ValueError, "steps"),
    (attacks.maximum_damage_attack, (X, 1.0), dict(samples=0), ValueError, "samples"),
    (attacks.maximum_damage_attack, (X, 1.0), dict(eval_samples=0), ValueError, "eval_samples"),
    (attacks.maximum_damage_attack, (X, 1.0), dict(seed=-3), ValueError, "seed"),
    (attacks.maximum_damage_attack, (X, float("nan")), {}, ValueError, "radius"),
    (attacks.latent_attack, (X, X), dict(radius=1.0, steps=0), ValueError, "steps"),
    (attacks.latent_attack, (X, X), dict(radius=1.0, step_size=0.0), ValueError, "step_size"),
    (attacks.latent_attack, (X, X), dict(radius=1.0, batch_size=0), ValueError, "batch_size"),
    (attacks.latent_attack, (X, X), dict(radius=1.0, seed=-1), ValueError, "seed"),
    (attacks.latent_attack, (X, X), dict(penalty=-1.0), ValueError, "penalty"),
    (attacks.latent_attack, (X, X), dict(radius=-1.0), ValueError, "radius"),
    (attacks.latent_attack, (X, X), {}, ValueError, "exactly one"),
    (attacks.latent_attack, (X, X[:1]), dict(radius=1.0), ValueError, "x_target"),
    (attacks.expected_damage, (X, DELTA), dict(samples=0), ValueError, "samples"),
    (attacks.expected_damage, (X, DELTA[:1]), {}, ValueError, "delta"),
    (attacks.expected_damage, (X, DELTA), dict(seed=-1), ValueError, "seed"),
    (attacks.robust_counts, (X, DELTA, 8.0, 10), dict(chunk=0), ValueError, "chunk"),
    (attacks.robust_counts, (X, DELTA, 8.0, 0), {}, ValueError, "samples"),
    (attacks.robust_counts, (X, DELTA, 0.0, 10), {}, ValueError, "r must"),
    (attacks.robust_counts, (X, DELTA[..., :2, :], 8.0, 10), {}, ValueError, "delta"),
    (attacks.robust_counts, (X, DELTA * np.nan, 8.0, 10), {}, ValueError, "delta"),
]


@pytest.mark.parametrize("function,args,kwargs,error,name", CASES,
                         ids=[f"{c[0].__name__}-{c[4]}-{i}" for i, c in enumerate(CASES)])
def test_bad_arguments_are_rejected_before_any_model_call(function, args, kwargs, error, name):
    model = StubModel()
    with pytest.raises(error, match=name):
        function(model, *args, **kwargs)
    assert model.calls == 0


@pytest.mark.parametrize("kwargs,name", [(dict(radius=1.0, seed=2**31), "seed"),
                                         (dict(radius=-1.0), "radius")])
def test_random_perturbation_checks_its_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        attacks.random_perturbation(X, **kwargs)


@pytest.mark.parametrize("confidence,error", [(1.5, ValueError), (0, ValueError),
                                              ("0.9", TypeError), (None, TypeError)])
def test_clopper_pearson_confidence_is_typed(confidence, error):
    with pytest.raises(error, match="confidence"):
        attacks.clopper_pearson_upper(3, 10, confidence)


def test_estimate_margin_terminates_when_nothing_breaks(monkeypatch):
    """The bracket doubles from initial_radius > 0 up to max_radius, then stops."""
    radii = []

    def attack(model, x, radius, **_):
        radii.append(np.asarray(radius, np.float64).copy())
        return attacks.AttackResult(np.zeros_like(x), np.zeros(len(x)), np.zeros(len(x)))

    monkeypatch.setattr(attacks, "maximum_damage_attack", attack)
    monkeypatch.setattr(attacks, "robust_counts", lambda model, x, delta, r, samples, seed:
                        np.full(len(x), samples))  # never broken
    estimate = attacks.estimate_margin(StubModel(), X, 8.0, initial_radius=0.25, max_radius=3.0,
                                       samples=50)
    assert [float(r[0]) for r in radii] == [0.0, 0.25, 0.5, 1.0, 2.0, 3.0]
    np.testing.assert_array_equal(estimate.margin, [3.0, 3.0])
    assert np.all(np.isinf(estimate.upper))


def test_large_seeds_stay_in_the_int32_range(monkeypatch):
    seeds = []

    def attack(model, x, radius, seed, **_):
        seeds.append(checks.seed("seed", seed))
        return attacks.AttackResult(np.zeros_like(x), np.zeros(len(x)), np.zeros(len(x)))

    def counts(model, x, delta, r, samples, seed):
        seeds.append(checks.seed("seed", seed))
        return np.zeros(len(x), np.int64)  # broken at once

    monkeypatch.setattr(attacks, "maximum_damage_attack", attack)
    monkeypatch.setattr(attacks, "robust_counts", counts)
    attacks.estimate_margin(StubModel(), X, 8.0, seed=2**31 - 1, samples=50, bisection_steps=2)
    assert len(seeds) == 2 and len(set(seeds)) == 2


@pytest.mark.parametrize("value,options,ok", [("same", ("same", "valid"), True),
                                              ("SAME", ("same", "valid"), False),
                                              (True, (1, 2), False), (1, (1, 2), True),
                                              (np.zeros(2), ("a",), False)])
def test_checks_one_of(value, options, ok):
    if ok:
        assert checks.one_of("padding", value, options) is value
    else:
        with pytest.raises(ValueError, match=r"padding must be one of \("):
            checks.one_of("padding", value, options)


@pytest.mark.parametrize("value,low_open,high_open,ok", [
    (0.0, False, False, True), (0.0, True, False, False), (1.0, False, True, False),
    (1.0, False, False, True), (float("nan"), False, False, False), (-0.1, False, False, False),
])
def test_checks_in_interval(value, low_open, high_open, ok):
    call = lambda: checks.in_interval("fraction", value, 0, 1, low_open=low_open,  # noqa: E731
                                      high_open=high_open)
    if ok:
        assert call() == value
    else:
        with pytest.raises(ValueError, match="fraction must be in"):
            call()


def test_estimate_margin_shows_progress_and_gives_the_same_results(capsys):
    """verbose=True prints a progress bar over the attack calls (issue 15 item 6: minutes of
    silence on many inputs); the margins, bounds and probabilities do not change with it."""
    import keras

    from lipvae_tf.model import LipschitzVAE

    keras.utils.set_random_seed(0)
    model = LipschitzVAE(latent_dim=2, hidden_units=(8,), encoder_mean=2.0, encoder_std=1.0,
                         decoder=2.0, std_cap=0.1, seed=0)
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    settings = dict(r=1.0, samples=30, bisection_steps=2, restarts=1, steps=2, attack_samples=2,
                    initial_radius=1.0, max_radius=4.0, seed=3)
    quiet = attacks.estimate_margin(model, x, verbose=False, **settings)
    assert capsys.readouterr().out == ""
    shown = attacks.estimate_margin(model, x, verbose=True, **settings)
    out = capsys.readouterr().out
    # radius 0, the bracket 1, 2, 4, two bisection steps: at most 6 attack calls
    assert "6/6" in out and "attack" in out and "inputs" in out, out
    assert "radius tried (median)" in out, out
    for field in ("margin", "upper", "probability_upper"):
        np.testing.assert_array_equal(getattr(shown, field), getattr(quiet, field))
    # not a terminal (pytest captures stdout): the default shows nothing
    attacks.estimate_margin(model, x, **settings)
    assert capsys.readouterr().out == ""
