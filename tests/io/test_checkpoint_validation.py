"""Checkpoints that fail clearly: non-finite weights and config values of the wrong type are refused at
load time, naming the file, the tensor or key, and (for configs) the expected type."""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field

import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

from duotok.errors import CheckpointError, ConfigError
from duotok.io.checkpoint import PretrainedMixin, config_from_dict, config_with_defaults
from duotok.models.bestrq import BestRQModel
from duotok.train.loop import TrainConfig
from duotok.train.pretrain import build_config


@dataclass
class InnerConfig:
    dim: int = 4
    gain: float = 1.5


@dataclass
class ToyConfig:
    inner: InnerConfig = field(default_factory=InnerConfig)
    sizes: tuple[int, int] = (3, 2)
    widths: tuple[int, ...] = (1, 2)
    name: str | None = None
    tied: bool = False
    extra: InnerConfig | None = None


class Toy(nn.Module, PretrainedMixin):
    config_class = ToyConfig

    def __init__(self, config: ToyConfig | None = None):
        super().__init__()
        self.config = config or ToyConfig()
        self.register_buffer("scale", torch.ones(self.config.inner.dim))
        self.hidden = nn.Linear(self.config.inner.dim, self.config.sizes[0])


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    return Toy().save_pretrained(tmp_path / "ckpt")


def _rewrite_weights(directory, **changes):
    weights = safetensors.torch.load_file(directory / "model.safetensors")
    for key, edit in changes.items():
        edit(weights[key.replace("__", ".")])
    safetensors.torch.save_file(weights, directory / "model.safetensors")


def _set(index, value):
    def edit(t):
        t.view(-1)[index] = value
    return edit


# --------------------------------------------------------------------------- non-finite weights


def test_nan_weights_name_the_file_and_the_first_non_finite_tensor(saved):
    # hidden.weight comes before hidden.bias in the model's order: it is the one named
    _rewrite_weights(saved, hidden__bias=_set(0, float("nan")), hidden__weight=_set(2, float("inf")))
    with pytest.raises(CheckpointError, match=r"tensor 'hidden.weight' holds non-finite values \(0 NaN, 1 inf of 12\)") \
            as info:
        Toy.from_pretrained(saved)
    assert info.value.path == str(saved / "model.safetensors")


def test_non_finite_buffer_is_refused_too(saved):
    _rewrite_weights(saved, scale=lambda t: t.fill_(float("nan")))
    with pytest.raises(CheckpointError, match=r"tensor 'scale' holds non-finite values \(4 NaN, 0 inf of 4\)"):
        Toy.from_pretrained(saved)


def test_corrupted_bytes_in_the_weights_file(saved):
    """Bytes overwritten on disk (0xFF... is a float32 NaN): caught at load, not later as odd audio."""
    path = saved / "model.safetensors"
    raw = bytearray(path.read_bytes())
    header_len = struct.unpack("<Q", raw[:8])[0]
    raw[8 + header_len: 8 + header_len + 4] = b"\xff\xff\xff\xff"  # the first element of the data
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"model.safetensors: tensor '.+' holds non-finite values \(1 NaN"):
        Toy.from_pretrained(saved)


def test_finite_weights_load(saved):
    assert torch.equal(Toy.from_pretrained(saved).scale, torch.ones(4))


# --------------------------------------------------------------------------- config types


def _write_config(directory, **changes):
    path = directory / "config.json"
    header = json.loads(path.read_text())
    for dotted, value in changes.items():
        target = header["config"]
        *parents, key = dotted.split("__")
        for p in parents:
            target = target[p]
        target[key] = value
    path.write_text(json.dumps(header))
    return path


@pytest.mark.parametrize(("changes", "message"), [
    ({"inner__dim": "sixty-four"}, r"config.inner.dim: expected int, got str 'sixty-four'"),
    ({"inner__gain": [1.5]}, r"config.inner.gain: expected float, got list \[1.5\]"),
    ({"inner__dim": True}, r"config.inner.dim: expected int, got bool True"),
    ({"inner__dim": 4.0}, r"config.inner.dim: expected int, got float 4.0"),
    ({"inner": 4}, r"config.inner: expected InnerConfig, got int 4"),
    ({"sizes": [3]}, r"config.sizes: expected tuple\[int, int\] \(2 values\), got 1 values \[3\]"),
    ({"widths": [1, "2"]}, r"config.widths\[1\]: expected int, got str '2'"),
    ({"name": 3}, r"config.name: expected str \| None, got int 3"),
    ({"tied": "yes"}, r"config.tied: expected bool, got str 'yes'"),
    ({"extra": {"dim": "x", "gain": 1.0}}, r"config.extra.dim: expected int, got str 'x'"),
])
def test_wrong_config_types_name_file_key_and_expected_type(saved, changes, message):
    path = _write_config(saved, **changes)
    with pytest.raises(CheckpointError, match=message) as info:
        Toy.from_pretrained(saved)
    assert info.value.path == str(path)
    with pytest.raises(CheckpointError, match=message):
        Toy.read_config(saved)


def test_config_values_json_may_legitimately_change_are_accepted(saved):
    _write_config(saved, inner__gain=2, name="x", extra={"dim": 4, "gain": 0.5})  # an int where a float goes
    config = Toy.read_config(saved)
    assert config.inner.gain == 2 and config.extra == InnerConfig(4, 0.5) and config.sizes == (3, 2)
    assert config_from_dict(InnerConfig, {"dim": np.int64(3), "gain": np.float32(0.5)}).dim == 3


def test_a_real_stage_checkpoint_with_a_wrong_nested_type(tmp_path):
    model_cfg, _, _ = build_config("smoke")
    directory = BestRQModel(model_cfg).save_pretrained(tmp_path / "bestrq")
    _write_config(directory, encoder__dim="sixty-four")
    with pytest.raises(CheckpointError, match=r"config.json: config.encoder.dim: expected int, got str 'sixty-four'"):
        BestRQModel.from_pretrained(directory)
    _write_config(directory, encoder__dim=model_cfg.encoder.dim, mask_prob=[0.6])
    with pytest.raises(CheckpointError, match=r"config.json: config.mask_prob: expected float, got list \[0.6\]"):
        BestRQModel.from_pretrained(directory)


def test_params_overrides_are_checked_the_same_way():
    with pytest.raises(ConfigError, match=r"autoencoder.model.inner.dim: expected int, got str '8'"):
        config_with_defaults(ToyConfig, {"inner": {**asdict(InnerConfig()), "dim": "8"}}, "autoencoder.model")
    with pytest.raises(ConfigError, match=r"train.steps: expected int, got str '10'"):
        TrainConfig.from_dict({"steps": "10"})
    with pytest.raises(ConfigError, match=r"train.betas: expected tuple\[float, float\]"):
        TrainConfig.from_dict({"betas": 0.9})
    assert TrainConfig.from_dict({"betas": [0.9, 0.95], "lr": 1}).betas == (0.9, 0.95)


@dataclass
class GrownConfig:
    """A config that gained ``lookup`` after checkpoints were written; the old behaviour was "l2"
    although today's default is "cosine"."""

    LEGACY_VALUES = {"lookup": "l2"}  # noqa: RUF012 (mirrors the models' ClassVar)
    dim: int = 4
    lookup: str = "cosine"


def test_a_field_added_later_takes_its_declared_legacy_value_not_its_default():
    assert config_from_dict(GrownConfig, {"dim": 3}).lookup == "l2"
    assert config_from_dict(GrownConfig, {"dim": 3, "lookup": "cosine"}).lookup == "cosine"
    with pytest.raises(ConfigError, match=r"missing field\(s\) \['dim'\]"):
        config_from_dict(GrownConfig, {"lookup": "l2"})


@pytest.mark.parametrize("model_path", ["duotok.models.multitask:MultiTaskModel",
                                        "duotok.models.dualtrack:DualTrackModel",
                                        "duotok.models.autoencoder:WaveAutoencoder"])
def test_checkpoints_written_before_the_issue_17_and_18_fields_still_load(tmp_path, model_path):
    """A config.json without the fields added by issues 17 (codebook lookup, mask spectrum, lyrics
    context, ...) and 18 (the autoencoder's phase options) loads with the behaviour it was trained
    with; every declared legacy value is a valid value of its field."""
    import importlib

    module, name = model_path.split(":")
    model_class = getattr(importlib.import_module(module), name)
    config_class = model_class.config_class
    legacy = config_class.LEGACY_VALUES
    config = config_from_dict(config_class, {k: v for k, v in json.loads(json.dumps(asdict(config_class())))
                                             .items() if k not in legacy})
    for key, value in legacy.items():
        got = getattr(config, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key
