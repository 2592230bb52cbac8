"""The duosynth generator end to end on a tiny corpus: the invariants a user relies on."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

from duotok.config import stage_params
from duotok.data import discover_songs, load_song
from duotok.data.checks import corpus_checks
from duotok.data.synth.ensure import corpus_status, ensure_corpus
from duotok.data.synth.generate import STEMS, generate_corpus, select_songs
from duotok.data.synth.singing import espeak_available
from duotok.data.synth.tags import TAG_VOCABULARY

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed (make setup installs it)")


def tiny_config(**overrides):
    cfg = stage_params("synth", "smoke")
    cfg.update({"n_songs": 4, "max_song_seconds": 8.0, "min_song_seconds": 4.0,
                "split_fractions": {"train": 0.5, "valid": 0.25, "test": 0.25}})
    cfg.update(overrides)
    return cfg


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("duosynth") / "data"
    generate_corpus(tiny_config(), out, workers=2)
    return out


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_layout_and_manifest(corpus_dir):
    manifest = json.loads((corpus_dir / "manifest.json").read_text())
    assert manifest["format"] == "duosynth" and manifest["sample_rate"] == 16000
    assert len(manifest["songs"]) == 4
    for song in manifest["songs"]:
        folder = corpus_dir / "songs" / song["id"]
        for name in (*STEMS, "mixture"):
            info = sf.info(folder / f"{name}.flac")
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert not (corpus_dir.parent / "data.partial").exists(), "no partial folder left behind"


def test_stems_sum_exactly_to_the_mixture(corpus_dir):
    for song in json.loads((corpus_dir / "manifest.json").read_text())["songs"]:
        folder = corpus_dir / "songs" / song["id"]
        mix, _ = sf.read(folder / "mixture.flac", dtype="int16")
        stems = [sf.read(folder / f"{s}.flac", dtype="int16")[0].astype(np.int32) for s in STEMS]
        assert np.array_equal(mix.astype(np.int32), sum(stems))
        assert np.abs(mix).max() > 3000, "the mixture is not silent"
        assert np.abs(stems[0]).max() > 1000, "the vocal is not silent"


def test_splits_are_by_work_and_tags_in_vocabulary(corpus_dir):
    records = discover_songs(corpus_dir)
    by_split = {}
    for r in records:
        by_split.setdefault(r.split, set()).add(r.meta["work"])
    assert set(by_split) == {"train", "valid", "test"}
    works = [w for ws in by_split.values() for w in ws]
    assert len(works) == len(set(works)), "a work appears in two splits"
    assert 15 <= len(TAG_VOCABULARY) <= 40
    for r in records:
        assert set(r.meta["tags"]) <= set(TAG_VOCABULARY)
        assert any(t.startswith("voice_") for t in r.meta["tags"])


def test_metadata_lyrics_and_pitch_are_right(corpus_dir):
    records = discover_songs(corpus_dir)
    rows, summary = corpus_checks(records, 16000, n_pitch_check_songs=2, pitch_split="train")
    assert summary["max_mixture_residual"] == 0.0
    assert summary["fraction_syllables_inside_audio"] == 1.0
    assert summary["fraction_syllables_audible"] >= 0.95
    assert summary["pitch_check"]["notes"] >= 8
    assert summary["pitch_check"]["fraction_within_50_cents"] >= 0.9
    meta = load_song(records[0], 16000)["meta"]
    for key in ("work", "lyrics", "notes", "key", "tempo_qpm", "time_signature", "programs", "voice",
                "language", "drum_style", "stem_gains_db", "tags"):
        assert key in meta, key
    assert set(meta["notes"]) == {"vocals", "drums", "bass", "other"}
    words = meta["lyrics"]["words"]
    assert words and all(a["onset"] <= b["onset"] for a, b in zip(words, words[1:], strict=False))


def test_generation_is_byte_identical_and_worker_independent(corpus_dir, tmp_path):
    again = tmp_path / "data"
    generate_corpus(tiny_config(), again, workers=1)
    assert _digest(again) == _digest(corpus_dir)


def test_seed_changes_the_corpus():
    a = select_songs(tiny_config())
    b = select_songs(tiny_config(seed=99))
    assert [s.work for s in a] != [s.work for s in b] or [s.voice for s in a] != [s.voice for s in b]


def test_ensure_is_a_no_op_when_current_and_leaves_real_data_alone(corpus_dir, tmp_path, monkeypatch):
    cfg = tiny_config()
    ok, reason = corpus_status(cfg, corpus_dir)
    assert ok, reason
    generated, _ = ensure_corpus(cfg, corpus_dir)
    assert not generated
    assert not corpus_status(tiny_config(seed=7), corpus_dir)[0], "other parameters → not current"
    import duotok.data.synth.generate as gen

    monkeypatch.setattr(gen, "GENERATOR_VERSION", gen.GENERATOR_VERSION + 1)
    assert not corpus_status(cfg, corpus_dir)[0], "a new generator version → not current"
    monkeypatch.undo()
    real = tmp_path / "real"
    (real / "song1").mkdir(parents=True)
    (real / "song1" / "vocals.wav").write_bytes(b"RIFF")
    generated, message = ensure_corpus(cfg, real)
    assert not generated and "did not generate" in message
    assert (real / "song1" / "vocals.wav").read_bytes() == b"RIFF", "real data must be left untouched"


def test_interrupted_run_reuses_finished_songs(corpus_dir, tmp_path):
    """A crash leaves <out>.partial; the next run keeps the songs that were complete."""
    out = tmp_path / "data"
    partial = tmp_path / "data.partial" / "songs"
    partial.mkdir(parents=True)
    first = sorted(p for p in (corpus_dir / "songs").iterdir())[0]
    import shutil

    shutil.copytree(first, partial / first.name)
    marker = partial / first.name / "untouched.txt"
    marker.write_text("kept")
    (partial / "9999_stale.tmp").mkdir()
    generate_corpus(tiny_config(), out, workers=1)
    assert (out / "songs" / first.name / "untouched.txt").is_file(), "finished song was re-rendered"
    assert not (out / "songs" / "9999_stale.tmp").exists()
