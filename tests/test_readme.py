"""README.md's ```bash and ```python blocks run as pasted, in order, on tiny limits (issue 15,
items 1 and 6): a stale README (an undefined name, a removed flag, a command that fails) fails here.

How the blocks run. In a fresh temporary working directory, with the repository's .venv, one
driver process executes every block in README order: the python blocks share one namespace
(each snippet sees the names of the earlier ones, as in one interactive session), every bash
command runs in its own `bash -eo pipefail` with the virtualenv's bin first on PATH (the effect of
the README's activation line). Commands are split as the shell reads them (backslash
continuations and quoted newlines join lines).

Tiny limits, injected visibly (nothing the package reads from the environment):
- `python -m lipvae_tf.train`: `--epochs=N` becomes `--epochs=1` (added when absent), and
  `--train_limit=128 --test_limit=32 --ll_samples=2` are appended, and `--hidden_units=64,64`
  to an MLP command (the conv architecture refuses widths). Everything else, the architecture
  and the baseline included, runs as written.
- `python -m lipvae_tf.evaluate`: `--num_inputs=N` becomes `--num_inputs=4`, and a small attack
  and test set are appended (`EVALUATE_LIMITS`).
- python blocks: a prelude (`PRELUDE`) caps `keras.Model.fit`'s epochs at 1, gives
  `data.load_sample` the first 256 train / 16 test images, and caps the attacks' work arguments
  (restarts, steps, samples, ...; `ATTACK_CAPS`) in `lipvae_tf.attacks`, whatever a snippet passes.
- absolute output paths under /srv/ are written under the working directory instead.
- the zoo commands read a copy of zoo/ (`LIPVAE_ZOO_DIR`), so they never touch git-tracked files.

Lines that cannot run here are skipped by the rules in `SKIPS`, each naming the command and why;
every rule must match some README command (a stale rule fails the test). `make run` is
replaced by a tiny training run into runs/main_job, which writes the files later commands read.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent

TRAIN_LIMITS = "--train_limit=128 --test_limit=32 --ll_samples=2"
# only for the MLP: the conv architecture refuses --hidden_units
MLP_WIDTHS = "--hidden_units=64,64"
EVALUATE_LIMITS = ("--test_limit=32 --samples=50 --restarts=1 --steps=2 --bisection_steps=1 "
                   "--ll_samples=2 --attack_norms=1")
# `make run` writes runs/main_job/{lipschitz_vae,standard_vae}.keras, read by the evaluate command
MAKE_RUN_STAND_IN = (f"python -m lipvae_tf.train --source=sample --epochs=1 {TRAIN_LIMITS} "
                     f"{MLP_WIDTHS} --output_dir=runs/main_job")

# (pattern matched at the start of a command, why it is skipped here)
SKIPS: list[tuple[str, str]] = [
    (r"make run\b", "the main job (minutes); tests/test_train.py runs its code on tiny limits, "
                    "and a tiny run (MAKE_RUN_STAND_IN) writes the files it leaves"),
    (r"make test\b", "the test suite itself"),
    (r"pip install\b", "changes the shared virtualenv and needs PyPI; "
                       "make test installs the extra"),
    (r"(mkdir -p runs && )?(LIPVAE_QUICK=1 )?jupyter execute\b",
     "the notebooks: tests/test_notebooks.py runs all four"),
    (r"docker run\b", "no docker engine on this machine (README: 'Not run here')"),
    (r"curl\b", "needs a TF Serving server (none here); tests/test_export.py checks the bodies"),
    (r"python -m lipvae_tf\.zoo build\b", "retrains a bundled model on the full data set "
                                          "(minutes to hours); "
                                          "tests/test_zoo.py builds a tiny one"),
    (r"TF_CONFIG=", "a multi-worker run needs both shells at once; tests/test_distribute.py runs "
                    "two workers"),
]

ATTACK_CAPS = dict(restarts=1, steps=3, samples=50, attack_samples=2, eval_samples=4,
                   bisection_steps=1)

PRELUDE = f"""
import functools, inspect
import keras
from lipvae_tf import attacks as _attacks, data as _data

_fit = keras.Model.fit
def _tiny_fit(self, *args, **kwargs):
    kwargs["epochs"] = 1
    return _fit(self, *args, **kwargs)
keras.Model.fit = _tiny_fit

_load_sample = _data.load_sample
def _tiny_sample(split, *args, **kwargs):
    images, labels = _load_sample(split, *args, **kwargs)
    count = 256 if split == "train" else 16
    return images[:count], labels[:count]
_data.load_sample = _tiny_sample

def _capped(function, caps={ATTACK_CAPS!r}):
    signature = inspect.signature(function)
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)  # positional or keyword, as the caller gave them
        bound.apply_defaults()
        for name, cap in caps.items():
            if name in bound.arguments:
                bound.arguments[name] = min(bound.arguments[name], cap)
        return function(*bound.args, **bound.kwargs)
    return wrapper
for _name in ("maximum_damage_attack", "latent_attack", "estimate_margin", "audit_certificate",
              "robust_counts"):
    setattr(_attacks, _name, _capped(getattr(_attacks, _name)))
"""

DRIVER = r'''
import json, os, subprocess, sys, traceback
steps = json.load(open(sys.argv[1]))
namespace = {"__name__": "__readme__"}
exec(compile(steps.pop(0)["code"], "<prelude>", "exec"), namespace)
for step in steps:
    where = f"README.md line {step['line']}"
    if step["kind"] == "python":
        print(f"=== python block at {where}", flush=True)
        try:
            exec(compile(step["code"], where, "exec"), namespace)
        except BaseException:
            traceback.print_exc()
            print(f"FAILED: python block at {where}", flush=True)
            sys.exit(1)
    elif step["kind"] == "skip":
        print(f"=== skipped at {where}: {step['code']!r} ({step['why']})", flush=True)
    else:
        print(f"=== $ {step['code']}   ({where})", flush=True)
        done = subprocess.run(["bash", "-eo", "pipefail", "-c", step["code"]])
        if done.returncode:
            print(f"FAILED (exit {done.returncode}): {step['code']!r} at {where}", flush=True)
            sys.exit(1)
print("=== README done", flush=True)
'''


def code_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, code, first line number) of every fenced block, in order."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[i])
        if fence:
            start, body = i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append((fence.group(1), "\n".join(body) + "\n", start + 1))
        i += 1
    return blocks


def shell_commands(code: str, first_line: int) -> list[tuple[str, int]]:
    """The commands of a bash block as the shell reads them: backslash continuations and quoted
    newlines join lines; blank and comment-only lines are dropped. (command, line number)."""
    commands, pending, start = [], "", first_line
    for number, line in enumerate(code.splitlines(), first_line):
        if not pending:
            start = number
        pending += line + "\n"
        if pending.rstrip("\n").endswith("\\"):
            continue
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        if words:
            commands.append((pending.strip(), start))
        pending = ""
    assert not pending.strip(), f"unterminated command at README.md line {start}"
    return commands


def rewrite(command: str) -> str:
    """The tiny-limit version of a README command (see the module docstring)."""
    command = command.replace("source .venv/bin/activate",
                              f"source {shlex.quote(str(VENV_BIN / 'activate'))}")
    command = re.sub(r"(?<![\w$(])/srv/", "srv/", command)
    if re.search(r"python -m lipvae_tf\.train\b", command):
        command = re.sub(r"--epochs=\d+", "--epochs=1", command)
        if "--epochs=" not in command:
            command += " --epochs=1"
        command += f" {TRAIN_LIMITS}"
        if "--architecture=conv" not in command:
            command += f" {MLP_WIDTHS}"
    if re.search(r"python -m lipvae_tf\.evaluate\b", command):
        command = re.sub(r"--num_inputs=\d+", "--num_inputs=4", command)
        command += f" {EVALUATE_LIMITS}"
    return command


def plan(text: str) -> tuple[list[dict], set[str]]:
    """The steps the driver runs (after the prelude), and the skip rules that matched."""
    steps, used = [], set()
    for language, code, line in code_blocks(text):
        if language == "python":
            steps.append({"kind": "python", "code": code, "line": line})
        elif language == "bash":
            for command, number in shell_commands(code, line):
                rule = next(((pattern, why) for pattern, why in SKIPS
                             if re.match(pattern, command)), None)
                if rule is not None:
                    used.add(rule[0])
                    steps.append({"kind": "skip", "code": command, "why": rule[1],
                                  "line": number})
                    if rule[0] == r"make run\b":
                        steps.append({"kind": "bash", "code": MAKE_RUN_STAND_IN,
                                      "line": number})
                else:
                    steps.append({"kind": "bash", "code": rewrite(command), "line": number})
    return steps, used


def test_the_plan_covers_the_readme_and_every_skip_rule_is_needed():
    steps, used = plan(README.read_text(encoding="utf-8"))
    assert used == {pattern for pattern, _ in SKIPS}, (
        f"skip rules that match no README command (stale): {set(p for p, _ in SKIPS) - used}")
    run = [s["code"] for s in steps if s["kind"] == "bash"]
    trains = [c for c in run if "python -m lipvae_tf.train" in c and "main_job" not in c]
    # both architectures, with the baseline, on tiny limits
    assert any("--architecture=conv" in c for c in trains)
    assert any("--architecture" not in c for c in trains)
    assert all("--nobaseline" not in c and "--epochs=1" in c and TRAIN_LIMITS in c
               for c in trains)
    assert sum(s["kind"] == "python" for s in steps) >= 5
    assert any(c.startswith("python -m lipvae_tf.evaluate") for c in run)


def test_readme_blocks_run_as_pasted(tmp_path):
    steps, _ = plan(README.read_text(encoding="utf-8"))
    shutil.copytree(ROOT / "zoo", tmp_path / "zoo_copy")
    (tmp_path / "steps.json").write_text(json.dumps(
        [{"kind": "python", "code": PRELUDE, "line": 0}] + steps))
    (tmp_path / "driver.py").write_text(DRIVER)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "VIRTUAL_ENV": str(VENV_BIN.parent), "LIPVAE_ZOO_DIR": str(tmp_path / "zoo_copy"),
           "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(tmp_path / "driver.py"),
                           str(tmp_path / "steps.json")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0 and "=== README done" in done.stdout, (
        done.stdout[-6000:] + "\n--- stderr ---\n" + done.stderr[-4000:])
    # what the commands and snippets promise to write is there
    for path in ("runs/fmnist/report.json", "runs/conv/report.json", "runs/mirrored/report.json",
                 "runs/evaluation/evaluation.json", "export/fashion_mlp/1/saved_model.pb",
                 "serving/fmnist_mlp_r1/1/saved_model.pb", "srv/models/fmnist/1/saved_model.pb",
                 "certify.json", "metadata.json"):
        assert (work / path).exists(), path
    conv = json.loads((work / "runs/conv/report.json").read_text())
    assert conv["config"]["architecture"] == "conv" and "standard_vae" in conv["models"]
    assert conv["config"]["epochs"] == 1 and conv["data"]["train_images"] == 128
    assert "signature_def['certify']" in done.stdout  # saved_model_cli listed the signatures
