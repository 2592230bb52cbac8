"""The routing ablations: a shared (tied) codebook, and stage 3 fed by the stage-2 separator."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from duotok.ablations.routing_variants import is_tied, separated_stems_loss, tie_codebooks
from duotok.data.targets import MultiTaskCollate
from duotok.models.dualtrack import DualTrackModel
from duotok.models.multitask import MultiTaskModel
from duotok.text import CharVocab
from duotok.tokenizer.model import DuoTok
from duotok.train import finetune, quantize
from duotok.train.common import crop_datasets

SONGS = (("a", "train", 2.0), ("b", "train", 1.5), ("c", "valid", 1.0))


@pytest.fixture(scope="module")
def configs():
    """Smoke-profile stage-2 / stage-3 configs from the real params.yaml."""
    return finetune.build_config("smoke")[0], quantize.build_config("smoke")[0]


def stage3(configs, seed: int = 0) -> tuple[MultiTaskModel, DualTrackModel]:
    torch.manual_seed(seed)
    stage2 = MultiTaskModel(configs[0])
    return stage2, DualTrackModel.from_finetune(stage2, configs[1])


def branch_states(model: DualTrackModel) -> tuple[dict, dict]:
    return tuple({k: v.detach().clone() for k, v in b.state_dict().items()} for b in model.quantizer.branches)


def train_steps(model: DualTrackModel, steps: int = 2) -> None:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        vocals, accomp = torch.randn(2, 8000, generator=gen) * 0.1, torch.randn(2, 8000, generator=gen) * 0.1
        loss, _ = model(vocals, accomp, torch.full((2,), 8000))
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_tied_codebooks_stay_tied_through_training_and_checkpoints(tmp_path, configs):
    stage2, model = stage3(configs)
    before = branch_states(model)
    assert not all(torch.equal(before[0][k], before[1][k]) for k in before[0]), "distinct seeds by default"
    assert tie_codebooks(model) is model and is_tied(model.quantizer)
    n_params = sum(1 for _ in model.parameters())
    assert n_params < sum(1 for _ in stage3(configs)[1].parameters()), "one branch's parameters, not two"
    train_steps(model)
    vocal, accomp = branch_states(model)
    assert all(torch.equal(vocal[k], accomp[k]) for k in vocal)
    assert not torch.equal(vocal["vq.proj.weight"], before[0]["vq.proj.weight"]), "training moved it"

    model.save_pretrained(tmp_path / "q")
    loaded = DualTrackModel.from_pretrained(tmp_path / "q")
    assert type(loaded) is DualTrackModel and not is_tied(loaded.quantizer)
    assert loaded.config == model.config
    a, b = branch_states(loaded)
    assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], vocal[k]) for k in a)
    prints = loaded.quantizer.codebook_fingerprints()
    assert prints["vocal"] == prints["accompaniment"] == model.quantizer.codebook_fingerprints()["vocal"]
    audio = torch.randn(1, 8000) * 0.1
    with torch.no_grad():
        codes = [loaded.quantize(audio, torch.tensor([route]))[0].codes for route in (0, 1)]
    assert torch.equal(codes[0], codes[1]), "same input, same codes on either route"

    # A tied checkpoint goes into the tokenizer like any other.
    stage2.save_pretrained(tmp_path / "ft")
    tok = DuoTok.from_stages(tmp_path / "ft", tmp_path / "q", chunk_seconds=1.0)
    v_ids, a_ids = tok.encode_stems(audio[0], audio[0])
    assert torch.equal(v_ids, a_ids) and len(set(tok.fingerprints().values())) == 1


def test_tied_model_resumes_from_its_checkpoint_and_refuses_untied_weights(tmp_path, configs):
    _, model = stage3(configs)
    tie_codebooks(model)
    train_steps(model, 1)
    model.save_pretrained(tmp_path / "q")
    fresh = tie_codebooks(stage3(configs, seed=1)[1])
    # As Trainer.try_resume does it.
    fresh.load_state_dict(DualTrackModel.from_pretrained(tmp_path / "q").state_dict())
    assert is_tied(fresh.quantizer)
    assert fresh.quantizer.codebook_fingerprints() == model.quantizer.codebook_fingerprints()
    with pytest.raises(RuntimeError, match="shared codebook"):
        fresh.load_state_dict(stage3(configs)[1].state_dict())


def test_tie_needs_equal_codebook_sizes(configs):
    cfg = dataclasses.replace(configs[1], codebook_sizes=(64, 32))
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="equal codebook sizes"):
        tie_codebooks(DualTrackModel.from_finetune(MultiTaskModel(configs[0]), cfg))


def batch_of(root, configs) -> dict:
    mel = configs[1].mel
    train, _ = crop_datasets(root, {"segment_seconds": 1.0, "crops_per_song": 1}, mel.sample_rate, 0)
    collate = MultiTaskCollate(CharVocab(), mel.sample_rate, mel.hop_length, per_track=True)
    return collate([train[0], train[1]])


def test_separated_stems_loss_feeds_the_separator_estimates(tmp_path, make_duosynth, configs):
    batch = batch_of(make_duosynth(tmp_path / "data", SONGS), configs)
    stage2, model = stage3(configs)
    stage2.train()
    loss_fn = separated_stems_loss(stage2)
    assert not stage2.training and not any(p.requires_grad for p in stage2.parameters())

    inputs = loss_fn.inputs(batch)
    assert inputs["stems"].shape == batch["stems"].shape
    assert inputs["accompaniment"].shape == batch["accompaniment"].shape
    assert not torch.allclose(inputs["stems"][:, 0], batch["stems"][:, 0], atol=1e-3)
    assert not torch.allclose(inputs["accompaniment"], batch["accompaniment"], atol=1e-3)
    for key in ("chroma_vocals", "chroma_accompaniment", "lyrics", "mixture", "length"):
        assert inputs[key] is batch[key], f"{key} must stay the batch's own"
    again = loss_fn.inputs(batch)
    assert torch.equal(again["stems"], inputs["stems"]), "eval mode: no bottleneck noise, deterministic"
    # The same stems DuoTok.separate gives at inference (one item, one chunk of its length).
    n = int(batch["length"][0])
    tok = DuoTok(dataclasses.replace(DuoTok.config_class(), separator=configs[0], quantizer=configs[1],
                                     chunk_seconds=n / configs[1].mel.sample_rate))
    tok.separator.load_state_dict(stage2.state_dict())
    vocals, _ = tok.eval().separate(batch["mixture"][0, :n])
    assert torch.allclose(vocals, inputs["stems"][0, 0, :n], atol=1e-5)

    model.train()
    loss, metrics = loss_fn(model, batch)
    assert torch.isfinite(loss) and metrics
    loss.backward()
    grads = [p.grad for p in model.quantizer.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
    assert all(p.grad is None for p in stage2.parameters()), "the separator is frozen"
    oracle, _ = quantize.quantize_loss(model, batch)
    assert not torch.isclose(loss.detach(), oracle.detach())


def test_separated_loss_needs_a_mask_head(configs):
    cfg = dataclasses.replace(configs[0], heads=dataclasses.replace(configs[0].heads, mask=False))
    with pytest.raises(ValueError, match="no mask head"):
        separated_stems_loss(MultiTaskModel(cfg))
