"""File formats and safe writing: atomic JSON, model checkpoints (``config.json`` + safetensors) and
resumable training state (token files join this package in a later stage).

The checkpoint names are imported lazily so that ``from duotok.io import write_json_atomic`` (used by
data-generation code) does not pay for importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from duotok.io.files import atomic_write, write_json_atomic

if TYPE_CHECKING:
    from duotok.io.checkpoint import (
        PretrainedMixin,
        config_from_dict,
        load_training_state,
        save_training_state,
    )

_CHECKPOINT_NAMES = ("PretrainedMixin", "config_from_dict", "load_training_state", "save_training_state")

__all__ = [
    "PretrainedMixin",
    "atomic_write",
    "config_from_dict",
    "load_training_state",
    "save_training_state",
    "write_json_atomic",
]


def __getattr__(name: str) -> Any:
    if name in _CHECKPOINT_NAMES:
        from duotok.io import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
