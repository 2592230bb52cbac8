"""Learning rates per part of the model: the groups follow the prefixes, the ratios survive the schedule and
a resume, a multiplier of 0 freezes its part bit-exactly, and prefixes that name nothing are refused; a held
part stays put until its step, then trains as a fresh parameter would, across a resume too."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from duotok.errors import CheckpointError
from duotok.train.loop import TrainConfig, Trainer, lr_lambda
from duotok.train.param_groups import hold_parameters, parameter_groups


class Toy(nn.Module):
    """Two parts with the names stage 2 uses, plus a head; saves like a duotok model."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 4))
        self.encoder_extra = nn.Linear(4, 4)        # shares the prefix's letters, not its dot
        self.head = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder_extra(self.encoder(x)))

    def save_pretrained(self, path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), path / "w.pt")

    @classmethod
    def from_pretrained(cls, path) -> Toy:
        model = cls()
        model.load_state_dict(torch.load(path / "w.pt"))
        return model


def _loss(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    loss = (model(batch["x"]) - batch["y"]).square().mean()
    return loss, {}


class _Pairs(Dataset):
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(32, 3, generator=g), torch.randn(32, 1, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


def _data() -> Dataset:
    return _Pairs()


def _cfg(**kw) -> TrainConfig:
    base = {"steps": 6, "batch_size": 4, "lr": 1e-2, "warmup_steps": 2, "min_lr_ratio": 0.1, "log_every": 1,
            "eval_every": 100, "save_every": 3, "precision": "fp32"}
    return TrainConfig.from_dict({**base, **kw})


def test_groups_follow_prefixes_at_dot_boundaries_and_the_longest_prefix_wins():
    model = Toy()
    groups = parameter_groups(model, 1.0, {"encoder": 0.1, "encoder.1": 0.5})
    names = {id(p): n for n, p in model.named_parameters()}
    got = {g["name"]: (g["lr"], sorted(names[id(p)] for p in g["params"])) for g in groups}
    assert got[""] == (1.0, ["encoder_extra.bias", "encoder_extra.weight", "head.bias", "head.weight"])
    assert got["encoder"] == (pytest.approx(0.1), ["encoder.0.bias", "encoder.0.weight"])
    assert got["encoder.1"] == (0.5, ["encoder.1.bias", "encoder.1.weight"])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))   # each parameter once


@pytest.mark.parametrize("multipliers, match", [({"encodr": 0.1}, "name no trainable parameter"),
                                                ({"encoder": -1.0}, ">= 0"), ({"encoder": float("nan")}, ">= 0"),
                                                ({"encoder": float("inf")}, ">= 0"), ({"": 0.1}, "non-empty")])
def test_bad_multipliers_are_refused(multipliers, match):
    with pytest.raises(ValueError, match=match):
        parameter_groups(Toy(), 1.0, multipliers)


def test_a_zero_multiplier_leaves_its_part_bit_identical_and_the_ratio_holds_through_the_schedule(tmp_path):
    torch.manual_seed(0)
    model = Toy()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, _loss, _data(), _cfg(lr_multipliers={"encoder": 0.0, "head": 0.25}), tmp_path / "run")
    trainer.fit(resume=False)
    after = model.state_dict()
    for name in ("encoder.0.weight", "encoder.1.bias"):
        assert torch.equal(after[name], start[name]), name
    assert not torch.equal(after["head.weight"], start["head.weight"])
    rates = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert rates["encoder"] == 0.0 and rates["head"] == pytest.approx(0.25 * rates[""]) and rates[""] > 0


def test_a_resumed_grouped_run_equals_an_uninterrupted_one(tmp_path):
    def train(out, steps, resume):
        torch.manual_seed(0)
        model = Toy()
        trainer = Trainer(model, _loss, _data(), _cfg(steps=steps, lr_multipliers={"encoder": 0.1}), out)
        trainer.fit(resume=resume)
        return model.state_dict(), [g["lr"] for g in trainer.optimizer.param_groups]

    whole, whole_lrs = train(tmp_path / "a", 6, False)
    train(tmp_path / "b", 3, False)
    resumed, resumed_lrs = train(tmp_path / "b", 6, True)
    for name, value in whole.items():
        assert torch.equal(value, resumed[name]), name
    assert resumed_lrs == whole_lrs


def test_other_multipliers_cannot_resume_a_run(tmp_path):
    torch.manual_seed(0)
    Trainer(Toy(), _loss, _data(), _cfg(steps=3, lr_multipliers={"encoder": 0.1}), tmp_path / "run").fit(resume=False)
    # other groups fail on the optimiser's state; the same groups at other rates on the saved train config
    for other, match in (({}, "number of parameter groups"), ({"encoder": 0.5}, "other \\['lr_multipliers'\\]")):
        trainer = Trainer(Toy(), _loss, _data(), _cfg(steps=6, lr_multipliers=other), tmp_path / "run")
        with pytest.raises(CheckpointError, match=match):
            trainer.fit(resume=True)


def test_no_multipliers_is_the_plain_one_group_adamw(tmp_path):
    """Without multipliers the Trainer trains bit for bit as with the one-group AdamW it had before them."""
    def train(out, plain: bool) -> dict:
        torch.manual_seed(0)
        model = Toy()
        trainer = Trainer(model, _loss, _data(), _cfg(), out)
        assert len(trainer.optimizer.param_groups) == 1
        if plain:
            cfg = trainer.cfg
            trainer.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                                  betas=cfg.betas, weight_decay=cfg.weight_decay)
            trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(trainer.optimizer, lambda s: lr_lambda(s, cfg))
        trainer.fit(resume=False)
        return model.state_dict()

    grouped, plain = train(tmp_path / "a", False), train(tmp_path / "b", True)
    for name, value in plain.items():
        assert torch.equal(grouped[name], value), name


def _held_run(out, steps: int, resume: bool, holds: dict[str, int]) -> tuple[dict, list[dict]]:
    torch.manual_seed(0)
    model = Toy()
    trainer = Trainer(model, _loss, _data(), _cfg(steps=steps, save_every=1, holds=holds), out)   # train.holds
    snapshots: list[dict] = []
    trainer.optimizer.register_step_post_hook(
        lambda *_: snapshots.append({k: v.clone() for k, v in model.state_dict().items()}))
    trainer.fit(resume=resume)
    return model.state_dict(), snapshots


def test_a_held_part_stays_put_until_its_step_then_trains(tmp_path):
    torch.manual_seed(0)
    start = Toy().state_dict()
    _, snapshots = _held_run(tmp_path / "run", 6, False, {"encoder": 3})
    for i, state in enumerate(snapshots):         # after optimiser step i + 1, taken at trainer.step == i
        moved = not torch.equal(state["encoder.0.weight"], start["encoder.0.weight"])
        assert moved == (i >= 3), i
        assert not torch.equal(state["head.weight"], start["head.weight"])
        assert not torch.equal(state["encoder_extra.weight"], start["encoder_extra.weight"])   # not a prefix match


def test_holding_equals_requires_grad_off_until_the_step_so_the_part_joins_with_a_fresh_adam_state():
    """Reference: a hand-written loop that switches ``requires_grad`` on at the step (clipping and Adam then
    never see the part before it). Zeroed gradients instead of ``None`` would not match: Adam would age the
    part's step count with empty moments."""
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(1))
    y = torch.randn(16, 1, generator=torch.Generator().manual_seed(2))

    def train(use_hook: bool) -> dict:
        torch.manual_seed(0)
        model = Toy()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
        step = 0
        if use_hook:
            hold_parameters(model, {"encoder": 2}, lambda: step)
        for step in range(5):
            if not use_hook:
                for p in model.encoder.parameters():
                    p.requires_grad_(step >= 2)
            opt.zero_grad()
            (model(x[step::5]) - y[step::5]).square().mean().backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)    # small enough to clip every step
            opt.step()
        return model.state_dict()

    hooked, reference = train(True), train(False)
    for name, value in reference.items():
        assert torch.equal(hooked[name], value), name


def test_a_resumed_held_run_equals_an_uninterrupted_one_across_the_join_and_other_holds_are_refused(tmp_path):
    whole, _ = _held_run(tmp_path / "a", 6, False, {"encoder": 4})
    _held_run(tmp_path / "b", 3, False, {"encoder": 4})
    resumed, _ = _held_run(tmp_path / "b", 6, True, {"encoder": 4})
    for name, value in whole.items():
        assert torch.equal(value, resumed[name]), name
    with pytest.raises(CheckpointError, match="holds"):
        _held_run(tmp_path / "b", 8, True, {"encoder": 5})


@pytest.mark.parametrize("holds, match", [({"encodr": 3}, "name no trainable parameter"), ({"encoder": -1}, ">= 0"),
                                          ({"encoder": 2.5}, "integer"), ({"encoder": True}, "integer"),
                                          ({"": 3}, "non-empty")])
def test_bad_holds_are_refused(holds, match):
    with pytest.raises(ValueError, match=match):
        hold_parameters(Toy(), holds, lambda: 0)
