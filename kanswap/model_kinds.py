"""The model classes by the name a checkpoint file stores ('KAN', 'MLP').

``kan.py`` and ``mlp.py`` register their class here when they are defined, so ``checkpoint.py`` can
build the model a file names without importing the model modules, which themselves import
``checkpoint.py`` for ``saveckpt`` / ``loadckpt``. ``import kanswap`` defers importing them (so
``kanswap --version`` needs no torch) and registers a loader instead; the lookups below run it first.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["register_kind", "register_loader", "model_class", "kind_of", "kinds"]

_CLASSES: dict[str, type] = {}
_LOADERS: list[Callable[[], None]] = []


def register_loader(loader: Callable[[], None]) -> None:
    """``loader()`` imports modules that register kinds; it runs before the first lookup."""
    _LOADERS.append(loader)


def _load() -> None:
    while _LOADERS:
        _LOADERS.pop(0)()


def register_kind(kind: str) -> Callable[[type], type]:
    """Class decorator: files holding a ``kind`` model are built with this class."""
    def register(cls: type) -> type:
        _CLASSES[kind] = cls
        return cls
    return register


def kinds() -> list[str]:
    """The registered kind names, in registration order."""
    _load()
    return list(_CLASSES)


def model_class(kind: str) -> type:
    """The class registered as ``kind`` (KeyError if none)."""
    _load()
    return _CLASSES[kind]


def kind_of(model: object) -> str | None:
    """The kind name of ``model``'s class (or of a registered base class), None if it has none."""
    _load()
    return next((kind for kind, cls in _CLASSES.items() if isinstance(model, cls)), None)
