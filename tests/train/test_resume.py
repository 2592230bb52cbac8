"""Killed and resumed = uninterrupted: the training state restores the data position and the RNG
states, so a resumed run's parameters and optimizer state equal an uninterrupted run's bit for bit."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from duotok.io.checkpoint import PretrainedMixin
from duotok.train.loop import TrainConfig, Trainer, lr_lambda

HERE = Path(__file__).parent


@dataclass
class ToyConfig:
    dim: int = 4


class MaskedToy(nn.Module, PretrainedMixin):
    """A linear model whose forward masks and perturbs its input with the global torch RNG, as BEST-RQ
    masking and bottleneck noise do: a resume that does not restore the RNG changes every later step."""

    config_class = ToyConfig

    def __init__(self, config: ToyConfig | None = None):
        super().__init__()
        self.config = config or ToyConfig()
        self.lin = nn.Linear(self.config.dim, 1)

    def forward(self, x, y):
        keep = (torch.rand(x.shape) > 0.3).to(x.dtype)
        noisy = x * keep + 0.05 * torch.randn(x.shape)
        loss = (self.lin(noisy).squeeze(-1) - y).pow(2).mean()
        return loss, {"kept": float(keep.mean())}


class Line(Dataset):
    def __init__(self, n=64):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


class Killed(Exception):
    pass


def loss_fn(model, batch):
    return model(batch["x"], batch["y"])


def killed_after(n_train_steps):
    """A loss function that dies on training call ``n_train_steps + 1`` (a kill between checkpoints)."""
    calls = [0]

    def fn(model, batch):
        if model.training:
            calls[0] += 1
            if calls[0] > n_train_steps:
                raise Killed
        return loss_fn(model, batch)

    return fn


def cfg(**kw):
    base = {"steps": 20, "batch_size": 8, "lr": 0.05, "warmup_steps": 3, "log_every": 2, "save_every": 1000,
            "eval_every": 5, "precision": "fp32", "seed": 3}
    return TrainConfig(**{**base, **kw})


def assert_same_training(a: Trainer, b: Trainer) -> None:
    for (name, p), q in zip(a.model.named_parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q), f"parameter {name} differs"
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for i in sa["state"]:
        for key, value in sa["state"][i].items():
            assert torch.equal(value, sb["state"][i][key]), f"optimizer state {i}.{key} differs"
    assert a.scheduler.state_dict() == b.scheduler.state_dict()


def log_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "train_log.csv") as fh:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


# 64 items / batch 8 = 8 batches per epoch: 5 is mid-epoch, 8 the end of the first epoch.
@pytest.mark.parametrize("k", [5, 8])
def test_killed_and_resumed_equals_uninterrupted(tmp_path, k):
    torch.manual_seed(0)
    straight = Trainer(MaskedToy(), loss_fn, Line(), cfg(), tmp_path / "straight", valid_data=Line(16))
    straight.fit()

    torch.manual_seed(0)
    # Checkpoint at k, killed two steps later; it validates at other steps than the runs it is compared
    # with (validation must not shift the training draws).
    first = Trainer(MaskedToy(), killed_after(k + 2), Line(), cfg(save_every=k, eval_every=1),
                    tmp_path / "resumed", valid_data=Line(16))
    with pytest.raises(Killed):
        first.fit()
    state = torch.load(tmp_path / "resumed" / "last" / "training_state.pt", weights_only=True)
    assert state["step"] == k
    assert (state["extra"]["epoch"], state["extra"]["batches_in_epoch"]) == (0, k)
    assert state["extra"]["world_size"] == 1 and len(state["extra"]["per_rank"]) == 1

    torch.manual_seed(123)  # another fresh init and global RNG state: the checkpoint decides
    resumed = Trainer(MaskedToy(), loss_fn, Line(), cfg(), tmp_path / "resumed", valid_data=Line(16))
    result = resumed.fit()
    assert result.resumed_from == k and result.step == 20

    assert_same_training(straight, resumed)
    assert log_rows(tmp_path / "straight") == log_rows(tmp_path / "resumed")
    with open(tmp_path / "resumed" / "valid_log.csv") as fh:
        valid_steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert valid_steps == list(range(1, k + 1)) + [10, 15, 20]


def test_resume_skips_consumed_batches_by_index_without_loading_them(tmp_path):
    loaded: list[int] = []

    class Counting(Line):
        def __getitem__(self, i):
            loaded.append(i)
            return super().__getitem__(i)

    Trainer(MaskedToy(), loss_fn, Counting(), cfg(steps=5), tmp_path).fit()
    first_epoch = list(loaded)
    loaded.clear()
    Trainer(MaskedToy(), loss_fn, Counting(), cfg(steps=6), tmp_path).fit()
    assert len(loaded) == 8, "only the one batch of step 6 is loaded after resuming at step 5"
    assert not set(loaded) & set(first_epoch), "and it is the epoch's sixth batch, not a repeated one"


def test_a_longer_resumed_run_uses_its_own_lr_schedule(tmp_path):
    Trainer(MaskedToy(), loss_fn, Line(), cfg(steps=10), tmp_path).fit()
    longer = cfg(steps=40)
    trainer = Trainer(MaskedToy(), loss_fn, Line(), longer, tmp_path)
    assert trainer.try_resume() == 10
    expected = longer.lr * lr_lambda(10, longer)
    assert trainer.optimizer.param_groups[0]["lr"] == expected
    assert trainer.scheduler.get_last_lr() == [expected]


def test_checkpoint_without_data_position_resumes_with_a_fresh_epoch(tmp_path, capsys):
    Trainer(MaskedToy(), loss_fn, Line(), cfg(steps=4), tmp_path).fit()
    path = tmp_path / "last" / "training_state.pt"
    state = torch.load(path, weights_only=True)
    for key in ("batches_in_epoch", "per_rank", "world_size"):  # as written before exact resume
        del state["extra"][key]
    torch.save(state, path)
    trainer = Trainer(MaskedToy(), loss_fn, Line(), cfg(steps=6), tmp_path)
    assert trainer.try_resume() == 4
    assert (trainer.epoch, trainer.batch_in_epoch) == (1, 0)
    assert "not exactly as an uninterrupted run" in capsys.readouterr().out


def test_killed_and_resumed_equals_uninterrupted_under_torchrun(tmp_path):
    """Two processes (gloo): each rank's own RNG states are saved (gathered to rank 0) and restored."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(HERE / "ddp_resume_script.py"), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = torch.load(tmp_path / "resumed" / "last" / "training_state.pt", weights_only=True)
    per_rank = state["extra"]["per_rank"]
    assert state["extra"]["world_size"] == 2 and len(per_rank) == 2
    assert not torch.equal(per_rank[0]["rng"]["torch"], per_rank[1]["rng"]["torch"]), \
        "each process draws its own masks"
    for rank in (0, 1):
        a = torch.load(tmp_path / f"straight_rank{rank}.pt", weights_only=True)
        b = torch.load(tmp_path / f"resumed_rank{rank}.pt", weights_only=True)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"rank {rank}: {key} differs"
