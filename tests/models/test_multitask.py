"""Stage 2: the multi-task model's wiring — heads on/off, noise only in training, stage-1 init."""

from __future__ import annotations

import pytest
import torch

from duotok.models.bestrq import BestRQConfig, BestRQModel
from duotok.models.encoder import EncoderConfig
from duotok.models.multitask import HeadsConfig, MultiTaskConfig, MultiTaskModel, NoiseConfig
from duotok.text import CharVocab

ENC = EncoderConfig(dim=32, n_lower=1, n_upper=1, n_heads=2)


def batch(seconds=1.0, lyrics=("la la", "seel")):
    torch.manual_seed(0)
    n = int(16000 * seconds)
    ids, lens = CharVocab().encode_batch(list(lyrics))
    return {"mixture": torch.randn(2, n) * 0.1, "length": torch.tensor([n, n // 2]),
            "stems": torch.randn(2, 4, n) * 0.05, "chroma": torch.rand(2, 12, n // 160 + 1),
            "lyrics": ids, "lyrics_lengths": lens, "has_lyrics": torch.tensor([True, True])}


def test_all_heads_give_a_finite_loss_and_gradients():
    model = MultiTaskModel(MultiTaskConfig(encoder=ENC, bottleneck_dim=8))
    loss, metrics = model(**batch())
    assert torch.isfinite(loss)
    assert {"mel_loss", "chroma_loss", "mask_loss", "lyrics_loss"} <= set(metrics)
    loss.backward()
    for name in ("lyrics", "mel", "chroma", "mask"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.heads[name].parameters()), name


@pytest.mark.parametrize("removed", ["lyrics", "mel", "chroma", "mask"])
def test_a_removed_head_has_no_parameters_and_no_loss(removed):
    heads = HeadsConfig(**{removed: False})
    model = MultiTaskModel(MultiTaskConfig(encoder=ENC, bottleneck_dim=8, heads=heads))
    assert removed not in model.heads
    _, metrics = model(**batch())
    assert f"{removed}_loss" not in metrics


def test_noise_acts_only_in_training():
    model = MultiTaskModel(MultiTaskConfig(encoder=ENC, bottleneck_dim=8, noise=NoiseConfig(prob=0.9)))
    _, train_metrics = model(**batch())
    assert train_metrics["noised_fraction"] > 0.5
    model.eval()
    with torch.no_grad():
        a, m = model(**batch())
        b, _ = model(**batch())
    assert m["noised_fraction"] == 0.0 and torch.equal(a, b), "eval is deterministic and noise-free"


def test_songs_without_lyrics_are_left_out_of_ctc():
    model = MultiTaskModel(MultiTaskConfig(encoder=ENC, bottleneck_dim=8))
    b = batch()
    b["has_lyrics"] = torch.tensor([False, False])
    _, metrics = model(**b)
    assert "lyrics_loss" not in metrics


def test_stage2_starts_from_the_stage1_encoder():
    pre = BestRQModel(BestRQConfig(encoder=ENC, codebook_size=64))
    with torch.no_grad():
        pre.encoder.mel_mean.fill_(0.5)
    model = MultiTaskModel.from_pretrain(pre, MultiTaskConfig(encoder=ENC, bottleneck_dim=8))
    for key, value in pre.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value), key
    with pytest.raises(ValueError, match="differs"):
        MultiTaskModel.from_pretrain(pre, MultiTaskConfig(encoder=EncoderConfig(dim=48, n_heads=2)))


def test_save_and_load_round_trip(tmp_path):
    model = MultiTaskModel(MultiTaskConfig(encoder=ENC, bottleneck_dim=8, heads=HeadsConfig(mask=False))).eval()
    model.save_pretrained(tmp_path / "m")
    loaded = MultiTaskModel.from_pretrained(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(model(**batch())[0], loaded(**batch())[0])


def test_infer_can_compute_only_the_heads_asked_for():
    model = MultiTaskModel(MultiTaskConfig(encoder=ENC, vocab_size=len(CharVocab()))).eval()
    b = batch()
    with torch.no_grad():
        full = model.infer(b["mixture"], b["length"])
        only = model.infer(b["mixture"], b["length"], heads=("mask",))
    assert set(only["outputs"]) == {"mask"} and len(full["outputs"]) > 1
    assert torch.equal(only["outputs"]["mask"], full["outputs"]["mask"])
    with pytest.raises(ValueError, match="unknown heads"):
        model.infer(b["mixture"], b["length"], heads=("drums",))


def test_a_spectrum_mask_head_trains_inside_the_model_and_separates_in_eval():
    model = MultiTaskModel(MultiTaskConfig(encoder=ENC, bottleneck_dim=8, mask_spectrum=True,
                                           bottleneck_norm="layer"))
    loss, metrics = model(**batch())
    assert torch.isfinite(loss) and "mask_loss" in metrics
    loss.backward()
    assert model.heads["mask"].mlp[0].weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model.infer(batch()["mixture"], heads=("mask",))
    assert set(out["outputs"]) == {"mask"} and out["outputs"]["mask"].shape[:3] == (2, 4, 513)


def test_an_orthogonal_bottleneck_start_is_an_orthogonal_projection(tmp_path):
    config = MultiTaskConfig(encoder=ENC, bottleneck_dim=8, bottleneck_init="orthogonal")
    model = MultiTaskModel(config)
    pair = model.proj_out.weight @ model.proj_in.weight              # (dim, dim), rank bottleneck_dim
    torch.testing.assert_close(pair @ pair, pair, atol=1e-5, rtol=0)  # a projection ...
    torch.testing.assert_close(pair, pair.T, atol=1e-6, rtol=0)       # ... an orthogonal one
    assert torch.linalg.matrix_rank(pair) == 8
    assert float(model.proj_in.bias.abs().sum() + model.proj_out.bias.abs().sum()) == 0.0
    model.save_pretrained(tmp_path / "m")
    assert MultiTaskModel.from_pretrained(tmp_path / "m").config.bottleneck_init == "orthogonal"
    with pytest.raises(ValueError, match="bottleneck_init"):
        MultiTaskModel(MultiTaskConfig(encoder=ENC, bottleneck_dim=8, bottleneck_init="identity"))


def test_a_checkpoint_from_before_the_noise_warmup_loads_with_none(tmp_path):
    """A stage-2 config.json written before ``noise.warmup_steps`` existed was noised from its first step."""
    import json

    config = MultiTaskConfig(encoder=ENC, bottleneck_dim=8, heads=HeadsConfig(mask=False),
                             noise=NoiseConfig(warmup_steps=50))
    MultiTaskModel(config).save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    written = json.loads(path.read_text())
    del written["config"]["noise"]["warmup_steps"]
    path.write_text(json.dumps(written))
    assert MultiTaskModel.from_pretrained(tmp_path / "m").noise.warmup_steps == 0
