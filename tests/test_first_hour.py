"""A new user's first hour: KANLinear as nn.Linear, quiet one-row forwards, device errors, MLP
checkpoints, package metadata and ``kanswap --version``."""

import importlib.metadata
import importlib.resources
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import kanswap
from kanswap import KAN, MLP, KANLinear
from kanswap.checkpoint import load_model, save_model
from kanswap.layer import LAYER_BACKENDS

ROOT = Path(__file__).resolve().parents[1]


# -- KANLinear behaves as nn.Linear ---------------------------------------------------------------
def test_kanlinear_bias_default_true_zero_init_and_off():
    torch.manual_seed(0)
    lin = KANLinear(3, 2)
    assert isinstance(lin.bias, torch.nn.Parameter) and lin.bias.shape == (2,)
    assert torch.equal(lin.bias, torch.zeros(2))
    x = torch.randn(5, 3)
    with torch.no_grad():
        lin.bias.copy_(torch.tensor([1.5, -2.0]))
    torch.testing.assert_close(lin(x), lin.output(x) + torch.tensor([1.5, -2.0]))
    no_bias = KANLinear(3, 1, bias=False)
    assert no_bias.bias is None and "bias" not in dict(no_bias.named_parameters())
    torch.testing.assert_close(no_bias(x), no_bias.output(x))


def test_kanlinear_bias_gets_gradient_and_follows_subset_and_permute():
    torch.manual_seed(0)
    lin = KANLinear(3, 4)
    with torch.no_grad():
        lin.bias.copy_(torch.arange(4.0))
    lin(torch.randn(6, 3)).sum().backward()
    torch.testing.assert_close(lin.bias.grad, torch.full((4,), 6.0))
    sub = lin.get_subset([0, 2], [3, 1])
    assert sub.bias.tolist() == [3.0, 1.0]
    lin.permute(torch.tensor([2, 0, 3, 1]), "out")
    assert lin.bias.tolist() == [2.0, 0.0, 3.0, 1.0]


def test_kanlinear_features_attributes_and_repr():
    lin = KANLinear(3, 1, bias=False, grid=4, k=2)
    assert (lin.in_features, lin.out_features) == (3, 1)
    assert repr(lin) == "KANLinear(in_features=3, out_features=1, bias=False, grid=4, k=2, base_fun=silu)"
    assert "in_dim" not in repr(lin) and "num=" not in repr(lin)


@pytest.mark.parametrize("bad", [np.zeros((2, 3), dtype=np.float32), [[0.0, 0.0, 0.0]], 1.0])
def test_kanlinear_non_tensor_is_type_error(bad):
    with pytest.raises(TypeError, match="must be a torch.Tensor, got"):
        KANLinear(3, 1)(bad)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(backend="fast"), ValueError, "backend must be one of"),
    (dict(grid=0), ValueError, "grid must be an integer >= 1"),
    (dict(k=1.5), ValueError, "k must be an integer >= 1"),
    (dict(bias="yes"), TypeError, "bias must be True or False"),
    (dict(nope=1), TypeError, "KANLinear got unexpected keyword argument"),
    (dict(device="gpu"), ValueError, "unknown device 'gpu'"),
])
def test_kanlinear_arguments_checked_at_construction(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        KANLinear(3, 1, **kwargs)


def test_kanlinear_rejects_bad_sizes_by_their_names():
    with pytest.raises(ValueError, match="in_features must be an integer >= 1"):
        KANLinear(0, 1)
    with pytest.raises(ValueError, match="out_features must be an integer >= 1"):
        KANLinear(2, True)


def test_layer_backends_are_the_kernel_modules():
    pytest.importorskip("triton")
    from kanswap.kernels.bspline import BACKENDS

    assert set(LAYER_BACKENDS) == set(BACKENDS)


def _nonfinite_batch():
    x = torch.rand(6, 3) * 2 - 1
    x[0, 0], x[1, 1], x[2, 2], x[3, 0] = float("inf"), float("-inf"), float("nan"), 1e6  # row 3: far, finite
    return x


@pytest.mark.parametrize("width", [[3, 2], [3, 4, 2], [3, 5, 4, 1]])
def test_nonfinite_rows_give_nan_in_kan_and_kanlinear(width):
    """Before: KANLinear gave +-inf for +inf inputs, KAN (depth >= 2) NaN. Now both: NaN rows."""
    x = _nonfinite_batch()
    kan_y = KAN(width=width, seed=0)(x)
    torch.manual_seed(0)
    lin_y = torch.nn.Sequential(*[KANLinear(a, b) for a, b in zip(width[:-1], width[1:], strict=True)])(x)
    for y in (kan_y, lin_y):
        assert torch.isnan(y[:3]).all()
        assert torch.isfinite(y[3:]).all()


# -- a batch of one ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: KAN(width=[3, 4, 2], seed=0), lambda: MLP(width=[3, 4, 2], seed=0)],
                         ids=["KAN", "MLP"])
def test_one_row_forward_and_attribute_are_quiet_and_finite(make):
    model = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = model(torch.rand(1, 3))
        model.attribute()
    assert y.shape == (1, 2) and torch.isfinite(y).all()
    assert all(torch.isfinite(s).all() for s in model.edge_scores)


# -- devices ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda d: KAN(width=[2, 1], device=d), lambda d: MLP(width=[2, 1], device=d),
                                  lambda d: KANLinear(2, 1, device=d)], ids=["KAN", "MLP", "KANLinear"])
def test_device_errors_are_clear(make):
    with pytest.raises(ValueError, match="unknown device 'gpu'; use 'cpu', 'cuda'"):
        make("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available .*use device='cpu'"):
            make("cuda")


# -- MLP checkpoints --------------------------------------------------------------------------------
def test_mlp_checkpoint_round_trip_bitwise(tmp_path):
    mlp = MLP(width=[3, 5, 2], act="tanh", seed=3)
    x = torch.rand(7, 3)
    mlp(x)
    path = str(tmp_path / "mlp.pt")
    save_model(mlp, path)
    for loaded in (load_model(path), MLP.loadckpt(path)):
        assert isinstance(loaded, MLP) and loaded.width == [3, 5, 2] and loaded.act_name == "tanh"
        assert torch.equal(loaded.cache_data, x)
        for key, val in mlp.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], val), key
        assert torch.equal(loaded(x), mlp(x))
    mlp.saveckpt(str(tmp_path / "again"))
    assert torch.equal(MLP.loadckpt(str(tmp_path / "again"))(x), mlp(x))
    blob = torch.load(path, weights_only=True)  # plain tensors and values only
    assert blob["model"] == "MLP"


def test_loadckpt_names_the_wrong_kind(tmp_path):
    MLP(width=[2, 1]).saveckpt(str(tmp_path / "m"))
    KAN(width=[2, 1]).saveckpt(str(tmp_path / "k"))
    with pytest.raises(TypeError, match="holds a MLP, not a KAN"):
        KAN.loadckpt(str(tmp_path / "m"))
    with pytest.raises(TypeError, match="holds a KAN, not an MLP"):
        MLP.loadckpt(str(tmp_path / "k"))
    with pytest.raises(TypeError, match="save_model saves a kanswap KAN or MLP"):
        save_model(torch.nn.Linear(2, 1), str(tmp_path / "x"))


# -- package metadata and the CLI -------------------------------------------------------------------
def test_package_metadata():
    meta = importlib.metadata.metadata("kanswap")
    assert meta["Version"] == kanswap.__version__
    assert meta["License-Expression"] == "MIT"
    assert meta["Author"] == "kanswap developers"
    classifiers = meta.get_all("Classifier")
    assert "Typing :: Typed" in classifiers and any(c.startswith("Programming Language :: Python :: 3") for c in
                                                    classifiers)
    assert "MIT License" in (ROOT / "LICENSE").read_text() and "kanswap developers" in (ROOT / "LICENSE").read_text()
    assert importlib.resources.files("kanswap").joinpath("py.typed").is_file()


def test_version_flag():
    proc = subprocess.run([sys.executable, "-m", "kanswap", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"kanswap {kanswap.__version__}"


def test_readme_lists_every_cli_option():
    from kanswap.demo import build_parser

    readme = (ROOT / "README.md").read_text()
    demo = build_parser()._subparsers._group_actions[0].choices["demo"]
    options = [opt for action in demo._actions for opt in action.option_strings if opt.startswith("--")]
    assert len(options) > 5
    missing = [opt for opt in options if opt not in readme]
    assert not missing, f"README does not mention {missing}"
