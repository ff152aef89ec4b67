"""A notebook of pykan tutorial cells, with only the import line changed, run top to bottom in a
Jupyter kernel (nbclient + ipykernel): one figure per plot call (at the end of a cell, in the
middle of one, kept in a variable and shown later), ``plt.savefig`` after ``plot()`` as with pykan,
a progress bar per fit, the star import giving torch/np/plt, pykan's original input names after
``prune_input``. No symbolic cells.

Cells follow pykan 0.2.8's tutorials (hello KAN: fit, plot, prune, refine; pruning inputs and
naming them); step counts are small so the run takes seconds."""

import re

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

CELLS = [
    # 0: a tutorial's first cell, `from kan import *` -> `from kanswap import *`
    "from kanswap import *\n"
    "torch.set_default_dtype(torch.float64)\n"
    "device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')\n"
    "print(device)",
    # 1
    "model = KAN(width=[2,5,1], grid=3, k=3, seed=42, device=device)\n"
    "f = lambda x: torch.exp(torch.sin(torch.pi*x[:,[0]]) + x[:,[1]]**2)\n"
    "dataset = create_dataset(f, n_var=2, device=device)\n"
    "dataset['train_input'].shape, dataset['train_label'].shape",
    # 2: plot KAN at initialization
    "model(dataset['train_input']);\nmodel.plot()",
    # 3
    "model.fit(dataset, opt=\"LBFGS\", steps=8, lamb=0.001);",
    # 4
    "model.plot()",
    # 5
    "model = model.prune()\nmodel.plot()",
    # 6
    "model.fit(dataset, opt=\"LBFGS\", steps=6);",
    # 7
    "model = model.refine(5)\nmodel.fit(dataset, opt=\"LBFGS\", steps=4);",
    # 8: a plain matplotlib cell
    "x = torch.linspace(-1, 1, steps=101)[:, None]\n"
    "plt.plot(x[:, 0].cpu().numpy(), np.sin(np.pi * x[:, 0].cpu().numpy()))",
    # 9: inputs that do not matter, pruned, then named with the original names
    "f = lambda x: torch.exp(torch.sin(torch.pi*x[:,[0]]) + x[:,[3]]**2)\n"
    "dataset = create_dataset(f, n_var=4, device=device)\n"
    "model = KAN(width=[4,3,1], grid=3, k=3, seed=1, device=device)\n"
    "model.fit(dataset, opt=\"LBFGS\", steps=6, lamb=0.01);",
    # 10
    "model = model.prune_input(active_inputs=[0, 3])\n"
    "model(dataset['train_input'])\n"
    "model.plot(in_vars=[r'$x_1$', r'$x_2$', r'$x_3$', r'$x_4$'], out_vars=[r'$y$'], title='pruned inputs')",
    # 11: the module report reads as the drawing
    "print(model.find_modules())",
    # 12: two plots in one cell, the first mid-cell (pykan shows both)
    "model.plot(title='first')\nmodel.plot(title='second')",
    # 13: a plot, then saved through pyplot, as with pykan (the figure is still the current one)
    "model.plot()\nplt.savefig('after_plot.png')",
    # 14: (check) the saved file holds the drawing, not an empty figure
    "import matplotlib.image\nprint('drawn:', (matplotlib.image.imread('after_plot.png')[..., :3] < 0.5).any())",
    # 15, 16: a figure kept in a variable (no cell result), shown again in a later cell
    "fig = model.plot(title='kept')",
    "fig",
    # 17: a semicolon hides the result; the figure still shows once
    "model.plot();",
]
PLOT_CELLS = {2, 4, 5, 8, 10, 13, 15, 16, 17}
TWO_PLOT_CELLS = {12}
FIT_CELLS = {3: 8, 6: 6, 7: 4, 9: 6}  # cell -> steps


def _text(output) -> str:
    return output.get("text", "") if output.get("output_type") == "stream" else ""


def _final_lines(text: str) -> list[str]:
    """What a notebook shows of a stream: each line's text after its last carriage return."""
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n") if line.rsplit("\r", 1)[-1].strip()]


@pytest.mark.slow
def test_pykan_tutorial_notebook_runs_unchanged(tmp_path, monkeypatch):
    # the kernel picks its own (inline) backend, as a user's Jupyter does; no progress switch set
    for name in ("MPLBACKEND", "KANSWAP_PROGRESS"):
        monkeypatch.delenv(name, raising=False)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell's traceback, if any cell fails

    for k, cell in enumerate(nb.cells):
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        assert not errors, (k, errors)
        want = 2 if k in TWO_PLOT_CELLS else 1 if k in PLOT_CELLS else 0
        assert len(images) == want, f"cell {k}: {len(images)} figures, expected {want}"
        stderr = "".join(_text(o) for o in cell.outputs if o.get("name") == "stderr")
        if k in FIT_CELLS:  # one progress bar per fit, ending at its last step
            steps = FIT_CELLS[k]
            shown = _final_lines(stderr)
            assert len(shown) == 1 and f"{steps}/{steps}" in shown[0], (k, stderr[-500:])
            assert stderr.count("\n") <= 1  # redrawn in place, not a line per update
        else:
            assert "Warning" not in stderr and "Error" not in stderr, (k, stderr)

    stdout = "".join(_text(o) for o in nb.cells[0].outputs)
    assert stdout.strip() in ("cpu", "cuda")
    report = "".join(_text(o) for o in nb.cells[11].outputs)
    assert re.match(r"layer 1: \{x1", report) and "layer 2:" in report
    assert "".join(_text(o) for o in nb.cells[14].outputs).strip() == "drawn: True"
