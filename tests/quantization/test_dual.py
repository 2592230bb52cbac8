"""Dual codebooks with hard routing: each frame is quantized by its own track's branch only."""

from __future__ import annotations

import pytest
import torch

from duotok.quantization.dual import DualCodebookQuantizer

DIM, BOTTLENECK = 12, 6


def _quantizer(sizes=(32, 16)) -> DualCodebookQuantizer:
    torch.manual_seed(0)
    return DualCodebookQuantizer(DIM, BOTTLENECK, codebook_sizes=sizes)


def _x(batch: int = 3, frames: int = 7) -> torch.Tensor:
    return torch.randn(batch, frames, DIM, generator=torch.Generator().manual_seed(1))


def _frame_route() -> torch.Tensor:
    return torch.randint(0, 2, (3, 7), generator=torch.Generator().manual_seed(2))


def test_codes_come_from_each_frames_own_branch():
    dq = _quantizer().eval()
    x, route = _x(), _frame_route()
    result = dq(x, route)
    assert result.quantized.shape == (3, 7, DIM) and result.codes.shape == (3, 7)
    assert torch.equal(result.route, route)
    for k, branch in enumerate(dq.branches):
        own = branch.vq(branch.proj_in(x[route == k][None])).codes[0]
        assert torch.equal(result.codes[route == k], own)
        assert int(result.codes[route == k].max()) < dq.codebook_sizes[k]
    assert {"vocal/perplexity", "accompaniment/usage", "vocal/frames"} <= set(result.metrics)
    assert result.metrics["vocal/frames"] + result.metrics["accompaniment/frames"] == 21


def test_single_route_batch_never_calls_the_other_branch():
    dq = _quantizer()

    def boom(*args, **kwargs):
        raise AssertionError("vocal frames reached the accompaniment codebook")

    dq.branches[1].vq.forward = boom
    result = dq(_x(), torch.zeros(3, dtype=torch.long))
    assert torch.equal(result.route, torch.zeros(3, 7, dtype=torch.long))
    assert "accompaniment/perplexity" not in result.metrics


def test_decode_matches_forward_in_eval():
    dq = _quantizer().eval()
    for route in (_frame_route(), torch.tensor([1, 0, 1])):
        result = dq(_x(), route)
        torch.testing.assert_close(dq.decode(result.codes, route), result.quantized, atol=1e-5, rtol=0)
        torch.testing.assert_close(dq.embed(result.codes, result.route), result.quantized, atol=1e-5, rtol=0)


def test_route_zero_gradients_leave_accompaniment_branch_untouched():
    dq = _quantizer()
    x = _x().requires_grad_(True)
    result = dq(x, torch.zeros(3, dtype=torch.long))
    (result.quantized.square().sum() + result.loss).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in dq.branches[0].parameters())
    assert all(p.grad is None for p in dq.branches[1].parameters())
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_mask_and_route_validation():
    dq = _quantizer()
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[:, 5:] = False
    assert torch.isfinite(dq(_x(), _frame_route(), mask).loss)
    with pytest.raises(ValueError):
        dq(_x(), torch.tensor([0, 2, 1]))
    with pytest.raises(ValueError):
        dq(_x(), torch.zeros(3, 6, dtype=torch.long))


def test_bitrate_and_fingerprints():
    dq = DualCodebookQuantizer(DIM, BOTTLENECK, codebook_sizes=(32768, 32768))
    assert dq.bits_per_second(25) == pytest.approx(750.0)
    fps = dq.codebook_fingerprints()
    assert set(fps) == {"vocal", "accompaniment"} and fps["vocal"] != fps["accompaniment"]
