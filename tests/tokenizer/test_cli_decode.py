"""`duotok encode` then `duotok decode` (and `bench decode`) with a tiny random codec checkpoint."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import soundfile as sf

from duotok.cli import main
from duotok.tokenizer.tokens import save_tokens

from .test_decode import tiny_decoder


def test_encode_then_decode_round_trips_a_wav(tmp_path, tiny_duotok, capsys):
    codec_dir = tiny_duotok.with_decoder(tiny_decoder(tiny_duotok)).save_pretrained(tmp_path / "codec")
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "song.wav", (0.1 * rng.standard_normal((int(1.3 * 44100), 2))).astype(np.float32), 44100)
    assert main(["encode", str(tmp_path / "song.wav"), "-o", str(tmp_path / "song.tok"), "--model",
                 str(codec_dir)]) == 0
    assert main(["decode", str(tmp_path / "song.tok"), "-o", str(tmp_path / "out"), "--model", str(codec_dir),
                 "--steps", "2", "--seed", "1", "--time-shift", "3", "--precision", "fp32"]) == 0
    assert "wrote" in capsys.readouterr().out
    lengths = set()
    for name in ("vocal", "accompaniment", "mixture"):
        data, sr = sf.read(tmp_path / "out" / "song" / f"{name}.wav")
        assert sr == 16000
        lengths.add(data.shape)
    assert lengths == {(int(round(1.3 * 16000)),)}           # the source length, at the model's rate
    assert main(["info", str(codec_dir)]) == 0
    assert "decoder: DiT" in capsys.readouterr().out


def test_decode_needs_a_codec(tmp_path, tiny_duotok, capsys):
    plain = tiny_duotok.save_pretrained(tmp_path / "plain")
    ids = tiny_duotok.encode(np.zeros(16000, dtype=np.float32) + 0.01)
    from duotok.tokenizer.tokens import save_tokens

    save_tokens(tmp_path / "x.tok", tiny_duotok.token_file(*ids, num_samples=16000))
    assert main(["decode", str(tmp_path / "x.tok"), "-o", str(tmp_path / "out"), "--model", str(plain)]) == 2
    assert "no decoder" in capsys.readouterr().err
    assert main(["decode", str(tmp_path / "missing.tok"), "-o", str(tmp_path / "out"), "--model",
                 str(plain)]) == 2


def test_bench_decode_reports_rtf(tmp_path, tiny_duotok, capsys):
    codec_dir = tiny_duotok.with_decoder(tiny_decoder(tiny_duotok)).save_pretrained(tmp_path / "codec")
    assert main(["bench", "decode", "--model", str(codec_dir), "--seconds", "2", "--repeats", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["audio_seconds"] == 2.0 and result["rtf_best"] > 0 and result["steps"] == 2
    assert (result["time_shift"], result["precision"], result["precision_used"]) == (1.0, "fp32", "fp32")
    assert main(["bench", "decode", "--model", str(codec_dir), "--seconds", "1", "--repeats", "1",
                 "--time-shift", "3", "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "time shift 3" in out and json.loads(out.strip().splitlines()[-1])["time_shift"] == 3.0
    with pytest.raises(SystemExit):
        main(["bench", "decode", "--model", str(codec_dir), "--time-shift", "0"])


def test_cli_precision_choices_are_the_training_ones():
    from duotok.cli import SAMPLING_PRECISIONS
    from duotok.train.precision import PRECISIONS

    assert SAMPLING_PRECISIONS == PRECISIONS


@pytest.fixture
def codec_dir(tmp_path, tiny_duotok):
    return tiny_duotok.with_decoder(tiny_decoder(tiny_duotok)).save_pretrained(tmp_path / "codec")


def _song_tokens(tiny_duotok, seconds: float = 0.4):
    n = int(seconds * 16000)
    return tiny_duotok.token_file(*tiny_duotok.encode(np.full(n, 0.01, dtype=np.float32)), num_samples=n)


def test_same_stem_tokens_decode_to_their_own_folders(tmp_path, tiny_duotok, codec_dir, capsys):
    for name in ("song.wav", "song.flac"):
        sf.write(_mkdir(tmp_path / "in") / name, np.full(6400, 0.01, dtype=np.float32), 16000)
    assert main(["encode", str(tmp_path / "in"), "-o", str(tmp_path / "tok"), "--model", str(codec_dir)]) == 0
    assert main(["decode", str(tmp_path / "tok"), "-o", str(tmp_path / "out"), "--model", str(codec_dir)]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["song.flac", "song.wav"]
    assert main(["decode", str(tmp_path / "tok" / "song.wav.tok"), "-o", str(tmp_path / "one"), "--model",
                 str(codec_dir)]) == 0
    assert sorted(p.name for p in (tmp_path / "one" / "song.wav").iterdir()) == [
        "accompaniment.wav", "mixture.wav", "vocal.wav"]


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_folder_decode_reports_every_malformed_file_and_decodes_the_rest(tmp_path, tiny_duotok, codec_dir, capsys):
    from .test_tokens import write_header

    good = _song_tokens(tiny_duotok)
    header = good.header()
    bad = {"b": {**header, "num_samples": -5}, "c": {**header, "fingerprints": "abc"},
           "d": {**header, "sample_rate": 0}, "e": {**header, "codebook_sizes": "big"}, "f": [header]}
    for name in ("a", *bad, "g"):
        save_tokens(tmp_path / "tok" / f"{name}.tok", good)
    for name, h in bad.items():
        write_header(tmp_path / "tok" / f"{name}.tok", h)
    code = main(["decode", str(tmp_path / "tok"), "-o", str(tmp_path / "out"), "--model", str(codec_dir)])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    for name in bad:
        assert f"duotok: error: {tmp_path / 'tok' / name}.tok: " in captured.err
    assert "5 of 7 file(s) failed" in captured.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "g"]
    assert all((tmp_path / "out" / n / "mixture.wav").is_file() for n in ("a", "g"))


def test_folder_decode_skips_hidden_files_and_removes_stale_temp_files(tmp_path, tiny_duotok, codec_dir, capsys):
    save_tokens(tmp_path / "tok" / "a.tok", _song_tokens(tiny_duotok))
    save_tokens(tmp_path / "tok" / ".a.tok.abcd1234.tmp.tok", _song_tokens(tiny_duotok))    # hidden: skipped
    save_tokens(tmp_path / "tok" / ".old" / "b.tok", _song_tokens(tiny_duotok))            # hidden folder
    stale = [tmp_path / "out" / "a" / ".vocal.wav.abcd1234.tmp", tmp_path / "out" / "a" / ".mixture.x1y2z3w4.wav"]
    for path in stale:
        _mkdir(path.parent)
        path.write_bytes(b"RIFF partial")
        os.utime(path, (time.time() - 3600,) * 2)
    assert main(["decode", str(tmp_path / "tok"), "-o", str(tmp_path / "out"), "--model", str(codec_dir)]) == 0
    assert "removed 2 stale temporary file(s)" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a"]
    assert sorted(p.name for p in (tmp_path / "out" / "a").iterdir()) == ["accompaniment.wav", "mixture.wav",
                                                                         "vocal.wav"]


def test_decode_to_an_unwritable_folder_fails_before_loading_the_model(tmp_path, tiny_duotok, capsys):
    save_tokens(tmp_path / "a.tok", _song_tokens(tiny_duotok))
    (tmp_path / "blocker").write_text("x")
    assert main(["decode", str(tmp_path / "a.tok"), "-o", str(tmp_path / "blocker" / "out"), "--model",
                 str(tmp_path / "no-model")]) == 2
    assert capsys.readouterr().err == (f"duotok: error: {tmp_path / 'blocker' / 'out'}: cannot write here "
                                       "(Not a directory)\n")


@pytest.mark.parametrize(("option", "value"), [
    ("--cfg-scale", "nan"), ("--cfg-scale", "inf"), ("--cfg-scale", "-1"), ("--cfg-scale", "x"),
    ("--steps", "0"), ("--steps", "-3"), ("--steps", "2.5"), ("--seed", "-1"), ("--threads", "0")])
def test_decode_settings_are_validated_by_the_parser(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as exc:
        main(["decode", str(tmp_path / "a.tok"), "-o", str(tmp_path / "out"), option, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and repr(value) in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [["bench", "decode", "--cfg-scale", "nan"], ["bench", "decode", "--steps", "0"],
                                  ["bench", "encode", "--seconds", "0"], ["bench", "encode", "--repeats", "0"],
                                  ["encode", "x.wav", "--threads", "-2"]])
def test_bench_and_encode_numbers_are_validated_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and f"argument {argv[-2]}" in capsys.readouterr().err
