"""The two pykan reference scripts run on kanswap with only their import lines changed.

Each script is read from ``shared/reference/`` beside the repository, its imports are swapped
(``from kan import *`` -> ``from kanswap import *``, ``from kan.MLP import MLP`` ->
``from kanswap import MLP``), and it is executed in stages in an empty working directory, checking
accuracy after fit, the connection cost after auto_swap, the pruned model, and that nothing was
written to disk (pykan writes ./model, ./figures; kanswap writes nothing unless asked).
"""

import re
import time
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
IMPORTS = {
    "from kan import *": "from kanswap import *",
    "from kan.MLP import MLP": "from kanswap import MLP",
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _script(name: str, imports: tuple[str, ...]) -> tuple[Path, str]:
    path = REFERENCE / name
    if not path.is_file():
        pytest.skip(f"reference script {path} not found (expected in shared/reference/ beside the repository)")
    text = path.read_text()
    for old in imports:
        # whole lines only: the scripts' header comments quote the same statements
        pattern = re.compile(rf"^{re.escape(old)}[ \t]*$", re.MULTILINE)
        text, n = pattern.subn(IMPORTS[old], text)
        assert n == 1, f"{name}: expected exactly one line {old!r}, found {n}"
    for old in IMPORTS:
        assert not re.search(rf"^\s*{re.escape(old)}", text, re.MULTILINE), f"{name}: {old!r} is still imported"
    assert not re.search(r"^\s*(from kan\b|import kan\b)", text, re.MULTILINE), f"{name}: still imports pykan"
    return path, text


def _split(text: str, *starts: str) -> list[str]:
    """Cut the script before the first line starting with each of ``starts`` (in order)."""
    lines = text.splitlines(keepends=True)
    parts, begin = [], 0
    for start in starts:
        at = next((i for i in range(begin, len(lines)) if lines[i].startswith(start)), None)
        assert at is not None, f"no line starting with {start!r} in the script"
        parts.append("".join(lines[begin:at]))
        begin = at
    parts.append("".join(lines[begin:]))
    return parts


class _Script:
    """Runs a script part by part in one namespace, timing each part; blank lines in front of each
    part keep the script's own line numbers in tracebacks."""

    def __init__(self, path: Path):
        self.path = path
        self.ns = {"__name__": "__reference__", "__file__": str(path)}
        self.lines = 0
        self.seconds: dict[str, float] = {}

    def run(self, code: str, stage: str) -> dict:
        t = time.perf_counter()
        exec(compile("\n" * self.lines + code, str(self.path), "exec"), self.ns)
        self.seconds[stage] = round(time.perf_counter() - t, 2)
        self.lines += code.count("\n")
        return self.ns


def _accuracies(ns: dict) -> tuple[float, float]:
    # train then test: cache_data ends as the test input, as after the script's fit
    return float(ns["train_acc"]()), float(ns["test_acc"]())


def test_kan_reference_script(tmp_path, monkeypatch, capsys):
    import matplotlib.pyplot as plt

    path, text = _script("swap_kan_pykan.py", ("from kan import *",))
    setup, swap, prune = _split(text, "model.auto_swap()", "model = model.prune(")
    monkeypatch.chdir(tmp_path)
    script = _Script(path)
    ns = script.run(setup, "fit")
    import kanswap

    assert isinstance(ns["model"], kanswap.KAN)
    assert _accuracies(ns) == (1.0, 1.0)
    cost_before = float(ns["model"].copy().connection_cost)

    script.run(swap, "auto_swap + plot")
    swapped = ns["model"]
    assert float(swapped.copy().connection_cost) < cost_before
    assert _accuracies(ns) == (1.0, 1.0)  # a swap leaves the function unchanged

    script.run(prune, "prune + plot")
    pruned = ns["model"]
    assert pruned is not swapped
    assert pruned.width_in[0] == 9 and pruned.width_in[-1] == 1
    assert all(1 <= n < 10 for n in pruned.width_in[1:-1]), pruned.width_in
    assert _accuracies(ns) == (1.0, 1.0)  # mean compensation (pykan: 0.84, D8)
    assert len(plt.get_fignums()) == 2  # the two model.plot() calls, left open as pyplot's figures

    assert sorted(p.name for p in tmp_path.iterdir()) == [], "the script wrote files"
    assert capsys.readouterr().out.splitlines()[0] == ("cuda" if torch.cuda.is_available() else "cpu")
    print(script.seconds)


@pytest.mark.slow
def test_mlp_reference_script(tmp_path, monkeypatch):
    """1000 LBFGS steps: measured 50 s (one thread, load 5 on 2 cores) up to ~180 s on a busier machine;
    pykan 0.2.8 takes 45 s on an idle one."""
    import matplotlib.pyplot as plt

    path, text = _script("swap_mlp_pykan.py", ("from kan import *", "from kan.MLP import MLP"))
    setup, rest = _split(text, "model.plot(")
    assert "model.auto_swap()" in rest
    monkeypatch.chdir(tmp_path)
    script = _Script(path)
    ns = script.run(setup, "fit")
    import kanswap

    model = ns["model"]
    assert isinstance(model, kanswap.MLP)
    assert _accuracies(ns) == (1.0, 1.0)
    cost_before = float(model.connection_cost)

    script.run(rest, "plot + auto_swap + plot")
    assert ns["model"] is model
    assert float(model.connection_cost) < cost_before
    assert _accuracies(ns) == (1.0, 1.0)
    assert len(plt.get_fignums()) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "the script wrote files"
    print(script.seconds)
