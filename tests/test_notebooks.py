"""The Colab tutorials (colab/*.ipynb) run end to end in quick mode, as a new user would run them.

Each notebook is executed top to bottom with nbclient in a fresh "python3" kernel (this venv's
ipykernel, so the kernel runs this Python), with LIPVAE_QUICK=1 (small data, few epochs) and a
temporary folder as working directory; any error in any cell fails the test. The static checks
(install cell, quick switch, no committed outputs) run without a kernel.
"""
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
COLAB = ROOT / "colab"
NOTEBOOKS = (
    "01_quickstart.ipynb",
    "02_attack_vs_certificate.ipynb",
    "03_zoo_and_serving.ipynb",
    "04_custom_models.ipynb",
)
CELL_TIMEOUT_S = 600  # one cell (training, margin estimation) on 2 busy CPU cores
QUICK_SWITCH = 'QUICK = os.environ.get("LIPVAE_QUICK") == "1"'


def _read(name: str):
    return nbformat.read(COLAB / name, as_version=4)


def _code(notebook) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def test_every_notebook_is_listed():
    assert sorted(p.name for p in COLAB.glob("*.ipynb")) == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_structure(name):
    notebook = _read(name)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    code = _code(notebook)
    install = code[0]  # the first code cell installs the package in Colab only
    assert 'if "google.colab" in sys.modules' in install or "IN_COLAB" in install, install
    assert "%pip install" in install and "git+" in install, install
    assert sum(src.count("REPO_URL = ") for src in code) == 1  # the repository is named once
    assert any(QUICK_SWITCH in src for src in code), "no LIPVAE_QUICK switch"
    assert any("%matplotlib inline" in src for src in code)
    for cell in notebook.cells:  # committed without outputs: small diffs
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_quick_mode(name, tmp_path):
    notebook = _read(name)
    env = {**os.environ, "LIPVAE_QUICK": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    client = NotebookClient(
        notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute(env=env)  # raises CellExecutionError (with the traceback) on any error
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "no figure was rendered inline"
