"""Pre-norm RoPE Transformer: shapes, padding invariance, relative positions, bf16 autocast."""

from __future__ import annotations

import pytest
import torch

from duotok.modules.transformer import RotaryEmbedding, TransformerStack, apply_rotary


def _stack(**kw) -> TransformerStack:
    torch.manual_seed(0)
    return TransformerStack(dim=16, n_layers=2, n_heads=2, **kw).eval()


@pytest.mark.parametrize("length", [1, 5, 33])
def test_shapes_and_hidden(length):
    model = _stack()
    x = torch.randn(3, length, 16)
    mask = torch.ones(3, length, dtype=torch.bool)
    y, hidden = model(x, mask, return_hidden=True)
    assert y.shape == x.shape
    assert len(hidden) == 2 and all(h.shape == x.shape for h in hidden)


def test_padded_frames_do_not_leak_and_padding_equals_truncation():
    model = _stack()
    x = torch.randn(2, 12, 16)
    mask = torch.arange(12)[None, :] < torch.tensor([[7], [12]])
    y1 = model(x, mask)
    x2 = x.clone()
    x2[0, 7:] = 100.0 * torch.randn(5, 16)
    y2 = model(x2, mask)
    torch.testing.assert_close(y1[0, :7], y2[0, :7])
    torch.testing.assert_close(y1[1], y2[1])
    torch.testing.assert_close(y1[0, :7], model(x[:1, :7])[0], atol=1e-5, rtol=1e-5)


def test_attention_depends_on_relative_position_only():
    """Prepending masked frames shifts every absolute position; with RoPE nothing changes."""
    model = _stack()
    x = torch.randn(1, 8, 16)
    shifted = torch.cat([torch.randn(1, 3, 16), x], dim=1)
    mask = torch.tensor([[False] * 3 + [True] * 8])
    torch.testing.assert_close(model(shifted, mask)[:, 3:], model(x), atol=1e-5, rtol=1e-5)


def test_rope_preserves_norms_and_scores_depend_on_offset():
    rope = RotaryEmbedding(8)
    cos, sin = rope(20)
    q, k = torch.randn(8), torch.randn(8)
    rq = apply_rotary(q.expand(20, 8), cos, sin)
    rk = apply_rotary(k.expand(20, 8), cos, sin)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm().expand(20))
    torch.testing.assert_close(rq[2] @ rk[5], rq[12] @ rk[15], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(rq[2] @ rk[5], rq[2] @ rk[9])


def test_bf16_autocast_is_finite():
    model = _stack()
    x = torch.randn(2, 10, 16)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x, mask)
    assert y.shape == x.shape and torch.isfinite(y.float()).all()
    torch.testing.assert_close(y.float(), model(x, mask), atol=0.1, rtol=0.1)


def test_fully_padded_sequence_stays_finite():
    model = _stack()
    y = model(torch.randn(2, 4, 16), torch.tensor([[True] * 4, [False] * 4]))
    assert torch.isfinite(y).all()


def test_gradient_checkpointing_gives_the_same_gradients():
    x = torch.randn(2, 6, 16)
    grads = []
    for flag in (False, True):
        model = _stack(gradient_checkpointing=flag).train()
        model(x).square().sum().backward()
        grads.append(model.blocks[0].attn.qkv.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_rejects_bad_shapes():
    model = _stack()
    with pytest.raises(ValueError):
        model(torch.randn(2, 5, 8))
    with pytest.raises(ValueError):
        model(torch.randn(2, 5, 16), torch.ones(2, 4, dtype=torch.bool))
