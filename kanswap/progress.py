"""Whether and how ``fit`` shows its progress: a tqdm bar on a terminal, a bar in a Jupyter
notebook, nothing when the output is piped or redirected.

A notebook's stderr is no terminal, so a check of ``isatty`` alone left ``fit`` silent in Jupyter,
where pykan shows a live loss bar. In a Jupyter kernel the bar is tqdm's notebook widget when
ipywidgets is installed, else tqdm's text bar, which the notebook redraws in place (one line per
fit, updated at most every 0.1 s: a 20-step fit writes ~20 updates, not a flood).
"""

from __future__ import annotations

import os
import sys

__all__ = ["in_jupyter", "show_progress", "progress_bar"]


def in_jupyter() -> bool:
    """True inside a Jupyter (ipykernel) kernel; False in scripts, plain IPython and pipes."""
    if "ipykernel" not in sys.modules:  # not imported: certainly no kernel (and IPython stays unimported)
        return False
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - ipykernel depends on IPython
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def show_progress(progress: bool | None) -> bool:
    """Whether fit shows its progress bar: ``progress`` if given, else on when stderr is a terminal
    or the code runs in a Jupyter kernel, and the environment variable ``KANSWAP_PROGRESS`` is not
    ``0``."""
    if progress is not None:
        return bool(progress)
    if os.environ.get("KANSWAP_PROGRESS", "").strip() == "0":
        return False
    if in_jupyter():
        return True
    return sys.stderr is not None and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def progress_bar(steps: int, enabled: bool):
    """A tqdm bar over ``range(steps)``: the notebook widget in Jupyter when ipywidgets is
    installed, else tqdm's text bar on stderr (100 columns); ``disable=True`` when not enabled."""
    if enabled and in_jupyter():
        try:
            import ipywidgets  # noqa: F401  (tqdm.notebook needs it)
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm(range(steps))
        except ImportError:
            pass
    from tqdm import tqdm

    return tqdm(range(steps), ncols=100, disable=not enabled)
