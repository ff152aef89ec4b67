"""kanswap's own L-BFGS on one flat parameter vector, with pykan's settings.

The algorithm is the one of ``torch.optim.LBFGS`` (two-loop recursion over the last ``history_size``
curvature pairs, strong-Wolfe line search with cubic interpolation, ``max_iter`` iterations and
``max_eval`` evaluations per ``step``), written here for two reasons:

- it is not a ``torch.optim.Optimizer``: building one imports ``torch._dynamo`` (1.7 s on an idle
  2-core machine, 4 s on a loaded one: more than a whole 20-step reference fit);
- the curvature threshold is a parameter: a pair (s, y) is kept when ``y.s > tolerance_ys``. torch
  hard-codes 1e-10; pykan's copy uses 1e-32, and near the optimum of a float64 fit the pairs have
  y.s ~ 1e-12: dropping them stalls a fit of x*y at train RMSE 1e-4 where pykan reaches 6e-10.

It works on tensors it does not own: ``x`` (the flat parameters, updated in place) and ``g`` (the
flat gradient, written by the objective). Scalars (step length, losses, curvatures) are Python
floats, so float32 fits use double-precision scalar arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .kernels import lbfgs_cpu

__all__ = ["LBFGS", "cubic_minimum", "strong_wolfe"]


def cubic_minimum(t1: float, f1: float, g1: float, t2: float, f2: float, g2: float,
                  lo: float | None = None, hi: float | None = None) -> float:
    """Minimiser of the cubic through (t1, f1) and (t2, f2) with slopes g1, g2, clamped to [lo, hi]
    (default: the interval between t1 and t2); the interval's midpoint when the cubic has none."""
    if lo is None:
        lo, hi = min(t1, t2), max(t1, t2)
    d1 = g1 + g2 - 3.0 * (f1 - f2) / (t1 - t2)
    disc = d1 * d1 - g1 * g2
    if disc < 0:
        return (lo + hi) / 2.0
    d2 = disc ** 0.5
    if t1 <= t2:
        t = t2 - (t2 - t1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
    else:
        t = t1 - (t1 - t2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
    return min(max(t, lo), hi)


def strong_wolfe(evaluate: Callable[[float], tuple[float, torch.Tensor]], d: torch.Tensor, t: float, f: float,
                 g: torch.Tensor, gtd: float, c1: float = 1e-4, c2: float = 0.9, tolerance_change: float = 1e-9,
                 max_ls: int = 25) -> tuple[float, torch.Tensor, float, int]:
    """Line search along d (n,) from f, g (n,), gtd = g.d < 0, first trial step t.

    evaluate(t) returns the objective and a gradient (n,) it will not overwrite at x0 + t d.
    Returns (f, g, t, evaluations) at the accepted step: sufficient decrease (c1) and strong
    curvature (c2) when found within ``max_ls`` evaluations, else the best bracket end.
    """
    d_norm = d.abs().max().item()
    f_new, g_new = evaluate(t)
    evals = 1
    gtd_new = g_new.dot(d).item()
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    ls_iter = 0
    # Phase 1: grow the step until the minimum is bracketed (or the conditions hold).
    while ls_iter < max_ls:
        if f_new > f + c1 * t * gtd or (ls_iter > 1 and f_new >= f_prev):
            bracket = [(t_prev, f_prev, g_prev, gtd_prev), (t, f_new, g_new, gtd_new)]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, done = [(t, f_new, g_new, gtd_new)], True
            break
        if gtd_new >= 0:
            bracket = [(t_prev, f_prev, g_prev, gtd_prev), (t, f_new, g_new, gtd_new)]
            break
        t_next = cubic_minimum(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, t + 0.01 * (t - t_prev), t * 10)
        t_prev, f_prev, g_prev, gtd_prev = t, f_new, g_new, gtd_new
        t = t_next
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = g_new.dot(d).item()
        ls_iter += 1
    if ls_iter == max_ls:
        bracket = [(0.0, f, g, gtd), (t, f_new, g_new, gtd_new)]

    # Phase 2: zoom into the bracket (entries: step, objective, gradient, slope).
    insufficient = False
    low, high = (0, 1) if bracket[0][1] <= bracket[-1][1] else (1, 0)
    while not done and ls_iter < max_ls:
        (ta, fa, _, sa), (tb, fb, _, sb) = bracket
        if abs(tb - ta) * d_norm < tolerance_change:
            break
        t = cubic_minimum(ta, fa, sa, tb, fb, sb)
        lo_t, hi_t = min(ta, tb), max(ta, tb)
        eps = 0.1 * (hi_t - lo_t)
        # Keep the trial away from the bracket's ends unless the previous trial was already there.
        if min(hi_t - t, t - lo_t) < eps:
            if insufficient or t >= hi_t or t <= lo_t:
                t = hi_t - eps if abs(t - hi_t) < abs(t - lo_t) else lo_t + eps
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = g_new.dot(d).item()
        ls_iter += 1
        if f_new > f + c1 * t * gtd or f_new >= bracket[low][1]:
            bracket[high] = (t, f_new, g_new, gtd_new)
            low, high = (0, 1) if bracket[0][1] <= bracket[1][1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high][0] - bracket[low][0]) >= 0:
                bracket[high] = bracket[low]
            bracket[low] = (t, f_new, g_new, gtd_new)
    t, f_new, g_new, _ = bracket[low]
    return f_new, g_new, t, evals


class LBFGS:
    """L-BFGS on the flat vector ``x`` (n,), whose gradient the objective writes into ``g`` (n,).

    ``step(objective)``: objective() evaluates at the current ``x``, writes the gradient into ``g``
    and returns the objective as a float. Each step runs up to ``max_iter`` iterations and
    ``max_eval`` (default max_iter * 5 // 4) evaluations; the history carries over between steps.
    Defaults are pykan's fit: lr 1, history 10, strong Wolfe, every tolerance 1e-32.
    ``max_ls_budget``: cap each line search at the step's remaining evaluations (as
    ``torch.optim.LBFGS`` does since torch 2.x) instead of pykan's fixed 25.
    """

    def __init__(self, x: torch.Tensor, g: torch.Tensor, lr: float = 1.0, max_iter: int = 20,
                 max_eval: int | None = None, history_size: int = 10, tolerance_grad: float = 1e-32,
                 tolerance_change: float = 1e-32, tolerance_ys: float = 1e-32, line_search: str | None = "strong_wolfe",
                 max_ls_budget: bool = False):
        if x.dim() != 1 or g.shape != x.shape:
            raise ValueError(f"x and g must be flat vectors of one shape, got {tuple(x.shape)} and {tuple(g.shape)}")
        if line_search not in ("strong_wolfe", None):
            raise ValueError(f"line_search must be 'strong_wolfe' or None, got {line_search!r}")
        if history_size < 1 or max_iter < 1:
            raise ValueError(f"history_size and max_iter must be >= 1, got {history_size}, {max_iter}")
        self.x, self.g = x, g
        # the two-loop recursion compiled: ~40 torch ops and 20 host syncs per iteration otherwise (10 pairs
        # of 641 entries, the reference MLP's: 61 against 8.2 us compiled, bench/fit_parts.py)
        self._compiled = lbfgs_cpu.available(g)
        self._pairs: lbfgs_cpu.Pairs | None = None
        self.lr, self.max_iter = float(lr), max_iter
        self.max_eval = max_iter * 5 // 4 if max_eval is None else max_eval
        self.history_size = history_size
        self.tolerance_grad, self.tolerance_change, self.tolerance_ys = tolerance_grad, tolerance_change, tolerance_ys
        self.line_search, self.max_ls_budget = line_search, max_ls_budget
        self.n_iter = self.func_evals = 0
        self.dirs: list[torch.Tensor] = []   # y_i = g_{i+1} - g_i
        self.steps: list[torch.Tensor] = []  # s_i = x_{i+1} - x_i
        self.rho: list[float] = []           # 1 / (y_i . s_i)
        self.h_diag = 1.0
        self.d: torch.Tensor | None = None
        self.t = 0.0
        self.prev_g: torch.Tensor | None = None

    def _direction(self, g: torch.Tensor) -> torch.Tensor:
        """-H g by the two-loop recursion over the stored pairs, H0 = h_diag I: one compiled call on a
        CPU where the library is built (the dot products summed in double), torch ops otherwise."""
        if self._compiled:
            if self._pairs is None:  # rebuilt when the pairs change (_remember, a restart)
                self._pairs = lbfgs_cpu.pairs(self.steps, self.dirs, self.rho)
            return lbfgs_cpu.direction(g, self._pairs, self.h_diag)
        q = g.neg()
        alpha = [0.0] * len(self.dirs)
        for i in range(len(self.dirs) - 1, -1, -1):
            alpha[i] = self.steps[i].dot(q).item() * self.rho[i]
            q.add_(self.dirs[i], alpha=-alpha[i])
        r = q.mul_(self.h_diag)
        for i in range(len(self.dirs)):
            beta = self.dirs[i].dot(r).item() * self.rho[i]
            r.add_(self.steps[i], alpha=alpha[i] - beta)
        return r

    def _remember(self, g: torch.Tensor) -> None:
        """Store the pair from the last move (s = t d, y = g - g_prev) if its curvature y.s exceeds
        tolerance_ys; drop the oldest beyond history_size."""
        y = g.sub(self.prev_g)
        s = self.d.mul(self.t)
        ys = y.dot(s).item()
        if ys > self.tolerance_ys:
            if len(self.dirs) == self.history_size:
                self.dirs.pop(0)
                self.steps.pop(0)
                self.rho.pop(0)
            self.dirs.append(y)
            self.steps.append(s)
            self.rho.append(1.0 / ys)
            self._pairs = None
            self.h_diag = ys / y.dot(y).item()

    def step(self, objective: Callable[[], float]) -> float:
        """Up to max_iter L-BFGS iterations; returns the objective at the starting point."""
        x, g_buf = self.x, self.g
        first_loss = loss = float(objective())
        evals = 1
        self.func_evals += 1
        g = g_buf.clone()
        if g.abs().max().item() <= self.tolerance_grad:
            return first_loss
        x0 = torch.empty_like(x)

        def along(t: float) -> tuple[float, torch.Tensor]:
            torch.add(x0, self.d, alpha=t, out=x)
            f = float(objective())
            return f, g_buf.clone()

        it = 0
        while it < self.max_iter:
            it += 1
            self.n_iter += 1
            if self.n_iter == 1:
                self.d = g.neg()
                self.dirs, self.steps, self.rho, self.h_diag = [], [], [], 1.0
                self._pairs = None
            else:
                self._remember(g)
                self.d = self._direction(g)
            if self.prev_g is None:
                self.prev_g = g.clone()
            else:
                self.prev_g.copy_(g)
            prev_loss = loss
            # pykan's (and torch's) first trial step: 1 / |g|_1, capped at lr.
            self.t = min(1.0, 1.0 / g.abs().sum().item()) * self.lr if self.n_iter == 1 else self.lr
            gtd = g.dot(self.d).item()
            if gtd > -self.tolerance_change:
                break
            if self.line_search == "strong_wolfe":
                x0.copy_(x)
                max_ls = self.max_eval - evals if self.max_ls_budget else 25
                loss, g, self.t, ls_evals = strong_wolfe(along, self.d, self.t, loss, g, gtd, max_ls=max_ls)
                torch.add(x0, self.d, alpha=self.t, out=x)
            else:
                x.add_(self.d, alpha=self.t)
                ls_evals = 0
                if it != self.max_iter:
                    loss = float(objective())
                    g = g_buf.clone()
                    ls_evals = 1
            evals += ls_evals
            self.func_evals += ls_evals
            if it == self.max_iter or evals >= self.max_eval:
                break
            if g.abs().max().item() <= self.tolerance_grad:
                break
            if self.d.abs().max().item() * abs(self.t) <= self.tolerance_change:
                break
            if abs(loss - prev_loss) < self.tolerance_change:
                break
        return first_loss
