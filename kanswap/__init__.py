"""kanswap: fast Kolmogorov-Arnold Networks with pykan 0.2.8's API.

``from kanswap import *`` gives what a pykan tutorial's first cell (``from kan import *``) needs:
KAN, MultKAN, KANLayer, KANLinear, MLP, create_dataset, create_dataset_from_data and the modules
``torch``, ``nn`` (torch.nn), ``np`` (numpy) and ``plt`` (matplotlib.pyplot); ``from kanswap import MLP``
replaces pykan's ``from kan.MLP import MLP``. ``from kanswap import majority_dataset`` gives the
demo's task. Unlike pykan, the star import does not pour sympy's ~900 names into the namespace.

``import kanswap`` itself imports nothing heavy: the names above are loaded on first use (PEP 562),
so ``kanswap --version`` answers without importing torch. Importing touches no RNG and needs no
triton or GPU.
"""

from __future__ import annotations

from .model_kinds import register_loader

__version__ = "0.1.0"

__all__ = ["KAN", "MultKAN", "KANLayer", "KANLinear", "MLP", "create_dataset", "create_dataset_from_data",
           "torch", "nn", "np", "plt"]


def _import_models() -> None:
    """Import the model modules: they register their classes for checkpoint loading."""
    from . import kan, mlp  # noqa: F401


register_loader(_import_models)


def _load(name: str):
    """The object exported as ``name`` (imported on first use)."""
    if name in ("KAN", "MultKAN"):
        from . import kan as module
    elif name in ("KANLayer", "KANLinear"):
        from . import layer as module
    elif name == "MLP":
        from . import mlp as module
    elif name in ("create_dataset", "create_dataset_from_data", "majority_dataset"):
        from . import data as module  # majority_dataset: exported, but not by ``*`` (pykan's names only)
    elif name == "torch":
        import torch
        return torch
    elif name == "nn":
        from torch import nn
        return nn
    elif name == "np":
        import numpy
        return numpy
    elif name == "plt":
        import matplotlib.pyplot
        return matplotlib.pyplot
    else:
        raise AttributeError(f"module 'kanswap' has no attribute {name!r}")
    return getattr(module, name)


_NAMES = (*__all__, "majority_dataset")


def __getattr__(name: str):
    value = _load(name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NAMES))
