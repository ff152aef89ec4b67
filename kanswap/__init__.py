"""kanswap: fast Kolmogorov-Arnold Networks with pykan 0.2.8's API.

``from kanswap import *`` gives KAN, KANLayer, KANLinear, MLP, create_dataset_from_data and
create_dataset, as ``from kan import *`` does for pykan users.
"""

from .data import create_dataset, create_dataset_from_data
from .kan import KAN, MultKAN
from .layer import KANLayer, KANLinear

__version__ = "0.1.0"

__all__ = ["KAN", "MultKAN", "KANLayer", "KANLinear", "MLP", "create_dataset", "create_dataset_from_data"]


def __getattr__(name):
    # MLP lives in its own module; importing it never touches the global RNG (pykan's D20 does).
    if name == "MLP":
        from .mlp import MLP

        return MLP
    raise AttributeError(f"module 'kanswap' has no attribute {name!r}")
