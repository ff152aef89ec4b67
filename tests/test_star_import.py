"""``from kanswap import *`` gives a pykan tutorial's first cell what it needs; ``import kanswap``
stays light; the folder-above-the-clone hazard the README warns about is real."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_star_import_gives_the_tutorial_names():
    """Before: the first cell of pykan's tutorials failed with NameError: name 'torch' is not defined."""
    import matplotlib.pyplot
    import numpy
    import torch

    import kanswap

    namespace: dict = {}
    exec("from kanswap import *", namespace)
    assert namespace["torch"] is torch and namespace["np"] is numpy and namespace["plt"] is matplotlib.pyplot
    assert namespace["nn"] is torch.nn
    for name in ("KAN", "MultKAN", "KANLayer", "KANLinear", "MLP", "create_dataset", "create_dataset_from_data"):
        assert namespace[name] is getattr(kanswap, name)
    assert namespace["MultKAN"] is namespace["KAN"]
    assert "majority_dataset" not in namespace and callable(kanswap.majority_dataset)  # not pykan's name
    assert set(kanswap.__all__) <= set(dir(kanswap))
    with pytest.raises(AttributeError, match="module 'kanswap' has no attribute 'nope'"):
        kanswap.nope  # noqa: B018


def test_import_kanswap_imports_no_torch_until_used():
    code = ("import sys, kanswap; print('torch' in sys.modules); "
            "from kanswap.checkpoint import load_model; from kanswap import model_kinds; "
            "print(model_kinds.kinds())")  # checkpoint lookups import the model classes on demand
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["False", "['KAN', 'MLP']"]


def test_folder_holding_the_clone_shadows_an_editable_install(tmp_path):
    """What the README's limits warn about: from the folder holding a clone named ``kanswap``,
    ``import kanswap`` finds that folder as an empty namespace package (editable installs only;
    this test checks the warning is still true where the suite runs from an editable install)."""
    import kanswap

    if not str(Path(kanswap.__file__).resolve()).startswith(str(ROOT)):
        pytest.skip("kanswap is not installed from this clone (editable)")
    (tmp_path / "kanswap").mkdir()
    (tmp_path / "kanswap" / "README.md").write_text("a clone's top folder has no __init__.py\n")
    code = "import kanswap; print(getattr(kanswap, '__file__', None)); from kanswap import *; print('KAN' in dir())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["None", "False"]
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "not from the folder that holds it" in readme
