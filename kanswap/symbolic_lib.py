"""pykan's library of symbolic functions: ``SYMBOLIC_LIB`` and ``add_symbolic``.

Every entry is ``name: (torch_fun, sympy_fun, complexity, torch_fun_avoiding_singularity)``, with
pykan 0.2.8's names, order and complexities (the order decides ties in ``suggest_symbolic``, as in
pykan). ``torch_fun(x)`` acts elementwise; ``sympy_fun(expr)`` builds the sympy form;
``torch_fun_avoiding_singularity(x, y_th)`` is the bounded variant a forward with
``singularity_avoiding=True`` uses (it may return ``(aux, value)`` as pykan's do, or the value).
Entries naming the same function (``sqrt`` and ``x^0.5``) share one torch function, so a batched fit
evaluates it once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

__all__ = ["SYMBOLIC_LIB", "add_symbolic", "resolve_lib", "lib_entry", "singular_value"]


def _where_small(x: torch.Tensor, x_th, small: torch.Tensor, large_fun: Callable) -> torch.Tensor:
    """``small`` where |x| < x_th, else large_fun(x) evaluated on inputs kept away from the
    singularity (so neither the value nor the gradient of the unused branch is inf or NaN)."""
    near = x.abs() < x_th
    safe = torch.where(near, torch.ones_like(x), x)
    return torch.where(near, small, large_fun(safe))


def _as_tensor(y_th, x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(y_th, dtype=x.dtype, device=x.device)


def _inv_odd(p: int):
    def fun(x: torch.Tensor, y_th) -> torch.Tensor:
        y_th = _as_tensor(y_th, x)
        x_th = y_th ** (-1.0 / p)
        return _where_small(x, x_th, y_th / x_th * x, lambda s: 1 / s**p)
    return fun


def _inv_even(p: int):
    def fun(x: torch.Tensor, y_th) -> torch.Tensor:
        y_th = _as_tensor(y_th, x)
        x_th = y_th ** (-1.0 / p)
        return _where_small(x, x_th, y_th.expand_as(x), lambda s: 1 / s**p)
    return fun


def _sqrt_singular(x: torch.Tensor, y_th) -> torch.Tensor:
    y_th = _as_tensor(y_th, x)
    x_th = 1 / y_th**2
    return _where_small(x, x_th, x_th / y_th * x, lambda s: s.abs().sqrt() * s.sign())


def _invsqrt_singular(x: torch.Tensor, y_th) -> torch.Tensor:
    y_th = _as_tensor(y_th, x)
    return _where_small(x, 1 / y_th**2, y_th.expand_as(x), lambda s: 1 / s.abs().sqrt())


def _log_singular(x: torch.Tensor, y_th) -> torch.Tensor:
    y_th = _as_tensor(y_th, x)
    return _where_small(x, torch.exp(-y_th), (-y_th).expand_as(x), lambda s: s.abs().log())


def _tan_singular(x: torch.Tensor, y_th) -> torch.Tensor:
    # tan is taken on x mod pi; within delta of the pole pi/2 it is the line through the two
    # points where tan reaches -y_th and y_th.
    y_th = _as_tensor(y_th, x)
    clip = torch.remainder(x, math.pi)
    delta = math.pi / 2 - torch.arctan(y_th)
    near = (clip - math.pi / 2).abs() < delta
    safe = torch.where(near, torch.zeros_like(clip), clip)
    return torch.where(near, -y_th / delta * (clip - math.pi / 2), torch.tan(safe))


def _arctanh_singular(x: torch.Tensor, y_th) -> torch.Tensor:
    y_th = _as_tensor(y_th, x)
    delta = 1 - torch.tanh(y_th) + 1e-4
    far = x.abs() > 1 - delta
    safe = torch.where(far, torch.zeros_like(x), x)
    return torch.where(far, y_th * x.sign(), torch.arctanh(safe))


def _arcsin_singular(x: torch.Tensor, y_th) -> torch.Tensor:
    out = x.abs() > 1
    return torch.where(out, math.pi / 2 * x.sign(), torch.arcsin(torch.where(out, torch.zeros_like(x), x)))


def _arccos_singular(x: torch.Tensor, y_th) -> torch.Tensor:
    out = x.abs() > 1
    return torch.where(out, math.pi / 2 * (1 - x.sign()), torch.arccos(torch.where(out, torch.zeros_like(x), x)))


def _exp_singular(x: torch.Tensor, y_th) -> torch.Tensor:
    y_th = _as_tensor(y_th, x)
    above = x > torch.log(y_th)
    return torch.where(above, y_th.expand_as(x), torch.exp(torch.where(above, torch.zeros_like(x), x)))


def _sp(name: str, transform: Callable | None = None) -> Callable:
    """A sympy form ``sympy.<name>(transform(x))``, importing sympy on first use (importing it
    with kanswap would add a quarter of a second, 0.28 of 1.4 s, to every ``import kanswap``)."""
    def form(x):
        import sympy

        return getattr(sympy, name)(transform(x) if transform else x)
    return form


def _plain(fun: Callable) -> Callable:
    """The singularity-avoiding form of a function without singularities: the function itself."""
    return lambda x, y_th: fun(x)


def _identity(x):
    return x


def _square(x):
    return x**2


def _cube(x):
    return x**3


def _pow4(x):
    return x**4


def _pow5(x):
    return x**5


def _inv(x):
    return 1 / x


def _inv2(x):
    return 1 / x**2


def _inv3(x):
    return 1 / x**3


def _inv4(x):
    return 1 / x**4


def _inv5(x):
    return 1 / x**5


def _pow1_5(x):
    return torch.sqrt(x) ** 3


def _invsqrt(x):
    return 1 / torch.sqrt(x)


def _zero(x):
    return x * 0


def _gaussian(x):
    # exp(-(x**2)) bitwise, in place on its own temporary: 1.15x faster on the fit's (4, 101, 101, 48) float32
    # and (20, 128, 409) float64 blocks (interleaved medians, 1 thread); autograd's saved tensors are unchanged
    return (x * x).neg_().exp_()


def _power_singular(x, y_th):
    return x.abs() ** 1.5


SYMBOLIC_LIB: dict[str, tuple] = {
    "x": (_identity, lambda x: x, 1, _plain(_identity)),
    "x^2": (_square, lambda x: x**2, 2, _plain(_square)),
    "x^3": (_cube, lambda x: x**3, 3, _plain(_cube)),
    "x^4": (_pow4, lambda x: x**4, 3, _plain(_pow4)),
    "x^5": (_pow5, lambda x: x**5, 3, _plain(_pow5)),
    "1/x": (_inv, lambda x: 1 / x, 2, _inv_odd(1)),
    "1/x^2": (_inv2, lambda x: 1 / x**2, 2, _inv_even(2)),
    "1/x^3": (_inv3, lambda x: 1 / x**3, 3, _inv_odd(3)),
    "1/x^4": (_inv4, lambda x: 1 / x**4, 4, _inv_even(4)),
    "1/x^5": (_inv5, lambda x: 1 / x**5, 5, _inv_odd(5)),
    "sqrt": (torch.sqrt, _sp("sqrt"), 2, _sqrt_singular),
    "x^0.5": (torch.sqrt, _sp("sqrt"), 2, _sqrt_singular),
    "x^1.5": (_pow1_5, lambda x: _sp("sqrt")(x) ** 3, 4, _power_singular),
    "1/sqrt(x)": (_invsqrt, lambda x: 1 / _sp("sqrt")(x), 2, _invsqrt_singular),
    "1/x^0.5": (_invsqrt, lambda x: 1 / _sp("sqrt")(x), 2, _invsqrt_singular),
    "exp": (torch.exp, _sp("exp"), 2, _exp_singular),
    "log": (torch.log, _sp("log"), 2, _log_singular),
    "abs": (torch.abs, _sp("Abs"), 3, _plain(torch.abs)),
    "sin": (torch.sin, _sp("sin"), 2, _plain(torch.sin)),
    "cos": (torch.cos, _sp("cos"), 2, _plain(torch.cos)),
    "tan": (torch.tan, _sp("tan"), 3, _tan_singular),
    "tanh": (torch.tanh, _sp("tanh"), 3, _plain(torch.tanh)),
    "sgn": (torch.sign, _sp("sign"), 3, _plain(torch.sign)),
    "arcsin": (torch.arcsin, _sp("asin"), 4, _arcsin_singular),
    "arccos": (torch.arccos, _sp("acos"), 4, _arccos_singular),
    "arctan": (torch.arctan, _sp("atan"), 4, _plain(torch.arctan)),
    "arctanh": (torch.arctanh, _sp("atanh"), 4, _arctanh_singular),
    "0": (_zero, lambda x: x * 0, 0, _plain(_zero)),
    "gaussian": (_gaussian, _sp("exp", lambda x: -(x**2)), 3, _plain(_gaussian)),
}


def add_symbolic(name: str, fun: Callable, c: float = 1, fun_singularity: Callable | None = None) -> None:
    """Add (or replace) library entry ``name``: torch function ``fun``, complexity ``c``, and as
    sympy form an undefined sympy function ``name(x)`` (pykan's behaviour). Without
    ``fun_singularity`` the singularity-avoiding forward uses ``fun`` itself."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"add_symbolic: name must be a non-empty string, got {name!r}")
    if not callable(fun):
        raise TypeError(f"add_symbolic: fun must be callable, got {type(fun).__name__}")
    import sympy

    SYMBOLIC_LIB[name] = (fun, sympy.Function(name), c, fun_singularity if fun_singularity is not None else _plain(fun))


def lib_entry(name: str) -> tuple:
    """The library entry of ``name``; a clear error for unknown names."""
    if not isinstance(name, str) or name not in SYMBOLIC_LIB:
        raise ValueError(f"unknown symbolic function {name!r}; the library has {list(SYMBOLIC_LIB)} "
                         "(add your own with kanswap.symbolic_lib.add_symbolic)")
    return SYMBOLIC_LIB[name]


def resolve_lib(lib: Sequence[str] | None) -> dict[str, tuple]:
    """``lib`` (names, or None for the whole library) as an ordered {name: entry}."""
    if lib is None:
        return dict(SYMBOLIC_LIB)
    if isinstance(lib, str) or not isinstance(lib, Sequence) or len(lib) == 0:
        raise ValueError(f"lib must be a non-empty list of function names, got {lib!r}")
    return {name: lib_entry(name) for name in lib}


def singular_value(fun: Callable, x: torch.Tensor, y_th) -> torch.Tensor:
    """A singularity-avoiding function's value: pykan's return ``(aux, value)``, kanswap's the value."""
    out = fun(x, y_th)
    return out[1] if isinstance(out, tuple) else out
