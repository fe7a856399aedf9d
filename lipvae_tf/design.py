"""Robustness upfront: from a target certified radius to a Lipschitz budget (docs/theory.md
§7, §11).

Every certificate in `lipvae_tf.bounds` shrinks when a Lipschitz constant or the std cap grows. So
for a stated (target radius R*, r, p, latent dim m) the constants left free are set as large as the
certificate at the worst-case std (s = S, or the fixed gamma) allows while still reaching R*. A
model built with that budget certifies every input at >= R* before training starts: its std cap
bounds s for every input, and its layers fix the constants.

How the budget is split (`split`):
- "decoder" (default): the encoder mean gets DEFAULT_ENCODER_MEAN, the std network is left
  unconstrained (the capped certificates need only the cap S), and the decoder takes the largest
  constant that still certifies R*. BENCHMARKS.md ("Spending the budget") compares the splits.
- "equal": the free constants share one value M (the paper's recipe, and lipvae_tf <= 0.1).
Fixed values (encoder_mean=..., encoder_std=..., decoder=...) always stay as given.
The posterior std is either fixed (gamma; `LipschitzVAE.from_target`'s default is
DEFAULT_POSTERIOR_STD) or learned under the cap S (std_cap).
"""
from __future__ import annotations

import dataclasses
import math

from lipvae_tf import bounds, checks

__all__ = [
    "DEFAULT_MIN_LIPSCHITZ", "DEFAULT_STD_CAP", "DEFAULT_POSTERIOR_STD", "DEFAULT_ENCODER_MEAN",
    "SPLITS", "MAX_LIPSCHITZ", "LipschitzBudget", "budget_radius", "learned_std_cap",
    "design_budget", "check_record",
]

# Below 1 a decoder cannot map codes of the prior's typical set (norms ~ sqrt(m)) to images as far
# apart as real ones (~10 in l2 for 28x28): a budget that needs less is reported as infeasible.
DEFAULT_MIN_LIPSCHITZ = 1.0
DEFAULT_STD_CAP = 0.1  # S: the paper's cap on ||sigma(x)||_2 (a learned std)
# gamma of `LipschitzVAE.from_target`'s default fixed posterior std: the best of 0.0316, 0.05 and
# 0.1, and above a learned std under the cap S = 0.1 at R* = 0.5, 1 and 2 (BENCHMARKS.md, "A fixed
# posterior std"): the noise of a fixed std is certified exactly (`ncx2`), a learned one only
# through the cap's worst case, so the same R* leaves the decoder a larger constant
DEFAULT_POSTERIOR_STD = 0.05
DEFAULT_ENCODER_MEAN = 1.0  # M_mu under split="decoder" (BENCHMARKS.md, "Spending the budget")
SPLITS = ("decoder", "equal")
# where the search for the largest budget stops: a target still certified there is refused
MAX_LIPSCHITZ = 1e12
_SEARCH_STEPS = 200  # geometric bisection halvings of log M; stops at 1e-12 relative


@dataclasses.dataclass(frozen=True)
class LipschitzBudget:
    """Constants (encoder mean, encoder std, decoder's reconstruction g) and the std bound.

    encoder_std is None for a std network left unconstrained (only its cap S is certified), 0 for
    a fixed posterior std gamma. decoder is the constant of the reconstruction g itself (output
    map included); the model divides it by the output map's constant for its logits
    (docs/theory.md section 7).

    Attributes:
        encoder_mean: M_mu, the encoder mean's Lipschitz constant.
        encoder_std: M_sigma; None (unconstrained std network) or 0 (fixed std).
        decoder: M_g, the reconstruction g's Lipschitz constant.
        std_cap: S, the nominal cap on ||sigma(x)||_2 of a learned std; None with a fixed std.
        gamma: the fixed posterior std; None with a learned std.
        target_radius: R*, the radius asked for (l2, pixel space).
        r: the reconstruction tolerance (l2, pixel space), as passed (before any r_slack).
        p: the probability level, in [1/2, 1).
        latent_dim: m.
        method: the certificate (one of `bounds.METHODS`).
        certified_radius: what `method` certifies for every input at the worst-case std (l2,
            pixel space), >= target_radius.
        split: how the budget was split, one of SPLITS.
    """

    encoder_mean: float
    encoder_std: float | None
    decoder: float
    std_cap: float | None  # S: ||sigma(x)||_2 <= S for every x (learned std)
    gamma: float | None  # fixed posterior std sigma = gamma * 1 (instead of a learned one)
    target_radius: float
    r: float
    p: float
    latent_dim: int
    method: str
    certified_radius: float  # the certificate of the budget at the worst-case std, >= target
    split: str = "equal"

    def to_dict(self) -> dict:
        """The fields as a dict (`dataclasses.asdict`), e.g. for JSON."""
        return dataclasses.asdict(self)


def budget_radius(
    encoder_mean: float, encoder_std: float | None, decoder: float, *, r: float, p: float,
    latent_dim: int, method: str, std_cap: float | None = None, gamma: float | None = None,
) -> float:
    """Radius that `method` certifies for every input of a model with these constants.

    Learned std: evaluated at s = s_max = std_cap (the worst case, as radii shrink in both).
    encoder_std None (unconstrained std network): only the capped certificates apply ("best" is
    then their maximum); at s = S they do not depend on M_sigma. Fixed std: `bounds.radius` uses
    gamma itself (M_sigma = 0, s = gamma sqrt(m)) and ignores s, m_sigma. Certificates decrease
    in every constant and in s, so this is a lower bound of every input's radius
    (docs/theory.md section 7, "Robustness upfront", and section 11).

    Args:
        encoder_mean: M_mu, > 0.
        encoder_std: M_sigma, >= 0; None for an unconstrained std network (learned std only).
        decoder: M_g of the reconstruction g, > 0.
        r: the reconstruction tolerance (l2, pixel space), > 0.
        p: the probability level, in [1/2, 1).
        latent_dim: m, an int >= 1.
        method: one of `bounds.METHODS`.
        std_cap: S, > 0: required for a learned std (gamma None), unused with gamma.
        gamma: the fixed posterior std, > 0; None for a learned std.

    Returns:
        The radius as a float (l2, pixel space); 0.0 if nothing is certified.

    Raises:
        ValueError: if std_cap is None with a learned std (gamma None), if encoder_std is None
            (with gamma None) and `method` is not a capped method or "best", or for what
            `bounds.radius` refuses (e.g. "ncx2" without gamma).
        TypeError: for what `bounds.radius` refuses as a type.
    """
    if gamma is not None:
        return float(bounds.radius(method, encoder_mean, 0.0, decoder, 0.0, r, p,
                                   latent_dim=latent_dim, gamma=gamma))
    if std_cap is None:
        raise ValueError("std_cap is required for a learned std (gamma None): the budget is "
                         "certified at the worst-case std, s = std_cap")
    common = dict(latent_dim=latent_dim, std_cap=std_cap, s_max=std_cap)
    if encoder_std is None:
        if method not in (*bounds.CAPPED_METHODS, "best"):
            raise ValueError(
                f"method {method!r} needs the std network's constant: an unconstrained std "
                f"network (encoder_std=None) is certified only by {bounds.CAPPED_METHODS}")
        methods = bounds.CAPPED_METHODS if method == "best" else (method,)
        return max(float(bounds.radius(m, encoder_mean, 0.0, decoder, std_cap, r, p, **common))
                   for m in methods)
    # the uncapped methods ignore std_cap and s_max (bounds.radius only validates them)
    return float(bounds.radius(method, encoder_mean, encoder_std, decoder, std_cap, r, p,
                               **common))


def learned_std_cap(posterior_std: float | None, std_cap: float | None,
                    encoder_std: float | None = None) -> float | None:
    """The cap S of a learned posterior std (std_cap, or DEFAULT_STD_CAP when None), or None
    with a fixed posterior std. Raises ValueError naming std_cap or encoder_std when given with a
    fixed posterior std: they apply to a learned one, and are refused rather than left unused.

    Args:
        posterior_std: the fixed posterior std gamma, or None for a learned std.
        std_cap: the cap asked for, or None (the default cap for a learned std). Not validated.
        encoder_std: the std network's constant asked for, or None. Not validated.

    Returns:
        std_cap (DEFAULT_STD_CAP when None) for a learned std; None for a fixed one.

    Raises:
        ValueError: if std_cap or encoder_std is not None while posterior_std is not None.
    """
    if posterior_std is None:
        return DEFAULT_STD_CAP if std_cap is None else std_cap
    for name, value in (("std_cap", std_cap), ("encoder_std", encoder_std)):
        if value is not None:
            raise ValueError(
                f"{name} applies to a learned posterior std: pass posterior_std=None "
                f"('--posterior_std=learned' on the command line) with it, got {name}={value!r} "
                f"and a fixed posterior std {posterior_std!r}")
    return None


def design_budget(
    target_radius: float,
    r: float,
    p: float = 0.5,
    *,
    latent_dim: int,
    method: str = "best",
    std_cap: float | None = DEFAULT_STD_CAP,
    gamma: float | None = None,
    encoder_mean: float | None = None,
    encoder_std: float | None = None,
    decoder: float | None = None,
    split: str = "decoder",
    min_lipschitz: float = DEFAULT_MIN_LIPSCHITZ,
    r_slack: float = 0.0,
    std_cap_applied: float | None = None,
    gamma_applied: float | None = None,
) -> LipschitzBudget:
    """The Lipschitz budget that certifies every input at >= target_radius with `method`.

    The free constants are set to the largest common value M >= min_lipschitz whose
    certificate at the worst-case std (s = s_max = S, or the fixed gamma) still reaches R*,
    found by bisection on log M (to 1e-12 relative), keeping the certified end: every
    certificate decreases in the constants (docs/theory.md section 7, "Robustness upfront";
    the splits: section 11).

    Args:
        target_radius: R*, l2 in pixel space, finite > 0.
        r: reconstruction tolerance (l2, pixel space), finite > 0.
        p: probability level in [1/2, 1).
        latent_dim: m, an int >= 1.
        method: one of bounds.METHODS; "best" takes the largest sound certificate.
        std_cap: S (learned std), finite > 0. gamma: a fixed posterior std instead, finite > 0
            (std_cap is then unused; encoder_std and std_cap_applied must be None: the
            budget's encoder_std is 0).
            The default here is a learned std capped at DEFAULT_STD_CAP (as for
            `LipschitzVAE(...)`); `LipschitzVAE.from_target` passes gamma =
            DEFAULT_POSTERIOR_STD by default, and gamma_applied.
        encoder_mean, encoder_std, decoder: fix those constants (decoder: of the reconstruction g),
            each finite > 0, or None to leave it free. Under split="decoder" a free encoder_mean
            is DEFAULT_ENCODER_MEAN, and a free encoder_std is left unconstrained (None in the
            budget) when `method` is capped or "best"; otherwise it is free (takes M).
        split: "decoder" (default; see the module docstring) or "equal".
        min_lipschitz: smallest constant a maximised network may get, finite > 0.
        r_slack: certify for r - r_slack, in [0, r) (a model whose reconstruction is rounded:
            see LipschitzVAE.reconstruction_tolerance). std_cap_applied: certify with this cap,
            finite > 0 (the larger of it and std_cap is used: the cap as the float32 graph
            applies it, StdCap.output_norm_bound). gamma_applied: likewise for a fixed std,
            certify with the larger of it and gamma (the std as the graph applies it,
            `LipschitzVAE.posterior_std_bound`: float32(0.05) = 0.05 + 7.5e-10).

    Returns:
        A LipschitzBudget whose certified_radius (at the worst-case std, with r - r_slack and
        the applied cap or gamma) is >= target_radius; its std_cap, gamma and r are the nominal
        ones passed.

    Raises:
        ValueError naming the argument for bad values (encoder_std or std_cap_applied given
        with gamma, gamma_applied without it, among them), and naming target_radius when no
        constant >= min_lipschitz reaches it, or when the certificate reaches it for constants
        beyond MAX_LIPSCHITZ (the search stops there).
        TypeError naming the argument for a value of the wrong type (checks.positive_finite,
        checks.positive_int).
    """
    target_radius = checks.positive_finite("target_radius", target_radius)
    r = checks.positive_finite("r", r)
    p = checks.probability_level("p", p)
    latent_dim = checks.positive_int("latent_dim", latent_dim)
    min_lipschitz = checks.positive_finite("min_lipschitz", min_lipschitz)
    r_slack = checks.non_negative_finite("r_slack", r_slack)
    if not r_slack < r:
        raise ValueError(f"r_slack must be in [0, r={r}), got {r_slack}")
    checks.one_of("method", method, bounds.METHODS)
    checks.one_of("split", split, SPLITS)
    for name, value in (("encoder_mean", encoder_mean), ("decoder", decoder)):
        if value is not None:
            checks.positive_finite(name, value)
    std_free = encoder_std is None
    if gamma is not None:
        gamma = checks.positive_finite("gamma", gamma)
        for name, value in (("encoder_std", encoder_std), ("std_cap_applied", std_cap_applied)):
            if value is not None:  # refused rather than left unused (as learned_std_cap does)
                raise ValueError(f"{name}={value!r} applies to a learned std; a fixed posterior "
                                 f"std gamma={gamma} has none (leave {name} None)")
        std_cap, encoder_std, std_free = None, 0.0, False
        certified_gamma = gamma
        if gamma_applied is not None:
            certified_gamma = max(gamma, checks.positive_finite("gamma_applied", gamma_applied))
    else:
        if gamma_applied is not None:
            raise ValueError(f"gamma_applied={gamma_applied!r} applies to a fixed posterior std; "
                             "a learned one has none (leave it None, or pass gamma)")
        certified_gamma = None
        std_cap = checks.positive_finite("std_cap", std_cap)
        if encoder_std is not None:
            checks.positive_finite("encoder_std", encoder_std)
    uses_cap = gamma is None and (method in bounds.CAPPED_METHODS or method == "best")
    unconstrained_std = split == "decoder" and std_free and uses_cap
    if split == "decoder" and encoder_mean is None:
        encoder_mean = DEFAULT_ENCODER_MEAN
    certified_cap = std_cap
    if std_cap is not None and std_cap_applied is not None:
        certified_cap = max(std_cap, checks.positive_finite("std_cap_applied", std_cap_applied))
    common = dict(r=r - r_slack, p=float(p), latent_dim=latent_dim, method=method,
                  std_cap=certified_cap, gamma=certified_gamma)

    def constants_at(scale: float) -> dict:
        if split == "decoder":
            std = None if unconstrained_std else (scale if encoder_std is None else encoder_std)
            return {"encoder_mean": float(encoder_mean), "encoder_std": std,
                    "decoder": scale if decoder is None else float(decoder)}
        return {"encoder_mean": scale if encoder_mean is None else float(encoder_mean),
                "encoder_std": scale if encoder_std is None else float(encoder_std),
                "decoder": scale if decoder is None else float(decoder)}

    def radius_at(scale: float) -> float:
        return budget_radius(**constants_at(scale), **common)

    free = [encoder_mean is None and split == "equal", decoder is None,
            encoder_std is None and not unconstrained_std]
    scale = _largest_scale(radius_at, target_radius, min_lipschitz) if any(free) else min_lipschitz
    achieved = radius_at(scale)
    if achieved < target_radius:
        raise ValueError(
            f"target_radius={target_radius} is infeasible with method={method!r}, r={r}, p={p}, "
            f"std_cap={std_cap}, gamma={gamma}, split={split!r}, fixed constants "
            f"{ {k: v for k, v in constants_at(math.nan).items() if v == v} } and "
            f"constants >= min_lipschitz={min_lipschitz}: the certificate reaches only "
            f"{achieved:.6g}: raise r, or lower target_radius, p, the fixed constants or "
            f"the posterior's std ({'posterior_std' if gamma is not None else 'std_cap'})"
        )
    return LipschitzBudget(**constants_at(scale), std_cap=std_cap, gamma=gamma,
                           target_radius=target_radius, r=r, p=float(p), latent_dim=latent_dim,
                           method=method, certified_radius=achieved, split=split)


def check_record(record: dict) -> dict:
    """`record` (a `LipschitzBudget.to_dict()`, e.g. from a model's config) if its constants
    certify what it claims: `budget_radius` of its own constants (with its r, before any
    r_slack, and the nominal cap or std, so at least what `design_budget` certified) is >= its
    certified_radius, which is >= its target_radius. A record edited by hand (a .keras config
    whose target_radius read 100 loaded silently, and an export reported that design as met)
    is refused.

    Args:
        record: the dict, with every field of `LipschitzBudget`.

    Returns:
        `record`, unchanged.

    Raises:
        TypeError: if record is not a dict.
        ValueError: for a missing or unknown field, a value `budget_radius` refuses, or a
            claim its constants do not reproduce.
    """
    if not isinstance(record, dict):
        raise TypeError(f"design must be the dict of a LipschitzBudget (to_dict()) or None, "
                        f"got {type(record).__name__}")
    fields = {field.name for field in dataclasses.fields(LipschitzBudget)}
    if set(record) != fields:
        raise ValueError(f"design must hold the fields of a LipschitzBudget; missing "
                         f"{sorted(fields - set(record))}, unknown {sorted(set(record) - fields)}")
    target = checks.positive_finite("design target_radius", record["target_radius"])
    claimed = checks.positive_finite("design certified_radius", record["certified_radius"])
    reproduced = budget_radius(
        record["encoder_mean"], record["encoder_std"], record["decoder"], r=record["r"],
        p=record["p"], latent_dim=record["latent_dim"], method=record["method"],
        std_cap=record["std_cap"], gamma=record["gamma"])
    # 1e-9: the bisections' brackets (1e-12 relative) with room; a real edit is far larger
    if not target <= claimed <= reproduced * (1 + 1e-9):
        raise ValueError(
            f"design record does not hold together: target_radius {target:.9g}, "
            f"certified_radius {claimed:.9g}, and its constants certify {reproduced:.9g} (each "
            "must be <= the next): the record was edited (or comes from another model); "
            "rebuild the model with LipschitzVAE.from_target")
    return record


def _largest_scale(radius_at, target: float, floor: float) -> float:
    """Largest M >= floor with radius_at(M) >= target (radius_at decreases in M); floor if none."""
    if radius_at(floor) < target:
        return floor
    lo, hi = floor, floor * 2
    while radius_at(hi) >= target:
        lo, hi = hi, hi * 2
        if hi > MAX_LIPSCHITZ:
            # (it said "certified for any constants": the search stops here, it does not prove
            # that: an adversarial review, 2026-12-04)
            raise ValueError(
                f"target_radius={target} is still certified with constants above "
                f"{MAX_LIPSCHITZ:g}, where the search for the largest budget stops: the "
                "networks would be practically unconstrained. Raise target_radius or p, lower "
                "r, or fix the constants yourself (encoder_mean=, decoder=)")
    for _ in range(_SEARCH_STEPS):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if radius_at(mid) >= target else (lo, mid)
        if hi - lo <= 1e-12 * hi:
            break
    return lo
