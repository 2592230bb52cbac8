"""`duotok encode | info | bench encode` with a tiny random DuoTok checkpoint."""

from __future__ import annotations

import json

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
