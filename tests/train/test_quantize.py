"""Stage 3 runner: trains the codebooks from a stage-2 checkpoint without moving the lower encoder."""

from __future__ import annotations

import json

import pytest
import torch

from duotok.errors import CheckpointError
from duotok.models.dualtrack import DualTrackModel
from duotok.models.multitask import MultiTaskModel
from duotok.train import finetune, quantize

SONGS = (("a", "train", 3.0), ("b", "train", 2.5), ("c", "valid", 2.0), ("d", "test", 2.0))


def test_quantize_trains_from_stage2(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    finetune.run("smoke", out_dir=tmp_path / "ft", data_dir=root, steps=1, from_scratch=True)
    result = quantize.run("smoke", out_dir=tmp_path / "q", data_dir=root, init=tmp_path / "ft" / "model", steps=3)
    assert result.step == 3 and torch.isfinite(torch.tensor(result.train["loss"]))
    assert 0 < result.valid["vocal/usage"] <= 1 and 0 < result.valid["accompaniment/usage"] <= 1
    stage2 = MultiTaskModel.from_pretrained(tmp_path / "ft" / "model")
    stage3 = DualTrackModel.from_pretrained(tmp_path / "q" / "model")
    for key, value in stage2.encoder.lower.state_dict().items():
        assert torch.equal(stage3.encoder.lower.state_dict()[key], value), f"frozen weight {key} moved"
    summary = json.loads((tmp_path / "q" / "result.json").read_text())
    assert summary["bits_per_second"] == pytest.approx(2 * 25 * 6)   # 2 x 25 Hz x log2(64)
    assert set(summary["fingerprints"]) == {"vocal", "accompaniment"}


def test_quantize_needs_a_stage2_checkpoint(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    with pytest.raises(CheckpointError, match="duotok train finetune"):
        quantize.run("smoke", out_dir=tmp_path / "q", data_dir=root, init=tmp_path / "none", steps=1)


def test_the_runner_bundles_the_tokenizer(tmp_path, make_duosynth):
    """`duotok train quantize` alone gives a tokenizer that `duotok train decoder` / `duotok encode` load."""
    from duotok.tokenizer import DuoTok

    root = make_duosynth(tmp_path / "data", SONGS)
    finetune.run("smoke", out_dir=tmp_path / "ft", data_dir=root, steps=1, from_scratch=True)
    quantize.run("smoke", out_dir=tmp_path / "q", data_dir=root, init=tmp_path / "ft" / "model", steps=2)
    tokenizer = DuoTok.from_pretrained(tmp_path / "q" / "tokenizer")   # beside the run when --out is given
    stage3 = DualTrackModel.from_pretrained(tmp_path / "q" / "model")
    assert tokenizer.quantizer.quantizer.codebook_fingerprints() == stage3.quantizer.codebook_fingerprints()
    summary = json.loads((tmp_path / "q" / "result.json").read_text())
    assert summary["tokenizer"] == str(tmp_path / "q" / "tokenizer")
    quantize.run("smoke", out_dir=tmp_path / "q", data_dir=root, init=tmp_path / "ft" / "model", steps=2,
                 tokenizer_dir=tmp_path / "named")                     # or where --tokenizer says
    assert (tmp_path / "named" / "model.safetensors").is_file()


def test_codebook_init_data_starts_each_codebook_on_its_track(tmp_path, make_duosynth):
    """codebook_init: data (the default since issue 17) fits each branch to its own track's inputs
    before step 1: with the cosine lookup its fixed standardisation (the shift is the track's mean),
    with the L2 lookup the bias; codebook_init: random keeps SimVQ's own start."""
    from duotok.config import Params

    root = make_duosynth(tmp_path / "data", SONGS)
    finetune.run("smoke", out_dir=tmp_path / "ft", data_dir=root, steps=1, from_scratch=True)
    default_cfg = quantize.build_config("smoke")[0]
    assert default_cfg.codebook_init == "data" and default_cfg.codebook_lookup == "cosine"
    random_cfg = quantize.build_config(Params.load("smoke").with_overrides(
        {"quantize": {"model": {"codebook_init": "random"}}}))[0]
    assert random_cfg.codebook_init == "random"
    stage2 = MultiTaskModel.from_pretrained(tmp_path / "ft" / "model")
    quantize.run("smoke", out_dir=tmp_path / "q", data_dir=root, init=tmp_path / "ft" / "model", steps=0)
    stage3 = DualTrackModel.from_pretrained(tmp_path / "q" / "model")
    s0, s1 = (br.vq.input_shift for br in stage3.quantizer.branches)
    assert s0.abs().sum() > 0 and not torch.allclose(s0, s1), "each branch was fitted to its own track"
    l2 = Params.load("smoke").with_overrides({"quantize": {"model": {"codebook_lookup": "l2"}}})
    quantize.run(l2, out_dir=tmp_path / "q2", data_dir=root, init=tmp_path / "ft" / "model", steps=0)
    stage3 = DualTrackModel.from_pretrained(tmp_path / "q2" / "model")
    fresh = DualTrackModel.from_finetune(stage2, quantize.build_config(l2)[0])
    for a, b in zip(stage3.quantizer.branches, fresh.quantizer.branches, strict=True):
        assert not torch.allclose(a.vq.proj.bias, b.vq.proj.bias), "the bias moved to the data's mean"
    b0, b1 = (br.vq.proj.bias for br in stage3.quantizer.branches)
    assert not torch.allclose(b0, b1), "each branch was fitted to its own track"
