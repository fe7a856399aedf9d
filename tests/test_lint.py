"""The repository is clean under its ruff configuration (ruff.toml: line length, import order,
pyflakes, bugbear, pyupgrade), so formatting is settled by a tool rather than in review."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
        cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_flags_a_violation(tmp_path):
    """The check above can fail: the same configuration reports an unused import."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n")
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--config",
         str(ROOT / "ruff.toml"), str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "F401" in result.stdout, result.stdout + result.stderr
