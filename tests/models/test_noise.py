"""Bottleneck noise: identity in eval, input-independent replacement, selection rate, padding."""

from __future__ import annotations

import pytest
import torch

from duotok.models.noise import BottleneckNoise, follow_training_step


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_eval_and_off_are_identity():
    x = torch.randn(2, 5, 4)
    for mode in ("replace", "additive", "off"):
        out, selected = BottleneckNoise(mode, prob=1.0).eval()(x)
        assert out is x and not selected.any()
    out, selected = BottleneckNoise("off", prob=1.0).train()(x)
    assert out is x and not selected.any()


def test_replaced_frames_do_not_depend_on_the_input():
    noise = BottleneckNoise("replace", prob=0.5, std=2.0).train()
    a, b = torch.randn(3, 20, 4), torch.randn(3, 20, 4) + 10.0
    out_a, sel_a = noise(a, generator=_gen())
    out_b, sel_b = noise(b, generator=_gen())
    assert torch.equal(sel_a, sel_b) and sel_a.any() and (~sel_a).any()
    assert torch.equal(out_a[sel_a], out_b[sel_b])
    assert torch.equal(out_a[~sel_a], a[~sel_a])


def test_selection_rate_matches_prob_and_padding_is_never_selected():
    noise = BottleneckNoise("replace", prob=0.3).train()
    mask = torch.ones(8, 1000, dtype=torch.bool)
    mask[:, 700:] = False
    _, selected = noise(torch.zeros(8, 1000, 2), mask=mask, generator=_gen(1))
    assert not selected[:, 700:].any()
    assert selected[:, :700].float().mean().item() == pytest.approx(0.3, abs=0.02)


def test_additive_noise_keeps_the_input_mean():
    x = torch.full((4, 500, 8), 3.0)
    out, selected = BottleneckNoise("additive", prob=1.0, std=1.0).train()(x, generator=_gen(2))
    assert selected.all()
    assert out.mean().item() == pytest.approx(3.0, abs=0.05)
    assert (out - x).std().item() == pytest.approx(1.0, abs=0.05)


def test_warmup_ramps_the_probability_linearly_then_holds_it():
    noise = BottleneckNoise("replace", prob=0.5, warmup_steps=100).train()
    seen = {}
    for step in (0, 25, 50, 100, 400):
        noise.step = step
        _, selected = noise(torch.zeros(16, 2000, 2), generator=_gen(step))
        seen[step] = selected.float().mean().item()
    assert seen[0] == 0.0 and not BottleneckNoise("replace", 0.5, warmup_steps=10).train().active
    for step, expected in ((25, 0.125), (50, 0.25), (100, 0.5), (400, 0.5)):
        assert seen[step] == pytest.approx(expected, abs=0.01), step
    constant = BottleneckNoise("replace", prob=0.5).train()
    assert constant.current_prob == 0.5, "no warm-up: the probability from step 0"


def test_finish_warmup_draws_at_the_full_probability_and_never_moves_the_step_back():
    noise = BottleneckNoise("replace", prob=0.5, warmup_steps=100).train()
    noise.finish_warmup()
    assert noise.current_prob == 0.5 and noise.step == 100
    noise.step = 300
    noise.finish_warmup()
    assert noise.step == 300


def test_warmup_draws_the_same_random_numbers_at_every_step():
    """The ramp changes the threshold, not how many numbers are drawn, so a resumed run's RNG stream
    matches an uninterrupted one whatever the step."""
    ramped = BottleneckNoise("replace", prob=0.5, warmup_steps=100).train()
    ramped.step = 50
    gen = _gen(3)
    ramped(torch.zeros(2, 30, 4), generator=gen)
    after_ramped = torch.rand(1, generator=gen)
    gen = _gen(3)
    BottleneckNoise("replace", prob=0.5).train()(torch.zeros(2, 30, 4), generator=gen)
    assert torch.equal(after_ramped, torch.rand(1, generator=gen))


def test_follow_training_step_sets_the_step_before_each_forward():
    noise = BottleneckNoise("replace", prob=0.5, warmup_steps=10).train()
    steps = iter((0, 5, 10))
    handle = follow_training_step(noise, lambda: next(steps))
    probs = []
    for _ in range(3):
        noise(torch.zeros(1, 4, 2))
        probs.append(noise.current_prob)
    assert probs == [0.0, 0.25, 0.5]
    handle.remove()
    noise(torch.zeros(1, 4, 2))
    assert noise.step == 10, "a removed hook no longer sets it"


def test_invalid_settings_raise():
    with pytest.raises(ValueError):
        BottleneckNoise("mix")
    with pytest.raises(ValueError):
        BottleneckNoise(prob=1.5)
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="warmup_steps"):
            BottleneckNoise(warmup_steps=bad)


def test_matched_noise_has_the_batch_moments_and_ignores_padding():
    """``matched`` replaces frames with noise of the valid frames' per-dimension mean and spread, so a
    replaced frame cannot be told from a real one by its offset or scale; padding does not count."""
    torch.manual_seed(0)
    x = torch.randn(8, 1000, 3) * torch.tensor([1.0, 3.0, 0.5]) + torch.tensor([5.0, -2.0, 0.0])
    mask = torch.ones(8, 1000, dtype=torch.bool)
    mask[:, 900:] = False
    x[:, 900:] = 1e6                                   # padding: must not move the moments
    out, selected = BottleneckNoise("matched", prob=1.0).train()(x, mask=mask, generator=_gen(4))
    replaced = out[selected]
    assert torch.allclose(replaced.mean(0), torch.tensor([5.0, -2.0, 0.0]), atol=0.1)
    assert torch.allclose(replaced.std(0), torch.tensor([1.0, 3.0, 0.5]), rtol=0.05)
    assert torch.equal(out[~mask], x[~mask])


def test_matched_noise_passes_no_gradient_through_replaced_frames():
    x = torch.randn(2, 50, 4, requires_grad=True)
    out, selected = BottleneckNoise("matched", prob=0.5).train()(x, generator=_gen(5))
    out.sum().backward()
    assert selected.any() and (~selected).any()
    assert torch.equal(x.grad[selected], torch.zeros_like(x.grad[selected]))
    assert torch.equal(x.grad[~selected], torch.ones_like(x.grad[~selected]))
