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

import importlib

__version__ = "0.1.0"

# name -> (module, attribute or None for the module itself)
_LAZY = {
    "KAN": (".kan", "KAN"),
    "MultKAN": (".kan", "MultKAN"),
    "KANLayer": (".layer", "KANLayer"),
    "KANLinear": (".layer", "KANLinear"),
    "MLP": (".mlp", "MLP"),
    "create_dataset": (".data", "create_dataset"),
    "create_dataset_from_data": (".data", "create_dataset_from_data"),
    "majority_dataset": (".data", "majority_dataset"),  # exported, but not by ``*`` (pykan's names only)
    "torch": ("torch", None),
    "nn": ("torch.nn", None),
    "np": ("numpy", None),
    "plt": ("matplotlib.pyplot", None),
}

__all__ = ["KAN", "MultKAN", "KANLayer", "KANLinear", "MLP", "create_dataset", "create_dataset_from_data",
           "torch", "nn", "np", "plt"]


def __getattr__(name: str):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'kanswap' has no attribute {name!r}") from None
    mod = importlib.import_module(module, __name__) if module.startswith(".") else importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

