"""Model checkpoints as ``config.json`` + ``model.safetensors``, and resumable training state.

Why this format: safetensors holds only tensors (loading it cannot execute code, unlike a pickle of
model classes), and the JSON config is readable and diffable, so a checkpoint states exactly which
architecture it belongs to. A model is rebuilt from its config and the weights are then checked
against the rebuilt model's ``state_dict`` key by key, so a checkpoint from another config fails with
a message naming the first mismatching tensor instead of loading half-silently. Loading also checks
every ``config.json`` value against the config dataclass's field annotations (a wrong type names the
file, the key and the expected type) and refuses weights holding NaN or inf (naming the first such
tensor), so a bad checkpoint fails at load time, not later as odd audio.

Writes are atomic per file: both files are written into a temporary sibling directory and only then
moved into place with ``os.replace``, so an exception while serialising leaves the previous
checkpoint untouched and no temporary files behind. (The two renames are not one transaction: a
crash exactly between them leaves new weights beside the old config, which loading then reports as a
shape or key mismatch rather than accepting.)
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
import random
import shutil
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import safetensors.torch
import torch
from torch import nn

import duotok
from duotok.errors import CheckpointError, ConfigError
from duotok.io.files import atomic_path, default_file_mode

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1
TRAINING_STATE_VERSION = 1

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "PretrainedMixin",
    "capture_rng_state",
    "config_from_dict",
    "config_with_defaults",
    "load_training_state",
    "restore_rng_state",
    "save_training_state",
]


# --------------------------------------------------------------------------- config (de)serialisation


def _type_name(hint: Any) -> str:
    """``int``, ``float``, ``tuple[int, ...]``, ``EncoderConfig | None``: the annotation as a reader writes it."""
    if hint is type(None):
        return "None"
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None and args:
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return str(hint).replace("typing.", "")


def _wrong_type(where: str, hint: Any, value: Any) -> ConfigError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ConfigError(f"{where}: expected {_type_name(hint)}, got {type(value).__name__} {shown}")


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Check ``value`` against the field annotation ``hint`` and undo what JSON/YAML did to it (nested
    dataclasses came back as dicts, tuples as lists). A value of the wrong type raises
    :class:`ConfigError` naming ``where`` (the key path), the expected and the actual type, instead of
    failing later inside the model with an unrelated message. An int is accepted where a float is
    expected (JSON writes ``1.0`` as ``1`` in some tools); a bool is never an int or a float."""
    if hint is None or hint is Any or isinstance(hint, typing.TypeVar):
        return value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if isinstance(value, hint):  # already built (a caller passing a config object)
            return value
        if not isinstance(value, dict):
            raise _wrong_type(where, hint, value)
        return config_from_dict(hint, value, where)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # X | None: X's own error, naming the whole annotation when it is about `where`
            try:
                return _coerce(options[0], value, where)
            except ConfigError as exc:
                if str(exc).startswith(f"{where}: expected "):
                    raise _wrong_type(where, hint, value) from None
                raise
        for option in options:  # a nested config's own error is more useful than "expected A | B"
            if dataclasses.is_dataclass(option) and isinstance(value, dict):
                return _coerce(option, value, where)
        for option in options:
            try:
                return _coerce(option, value, where)
            except ConfigError:
                continue
        raise _wrong_type(where, hint, value)
    if origin is typing.Literal:
        if not any(value == a and type(value) is type(a) for a in args):
            raise _wrong_type(where, hint, value)
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise _wrong_type(where, hint, value)
        return value
    if hint is int:  # numbers.Integral: NumPy integers computed by callers pass too
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise _wrong_type(where, hint, value)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _wrong_type(where, hint, value)
        return value
    if origin is tuple or hint is tuple:
        if not isinstance(value, (list, tuple)):
            raise _wrong_type(where, hint, value)
        if not args:
            return tuple(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {_type_name(hint)} ({len(args)} values), got {len(value)} "
                              f"values {list(value)!r}")
        return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is list or hint is list:
        if not isinstance(value, list):
            raise _wrong_type(where, hint, value)
        return [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)] if args else value
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise _wrong_type(where, hint, value)
        return value
    if isinstance(hint, type):
        if not isinstance(value, hint):
            raise _wrong_type(where, hint, value)
        return value
    return value  # an annotation this checker does not know: trust the value


def config_from_dict(config_class: type, data: Any, where: str = "config") -> Any:
    """Build ``config_class`` (a dataclass) from ``dataclasses.asdict`` output read back from JSON.

    Strict on purpose: an unknown field means the checkpoint comes from other code, a missing one
    that it predates a field whose default might not be what it was trained with, and a value of the
    wrong type (``"dim": "sixty-four"``, a list where a float belongs) would only fail later with an
    unrelated message. Each raises :class:`ConfigError` (a ``ValueError``) naming the key path, e.g.
    ``config.encoder.dim: expected int, got str 'sixty-four'``, nested dataclass configs included;
    :meth:`PretrainedMixin.from_pretrained` turns it into a ``CheckpointError`` naming the file.

    The one exception is declared: a config class may list in ``LEGACY_VALUES`` (a class attribute,
    field name → value) the fields added after checkpoints of it were written, each with **the
    behaviour the code had before the field existed** — not the field's current default, which may
    be a newer recipe (``codebook_lookup`` defaults to ``"l2"`` in the dataclass but the params now
    choose ``"cosine"``; a checkpoint without the field was trained with ``"l2"``). A missing field
    listed there takes that value; any other missing field is still an error."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object for {config_class.__name__}, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(config_class) if f.init}
    legacy = {k: v for k, v in getattr(config_class, "LEGACY_VALUES", {}).items() if k in fields and k not in data}
    data = {**data, **legacy}
    unknown = sorted(set(data) - set(fields))
    missing = sorted(set(fields) - set(data))
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown field(s) {unknown}")
        if missing:
            parts.append(f"missing field(s) {missing}")
        raise ConfigError(f"{where} does not match {config_class.__name__}: {'; '.join(parts)}")
    try:
        hints = typing.get_type_hints(config_class)
    except (NameError, TypeError):  # an annotation that cannot be resolved: check what can be
        hints = {}
    kwargs = {name: _coerce(hints.get(name), data[name], f"{where}.{name}") for name in fields}
    return config_class(**kwargs)


def config_with_defaults(config_class: type, overrides: dict[str, Any], where: str = "params") -> Any:
    """``config_class`` from its defaults updated by ``overrides`` (params name only what they change),
    with :func:`config_from_dict`'s strictness: an unknown key is a ``ValueError`` naming it."""
    return config_from_dict(config_class, {**dataclasses.asdict(config_class()), **overrides}, where)


# --------------------------------------------------------------------------- weights


def _storage_key(t: torch.Tensor) -> tuple[Any, ...]:
    """Identity of a tensor's memory view: tensors with equal keys are the same (tied) weights."""
    return (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride())


def _alias_groups(state: dict[str, torch.Tensor]) -> list[list[str]]:
    """State-dict keys grouped by shared memory (tied weights); ``save_model`` stores one per group."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for key, tensor in state.items():
        groups.setdefault(_storage_key(tensor), []).append(key)
    return list(groups.values())


def _weights_to_save(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str] | None]:
    """What ``safetensors.torch.save_model`` wrote, without its refusal of views: one tensor per alias group
    (tied weights stored once, under the group's alphabetically first key) and the metadata mapping each
    dropped key to the kept one (``None`` when nothing is tied), each tensor copied to the CPU into
    memory of its own.

    Why the copy: safetensors refuses a tensor that is a view into a larger buffer, and on a GPU cuDNN
    flattens an RNN's weights into one such buffer (``flatten_parameters``), so ``save_model`` failed for
    every stage-2 model (the lyrics head's BiGRU) trained on CUDA: "found no suitable name to keep ...
    None is covering the entire storage" (H200, 2026-12-04). A model without such views gets the bytes
    ``save_model`` gave it (pinned by a test)."""
    tensors: dict[str, torch.Tensor] = {}
    metadata: dict[str, str] = {}
    for group in _alias_groups(state):
        kept = sorted(group)[0]
        tensors[kept] = state[kept].detach().to("cpu", copy=True).contiguous()
        metadata.update({key: kept for key in group if key != kept})
    return tensors, (metadata or None)


def _check_state(path: Path, expected: dict[str, torch.Tensor], loaded: dict[str, torch.Tensor]) -> None:
    """Raise ``CheckpointError`` unless ``loaded`` fits ``expected`` (the freshly built model)."""
    for key, tensor in expected.items():
        if key in loaded and tuple(loaded[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                path,
                f"checkpoint from another config: tensor {key!r} has shape {tuple(loaded[key].shape)} "
                f"in the file but {tuple(tensor.shape)} in the model built from config.json",
            )
    missing = [group[0] for group in _alias_groups(expected) if not any(k in loaded for k in group)]
    unexpected = [key for key in loaded if key not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing key(s) {missing[:10]}{' ...' if len(missing) > 10 else ''}")
        if unexpected:
            parts.append(f"unexpected key(s) {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}")
        raise CheckpointError(path, "weights do not match the model: " + "; ".join(parts))


def _check_finite(path: Path, expected: dict[str, torch.Tensor], loaded: dict[str, torch.Tensor]) -> None:
    """Raise ``CheckpointError`` naming the first tensor (in the model's order) holding NaN or inf: such
    weights come from a corrupted file or a diverged run, and would otherwise surface much later as
    NaN outputs that look like a problem with the audio."""
    for key in expected:
        tensor = loaded.get(key)
        if tensor is None or not (tensor.is_floating_point() or tensor.is_complex()):
            continue
        if not bool(torch.isfinite(tensor).all()):
            n_nan, n_inf = int(torch.isnan(tensor).sum()), int(torch.isinf(tensor).sum())
            raise CheckpointError(
                path,
                f"tensor {key!r} holds non-finite values ({n_nan} NaN, {n_inf} inf of {tensor.numel()}): "
                "the file is corrupted or the run diverged; use an earlier checkpoint or retrain",
            )


def _replace_into(tmp_dir: Path, directory: Path, names: tuple[str, ...]) -> None:
    """Move the files into place with the permissions a plain ``open`` would give them (the writers
    may create them 0600; a rename keeps that)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        os.chmod(tmp_dir / name, default_file_mode(directory / name))
        os.replace(tmp_dir / name, directory / name)


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` for an ``nn.Module`` built as ``cls(config)``.

    The class must set ``config_class`` (a dataclass type) and store its config instance as
    ``self.config``; the constructor must accept that config as its first argument. Persistent
    buffers (e.g. normalisation statistics, BEST-RQ's frozen projection) are saved with the weights."""

    config_class: ClassVar[type]
    config: Any

    def _checked_config(self) -> Any:
        config = getattr(self, "config", None)
        config_class = getattr(type(self), "config_class", None)
        if config_class is None or not dataclasses.is_dataclass(config_class):
            raise TypeError(f"{type(self).__name__} needs a dataclass class attribute 'config_class'")
        if not isinstance(config, config_class):
            raise TypeError(
                f"{type(self).__name__}.config must be a {config_class.__name__} instance, "
                f"got {type(config).__name__}"
            )
        return config

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created if needed),
        replacing any previous checkpoint there. Returns the directory."""
        if not isinstance(self, nn.Module):
            raise TypeError("PretrainedMixin must be mixed into an nn.Module")
        config = self._checked_config()
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "model_type": type(self).__name__,
            "format_version": FORMAT_VERSION,
            "duotok_version": duotok.__version__,
            "config": dataclasses.asdict(config),
        }
        tmp_dir = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
        try:
            with open(tmp_dir / CONFIG_NAME, "w", encoding="utf-8") as fh:
                json.dump(header, fh, indent=1)
                fh.write("\n")
            # No metadata beyond save_model's (the dropped tied keys): safetensors writes its metadata map
            # in random (Rust HashMap) order, so more keys could make identical models give different bytes.
            tensors, metadata = _weights_to_save(self.state_dict())
            safetensors.torch.save_file(tensors, str(tmp_dir / WEIGHTS_NAME), metadata=metadata)
            # Weights first: a crash between the renames then fails loudly (shape/key mismatch).
            _replace_into(tmp_dir, directory, (WEIGHTS_NAME, CONFIG_NAME))
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        return directory

    @classmethod
    def read_config(cls, directory: str | os.PathLike[str]) -> Any:
        """The validated config of the checkpoint in ``directory``, without loading any weights."""
        config_path = Path(directory) / CONFIG_NAME
        if not Path(directory).is_dir():
            raise CheckpointError(directory, "checkpoint directory not found")
        if not config_path.is_file():
            raise CheckpointError(config_path, "config file not found")
        try:
            header = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(config_path, f"unreadable JSON ({exc})") from exc
        if not isinstance(header, dict) or not {"model_type", "format_version", "config"} <= set(header):
            raise CheckpointError(config_path, "expected keys 'model_type', 'format_version' and 'config'")
        if header["model_type"] != cls.__name__:
            raise CheckpointError(
                config_path, f"checkpoint holds a {header['model_type']!r}, not a {cls.__name__!r}"
            )
        if header["format_version"] != FORMAT_VERSION:
            raise CheckpointError(
                config_path,
                f"format_version {header['format_version']!r} is not supported (expected {FORMAT_VERSION})",
            )
        try:
            return config_from_dict(cls.config_class, header["config"])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(config_path, str(exc)) from exc

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], map_location: str | torch.device = "cpu"
    ) -> Self:
        """Rebuild the model from ``config.json``, load ``model.safetensors`` strictly, move it to
        ``map_location`` and return it in eval mode (call ``.train()`` to fine-tune)."""
        directory = Path(directory)
        config = cls.read_config(directory)
        weights_path = directory / WEIGHTS_NAME
        if not weights_path.is_file():
            raise CheckpointError(weights_path, "weights file not found")
        try:
            model = cls(config)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(directory / CONFIG_NAME, f"config cannot build a model: {exc}") from exc
        try:
            loaded = safetensors.torch.load_file(str(weights_path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types for corrupt files
            raise CheckpointError(weights_path, f"unreadable safetensors file ({exc})") from exc
        expected = model.state_dict()
        _check_state(weights_path, expected, loaded)
        _check_finite(weights_path, expected, loaded)
        # strict=False only because tied weights are stored once; _check_state already verified keys.
        model.load_state_dict(loaded, strict=False)
        return model.to(map_location).eval()  # type: ignore[return-value]


# --------------------------------------------------------------------------- training state


def capture_rng_state() -> dict[str, Any]:
    """This process's Python, NumPy (global), torch CPU and (when initialised) CUDA RNG states, as
    plain lists and tensors so a file holding them stays loadable with ``weights_only=True``."""
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_key, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": py_version, "internal": list(py_internal), "gauss_next": py_gauss},
        "numpy": {
            "name": str(np_name),
            "key": [int(k) for k in np_key],
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set the RNGs back to a :func:`capture_rng_state` result (CUDA only when the device count matches)."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["name"],
            np.asarray(npst["key"], dtype=np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_training_state(
    path: str | os.PathLike[str],
    *,
    step: int,
    optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Atomically ``torch.save`` what resuming needs besides the weights: the step, optimizer and
    scheduler state dicts, ``extra`` (plain Python/tensor values only, so the file stays loadable with
    ``weights_only=True``) and the global RNG states. Weights go through ``save_pretrained``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": TRAINING_STATE_VERSION,
        "step": int(step),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "extra": dict(extra or {}),
        "rng": capture_rng_state(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_training_state(
    path: str | os.PathLike[str],
    optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    *,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load a :func:`save_training_state` file (``weights_only=True``) into ``optimizer`` (and
    ``scheduler``), restore the RNG states, and return ``{"step": int, "extra": dict}``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "training state file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(path, f"unreadable training state ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format_version") != TRAINING_STATE_VERSION:
        raise CheckpointError(path, "not a duotok training state (format_version missing or unsupported)")
    try:
        optimizer.load_state_dict(payload["optimizer"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(path, f"optimizer state does not fit this optimizer ({exc})") from exc
    if scheduler is not None:
        if payload["scheduler"] is None:
            raise CheckpointError(path, "a scheduler was given but the training state holds none")
        scheduler.load_state_dict(payload["scheduler"])
    if restore_rng:
        restore_rng_state(payload["rng"])
    return {"step": int(payload["step"]), "extra": payload["extra"]}
