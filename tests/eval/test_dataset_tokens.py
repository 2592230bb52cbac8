"""Real datasets in the evaluations (issue 20): a registry dataset tokenized in the corpus-tokens format,
MagnaTagATune through the tagging probe, MTG-Jamendo through the LM evaluation, bad audio named, and the
``null`` default leaving the corpus path as it was.

The fixtures are written in the datasets' published layouts, as ``tests/data/datasets`` writes them
(``annotations_final.csv`` tab-separated and fully quoted; Jamendo's split TSVs with one tag per field);
those builders live in that folder's test modules and conftest, which pytest scopes to it, so the few
lines are repeated here. Audio: 1 s mono 16 kHz mp3 tones whose *amplitude* encodes the clip, so the fake
codec's ids show which clip they came from.
"""

from __future__ import annotations

import csv
import math
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from duotok.config import stage_params
from duotok.data.datasets import DatasetProblems, open_dataset
from duotok.errors import ConfigError
from duotok.eval.corpus_tokens import load_corpus_tokens, save_corpus_tokens
from duotok.eval.dataset_tokens import (
    data_record,
    encode_dataset,
    evaluation_tokens,
    open_eval_data,
    tag_vocabulary,
)
from duotok.eval.lm_protocols import unconditional
from duotok.eval.probe_codecs import probe_codec, probe_items

SR = 16000
HOP = 640                   # samples per token frame: 25 Hz
V = 64                      # codebook size of the fake codec

# MagnaTagATune: clip_id, labels per MTT_TAGS, mp3_path (folders 0-b train, c valid, d-f test), amplitude.
MTT_TAGS = ["guitar", "classical", "techno", "rock"]
MTT_CLIPS = [
    ("2", [1, 1, 0, 0], "0/artist_a-album-01-one-0-29.mp3", 0.10),
    ("6", [0, 1, 0, 0], "3/artist_b-album-02-two-0-29.mp3", 0.20),
    ("10", [1, 0, 0, 1], "b/artist_c-album-03-three-30-59.mp3", 0.30),
    ("11", [1, 0, 0, 0], "c/artist_d-album-04-four-0-29.mp3", 0.15),
    ("12", [0, 1, 0, 1], "c/artist_e-album-05-five-0-29.mp3", 0.25),
    ("20", [1, 0, 0, 1], "d/artist_f-album-06-six-0-29.mp3", 0.35),
    ("21", [1, 0, 0, 0], "e/artist_g-album-07-seven-0-29.mp3", 0.12),
    ("22", [0, 1, 0, 0], "f/artist_h-album-08-eight-0-29.mp3", 0.22),
    ("23", [0, 0, 1, 0], "f/artist_i-album-09-nine-0-29.mp3", 0.32),   # techno: the least frequent tag
]
JAMENDO_HEADER = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"
JAMENDO = {  # split file -> rows; every track 1 s of audio
    "train": ["track_0000214\tartist_000014\talbum_000031\t14/214.mp3\t1.0\tgenre---punkrock",
              "track_0000215\tartist_000014\talbum_000031\t15/215.mp3\t1.0\tgenre---metal\tinstrument---guitar",
              "track_0000216\tartist_000015\talbum_000032\t16/216.mp3\t1.0\tgenre---rock"],
    "validation": ["track_1048592\tartist_424343\talbum_123552\t92/1048592.mp3\t1.0\tmood/theme---emotional"],
    "test": ["track_0786434\tartist_368880\talbum_092222\t34/786434.mp3\t1.0\tgenre---electronic\tgenre---house",
             "track_0786435\tartist_368881\talbum_092223\t35/786435.mp3\t1.0\tgenre---jazz"],
}


def _tone(path, amplitude: float, freq: float = 330.0, seconds: float = 1.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    sf.write(str(path), (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR, format="MP3")
    return path


def _expected_id(amplitude: float) -> int:
    """The fake codec's id of a steady tone: mean |sin| = 2a/pi, times 100."""
    return int(amplitude * 2 / math.pi * 100)


class DualTrackCodec:
    """A dual-track fake: ``encode`` (a mixture) "separates" it into vocal = mixture and accompaniment =
    mixture / 2; ``encode_stems`` is counted, so a test can check that mixture-only data never takes the
    oracle path. Ids: mean |x| per 640-sample frame, times 100."""

    name = "fake"
    sample_rate = SR
    frame_rate = SR / HOP
    codebook_sizes = (V, V)
    streams = {"vocal": (0,), "accompaniment": (1,)}

    def __init__(self) -> None:
        self.calls = {"encode": 0, "encode_stems": 0}

    def fingerprint(self) -> str:
        return "fake-books"

    def _ids(self, x: torch.Tensor) -> torch.Tensor:
        n = -(-x.numel() // HOP)
        frames = torch.nn.functional.pad(x, (0, n * HOP - x.numel())).view(n, HOP)
        return (frames.abs().mean(dim=1) * 100).long().clamp(0, V - 1)

    def encode(self, mixture: torch.Tensor) -> torch.Tensor:
        self.calls["encode"] += 1
        return torch.stack([self._ids(mixture), self._ids(mixture / 2)])

    def encode_stems(self, vocal: torch.Tensor, accompaniment: torch.Tensor) -> torch.Tensor:
        self.calls["encode_stems"] += 1
        return torch.stack([self._ids(vocal), self._ids(accompaniment)])

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(ids.T, V).flatten(1).float()


@pytest.fixture
def mtt(tmp_path):
    """MagnaTagATune's layout: the 16 clip folders and the tab-separated, fully quoted annotations file."""
    root = tmp_path / "magnatagatune"
    for _, _, rel, amplitude in MTT_CLIPS:
        _tone(root / rel, amplitude)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "annotations_final.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", quoting=csv.QUOTE_ALL)
        writer.writerow(["clip_id", *MTT_TAGS, "mp3_path"])
        for clip_id, labels, rel, _ in MTT_CLIPS:
            writer.writerow([clip_id, *labels, rel])
    return root


@pytest.fixture
def jamendo(tmp_path):
    """MTG-Jamendo's layout: the audio tree, and a metadata clone with data/splits/split-0/*.tsv."""
    audio, meta = tmp_path / "audio", tmp_path / "mtg-jamendo-dataset"
    for k, row in enumerate(row for rows in JAMENDO.values() for row in rows):
        _tone(audio / row.split("\t")[3], 0.1 + 0.04 * k, freq=220.0 + 40 * k)
    folder = meta / "data" / "splits" / "split-0"
    folder.mkdir(parents=True)
    for name, rows in JAMENDO.items():
        (folder / f"autotagging-{name}.tsv").write_text("\n".join([JAMENDO_HEADER, *rows]) + "\n", encoding="utf-8")
    return audio, meta


def test_mtt_tokens_have_the_corpus_structure_and_the_csv_tags(mtt, tmp_path):
    codec = DualTrackCodec()
    tokens = encode_dataset(codec, open_dataset("magnatagatune", mtt), progress=False)
    # the corpus-tokens structure, so load_corpus_tokens (and everything that reads it) takes it as is
    path = save_corpus_tokens(tokens, tmp_path / "tokens" / "fake.pt")
    loaded = load_corpus_tokens(path, codec)
    assert loaded["frame_rate"] == 25.0 and loaded["codebook_sizes"] == [V, V] and loaded["source"] == "separated"
    assert loaded["streams"] == {"vocal": [0], "accompaniment": [1]} and loaded["problems"] == []
    # mixture-only data: the dual-track codec encoded each mixture (separating it), never the stems
    assert codec.calls == {"encode": len(MTT_CLIPS), "encode_stems": 0}
    # the top-50 vocabulary is MTT's count order (guitar 5, classical 4, rock 3, techno 1)
    assert loaded["vocabulary"] == ["guitar", "classical", "rock", "techno"] == list(tag_vocabulary(loaded))
    by_id = {song["id"]: song for song in loaded["songs"]}
    split_of = {"0": "train", "3": "train", "b": "train", "c": "valid", "d": "test", "e": "test", "f": "test"}
    for clip_id, labels, rel, amplitude in MTT_CLIPS:
        song = by_id[clip_id]
        assert song["split"] == split_of[rel[0]]
        assert set(song["tags"]) == {t for t, on in zip(MTT_TAGS, labels, strict=True) if on}
        assert song["ids"].dtype == torch.long and song["ids"].shape == (2, SR // HOP)
        assert abs(int(song["ids"][0].median()) - _expected_id(amplitude)) <= 1     # this clip's audio
    # multi-hot over the vocabulary, per split, what the probe is trained on
    items = {s: probe_items(codec, loaded, s, tag_vocabulary(loaded)) for s in ("train", "valid", "test")}
    assert [i.song_id for i in items["test"]] == ["20", "21", "22", "23"]
    assert [i.tags.tolist() for i in items["test"]] == [[1, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]
    assert items["train"][0].embeddings.shape == (SR // HOP, 2 * V)


def test_the_probe_trains_and_scores_on_magnatagatune(mtt):
    codec = DualTrackCodec()
    data = open_eval_data({"dataset": "magnatagatune", "root": str(mtt), "options": {"top_k": 3}})
    tokens = evaluation_tokens("unused.pt", data, codec)
    vocabulary = tag_vocabulary(tokens)
    assert vocabulary == ("guitar", "classical", "rock")       # top 3: techno left out, clip 23 skipped
    assert "23" not in {s["id"] for s in tokens["songs"]}
    model = {"channels": 8, "n_blocks": 1, "dropout": 0.0}
    train = {"steps": 2, "batch_size": 4, "lr": 3e-3, "window_seconds": 0.4, "seeds": [0], "eval_every": 1}
    result = probe_codec(codec, tokens, model, train, vocabulary, min_positive_test_songs=1)
    # test songs 20 {guitar, rock}, 21 {guitar}, 22 {classical}: every top-3 tag has both classes
    assert result["tags_kept"] == ["guitar", "classical", "rock"] and result["tags_dropped"] == {}
    assert math.isfinite(result["ap_mean"]) and 0 < result["ap_mean"] <= 1
    assert math.isfinite(result["auc_mean"]) and result["per_seed"][0]["n_tags_scored"] == 3
    assert result["config"]["n_train"] == 3 and result["config"]["n_test"] == 3
    record = data_record(data, tokens)
    assert record["dataset"] == "magnatagatune" and record["items"] == {"test": 3, "train": 3, "valid": 2}
    assert record["vocabulary"] == list(vocabulary) and record["skipped"] == 1 and record["problems"] == []


def test_the_lm_evaluation_runs_on_jamendo(jamendo, tmp_path):
    audio, meta = jamendo
    loaded = []

    def load() -> DualTrackCodec:   # the LM stage loads a codec only to encode a dataset
        loaded.append(DualTrackCodec())
        return loaded[-1]

    data = open_eval_data({"dataset": "mtg_jamendo", "root": str(audio), "options": {"metadata_root": str(meta)}},
                          "lm.data")
    tokens = evaluation_tokens(tmp_path / "no-corpus.pt", data, load, training_seed=1)
    assert len(loaded) == 1 and tokens["training_seed"] == 1 and tokens["dataset"] == "mtg_jamendo"
    assert [s["split"] for s in tokens["songs"]] == ["train"] * 3 + ["valid"] + ["test"] * 2
    assert tokens["songs"][1]["tags"] == ["genre---metal", "instrument---guitar"]
    params = {"crop_seconds": 0.4, "model": {"dim": 16, "n_layers": 1, "n_heads": 2},
              "train": {"steps": 2, "batch_size": 2, "warmup_steps": 1, "log_every": 1, "eval_every": 2,
                        "save_every": 2, "seed": 0}}
    result = unconditional(tokens, params, tmp_path / "lm")
    assert math.isfinite(result["ppl_1024"]) and result["ppl_1024"] > 0
    assert math.isfinite(result["bits_per_second"]) and result["training_seeds"] == [1]
    assert result["scored_tokens"] == 2 * SR // HOP                      # every frame of the 2 test tracks
    assert list(result["per_song_by_seed"]["1"]) == ["track_0786434", "track_0786435"]


def test_a_bad_audio_file_is_named_and_the_rest_encoded(mtt):
    bad = mtt / MTT_CLIPS[5][2]                                  # clip 20, a test clip
    bad.write_bytes(b"this is not an mp3 " * 20)
    found = open_dataset("magnatagatune", mtt)
    with pytest.raises(DatasetProblems) as err:                  # strict (the default): every bad item, raised
        encode_dataset(DualTrackCodec(), found, progress=False)
    assert [p.path for p in err.value.problems] == [bad] and bad.name in str(err.value)
    assert "item 20" in str(err.value)
    data = open_eval_data({"dataset": "magnatagatune", "root": str(mtt), "options": {"strict": False}})
    with pytest.warns(UserWarning, match=bad.name):
        tokens = evaluation_tokens("unused.pt", data, DualTrackCodec())
    assert [p["path"] for p in tokens["problems"]] == [str(bad)]
    assert "unreadable or corrupt" in tokens["problems"][0]["problem"]
    assert sorted(s["id"] for s in tokens["songs"]) == sorted(c[0] for c in MTT_CLIPS if c[0] != "20")
    assert data_record(data, tokens)["problems"] == tokens["problems"]


def test_the_null_default_keeps_the_corpus_tokens(tmp_path):
    for section in ("probe", "lm"):
        for profile in ("smoke", "default", "paper"):
            assert stage_params(section, profile)["data"] is None      # the committed pipeline: the corpus
    assert open_eval_data(None) is None and data_record(None) is None
    corpus = {"format": "duotok-corpus-tokens", "version": 1, "codec": "fake", "fingerprint": "fake-books",
              "frame_rate": 25.0, "codebook_sizes": [V, V], "streams": {"vocal": [0], "accompaniment": [1]},
              "source": "oracle", "songs": [{"id": "s", "split": "test", "tags": ["voice:tenor"],
                                             "ids": torch.zeros(2, 3, dtype=torch.long)}]}
    path = save_corpus_tokens(corpus, tmp_path / "fake.pt")
    codec = DualTrackCodec()
    tokens = evaluation_tokens(path, None, codec)
    assert tokens["songs"][0]["tags"] == ["voice:tenor"] and codec.calls == {"encode": 0, "encode_stems": 0}
    assert evaluation_tokens(path, None, lambda: pytest.fail("no codec is loaded for corpus tokens"))["codec"] == "fake"
    with pytest.raises(ValueError, match="re-tokenize"):                    # still checked against the codebooks
        evaluation_tokens(path, None, type("Other", (DualTrackCodec,), {"fingerprint": lambda self: "other"})())
    from duotok.data.synth.tags import TAG_VOCABULARY
    assert tag_vocabulary(tokens) == tuple(TAG_VOCABULARY)


def test_a_malformed_data_block_is_a_config_error(mtt):
    with pytest.raises(ConfigError, match="missing keys"):
        open_eval_data({"dataset": "magnatagatune"}, "probe.data")
    with pytest.raises(ConfigError, match="unknown keys"):
        open_eval_data({"dataset": "magnatagatune", "root": str(mtt), "train_splits": ["train"]}, "probe.data")
    with pytest.raises(ConfigError, match="no option"):
        open_eval_data({"dataset": "magnatagatune", "root": str(mtt), "options": {"subset": "x"}})
    with pytest.raises(ConfigError, match="mapping"):
        open_eval_data("magnatagatune")  # type: ignore[arg-type]
    shutil.rmtree(mtt / "c")                                     # no valid clip left: the evaluation cannot run
    with pytest.raises(Exception, match="valid"):
        encode_dataset(DualTrackCodec(), open_dataset("magnatagatune", mtt, strict=False), progress=False)
