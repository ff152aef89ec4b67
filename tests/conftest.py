"""Shared test set-up: Triton's CPU interpreter where there is no GPU, headless matplotlib, the
`cuda` marker, and the reference task's data."""

import os

import matplotlib
import pytest
import torch

# Kernels run on the CPU through Triton's interpreter when no GPU is present; this must be set
# before the first `import triton` anywhere in the test session.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

matplotlib.use("Agg")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def majority_data():
    """The reference scripts' dataset: 512 9-bit inputs, split as they split it (numpy seed 5)."""
    import numpy as np

    from kanswap import create_dataset_from_data
    from kanswap.data import majority_dataset

    np.random.seed(5)
    torch.manual_seed(5)
    x, y = majority_dataset()
    return create_dataset_from_data(x, y)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def one_thread():
    """One intra-op thread for modules whose tensors are tiny: a second thread only adds
    synchronisation (up to 6x slower on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
