"""The reference workflow with kanswap: train a KAN on the 9-bit nested majority, reorder its hidden
neurons (auto_swap), prune it, compare with an MLP, save the figures and a checkpoint.

Task: all 512 inputs of 9 bits, y = maj(maj(x1,x2,x3), maj(x4,x5,x6), maj(x7,x8,x9)).

    python examples/majority_workflow.py                  # KAN 20 steps, MLP 1000 steps, figures in ./majority
    python examples/majority_workflow.py --kan-steps 5 --mlp-steps 50 --out /tmp/majority
"""

import argparse
import os

import matplotlib

matplotlib.use("Agg")  # files only; remove this line to get windows with plt.show()

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from kanswap import KAN, MLP, create_dataset_from_data, majority_dataset  # noqa: E402


def accuracy(model, dataset, split: str) -> float:
    with torch.no_grad():
        pred = model(dataset[f"{split}_input"]) > 0.5
    return float((pred == dataset[f"{split}_label"]).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kan-steps", type=int, default=20)
    parser.add_argument("--mlp-steps", type=int, default=1000)
    parser.add_argument("--out", default="majority")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    seed = 5
    torch.manual_seed(seed)
    np.random.seed(seed)  # the train/test split draws from numpy, as pykan's
    device = "cuda" if torch.cuda.is_available() else "cpu"
    inputs, labels = majority_dataset()  # (512, 9), (512, 1)
    dataset = create_dataset_from_data(inputs, labels, device=device)  # 409 train, 103 test rows

    # A KAN: a learnable curve on every edge, sums at the nodes.
    model = KAN(width=[9, 10, 10, 1], seed=seed, noise_scale=1.0, device=device)
    model.fit(dataset, lamb=0.001, lamb_entropy=5., steps=args.kan_steps, stop_grid_update_step=1000,
              log=max(args.kan_steps // 4, 1))
    print(f"KAN fitted: test accuracy {accuracy(model, dataset, 'test'):.3f}, "
          f"connection cost {float(model.connection_cost):.4f}")
    model.plot(title="KAN fitted").savefig(os.path.join(args.out, "kan_fitted.png"), dpi=150, bbox_inches="tight")

    # Reorder hidden neurons: the function is unchanged, the drawing untangles (lower connection cost).
    model.auto_swap()  # method="greedy", pykan's decisions; method="optimal" goes lower
    print(f"after auto_swap: connection cost {float(model.connection_cost):.4f}")
    for mod in model.find_modules():
        print(f"  layer {mod.layer}: modules {[g for g, n in zip(mod.groups, mod.nodes, strict=True) if n]}, "
              f"modularity {mod.modularity:.3f}")
    model.plot(title="KAN after auto_swap()", modules=True).savefig(
        os.path.join(args.out, "kan_swapped.png"), dpi=150, bbox_inches="tight")

    # Prune weak nodes: a new, smaller model whose removed parts' means are folded into the biases.
    try:
        pruned = model.prune(node_th=5e-2)
    except ValueError as err:  # a very short fit can leave a layer without a node above the threshold
        print(f"prune: {err}")
        pruned = None
    if pruned is not None:
        print(f"pruned: width {pruned.width_in}, test accuracy {accuracy(pruned, dataset, 'test'):.3f}")
        pruned.plot(title="KAN pruned").savefig(os.path.join(args.out, "kan_pruned.png"), dpi=150,
                                                bbox_inches="tight")
        pruned.saveckpt(os.path.join(args.out, "kan_pruned.ckpt"))
        reloaded = KAN.loadckpt(os.path.join(args.out, "kan_pruned.ckpt"))
        assert torch.equal(reloaded(dataset["test_input"]), pruned(dataset["test_input"]))

    # The MLP baseline, swapped the same way (its connection cost uses |weights|).
    mlp = MLP(width=[9, 20, 20, 1], seed=seed, device=device)
    mlp.fit(dataset, lamb=0.0001, lamb_entropy=2., steps=args.mlp_steps, reg_metric="w",
            log=max(args.mlp_steps // 4, 1))
    cost = float(mlp.connection_cost)
    mlp.auto_swap()
    print(f"MLP: test accuracy {accuracy(mlp, dataset, 'test'):.3f}, "
          f"connection cost {cost:.2f} -> {float(mlp.connection_cost):.2f} after auto_swap")
    mlp.plot(title="MLP after auto_swap()").savefig(os.path.join(args.out, "mlp_swapped.png"), dpi=150,
                                                    bbox_inches="tight")
    plt.close("all")


if __name__ == "__main__":
    main()
