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
import subprocess
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# public name -> the submodule that defines it
_EXPORTS: dict[str, str] = {
    "BjorckOrthonormal": "constraints", "SpectralClip": "constraints",
    "SpectralNormClip": "constraints", "SubspaceClip": "constraints",
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
    "BjorckOrthonormal", "SpectralClip", "SpectralNormClip", "SubspaceClip",
    "finalize_constraints", "GroupSort", "LipschitzConv2D",
    "LipschitzConv2DTranspose", "LipschitzDense", "MaxMin", "Scale", "Shift", "StdCap",
    "layer_lipschitz_bound", "network_lipschitz_bound", "register_lipschitz_bound",
    "LipschitzBudget", "design_budget", "LipschitzVAE", "StandardVAE",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load on first use
    from lipvae_tf.constraints import (
        BjorckOrthonormal,
        SpectralClip,
        SpectralNormClip,
        SubspaceClip,
        finalize_constraints,
    )
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


def _module_run_with_m() -> str | None:
    """The module named after -m on Python's command line (`sys.orig_argv`), or None."""
    arguments = list(getattr(sys, "orig_argv", ()))[1:]
    i = 0
    while i < len(arguments):
        argument = arguments[i]
        if argument == "-m":
            return arguments[i + 1] if i + 1 < len(arguments) else None
        if argument.startswith("-m"):  # -mlipvae_tf.train
            return argument[2:]
        if argument in ("-c", "-") or not argument.startswith("-"):  # a script or -c: no -m
            return None
        # options whose value is the next argument (-X dev, -W ignore)
        i += 2 if argument in ("-X", "-W", "--check-hash-based-pycs") else 1
    return None


def _starting_a_command() -> bool:
    """Whether this import is a command's start: `python -m lipvae_tf...` (sys.argv[0] is "-m"
    while the package of the module to run is imported, and that module is one of this
    package's: `python -m myapp` whose package imports lipvae_tf is a library import) or a
    console script of the package."""
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 == "-m":
        module = _module_run_with_m()
        return module is not None and (module == __name__ or module.startswith(f"{__name__}."))
    return os.path.basename(argv0) in _CONSOLE_SCRIPTS


def __getattr__(name: str) -> Any:
    """Loads a public name's submodule on first use."""
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names, the version and the loaded submodules (not the standard-library modules
    this file imports for its own work)."""
    submodules = {name for name, value in globals().items()
                  if getattr(value, "__name__", "").startswith(f"{__name__}.")
                  and type(value) is type(sys) and not name.startswith("_")}
    return sorted(set(__all__) | submodules | {"__version__"})


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
    _import_tensorflow_at_the_log_level()


# The filter of `_import_tensorflow_at_the_log_level`, run as its own process (python -I -S:
# nothing imported but re and sys): it reads the import's stderr line by line and writes what it
# keeps at once, so a crash inside the import still shows its last words. argv[1]: the level.
# "I0000 00:00:1796158178.885496   10900 port.cc:153] ..." is absl's C++ log prefix.
_NATIVE_LOG_FILTER = r"""
import re, sys
level = min(int(sys.argv[1]), 3)  # fatal lines always pass, as TensorFlow prints them
native = re.compile(r"([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] ")
severity = {"I": 0, "W": 1, "E": 2, "F": 3}
dropped, out = False, sys.stdout.buffer
for raw in sys.stdin.buffer:
    line = raw.decode("utf-8", "replace")
    match = native.match(line)
    if match:
        dropped = severity[match.group(1)] < level
    elif line.startswith("WARNING: All log messages before absl::InitializeLog()"):
        dropped = True  # absl's notice, printed before its first message
    elif not (dropped and line.startswith("To enable the following instructions:")):
        dropped = False  # (the second line of the CPU-instructions message goes with it)
    if not dropped:
        out.write(raw)
        out.flush()
"""


def _import_tensorflow_at_the_log_level() -> None:
    """Imports TensorFlow with the native lines below TF_CPP_MIN_LOG_LEVEL left out.

    Since TensorFlow 2.20 its C++ code logs through absl, which writes every message to stderr,
    whatever the level, until absl::InitializeLog() is called, which TensorFlow never does while
    it loads (abseil/abseil-cpp#1718 and #1957, not merged): a command printed five INFO lines
    (oneDNN, "Could not find cuda drivers", CPU instructions) before its own output, at level 3.
    So the import runs with file descriptor 2 sent through `_NATIVE_LOG_FILTER`, a process of
    its own that passes every line but absl's lines below the level (and the notice about the
    missing initialisation): Python warnings, errors, a traceback pass, and a crash inside the
    import (a fatal "F" line, then abort) still shows its message, which a filter inside this
    process would lose with it. Where no such process can start, TensorFlow loads unfiltered."""
    level_text = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")
    level = int(level_text) if level_text.isdigit() else 0
    if level <= 0 or sys.stderr is None:  # (None: run with stderr closed, nothing to filter)
        import tensorflow  # noqa: F401
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2
        import tensorflow  # noqa: F401
        return
    try:
        try:
            log_filter = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _NATIVE_LOG_FILTER, str(level)],
                stdin=subprocess.PIPE, stdout=saved, stderr=saved)
        except OSError:
            import tensorflow  # noqa: F401
            return
        os.dup2(log_filter.stdin.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            log_filter.stdin.close()  # the filter reads to the end, then exits
            try:
                log_filter.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a process TensorFlow started holds the pipe
                log_filter.kill()
    finally:
        os.close(saved)


def _is_cli(module_name: str, script: str | None = None) -> bool:
    """Whether the module `module_name` runs as a command (`python -m ...`, or the console
    script named `script`)."""
    return module_name == "__main__" or (
        script is not None and os.path.basename(sys.argv[0] if sys.argv else "") == script)


if not _starting_a_command():  # a library import: Keras must find the classes in .keras files
    importlib.import_module(f"{__name__}.model")
