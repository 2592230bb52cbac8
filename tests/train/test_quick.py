"""The quick experiment path: overrides parsed like `-S`, a linked subset corpus, a run that trains stages
1-3 and logs health numbers, a log that grows."""

from __future__ import annotations

import csv
import json

import pytest

from duotok.train.quick import append_log, last_logged, parse_override, run, subset_corpus

SONGS = (("a", "train", 3.0), ("b", "train", 2.5), ("c", "train", 2.0), ("d", "valid", 2.0), ("g", "valid", 2.0),
         ("e", "test", 2.0), ("f", "test", 2.0))


def test_overrides_nest_and_parse_values_as_yaml():
    assert parse_override("quantize.model.codebook_init=data") == {"quantize": {"model": {"codebook_init": "data"}}}
    assert parse_override("finetune.model.heads.lyrics_weight=1.0") == \
        {"finetune": {"model": {"heads": {"lyrics_weight": 1.0}}}}
    with pytest.raises(ValueError, match="section.key=value"):
        parse_override("steps=3")


def test_parse_override_reads_bare_exponents_as_floats_where_yaml_1_1_would_not():
    # PyYAML alone gives the string '3e-3' here, which the typed train config then rejects.
    assert parse_override("autoencoder.train.lr=3e-3") == {"autoencoder": {"train": {"lr": 3e-3}}}
    assert parse_override("a.b=-1E5")["a"]["b"] == -1e5
    assert parse_override("a.b=1.5e+2")["a"]["b"] == 150.0
    assert parse_override("a.b=3.0e-3")["a"]["b"] == 3e-3
    assert parse_override("a.b=e5")["a"]["b"] == "e5"
    assert parse_override("a.b=3e-3x")["a"]["b"] == "3e-3x"


def test_subset_links_the_first_songs_of_each_split(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    sub = subset_corpus(root, tmp_path / "sub", train_songs=2, eval_songs=1)
    manifest = json.loads((sub / "manifest.json").read_text())
    assert [s["id"] for s in manifest["songs"]] == ["a", "b", "d", "e"]   # first by id in each split
    assert (sub / "songs" / "a").is_symlink() and (sub / "songs" / "a" / "mixture.flac").is_file()
    with pytest.raises(ValueError, match="fewer than"):
        subset_corpus(root, tmp_path / "sub2", train_songs=9, eval_songs=1)


def test_log_keeps_rows_and_grows_columns(tmp_path):
    append_log(tmp_path / "log.csv", {"name": "a", "x": 1.0})
    append_log(tmp_path / "log.csv", {"name": "b", "y": None})
    rows = list(csv.DictReader((tmp_path / "log.csv").read_text().splitlines()))
    assert [r["name"] for r in rows] == ["a", "b"] and rows[0]["x"] == "1" and rows[1]["y"] == ""


@pytest.mark.slow
def test_a_quick_run_trains_three_stages_and_reports_health(tmp_path, make_duosynth):
    root = make_duosynth(tmp_path / "data", SONGS)
    row = run("t", ["quantize.model.codebook_init=data"], tmp_path / "runs", root, profile="smoke",
              steps=(2, 2, 2), train_songs=3, eval_songs=2)
    assert row["overrides"] == "quantize.model.codebook_init=data"
    assert row["eval_split"] == "valid"   # recipe choices are made on validation songs, never on test
    for key in ("s1/masked_accuracy", "s1/lower_effective_rank", "s1/upper_effective_rank",
                "s3/vocal/usage", "s3/accompaniment/perplexity"):
        assert row[key] is not None and row[key] >= 0, key
    assert (tmp_path / "runs" / "t" / "tokenizer" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "runs" / "t" / "health.json").read_text())["name"] == "t"
    assert list(csv.DictReader((tmp_path / "runs" / "log.csv").read_text().splitlines()))[0]["name"] == "t"
    assert row["s2/valid_lyrics_ctc"] == last_logged(tmp_path / "runs" / "t" / "finetune" / "valid_log.csv",
                                                     "lyrics_loss")
    assert row["s2/valid_lyrics_ctc_noised"] is None    # this corpus's lyrics have no syllable times: no targets
    assert row["s1/upper_mel_readout_r2"] <= 1.0 and row["s1/lower_mel_readout_r2"] <= 1.0


def test_health_refuses_an_unknown_split(tmp_path):
    from duotok.config import Params
    from duotok.train.quick import health

    with pytest.raises(ValueError, match="split"):
        health({}, tmp_path, Params.load("smoke"), split="train")


def test_last_logged_is_the_last_row_with_a_value_of_the_column(tmp_path):
    log = tmp_path / "valid_log.csv"
    assert last_logged(log, "lyrics_loss") is None                 # no log: the stage never evaluated
    log.write_text("step,loss,mel_loss\n100,1.2,0.5\n", encoding="utf-8")
    assert last_logged(log, "lyrics_loss") is None                 # no lyrics head
    assert last_logged(log) == 1.2                                 # the total loss by default
    log.write_text("step,loss,lyrics_loss\n100,1.2,3.17\n200,1.1,2.94\n300,1.0,\n", encoding="utf-8")
    assert last_logged(log, "lyrics_loss") == 2.94
    assert last_logged(log) == 1.0


@pytest.mark.parametrize(("mode", "prob", "warmup", "same"), [("off", 1.0, 0, True), ("replace", 0.0, 0, True),
                                                              ("replace", 1.0, 0, False), ("replace", 1.0, 50, False)])
def test_lyrics_ctc_noised_is_the_clean_one_only_without_noise(tmp_path, make_duosynth, mode, prob, warmup, same):
    """The noised CTC turns the model's own training noise on (and nothing else): with no noise to turn on
    it equals the clean one, with every frame replaced it differs — a warm-up counted as finished, though
    this model's step is 0; the model's mode and step are restored."""
    import torch

    from duotok.data import StemCropDataset
    from duotok.models.encoder import EncoderConfig
    from duotok.models.multitask import HeadsConfig, MultiTaskConfig, MultiTaskModel, NoiseConfig
    from duotok.train.quick import lyrics_ctc_clean_and_noised

    root = make_duosynth(tmp_path / "data", (("d", "valid", 2.0), ("g", "valid", 2.0)))
    for song in ("d", "g"):                           # timed syllables, so each crop has lyrics targets
        meta = root / "songs" / song / "meta.json"
        syllables = [{"text": t, "onset": 0.3 * i} for i, t in enumerate(("la", "li", "lo", "lu"))]
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "lyrics": {"syllables": syllables}}))
    data = StemCropDataset(root, "valid", 2.0, 16000, crops_per_song=1, seed=0, random=False)
    torch.manual_seed(0)
    model = MultiTaskModel(MultiTaskConfig(encoder=EncoderConfig(dim=32, n_lower=1, n_upper=1, n_heads=2),
                                           bottleneck_dim=8, heads=HeadsConfig(mask=False),
                                           noise=NoiseConfig(mode=mode, prob=prob, warmup_steps=warmup))).train()
    ctc = lyrics_ctc_clean_and_noised(model, data)
    assert ctc["clean"] > 0 and (ctc["noised"] == ctc["clean"]) is same
    assert model.training and model.noise.training and model.noise.step == 0
