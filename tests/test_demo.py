"""``kanswap demo`` / ``python -m kanswap``: the end-to-end run, usage, errors."""

import json
import subprocess
import sys

import pytest
import torch

from kanswap import demo
from kanswap.__main__ import main

FIGURES = ["kan_before_swap.svg", "kan_after_swap.svg", "kan_pruned.svg", "mlp_after_swap.svg", "summary.svg"]
STAGES = ["KAN fit", "KAN swap greedy", "KAN swap optimal", "KAN prune", "KAN prune uncompensated",
          "MLP fit", "MLP swap greedy", "MLP swap optimal"]


def test_console_script_entry_point_is_demo_main():
    assert main is demo.main  # pyproject: kanswap = "kanswap.__main__:main"


def test_quick_demo_writes_figures_and_results(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        assert main(["demo", "--quick", "--format", "svg", "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)  # the demo sets --threads (default 1)
    for name in FIGURES:
        path = tmp_path / name
        assert path.is_file() and path.stat().st_size > 1000, name
        svg = path.read_text()
        assert "<svg" in svg and "<image" not in svg, name  # vector graphics only, no bitmaps
    summary = (tmp_path / "summary.svg").read_text()
    assert 'width="504pt"' in summary  # 7 in, saved at its size (not cropped), so fonts print as set
    results = json.loads((tmp_path / "results.json").read_text())
    assert [row["stage"] for row in results["stages"]] == STAGES
    assert results["config"]["kan_steps"] == 5 and results["config"]["mlp_steps"] == 100
    assert results["figures"] == FIGURES
    rows = {row["stage"]: row for row in results["stages"]}
    for row in rows.values():
        assert 0.0 <= row["train_acc"] <= 1.0 and 0.0 <= row["test_acc"] <= 1.0
        assert row["connection_cost"] >= 0.0 and row["seconds"] >= 0.0
    assert rows["KAN fit"]["width"] == [9, 10, 10, 1] and rows["MLP fit"]["width"] == [9, 20, 20, 1]
    # swaps only reorder neurons: same accuracy, lower cost, and optimal never above greedy
    for kind in ("KAN", "MLP"):
        fit, greedy, optimal = rows[f"{kind} fit"], rows[f"{kind} swap greedy"], rows[f"{kind} swap optimal"]
        assert greedy["train_acc"] == optimal["train_acc"] == fit["train_acc"]
        assert optimal["connection_cost"] <= greedy["connection_cost"] + 1e-6 < fit["connection_cost"]
    pruned, raw = rows["KAN prune"], rows["KAN prune uncompensated"]
    assert pruned["width"] == raw["width"] and pruned["width"][0] == 9 and pruned["width"][-1] == 1
    assert pruned["train_acc"] >= raw["train_acc"]
    out = capsys.readouterr().out
    for stage in STAGES:
        assert stage in out  # the printed table
    # the modules it finds, printed and saved
    assert results["modules"].startswith("layer 1: ") and results["modules"] in out


def test_help_and_usage(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: kanswap" in out and "demo" in out
    assert main([]) == 0  # no subcommand: usage
    assert "usage: kanswap" in capsys.readouterr().out
    assert main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--out", "--device", "--steps", "--seed", "--quick"):
        assert option in out


@pytest.mark.parametrize("argv", [["demo", "--bogus"], ["demo", "--steps", "0"], ["demo", "--device", "tpu"],
                                  ["frobnicate"]])
def test_bad_arguments_exit_2(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage: kanswap" in err and "error:" in err
    assert list(tmp_path.iterdir()) == []


def test_cuda_without_cuda_exits_2(capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    out = tmp_path / "out"
    assert main(["demo", "--device", "cuda", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and "--device cpu" in err
    assert not out.exists()


def test_python_dash_m_help():
    proc = subprocess.run([sys.executable, "-m", "kanswap", "demo", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: kanswap demo" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "kanswap", "demo", "--nope"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "unrecognized arguments: --nope" in proc.stderr


@pytest.mark.parametrize("kind", ["proc", "under_a_file"])
def test_unwritable_out_is_one_line_before_training(kind, tmp_path, capsys):
    """Before: an unwritable --out failed after the whole run with a 30-line traceback (and the
    table was lost); --out /proc/x gave a raw FileNotFoundError. Now one line, before any training."""
    if kind == "proc":
        out = "/proc/kanswap-demo-out"
    else:
        (tmp_path / "a_file").write_text("x")
        out = str(tmp_path / "a_file" / "out")
    assert main(["demo", "--quick", "--out", out]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing trained, nothing printed
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"kanswap demo: error: --out {out!r} is not a writable folder:")


def test_misspelt_demo_option_prints_the_demo_usage(capsys):
    """Before: `kanswap demo --stpes 3` printed the top-level usage. Now the demo's own."""
    assert main(["demo", "--stpes", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: kanswap demo ") and "--mlp-steps" in err
    assert "kanswap demo: error: unrecognized arguments: --stpes 3" in err


def test_version_does_not_import_torch():
    """`kanswap --version` took 2 s importing torch; the package imports it only when a model is used."""
    code = ("import sys; from kanswap.__main__ import main; rc = main(['--version']); "
            "print(rc, 'torch' in sys.modules, 'matplotlib' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "0 False False"
    assert proc.stdout.startswith("kanswap ")
