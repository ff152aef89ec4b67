"""Every public method and property of KAN, MLP, KANLayer and KANLinear, and every public function
and class of kanswap's modules, has a docstring of its own (not one inherited from nn.Module).

Methods are found wherever they live: on the class or on any kanswap base class or mixin in its
MRO, so moving a method to another module keeps it checked."""

import importlib
import inspect
import pkgutil

import pytest

import kanswap
from kanswap import KAN, MLP, KANLayer, KANLinear

MIN_CHARS = 25  # shorter than "The model's parameters." says nothing about shapes or differences


def _public_members(cls) -> list[tuple[str, object, str]]:
    """(name, function or property, defining module) of cls's public members defined in kanswap."""
    out = []
    for name in sorted(dir(cls)):
        if name.startswith("_") and name != "__init__":
            continue
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if owner is None or not owner.__module__.startswith("kanswap"):
            continue  # nn.Module's own methods
        attr = vars(owner)[name]
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if isinstance(attr, property) or inspect.isfunction(attr):
            out.append((name, attr, owner.__module__))
    return out


@pytest.mark.parametrize("cls", [KAN, MLP, KANLayer, KANLinear], ids=lambda c: c.__name__)
def test_public_methods_have_docstrings(cls):
    members = _public_members(cls)
    assert len(members) >= 8  # the walk finds them (a broken walk would pass vacuously)
    missing = [f"{cls.__name__}.{name} ({module})" for name, attr, module in members
               if len((attr.__doc__ or "").strip()) < MIN_CHARS]
    assert missing == []


def test_init_help_is_the_class_own():
    """Before: help(KAN.__init__) showed nn.Module's "Initialize internal Module state"."""
    for cls in (KAN, MLP, KANLayer, KANLinear):
        doc = cls.__init__.__doc__ or ""
        assert "Module state" not in doc and len(doc) > 100, cls.__name__


def _kanswap_modules() -> list:
    names = [f"kanswap.{m.name}" for m in pkgutil.iter_modules(kanswap.__path__) if m.name != "__main__"]
    return [importlib.import_module(name) for name in names]


def test_module_functions_have_docstrings():
    modules = _kanswap_modules()
    assert len(modules) > 20
    checked, missing = 0, []
    for mod in modules:
        assert mod.__doc__ and len(mod.__doc__.strip()) >= MIN_CHARS, f"{mod.__name__} has no module docstring"
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == mod.__name__:
                checked += 1
                if len((obj.__doc__ or "").strip()) < MIN_CHARS:
                    missing.append(f"{mod.__name__}.{name}")
    assert checked > 50 and missing == []
