"""Argument validation shared by the package: typed errors that name the argument."""
from __future__ import annotations

import math

import numpy as np

_REAL = (int, float, np.floating, np.integer)


def positive_finite(name: str, value) -> float:
    """`value` as a float, or a TypeError/ValueError naming `name` unless it is finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, _REAL):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def positive_int(name: str, value, minimum: int = 1) -> int:
    """`value` as an int, or a TypeError/ValueError naming `name` unless it is >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def int_pair(name: str, value) -> tuple[int, int]:
    """An int or a pair of ints, each >= 1, as a pair."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in pair
    ):
        raise ValueError(f"{name} must be an int >= 1 or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def probability_level(name: str, value) -> float:
    """`value` as a float, or a ValueError naming `name` unless it is a real number in [1/2, 1)."""
    if isinstance(value, bool) or not isinstance(value, _REAL) or not 0.5 <= value < 1:
        raise ValueError(f"{name} must be a probability in [1/2, 1), got {value!r}")
    return float(value)
