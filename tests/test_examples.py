"""examples/majority_workflow.py (the reference workflow with kanswap's API) runs, with few steps."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_majority_workflow_example_runs(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "majority_workflow.py"), "--kan-steps", "4",
                           "--mlp-steps", "5", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for line in ("KAN fitted: test accuracy", "after auto_swap: connection cost", "layer 0: modules", "MLP: test"):
        assert line in out, out
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"kan_fitted.png", "kan_swapped.png", "mlp_swapped.png"} <= names
    assert ("kan_pruned.png" in names) == ("pruned: width" in out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing written elsewhere
