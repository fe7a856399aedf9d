"""Find or make a Python interpreter that can `import deel.lip` (1.5.0) under legacy Keras.

deel-lip 1.5.0 runs only on tf_keras (`TF_USE_LEGACY_KERAS=1`). Its metadata asks only for
`numpy` and `tensorflow~=2.2`, so it normally installs into the project's `.venv` without
changing any pinned package. This module checks that with `pip install --dry-run` first
(against constraints.txt) and otherwise builds a separate, gitignored `.venv-deel` with
tensorflow==2.21.0, tf_keras==2.21.0 and deel-lip==1.5.0.
Run: `.venv/bin/python bench/deel_env.py [--separate]` (prints the interpreter's path last).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAIN_VENV = REPO / ".venv"
DEEL_VENV = REPO / ".venv-deel"
DEEL = "deel-lip==1.5.0"
TF_KERAS = "tf_keras==2.21.0"
SEPARATE_PINS = ("tensorflow==2.21.0", TF_KERAS, DEEL)
# Packages the main venv may gain; anything else in a dry run means a pinned package would move.
ALLOWED_NEW = {"deel-lip", "tf-keras"}
CHECK = ("import deel.lip, tensorflow as tf, tf_keras; "
         "from deel.lip.layers import SpectralDense; from deel.lip.activations import GroupSort2; "
         "print(deel.lip.__version__, tf.__version__, tf_keras.__version__)")


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _log(message: str) -> None:
    print(f"[deel_env] {message}", flush=True)


def check(python: Path | str) -> str | None:
    """'deel-lip tf tf_keras' versions if `python` imports deel.lip 1.5.0 under legacy Keras."""
    if not Path(python).exists():
        return None
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([str(python), "-c", CHECK], env=env, capture_output=True, text=True)
    versions = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
    return versions[0] if versions and versions[0].startswith("1.5.0 ") else None


def _pip(python: Path, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
    command = [str(python), "-m", "pip", "--disable-pip-version-check", *args]
    _log("$ " + " ".join(command))
    done = subprocess.run(command, capture_output=capture, text=True)
    if done.returncode != 0 and not capture:
        raise RuntimeError(f"pip failed (exit {done.returncode}): {' '.join(command)}")
    return done


def would_change_pins(python: Path) -> list[str] | None:
    """Dry-run deel-lip into `python`'s env: the unexpected packages pip would install or
    upgrade ([] when only deel-lip/tf_keras are added), or None when the dry run fails."""
    done = _pip(python, "install", "--dry-run", "-c", str(REPO / "constraints.txt"), DEEL, TF_KERAS,
                capture=True)
    if done.returncode != 0:
        _log("dry run failed:\n" + done.stderr.strip()[-2000:])
        return None
    match = re.search(r"^Would install (.*)$", done.stdout, re.MULTILINE)
    names = match.group(1).split() if match else []
    dists = [re.sub(r"[-_.]+", "-", n.rsplit("-", 1)[0].lower()) for n in names]
    return [n for n, d in zip(names, dists) if d not in ALLOWED_NEW]


def _make_separate(venv: Path) -> Path:
    """Create `venv` (if needed) and install the pinned trio into it."""
    python = _python(venv)
    if not python.exists():
        base = getattr(sys, "_base_executable", sys.executable)
        _log(f"creating {venv} from {base}")
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    _pip(python, "install", "--quiet", *SEPARATE_PINS)
    return python


def ensure_deel_python(separate: bool = False, venv: Path = DEEL_VENV) -> str:
    """Path of a python that imports deel.lip 1.5.0 with TF_USE_LEGACY_KERAS=1.

    Order: the main `.venv` if it already works; an existing `venv` that works; the main
    `.venv` after installing deel-lip there, if a dry run shows that this moves no pinned
    package; else `venv` is created or repaired. `separate=True` skips the main venv.
    Raises RuntimeError when no working interpreter results.
    """
    candidates = ([] if separate else [_python(MAIN_VENV)]) + [_python(venv)]
    for python in candidates:
        if versions := check(python):
            _log(f"ok: {python} (deel-lip, tensorflow, tf_keras = {versions})")
            return str(python)
    main = _python(MAIN_VENV)
    if not separate and main.exists():
        extra = would_change_pins(main)
        if extra == []:
            _log(f"dry run adds only deel-lip/tf_keras: installing into {MAIN_VENV}")
            _pip(main, "install", "--quiet", "-c", str(REPO / "constraints.txt"), DEEL, TF_KERAS)
            if versions := check(main):
                _log(f"ok: {main} (deel-lip, tensorflow, tf_keras = {versions})")
                return str(main)
            _log(f"{main} still cannot import deel.lip; falling back to {venv}")
        else:
            _log(f"not touching {MAIN_VENV} (dry run would also install: {extra}); using {venv}")
    python = _make_separate(venv)
    if versions := check(python):
        _log(f"ok: {python} (deel-lip, tensorflow, tf_keras = {versions})")
        return str(python)
    raise RuntimeError(f"{python} cannot `import deel.lip` 1.5.0 with TF_USE_LEGACY_KERAS=1 after "
                       f"installing {' '.join(SEPARATE_PINS)}; run the import by hand to see why.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--separate", action="store_true", help="never use the main .venv")
    parser.add_argument("--venv", type=Path, default=DEEL_VENV, help="separate venv location")
    args = parser.parse_args()
    print(ensure_deel_python(args.separate, args.venv))
