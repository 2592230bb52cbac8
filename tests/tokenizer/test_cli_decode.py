"""`duotok encode` then `duotok decode` (and `bench decode`) with a tiny random codec checkpoint."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from duotok.cli import main

from .test_decode import tiny_decoder


def test_encode_then_decode_round_trips_a_wav(tmp_path, tiny_duotok, capsys):
    codec_dir = tiny_duotok.with_decoder(tiny_decoder(tiny_duotok)).save_pretrained(tmp_path / "codec")
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "song.wav", (0.1 * rng.standard_normal((int(1.3 * 44100), 2))).astype(np.float32), 44100)
    assert main(["encode", str(tmp_path / "song.wav"), "-o", str(tmp_path / "song.tok"), "--model",
                 str(codec_dir)]) == 0
    assert main(["decode", str(tmp_path / "song.tok"), "-o", str(tmp_path / "out"), "--model", str(codec_dir),
                 "--steps", "2", "--seed", "1"]) == 0
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
