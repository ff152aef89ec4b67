"""The symbolic branch of a KAN layer: pykan's Symbolic_KANLayer, evaluated per function, not per edge.

Edge (j, i) (input i -> output j) computes ``mask[j, i] * (c * f(a * x_i + b) + d)`` with
``(a, b, c, d) = affine[j, i]`` and ``f`` its function (``funs_name[j][i]``, '0' for none); a
layer's output is the sum over its inputs, which the KAN adds to the numeric branch. pykan loops
over every edge in Python at every forward; here the edges with a non-zero mask are grouped by
function, so a forward costs one call per distinct function.

``mask`` (out, in) and ``affine`` (out, in, 4) have pykan's names and shapes, so state_dicts move
both ways; the function names travel in checkpoints (pykan keeps them in its config file). The
affine parameters are trainable (``requires_grad``) while the layer has a non-zero mask: pykan's
fit trains them then and leaves them untouched otherwise. Whether any mask is non-zero is cached
(a forward on a numeric model then costs nothing and reads no tensor on the host); the operations
that set masks refresh it, and so does ``load_state_dict``; after writing ``mask`` by hand call
``refresh()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .symbolic_lib import lib_entry, singular_value

__all__ = ["SymbolicKANLayer", "Symbolic_KANLayer"]


class SymbolicKANLayer(nn.Module):
    """pykan's Symbolic_KANLayer: in_dim inputs, out_dim outputs, every edge '0' and masked off."""

    def __init__(self, in_dim: int = 3, out_dim: int = 2, device="cpu"):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.mask = nn.Parameter(torch.zeros(out_dim, in_dim, device=device), requires_grad=False)
        self.affine = nn.Parameter(torch.zeros(out_dim, in_dim, 4, device=device), requires_grad=False)
        zero = lib_entry("0")
        self.funs_name = [["0"] * in_dim for _ in range(out_dim)]
        self.funs = [[zero[0]] * in_dim for _ in range(out_dim)]
        self.funs_sympy = [[zero[1]] * in_dim for _ in range(out_dim)]
        self.funs_avoid_singularity = [[zero[3]] * in_dim for _ in range(out_dim)]
        self._on = False
        self.register_load_state_dict_post_hook(lambda module, keys: module.refresh())

    # -- state ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read whether any mask is non-zero (and so whether affine trains)."""
        self._on = bool((self.mask.detach() != 0).any())
        self.affine.requires_grad_(self._on)

    @property
    def active(self) -> bool:
        """Whether the layer adds anything (some mask is non-zero)."""
        return self._on

    def set_fun(self, i: int, j: int, fun) -> None:
        """Edge (j, i)'s function: a library name, or a callable (named 'anonymous', used as its own
        sympy form and singularity-avoiding form, as pykan does)."""
        if isinstance(fun, str):
            entry = lib_entry(fun)
            name, torch_fun, sympy_fun, singular = fun, entry[0], entry[1], entry[3]
        elif callable(fun):
            name, torch_fun, sympy_fun, singular = "anonymous", fun, fun, (lambda x, y_th, f=fun: f(x))
        else:
            raise TypeError(f"a symbolic function is a library name or a callable, got {type(fun).__name__}")
        self.funs_name[j][i] = name
        self.funs[j][i] = torch_fun
        self.funs_sympy[j][i] = sympy_fun
        self.funs_avoid_singularity[j][i] = singular

    def set_names(self, names: Sequence[Sequence[str]]) -> None:
        """All functions from an (out, in) table of library names (checkpoints)."""
        if len(names) != self.out_dim or any(len(row) != self.in_dim for row in names):
            raise ValueError(f"symbolic function names must be a {self.out_dim} x {self.in_dim} table")
        for j, row in enumerate(names):
            for i, name in enumerate(row):
                if name == "anonymous":
                    raise ValueError(f"edge ({i}, {j}) holds an anonymous function, which cannot be restored "
                                     "from its name; register it with add_symbolic and fix it by that name")
                self.set_fun(i, j, str(name))

    _TABLES = ("funs_name", "funs", "funs_sympy", "funs_avoid_singularity")

    def tables(self) -> dict:
        """The function tables (copies of the lists; the functions themselves are shared)."""
        return {name: [list(row) for row in getattr(self, name)] for name in self._TABLES}

    def set_tables(self, tables: dict) -> None:
        """Restore what ``tables()`` returned."""
        for name in self._TABLES:
            setattr(self, name, [list(row) for row in tables[name]])

    # -- forward --------------------------------------------------------------------------------
    def _groups(self) -> list[tuple[int, int, torch.Tensor, torch.Tensor]]:
        """Edges with a non-zero mask, one group per function: (output id, input id) of one edge
        holding the group's function, then the group's output ids and input ids (n,)."""
        groups: dict[tuple[int, int], tuple[int, int, list[int], list[int]]] = {}
        for j, i in (self.mask.detach() != 0).nonzero().tolist():
            key = (id(self.funs[j][i]), id(self.funs_avoid_singularity[j][i]))
            group = groups.setdefault(key, (j, i, [], []))
            group[2].append(j)
            group[3].append(i)
        dev = self.mask.device
        return [(j0, i0, torch.tensor(js, device=dev), torch.tensor(is_, device=dev))
                for j0, i0, js, is_ in groups.values()]

    def edge_values(self, x: torch.Tensor, singularity_avoiding: bool = False, y_th: float = 10.0
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Outputs of the edges with a non-zero mask: (values (B, n), output ids (n,), input ids (n,))."""
        vals, outs, ins = [], [], []
        for j0, i0, js, is_ in self._groups():
            aff = self.affine[js, is_]  # (n, 4)
            u = aff[:, 0] * x[:, is_] + aff[:, 1]
            if singularity_avoiding:
                f = singular_value(self.funs_avoid_singularity[j0][i0], u, y_th)
            else:
                f = self.funs[j0][i0](u)
            vals.append(self.mask[js, is_] * (aff[:, 2] * f + aff[:, 3]))
            outs.append(js)
            ins.append(is_)
        if not vals:
            empty = torch.zeros(0, dtype=torch.long, device=x.device)
            return x.new_zeros(x.shape[0], 0), empty, empty
        return torch.cat(vals, dim=1), torch.cat(outs), torch.cat(ins)

    def output(self, x: torch.Tensor, singularity_avoiding: bool = False, y_th: float = 10.0) -> torch.Tensor:
        """x (B, in) -> (B, out): the sum over inputs of the symbolic edges."""
        y = x.new_zeros(x.shape[0], self.out_dim)
        if not self._on:
            return y
        vals, outs, _ = self.edge_values(x, singularity_avoiding, y_th)
        return y.index_add(1, outs, vals)

    def postacts(self, x: torch.Tensor, singularity_avoiding: bool = False, y_th: float = 10.0) -> torch.Tensor:
        """Every edge's output (B, out, in) (zeros where the mask is 0)."""
        B = x.shape[0]
        post = x.new_zeros(B, self.out_dim * self.in_dim)
        if not self._on:
            return post.view(B, self.out_dim, self.in_dim)
        vals, outs, ins = self.edge_values(x, singularity_avoiding, y_th)
        return post.index_add(1, outs * self.in_dim + ins, vals).view(B, self.out_dim, self.in_dim)

    def forward(self, x: torch.Tensor, singularity_avoiding: bool = False, y_th: float = 10.0):
        """pykan's forward: x (B, in) -> (y (B, out), postacts (B, out, in))."""
        post = self.postacts(x, singularity_avoiding, y_th)
        return post.sum(2), post

    # -- structure ------------------------------------------------------------------------------
    def _take(self, rows: Sequence[int], cols: Sequence[int]) -> None:
        """Keep (and reorder to) outputs ``rows`` and inputs ``cols`` in the function tables."""
        for name in self._TABLES:
            table = getattr(self, name)
            setattr(self, name, [[table[j][i] for i in cols] for j in rows])

    def permute(self, perm: torch.Tensor, mode: str) -> None:
        """Reorder the outputs (mode 'out') or inputs ('in') by perm: every tensor and every function
        table moves (pykan's swap leaves ``funs`` behind, D5)."""
        order = [int(p) for p in perm]
        with torch.no_grad():
            if mode == "out":
                self.mask.data = self.mask.data[perm].contiguous()
                self.affine.data = self.affine.data[perm].contiguous()
                self._take(order, range(self.in_dim))
            else:
                self.mask.data = self.mask.data[:, perm].contiguous()
                self.affine.data = self.affine.data[:, perm].contiguous()
                self._take(range(self.out_dim), order)

    def get_subset(self, in_id, out_id) -> SymbolicKANLayer:
        """A new layer keeping inputs in_id and outputs out_id (pruning)."""
        in_id, out_id = [int(i) for i in in_id], [int(j) for j in out_id]
        new = SymbolicKANLayer(len(in_id), len(out_id), device=self.mask.device)
        with torch.no_grad():
            new.mask.data = self.mask.data[out_id][:, in_id].clone()
            new.affine.data = self.affine.data[out_id][:, in_id].clone()
        for name in self._TABLES:
            table = getattr(self, name)
            setattr(new, name, [[table[j][i] for i in in_id] for j in out_id])
        new.refresh()
        return new

    def fix_symbolic(self, i: int, j: int, fun_name, x=None, y=None, random: bool = False, a_range=(-10, 10),
                     b_range=(-10, 10), verbose: bool = True):
        """pykan's layer-level fix: set edge (j, i)'s function; with samples x, y (N,) fit (a, b, c, d)
        and return r2, else set [1, 0, 1, 0] (or uniform in [-1, 1] with ``random``) and return None.
        The mask is not changed (the KAN's ``fix_symbolic`` sets it)."""
        self.set_fun(i, j, fun_name)
        if x is None or y is None or not isinstance(fun_name, str):
            with torch.no_grad():
                if random:
                    self.affine.data[j, i] = torch.rand(4, device=self.mask.device) * 2 - 1
                else:
                    self.affine.data[j, i] = torch.tensor([1.0, 0.0, 1.0, 0.0], device=self.mask.device)
            return None
        from .symbolic_fit import fit_affine

        params, r2 = fit_affine(torch.as_tensor(x).reshape(1, -1), torch.as_tensor(y).reshape(1, -1),
                                [self.funs[j][i]], a_range, b_range)
        with torch.no_grad():
            self.affine.data[j, i] = params[0, 0].to(self.affine.dtype)
        if verbose:
            print(f"r2 is {float(r2[0, 0])}")
            if r2[0, 0] < 0.9:
                print("r2 is not very high, please double check if you are choosing the correct symbolic function.")
        return r2[0, 0].to(self.affine.dtype)


Symbolic_KANLayer = SymbolicKANLayer
