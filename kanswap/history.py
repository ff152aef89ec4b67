"""Model versions for pykan's ``log_history`` / ``rewind`` / ``checkout`` / ``history``, in memory.

pykan 0.2.8 keeps versions as checkpoint files ``{ckpt_path}/{round}.{state_id}_*`` plus a
``history.txt`` log, and with its default ``auto_save=True`` writes them on every logged call.
kanswap keeps them in a ``VersionStore`` instead and writes nothing, unless the model was built
with ``auto_save=True``: then the files are pykan's layout (``history.txt`` and one checkpoint per
version, in kanswap's checkpoint format) and rewind/checkout read them back.

The store is shared by every model derived from one another (copies, refined, pruned and rewound
models), as pykan's models share their checkpoint folder. It holds at most ``max_versions`` (64)
versions and ``max_bytes`` (256 MiB) of parameters and cached data; past either bound the oldest
versions are dropped, and rewinding to one of those raises a KeyError that says so. 64 versions of
the reference KAN [9,10,10,1] take 1.05 MB (12.7 KB of parameters and 3.7 KB of cached data each,
which is counted per version though versions share it); a snapshot takes ~2 ms there.

Differences from pykan, each a pykan defect:
- pykan's ``rewind`` sets the *caller's* ``state_id`` to a string (its next ``log_history`` then
  raises TypeError) and saves the caller's current parameters under the new version name; the
  rewound model it returns keeps the old round, so its next version overwrites a later one.
  kanswap leaves the caller untouched and returns the old version renamed ``{round+1}.{id}``, with
  its own later versions numbered in that round.
- pykan's ``history()`` and ``rewind()`` raise FileNotFoundError on a model built with
  ``auto_save=False``; kanswap's work on the in-memory versions.
"""

from __future__ import annotations

import os
import random
from collections import OrderedDict

import numpy as np
import torch

from .checkpoint import load_model

__all__ = ["VersionStore", "start_history", "log_version", "rewind", "checkout", "history", "history_lines"]


def _nbytes(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.numel() * t.element_size()


class VersionStore:
    """Versions ``"{round}.{state_id}" -> snapshot`` of one lineage of models, oldest first, and the
    log lines of pykan's history.txt. Bounded by ``max_versions`` and ``max_bytes``."""

    def __init__(self, max_versions: int = 64, max_bytes: int = 256 * 2**20):
        if max_versions < 1 or max_bytes < 1:
            raise ValueError(f"max_versions and max_bytes must be >= 1, got {max_versions}, {max_bytes}")
        self.max_versions, self.max_bytes = max_versions, max_bytes
        self.versions: OrderedDict[str, dict] = OrderedDict()
        self.lines: list[str] = []
        self.dropped: set[str] = set()
        self.nbytes = 0
        self.round = 0

    def __deepcopy__(self, memo):
        # Shared, not copied: a copy of a model continues the same history (pykan: same folder).
        return self

    def put(self, version: str, model) -> None:
        """Snapshot model's structure, parameters and cached data as ``version`` (replacing an
        existing one of that name, as pykan overwrites the file)."""
        state = {key: val.detach().clone() for key, val in model.state_dict().items()}
        cache = model.cache_data
        snap = {"factory": type(model), "config": model.config(), "state_dict": state,
                "input_id": model.input_id.clone(), "n_inputs": model.n_inputs, "cache_data": cache,
                "nbytes": sum(_nbytes(v) for v in state.values()) + _nbytes(cache)}
        self._drop(version)
        self.versions[version] = snap
        self.nbytes += snap["nbytes"]
        self.dropped.discard(version)
        while len(self.versions) > 1 and (len(self.versions) > self.max_versions or self.nbytes > self.max_bytes):
            self._drop(next(iter(self.versions)), remember=True)

    def _drop(self, version: str, remember: bool = False) -> None:
        snap = self.versions.pop(version, None)
        if snap is not None:
            self.nbytes -= snap["nbytes"]
            if remember:
                self.dropped.add(version)

    def build(self, version: str, device=None):
        """A new model of the snapshot's class holding ``version`` (sharing this store)."""
        if version not in self.versions:
            if version in self.dropped:
                raise KeyError(f"model version {version!r} was dropped: the in-memory history keeps the latest "
                               f"{self.max_versions} versions and {self.max_bytes} bytes (use auto_save=True "
                               "to keep every version on disk)")
            raise KeyError(f"no model version {version!r}; known versions: {list(self.versions)}")
        snap = self.versions[version]
        model = _from_snapshot(snap, device)
        model._versions = self
        return model


def _from_snapshot(snap: dict, device):
    config = dict(snap["config"], auto_save=False, first_init=False)
    # KAN() seeds the global RNGs (pykan's behaviour); a rewind or checkout must not.
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        model = snap["factory"](**config)
    np.random.set_state(np_state)
    random.setstate(py_state)
    model.load_state_dict(snap["state_dict"])
    model.auto_save = snap["config"]["auto_save"]
    model.input_id = snap["input_id"].clone()
    model.n_inputs = snap["n_inputs"]
    model.cache_data = snap["cache_data"]
    return model.to(device if device is not None else model.device)


def start_history(model) -> VersionStore:
    """A fresh store holding the model as version ``{round}.{state_id}`` (pykan's ``init => 0.0``)."""
    store = VersionStore()
    store.round = model.round
    store.lines = [f"### Round {model.round} ###", f"init => {model.round}.{model.state_id}"]
    if not model.auto_save:
        store.put(f"{model.round}.{model.state_id}", model)
    return store


def _store(model) -> VersionStore:
    store = model.__dict__.get("_versions")
    if store is None:
        store = model._versions = start_history(model)
    return store


def log_version(model, name: str) -> None:
    """pykan's log_history: the line ``{round}.{id} => {name} => {round}.{id+1}``, then the model
    becomes version ``{round}.{id+1}``: in memory, or on disk with auto_save."""
    line = f"{model.round}.{model.state_id} => {name} => {model.round}.{model.state_id + 1}"
    model.state_id += 1
    version = f"{model.round}.{model.state_id}"
    if model.auto_save:
        os.makedirs(model.ckpt_path, exist_ok=True)
        with open(os.path.join(model.ckpt_path, "history.txt"), "a") as f:
            f.write(line + "\n")
        model.saveckpt(os.path.join(model.ckpt_path, version))
        return
    store = _store(model)
    store.lines.append(line)
    store.put(version, model)


def _check_id(model_id) -> tuple[int, int]:
    parts = str(model_id).split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"model_id must be '{{round}}.{{state_id}}' such as '0.1', got {model_id!r}")
    return int(parts[0]), int(parts[1])


def checkout(model, model_id: str):
    """Version ``model_id`` as a new model; nothing else changes."""
    _check_id(model_id)
    if model.auto_save:
        old = load_model(os.path.join(model.ckpt_path, str(model_id)), device=model.device)
        old.auto_save = True  # its next versions go to the same folder
        return old
    return _store(model).build(str(model_id), model.device)


def rewind(model, model_id: str):
    """Version ``model_id`` as a new model, renamed ``{r}.{id}`` in a new round r; the log gets
    ``### Round r ###``. The caller's model is not changed."""
    _, state_id = _check_id(model_id)
    old = checkout(model, model_id)
    if model.auto_save:
        rounds = [int(n.split(".")[0]) for n in os.listdir(model.ckpt_path) if n.split(".")[0].isdigit()]
        new_round = max(rounds + [model.round]) + 1
        with open(os.path.join(model.ckpt_path, "history.txt"), "a") as f:
            f.write(f"### Round {new_round} ###\n")
        old.round, old.state_id = new_round, state_id
        old.saveckpt(os.path.join(model.ckpt_path, f"{new_round}.{state_id}"))
    else:
        store = _store(model)
        store.round = max(store.round, model.round) + 1
        new_round = store.round
        store.lines.append(f"### Round {new_round} ###")
        old.round, old.state_id = new_round, state_id
        store.put(f"{new_round}.{state_id}", old)
    print(f"rewind to model version {model_id}, renamed as {new_round}.{state_id}")
    return old


def history_lines(model, k="all") -> list[str]:
    """The last k lines of the version log (all by default)."""
    if model.auto_save:
        with open(os.path.join(model.ckpt_path, "history.txt")) as f:
            lines = [line.rstrip("\n") for line in f]
    else:
        lines = list(_store(model).lines)
    if k != "all":
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise ValueError(f"k must be 'all' or a non-negative int, got {k!r}")
        lines = lines[len(lines) - k:] if k else []
    return lines


def history(model, k="all") -> None:
    """Print the last k lines of the version log (pykan's history; returns None like it)."""
    for line in history_lines(model, k):
        print(line)
