"""Tagging probe: shapes, config checks, and that padded frames never change the logits."""

from __future__ import annotations

import pytest
import torch

from duotok.eval.probe_net import MaskedGroupNorm, ProbeConfig, TaggingProbe


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def small(**kw) -> TaggingProbe:
    return TaggingProbe(ProbeConfig(in_dim=12, n_tags=5, channels=16, **kw)).eval()


@pytest.mark.parametrize("frames", [1, 4, 17])
@pytest.mark.parametrize("n_blocks", [0, 2])
def test_shapes(frames, n_blocks):
    model = small(n_blocks=n_blocks)
    assert model(torch.randn(3, frames, 12)).shape == (3, 5)
    assert model(torch.randn(3, frames, 12), torch.ones(3, frames, dtype=torch.bool)).shape == (3, 5)


def test_rejects_wrong_inputs():
    model = small()
    with pytest.raises(ValueError, match="expected"):
        model(torch.randn(2, 7, 11))
    with pytest.raises(ValueError, match="mask"):
        model(torch.randn(2, 7, 12), torch.ones(2, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="n_tags"):
        ProbeConfig(in_dim=4, n_tags=0)
    with pytest.raises(ValueError, match="odd"):
        ProbeConfig(in_dim=4, n_tags=2, kernel_size=4)


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_padding_does_not_change_output(kernel_size):
    model = small(kernel_size=kernel_size, n_blocks=2)
    lengths = [9, 4, 1]
    x = [torch.randn(n, 12) for n in lengths]
    padded = torch.randn(len(x), 13, 12) * 100  # garbage in the padding
    mask = torch.zeros(len(x), 13, dtype=torch.bool)
    for i, xi in enumerate(x):
        padded[i, : len(xi)] = xi
        mask[i, : len(xi)] = True
    batched = model(padded, mask)
    for i, xi in enumerate(x):
        torch.testing.assert_close(batched[i], model(xi[None])[0], atol=1e-5, rtol=1e-5)


def test_full_mask_equals_no_mask_and_groupnorm():
    model = small()
    x = torch.randn(2, 8, 12)
    torch.testing.assert_close(model(x), model(x, torch.ones(2, 8, dtype=torch.bool)))
    h = torch.randn(2, 16, 8)
    norm = MaskedGroupNorm(16, 4)
    torch.testing.assert_close(norm(h, torch.ones(2, 1, 8)), torch.nn.functional.group_norm(h, 4, eps=1e-5),
                               atol=1e-5, rtol=1e-5)


def test_batch_independent_in_eval():
    model = small()
    x = torch.randn(4, 6, 12)
    torch.testing.assert_close(model(x)[:1], model(x[:1]), atol=1e-6, rtol=1e-5)
