"""Gradient accumulation: ``grad_accum`` micro-batches of ``b`` train like one batch of ``grad_accum × b``,
a bad micro-batch loses its whole step without shifting the data, and a resume must keep the setting."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from duotok.errors import CheckpointError
from duotok.train.loop import TrainConfig, Trainer

sys.path.insert(0, str(Path(__file__).parent))
from test_loop import Line, Toy, cfg, loss_fn  # noqa: E402


class Indexed(Line):
    """Line whose items carry their index, so a loss function can see which items it was given."""

    def __getitem__(self, i):
        return {**super().__getitem__(i), "index": torch.tensor(i)}


def train(tmp_path, name, **kw) -> Trainer:
    torch.manual_seed(0)
    trainer = Trainer(Toy(), loss_fn, Indexed(), cfg(steps=12, save_every=1000, **kw), tmp_path / name)
    trainer.fit()
    return trainer


def test_two_micro_batches_of_four_train_like_one_batch_of_eight(tmp_path):
    whole = train(tmp_path, "whole", batch_size=8)
    accumulated = train(tmp_path, "accumulated", batch_size=4, grad_accum=2)
    for (name, p), q in zip(whole.model.named_parameters(), accumulated.model.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=f"parameter {name}")
    # ...and unlike four steps' worth of half batches without accumulation (the test can fail).
    halves = train(tmp_path, "halves", batch_size=4)
    assert not torch.allclose(halves.model.lin.weight, whole.model.lin.weight, atol=1e-4)


def test_a_step_reads_grad_accum_micro_batches_in_order(tmp_path):
    seen: list[list[int]] = []

    def recording(model, batch):
        if model.training:
            seen.append(batch["index"].tolist())
        return loss_fn(model, batch)

    torch.manual_seed(0)
    trainer = Trainer(Toy(), recording, Indexed(), cfg(steps=3, batch_size=4, grad_accum=2, eval_every=1000,
                                                       save_every=1000), tmp_path / "run")
    trainer.fit()
    assert len(seen) == 6 and trainer.step == 3
    order = torch.randperm(64, generator=torch.Generator().manual_seed(trainer.cfg.seed)).tolist()
    assert sum(seen, []) == order[:24], "micro-batches are consecutive batches of the epoch's order"
    assert trainer.batch_in_epoch == 6


def test_a_non_finite_micro_batch_skips_the_whole_step_but_keeps_the_data_position(tmp_path):
    calls = [0]

    def bad_second_call(model, batch):
        loss, metrics = loss_fn(model, batch)
        if model.training:
            calls[0] += 1
            if calls[0] == 1:          # the first micro-batch of the first step
                return loss * float("nan"), metrics
        return loss, metrics

    torch.manual_seed(0)
    trainer = Trainer(Toy(), bad_second_call, Indexed(), cfg(steps=2, batch_size=4, grad_accum=2, eval_every=1000,
                                                             save_every=1000), tmp_path / "run")
    before = trainer.model.lin.weight.detach().clone()
    result = trainer.fit()
    assert result.skipped_steps == 1 and result.step == 2
    assert trainer.batch_in_epoch == 6, "the lost step still consumed its two micro-batches"
    assert not torch.equal(before, trainer.model.lin.weight)


def test_grad_accum_must_be_positive():
    with pytest.raises(ValueError, match="grad_accum"):
        TrainConfig.from_dict({"grad_accum": 0})


def test_resume_refuses_another_grad_accum(tmp_path):
    torch.manual_seed(0)
    Trainer(Toy(), loss_fn, Indexed(), cfg(steps=4, batch_size=4, grad_accum=2, save_every=2), tmp_path / "r").fit()
    again = Trainer(Toy(), loss_fn, Indexed(), cfg(steps=8, batch_size=4, grad_accum=1), tmp_path / "r")
    with pytest.raises(CheckpointError, match="grad_accum"):
        again.fit()
