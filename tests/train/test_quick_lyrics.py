"""The lyrics-learnability reader: its frame rate is the token rate, a run trains, scores only crops with
sung text and logs a row, and bad arguments are refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from duotok.data import StemCropDataset
from duotok.errors import CheckpointError
from duotok.models.bestrq import BestRQConfig, BestRQModel, MelConfig
from duotok.models.encoder import DuoEncoder, EncoderConfig
from duotok.models.heads import LyricsHead
from duotok.text import CharVocab
from duotok.train.quick_lyrics import (
    LyricsReader,
    LyricsReaderConfig,
    fit_corpus_normalization,
    load_stage1_encoder,
    parse_holds,
    parse_multipliers,
    posterior_health,
    run,
    train_config,
    varying_share,
)

SONGS = (("a", "train", 3.0), ("b", "train", 2.5), ("c", "train", 2.0), ("d", "valid", 2.0), ("g", "valid", 2.0),
         ("e", "test", 2.0), ("f", "test", 2.0))


def _sing(root: Path, lyrics: bool = True) -> None:
    """Give every song syllable timings (the corpus's `meta.json` form), or none at all."""
    for meta_path in (root / "songs").glob("*/meta.json"):
        meta = json.loads(meta_path.read_text())
        if lyrics:
            meta["lyrics"] = {"syllables": [{"text": "la", "onset": 0.1 + 0.3 * i, "offset": 0.3 + 0.3 * i,
                                             "word": i} for i in range(6)]}
        else:
            meta.pop("lyrics", None)
        meta_path.write_text(json.dumps(meta))


def test_the_reader_emits_one_distribution_per_token_frame():
    vocab = CharVocab()
    reader = LyricsReader(LyricsReaderConfig(mel=MelConfig(n_mels=16), vocab_size=len(vocab), factor=4, hidden=8))
    mel = torch.randn(2, 16, 1001)
    out = reader.read_mel(mel)
    assert out.shape == (2, 250, len(vocab))
    garbage = mel.clone()
    garbage[1, :, 400:] = 1e3                 # a padded tail, left out of the standardisation and zeroed
    valid = torch.tensor([1001, 400])
    with torch.no_grad():
        assert torch.allclose(reader.read_mel(mel, valid)[1], reader.read_mel(garbage, valid)[1], atol=1e-5)
    assert torch.allclose(out.exp().sum(-1), torch.ones(2, 250), atol=1e-5)
    assert reader.frames(torch.tensor([1001, 401])).tolist() == [250, 100]


def test_the_encoder_body_is_duotoks_encoder_and_ignores_the_padded_tail():
    vocab = CharVocab()
    config = EncoderConfig(n_mels=16, dim=16, n_lower=1, n_upper=1, n_heads=2, downsample=4)
    reader = LyricsReader(LyricsReaderConfig(mel=MelConfig(n_mels=16), vocab_size=len(vocab), factor=4,
                                             body="encoder", encoder=config)).eval()
    assert isinstance(reader.encoder, DuoEncoder)
    assert reader.frames(torch.tensor([1001, 401])).tolist() == [251, 101]   # ceil(F / 4), the encoder's tokens
    mel = torch.randn(2, 16, 1001)
    garbage = mel.clone()
    garbage[1, :, 401:] = 1e3                 # crop 1 is a 4-s song padded to the batch's 10 s
    valid = torch.tensor([1001, 401])
    with torch.no_grad():
        out, out_garbage = reader.read_mel(mel, valid), reader.read_mel(garbage, valid)
    assert torch.allclose(out[:, :101], out_garbage[:, :101], atol=1e-5)   # its valid tokens ignore the tail
    assert out.shape == (2, 251, len(vocab))
    assert torch.allclose(out.exp().sum(-1), torch.ones(2, 251), atol=1e-5)
    with_context = LyricsReader(LyricsReaderConfig(mel=MelConfig(n_mels=16), vocab_size=len(vocab), factor=4,
                                                   body="encoder", head_context=8, encoder=config))
    assert isinstance(with_context.head, LyricsHead) and with_context.head.context.hidden_size == 8
    assert with_context.read_mel(mel, valid).shape == (2, 251, len(vocab))
    with pytest.raises(ValueError, match="does not match"):
        LyricsReader(LyricsReaderConfig(mel=MelConfig(n_mels=8), body="encoder", encoder=config))
    with pytest.raises(ValueError, match="body"):
        LyricsReader(LyricsReaderConfig(mel=MelConfig(n_mels=16), body="lstm"))


def test_a_run_trains_and_scores_the_sung_held_out_crops(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    _sing(root)
    row = run("t", tmp_path / "runs", root, source="vocals", profile="smoke", steps=3, hidden=8,
              train_songs=3, eval_songs=2, segment_seconds=1.0, log_every=1)
    assert row["eval_split"] == "valid" and row["crops"] == 2.0   # one crop per valid song, both sung
    assert row["cer"] >= 0.0 and row["final_ctc"] > 0.0
    curve = list(csv.DictReader((tmp_path / "runs" / "t" / "train_log.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in curve] == [1, 2, 3]
    assert float(curve[0]["lr"]) == pytest.approx(1e-3)          # the reader's constant learning rate
    assert list(csv.DictReader((tmp_path / "runs" / "log.csv").read_text().splitlines()))[0]["name"] == "t"
    reader = LyricsReader.from_pretrained(tmp_path / "runs" / "t" / "model")
    assert reader.config.hidden == 8 and reader.config.body == "gru"
    again = run("t", tmp_path / "runs", root, source="vocals", profile="smoke", steps=3, hidden=8,
                train_songs=3, eval_songs=2, segment_seconds=1.0, log_every=1)
    assert again["resumed_from"] == 3 and again["cer"] == row["cer"]   # a rerun resumes the finished run


def test_a_frozen_encoder_stays_untrained_while_the_head_learns_then_joins(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    _sing(root)
    kwargs = {"profile": "smoke", "body": "encoder", "train_songs": 3, "eval_songs": 2, "segment_seconds": 1.0}
    run("f", tmp_path / "runs", root, steps=2, freeze_encoder_steps=2, **kwargs)
    frozen = LyricsReader.from_pretrained(tmp_path / "runs" / "f" / "model")
    torch.manual_seed(0)                      # the run's seed: the same initial weights
    start = LyricsReader(frozen.config)
    for name, value in start.encoder.state_dict().items():
        assert torch.equal(value, frozen.encoder.state_dict()[name]), name
    assert not torch.equal(start.head.proj.weight, frozen.head.proj.weight)
    # Resumed for one more step, past the gate: now the encoder trains too.
    run("f", tmp_path / "runs", root, steps=3, freeze_encoder_steps=2, **kwargs)
    joined = LyricsReader.from_pretrained(tmp_path / "runs" / "f" / "model")
    assert not torch.equal(start.encoder.downsample.net[0].weight, joined.encoder.downsample.net[0].weight)


def test_corpus_normalization_is_the_encoders_own_and_ignores_the_padded_tail(tmp_path, make_duosynth):
    enc = EncoderConfig(n_mels=16, dim=16, n_lower=1, n_upper=1, n_heads=2, downsample=4)
    reader = LyricsReader(LyricsReaderConfig(mel=MelConfig(n_mels=16), factor=4, body="encoder", encoder=enc,
                                             normalization="corpus")).eval()
    reader.encoder.set_normalization(torch.linspace(-5, 1, 16), torch.linspace(0.5, 3, 16))
    mel = torch.randn(2, 16, 401) * 2 - 4
    valid = torch.tensor([401, 201])
    garbage = mel.clone()
    garbage[1, :, 201:] = 1e3
    frame_mask = torch.arange(401)[None] < valid[:, None]
    with torch.no_grad():
        out = reader.read_mel(mel, valid)
        # stages 1-2's path: DuoEncoder normalises with its statistics and zeroes the padded frames itself
        assert torch.allclose(out, reader.head(reader.encoder(mel, frame_mask)), atol=1e-5)
        assert torch.allclose(reader.read_mel(garbage, valid)[1, :51], out[1, :51], atol=1e-5)
        crop = LyricsReader(LyricsReaderConfig(mel=MelConfig(n_mels=16), factor=4, body="encoder", encoder=enc)).eval()
        crop.load_state_dict(reader.state_dict())
        assert not torch.allclose(crop.read_mel(mel, valid), out, atol=1e-3)   # the reader's own differs
    with pytest.raises(ValueError, match="normalization"):
        LyricsReader(LyricsReaderConfig(mel=MelConfig(n_mels=16), normalization="corpus"))   # GRU: no encoder
    with pytest.raises(ValueError, match="normalization"):
        LyricsReader(LyricsReaderConfig(mel=MelConfig(n_mels=16), factor=4, body="encoder", encoder=enc,
                                        normalization="song"))


def test_corpus_statistics_are_fitted_on_training_crops_or_taken_from_stage_1(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    _sing(root)
    enc = EncoderConfig(n_mels=16, dim=16, n_lower=1, n_upper=1, n_heads=2, downsample=4)
    mel_cfg = MelConfig(n_mels=16)
    reader = LyricsReader(LyricsReaderConfig(mel=mel_cfg, factor=4, body="encoder", encoder=enc,
                                             normalization="corpus"))
    data = StemCropDataset(root, "train", 1.0, mel_cfg.sample_rate, crops_per_song=2, seed=0)
    fit_corpus_normalization(reader, data, max_items=3)
    frames = torch.cat([reader.logmel(data[i]["mixture"][: int(data[i]["length"])][None])[0] for i in range(3)],
                       dim=-1).double()                  # (16, all frames of the first three crops)
    assert torch.allclose(reader.encoder.mel_mean.double(), frames.mean(dim=1), atol=1e-4)
    assert torch.allclose(reader.encoder.mel_std.double(), frames.std(dim=1, correction=0), rtol=1e-3, atol=1e-4)
    stage1 = BestRQModel(BestRQConfig(mel=mel_cfg, encoder=enc))
    stage1.encoder.set_normalization(torch.full((16,), -3.0), torch.full((16,), 2.0))
    stage1.save_pretrained(tmp_path / "s1")
    load_stage1_encoder(reader, tmp_path / "s1")
    for name, value in stage1.encoder.state_dict().items():
        assert torch.equal(reader.encoder.state_dict()[name], value), name
    other = BestRQModel(BestRQConfig(mel=mel_cfg, encoder=EncoderConfig(n_mels=16, dim=8, n_lower=1, n_upper=1,
                                                                        n_heads=2, downsample=4)))
    other.save_pretrained(tmp_path / "s1_other")
    with pytest.raises(ValueError, match="s1_other"):
        load_stage1_encoder(reader, tmp_path / "s1_other")
    row = run("c", tmp_path / "runs", root, profile="smoke", steps=1, body="encoder", normalization="corpus",
              train_songs=3, eval_songs=2, segment_seconds=1.0)
    assert row["normalization"] == "corpus" and row["cer"] >= 0.0
    trained = LyricsReader.from_pretrained(tmp_path / "runs" / "c" / "model")
    assert not torch.equal(trained.encoder.mel_std, torch.ones_like(trained.encoder.mel_std))   # fitted, saved


def test_stage_2s_schedule_can_be_set_and_unknown_settings_are_refused():
    cfg = train_config(600, 1e-3, 8, 0, ["warmup_steps=60", "min_lr_ratio=0.1", "grad_clip=1.0"])
    assert (cfg.warmup_steps, cfg.min_lr_ratio, cfg.grad_clip, cfg.weight_decay) == (60, 0.1, 1.0, 0.0)
    with pytest.raises(ValueError, match="unknown train settings"):
        train_config(600, 1e-3, 8, 0, ["warmup=60"])


def test_without_sung_held_out_crops_there_is_nothing_to_score(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    _sing(root, lyrics=False)
    with pytest.raises(ValueError, match="sung text"):
        run("t", tmp_path / "runs", root, profile="smoke", steps=1, hidden=8, train_songs=3, eval_songs=2,
            segment_seconds=1.0)


#: A tiny encoder-body reader: 16 mel bands, a 16-wide encoder with one block per stack.
TINY_ENCODER_BODY = dict(mel=MelConfig(n_mels=16), vocab_size=len(CharVocab()), factor=4, body="encoder",
                         encoder=EncoderConfig(n_mels=16, dim=16, n_lower=1, n_upper=1, n_heads=2, downsample=4))


def _with_plain_weights(plain: LyricsReader, config: LyricsReaderConfig) -> LyricsReader:
    """A reader of ``config`` (a bottleneck added) that shares every weight of ``plain`` but its own pair."""
    reader = LyricsReader(config).eval()
    reader.load_state_dict({**plain.state_dict(),
                            **{k: v for k, v in reader.state_dict().items() if k.startswith("proj_")}})
    return reader


def test_the_bottleneck_sits_between_the_two_stacks_with_stage_2s_names():
    base = TINY_ENCODER_BODY
    torch.manual_seed(0)
    plain = LyricsReader(LyricsReaderConfig(**base)).eval()
    wide = _with_plain_weights(plain, LyricsReaderConfig(**base, bottleneck=16))
    with torch.no_grad():                     # an identity bottleneck: the path without one, exactly
        for proj in (wide.proj_in, wide.proj_out):
            proj.weight.copy_(torch.eye(16))
            proj.bias.zero_()
    mel, valid = torch.randn(2, 16, 401), torch.tensor([401, 201])
    with torch.no_grad():
        assert torch.allclose(wide.read_mel(mel, valid), plain.read_mel(mel, valid), atol=1e-5)
        wide.proj_in.weight[0].zero_()            # ... and the features do go through it
        assert not torch.allclose(wide.read_mel(mel, valid), plain.read_mel(mel, valid), atol=1e-3)
        narrow = LyricsReader(LyricsReaderConfig(**base, bottleneck=4))
        assert narrow.proj_in.out_features == 4 and narrow.proj_out.in_features == 4
        assert {n.split(".")[0] for n, _ in narrow.named_parameters()} == {"encoder", "proj_in", "proj_out", "head"}
    with pytest.raises(ValueError, match="bottleneck"):
        LyricsReader(LyricsReaderConfig(mel=MelConfig(n_mels=16), bottleneck=4))     # the GRU body has no stacks
    with pytest.raises(ValueError, match="bottleneck"):
        LyricsReader(LyricsReaderConfig(**base, bottleneck=-1))


def test_an_orthogonal_bottleneck_passes_its_subspace_unchanged():
    base = TINY_ENCODER_BODY
    torch.manual_seed(0)
    plain = LyricsReader(LyricsReaderConfig(**base)).eval()
    full = _with_plain_weights(plain, LyricsReaderConfig(**base, bottleneck=16, bottleneck_init="orthogonal"))
    mel, valid = torch.randn(2, 16, 401), torch.tensor([401, 201])
    with torch.no_grad():                     # N = dim: a rotation and its inverse, the plain path
        assert torch.allclose(full.read_mel(mel, valid), plain.read_mel(mel, valid), atol=1e-5)
        narrow = LyricsReader(LyricsReaderConfig(**base, bottleneck=4, bottleneck_init="orthogonal"))
        pair = narrow.proj_out.weight @ narrow.proj_in.weight          # (16, 16): a rank-4 orthogonal projection
        assert torch.allclose(pair @ pair, pair, atol=1e-5) and torch.allclose(pair, pair.T, atol=1e-6)
        assert torch.linalg.matrix_rank(pair) == 4 and float(narrow.proj_in.bias.abs().sum()) == 0.0
        torch.manual_seed(0)
        default = LyricsReader(LyricsReaderConfig(**base, bottleneck=4))
        pair = default.proj_out.weight @ default.proj_in.weight
        assert not torch.allclose(pair @ pair, pair, atol=1e-3)        # nn.Linear's init is no projection
    with pytest.raises(ValueError, match="bottleneck_init"):
        LyricsReader(LyricsReaderConfig(**base, bottleneck_init="orthogonal"))     # no pair to initialise
    with pytest.raises(ValueError, match="bottleneck_init"):
        LyricsReader(LyricsReaderConfig(**base, bottleneck=4, bottleneck_init="eye"))


def test_posterior_health_tells_a_collapsed_reader_from_one_that_listens():
    fixed = torch.log_softmax(torch.tensor([2.0, 0.5, 0.1]), dim=0).expand(20, 3)
    health = posterior_health(fixed, blank=0)
    assert health["time_std"] == 0.0 and health["blank_mass"] == pytest.approx(float(fixed[0].exp()[0]))
    spiky = torch.full((20, 3), -9.0)
    spiky[:, 0] = 0.0
    spiky[5, 0], spiky[5, 2] = -9.0, 0.0              # one frame says character 2
    spiky = spiky.log_softmax(dim=-1)
    probs = spiky.exp()
    assert posterior_health(spiky, 0)["time_std"] == pytest.approx(float(probs.std(dim=0).mean()))
    assert posterior_health(spiky, 0)["time_std"] > 0.1
    with pytest.raises(ValueError, match="T >= 2"):
        posterior_health(spiky[:1], 0)


def test_varying_share_is_the_share_of_a_streams_energy_that_changes_between_frames():
    shared = torch.tensor([3.0, -1.0, 2.0])
    assert varying_share(shared.expand(50, 3).clone()) == 0.0                  # every frame the same vector
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(4000, 3, generator=g)
    noise = noise - noise.mean(dim=0)
    assert varying_share(noise) == pytest.approx(1.0)                           # zero mean: all of it varies
    mixed = shared + noise                                                      # independent check, by hand
    by_hand = float(noise.square().mean(dim=0).sum() / mixed.square().mean(dim=0).sum())
    assert varying_share(mixed) == pytest.approx(by_hand, rel=1e-6)
    for bad in (torch.zeros(5, 3), torch.ones(1, 3), torch.ones(3)):
        with pytest.raises(ValueError):
            varying_share(bad)


def test_learning_rate_multipliers_are_parsed_applied_and_held_across_a_resume(tmp_path, make_duosynth):
    assert parse_multipliers(["encoder=0.1", "proj_in=0"]) == {"encoder": 0.1, "proj_in": 0.0}
    for bad in (["encoder"], ["=0.1"], ["encoder=x"], ["encoder=1", "encoder=2"]):
        with pytest.raises(ValueError, match="lr-multiplier"):
            parse_multipliers(bad)
    root = make_duosynth(tmp_path / "data", SONGS)
    _sing(root)
    kwargs = {"profile": "smoke", "body": "encoder", "train_songs": 3, "eval_songs": 2, "segment_seconds": 1.0}
    row = run("m", tmp_path / "runs", root, steps=2, lr_multipliers={"encoder": 0.0}, **kwargs)
    assert json.loads(row["lr_multipliers"]) == {"encoder": 0.0} and 0.0 <= row["blank_mass"] <= 1.0
    trained = LyricsReader.from_pretrained(tmp_path / "runs" / "m" / "model")
    torch.manual_seed(0)                      # the run's seed: the same initial weights
    start = LyricsReader(trained.config)
    for name, value in start.encoder.state_dict().items():     # a multiplier of 0: the encoder never moved
        assert torch.equal(value, trained.encoder.state_dict()[name]), name
    assert not torch.equal(start.head.proj.weight, trained.head.proj.weight)
    with pytest.raises(CheckpointError, match="lr_multipliers"):
        run("m", tmp_path / "runs", root, steps=3, lr_multipliers={"encoder": 0.5}, **kwargs)
    run("m", tmp_path / "runs", root, steps=3, lr_multipliers={"encoder": 0.0}, **kwargs)   # the same ones resume


def test_a_held_bottleneck_stays_put_and_a_resume_with_other_holds_is_refused(tmp_path, make_duosynth):
    assert parse_holds(["proj_in=300", "proj_out=0"]) == {"proj_in": 300, "proj_out": 0}
    for bad in (["proj_in"], ["proj_in=0.5"], ["proj_in=1", "proj_in=2"]):
        with pytest.raises(ValueError, match="--hold"):
            parse_holds(bad)
    root = make_duosynth(tmp_path / "data", SONGS)
    _sing(root)
    kwargs = {"profile": "smoke", "body": "encoder", "bottleneck": 4, "train_songs": 3, "eval_songs": 2,
              "segment_seconds": 1.0}
    row = run("h", tmp_path / "runs", root, steps=2, holds={"proj_in": 5, "proj_out": 5}, **kwargs)
    assert json.loads(row["holds"]) == {"proj_in": 5, "proj_out": 5}
    for stream in ("lower_varying", "pair_varying", "upper_varying"):     # where an encoder's stream collapses
        assert 0.0 <= row[stream] <= 1.0, stream
    trained = LyricsReader.from_pretrained(tmp_path / "runs" / "h" / "model")
    torch.manual_seed(0)                      # the run's seed: the same initial weights
    start = LyricsReader(trained.config)
    for layer in ("proj_in", "proj_out"):     # held for 5 steps, so untouched in 2
        for name, value in getattr(start, layer).state_dict().items():
            assert torch.equal(value, getattr(trained, layer).state_dict()[name]), (layer, name)
    lower = "encoder.lower.norm.weight"       # below the held pair: its gradient still came through
    assert not torch.equal(start.state_dict()[lower], trained.state_dict()[lower])
    with pytest.raises(CheckpointError, match="holds"):
        run("h", tmp_path / "runs", root, steps=3, holds={"proj_in": 1}, **kwargs)
    run("h", tmp_path / "runs", root, steps=3, holds={"proj_in": 5, "proj_out": 5}, **kwargs)   # the same ones resume


@pytest.mark.parametrize("kwargs, match", [({"source": "drums"}, "source"), ({"steps": 0}, "steps"),
                                           ({"eval_split": "train"}, "eval_split"),
                                           ({"freeze_encoder_steps": 5}, "needs body 'encoder'"),
                                           ({"body": "encoder", "freeze_encoder_steps": -1}, ">= 0"),
                                           ({"bottleneck": 8}, "needs body 'encoder'"),
                                           ({"body": "encoder", "bottleneck": -1}, ">= 0"),
                                           ({"normalization": "corpus"}, "need body 'encoder'"),
                                           ({"init_encoder": "x"}, "need body 'encoder'")])
def test_bad_arguments_are_refused(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run("t", tmp_path / "runs", tmp_path / "data", profile="smoke", **kwargs)


def test_a_reader_saved_before_its_newer_options_existed_still_loads(tmp_path):
    reader = LyricsReader(LyricsReaderConfig(mel=MelConfig(n_mels=16), hidden=8))
    reader.save_pretrained(tmp_path / "r")
    header = json.loads((tmp_path / "r" / "config.json").read_text())
    for key in ("head_context", "bottleneck", "normalization", "bottleneck_init"):
        del header["config"][key]
    (tmp_path / "r" / "config.json").write_text(json.dumps(header))
    loaded = LyricsReader.from_pretrained(tmp_path / "r").config
    assert (loaded.head_context, loaded.bottleneck, loaded.normalization, loaded.bottleneck_init) == (0, 0, "crop",
                                                                                                      "default")
