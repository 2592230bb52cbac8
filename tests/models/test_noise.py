"""Bottleneck noise: identity in eval, input-independent replacement, selection rate, padding."""

from __future__ import annotations

import pytest
import torch

from duotok.models.noise import BottleneckNoise


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


def test_invalid_settings_raise():
    with pytest.raises(ValueError):
        BottleneckNoise("mix")
    with pytest.raises(ValueError):
        BottleneckNoise(prob=1.5)
