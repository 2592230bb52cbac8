"""BEST-RQ targets and masking: frozen seeded quantizer, frame stacking, span masks, masked loss."""

from __future__ import annotations

import pytest
import torch

from duotok.modules.conv import ConvDownsample
from duotok.quantization.bestrq import (
    RandomProjectionQuantizer,
    bestrq_loss,
    expand_mask,
    replace_masked,
    span_mask,
    stack_frames,
)


def test_codes_are_deterministic_per_seed():
    x = torch.randn(2, 30, 32)
    a = RandomProjectionQuantizer(32, code_dim=8, codebook_size=64, seed=1)
    b = RandomProjectionQuantizer(32, code_dim=8, codebook_size=64, seed=1)
    c = RandomProjectionQuantizer(32, code_dim=8, codebook_size=64, seed=2)
    codes = a(x)
    assert codes.shape == (2, 30) and codes.dtype == torch.long
    assert torch.equal(codes, b(x))
    assert not torch.equal(codes, c(x))
    assert int(codes.min()) >= 0 and int(codes.max()) < 64


def test_projection_and_codebook_are_saved_buffers_not_parameters():
    rpq = RandomProjectionQuantizer(32, code_dim=8, codebook_size=64, seed=0)
    assert list(rpq.parameters()) == []
    assert set(rpq.state_dict()) == {"projection", "codebook"}
    other = RandomProjectionQuantizer(32, code_dim=8, codebook_size=64, seed=5)
    other.load_state_dict(rpq.state_dict())
    x = torch.randn(1, 10, 32)
    assert torch.equal(other(x), rpq(x))


def test_codes_are_scale_invariant_and_match_the_nearest_entry():
    rpq = RandomProjectionQuantizer(16, code_dim=4, codebook_size=32, seed=0)
    x = torch.randn(1, 50, 16)
    assert torch.equal(rpq(x), rpq(7.5 * x))
    # An input whose projection points along codebook entry j gets code j.
    j = 11
    target = rpq.codebook[j]
    pre = torch.linalg.lstsq(rpq.projection.T, target[:, None]).solution[:, 0]
    assert int(rpq(pre[None, None])) == j


def test_no_gradient_through_codes():
    rpq = RandomProjectionQuantizer(8, code_dim=4, codebook_size=16)
    x = torch.randn(1, 5, 8, requires_grad=True)
    assert not rpq(x).requires_grad


@pytest.mark.parametrize("frames", [1, 7, 400, 403])
def test_stack_frames_aligns_with_conv_downsample(frames):
    mel = torch.randn(2, 8, frames)
    stacked = stack_frames(mel, 4)
    assert stacked.shape == (2, ConvDownsample(8, 4).output_length(frames), 32)
    assert torch.equal(stacked[0, 0, :8], mel[0, :, 0])
    if frames > 1:
        assert torch.equal(stacked[0, 0, 8:16], mel[0, :, 1])
    last = (frames - 1) % 4
    assert torch.equal(stacked[1, -1, 8 * last : 8 * last + 8], mel[1, :, -1])
    assert not stacked[1, -1, 8 * last + 8 :].any()


def test_span_mask_fraction_spans_and_padding():
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([2000, 1500, 733, 1])
    mask = span_mask(4, 2000, mask_prob=0.6, span=10, generator=gen, lengths=lengths)
    assert mask.dtype == torch.bool and mask.shape == (4, 2000)
    valid = torch.arange(2000)[None, :] < lengths[:, None]
    assert not (mask & ~valid).any()
    assert mask.sum(dim=1).min() >= 1
    fraction = mask[:3].sum() / valid[:3].sum()
    assert abs(float(fraction) - 0.6) < 0.05
    # Spans are whole 10-frame blocks aligned at multiples of 10 (inside the valid region).
    blocks = mask[0].view(-1, 10)
    assert torch.equal(blocks.all(dim=1), blocks.any(dim=1))


def test_span_mask_always_masks_something():
    gen = torch.Generator().manual_seed(0)
    mask = span_mask(64, 30, mask_prob=0.0, span=10, generator=gen, lengths=torch.full((64,), 12))
    assert (mask.sum(dim=1) >= 1).all()
    assert not mask[:, 12:].any()
    with pytest.raises(ValueError):
        span_mask(2, 10, lengths=torch.tensor([0, 5]))


def test_span_mask_is_reproducible_with_a_generator():
    a = span_mask(3, 100, generator=torch.Generator().manual_seed(3))
    b = span_mask(3, 100, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_expand_mask_covers_the_frames_of_each_token():
    mask = torch.tensor([[True, False, True]])
    assert expand_mask(mask, 4, 10).tolist() == [[True] * 4 + [False] * 4 + [True] * 2]
    with pytest.raises(ValueError):
        expand_mask(mask, 4, 8)


def test_replace_masked_touches_only_masked_frames():
    x = torch.randn(2, 20, 8) + 5.0
    original = x.clone()
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[0, 3:9] = True
    mask[1, 15:] = True
    out = replace_masked(x, mask, std=0.1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[~mask], x[~mask])
    noise = out[mask]
    assert noise.abs().max() < 1.0 and noise.std() > 0.02
    assert torch.equal(x, original)  # not modified in place
    assert not torch.equal(out, x)


def test_loss_ignores_unmasked_frames():
    logits = torch.randn(2, 12, 16, requires_grad=True)
    targets = torch.randint(0, 16, (2, 12))
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[:, 4:8] = True
    loss, acc = bestrq_loss(logits, targets, mask)
    changed = logits.detach().clone()
    changed[~mask] = 100.0 * torch.randn(int((~mask).sum()), 16)
    loss2, acc2 = bestrq_loss(changed, targets, mask)
    torch.testing.assert_close(loss, loss2)
    assert acc == acc2 and 0.0 <= float(acc) <= 1.0
    expected = torch.nn.functional.cross_entropy(logits[mask], targets[mask])
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert not logits.grad[~mask].any()


def test_loss_accuracy_and_empty_mask():
    targets = torch.tensor([[1, 2, 3]])
    logits = torch.nn.functional.one_hot(targets, 4).float() * 10
    mask = torch.tensor([[True, True, False]])
    _, acc = bestrq_loss(logits, targets, mask)
    assert float(acc) == 1.0
    loss, acc = bestrq_loss(logits.requires_grad_(), targets, torch.zeros_like(mask))
    assert float(loss.detach()) == 0.0 and float(acc) == 0.0 and loss.requires_grad
