"""The Conformer mixture encoder: shapes, masking, and no information flow from padded frames."""

from __future__ import annotations

import pytest
import torch

from duotok.separation.conformer import ConformerConfig, ConformerEncoder

CFG = ConformerConfig(input_dim=12, dim=32, n_layers=2, n_heads=4, kernel_size=5)


def _encoder() -> ConformerEncoder:
    torch.manual_seed(0)
    return ConformerEncoder(CFG)


def test_shapes():
    enc = _encoder()
    assert enc(torch.randn(3, 17, 12)).shape == (3, 17, 32)
    with pytest.raises(ValueError, match="features"):
        enc(torch.randn(3, 17, 11))
    with pytest.raises(ValueError, match="mask"):
        enc(torch.randn(3, 17, 12), torch.ones(3, 16, dtype=torch.bool))


def test_padded_frames_do_not_reach_valid_outputs():
    enc = _encoder().train()          # train mode: no batch statistics may leak (LayerNorm, not BatchNorm)
    x = torch.randn(2, 20, 12)
    mask = torch.arange(20)[None] < torch.tensor([[20], [13]])
    out = enc(x, mask)
    y = x.clone()
    y[1, 13:] = 100 * torch.randn(7, 12)                               # new content in the padding only
    out2 = enc(y, mask)
    torch.testing.assert_close(out2[mask], out[mask])
    assert out[1, 13:].abs().max() == 0                                 # padded outputs are zero
    x.requires_grad_(True)
    enc(x, mask)[1, :13].sum().backward()
    assert x.grad[1, 13:].abs().max() == 0                              # no gradient path from padding
    assert x.grad[1, :13].abs().max() > 0


def test_a_row_is_independent_of_the_other_rows():
    enc = _encoder().train()
    x = torch.randn(2, 10, 12)
    single = enc(x[:1])
    x2 = x.clone()
    x2[1] = torch.randn(10, 12)
    torch.testing.assert_close(enc(x2)[:1], single)
    torch.testing.assert_close(enc(x)[:1], single)


def test_config_validation():
    with pytest.raises(ValueError, match="odd"):
        ConformerConfig(kernel_size=4)
    with pytest.raises(ValueError, match="head"):
        ConformerConfig(dim=30, n_heads=4)
