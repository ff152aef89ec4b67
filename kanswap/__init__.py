"""kanswap: fast Kolmogorov-Arnold Networks with pykan 0.2.8's API.

``from kanswap import *`` gives KAN, KANLayer, KANLinear, MLP, create_dataset_from_data and
create_dataset, and pykan's symbolic names (Symbolic_KANLayer, SYMBOLIC_LIB, add_symbolic,
fit_params, ex_round), as ``from kan import *`` does for pykan users (``from kanswap import MLP`` for
pykan's ``from kan.MLP import MLP``); ``from kanswap import majority_dataset`` gives the demo's
task. Importing touches no RNG and needs no triton or GPU.
"""

from .data import create_dataset, create_dataset_from_data
from .data import majority_dataset as majority_dataset  # exported, but not by ``*`` (pykan's names only)
from .kan import KAN, MultKAN
from .layer import KANLayer, KANLinear
from .mlp import MLP
from .symbolic import ex_round
from .symbolic_fit import fit_params
from .symbolic_layer import Symbolic_KANLayer
from .symbolic_lib import SYMBOLIC_LIB, add_symbolic

__version__ = "0.1.0"

__all__ = ["KAN", "MultKAN", "KANLayer", "KANLinear", "MLP", "create_dataset", "create_dataset_from_data",
           "Symbolic_KANLayer", "SYMBOLIC_LIB", "add_symbolic", "fit_params", "ex_round"]
