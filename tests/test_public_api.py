"""Each module's `__all__`: it names what the module defines for users, and nothing else."""
import ast
import importlib
import inspect
import pathlib
import types

import pytest

import lipvae_tf

PACKAGE = pathlib.Path(lipvae_tf.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_"))  # public ones
ALIASES = {"tfd", "LayerT"}  # module-level shorthands, not API


def _public_definitions(path: pathlib.Path) -> set[str]:
    """Top-level functions, classes and assigned names without a leading underscore."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")} - ALIASES


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_every_public_definition_and_only_those(name):
    module = importlib.import_module(f"lipvae_tf.{name}")
    listed = module.__all__
    assert len(listed) == len(set(listed)), f"duplicates in lipvae_tf.{name}.__all__"
    assert set(listed) == _public_definitions(PACKAGE / f"{name}.py")
    for attribute in listed:  # all exist; no imported module leaks into `import *`
        assert hasattr(module, attribute), attribute
        assert not isinstance(getattr(module, attribute), types.ModuleType), attribute


def test_star_import_brings_the_listed_names_only():
    namespace: dict = {}
    exec("from lipvae_tf.bounds import *", namespace)  # noqa: S102 - the behaviour under test
    brought = {n for n in namespace if n != "__builtins__"}
    assert brought == set(lipvae_tf.bounds.__all__)
    assert "np" not in brought and inspect.isfunction(namespace["best_radius"])


def test_the_package_namespace_shows_its_api_not_its_imports():
    """A newcomer's `dir(lipvae_tf)` listed os, sys, subprocess, importlib, Any and
    TYPE_CHECKING; and the default per-step control (SubspaceClip) was not at the top level
    while two other constraints were."""
    shown = set(dir(lipvae_tf))
    assert not shown & {"os", "sys", "subprocess", "importlib", "Any", "TYPE_CHECKING",
                        "annotations"}
    assert set(lipvae_tf.__all__) <= shown and "__version__" in shown
    constraints = importlib.import_module("lipvae_tf.constraints")
    for name in ("SubspaceClip", "SpectralNormClip", "BjorckOrthonormal", "SpectralClip"):
        assert name in lipvae_tf.__all__ and getattr(lipvae_tf, name) is getattr(constraints,
                                                                                name)
    assert {name for name in shown if isinstance(getattr(lipvae_tf, name), types.ModuleType)
            } <= set(MODULES)
