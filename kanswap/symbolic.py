"""Symbolic regression on a KAN: pykan's set_mode, fix_symbolic, unfix_symbolic(_all),
suggest_symbolic, auto_symbolic and symbolic_formula, as operations that take the model.

Each edge's samples are pykan's: the layer's inputs recorded by the last forward (``acts``) and the
edge's whole output on them (numeric plus symbolic branch). ``auto_symbolic`` fits every
(edge, function) pair in one batched call (``kanswap.symbolic_fit``) instead of pykan's
edge-by-edge, function-by-function grid searches; the choices follow pykan's rule (lowest
``weight_simple * complexity + (1 - weight_simple) * log2(1 + 1e-5 - r2)``, ties broken as numpy's
argsort breaks them in pykan).

Differences from pykan 0.2.8, each deliberate:
- ``suggest_symbolic`` only reads the model. pykan's fixes and unfixes the edge once per library
  function, which leaves an edge that was symbolic unfixed (numeric), and an edge whose numeric
  mask is 0 fixed to the library's last function;
- ``symbolic_formula`` counts an edge only where its symbolic mask is non-zero (pykan adds the
  stale affine values of edges unfixed after a fit), and groups mult-node inputs by each node's
  own arity (pykan indexes them as if every arity were 2);
- bad input raises a ValueError or TypeError naming the problem (pykan raises IndexError/KeyError
  or prints and returns None).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .symbolic_fit import fit_affine
from .symbolic_lib import lib_entry, resolve_lib

__all__ = ["set_mode", "fix_symbolic", "unfix_symbolic", "unfix_symbolic_all", "suggest_symbolic",
           "auto_symbolic", "symbolic_formula", "format_table", "ex_round"]


def _check_kan(model, what: str) -> None:
    if not hasattr(model, "symbolic_fun") or not hasattr(model, "act_fun"):
        raise TypeError(f"{what} needs a KAN (edges with learnable functions); {type(model).__name__} has "
                        "no symbolic branch")


def _check_edge(model, l, i, j, what: str) -> None:
    _check_kan(model, what)
    for name, v in (("l", l), ("i", i), ("j", j)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError(f"{what}: {name} must be an int, got {v!r}")
    if not 0 <= l < model.depth:
        raise ValueError(f"{what}: layer l={l} out of range 0..{model.depth - 1}")
    n_in, n_out = model.width_in[l], model.width_out[l + 1]
    if not 0 <= i < n_in or not 0 <= j < n_out:
        raise ValueError(f"{what}: edge (i={i}, j={j}) out of range for layer {l} with {n_in} inputs and "
                         f"{n_out} outputs")


def _layer_samples(model, l: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (B, in) and every edge's output (B, out, in) of layer l on the last forward's data."""
    x, phi = model.edge_activations(l)
    return x.detach(), phi.detach()


def set_mode(model, l: int, i: int, j: int, mode: str, mask_n: float | None = None) -> None:
    """Edge (l, i, j): 'n' numeric only, 's' symbolic only, 'sn'/'ns' both (numeric mask ``mask_n``,
    default 1)."""
    _check_edge(model, l, i, j, "set_mode")
    if mode == "s":
        m_n, m_s = 0.0, 1.0
    elif mode == "n":
        m_n, m_s = 1.0, 0.0
    elif mode in ("sn", "ns"):
        m_n, m_s = (1.0 if mask_n is None else float(mask_n)), 1.0
    else:
        raise ValueError(f"set_mode: mode must be 'n', 's', 'sn' or 'ns', got {mode!r}")
    with torch.no_grad():
        model.act_fun[l].mask.data[i, j] = m_n
        model.symbolic_fun[l].mask.data[j, i] = m_s
    model.symbolic_fun[l].refresh()


def _fit_edges(model, edges: Sequence[tuple[int, int, int]], funs: Sequence[Callable], a_range, b_range
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched fit of every edge (l, i, j) with every function: params (E, F, 4), r2 (E, F)."""
    xs, ys = [], []
    cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for l, i, j in edges:
        if l not in cache:
            cache[l] = _layer_samples(model, l)
        x, phi = cache[l]
        xs.append(x[:, i])
        ys.append(phi[:, j, i])
    return fit_affine(torch.stack(xs), torch.stack(ys), funs, a_range, b_range)


def fix_symbolic(model, l: int, i: int, j: int, fun_name, fit_params_bool: bool = True, a_range=(-10, 10),
                 b_range=(-10, 10), verbose: bool = True, random: bool = False, log_history: bool = True):
    """Make edge (l, i, j) symbolic with ``fun_name`` (a library name or a callable). With
    ``fit_params_bool`` (a, b, c, d) are fitted to the edge's samples and r2 is returned (-1e8 when
    the edge's numeric mask is 0, as pykan); otherwise they are [1, 0, 1, 0] (uniform in [-1, 1]
    with ``random``) and None is returned."""
    _check_edge(model, l, i, j, "fix_symbolic")
    if isinstance(fun_name, str):
        lib_entry(fun_name)
    elif not callable(fun_name):
        raise TypeError(f"fix_symbolic: fun_name must be a library name or a callable, got {fun_name!r}")
    sym = model.symbolic_fun[l]
    if not fit_params_bool or not isinstance(fun_name, str):
        sym.fix_symbolic(i, j, fun_name, random=random)
        r2 = None
    else:
        sym.set_fun(i, j, fun_name)
        params, r2s = _fit_edges(model, [(l, i, j)], [sym.funs[j][i]], a_range, b_range)
        _set_affine(sym, i, j, params[0, 0])
        r2 = r2s[0, 0].to(sym.affine.dtype)
        if verbose:
            print(f"r2 is {float(r2)}")
            if r2 < 0.9:
                print("r2 is not very high, please double check if you are choosing the correct symbolic function.")
        if model.act_fun[l].mask[i, j] == 0:
            r2 = -1e8
    set_mode(model, l, i, j, "s")
    if log_history:
        model.log_history("fix_symbolic")
    return r2


def _set_affine(sym, i: int, j: int, params: torch.Tensor) -> None:
    with torch.no_grad():
        sym.affine.data[j, i] = params.to(sym.affine.dtype)


def unfix_symbolic(model, l: int, i: int, j: int, log_history: bool = True) -> None:
    """Make edge (l, i, j) numeric again (its symbolic function becomes '0')."""
    _check_edge(model, l, i, j, "unfix_symbolic")
    set_mode(model, l, i, j, "n")
    model.symbolic_fun[l].set_fun(i, j, "0")
    if log_history:
        model.log_history("unfix_symbolic")


def unfix_symbolic_all(model, log_history: bool = True) -> None:
    """Make every edge numeric (one history entry, where pykan logs one per edge)."""
    _check_kan(model, "unfix_symbolic_all")
    for l in range(model.depth):
        for i in range(model.width_in[l]):
            for j in range(model.width_out[l + 1]):
                unfix_symbolic(model, l, i, j, log_history=False)
    if log_history:
        model.log_history("unfix_symbolic")


def _r2_loss(r2: np.ndarray) -> np.ndarray:
    return np.log2(1 + 1e-5 - r2)


def _rank(r2s: np.ndarray, cs: np.ndarray, weight_simple: float, r2_loss_fun: Callable, c_loss_fun: Callable):
    r2_loss = np.asarray(r2_loss_fun(r2s)).astype("float")
    cs_loss = np.asarray(c_loss_fun(cs))
    loss = weight_simple * cs_loss + (1 - weight_simple) * r2_loss
    return np.argsort(loss), r2_loss, cs_loss, loss


def format_table(columns: dict[str, Sequence]) -> str:
    """A table laid out like pandas' DataFrame print (index column, right-aligned values)."""
    def cell(v) -> str:
        if isinstance(v, (float, np.floating)):
            return f"{float(v):.6f}"
        return str(v)

    n = len(next(iter(columns.values()))) if columns else 0
    cols = [[""] + [str(k) for k in range(n)]] + [[name] + [cell(v) for v in vals] for name, vals in columns.items()]
    widths = [max(len(s) for s in col) for col in cols]
    lines = []
    for r in range(n + 1):
        parts = [cols[0][r].ljust(widths[0])] + [col[r].rjust(w) for col, w in zip(cols[1:], widths[1:], strict=True)]
        lines.append("  ".join(parts))
    return "\n".join(lines)


def suggest_symbolic(model, l: int, i: int, j: int, a_range=(-10, 10), b_range=(-10, 10), lib=None, topk: int = 5,
                     verbose: bool = True, r2_loss_fun: Callable | None = None, c_loss_fun: Callable | None = None,
                     weight_simple: float = 0.8):
    """Score every library function on edge (l, i, j); print the ``topk`` best (with ``verbose``)
    and return (name, library entry, r2, complexity) of the best, as pykan. ``r2_loss_fun``
    (default log2(1 + 1e-5 - r2)) and ``c_loss_fun`` (default identity) map r2 and complexity to
    the two losses. The model is not changed."""
    _check_edge(model, l, i, j, "suggest_symbolic")
    r2_loss_fun = _r2_loss if r2_loss_fun is None else r2_loss_fun
    c_loss_fun = (lambda x: x) if c_loss_fun is None else c_loss_fun
    if not isinstance(topk, (int, np.integer)) or topk < 1:
        raise ValueError(f"suggest_symbolic: topk must be an int >= 1, got {topk!r}")
    library = resolve_lib(lib)
    names = list(library)
    _, r2 = _fit_edges(model, [(l, i, j)], [entry[0] for entry in library.values()], a_range, b_range)
    return _suggest_from(model, l, i, j, names, library, r2[0], topk, verbose, r2_loss_fun, c_loss_fun,
                         weight_simple)


def _suggest_from(model, l, i, j, names, library, r2_row: torch.Tensor, topk, verbose, r2_loss_fun, c_loss_fun,
                  weight_simple):
    if model.act_fun[l].mask[i, j] == 0:
        r2s = np.full(len(names), -1e8)
    else:
        # pykan reads its float32 r2 with .item(): the same values, as float64
        r2s = r2_row.float().double().cpu().numpy()
    cs = np.array([library[n][2] for n in names])
    order, r2_loss, cs_loss, loss = _rank(r2s, cs, weight_simple, r2_loss_fun, c_loss_fun)
    top = order[:topk]
    if verbose:
        print(format_table({"function": [names[k] for k in top], "fitting r2": r2s[top], "r2 loss": r2_loss[top],
                            "complexity": cs[top], "complexity loss": cs_loss[top], "total loss": loss[top]}))
    best = int(order[0])
    return names[best], library[names[best]], r2s[best], cs[best]


def auto_symbolic(model, a_range=(-10, 10), b_range=(-10, 10), lib=None, verbose: int = 1,
                  weight_simple: float = 0.8, r2_threshold: float = 0.0) -> None:
    """Fix every edge to its best library function (pykan's rule, see ``suggest_symbolic``), all
    (edge, function) pairs fitted in one batch; edges already symbolic are skipped, edges with both
    masks 0 become '0'; an edge whose best r2 is below ``r2_threshold`` stays numeric. Prints
    pykan's lines."""
    _check_kan(model, "auto_symbolic")
    library = resolve_lib(lib)
    names = list(library)
    zero_fun = lib_entry("0")[0]
    todo, zero = [], []
    for l in range(model.depth):
        sym_mask, num_mask = model.symbolic_fun[l].mask, model.act_fun[l].mask
        for i in range(model.width_in[l]):
            for j in range(model.width_out[l + 1]):
                if sym_mask[j, i] > 0 and num_mask[i, j] == 0:
                    continue
                (zero if sym_mask[j, i] == 0 and num_mask[i, j] == 0 else todo).append((l, i, j))
    funs = [entry[0] for entry in library.values()]
    params, r2 = _fit_edges(model, todo, funs, a_range, b_range) if todo else (None, None)
    zero_params = _fit_edges(model, zero, [zero_fun], a_range, b_range)[0] if zero else None
    row = {edge: k for k, edge in enumerate(todo)}
    zrow = {edge: k for k, edge in enumerate(zero)}
    for l in range(model.depth):
        sym_mask, num_mask = model.symbolic_fun[l].mask, model.act_fun[l].mask
        for i in range(model.width_in[l]):
            for j in range(model.width_out[l + 1]):
                edge = (l, i, j)
                if edge in zrow:
                    model.symbolic_fun[l].set_fun(i, j, "0")
                    _set_affine(model.symbolic_fun[l], i, j, zero_params[zrow[edge], 0])
                    set_mode(model, l, i, j, "s")
                    print(f"fixing ({l},{i},{j}) with 0")
                elif edge not in row:
                    print(f"skipping ({l},{i},{j}) since already symbolic")
                else:
                    k = row[edge]
                    name, _, best_r2, c = _suggest_from(model, l, i, j, names, library, r2[k], 1, False, _r2_loss,
                                                        lambda x: x, weight_simple)
                    if best_r2 >= r2_threshold:
                        model.symbolic_fun[l].set_fun(i, j, name)
                        _set_affine(model.symbolic_fun[l], i, j, params[k, names.index(name)])
                        set_mode(model, l, i, j, "s")
                        if verbose >= 1:
                            print(f"fixing ({l},{i},{j}) with {name}, r2={best_r2}, c={c}")
                    else:
                        print(f"For ({l},{i},{j}) the best fit was {name}, but r^2 = {best_r2} and this is lower "
                              f"than {r2_threshold}. This edge was omitted, keep training or try a different "
                              "threshold.")
    model.log_history("auto_symbolic")


def ex_round(expr, n_digit: int):
    """pykan's ex_round: every float in the sympy expression rounded to ``n_digit`` decimals."""
    import sympy

    return expr.xreplace({f: sympy.Float(round(float(f), n_digit)) for f in expr.atoms(sympy.Float)})


def _number(v):
    import sympy

    return sympy.Float(float(v))


def symbolic_formula(model, var=None, normalizer=None, output_normalizer=None):
    """The model's symbolic branch as sympy expressions: (list of one expression per output, the
    input symbols). Inputs are ``x_1..x_n`` unless ``var`` (sympy expressions or names) is given;
    ``normalizer`` = (means, stds) of the inputs and ``output_normalizer`` of the outputs undo a
    normalisation. Sets ``symbolic_acts`` and ``symbolic_acts_premult`` (per layer) as pykan."""
    import sympy  # imported here: a quarter of a second kanswap's import does not pay

    _check_kan(model, "symbolic_formula")
    n_in = model.width_in[0]
    if var is None:
        x = [sympy.Symbol(f"x_{k}") for k in range(1, model.width[0][0] + 1)]
    else:
        if len(var) != n_in:
            raise ValueError(f"symbolic_formula: var has {len(var)} entries, the model has {n_in} inputs")
        x = list(var) if isinstance(var[0], sympy.Expr) else [sympy.symbols(v) for v in var]
    x0 = x
    if normalizer is not None:
        mean, std = normalizer
        x = [(x[k] - _number(mean[k])) / _number(std[k]) for k in range(len(x))]
    acts, premult = [x], []
    for l in range(model.depth):
        sym = model.symbolic_fun[l]
        mask = sym.mask.detach().cpu()
        affine = sym.affine.detach().cpu().double()
        sub_scale = model._affine("subnode_scale", l).detach().cpu()
        sub_bias = model._affine("subnode_bias", l).detach().cpu()
        y = []
        for j in range(model.width_out[l + 1]):
            yj = sympy.Integer(0)
            for i in range(model.width_in[l]):
                if mask[j, i] == 0:
                    continue
                f = sym.funs_sympy[j][i]
                if f is None:
                    raise ValueError(f"symbolic_formula: edge ({l},{i},{j}) uses {sym.funs_name[j][i]!r}, whose "
                                     "library entry has no sympy form")
                a, b, c, d = (_number(v) for v in affine[j, i])
                try:
                    term = c * f(a * x[i] + b) + d
                except Exception as err:
                    raise ValueError(f"symbolic_formula: edge ({l},{i},{j})'s function {sym.funs_name[j][i]!r} "
                                     f"has no usable sympy form ({type(err).__name__}: {err})") from None
                yj = yj + (term if float(mask[j, i]) == 1.0 else _number(mask[j, i]) * term)
            y.append(_number(sub_scale[j]) * yj + _number(sub_bias[j]))
        premult.append(y)
        groups = model.subnode_groups(l + 1)
        nodes = []
        for g in groups:
            v = y[g[0]]
            for s in g[1:]:
                v = v * y[s]
            nodes.append(v)
        node_scale = model._affine("node_scale", l).detach().cpu()
        node_bias = model._affine("node_bias", l).detach().cpu()
        x = [_number(node_scale[k]) * nodes[k] + _number(node_bias[k]) for k in range(len(nodes))]
        acts.append(x)
    if output_normalizer is not None:
        means, stds = output_normalizer
        if len(means) != len(acts[-1]) or len(stds) != len(acts[-1]):
            raise ValueError("output_normalizer does not match the output layer")
        acts[-1] = [acts[-1][k] * _number(stds[k]) + _number(means[k]) for k in range(len(acts[-1]))]
    model.symbolic_acts = [list(a) for a in acts]
    model.symbolic_acts_premult = [list(p) for p in premult]
    return list(acts[-1]), x0
