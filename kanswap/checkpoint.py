"""Saving and loading KAN and MLP checkpoints without executing pickled code.

kanswap's format is one file written by ``torch.save``: ``{"format": "kanswap", "version": 1,
"model": "KAN" | "MLP", "config": {...}, "state_dict": {...}, "cache_data": tensor | None}``
(files without "model" are KANs, as written before MLPs could be saved), read back with
``torch.load(weights_only=True)`` so a file that would run code on load is refused. pykan's
three-file checkpoints (``P_config.yml``, ``P_state``, ``P_cache_data``) load too.
"""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import torch

from .model_kinds import kind_of, kinds, model_class

__all__ = ["save_model", "load_model", "FORMAT_VERSION"]

FORMAT_VERSION = 1


def save_model(model, path: str) -> None:
    """Write a KAN or MLP (config, parameters, cached data) to ``path``."""
    kind = kind_of(model)
    if kind is None:
        raise TypeError(f"save_model saves a kanswap KAN or MLP, got {type(model).__name__}")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    cache = model.cache_data.detach().cpu() if model.cache_data is not None else None
    blob = {"format": "kanswap", "version": FORMAT_VERSION, "model": kind, "config": model.config(),
            "state_dict": {key: val.detach().cpu() for key, val in model.state_dict().items()},
            "cache_data": cache}
    if kind == "KAN":
        blob.update(input_id=model.input_id.cpu(), n_inputs=model.n_inputs)
    torch.save(blob, path)


def _safe_load(path: str):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"refusing to load {path!r}: it holds objects beyond tensors and plain values "
                         f"(loading it could run code). Details: {err}") from None


def _from_state(config: dict, state: dict, device, kind: str = "KAN"):
    config = dict(config)
    config["device"] = device
    if kind == "KAN":
        config["auto_save"] = False
        config["first_init"] = False
    # KAN() and MLP() seed the global RNGs (pykan's behaviour); loading a file must not.
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        model = model_class(kind)(**config)
    np.random.set_state(np_state)
    random.setstate(py_state)
    # The saved model may have been pruned or updated: shapes come from the state_dict.
    model.load_state_dict(state)
    if kind == "KAN":
        model.restart_history()  # the loaded weights are the first in-memory version
    return model


def load_kind(path: str, kind: str):
    """``load_model(path)`` that must hold a ``kind`` ('KAN' or 'MLP') model: the ``loadckpt`` of each."""
    model = load_model(path)
    if not isinstance(model, model_class(kind)):
        other = next(name for name in kinds() if name != kind)
        article = "an" if kind == "MLP" else "a"
        raise TypeError(f"{path!r} holds a {type(model).__name__}, not {article} {kind}; use {other}.loadckpt")
    return model


def load_model(path: str, device="cpu"):
    """Load a kanswap checkpoint file (a KAN or an MLP), or pykan's ``{path}_config.yml`` + ``{path}_state``."""
    if os.path.isfile(path):
        blob = _safe_load(path)
        if not isinstance(blob, dict) or blob.get("format") != "kanswap":
            raise ValueError(f"{path!r} is not a kanswap checkpoint (no 'format': 'kanswap' entry)")
        if blob.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path!r} has checkpoint format version {blob.get('version')}, this kanswap "
                             f"reads version {FORMAT_VERSION}; upgrade kanswap or re-save the model")
        kind = blob.get("model", "KAN")
        if kind not in kinds():
            raise ValueError(f"{path!r} holds a model of kind {kind!r}; this kanswap reads 'KAN' and 'MLP'")
        model = _from_state(blob["config"], blob["state_dict"], device, kind)
        if kind == "KAN":
            model.input_id = blob["input_id"]
            model.n_inputs = blob["n_inputs"]
        if blob.get("cache_data") is not None:
            model.cache_data = blob["cache_data"].to(model.device)
        return model
    if os.path.isfile(f"{path}_config.yml") and os.path.isfile(f"{path}_state"):
        try:
            import yaml
        except ImportError as err:
            raise ImportError("loading a pykan checkpoint needs pyyaml: pip install pyyaml") from err
        with open(f"{path}_config.yml") as f:
            cfg = yaml.safe_load(f)
        config = {key: cfg[key] for key in ("width", "grid", "k", "mult_arity", "symbolic_enabled",
                                            "affine_trainable", "grid_eps", "grid_range", "sp_trainable",
                                            "sb_trainable", "state_id", "ckpt_path", "round") if key in cfg}
        config["base_fun"] = cfg.get("base_fun_name", "silu")
        model = _from_state(config, _safe_load(f"{path}_state"), device)
        if os.path.isfile(f"{path}_cache_data"):
            cache = _safe_load(f"{path}_cache_data")
            model.cache_data = cache.to(model.device) if isinstance(cache, torch.Tensor) else None
        return model
    raise FileNotFoundError(f"no kanswap checkpoint {path!r} and no pykan checkpoint {path}_config.yml/_state")
