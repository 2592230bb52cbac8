"""``duotok separate``'s file machinery with a stub separator: layout, bad files, overwriting, atomicity."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from duotok.io.files import OutputLocationError, current_umask
from duotok.separation import STEMS
from duotok.separation.predict import plan_separate, prepare_separate, resolve_chunking, run_separate

SR = 16000


class Quarter:
    """Every stem a quarter of the mixture; records the length of every call."""

    name = "quarter"
    sample_rate = SR
    chunk_seconds = 0.5

    def __init__(self):
        self.calls: list[int] = []

    def separate(self, mixture: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls.append(mixture.numel())
        return {s: mixture / 4 for s in STEMS}


def _song(seconds: float, sr: int = SR, seed: int = 0, channels: int = 1) -> np.ndarray:
    x = 0.3 * np.random.default_rng(seed).uniform(-1, 1, (int(round(seconds * sr)), channels))
    return x[:, 0].astype(np.float32) if channels == 1 else x.astype(np.float32)


def _read(path):
    data, rate = sf.read(str(path), dtype="float32")
    assert rate == SR
    return data


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_one_file_gets_its_own_song_folder(tmp_path, write_audio):
    song = write_audio(tmp_path / "in" / "song.wav", _song(1.3))
    plan = plan_separate(song, tmp_path / "stems")
    assert plan.jobs == [(song, tmp_path / "stems" / "song")] and not plan.folder
    sep = Quarter()
    report = run_separate(sep, plan, progress=False)
    assert report.written == [tmp_path / "stems" / "song"] and not report.failed and not report.notes
    assert _files(tmp_path / "stems") == [f"song/{s}.wav" for s in sorted(STEMS)]
    mixture = _read(song)
    stems = [_read(tmp_path / "stems" / "song" / f"{s}.wav") for s in STEMS]
    assert all(s.shape == mixture.shape for s in stems)
    assert np.allclose(sum(stems), mixture, atol=4 / 32768)     # PCM-16 rounding of four stems
    assert max(sep.calls) <= 0.5 * SR                             # chunked at the separator's crop


def test_a_folder_with_bad_files_finishes_the_good_ones_and_names_the_bad(tmp_path, write_audio):
    src = tmp_path / "in"
    write_audio(src / "a.wav", _song(0.7))
    write_audio(src / "sub" / "int.wav", (_song(0.4) * 32767).astype(np.int16))            # integer PCM
    write_audio(src / "sub" / "stereo44k.flac", _song(0.6, 44100, 1, channels=2), 44100)    # resampled, downmixed
    write_audio(src / "nan.wav", np.array([0.1, np.nan, 0.2] * 100, dtype=np.float32), subtype="FLOAT")
    (src / "corrupt.wav").write_bytes(b"RIFF not really a wave file")
    (src / "empty.wav").write_bytes(b"")
    (src / ".hidden.wav").write_bytes(b"skipped")
    plan = plan_separate(src, tmp_path / "out")
    assert plan.folder and len(plan.jobs) == 6
    report = run_separate(Quarter(), plan, progress=False)

    out = tmp_path / "out"
    assert set(report.failed) == {src / "nan.wav", src / "corrupt.wav", src / "empty.wav"}
    assert "non-finite" in report.failed[src / "nan.wav"]
    assert "corrupt" in report.failed[src / "corrupt.wav"]
    assert "empty" in report.failed[src / "empty.wav"]
    assert all(str(path) in message for path, message in report.failed.items())
    assert sorted(report.written) == [out / "a", out / "sub" / "int", out / "sub" / "stereo44k"]
    assert len(_read(out / "a" / "vocals.wav")) == round(0.7 * SR)
    ints = _read(out / "sub" / "int" / "drums.wav")
    assert len(ints) == round(0.4 * SR) and 0.01 < np.abs(ints).max() <= 0.3 / 4 + 1e-3   # scaled, not int
    assert len(_read(out / "sub" / "stereo44k" / "bass.wav")) == round(0.6 * SR)
    notes = " ".join(report.notes[src / "sub" / "stereo44k.flac"])
    assert "downmixing 2 channels" in notes and "resampling from 44100 Hz to 16000 Hz" in notes
    assert not (out / "nan").exists() and not (out / "corrupt").exists() and not (out / "empty").exists()
    assert not [p for p in out.rglob(".*")]                         # no temp files left behind


def test_existing_stems_are_kept_unless_overwrite(tmp_path, write_audio):
    song = write_audio(tmp_path / "song.wav", _song(0.5))
    plan = plan_separate(song, tmp_path / "out")
    run_separate(Quarter(), plan, progress=False)
    vocals = tmp_path / "out" / "song" / "vocals.wav"
    write_audio(vocals, np.zeros(10, dtype=np.float32))             # a user's edit
    report = run_separate(Quarter(), plan, progress=False)
    assert report.skipped == [tmp_path / "out" / "song"] and not report.written
    assert len(_read(vocals)) == 10
    report = run_separate(Quarter(), plan, overwrite=True, progress=False)
    assert report.written == [tmp_path / "out" / "song"] and len(_read(vocals)) == round(0.5 * SR)


def test_a_partly_written_song_gets_only_its_missing_stems(tmp_path, write_audio):
    song = write_audio(tmp_path / "song.wav", _song(0.5))
    plan = plan_separate(song, tmp_path / "out")
    run_separate(Quarter(), plan, progress=False)
    folder = tmp_path / "out" / "song"
    write_audio(folder / "vocals.wav", np.zeros(10, dtype=np.float32))
    (folder / "bass.wav").unlink()
    report = run_separate(Quarter(), plan, progress=False)
    assert report.written == [folder] and len(_read(folder / "vocals.wav")) == 10
    assert len(_read(folder / "bass.wav")) == round(0.5 * SR)
    assert "kept the existing vocals.wav, drums.wav, other.wav" in " ".join(report.notes[song])


def test_writes_are_atomic_with_umask_permissions(tmp_path, write_audio):
    song = write_audio(tmp_path / "song.wav", _song(0.5))
    old = os.umask(0o027)
    try:
        run_separate(Quarter(), plan_separate(song, tmp_path / "out"), progress=False)
        mode = current_umask()
    finally:
        os.umask(old)
    for stem in STEMS:
        assert (tmp_path / "out" / "song" / f"{stem}.wav").stat().st_mode & 0o777 == 0o666 & ~mode
    assert not list((tmp_path / "out").rglob(".*"))


def test_a_failed_write_leaves_no_temp_file(tmp_path, write_audio, monkeypatch):
    song = write_audio(tmp_path / "song.wav", _song(0.5))
    calls = []
    real_write = sf.write

    def flaky(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(sf, "write", flaky)
    with pytest.raises(ValueError, match="could not write audio"):
        run_separate(Quarter(), plan_separate(song, tmp_path / "out"), progress=False)
    assert _files(tmp_path / "out") == ["song/vocals.wav"]           # the complete first stem, nothing else


def test_an_unwritable_output_folder_is_refused_before_any_work(tmp_path, write_audio):
    song = write_audio(tmp_path / "song.wav", _song(0.5))
    (tmp_path / "taken").write_text("a file, not a folder")
    plan = plan_separate(song, tmp_path / "taken")
    with pytest.raises(OutputLocationError, match="taken: cannot write here"):
        prepare_separate(plan)
    sep = Quarter()
    with pytest.raises(OutputLocationError):
        run_separate(sep, plan, progress=False)
    assert sep.calls == []


def test_inputs_sharing_a_name_get_distinct_folders(tmp_path, write_audio):
    write_audio(tmp_path / "in" / "song.wav", _song(0.3))
    write_audio(tmp_path / "in" / "song.flac", _song(0.4, seed=1))
    plan = plan_separate(tmp_path / "in", tmp_path / "out")
    assert sorted(dst.name for _, dst in plan.jobs) == ["song.flac", "song.wav"] and len(plan.renamed) == 2
    run_separate(Quarter(), plan, progress=False)
    assert len(_read(tmp_path / "out" / "song.flac" / "other.wav")) == round(0.4 * SR)


@pytest.mark.parametrize("inside", ["stems", ".", "../music"])
def test_a_rerun_never_separates_its_own_output(tmp_path, write_audio, inside):
    src = tmp_path / "music"
    write_audio(src / "song.wav", _song(0.3))
    out = src / inside
    run_separate(Quarter(), plan_separate(src, out), progress=False)
    plan = plan_separate(src, out)
    assert [s for s, _ in plan.jobs] == [src / "song.wav"] and len(plan.ignored) == 4


def test_plan_errors_name_the_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.wav"):
        plan_separate(tmp_path / "nothing.wav", tmp_path / "out")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("no audio")
    with pytest.raises(ValueError, match="docs: no audio files"):
        plan_separate(tmp_path / "docs", tmp_path / "out")


def test_a_single_bad_file_raises(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.wav"):
        run_separate(Quarter(), plan_separate(tmp_path / "bad.wav", tmp_path / "out"), progress=False)


def test_chunking_defaults_and_validation():
    assert resolve_chunking(Quarter()) == (0.5, 0.125)             # the separator's crop, a quarter overlap
    plain = type("Plain", (), {"name": "plain", "sample_rate": SR})()
    assert resolve_chunking(plain) == (10.0, 1.0)
    assert resolve_chunking(plain, 4.0, 0.0) == (4.0, 0.0)
    with pytest.raises(ValueError, match="shorter than chunk_seconds"):
        resolve_chunking(plain, 1.0, 1.0)
