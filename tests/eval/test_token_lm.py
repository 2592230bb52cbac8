"""TokenLM: special-id bookkeeping, causality, condition visibility, padding, learning, round trip."""

from __future__ import annotations

import math

import pytest
import torch

from duotok.eval.token_lm import IGNORE_INDEX, TokenLM, TokenLMConfig, build_lm_inputs


def _model(sizes=(7, 13), cond=(), seed=0, layers=1) -> TokenLM:
    torch.manual_seed(seed)
    return TokenLM(TokenLMConfig(sizes, cond, dim=32, n_layers=layers, n_heads=2)).eval()


def _ids(sizes, b, t, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, v, (b, t), generator=g) for v in sizes], dim=1)


def test_build_lm_inputs_places_sos_eos_and_padding():
    ids = torch.tensor([[[1, 2, 3]], [[4, 5, 0]]])
    batch = build_lm_inputs(ids, (6,), torch.tensor([3, 1]), torch.tensor([[[0, 1, 0]], [[1, 1, 9]]]), (2,))
    assert batch.inputs.tolist() == [[[6, 1, 2, 3]], [[6, 4, 7, 7]]]  # SOS = 6, padding = EOS row 7
    assert batch.targets.tolist() == [[[1, 2, 3, 6]], [[4, 6, IGNORE_INDEX, IGNORE_INDEX]]]  # EOS class 6
    assert batch.cond_inputs.tolist() == [[[2, 0, 1, 0]], [[2, 1, 2, 2]]]  # padded cond id 9 never read
    with pytest.raises(ValueError, match="outside"):
        build_lm_inputs(torch.tensor([[[6]]]), (6,))


def test_zeroed_heads_give_uniform_cross_entropy():
    sizes = (7, 13)
    model = _model(sizes)
    for head in model.heads:
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
    lengths = torch.tensor([5, 3])
    with torch.no_grad():
        nll, count = model.token_nll(_ids(sizes, 2, 5), lengths)
        loss, metrics = model(_ids(sizes, 2, 5), lengths)
    assert int(count) == 8  # real tokens only, EOS excluded
    for k, v in enumerate(sizes):
        assert float(nll[k]) / 8 == pytest.approx(math.log(v + 1), rel=1e-6)
    assert metrics["scored_frames"] == 10  # the training loss also scores each row's EOS
    assert float(loss) == pytest.approx((math.log(8) + math.log(14)) / 2, rel=1e-6)


def test_unconditional_lm_is_causal():
    sizes = (7, 13)
    model = _model(sizes, layers=2)
    ids = _ids(sizes, 2, 10)
    changed = ids.clone()
    t = 4
    changed[:, 0, t] = (changed[:, 0, t] + 1) % 7
    with torch.no_grad():
        before, after = model.logits(ids), model.logits(changed)
    for a, b in zip(before, after, strict=True):
        assert torch.equal(a[:, : t + 1], b[:, : t + 1])  # position j predicts frame j (0-based)
        assert not torch.allclose(a[:, t + 1], b[:, t + 1])


def test_condition_prefix_is_visible_to_every_target_position():
    model = _model((7,), cond=(5,), layers=2)
    ids, cond = _ids((7,), 2, 8, seed=1), _ids((5,), 2, 8, seed=2)
    for frame in (0, 7):  # first and last condition frame
        changed = cond.clone()
        changed[:, 0, frame] = (changed[:, 0, frame] + 1) % 5
        with torch.no_grad():
            a, b = model.logits(ids, cond=cond)[0], model.logits(ids, cond=changed)[0]
        assert ((a - b).abs().amax(-1) > 0).all()


@pytest.mark.parametrize("cond_sizes", [(), (5,)])
def test_padding_is_never_read_nor_scored(cond_sizes):
    sizes = (7, 13)
    model = _model(sizes, cond=cond_sizes)
    ids = _ids(sizes, 2, 9)
    cond = _ids(cond_sizes, 2, 9, seed=3) if cond_sizes else None
    lengths = torch.tensor([9, 4])
    garbage = ids.clone()
    garbage[1, :, 4:] = 0
    garbage_cond = None
    if cond is not None:
        garbage_cond = cond.clone()
        garbage_cond[1, :, 4:] = 0
    with torch.no_grad():
        nll_a, n_a = model.token_nll(ids, lengths, cond)
        nll_b, n_b = model.token_nll(garbage, lengths, garbage_cond)
        # the short row scored alone (no padding at all) gives the same sum
        nll_0, _ = model.token_nll(ids[:1], None, cond[:1] if cond is not None else None)
        short_cond = cond[1:, :, :4] if cond is not None else None
        nll_1, _ = model.token_nll(ids[1:, :, :4], None, short_cond)
    assert int(n_a) == int(n_b) == 13
    torch.testing.assert_close(nll_a, nll_b)
    torch.testing.assert_close(nll_a, nll_0 + nll_1, rtol=1e-5, atol=1e-5)


def test_score_from_excludes_the_given_prefix():
    model = _model((7,), cond=(5,))
    ids, cond = _ids((7,), 3, 8), _ids((5,), 3, 8, seed=1)
    lengths = torch.tensor([8, 6, 2])
    with torch.no_grad():
        _, n0 = model.token_nll(ids, lengths, cond, score_from=0)
        _, n2 = model.token_nll(ids, lengths, cond, score_from=2)
        _, m0 = model(ids, lengths, cond, score_from=0)
        _, m2 = model(ids, lengths, cond, score_from=2)
    assert int(n0) == 16 and int(n2) == 16 - 3 * 2
    assert m0["scored_frames"] == 19 and m2["scored_frames"] == 19 - 3 * 2  # the EOS of row 3 stays


def test_save_load_round_trip_gives_identical_logits(tmp_path):
    model = _model((7, 13), cond=(5, 3))
    ids, cond = _ids((7, 13), 2, 6), _ids((5, 3), 2, 6, seed=4)
    model.save_pretrained(tmp_path / "lm")
    loaded = TokenLM.from_pretrained(tmp_path / "lm")
    assert loaded.config == model.config
    with torch.no_grad():
        for a, b in zip(model.logits(ids, cond=cond), loaded.logits(ids, cond=cond), strict=True):
            assert torch.equal(a, b)


def _fit(model: TokenLM, make_batch, steps: int) -> TokenLM:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(steps):
        ids, cond = make_batch()
        loss, _ = model(ids, cond=cond)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_learns_a_deterministic_cycle():
    g = torch.Generator().manual_seed(0)

    def cycles():
        phase = torch.randint(0, 8, (8, 1, 1), generator=g)
        return (phase + torch.arange(32) + torch.tensor([0, 3])[None, :, None]) % 8, None

    model = _fit(_model((8, 8)), cycles, 150)
    with torch.no_grad():
        nll, n = model.token_nll(cycles()[0], score_from=1)  # the first frame (random phase) is given
    assert (nll / n).max() < 0.1


def test_condition_is_used_to_copy():
    g = torch.Generator().manual_seed(0)

    def copies():
        c = torch.randint(0, 8, (8, 1, 16), generator=g)
        return c.clone(), c

    conditional = _fit(_model((8,), cond=(8,)), copies, 150)
    unconditional = _fit(_model((8,)), lambda: (copies()[0], None), 150)
    ids, cond = copies()
    with torch.no_grad():
        nll_c, n_c = conditional.token_nll(ids, cond=cond)
        nll_u, n_u = unconditional.token_nll(ids)
    assert float(nll_c / n_c) < 0.2 < 1.5 < float(nll_u / n_u)  # random tokens: ln 8 = 2.08 at best


def test_bf16_autocast_gives_float32_loss():
    model = _model((7, 13)).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = model(_ids((7, 13), 2, 5))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()


def test_rejects_mismatched_condition():
    with pytest.raises(ValueError, match="conditional"):
        _model((7,), cond=(5,)).token_nll(_ids((7,), 1, 4))
    with pytest.raises(ValueError, match="unconditional"):
        _model((7,)).token_nll(_ids((7,), 1, 4), cond=_ids((5,), 1, 4))
