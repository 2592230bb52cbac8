"""The generic training loop on a toy model: learning, resuming, the NaN guard, the LR schedule."""

from __future__ import annotations

import csv
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from duotok.errors import CheckpointError
from duotok.io.checkpoint import PretrainedMixin
from duotok.train.loop import TrainConfig, Trainer, lr_lambda


@dataclass
class ToyConfig:
    dim: int = 4


class Toy(nn.Module, PretrainedMixin):
    config_class = ToyConfig

    def __init__(self, config: ToyConfig | None = None):
        super().__init__()
        self.config = config or ToyConfig()
        self.lin = nn.Linear(self.config.dim, 1)

    def forward(self, x, y):
        loss = (self.lin(x).squeeze(-1) - y).pow(2).mean()
        return loss, {"abs_w": float(self.lin.weight.detach().abs().mean())}


class Line(Dataset):
    """y = x · w* exactly, so a linear model can drive the loss to ~0."""

    def __init__(self, n=64):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def loss_fn(model, batch):
    return model(batch["x"], batch["y"])


def cfg(**kw):
    base = {"steps": 60, "batch_size": 8, "lr": 0.3, "warmup_steps": 5, "log_every": 10, "save_every": 20,
            "eval_every": 30, "precision": "fp32"}
    return TrainConfig(**{**base, **kw})


def test_trainer_learns_and_writes_records(tmp_path):
    torch.manual_seed(0)
    result = Trainer(Toy(), loss_fn, Line(), cfg(), tmp_path, valid_data=Line(16)).fit()
    assert result.step == 60
    with open(tmp_path / "train_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == list(range(10, 61, 10))
    assert float(rows[-1]["loss"]) < 0.1 * float(rows[0]["loss"])
    assert result.valid["loss"] < 0.5
    loaded = Toy.from_pretrained(tmp_path / "model")
    x = torch.randn(3, 4)
    trained = Toy.from_pretrained(tmp_path / "last")
    assert torch.equal(loaded.lin(x), trained.lin(x))


def test_resume_continues_where_it_stopped(tmp_path):
    torch.manual_seed(0)
    Trainer(Toy(), loss_fn, Line(), cfg(steps=20), tmp_path).fit()
    torch.manual_seed(1)  # a different fresh init must not matter: weights come from the checkpoint
    result = Trainer(Toy(), loss_fn, Line(), cfg(steps=40), tmp_path).fit()
    assert result.resumed_from == 20 and result.step == 40
    with open(tmp_path / "train_log.csv") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == [10, 20, 30, 40], "no duplicated or missing rows after a resume"


def test_resume_drops_log_rows_written_after_the_last_checkpoint(tmp_path):
    Trainer(Toy(), loss_fn, Line(), cfg(steps=20, save_every=10), tmp_path).fit()
    with open(tmp_path / "train_log.csv", "a") as fh:  # a crash after logging step 30, before saving it
        fh.write("30,0.1,0.5,0.1,0.1,1.0\n")
    Trainer(Toy(), loss_fn, Line(), cfg(steps=40, save_every=10), tmp_path).fit()
    with open(tmp_path / "train_log.csv") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == [10, 20, 30, 40]


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    Trainer(Toy(), loss_fn, Line(), cfg(steps=10), tmp_path).fit()
    with pytest.raises(CheckpointError, match="different model configuration"):
        Trainer(Toy(ToyConfig(dim=5)), loss_fn, Line(), cfg(steps=20), tmp_path).fit()
    with pytest.raises(CheckpointError, match=r"\['lr'\]"):
        Trainer(Toy(), loss_fn, Line(), cfg(steps=20, lr=0.1), tmp_path).fit()
    fresh = Trainer(Toy(), loss_fn, Line(), cfg(steps=20, lr=0.1), tmp_path).fit(resume=False)
    assert fresh.resumed_from is None and fresh.step == 20


class NaNToy(Toy):
    def forward(self, x, y):
        loss, m = super().forward(x, y)
        return loss * float("nan"), m


def test_non_finite_loss_stops_with_a_clear_error(tmp_path):
    with pytest.raises(FloatingPointError, match="not finite for 5 steps"):
        Trainer(NaNToy(), loss_fn, Line(), cfg(), tmp_path).fit()


def test_too_little_data_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="fewer than one batch"):
        Trainer(Toy(), loss_fn, Line(4), cfg(batch_size=8), tmp_path).fit()


def test_lr_schedule_warms_up_then_decays():
    c = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_lambda(0, c) == pytest.approx(0.1)
    assert lr_lambda(9, c) == pytest.approx(1.0)
    assert lr_lambda(10, c) == pytest.approx(1.0)
    assert lr_lambda(100, c) == pytest.approx(0.1)
    values = [lr_lambda(s, c) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_unknown_train_setting_is_rejected():
    with pytest.raises(ValueError, match="unknown train settings"):
        TrainConfig.from_dict({"stepz": 3})
