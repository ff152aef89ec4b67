"""The model classes by the name a checkpoint file stores ('KAN', 'MLP').

``kan.py`` and ``mlp.py`` register their class here when they are defined (``import kanswap``
imports both), so ``checkpoint.py`` can build the model a file names without importing the model
modules, which themselves import ``checkpoint.py`` for ``saveckpt`` / ``loadckpt``.
"""

from __future__ import annotations

__all__ = ["register_kind", "model_class", "kind_of", "kinds"]

_CLASSES: dict[str, type] = {}


def register_kind(kind: str):
    """Class decorator: files holding a ``kind`` model are built with this class."""
    def register(cls: type) -> type:
        _CLASSES[kind] = cls
        return cls
    return register


def kinds() -> list[str]:
    """The registered kind names, in registration order."""
    return list(_CLASSES)


def model_class(kind: str) -> type:
    """The class registered as ``kind`` (KeyError if none)."""
    return _CLASSES[kind]


def kind_of(model: object) -> str | None:
    """The kind name of ``model``'s class (or of a registered base class), None if it has none."""
    return next((kind for kind, cls in _CLASSES.items() if isinstance(model, cls)), None)
