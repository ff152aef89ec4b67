"""Datasets in pykan's dict format: ``train_input``, ``train_label``, ``test_input``, ``test_label``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["create_dataset", "create_dataset_from_data", "majority_dataset"]


def create_dataset_from_data(inputs: torch.Tensor, labels: torch.Tensor, train_ratio: float = 0.8,
                             device="cpu") -> dict:
    """Split (inputs, labels) at random into train/test, as pykan.

    inputs: (N, n_in), labels: (N, n_out). The split draws from numpy's global RNG
    (``np.random.choice``), so seeding numpy first reproduces pykan's split exactly: the training
    rows come in the sampler's order, the test rows ascending.
    """
    if not isinstance(inputs, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("inputs and labels must be torch tensors")
    if inputs.shape[0] != labels.shape[0]:
        raise ValueError(f"inputs have {inputs.shape[0]} rows but labels have {labels.shape[0]}")
    if not 0.0 < train_ratio < 1.0:
        raise ValueError(f"train_ratio must be in (0, 1), got {train_ratio}")
    num = inputs.shape[0]
    n_train = int(num * train_ratio)
    if n_train == 0 or n_train == num:
        raise ValueError(f"train_ratio {train_ratio} on {num} samples leaves an empty train or test set")
    train_id = np.random.choice(num, n_train, replace=False)
    test_id = np.setdiff1d(np.arange(num), train_id)  # ascending, as pykan's set difference
    return {
        "train_input": inputs[train_id].detach().to(device),
        "test_input": inputs[test_id].detach().to(device),
        "train_label": labels[train_id].detach().to(device),
        "test_label": labels[test_id].detach().to(device),
    }


def create_dataset(f: Callable, n_var: int = 2, f_mode: str = "col", ranges=(-1, 1), train_num: int = 1000,
                   test_num: int = 1000, normalize_input: bool = False, normalize_label: bool = False,
                   device="cpu", seed: int = 0) -> dict:
    """pykan's synthetic dataset: uniform inputs in ``ranges``, labels f(x). Seeds the global torch
    and numpy RNGs with ``seed``, as pykan does, so the draws match pykan's."""
    if f_mode not in ("col", "row"):
        raise ValueError(f"f_mode must be 'col' or 'row', got {f_mode!r}")
    np.random.seed(seed)
    torch.manual_seed(seed)
    ranges = np.array(ranges, dtype=float)
    ranges = np.tile(ranges, (n_var, 1)) if ranges.ndim == 1 else ranges
    if ranges.shape != (n_var, 2):
        raise ValueError(f"ranges must be (2,) or ({n_var}, 2), got shape {ranges.shape}")
    train_input = torch.zeros(train_num, n_var)
    test_input = torch.zeros(test_num, n_var)
    for i in range(n_var):
        lo, hi = ranges[i]
        train_input[:, i] = torch.rand(train_num) * (hi - lo) + lo
        test_input[:, i] = torch.rand(test_num) * (hi - lo) + lo
    if f_mode == "col":
        train_label, test_label = f(train_input), f(test_input)
    else:
        train_label, test_label = f(train_input.T), f(test_input.T)
    if train_label.dim() == 1:
        train_label, test_label = train_label.unsqueeze(1), test_label.unsqueeze(1)
    if normalize_input:
        mean, std = train_input.mean(0, keepdim=True), train_input.std(0, keepdim=True)
        train_input, test_input = (train_input - mean) / std, (test_input - mean) / std
    if normalize_label:
        mean, std = train_label.mean(0, keepdim=True), train_label.std(0, keepdim=True)
        train_label, test_label = (train_label - mean) / std, (test_label - mean) / std
    return {
        "train_input": train_input.to(device),
        "test_input": test_input.to(device),
        "train_label": train_label.to(device),
        "test_label": test_label.to(device),
    }


def majority_dataset() -> tuple[torch.Tensor, torch.Tensor]:
    """The reference task: all 512 9-bit inputs, y = maj(maj(x1..x3), maj(x4..x6), maj(x7..x9)).

    Returns inputs (512, 9) and labels (512, 1), float32, in the reference scripts' row order.
    """
    bits = ((torch.arange(512)[:, None] >> torch.arange(8, -1, -1)) & 1).float()
    middle = torch.stack([bits[:, 3 * g:3 * g + 3].sum(1) > 1.5 for g in range(3)], dim=1).float()
    labels = (middle.sum(1) > 1.5).float()[:, None]
    return bits, labels
