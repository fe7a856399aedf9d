"""lipvae_tf: Keras 3 / TensorFlow VAEs with certified robustness (Lipschitz layers and bounds).

`import lipvae_tf` registers the package's Keras classes (layers, constraints, models), so that
`keras.saving.load_model` reads a `.keras` file of a LipschitzVAE right after it, as Keras' own
layers are; that loads TensorFlow, as `import keras` does. Only while a command-line entry point
starts (`python -m lipvae_tf`, `lipvae_tf.train`, `lipvae_tf.evaluate`, `lipvae_tf.zoo`, the
`lipvae-train` script) is the package imported without TensorFlow: the public names below then load
on first use (PEP 562), so that the command can choose TensorFlow's native log level before
TensorFlow loads. Importing the package never changes that level.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# public name -> the submodule that defines it
_EXPORTS: dict[str, str] = {
    "BjorckOrthonormal": "constraints", "SpectralClip": "constraints",
    "finalize_constraints": "constraints",
    "GroupSort": "layers", "LipschitzConv2D": "layers", "LipschitzConv2DTranspose": "layers",
    "LipschitzDense": "layers", "MaxMin": "layers", "Scale": "layers", "Shift": "layers",
    "StdCap": "layers",
    "layer_lipschitz_bound": "lipschitz", "network_lipschitz_bound": "lipschitz",
    "register_lipschitz_bound": "lipschitz",
    "LipschitzBudget": "design", "design_budget": "design",
    "LipschitzVAE": "model", "StandardVAE": "model",
}

__all__ = [
    "BjorckOrthonormal", "SpectralClip", "finalize_constraints", "GroupSort", "LipschitzConv2D",
    "LipschitzConv2DTranspose", "LipschitzDense", "MaxMin", "Scale", "Shift", "StdCap",
    "layer_lipschitz_bound", "network_lipschitz_bound", "register_lipschitz_bound",
    "LipschitzBudget", "design_budget", "LipschitzVAE", "StandardVAE",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load on first use
    from lipvae_tf.constraints import BjorckOrthonormal, SpectralClip, finalize_constraints
    from lipvae_tf.design import LipschitzBudget, design_budget
    from lipvae_tf.layers import (
        GroupSort,
        LipschitzConv2D,
        LipschitzConv2DTranspose,
        LipschitzDense,
        MaxMin,
        Scale,
        Shift,
        StdCap,
    )
    from lipvae_tf.lipschitz import (
        layer_lipschitz_bound,
        network_lipschitz_bound,
        register_lipschitz_bound,
    )
    from lipvae_tf.model import LipschitzVAE, StandardVAE


_CONSOLE_SCRIPTS = ("lipvae-train",)


def _starting_a_command() -> bool:
    """Whether this import is a command's start: `python -m lipvae_tf...` (sys.argv[0] is "-m"
    while the package of the module to run is imported) or a console script of the package."""
    argv0 = sys.argv[0] if sys.argv else ""
    return argv0 == "-m" or os.path.basename(argv0) in _CONSOLE_SCRIPTS


def __getattr__(name: str) -> Any:
    """Loads a public name's submodule on first use."""
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _cli_native_log_level() -> None:
    """For the command-line entry points only, called before TensorFlow is first imported:
    TensorFlow's C++ log level (TF_CPP_MIN_LOG_LEVEL, unless the user set it) at warnings
    hidden (2), or at errors hidden too (3) on a machine without an NVIDIA device, where the
    only C++ error is TensorFlow's failed CUDA probe ("E0000 ... failed call to cuInit").
    Library imports never call it."""
    if "tensorflow" in sys.modules:  # too late: TensorFlow read it when it loaded
        return
    nvidia = any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if nvidia else "3")


def _is_cli(module_name: str, script: str | None = None) -> bool:
    """Whether the module `module_name` runs as a command (`python -m ...`, or the console
    script named `script`)."""
    return module_name == "__main__" or (
        script is not None and os.path.basename(sys.argv[0] if sys.argv else "") == script)


if not _starting_a_command():  # a library import: Keras must find the classes in .keras files
    importlib.import_module(f"{__name__}.model")
