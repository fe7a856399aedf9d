"""Robustness upfront: from a target certified radius to a Lipschitz budget (THEORY.md section 5).

Every certificate in `lipvae_tf.bounds` shrinks when any Lipschitz constant or the std cap grows.
So for a stated (target radius R*, r, p, latent dim m), the constants left free are set to one
common value M, the largest for which the certificate at the worst-case std (s = S, or the fixed
gamma) still reaches R*. A model built with that budget certifies every input at >= R* before
training starts: its std cap bounds s for every input, and its layers fix the constants.
"""
from __future__ import annotations

import dataclasses
import math

from lipvae_tf import bounds, checks

# Below 1 a decoder cannot map codes of the prior's typical set (norms ~ sqrt(m)) to images as far
# apart as real ones (~10 in l2 for 28x28): a budget that needs less is reported as infeasible.
DEFAULT_MIN_LIPSCHITZ = 1.0
_SEARCH_STEPS = 200  # geometric bisection halvings of log M; stops at 1e-12 relative


@dataclasses.dataclass(frozen=True)
class LipschitzBudget:
    """Constants (encoder mean, encoder std, decoder incl. output sigmoid) and the std bound."""

    encoder_mean: float
    encoder_std: float  # 0 for a fixed posterior std
    decoder: float
    std_cap: float | None  # S: ||sigma(x)||_2 <= S for every x (learned std)
    gamma: float | None  # fixed posterior std sigma = gamma * 1 (instead of a learned one)
    target_radius: float
    r: float
    p: float
    latent_dim: int
    method: str
    certified_radius: float  # the certificate of the budget at the worst-case std, >= target

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def budget_radius(
    encoder_mean: float, encoder_std: float, decoder: float, *, r: float, p: float,
    latent_dim: int, method: str, std_cap: float | None = None, gamma: float | None = None,
) -> float:
    """Radius that `method` certifies for every input of a model with these constants.

    Learned std: evaluated at s = std_cap (the worst case, as radii shrink in s). Fixed std:
    `bounds.radius` uses gamma itself (M_sigma = 0, s = gamma sqrt(m)) and ignores s, m_sigma.
    """
    s, m_sigma = (std_cap, encoder_std) if gamma is None else (0.0, 0.0)
    return float(bounds.radius(
        method, encoder_mean, m_sigma, decoder, s, r, p, latent_dim=latent_dim, gamma=gamma
    ))


def design_budget(
    target_radius: float,
    r: float,
    p: float = 0.5,
    *,
    latent_dim: int,
    method: str = "best",
    std_cap: float | None = 0.1,
    gamma: float | None = None,
    encoder_mean: float | None = None,
    encoder_std: float | None = None,
    decoder: float | None = None,
    min_lipschitz: float = DEFAULT_MIN_LIPSCHITZ,
) -> LipschitzBudget:
    """The largest common constant M for the free networks such that every input certifies at
    >= target_radius with `method`.

    Pass encoder_mean / encoder_std / decoder to fix those constants; the others are free and
    equal. `gamma` selects a fixed posterior std (then std_cap and encoder_std do not apply).
    Raises ValueError naming target_radius when no M >= min_lipschitz reaches the target.
    """
    target_radius = checks.positive_finite("target_radius", target_radius)
    r = checks.positive_finite("r", r)
    p = checks.probability_level("p", p)
    latent_dim = checks.positive_int("latent_dim", latent_dim)
    min_lipschitz = checks.positive_finite("min_lipschitz", min_lipschitz)
    if method not in bounds.METHODS:
        raise ValueError(f"method must be one of {bounds.METHODS}, got {method!r}")
    if gamma is not None:
        gamma = checks.positive_finite("gamma", gamma)
        std_cap, encoder_std = None, 0.0
    else:
        std_cap = checks.positive_finite("std_cap", std_cap)
    fixed = {"encoder_mean": encoder_mean, "encoder_std": encoder_std, "decoder": decoder}
    for name, value in fixed.items():
        if value is not None and not (name == "encoder_std" and value == 0):
            checks.positive_finite(name, value)
    common = dict(r=r, p=float(p), latent_dim=latent_dim, method=method, std_cap=std_cap,
                  gamma=gamma)

    def radius_at(scale: float) -> float:
        chosen = {k: (scale if v is None else float(v)) for k, v in fixed.items()}
        return budget_radius(**chosen, **common)

    if all(v is not None for v in fixed.values()):
        scale = min_lipschitz  # nothing free: only the check below
    else:
        scale = _largest_scale(radius_at, target_radius, min_lipschitz)
    achieved = radius_at(scale)
    if achieved < target_radius:
        raise ValueError(
            f"target_radius={target_radius} is infeasible with method={method!r}, r={r}, p={p}, "
            f"std_cap={std_cap}, gamma={gamma}, fixed constants "
            f"{ {k: v for k, v in fixed.items() if v is not None} } and constants >= "
            f"min_lipschitz={min_lipschitz}: the certificate reaches only {achieved:.6g}"
        )
    chosen = {k: (scale if v is None else float(v)) for k, v in fixed.items()}
    return LipschitzBudget(**chosen, std_cap=std_cap, gamma=gamma, target_radius=target_radius,
                           r=r, p=float(p), latent_dim=latent_dim, method=method,
                           certified_radius=achieved)


def _largest_scale(radius_at, target: float, floor: float) -> float:
    """Largest M >= floor with radius_at(M) >= target (radius_at decreases in M); floor if none."""
    if radius_at(floor) < target:
        return floor
    lo, hi = floor, floor * 2
    while radius_at(hi) >= target:
        lo, hi = hi, hi * 2
        if hi > 1e12:
            raise ValueError(f"target_radius={target} is certified for any constants")
    for _ in range(_SEARCH_STEPS):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if radius_at(mid) >= target else (lo, mid)
        if hi - lo <= 1e-12 * hi:
            break
    return lo
