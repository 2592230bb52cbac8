"""`duotok encode | info | bench encode` with a tiny random DuoTok checkpoint."""

from __future__ import annotations

import errno
import json
import os
import time

import numpy as np
import pytest
import soundfile as sf

from duotok.cli import main
from duotok.tokenizer import load_tokens


@pytest.fixture
def model_dir(tmp_path, tiny_duotok):
    return tiny_duotok.save_pretrained(tmp_path / "duotok")


def write_song(path, seconds, sr=16000, seed=0):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * rng.standard_normal(int(seconds * sr))).astype(np.float32), sr)
    return path


def test_encode_one_file_then_info(tmp_path, model_dir, capsys):
    song = write_song(tmp_path / "song.wav", 1.3)
    assert main(["encode", str(song), "-o", str(tmp_path / "song.tok"), "--model", str(model_dir)]) == 0
    tokens = load_tokens(tmp_path / "song.tok")
    assert tokens.n_frames == 33 and tokens.mode == "separated" and tokens.source == "song.wav"
    capsys.readouterr()
    assert main(["info", str(tmp_path / "song.tok")]) == 0
    out = capsys.readouterr().out
    assert "33 frames per track" in out and '"codebook_sizes"' in out
    assert main(["info", str(model_dir)]) == 0
    assert "DuoTok" in capsys.readouterr().out


def test_encode_a_folder_mirrors_it_and_reports_bad_files(tmp_path, model_dir, capsys):
    write_song(tmp_path / "in" / "a.wav", 0.5)
    write_song(tmp_path / "in" / "sub" / "b.flac", 0.7, sr=44100)   # resampled
    (tmp_path / "in" / "broken.wav").write_bytes(b"RIFF garbage")
    code = main(["encode", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model_dir)])
    captured = capsys.readouterr()
    assert code == 1 and "broken.wav" in captured.err
    assert load_tokens(tmp_path / "out" / "a.tok").n_frames == 13
    assert load_tokens(tmp_path / "out" / "sub" / "b.tok").n_frames == 18
    assert not (tmp_path / "out" / "broken.tok").exists()
    # a rerun skips what exists
    main(["encode", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model_dir)])
    assert "skipped 2 existing" in capsys.readouterr().out


def test_encode_errors_are_clear(tmp_path, model_dir, capsys):
    assert main(["encode", str(tmp_path / "none.wav"), "--model", str(model_dir)]) == 2
    assert "none.wav" in capsys.readouterr().err
    assert main(["encode", str(tmp_path), "--model", str(model_dir)]) == 2
    assert "-o DIR" in capsys.readouterr().err
    write_song(tmp_path / "s.wav", 0.2)
    assert main(["encode", str(tmp_path / "s.wav"), "--model", str(tmp_path / "nomodel")]) == 2
    assert "make repro" in capsys.readouterr().err


def test_bench_encode_reports_rtf_and_memory(model_dir, capsys):
    assert main(["bench", "encode", "--model", str(model_dir), "--seconds", "2", "--repeats", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["audio_seconds"] == pytest.approx(2.0)
    assert result["rtf_best"] > 0 and result["peak_rss_mib"] > 10


def test_inputs_sharing_a_stem_are_all_encoded_under_distinct_names(tmp_path, model_dir, capsys):
    write_song(tmp_path / "in" / "song.wav", 0.5, seed=1)
    write_song(tmp_path / "in" / "song.flac", 0.7, seed=2)
    write_song(tmp_path / "in" / "other.wav", 0.3)
    write_song(tmp_path / "in" / "sub" / "song.wav", 0.3)              # alone in its folder: plain name
    out = tmp_path / "out"
    assert main(["encode", str(tmp_path / "in"), "-o", str(out), "--model", str(model_dir)]) == 0
    stdout = capsys.readouterr().out
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.tok")) == [
        "other.tok", "song.flac.tok", "song.wav.tok", "sub/song.tok"]
    assert load_tokens(out / "song.wav.tok").source == "song.wav"
    assert load_tokens(out / "song.flac.tok").n_frames == 18 and load_tokens(out / "song.wav.tok").n_frames == 13
    assert f"renamed: {tmp_path / 'in' / 'song.wav'} -> {out / 'song.wav.tok'}" in stdout
    assert f"renamed: {tmp_path / 'in' / 'song.flac'} -> {out / 'song.flac.tok'}" in stdout
    assert "other.wav ->" not in stdout
    # a rerun skips all four, it does not overwrite one with the other
    assert main(["encode", str(tmp_path / "in"), "-o", str(out), "--model", str(model_dir)]) == 0
    assert "skipped 4 existing" in capsys.readouterr().out


def test_token_outputs_never_collide(tmp_path):
    from duotok.tokenizer.batch import token_outputs

    names = ["song.wav", "song.flac", "song.wav.flac", "Take.WAV", "take.flac", "solo.wav"]
    files = [tmp_path / n for n in names]
    outputs, renamed = token_outputs(files, tmp_path, tmp_path / "out")
    assert len({str(p).casefold() for p in outputs.values()}) == len(files)
    assert {p.name for p in outputs.values()} == {"song.wav.tok", "song.flac.tok", "song.wav.flac.tok",
                                                   "Take.WAV.tok", "take.flac.tok", "solo.tok"}
    assert tmp_path / "solo.wav" not in renamed and len(renamed) == 5


def test_folder_encode_reports_every_bad_file_and_finishes_the_rest(tmp_path, model_dir, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a_broken.wav").write_bytes(b"RIFF garbage")
    write_song(tmp_path / "in" / "b.wav", 0.4)
    (tmp_path / "in" / "c_empty.flac").write_bytes(b"")
    write_song(tmp_path / "in" / "d.wav", 0.4)
    code = main(["encode", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(model_dir)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"duotok: error: {tmp_path / 'in' / 'a_broken.wav'}: " in err
    assert f"duotok: error: {tmp_path / 'in' / 'c_empty.flac'}: " in err
    assert "2 of 4 file(s) failed" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.tok", "d.tok"]


@pytest.mark.parametrize(("change", "fragment"), [
    ({"num_samples": -5}, "num_samples"), ({"num_samples": 10**12}, "num_samples"),
    ({"sample_rate": 0}, "sample_rate"), ({"fingerprints": "abc"}, "fingerprints")])
def test_info_validates_the_header_like_decode(tmp_path, model_dir, capsys, change, fragment):
    from .test_tokens import write_header

    song = write_song(tmp_path / "song.wav", 0.5)
    assert main(["encode", str(song), "-o", str(tmp_path / "song.tok"), "--model", str(model_dir)]) == 0
    write_header(tmp_path / "song.tok", {**load_tokens(tmp_path / "song.tok").header(), **change})
    capsys.readouterr()
    assert main(["info", str(tmp_path / "song.tok")]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"duotok: error: {tmp_path / 'song.tok'}: ") and fragment in captured.err
    assert " s at " not in captured.out


def test_a_typed_model_path_is_relative_to_the_current_folder(tmp_path, tiny_duotok, monkeypatch, capsys):
    root = tmp_path / "project"
    (root / "duotok").mkdir(parents=True)
    (root / "params.yaml").write_text("profile: smoke\n")
    monkeypatch.setenv("DUOTOK_ROOT", str(root))
    work = tmp_path / "work"
    tiny_duotok.save_pretrained(work / "models" / "duotok")
    write_song(work / "song.wav", 0.3)
    monkeypatch.chdir(work)
    assert main(["encode", "song.wav", "-o", "song.tok", "--model", "models/duotok"]) == 0
    assert load_tokens(work / "song.tok").n_frames == 8
    assert main(["info", "models/duotok"]) == 0
    capsys.readouterr()
    # no --model: the default, models/duotok of the project root, which has none
    assert main(["encode", "song.wav", "-o", "again.tok", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"{root / 'models' / 'duotok'}: no such folder" in err and "make repro" in err
    assert main(["encode", "song.wav", "-o", "again.tok", "--model", "nope"]) == 2
    assert f"{work / 'nope'}: no such folder" in capsys.readouterr().err


def test_the_default_model_is_found_from_any_folder(tmp_path, tiny_duotok, monkeypatch):
    root = tmp_path / "project"
    (root / "duotok").mkdir(parents=True)
    (root / "params.yaml").write_text("profile: smoke\n")
    tiny_duotok.save_pretrained(root / "models" / "duotok")
    monkeypatch.setenv("DUOTOK_ROOT", str(root))
    write_song(tmp_path / "elsewhere" / "song.wav", 0.3)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["encode", "song.wav"]) == 0
    assert load_tokens(tmp_path / "elsewhere" / "song.tok").n_frames == 8


def _age(path, seconds: float = 3600) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_folder_encode_skips_hidden_files_and_removes_stale_temp_files(tmp_path, model_dir, capsys):
    write_song(tmp_path / "in" / "a.wav", 0.3)
    write_song(tmp_path / "in" / ".hidden.wav", 0.3)
    write_song(tmp_path / "in" / ".cache" / "b.wav", 0.3)
    write_song(tmp_path / "in" / "song" / ".accompaniment.k3j4h5g6.wav", 0.3)   # a killed save_audio's temp
    out = tmp_path / "out"
    stale = [out / ".a.tok.abcd1234.tmp", out / "sub" / ".x.tok.zz99_x1y.tmp"]
    young = out / ".b.tok.efgh5678.tmp"                                         # maybe another run's, kept
    for path in (*stale, young, out / ".keep"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    for path in (*stale, out / ".keep"):
        _age(path)
    assert main(["encode", str(tmp_path / "in"), "-o", str(out), "--model", str(model_dir)]) == 0
    stdout = capsys.readouterr().out
    assert f"removed 2 stale temporary file(s) of an interrupted run from {out}" in stdout
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.tok")) == ["a.tok"]
    assert not any(p.exists() for p in stale) and young.exists() and (out / ".keep").exists()


def test_an_unwritable_output_fails_before_any_model_work(tmp_path, capsys):
    write_song(tmp_path / "in" / "a.wav", 0.3)
    (tmp_path / "blocker").write_text("a file, not a folder")
    missing_model = str(tmp_path / "no-model")          # would fail with another message if it were loaded
    for argv in (["encode", str(tmp_path / "in"), "-o", str(tmp_path / "blocker" / "out")],
                 ["encode", str(tmp_path / "in" / "a.wav"), "-o", str(tmp_path / "blocker" / "a.tok")],
                 ["encode", str(tmp_path / "in"), "-o", str(tmp_path / "blocker")]):
        assert main([*argv, "--model", missing_model]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"duotok: error: {tmp_path / 'blocker'}") and "cannot write here (" in err
        assert "no-model" not in err and "Traceback" not in err


def test_a_full_disk_is_reported_up_front(tmp_path, monkeypatch, capsys):
    from duotok.io import files

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files, "_write_probe", full)
    write_song(tmp_path / "a.wav", 0.3)
    assert main(["encode", str(tmp_path / "a.wav"), "-o", str(tmp_path / "out" / "a.tok"), "--model",
                 str(tmp_path / "no-model")]) == 2
    assert capsys.readouterr().err == (f"duotok: error: {tmp_path / 'out'}: cannot write here "
                                       "(No space left on device)\n")
