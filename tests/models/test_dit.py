"""Stage 4 latent DiT: shapes, zero init, Euler sampler, CFG, masks, checkpoints, a toy training run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from duotok.models.dit import DiTConfig, LatentDiT, check_time_shift, euler_sample, flow_time_grid

CFG = DiTConfig(latent_dim=4, cond_dim=8, dim=32, n_layers=2, n_heads=2, mlp_ratio=2.0)


def model(perturb: bool = False, **overrides) -> LatentDiT:
    torch.manual_seed(0)
    m = LatentDiT(DiTConfig(**{**vars(CFG), **overrides}))
    if perturb:  # leave zero init so outputs are non-trivial
        for p in m.parameters():
            torch.nn.init.normal_(p, std=0.2)
    return m


def inputs(b=3, t_tok=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(b, t_tok, CFG.cond_dim, generator=g)
    x = torch.randn(b, 2 * t_tok, CFG.latent_dim, generator=g)
    track = torch.arange(b) % 2
    return x, cond, track


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shapes_of_forward_and_sample():
    m = model(perturb=True)
    x, cond, track = inputs()
    assert m(x, torch.rand(3), cond, track).shape == (3, 10, 4)
    assert m.sample(cond, track, steps=2).shape == (3, 10, 4)  # L = T_tok * cond_upsample
    assert m.sample(cond, track, n_frames=13, steps=2).shape == (3, 13, 4)  # edge-padded condition
    assert m.sample(cond, track, n_frames=7, steps=2, cfg_scale=2.0).shape == (3, 7, 4)  # trimmed
    assert m(x, torch.tensor(0.5), cond, track).shape == (3, 10, 4)  # scalar t broadcasts


def test_zero_init_gives_zero_velocity_and_sample_equals_noise():
    m = model()
    m.set_latent_stats(torch.tensor([1.0, -2.0, 0.5, 3.0]), torch.tensor([2.0, 0.5, 1.0, 4.0]))
    x, cond, track = inputs()
    assert torch.equal(m(x, torch.rand(3), cond, track), torch.zeros_like(x))
    noise = torch.randn(3, 10, 4, generator=gen(7))
    out = m.sample(cond, track, steps=4, cfg_scale=3.0, generator=gen(7))
    torch.testing.assert_close(out, m.denormalize(noise))


@pytest.mark.parametrize("steps", [1, 4, 16])
def test_euler_lands_on_target_of_straight_path(steps):
    x1 = torch.randn(2, 6, 3, generator=gen(0))
    x0 = torch.randn(2, 6, 3, generator=gen(1)) * 5
    out = euler_sample(lambda x, t: (x1 - x) / (1 - t), x0, steps)
    torch.testing.assert_close(out, x1, atol=1e-5, rtol=0)


def test_time_grid_uniform_and_sd3_shift():
    assert flow_time_grid(4) == [0.0, 0.25, 0.5, 0.75, 1.0]
    grid = flow_time_grid(8, 3.0)
    assert grid[0] == 0.0 and grid[-1] == 1.0 and len(grid) == 9
    steps = [b - a for a, b in zip(grid[:-1], grid[1:], strict=True)]
    assert all(d > 0 for d in steps) and steps == sorted(steps)    # finer near the noise (t = 0)
    for i, t in enumerate(grid):   # SD3 / diffusers: sigma' = s*sigma / (1 + (s-1)*sigma), sigma = 1 - t
        sigma = 1 - i / 8
        assert 1 - t == pytest.approx(3 * sigma / (1 + 2 * sigma))
    fine_end = flow_time_grid(8, 1 / 3)                              # shift < 1: finer near the data
    assert fine_end[1] > 1 / 8 and fine_end[-1] - fine_end[-2] < 1 / 8
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="steps"):
            flow_time_grid(bad)
    for bad in (0.0, -2.0, math.nan, math.inf, True, "3"):
        with pytest.raises(ValueError, match="shift"):
            flow_time_grid(4, bad)


def test_check_time_shift_is_the_one_rule_and_names_the_setting():
    assert check_time_shift(3) == 3.0 and isinstance(check_time_shift(np.float32(0.5)), float)
    for bad in (0, -1.0, math.nan, math.inf, True, False, None, "2", [1.0]):
        with pytest.raises(ValueError, match=r"decoder\.bench\.time_shifts must be a finite number > 0"):
            check_time_shift(bad, "decoder.bench.time_shifts")


@pytest.mark.parametrize("shift", [1.0, 3.0, 0.5])
def test_euler_on_any_grid_lands_on_the_straight_path_target_and_visits_the_grid(shift):
    x1 = torch.randn(2, 6, 3, generator=gen(0))
    x0 = torch.randn(2, 6, 3, generator=gen(1)) * 5
    seen = []

    def field(x, t):
        seen.append(float(t))
        return (x1 - x) / (1 - t)

    out = euler_sample(field, x0, 6, time_shift=shift)
    torch.testing.assert_close(out, x1, atol=1e-5, rtol=0)
    assert seen == pytest.approx(flow_time_grid(6, shift)[:-1])


def test_uniform_grid_is_bit_identical_to_the_plain_euler_loop():
    a = -0.7
    x0 = torch.randn(4, 3, generator=gen(2))
    x = x0
    for i in range(8):                 # the sampler as it was before the grid option
        x = x + (1.0 / 8) * (a * x + torch.tensor(i / 8) ** 2)
    assert torch.equal(euler_sample(lambda x, t: a * x + t ** 2, x0, 8, time_shift=1.0), x)


def test_shifted_grid_changes_the_sample_and_stays_seeded():
    m = LatentDiT(DiTConfig(latent_dim=4, cond_dim=8, dim=16, n_layers=1, n_heads=2))
    for q in m.parameters():
        torch.nn.init.normal_(q, std=0.05)
    cond, track = torch.randn(2, 5, 8, generator=gen(3)), torch.tensor([0, 1])
    uniform = m.sample(cond, track, steps=4, cfg_scale=2.0, generator=gen(7))
    shifted = m.sample(cond, track, steps=4, cfg_scale=2.0, generator=gen(7), time_shift=3.0)
    assert not torch.allclose(uniform, shifted)
    torch.testing.assert_close(shifted, m.sample(cond, track, steps=4, cfg_scale=2.0, generator=gen(7), time_shift=3.0))
    torch.testing.assert_close(uniform, m.sample(cond, track, steps=4, cfg_scale=2.0, generator=gen(7), time_shift=1))


def test_euler_linear_field_matches_closed_form():
    a, steps = -0.7, 8
    x0 = torch.randn(4, 3, dtype=torch.float64, generator=gen(2))
    seen = []

    def field(x, t):
        seen.append(float(t))
        assert t.dim() == 0
        return a * x

    out = euler_sample(field, x0, steps)
    torch.testing.assert_close(out, x0 * (1 + a / steps) ** steps)
    assert seen == pytest.approx([i / steps for i in range(steps)])


def test_sample_is_reproducible_per_seed():
    m = model(perturb=True)
    _, cond, track = inputs()
    a = m.sample(cond, track, steps=3, generator=gen(5))
    b = m.sample(cond, track, steps=3, generator=gen(5))
    c = m.sample(cond, track, steps=3, generator=gen(6))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_cfg_scale_one_is_conditional_and_zero_is_unconditional():
    m = model(perturb=True).eval()
    m.set_latent_stats(torch.full((4,), 0.3), torch.full((4,), 1.5))
    _, cond, track = inputs()
    steps = 3
    noise = torch.randn(3, 10, 4, generator=gen(9))
    no_drop, all_drop = torch.zeros(3, dtype=torch.bool), torch.ones(3, dtype=torch.bool)
    cond_ref = m.denormalize(euler_sample(lambda x, t: m(x, t.expand(3), cond, track, drop_cond=no_drop),
                                          noise, steps))
    uncond_ref = m.denormalize(euler_sample(lambda x, t: m(x, t.expand(3), cond, track, drop_cond=all_drop),
                                            noise, steps))
    assert not torch.allclose(cond_ref, uncond_ref, atol=1e-3)
    torch.testing.assert_close(m.sample(cond, track, steps=steps, cfg_scale=1.0, generator=gen(9)), cond_ref)
    torch.testing.assert_close(m.sample(cond, track, steps=steps, cfg_scale=0.0, generator=gen(9)), uncond_ref,
                               atol=1e-5, rtol=1e-5)
    # the unconditional branch ignores the condition entirely
    v1 = m(noise, torch.full((3,), 0.4), cond, track, drop_cond=all_drop)
    v2 = m(noise, torch.full((3,), 0.4), torch.randn_like(cond), track, drop_cond=all_drop)
    torch.testing.assert_close(v1, v2)


def test_track_and_time_change_the_output():
    m = model(perturb=True)
    x, cond, track = inputs()
    t = torch.full((3,), 0.3)
    assert not torch.allclose(m(x, t, cond, track), m(x, t, cond, 1 - track))
    assert not torch.allclose(m(x, t, cond, track), m(x, t + 0.2, cond, track))


def test_valid_frames_ignore_padded_content_and_loss_ignores_padding():
    m = model(perturb=True)
    x, cond, track = inputs(b=2, t_tok=6)
    mask = torch.arange(12)[None] < torch.tensor([[12], [7]])
    x2, cond2 = x.clone(), cond.clone()
    x2[1, 7:] = 100.0
    cond2[1, 4:] = -50.0  # tokens 4, 5 cover frames 8..11 only (7 is still token 3)
    t = torch.tensor([0.2, 0.7])
    v1, v2 = m(x, t, cond, track, mask), m(x2, t, cond2, track, mask)
    torch.testing.assert_close(v1[mask], v2[mask])
    assert not torch.allclose(v1[~mask], v2[~mask])
    la, _ = m.loss(x, cond, track, mask, generator=gen(3))
    lb, _ = m.loss(x2, cond2, track, mask, generator=gen(3))
    torch.testing.assert_close(la, lb)
    lc, _ = m.loss(x, cond, track, None, generator=gen(3))
    assert not torch.allclose(la, lc)


def test_loss_goes_through_forward():
    m = model(perturb=True).train()
    x, cond, track = inputs()
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[0, 8:] = False
    seen = []
    handle = m.register_forward_hook(lambda mod, args, kwargs_out: seen.append(1))
    loss, metrics = m.loss(x, cond, track, mask, generator=gen(4))
    handle.remove()
    assert seen  # __call__ ran (DDP hooks/forward would see it)
    loss2, metrics2 = m(latents=x, cond=cond, track=track, mask=mask, generator=gen(4))
    torch.testing.assert_close(loss, loss2)
    assert metrics == metrics2 and set(metrics) == {"fm_mse"}
    loss.backward()
    assert m.final.linear.weight.grad is not None
    with pytest.raises(TypeError):
        m(x, torch.rand(3), latents=x, cond=cond, track=track)


def test_save_load_round_trip(tmp_path):
    m = model(perturb=True)
    m.set_latent_stats(torch.arange(4.0), torch.arange(1.0, 5.0))
    m.save_pretrained(tmp_path / "dit")
    m2 = LatentDiT.from_pretrained(tmp_path / "dit")
    assert m2.config == m.config
    torch.testing.assert_close(m2.latent_mean, torch.arange(4.0))
    torch.testing.assert_close(m2.latent_std, torch.arange(1.0, 5.0))
    _, cond, track = inputs()
    torch.testing.assert_close(m.sample(cond, track, steps=2, cfg_scale=2.0, generator=gen(1)),
                               m2.sample(cond, track, steps=2, cfg_scale=2.0, generator=gen(1)))


def test_normalize_round_trip_and_stats_validation():
    m = model()
    m.set_latent_stats(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.5, 1.0, 2.0, 4.0]))
    z = torch.randn(2, 5, 4)
    torch.testing.assert_close(m.denormalize(m.normalize(z)), z)
    with pytest.raises(ValueError):
        m.set_latent_stats(torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError):
        m.set_latent_stats(torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError):
        DiTConfig(time_sampling="cosine")


def _toy_batch(w, offset, b, t_tok, g):
    """Latent = a fixed linear map of the upsampled condition, plus a per-track offset."""
    cond = torch.randn(b, t_tok, CFG.cond_dim, generator=g)
    track = torch.randint(0, 2, (b,), generator=g)
    latents = cond.repeat_interleave(2, dim=1) @ w + offset[track][:, None]
    return latents, cond, track


def test_toy_conditional_task_trains_and_samples_near_target():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(CFG.cond_dim, CFG.latent_dim, generator=g) * 0.5
    offset = torch.tensor([[2.0, -1.0, 0.0, 1.0], [-2.0, 1.0, 0.5, -1.0]])
    m = model(dim=64, cond_dropout=0.0)  # default logit-normal time sampling
    ref, _, _ = _toy_batch(w, offset, 256, 4, g)
    m.set_latent_stats(ref.mean(dim=(0, 1)), ref.std(dim=(0, 1)))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    m.train()
    losses = []
    for _ in range(150):
        latents, cond, track = _toy_batch(w, offset, 16, 4, g)
        loss, _ = m(latents=latents, cond=cond, track=track, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.3 * first, (first, last)  # measured: 1.91 -> 0.19

    m.eval()
    latents, cond, track = _toy_batch(w, offset, 8, 4, g)
    out = m.sample(cond, track, steps=16, generator=gen(11))
    noise = m.denormalize(torch.randn(out.shape, generator=gen(11)))
    err_sample = (out - latents).pow(2).mean().item()
    err_noise = (noise - latents).pow(2).mean().item()
    assert err_sample < 0.15 * err_noise, (err_sample, err_noise)  # measured: 0.41 vs 7.3


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_every_parameter_gets_a_gradient_in_training(p):
    """DDP (without find_unused_parameters) needs every parameter in the graph, null_cond included."""
    m = model(cond_dropout=p).train()
    x, cond, track = inputs()
    loss, _ = m(latents=x, cond=cond, track=track, generator=gen(0))
    loss.backward()
    assert [n for n, q in m.named_parameters() if q.grad is None] == []
