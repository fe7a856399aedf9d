"""Argument validation shared by the package: typed errors that name the argument."""
from __future__ import annotations

import math
import os
import tempfile
import zipfile
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "finite_real", "positive_finite", "positive_float32", "positive_int", "positive_ints",
    "flag", "int_pair", "probability_level", "as_array", "real_array", "pixel_values",
    "pixel_range", "non_negative_finite", "in_interval", "one_of", "SEED_LIMIT", "seed",
    "folder_path", "png_path", "keras_archive", "finite_array", "first_non_finite",
    "ReducedPrecisionError",
]

_REAL = (int, float, np.floating, np.integer)


def finite_real(name: str, value: Any) -> float:
    """`value` as a float (Python or NumPy scalars alike), or a TypeError naming `name` unless
    it is a real number (bools are not), a ValueError unless it is finite."""
    value = _real(name, value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def positive_finite(name: str, value: Any) -> float:
    """`value` as a float, or a TypeError/ValueError naming `name` unless it is finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, _REAL):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


# the range of float32's positive normal numbers: a value outside it becomes 0, a subnormal (which
# CPUs may flush to 0) or inf when a float32 graph applies it
_FLOAT32_NORMAL = (float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max))


def positive_float32(name: str, value: Any) -> float:
    """`value` as a float, or a TypeError/ValueError naming `name` unless float32 represents it
    as a positive normal number (between 1.18e-38 and 3.40e38): a factor that a float32 graph
    applies, which would otherwise silently become 0 or inf there."""
    value = positive_finite(name, value)
    low, high = _FLOAT32_NORMAL
    if not low <= value <= high:
        raise ValueError(f"{name} must lie between {low:.6g} and {high:.6g}, the positive normal "
                         f"float32 numbers (the model computes in float32), got {value}")
    return value


def positive_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """`value` as an int, or a TypeError/ValueError naming `name` unless it is >= minimum (and
    <= maximum, when given)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer <= {maximum}, got {value}")
    return int(value)


def positive_ints(name: str, value: Any, minimum_length: int = 0) -> tuple[int, ...]:
    """A sequence of ints >= 1 as a tuple, with at least `minimum_length` of them, or a
    TypeError/ValueError naming `name`."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a sequence of integers >= 1, got "
                        f"{type(value).__name__} {value!r}")
    values = tuple(positive_int(name, v) for v in value)
    if len(values) < minimum_length:
        raise ValueError(f"{name} must hold at least {minimum_length} integer(s) >= 1, got "
                         f"{value!r}")
    return values


def flag(name: str, value: Any) -> bool:
    """`value` if it is a bool, else a TypeError naming `name` (a truthy string is no flag)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def int_pair(name: str, value: Any) -> tuple[int, int]:
    """An int or a pair of ints, each >= 1, as a pair, or a ValueError naming `name`."""
    if isinstance(value, (int, np.integer)):
        pair = (value, value)
    elif isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        pair = ()  # None, 3.0, "ab": refused below, with the argument's name
    else:
        pair = tuple(value)
    if len(pair) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in pair
    ):
        raise ValueError(f"{name} must be an int >= 1 or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def probability_level(name: str, value: Any) -> float:
    """`value` as a float, or a ValueError naming `name` unless it is a real number in [1/2, 1)."""
    if isinstance(value, bool) or not isinstance(value, _REAL) or not 0.5 <= value < 1:
        raise ValueError(f"{name} must be a probability in [1/2, 1), got {value!r}")
    return float(value)


def _real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, _REAL):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def as_array(name: str, value: Any) -> np.ndarray:
    """`value` (an array, a tensor with `.numpy()`, nested lists) as a NumPy array, or a
    ValueError naming `name` for ragged nesting (NumPy's own message names no argument)."""
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    try:
        return np.asarray(value)
    except ValueError as error:  # ragged nesting: "setting an array element with a sequence"
        raise ValueError(f"{name} is nested lists that are not one array (ragged nesting: "
                         f"{error})") from None


# ml_dtypes' floating types (NumPy kind "V"): a bfloat16 layer's kernel, read with .numpy()
_NARROW_FLOATS = frozenset({"bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e4m3b11fnuz",
                            "float8_e5m2", "float8_e5m2fnuz"})


def real_array(name: str, value: Any) -> np.ndarray:
    """`value` as a float64 array, or a TypeError naming `name` unless it holds real numbers (no
    strings, which NumPy would parse: '8' became 8.0, no bools, no objects), a ValueError for
    ragged nesting or for long double / 64-bit integer values that float64 would round."""
    raw = as_array(name, value)
    if raw.dtype.kind not in "iuf" and raw.dtype.name not in _NARROW_FLOATS:
        raise TypeError(f"{name} must be a real number or an array of them, got "
                        f"{type(value).__name__} of dtype {raw.dtype}")
    array = raw.astype(np.float64)
    if raw.dtype.itemsize > 8 or (raw.dtype.kind in "iu" and raw.dtype.itemsize == 8):
        # long double and 64-bit ints hold values float64 rounds: p = 0.5 - 1e-18 became 0.5
        # and was accepted, an r rounded up by half an ulp
        with np.errstate(invalid="ignore", over="ignore"):
            back = array.astype(raw.dtype)
        if not np.all((back == raw) | (np.isnan(array) & np.isnan(raw))):
            raise ValueError(f"{name} must hold values that float64 represents exactly (the "
                             f"certificates compute in float64), got dtype {raw.dtype} values "
                             "that it rounds")
    return array


def finite_array(name: str, value: Any, ndim: int | tuple[int, ...] | None = None
                 ) -> np.ndarray:
    """`value` as a float64 array (`real_array`) of finite values with `ndim` dimensions (one of
    them, for a tuple; any, for None).

    Raises:
        TypeError: if `value` does not hold real numbers.
        ValueError: for ragged nesting, a wrong number of dimensions, or NaN / Inf values (an
            SVD of them fails without naming the argument; an FFT returns NaN norms, which
            compare as 0 in a max).
    """
    array = real_array(name, value)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is not None and array.ndim not in allowed:
        wanted = " or ".join(str(n) for n in allowed)
        raise ValueError(f"{name} must have {wanted} dimensions, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or Inf values")
    return array


class ReducedPrecisionError(RuntimeError):
    """TensorFlow is set to compute float32 operations in a narrower format
    (`lipvae_tf.forward_error.reduced_precision_settings`), which no certificate covers: a
    setting of the process to change, reported as one line by the commands."""


def first_non_finite(weights: Iterable[Any]) -> Any | None:
    """The first of `weights` (Keras variables, or anything with `.numpy()`) whose floating
    values hold NaN or Inf, or None: a corrupted file or a diverged run, whose outputs are not
    finite, named by the caller."""
    for weight in weights:
        value = np.asarray(weight.numpy())  # (keras.ops.convert_to_numpy warns under NumPy 2)
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            return weight
    return None


def pixel_values(name: str, array: np.ndarray) -> np.ndarray:
    """`array` unchanged, or a ValueError naming `name` unless its values are finite and in
    [0, 1] (`pixel_range`)."""
    if array.size:
        pixel_range(name, bool(np.all(np.isfinite(array))), float(array.min()),
                    float(array.max()))
    return array


def pixel_range(name: str, finite: bool, lowest: float, highest: float) -> None:
    """A ValueError naming `name` unless its pixels are finite (`finite`) and their range
    [lowest, highest] lies in [0, 1]; the message gives the range found, and how to fix 0-255
    pixels."""
    if not finite:
        raise ValueError(f"{name} contains NaN or Inf values")
    if lowest < 0 or highest > 1:
        hint = " (divide 0-255 pixels by 255)" if lowest >= 0 and highest <= 255 else ""
        raise ValueError(f"{name} must hold pixel values in [0, 1], got range "
                         f"[{_shown(lowest)}, {_shown(highest)}]{hint}")


def _shown(value: float) -> str:
    """Four significant digits, or every digit when four would round a value outside [0, 1]
    into it (1 + 1e-12 was shown as 1, hiding what was refused)."""
    short = f"{value:.4g}"
    return short if (0 <= float(short) <= 1) == (0 <= value <= 1) else repr(value)


def non_negative_finite(name: str, value: Any) -> float:
    """`value` as a float, or a TypeError/ValueError naming `name` unless it is finite and >= 0."""
    value = _real(name, value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def in_interval(name: str, value: Any, low: float, high: float, *, low_open: bool = False,
                high_open: bool = False) -> float:
    """`value` as a float if it lies in the interval from `low` to `high` (each end closed
    unless `low_open` / `high_open`).

    Args:
        name: the argument's name, for the message.
        value: the value to check.
        low, high: the ends of the interval.
        low_open, high_open: whether an end is excluded.

    Returns:
        `value` as a float.

    Raises:
        TypeError: if `value` is not a real number (bools are not).
        ValueError: if it is NaN or outside the interval; the message shows the interval.
    """
    value = _real(name, value)
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below):  # NaN fails both
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def one_of(name: str, value: Any, options: Iterable[Any]):
    """`value` if it is one of `options`, else a ValueError naming `name` and the options.

    Args:
        name: the argument's name, for the message.
        value: the value to check.
        options: the allowed values (compared with ==; unhashable values are fine).

    Returns:
        `value`, unchanged.

    Raises:
        ValueError: if `value` is not among `options`.
    """
    options = tuple(options)
    try:
        found = any(value is option or (bool(value == option)
                                        and isinstance(value, bool) == isinstance(option, bool))
                    for option in options)
    except (TypeError, ValueError):  # e.g. an array compared elementwise
        found = False
    if not found:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


SEED_LIMIT = 2**31  # seeds travel as int32 (stateless TF random ops)


def seed(name: str, value: Any) -> int:
    """`value` as an int in [0, 2^31), the range of an int32 stateless seed component.

    Raises:
        TypeError: if `value` is not an integer.
        ValueError: if it is negative or >= 2^31.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer in [0, 2**31), got {type(value).__name__}")
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(f"{name} must be an integer in [0, 2**31), got {value}")
    return int(value)


def folder_path(name: str, value: Any) -> str:
    """`value` (str or os.PathLike) as a str naming a folder that exists or can be created: checked
    before the work whose results go there (`os.makedirs` found the problem only after it).

    Raises:
        TypeError: if `value` is not a str or os.PathLike.
        ValueError: if it is empty, if it or the nearest existing path above it is not a folder
            (a file), or if that folder is not writable, or a folder cannot be made in it.
    """
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a folder path (str or os.PathLike), got "
                        f"{type(value).__name__}")
    path = os.fspath(value)
    if not path:
        raise ValueError(f"{name} must be a folder path, got an empty string")
    existing = os.path.abspath(path)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        what = "is" if existing == os.path.abspath(path) else f"is under {existing}, which is"
        raise ValueError(f"{name}={path} {what} a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{name}={path}: the folder {existing} is not writable")
    if existing != os.path.abspath(path):
        # os.access says yes to root everywhere, /proc and read-only mounts included (the
        # work then failed with an OSError naming no argument: an operator's review,
        # 2026-12-04): make a folder in `existing` and remove it again. Its name is a fresh
        # temporary one, never the path's own next folder: the workers of a multi-worker run
        # check their paths under one shared parent at the same moment, and a probe of that
        # shared name failed ("File exists") or removed the folder another worker had just made
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".lipvae-probe-", dir=existing))
        except OSError as error:
            raise ValueError(f"{name}={path}: cannot make a folder in {existing} "
                             f"({error.strerror})") from None
    return path


def keras_archive(name: str, path: str | os.PathLike) -> None:
    """Checks that `path` is a zip holding a config.json and weights (what
    `model.save("....keras")` writes): Keras answered an empty, truncated or corrupt file, which
    exists, with "File not found".

    Raises:
        ValueError: naming model `name` and the path, if the file is not such an archive.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as error:
        raise ValueError(f"model {name!r}: {path} is not a valid .keras archive ({error}); "
                         "save models with model.save('name.keras')") from None
    missing = sorted({"config.json", "model.weights.h5"} - members)
    if missing:
        raise ValueError(f"model {name!r}: {path} is not a valid .keras archive: it lacks "
                         f"{', '.join(missing)}")


def png_path(name: str, value: Any) -> str:
    """`value` as a str naming a .png file that can be written: its folder checked as
    `folder_path` checks it. A folder, or a name without the .png suffix, is refused:
    matplotlib wrote "out" as "out.png", a sibling of the folder given, while the path returned
    named the folder (an operator's review, 2026-12-04).

    Raises:
        TypeError: if `value` is not a str or os.PathLike.
        ValueError: if it is a folder, lacks the .png suffix (any case), or its folder is not one
            (`folder_path`).
    """
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path (str or os.PathLike), got "
                        f"{type(value).__name__}")
    path = os.fspath(value)
    if os.path.isdir(path):
        raise ValueError(f"{name} must name a .png file to write, got the folder {path!r}: "
                         f"give the file, e.g. {os.path.join(path, 'figure.png')!r}")
    if not path.lower().endswith(".png"):
        raise ValueError(f"{name} must name a .png file to write (the figures are PNG), got "
                         f"{path!r}")
    folder_path(name, os.path.dirname(os.path.abspath(path)))
    return path
