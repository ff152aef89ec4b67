"""kanswap.KANLayer / KANLinear against pykan's KANLayer."""

import kan
import pytest
import torch

from kanswap import KANLayer, KANLinear

SHAPES = [pytest.param(i, o, id=f"{i}x{o}") for i, o in ((1, 1), (7, 3), (3, 33), (33, 7))]
CONFIGS = [pytest.param(G, k, id=f"G{G}k{k}") for G, k in ((1, 1), (3, 3), (5, 3), (5, 2))]
PARAMS = ("grid", "coef", "mask", "scale_base", "scale_sp")


def _pair(in_dim, out_dim, G, k, seed, noise_scale=0.5):
    torch.manual_seed(seed)
    ref = kan.KANLayer(in_dim=in_dim, out_dim=out_dim, num=G, k=k, noise_scale=noise_scale)
    torch.manual_seed(seed)
    ours = KANLayer(in_dim=in_dim, out_dim=out_dim, num=G, k=k, noise_scale=noise_scale)
    return ours, ref


def _randomise(ours, ref, seed):
    """Give both layers the same random (non-init) parameters so every term matters (and pykan's
    grid: kanswap's extension knots can differ by 1 ulp, see test_init_grid_bitwise_equals_pykan)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ours.grid.copy_(ref.grid)
        for name in ("coef", "scale_base", "scale_sp"):
            p = getattr(ours, name)
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
            getattr(ref, name).copy_(p)


def _x(B, n, seed, dtype=torch.float32, scale=1.3):
    gen = torch.Generator().manual_seed(seed)
    return ((torch.rand(B, n, generator=gen, dtype=torch.float64) * 2 - 1) * scale).to(dtype)


@pytest.mark.parametrize("G,k", CONFIGS)
@pytest.mark.parametrize("in_dim,out_dim", SHAPES)
def test_init_equals_pykan(in_dim, out_dim, G, k):
    ours, ref = _pair(in_dim, out_dim, G, k, seed=in_dim * 100 + out_dim)
    # bitwise grid equality is test_init_grid_bitwise_equals_pykan
    torch.testing.assert_close(ours.grid.data, ref.grid.data, atol=3e-7, rtol=0)
    assert torch.equal(ours.scale_base.data, ref.scale_base.data)
    assert torch.equal(ours.scale_sp.data, ref.scale_sp.data)
    assert torch.equal(ours.mask.data, ref.mask.data)
    torch.testing.assert_close(ours.coef.data, ref.coef.data, atol=1e-6, rtol=0)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    for name in PARAMS:
        assert getattr(ours, name).requires_grad == getattr(ref, name).requires_grad, name


@pytest.mark.parametrize("G", [pytest.param(3, id="G3"), pytest.param(10, id="G10")])
def test_init_grid_bitwise_equals_pykan(G):
    ours, ref = _pair(7, 2, G, 3, seed=1)
    assert torch.equal(ours.grid.data, ref.grid.data)


def test_init_draws_same_rng_amount_as_pykan():
    torch.manual_seed(4)
    kan.KANLayer(in_dim=7, out_dim=3, num=5, k=3)
    after_ref = torch.rand(3)
    torch.manual_seed(4)
    KANLayer(in_dim=7, out_dim=3, num=5, k=3)
    assert torch.equal(torch.rand(3), after_ref)


@pytest.mark.parametrize("B", [pytest.param(b, id=f"B{b}") for b in (1, 33)])
@pytest.mark.parametrize("G,k", CONFIGS)
@pytest.mark.parametrize("in_dim,out_dim", SHAPES)
def test_forward_tuple_equals_pykan(in_dim, out_dim, G, k, B):
    ours, ref = _pair(in_dim, out_dim, G, k, seed=B)
    _randomise(ours, ref, seed=B + 1)
    x = _x(B, in_dim, seed=B + 2, scale=2.5)  # reaches into and beyond the extension zones
    got = ours(x)
    want = ref(x)
    assert len(got) == 4
    for a, b, name in zip(got, want, ("y", "preacts", "postacts", "postspline"), strict=True):
        assert a.shape == b.shape, name
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6 * max(1.0, b.abs().max().item()), msg=name)
    y_fast = ours.output(x)
    torch.testing.assert_close(y_fast, want[0], rtol=1e-6, atol=1e-6 * max(1.0, want[0].abs().max().item()))


@pytest.mark.parametrize("in_dim,out_dim", SHAPES)
def test_output_and_std_equals_torch_std_of_pykan(in_dim, out_dim):
    ours, ref = _pair(in_dim, out_dim, 5, 3, seed=11)
    _randomise(ours, ref, seed=12)
    x = _x(33, in_dim, seed=13)
    y, std = ours.output_and_std(x)
    y_ref, _, post, _ = ref(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    assert std.shape == (in_dim, out_dim)
    torch.testing.assert_close(std, torch.std(post, dim=0).t(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.edge_std(x), std, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("use_output", [pytest.param(True, id="output"), pytest.param(False, id="forward")])
@pytest.mark.parametrize("G,k", CONFIGS)
@pytest.mark.parametrize("in_dim,out_dim", SHAPES)
def test_gradients_equal_pykan_float64(in_dim, out_dim, G, k, use_output):
    ours, ref = _pair(in_dim, out_dim, G, k, seed=21)
    ours.double()
    ref.double()
    _randomise(ours, ref, seed=22)
    x = _x(33, in_dim, seed=23, dtype=torch.float64, scale=2.0)
    w = torch.randn(33, out_dim, generator=torch.Generator().manual_seed(24), dtype=torch.float64)
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    ya = ours.output(xa) if use_output else ours(xa)[0]
    (ya * w).sum().backward()
    (ref(xb)[0] * w).sum().backward()
    for name in ("coef", "scale_base", "scale_sp"):
        torch.testing.assert_close(getattr(ours, name).grad, getattr(ref, name).grad, rtol=1e-10, atol=1e-12,
                                   msg=name)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-10, atol=1e-12)


def test_std_gradient_matches_torch_std():
    ours, ref = _pair(7, 3, 5, 3, seed=31)
    ours.double()
    ref.double()
    _randomise(ours, ref, seed=32)
    x = _x(33, 7, seed=33, dtype=torch.float64)
    ours.output_and_std(x)[1].sum().backward()
    torch.std(ref(x)[2], dim=0).sum().backward()
    for name in ("coef", "scale_base", "scale_sp"):
        torch.testing.assert_close(getattr(ours, name).grad, getattr(ref, name).grad, rtol=1e-9, atol=1e-12)


def test_kanlinear_is_linear_drop_in():
    torch.manual_seed(0)
    lin = KANLinear(7, 3)
    assert isinstance(lin, torch.nn.Module)
    assert lin.in_features == 7 and lin.out_features == 3
    assert [n for n, _ in lin.named_parameters()] == [*PARAMS, "bias"]  # nn.Linear's bias, after pykan's
    x = torch.randn(2, 5, 7)
    y = lin(x)
    assert y.shape == (2, 5, 3)
    torch.testing.assert_close(y.reshape(10, 3), lin.output(x.reshape(10, 7)))
    assert lin(torch.randn(7)).shape == (3,)
    seq = torch.nn.Sequential(torch.nn.Linear(4, 7), KANLinear(7, 1))
    assert seq(torch.randn(33, 4)).shape == (33, 1)


def test_kanlinear_trains():
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(64, 2, generator=gen) * 2 - 1
    y = torch.sin(3 * x[:, :1]) + x[:, 1:] ** 2  # additive: one KAN layer can represent it
    model = KANLinear(2, 1, grid=5)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = None
    for _ in range(60):
        loss = ((model(x) - y) ** 2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first
    assert model.grid.grad is None and model.mask.grad is None


# pykan's per-edge gelsy solves get slow (seconds) with many outputs: small shapes only.
@pytest.mark.parametrize("in_dim,out_dim,G,k", [pytest.param(1, 1, 1, 1, id="1x1-G1k1"),
                                                pytest.param(1, 1, 5, 3, id="1x1-G5k3"),
                                                pytest.param(7, 3, 5, 2, id="7x3-G5k2")])
def test_update_grid_from_samples_equals_pykan(in_dim, out_dim, G, k):
    ours, ref = _pair(in_dim, out_dim, G, k, seed=41)
    _randomise(ours, ref, seed=42)
    gen = torch.Generator().manual_seed(43)
    x = torch.randn(101, in_dim, generator=gen) * 0.8 + 0.1
    ours.update_grid_from_samples(x)
    ref.update_grid_from_samples(x)
    torch.testing.assert_close(ours.grid.data, ref.grid.data, atol=1e-5, rtol=0)
    scale = max(1.0, ref.coef.abs().max().item())
    torch.testing.assert_close(ours.coef.data, ref.coef.data, atol=1e-5 * scale, rtol=1e-5)
    xt = torch.randn(33, in_dim, generator=gen)
    torch.testing.assert_close(ours.output(xt), ref(xt)[0], atol=1e-5 * scale, rtol=1e-5)


def _clone_pair(in_dim, out_dim, seed):
    ours, ref = _pair(in_dim, out_dim, 5, 3, seed=seed)
    _randomise(ours, ref, seed=seed + 1)
    return ours, ref


@pytest.mark.parametrize("in_id,out_id", [pytest.param([0], [2], id="single"),
                                          pytest.param([4, 0, 2], [1, 0], id="reordered"),
                                          pytest.param(list(range(7)), [0, 1, 2], id="all")])
def test_get_subset_consistent(in_id, out_id):
    ours, ref = _clone_pair(7, 3, seed=61)
    ours.grid_eps = 0.3
    sub = ours.get_subset(in_id, out_id)
    assert (sub.in_dim, sub.out_dim) == (len(in_id), len(out_id))
    assert sub.grid_eps == 0.3
    x = _x(33, 7, seed=62)
    _, _, post, _ = ours(x)
    _, _, sub_post, _ = sub(x[:, in_id])
    torch.testing.assert_close(sub_post, post[:, out_id][:, :, in_id])
    ref_sub = ref.get_subset(in_id, out_id)
    torch.testing.assert_close(sub(x[:, in_id])[0], ref_sub(x[:, in_id])[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["in", "out"])
def test_swap_and_permute_consistent(mode):
    ours, ref = _clone_pair(7, 3, seed=71)
    x = _x(33, 7, seed=72)
    y0 = ours.output(x)
    if mode == "in":
        ours.swap(1, 5, mode="in")
        ref.swap(1, 5, mode="in")
        xs = x[:, [0, 5, 2, 3, 4, 1, 6]]
        torch.testing.assert_close(ours.output(xs), y0, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(ours.output(xs), ref(xs)[0], atol=1e-5, rtol=1e-5)
        perm = [6, 2, 0, 1, 4, 5, 3]
        ours.permute(perm, "in")
        torch.testing.assert_close(ours.output(xs[:, perm]), y0, atol=1e-6, rtol=1e-6)
    else:
        ours.swap(0, 2, mode="out")
        ref.swap(0, 2, mode="out")
        torch.testing.assert_close(ours.output(x), y0[:, [2, 1, 0]], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(ours.output(x), ref(x)[0], atol=1e-5, rtol=1e-5)
        ours.permute([1, 2, 0], "out")
        torch.testing.assert_close(ours.output(x), y0[:, [2, 1, 0]][:, [1, 2, 0]], atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        ours.permute([0], "sideways")


def test_feature_cache_invalidated_by_in_place_input_change():
    ours, _ = _clone_pair(3, 2, seed=81)
    x = _x(7, 3, seed=82)
    y0 = ours.output(x)
    x.mul_(0.5)
    torch.testing.assert_close(ours.output(x), ours(x)[0], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(ours.output(x), y0)
