"""kanswap's figures in Jupyter: each shown once, where pykan's are shown.

pykan's ``plot`` returns None and leaves its figure open: the inline backend shows every open
figure when the cell ends. kanswap's ``plot`` returns the Figure as well, so a cell ending in
``model.plot()`` showed it twice, once as the cell's result and once at the end of the cell.
Closing the figure before returning it (tried first) loses a figure drawn in the middle of a cell
(``model.plot(); model.fit(...)``: shown by pykan, by nothing then) and makes ``plt.savefig`` after
``plot()`` save an empty figure. Here the figure stays open and current, exactly as pykan's; only
when IPython shows it as a cell's result is it closed, after its image is made, so the end of
the cell does not show it again. Outside IPython's inline backend nothing changes.
"""

from __future__ import annotations

import functools
import sys

from matplotlib.figure import Figure  # not pyplot: importing this module selects no backend

__all__ = ["PlotFigure", "new_figure", "hand_over"]

_IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "application/pdf")


class PlotFigure(Figure):
    """A figure drawn by kanswap (``plot``, ``plot_summary``, ``tree``): a matplotlib Figure that,
    shown as a notebook cell's result, is closed so the inline backend does not show it again."""


def new_figure(**kwargs):
    """``plt.figure(**kwargs)`` of class ``PlotFigure``: a pyplot figure, open and current."""
    import matplotlib.pyplot as plt

    return plt.figure(FigureClass=PlotFigure, **kwargs)


def _image_then_close(formatter, fig):
    """The image IPython's ``formatter`` makes of any Figure; then ``fig`` is closed (if open), so
    the backend's end-of-cell display of open figures skips it."""
    try:
        printer = formatter.lookup_by_type(Figure)  # looked up now: %config may change the formats
    except KeyError:
        return None
    try:
        return printer(fig)
    finally:
        import matplotlib.pyplot as plt

        if getattr(fig, "number", None) in plt.get_fignums():
            plt.close(fig)


def hand_over(fig) -> None:
    """Make ``fig`` show once in Jupyter's inline backend (see the module docstring); outside
    IPython, or with another backend, nothing is done and the figure stays open and current as
    pykan leaves it (``plt.savefig``, ``plt.show`` work after it)."""
    if "IPython" not in sys.modules:
        return
    import matplotlib

    if "inline" not in str(matplotlib.get_backend()).lower():
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    cls = type(fig)
    for mime in _IMAGE_TYPES:
        formatter = shell.display_formatter.formatters.get(mime)
        if formatter is not None and cls not in formatter.type_printers:
            formatter.for_type(cls, functools.partial(_image_then_close, formatter))
