"""Checkpoints (config.json + model.safetensors) and resumable training state."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import numpy as np
import pytest
import safetensors.torch
import torch
from torch import nn

from duotok.errors import CheckpointError
from duotok.io import PretrainedMixin, load_training_state, save_training_state


@dataclass
class ToyConfig:
    dim: int = 4
    vocab: int = 6


class Toy(nn.Module, PretrainedMixin):
    """Embedding tied to the output layer (a shared tensor) plus a persistent buffer."""

    config_class = ToyConfig

    def __init__(self, config: ToyConfig | None = None):
        super().__init__()
        self.config = config or ToyConfig()
        self.embed = nn.Embedding(self.config.vocab, self.config.dim)
        self.hidden = nn.Linear(self.config.dim, self.config.dim)
        self.out = nn.Linear(self.config.dim, self.config.vocab, bias=False)
        self.out.weight = self.embed.weight
        self.register_buffer("scale", torch.ones(self.config.dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(self.embed(tokens)) * self.scale)


class OtherToy(Toy):
    pass


@dataclass
class RNNToyConfig:
    dim: int = 3


class RNNToy(nn.Module, PretrainedMixin):
    """A GRU, whose weights cuDNN flattens into one buffer on a GPU."""

    config_class = RNNToyConfig

    def __init__(self, config: RNNToyConfig | None = None):
        super().__init__()
        self.config = config or RNNToyConfig()
        self.gru = nn.GRU(self.config.dim, 4, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(x)[0]


def _toy(seed: int = 0, **kw) -> Toy:
    torch.manual_seed(seed)
    model = Toy(ToyConfig(**kw))
    model.scale.fill_(2.0)
    return model


def test_round_trip_restores_outputs_buffers_and_tied_weights(tmp_path):
    model = _toy()
    directory = model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in directory.iterdir()) == ["config.json", "model.safetensors"]
    header = json.loads((directory / "config.json").read_text())
    assert header["model_type"] == "Toy" and header["format_version"] == 1
    assert header["config"] == {"dim": 4, "vocab": 6} and "duotok_version" in header
    loaded = Toy.from_pretrained(directory)
    tokens = torch.tensor([[0, 3, 5]])
    assert torch.equal(loaded(tokens), model(tokens))
    assert torch.equal(loaded.scale, model.scale)
    assert loaded.out.weight is loaded.embed.weight


def test_weights_that_are_views_into_one_buffer_are_saved_and_restored(tmp_path):
    """cuDNN keeps an RNN's weights as views into one flat buffer on a GPU; safetensors' save_model refused
    such tensors ("None is covering the entire storage"). Emulated on the CPU: every parameter of a GRU
    is re-pointed into one flat storage, as flatten_parameters does."""
    torch.manual_seed(0)
    model = RNNToy()
    params = list(model.gru.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    offset = 0
    with torch.no_grad():
        for p in params:
            p.set_(flat.untyped_storage(), offset, p.shape, p.stride())
            offset += p.numel()
    assert len({p.untyped_storage().data_ptr() for p in model.gru.parameters()}) == 1
    with pytest.raises(RuntimeError, match="covering the entire storage"):
        safetensors.torch.save_model(model, str(tmp_path / "plain.safetensors"))
    x = torch.randn(2, 5, 3)
    loaded = RNNToy.from_pretrained(model.save_pretrained(tmp_path / "ckpt"))
    assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize("build", [_toy, RNNToy], ids=["tied", "untied"])
def test_a_model_without_views_writes_the_bytes_save_model_wrote(tmp_path, build):
    model = build()
    safetensors.torch.save_model(model, str(tmp_path / "reference.safetensors"))
    directory = model.save_pretrained(tmp_path / "ckpt")
    assert (directory / "model.safetensors").read_bytes() == (tmp_path / "reference.safetensors").read_bytes()


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    _toy(seed=0).save_pretrained(tmp_path / "ckpt")
    _toy(seed=1).save_pretrained(tmp_path / "ckpt")  # overwriting works
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    before = {p.name: p.read_bytes() for p in (tmp_path / "ckpt").iterdir()}

    def broken_save(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        _toy(seed=3).save_pretrained(tmp_path / "ckpt")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "ckpt").iterdir()} == before


def test_weights_from_another_config_name_the_key_and_shapes(tmp_path):
    _toy(dim=4).save_pretrained(tmp_path / "small")
    _toy(dim=8).save_pretrained(tmp_path / "big")
    (tmp_path / "small" / "model.safetensors").write_bytes(
        (tmp_path / "big" / "model.safetensors").read_bytes()
    )
    # The first mismatching key in state_dict order is the root module's buffer.
    with pytest.raises(
        CheckpointError, match=r"another config: tensor 'scale' has shape \(8,\) in the file but \(4,\)"
    ):
        Toy.from_pretrained(tmp_path / "small")


def test_wrong_model_type(tmp_path):
    _toy().save_pretrained(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="'Toy', not a 'OtherToy'") as info:
        OtherToy.from_pretrained(tmp_path / "ckpt")
    assert str(tmp_path / "ckpt") in str(info.value)


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(CheckpointError, match="directory not found"):
        Toy.from_pretrained(tmp_path / "nope")
    _toy().save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors: weights file not found"):
        Toy.from_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json: config file not found"):
        Toy.from_pretrained(tmp_path / "ckpt")


def test_bad_config_json(tmp_path):
    directory = _toy().save_pretrained(tmp_path / "ckpt")
    config_path = directory / "config.json"
    header = json.loads(config_path.read_text())
    config_path.write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable JSON"):
        Toy.from_pretrained(directory)
    config_path.write_text(json.dumps({**header, "config": {"dim": 4, "vocab": 6, "depth": 2}}))
    with pytest.raises(CheckpointError, match=r"unknown field\(s\) \['depth'\]"):
        Toy.from_pretrained(directory)
    config_path.write_text(json.dumps({**header, "config": {"dim": 4}}))
    with pytest.raises(CheckpointError, match=r"missing field\(s\) \['vocab'\]"):
        Toy.from_pretrained(directory)


def test_missing_and_unexpected_tensors(tmp_path):
    directory = _toy().save_pretrained(tmp_path / "ckpt")
    weights = safetensors.torch.load_file(directory / "model.safetensors")
    safetensors.torch.save_file({**weights, "extra.weight": torch.zeros(2)}, directory / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"unexpected key\(s\) \['extra.weight'\]"):
        Toy.from_pretrained(directory)
    del weights["hidden.bias"]
    safetensors.torch.save_file(weights, directory / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"missing key\(s\) \['hidden.bias'\]"):
        Toy.from_pretrained(directory)


def _train_step(model: Toy, opt: torch.optim.Optimizer, sched) -> None:
    opt.zero_grad()
    model(torch.tensor([[1, 2, 3]])).square().mean().backward()
    opt.step()
    sched.step()


def test_training_state_round_trip(tmp_path):
    model = _toy()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    _train_step(model, opt, sched)
    path = save_training_state(
        tmp_path / "state" / "train.pt", step=7, optimizer=opt, scheduler=sched, extra={"best": 1.5}
    )
    assert [p.name for p in path.parent.iterdir()] == ["train.pt"]
    saved_opt = {k: v.clone() for k, v in opt.state[model.hidden.weight].items()}
    expected = (torch.rand(3), random.random(), np.random.rand(2))

    _train_step(model, opt, sched)  # drift away from the saved state
    fresh = torch.optim.AdamW(model.parameters(), lr=1e-2)
    fresh_sched = torch.optim.lr_scheduler.StepLR(fresh, step_size=1, gamma=0.5)
    info = load_training_state(path, fresh, fresh_sched)
    assert info == {"step": 7, "extra": {"best": 1.5}}
    for key, value in saved_opt.items():
        assert torch.equal(fresh.state[model.hidden.weight][key], value)
    assert fresh_sched.last_epoch == 1 and fresh.param_groups[0]["lr"] == pytest.approx(5e-3)
    assert torch.equal(torch.rand(3), expected[0])
    assert random.random() == expected[1]
    assert np.array_equal(np.random.rand(2), expected[2])
    raw = torch.load(path, weights_only=True)
    assert raw["step"] == 7


def test_training_state_errors(tmp_path):
    opt = torch.optim.SGD(_toy().parameters(), lr=0.1)
    with pytest.raises(CheckpointError, match="not found"):
        load_training_state(tmp_path / "missing.pt", opt)
    path = save_training_state(tmp_path / "train.pt", step=0, optimizer=opt)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    with pytest.raises(CheckpointError, match="holds none"):
        load_training_state(path, opt, sched)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_training_state(tmp_path / "junk.pt", opt)


@dataclass
class NestedConfig:
    toy: ToyConfig
    sizes: tuple[int, ...] = (1, 2)
    name: str | None = None


def test_config_from_dict_rebuilds_nested_dataclasses_and_tuples():
    import dataclasses

    from duotok.io import config_from_dict

    config = NestedConfig(ToyConfig(dim=3), sizes=(4, 5), name="x")
    data = json.loads(json.dumps(dataclasses.asdict(config)))
    assert config_from_dict(NestedConfig, data) == config
    with pytest.raises(
        ValueError, match=r"config.toy does not match ToyConfig: unknown field\(s\) \['bad'\]"
    ):
        config_from_dict(NestedConfig, {**data, "toy": {"dim": 3, "vocab": 6, "bad": 1}})
