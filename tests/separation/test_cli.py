"""``duotok separate`` through argparse: a stub system registered in ``SEPARATORS``, and the real
``mask-head`` system on a tiny random DuoTok checkpoint."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import soundfile as sf
import torch

from duotok.io.files import OutputLocationError
from duotok.separation import STEMS
from duotok.separation.cli import SEPARATORS, add_separate_parser, cmd_separate, load_mask_head

SR = 16000


class Quarter:
    name = "quarter"
    sample_rate = SR

    def separate(self, mixture: torch.Tensor) -> dict[str, torch.Tensor]:
        return {s: mixture / 4 for s in STEMS}


@pytest.fixture
def stub(monkeypatch):
    """Registers ``--system stub``; ``loaded`` records the ``--model`` of every load."""
    loaded: list[str | None] = []

    def load(model_dir: str | None) -> Quarter:
        loaded.append(model_dir)
        return Quarter()

    monkeypatch.setitem(SEPARATORS, "stub", load)
    return loaded


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="duotok")
    add_separate_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["separate", *argv])


def separate(argv: list[str]) -> int:
    args = parse(argv)
    return args.func(args)


def song(path, seconds, sr=SR, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (0.1 * rng.standard_normal((int(round(seconds * sr)), channels))).astype(np.float32)
    sf.write(path, data[:, 0] if channels == 1 else data, sr)
    return path


def test_the_registry_holds_the_mask_head_and_the_default_is_it():
    assert SEPARATORS["mask-head"] is load_mask_head
    assert parse(["x.wav", "-o", "out"]).system == "mask-head"
    assert parse(["x.wav", "-o", "out"]).func is cmd_separate


def test_one_file(tmp_path, stub, capsys):
    wav = song(tmp_path / "song.wav", 1.3)
    code = separate([str(wav), "-o", str(tmp_path / "stems"), "--system", "stub", "--model", "some/dir",
                     "--chunk-seconds", "0.5", "--overlap-seconds", "0.1"])
    assert code == 0 and stub == ["some/dir"]
    assert f"wrote {tmp_path / 'stems' / 'song'}/{{vocals,drums,bass,other}}.wav" in capsys.readouterr().out
    for stem in STEMS:
        data, rate = sf.read(tmp_path / "stems" / "song" / f"{stem}.wav")
        assert rate == SR and len(data) == round(1.3 * SR)


def test_a_folder_with_a_bad_file_exits_1_and_names_it(tmp_path, stub, capsys):
    song(tmp_path / "in" / "a.wav", 0.5)
    song(tmp_path / "in" / "sub" / "b.wav", 0.4, sr=44100, channels=2)
    (tmp_path / "in" / "broken.wav").write_bytes(b"RIFF garbage")
    argv = [str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--system", "stub"]
    assert separate(argv) == 1
    captured = capsys.readouterr()
    assert "broken.wav" in captured.err and "1 of 3 file(s) failed" in captured.err
    assert "were separated or kept" in captured.err
    assert "duotok: note:" in captured.err and "downmixing 2 channels" in captured.err
    assert (tmp_path / "out" / "a" / "vocals.wav").exists() and (tmp_path / "out" / "sub" / "b" / "other.wav").exists()
    assert not (tmp_path / "out" / "broken").exists()
    assert separate(argv) == 1                                        # the broken file still fails ...
    assert "skipped 2 existing output(s) (--overwrite to redo)" in capsys.readouterr().out    # ... the rest is kept


def test_unknown_system_lists_the_registered_ones(tmp_path, stub):
    wav = song(tmp_path / "song.wav", 0.2)
    with pytest.raises(ValueError, match=r"unknown separation system 'demucs'; registered: .*mask-head.*stub"):
        separate([str(wav), "-o", str(tmp_path / "out"), "--system", "demucs"])


def test_bad_chunking_is_an_error_before_any_song(tmp_path, stub):
    wav = song(tmp_path / "song.wav", 0.2)
    with pytest.raises(ValueError, match="shorter than chunk_seconds"):
        separate([str(wav), "-o", str(tmp_path / "out"), "--system", "stub", "--chunk-seconds", "1",
                  "--overlap-seconds", "1"])
    with pytest.raises(ValueError, match="whole number"):
        separate([str(wav), "-o", str(tmp_path / "out"), "--system", "stub", "--chunk-seconds", "0.00001"])
    assert not (tmp_path / "out" / "song").exists()
    with pytest.raises(SystemExit):                                   # argparse: not a number >= 0
        parse([str(wav), "-o", "out", "--overlap-seconds", "-1"])


def test_an_unwritable_output_fails_before_the_model_loads(tmp_path, stub):
    wav = song(tmp_path / "song.wav", 0.2)
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(OutputLocationError, match="cannot write here"):
        separate([str(wav), "-o", str(tmp_path / "taken"), "--system", "stub"])
    assert stub == []


def test_os_errors_name_the_file(tmp_path, monkeypatch):
    def load(model_dir):
        raise PermissionError(13, "Permission denied", "/models/locked")

    monkeypatch.setitem(SEPARATORS, "locked", load)
    wav = song(tmp_path / "song.wav", 0.2)
    with pytest.raises(RuntimeError, match="/models/locked: Permission denied"):
        separate([str(wav), "-o", str(tmp_path / "out"), "--system", "locked"])


def test_threads(tmp_path, stub):
    wav = song(tmp_path / "song.wav", 0.2)
    before = torch.get_num_threads()
    try:
        assert separate([str(wav), "-o", str(tmp_path / "out"), "--system", "stub", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_mask_head_missing_checkpoint_is_explained(tmp_path):
    wav = song(tmp_path / "song.wav", 0.2)
    with pytest.raises(FileNotFoundError, match="no such folder.*--model"):
        separate([str(wav), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "nowhere")])


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised DuoTok at smoke-profile sizes with 1-s chunks (as the tokenizer tests')."""
    from duotok.tokenizer import DuoTok, DuoTokConfig
    from duotok.train import finetune, quantize

    separator, _, _ = finetune.build_config("smoke")
    quantizer, _, _ = quantize.build_config("smoke")
    torch.manual_seed(0)
    model = DuoTok(DuoTokConfig(separator=separator, quantizer=quantizer, chunk_seconds=1.0, chunk_batch=2))
    return model.eval().save_pretrained(tmp_path_factory.mktemp("duotok"))


def test_mask_head_separates_into_four_stems_that_sum_to_the_mixture(tmp_path, tiny_model_dir, capsys):
    wav = song(tmp_path / "song.wav", 2.3)
    assert separate([str(wav), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir)]) == 0
    mixture, _ = sf.read(wav, dtype="float32")
    stems = {}
    for stem in STEMS:
        stems[stem], rate = sf.read(tmp_path / "out" / "song" / f"{stem}.wav", dtype="float32")
        assert rate == SR and stems[stem].shape == mixture.shape
    # softmax masks: the stems add back up to the mixture (up to STFT and PCM-16 round-off) ...
    assert np.abs(sum(stems.values()) - mixture).max() < 1e-3
    # ... and they are four different stems, not four copies
    assert np.abs(stems["vocals"] - stems["bass"]).max() > 1e-3


def test_mask_head_wrapper_matches_duotok_separate(tiny_model_dir):
    """The four stems regroup into exactly what the tokenizer's own two-track separation gives."""
    from duotok.tokenizer import DuoTok

    sep = load_mask_head(str(tiny_model_dir))
    model = DuoTok.from_pretrained(tiny_model_dir)
    x = torch.from_numpy((0.1 * np.random.default_rng(3).standard_normal(int(1.7 * SR))).astype(np.float32))
    stems = sep.separate(x)
    vocals, accompaniment = model.separate(x)
    assert sep.sample_rate == SR and sep.chunk_seconds == 1.0
    assert torch.allclose(stems["vocals"], vocals, atol=1e-5)
    assert torch.allclose(stems["drums"] + stems["bass"] + stems["other"], accompaniment, atol=1e-5)


def test_the_trained_separators_are_registered_and_openunmix_loads_from_a_folder(tmp_path):
    from duotok.separation.cli import load_openunmix, load_token_lm
    from duotok.separation.openunmix import OpenUnmix, OpenUnmixConfig

    assert SEPARATORS["openunmix"] is load_openunmix and SEPARATORS["token-lm"] is load_token_lm
    OpenUnmix(OpenUnmixConfig(hidden_size=16, n_layers=1)).save_pretrained(tmp_path / "ou")
    stems = load_openunmix(str(tmp_path / "ou")).separate(torch.zeros(SR // 2))
    assert set(stems) == {"vocals", "drums", "bass", "other"} and stems["bass"].shape == (SR // 2,)
