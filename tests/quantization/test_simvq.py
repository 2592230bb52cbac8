"""SimVQ invariants (vector-quantize-pytorch style): straight-through estimator, frozen base codebook,
exact nearest-neighbour search, fingerprints."""

from __future__ import annotations

import io

import pytest
import torch

from duotok.quantization.simvq import CodeUsage, SimVQ, nearest_codes, usage_statistics

DIM, SIZE = 8, 64


def _inputs(seed: int = 0, shape=(2, 10, DIM)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_decode_equals_forward_output_in_eval():
    vq = SimVQ(DIM, SIZE).eval()
    result = vq(_inputs())
    assert result.quantized.shape == (2, 10, DIM) and result.codes.shape == (2, 10)
    assert result.codes.dtype == torch.long
    torch.testing.assert_close(vq.decode(result.codes), result.quantized, atol=1e-6, rtol=0)
    assert set(result.metrics) == {"perplexity", "usage"}
    assert 1.0 <= result.metrics["perplexity"] <= 20 and 0 < result.metrics["usage"] <= 20 / SIZE


def test_straight_through_gradient_is_identity():
    vq = SimVQ(DIM, SIZE)
    z = _inputs().requires_grad_(True)
    g = torch.randn_like(z)
    (vq(z).quantized * g).sum().backward()
    torch.testing.assert_close(z.grad, g)


def test_base_codebook_frozen_and_projection_learns():
    vq = SimVQ(DIM, SIZE)
    assert "base_codebook" in vq.state_dict()
    assert all(p is not vq.base_codebook for p in vq.parameters())
    base, weight = vq.base_codebook.clone(), vq.proj.weight.detach().clone()
    torch.testing.assert_close(base.std(), torch.tensor(DIM**-0.5), atol=0.03, rtol=0)
    opt = torch.optim.SGD(vq.parameters(), lr=0.1)
    vq(_inputs()).loss.backward()
    opt.step()
    assert torch.equal(vq.base_codebook, base)
    assert not torch.allclose(vq.proj.weight, weight)


def test_projection_gets_gradient_only_from_codebook_loss():
    vq = SimVQ(DIM, SIZE)
    z = _inputs().requires_grad_(True)
    result = vq(z)
    grads = torch.autograd.grad(result.quantized.sum(), list(vq.parameters()), allow_unused=True)
    assert all(g is None or not g.any() for g in grads)
    grads = torch.autograd.grad(result.loss, list(vq.parameters()))
    assert all(g.abs().sum() > 0 for g in grads)


def test_codes_are_true_nearest_neighbours():
    vq = SimVQ(DIM, SIZE)
    z = _inputs(1)
    codes = vq(z).codes.flatten()
    dist = torch.cdist(z.reshape(-1, DIM).double(), vq.codebook().double())
    chosen = dist.gather(1, codes[:, None]).squeeze(1)
    assert torch.all(chosen <= dist.min(dim=1).values + 1e-5)
    assert torch.equal(codes, dist.argmin(dim=1))


def test_chunked_search_matches_unchunked():
    z, codebook = _inputs(2).reshape(-1, DIM), torch.randn(SIZE, DIM)
    full = nearest_codes(z, codebook, max_elements=10**9)
    for limit in (1, 7, SIZE, 3 * SIZE + 5):
        assert torch.equal(nearest_codes(z, codebook, max_elements=limit), full)
    vq = SimVQ(DIM, SIZE)
    small = SimVQ(DIM, SIZE, max_distance_elements=16)
    small.load_state_dict(vq.state_dict())
    assert torch.equal(small(z[None]).codes, vq(z[None]).codes)


def test_fingerprint_tracks_weights_and_survives_save_load():
    vq = SimVQ(DIM, SIZE)
    fp = vq.fingerprint()
    assert len(fp) == 16 and fp == vq.fingerprint()
    buffer = io.BytesIO()
    torch.save(vq.state_dict(), buffer)
    buffer.seek(0)
    other = SimVQ(DIM, SIZE, seed=5)
    assert other.fingerprint() != fp
    other.load_state_dict(torch.load(buffer))
    assert other.fingerprint() == fp
    with torch.no_grad():
        vq.proj.weight[0, 0] += 0.01
    assert vq.fingerprint() != fp
    with torch.no_grad():  # signed zeros are the same codebook
        vq.proj.bias.fill_(0.0)
        positive = vq.fingerprint()
        vq.proj.bias.fill_(-0.0)
    assert vq.fingerprint() == positive


def test_masked_loss_ignores_padding_and_empty_mask_is_zero():
    vq = SimVQ(DIM, SIZE)
    z = _inputs()
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, :4] = True
    garbage = z.clone()
    garbage[~mask] = 1e3
    torch.testing.assert_close(vq(z, mask).loss, vq(garbage, mask).loss)
    assert vq(z, torch.zeros_like(mask)).loss.item() == 0.0


def test_bf16_autocast():
    vq = SimVQ(DIM, SIZE)
    z = _inputs().bfloat16().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = vq(z)
    assert result.quantized.dtype == torch.bfloat16 and result.loss.dtype == torch.float32
    assert torch.equal(result.codes, vq(z.float()).codes)
    result.loss.backward()
    assert torch.isfinite(vq.proj.weight.grad).all()


def test_code_usage_accumulates():
    usage = CodeUsage(4)
    usage.update(torch.tensor([[0, 0, 3]]), torch.tensor([[True, True, False]]))
    assert usage.usage_fraction() == 0.25 and usage.perplexity() == pytest.approx(1.0)
    usage.update(torch.tensor([1, 2, 3]))
    assert usage.dead_codes().tolist() == []
    assert usage.perplexity() == pytest.approx(usage_statistics(torch.tensor([2, 1, 1, 1]))[0])
    usage.reset()
    assert usage.usage_fraction() == 0.0 and usage.dead_codes().tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        usage.update(torch.tensor([4]))


def test_data_dependent_start_keeps_codes_alive_on_offset_badly_scaled_inputs():
    """The collapse issue 17 measured, on a toy problem: inputs with a large shared offset and a scale
    far from the codebook's. A random start sends (almost) every input to a handful of codes; the
    data-dependent start uses most of the codebook at once and matches the inputs' mean and spread."""
    from duotok.quantization.simvq import SimVQ

    g = torch.Generator().manual_seed(0)
    dim, size = 16, 256
    z = 1.8 + 0.3 * torch.randn(4096, dim, generator=g) @ torch.randn(dim, dim, generator=g) / dim**0.5
    random_start = SimVQ(dim, size, seed=0)
    data_start = SimVQ(dim, size, seed=0)
    data_start.init_from_data(z)
    used = {}
    for name, vq in (("random", random_start), ("data", data_start)):
        out = vq(z[None])
        used[name] = out.metrics["usage"]
    assert used["random"] < 0.1 and used["data"] > 0.7, used
    codebook = data_start.codebook()
    assert torch.allclose(codebook.mean(0), z.mean(0), atol=0.1)
    assert codebook.std(0).mean() == pytest.approx(z.std(0).mean().item(), rel=0.2)
    with pytest.raises(ValueError, match="2 samples"):
        data_start.init_from_data(z[:1])


def _hubby_features(n: int = 4096, dim: int = 16, seed: int = 0) -> torch.Tensor:
    """Offset, nearly low-rank, heavy-tailed inputs like the stage-2 bottleneck (issue 17: ~99 % of the
    variance in 5 of 64 dimensions): 3 strong directions, the rest faint, and a per-frame loudness
    (log-normal radius), so the data is far from the Gaussian a covariance fit assumes."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.tensor([3.0, 2.0, 1.5] + [0.05] * (dim - 3))
    basis = torch.linalg.qr(torch.randn(dim, dim, generator=g))[0]
    radius = torch.randn(n, 1, generator=g).exp()
    return 1.8 + (torch.randn(n, dim, generator=g) * scales * radius) @ basis.T


def test_cosine_lookup_in_the_whitened_space_uses_more_of_the_codebook_than_l2():
    """On offset, nearly low-rank inputs, codes fitted to the data's mean and covariance and compared
    by L2 leave most of the codebook to a few hubs; comparing directions in the fitted whitened space
    spreads the inputs over it."""
    z = _hubby_features()
    perplexity = {}
    for lookup in ("l2", "cosine"):
        vq = SimVQ(16, 256, seed=0, lookup=lookup)
        vq.init_from_data(z[:2048])
        perplexity[lookup] = vq(z[None, 2048:]).metrics["perplexity"]
    assert perplexity["cosine"] > 1.5 * perplexity["l2"], perplexity
    assert perplexity["cosine"] > 0.5 * 256, perplexity


def test_cosine_lookup_keeps_the_simvq_contract():
    """decode(codes) equals the forward output, in the input space; gradients pass straight through
    the (fixed) standardisation; the fingerprint covers the standardisation; save/load round-trips."""
    z = _hubby_features(512)
    vq = SimVQ(16, 64, seed=0, lookup="cosine")
    vq.init_from_data(z)
    x = z[None, :100].clone().requires_grad_(True)
    out = vq(x)
    torch.testing.assert_close(vq.decode(out.codes), out.quantized, atol=1e-4, rtol=1e-4)
    assert (out.quantized - x).pow(2).mean() < x.pow(2).mean(), "quantized vectors live in the input space"
    assert (out.quantized.mean(1) - x.mean(1)).abs().max() < x.std(), "around the inputs' mean"
    (out.quantized.sum() + out.loss).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert vq.proj.weight.grad is not None and vq.proj.weight.grad.abs().sum() > 0
    before = vq.fingerprint()
    vq.input_shift += 0.1
    assert vq.fingerprint() != before
    buffer = io.BytesIO()
    torch.save(vq.state_dict(), buffer)
    buffer.seek(0)
    again = SimVQ(16, 64, seed=0, lookup="cosine")
    again.load_state_dict(torch.load(buffer))
    assert again.fingerprint() == vq.fingerprint()
    with pytest.raises(ValueError, match="lookup"):
        SimVQ(16, 64, lookup="dot")


def test_l2_lookup_state_is_unchanged_so_older_checkpoints_load():
    assert set(SimVQ(DIM, SIZE).state_dict()) == {"base_codebook", "proj.weight", "proj.bias"}
