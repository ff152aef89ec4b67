"""pykan's separability/symmetry hypothesis tree (``model.tree()``, kan.hypothesis in pykan).

Which inputs combine first is found by symmetry tests (does the direction of the gradient in a
group of inputs depend on the other inputs?), and each merge is labelled by separability tests on
Hessians ('Add': additively separable, 'Mul': multiplicatively, 'GS': generalised, 'Id').

Every derivative is taken over the whole batch at once: for n inputs a Hessian is n
double-backward passes over all B samples (samples are independent, so the gradient of the
batch sum is the per-sample gradient). The model is evaluated through per-edge splines
(``KANLayer.edge_outputs``), which autograd can differentiate more than once; the fast path's
hand-written backward gives first derivatives only.

pykan 0.2.8's ``MLP.tree()`` raises NameError (``plot_tree`` is not imported in kan/MLP.py) and
its ``plot_tree`` crashes when ``in_var`` is given (it reads an unset variable); both work here.
``tree`` returns the Figure (pykan's returns None after ``plt.show()``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

__all__ = ["model_function", "batch_jacobian", "batch_hessian", "test_symmetry", "test_separability",
           "test_general_separability", "get_molecule", "get_tree_node", "tree_structure", "plot_tree"]

Fn = Callable[[torch.Tensor], torch.Tensor]


def model_function(model) -> Fn:
    """x (B, n) -> output (B, out), differentiable any number of times: a KAN through its per-edge
    splines (``KAN.edgewise_forward``), an MLP or any callable as it is."""
    return getattr(model, "edgewise_forward", model)


def batch_jacobian(f: Fn, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """d f(x)[:, 0] / dx per sample: (B, n)."""
    x = x if x.requires_grad else x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = f(x)[:, 0].sum()
        return torch.autograd.grad(y, x, create_graph=create_graph)[0]


def batch_hessian(f: Fn, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """Hessian of f(x)[:, 0] per sample: (B, n, n), from n batched double-backward passes."""
    return _batch_jacobian_of(lambda z: batch_jacobian(f, z, create_graph=True), x, create_graph)


def _batch_jacobian_of(g: Fn, x: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """Per-sample Jacobian of a vector function g: (B, m) -> (B, m, n)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = g(x)
        rows = []
        for d in range(out.shape[1]):
            grad = torch.autograd.grad(out[:, d].sum(), x, retain_graph=True, create_graph=create_graph,
                                       allow_unused=True)[0]
            rows.append(torch.zeros_like(x) if grad is None else grad)
    return torch.stack(rows, dim=1)


def _score_matrix(hessian: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    std = torch.std(x, dim=0)
    return torch.median(torch.abs(hessian * std[None, :] * std[:, None]), dim=0)[0]


def test_symmetry(f: Fn, x: torch.Tensor, group: list[int], dependence_th: float = 1e-3) -> bool:
    """True if the gradient direction within ``group`` does not depend on the other inputs."""
    n = x.shape[1]
    if len(group) in (0, n):
        return True
    others = sorted(set(range(n)) - set(group))

    def normalized(z: torch.Tensor) -> torch.Tensor:
        grad = batch_jacobian(f, z, create_graph=True)[:, group]
        return grad / (torch.norm(grad, dim=1, keepdim=True) + 1e-6)

    dep = _batch_jacobian_of(normalized, x)[:, :, others]  # (B, |group|, |others|)
    std = torch.std(x, dim=0)
    dep = torch.median(torch.abs(dep * std[None, group, None] * std[None, None, others]), dim=0)[0]
    return bool(dep.max() < dependence_th)


def test_separability(f: Fn, x: torch.Tensor, groups: list[list[int]], mode: str = "add",
                      threshold: float = 1e-2, bias: float = 0.0) -> bool:
    """True if f (mode 'add') or log|f + bias| ('mul') has no mixed second derivative between
    different groups, or between the groups and the remaining inputs."""
    if mode == "add":
        hessian = batch_hessian(f, x)
    elif mode == "mul":
        hessian = batch_hessian(lambda z: torch.log(torch.abs(f(z) + bias)), x)
    else:
        raise ValueError(f"mode must be 'add' or 'mul', got {mode!r}")
    score = _score_matrix(hessian, x)
    ok = True
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            ok = ok and bool(score[groups[i]][:, groups[j]].max() < threshold)
    members = [v for g in groups for v in g]
    rest = sorted(set(range(x.shape[1])) - set(members))
    if rest and members:
        ok = ok and bool(score[members][:, rest].max() < threshold)
    return ok


def test_general_separability(f: Fn, x: torch.Tensor, groups: list[list[int]], threshold: float = 1e-2) -> bool:
    """True if every ratio of partial derivatives across two groups is multiplicatively separable."""
    ok = True
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            for a in groups[i]:
                for b in groups[j]:
                    def ratio(z, a=a, b=b):
                        grad = batch_jacobian(f, z, create_graph=True)
                        return grad[:, [b]] / grad[:, [a]]

                    ok = ok and test_separability(ratio, x, groups, mode="mul", threshold=threshold)
    return ok


def get_molecule(f: Fn, x: torch.Tensor, sym_th: float = 1e-3, verbose: bool = False) -> list[list[list[int]]]:
    """How inputs combine level by level: a list of partitions of range(n), finest first, each
    level merging groups of the one below (pykan's algorithm and order)."""
    n = x.shape[1]
    atoms = [[i] for i in range(n)]
    levels = [copy.deepcopy(atoms)]
    molecules: list[list[int]] = []
    already_full = False
    n_layer = 0
    last_count = n
    while True:
        pointer, current, taken, n_atom = 0, [], [], 0
        while atoms:
            atom = atoms[pointer]
            if verbose:
                print(current, atom)
            full = False
            if not current:
                current = current + atom
                taken.append(atom)
                n_atom += 1
            elif len(current + atom) == n and not already_full and n_atom > 1 and n_layer > 0:
                full = already_full = True
            elif test_symmetry(f, x, current + atom, dependence_th=sym_th):
                current = current + atom
                taken.append(atom)
                n_atom += 1
            pointer += 1
            if pointer == len(atoms) or full:
                molecules.append(current)
                if full:
                    molecules.append(atom)
                    taken.append(atom)
                for a in taken:
                    atoms.remove(a)
                pointer, current, taken = 0, [], []
        if len(molecules) == last_count:
            levels.append([[v for m in molecules for v in m]])
            break
        levels.append(copy.deepcopy(molecules))
        last_count = len(molecules)
        if len(molecules) == 1:
            break
        atoms, molecules = molecules, []
        n_layer += 1
    # Reorder each level to follow the order of the level above.
    for l in range(len(levels) - 1, 0, -1):
        ordered = []
        for molecule in levels[l]:
            start = 0
            for i in range(1, len(molecule) + 1):
                if molecule[start:i] in levels[l - 1]:
                    ordered.append(molecule[start:i])
                    start = i
        levels[l - 1] = ordered
    return levels


def get_tree_node(f: Fn, x: torch.Tensor, levels: list, sep_th: float = 1e-2,
                  skip_test: bool = True) -> tuple[list[list[int]], list[list[str]]]:
    """Arity and property ('Id', 'GS', 'Add', 'Mul' or '') of every merge of ``levels``."""
    arities, properties = [], []
    depth = len(levels) - 1
    for l in range(depth):
        arity_l, prop_l = [], []
        for molecule in levels[l + 1]:
            start, groups = 0, []
            for i in range(1, len(molecule) + 1):
                if molecule[start:i] in levels[l]:
                    groups.append(molecule[start:i])
                    start = i
            arity_l.append(len(groups))
            if len(groups) == 1:
                prop = "Id"
            else:
                prop = ""
                if not skip_test and test_general_separability(f, x, groups, threshold=sep_th):
                    prop = "GS"
                if l == depth - 1 and not skip_test:
                    if test_separability(f, x, groups, mode="add", threshold=sep_th):
                        prop = "Add"
                    if test_separability(f, x, groups, mode="mul", threshold=sep_th):
                        prop = "Mul"
            prop_l.append(prop)
        arities.append(arity_l)
        properties.append(prop_l)
    return arities, properties


def tree_structure(model, x: torch.Tensor | None = None, sym_th: float = 1e-3, sep_th: float = 1e-1,
                   skip_sep_test: bool = False, verbose: bool = False):
    """(levels, arities, properties) of the hypothesis tree on x (default: the cached data)."""
    if x is None:
        x = getattr(model, "cache_data", None)
        if x is None:
            raise ValueError("tree needs data: pass x or run the model on data first")
    f = model_function(model)
    levels = get_molecule(f, x, sym_th=sym_th, verbose=verbose)
    arities, properties = get_tree_node(f, x, levels, sep_th=sep_th, skip_test=skip_sep_test)
    return levels, arities, properties


def plot_tree(model, x: torch.Tensor | None = None, in_var=None, style: str = "tree", sym_th: float = 1e-3,
              sep_th: float = 1e-1, skip_sep_test: bool = False, verbose: bool = False):
    """Draw the hypothesis tree (pykan's layout; ``style`` 'tree' or 'box') and return the Figure."""
    import matplotlib.pyplot as plt

    from .display import hand_over, new_figure

    if style not in ("tree", "box"):
        raise ValueError(f"style must be 'tree' or 'box', got {style!r}")
    levels, arities, properties = tree_structure(model, x, sym_th, sep_th, skip_sep_test, verbose)
    n = len(levels[0])
    names = [f"$x_{{{i + 1}}}$" for i in range(n)] if in_var is None else [f"${v}$" for v in in_var]
    if len(names) != n:
        raise ValueError(f"in_var has {len(names)} names but the model has {n} inputs")
    fig = new_figure()

    def rectangle(cx, cy, wx, wy):
        xs = [cx - wx / 2, cx + wx / 2, cx + wx / 2, cx - wx / 2, cx - wx / 2]
        ys = [cy + wy / 2, cy + wy / 2, cy - wy / 2, cy - wy / 2, cy + wy / 2]
        plt.plot(xs, ys, color="k")

    delta, a, b, y0 = 1 / n, 0.3, 0.15, 0.5
    last_centers: list[float] = []
    for l in range(len(levels) - 1):
        centers, acc = [], 0
        for i, molecule in enumerate(levels[l + 1]):
            start = sum(len(m) for m in levels[l + 1][:i])
            end = start + len(molecule)
            cx, cy = (start + (end - 1 - start) / 2) * delta + delta / 2, (l + 0.5) * y0
            wx, wy = (end - start - 1 + 2 * a) * delta, 2 * b
            prop = properties[l][i]
            if style == "box":
                rectangle(cx, cy, wx, wy)
                plt.text(cx, cy, prop, fontsize=15, ha="center", va="center")
            else:
                if prop in ("GS", "Add", "Mul"):
                    for j in range(arities[l][i]):
                        x_from = (start + j) * delta + delta / 2 if l == 0 else last_centers[acc + j]
                        plt.plot([x_from, cx], [cy - b, cy + b], color="blue")
                    acc += arities[l][i]
                    if prop != "GS":
                        plt.text(cx, cy + b, "+" if prop == "Add" else "*", ha="center", va="center", color="red",
                                 fontsize=40)
                elif prop == "Id":
                    plt.plot([cx, cx], [cy - wy / 2, cy + wy / 2], color="black")
                else:
                    rectangle(cx, cy, wx, wy)
            plt.plot([cx, cx], [cy + wy / 2, cy + y0 - wy / 2], color="k")
            centers.append(cx)
        last_centers = centers
    for i in range(n):
        xi = (i + 0.5) * delta
        plt.plot([xi, xi], [0, y0 / 2 - b], color="k")
        plt.text(xi, -0.05 * (len(levels) - 1), names[levels[0][i][0]], fontsize=20, ha="center")
    plt.xlim(0, 1)
    plt.axis("off")
    hand_over(fig)  # shown once in a notebook
    return fig
