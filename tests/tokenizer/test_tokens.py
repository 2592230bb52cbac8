import json

import numpy as np
import pytest

from duotok.errors import TokenFileError
from duotok.tokenizer.tokens import TokenFile, load_tokens, save_tokens


def make_tokens(**overrides) -> TokenFile:
    fields = dict(vocal=np.arange(10) % 64, accompaniment=(np.arange(10) * 7) % 64, sample_rate=16000,
                  frame_rate=25.0, codebook_sizes=(64, 64), fingerprints={"vocal": "aa", "accompaniment": "bb"},
                  num_samples=6400, source="song.wav")
    fields.update(overrides)
    return TokenFile(**fields)


def test_roundtrip_keeps_everything(tmp_path):
    tokens = make_tokens()
    path = save_tokens(tmp_path / "song.tok", tokens)
    loaded = load_tokens(path)
    np.testing.assert_array_equal(loaded.vocal, tokens.vocal)
    np.testing.assert_array_equal(loaded.accompaniment, tokens.accompaniment)
    assert loaded.header() == tokens.header()
    assert loaded.n_frames == 10 and loaded.seconds == pytest.approx(0.4)
    assert [p.name for p in tmp_path.iterdir()] == ["song.tok"]  # no temp file left behind


def test_same_tokens_give_identical_bytes(tmp_path):
    save_tokens(tmp_path / "a.tok", make_tokens())
    save_tokens(tmp_path / "b.tok", make_tokens())
    assert (tmp_path / "a.tok").read_bytes() == (tmp_path / "b.tok").read_bytes()


def test_mismatched_codebooks_are_refused(tmp_path):
    tokens = load_tokens(save_tokens(tmp_path / "s.tok", make_tokens()))
    tokens.check_compatible({"vocal": "aa", "accompaniment": "bb"}, (64, 64), 25.0)
    with pytest.raises(TokenFileError, match="another model.*vocal"):
        tokens.check_compatible({"vocal": "zz", "accompaniment": "bb"}, (64, 64), 25.0, tmp_path / "s.tok")
    with pytest.raises(TokenFileError, match="sizes"):
        tokens.check_compatible({"vocal": "aa", "accompaniment": "bb"}, (128, 64), 25.0)
    with pytest.raises(TokenFileError, match="Hz"):
        tokens.check_compatible({"vocal": "aa", "accompaniment": "bb"}, (64, 64), 50.0)


@pytest.mark.parametrize("content", [b"", b"not a zip file at all"])
def test_corrupt_file_names_the_file(tmp_path, content):
    path = tmp_path / "broken.tok"
    path.write_bytes(content)
    with pytest.raises(TokenFileError, match="broken.tok"):
        load_tokens(path)


def test_missing_file_and_wrong_version(tmp_path):
    with pytest.raises(TokenFileError, match="not found"):
        load_tokens(tmp_path / "nope.tok")
    path = save_tokens(tmp_path / "v.tok", make_tokens())
    with np.load(path) as z:
        arrays = dict(z)
    header = bytes(arrays["header"]).replace(b'"version": 1', b'"version": 99')
    arrays["header"] = np.frombuffer(header, dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(TokenFileError, match="version 99"):
        load_tokens(path)


def test_invalid_tokens_are_refused_before_writing(tmp_path):
    with pytest.raises(TokenFileError, match="outside"):
        save_tokens(tmp_path / "x.tok", make_tokens(vocal=np.full(10, 64)))
    with pytest.raises(TokenFileError, match="differ in length"):
        save_tokens(tmp_path / "x.tok", make_tokens(vocal=np.zeros(9)))
    assert not list(tmp_path.iterdir())


def write_header(path, header) -> None:
    """Replace the JSON header of the token file at ``path`` (the id streams stay)."""
    with np.load(path) as z:
        arrays = dict(z)
    arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def with_field(**changes):
    header = make_tokens().header()
    header.update(changes)
    return header


@pytest.mark.parametrize(("header", "fragment"), [
    (with_field(num_samples=-5), "num_samples"),
    (with_field(num_samples=0), "num_samples"),
    (with_field(num_samples=6400.5), "num_samples"),
    (with_field(num_samples=10**9), "num_samples"),                 # does not fit the 10 frames
    (with_field(fingerprints="abc"), "fingerprints"),
    (with_field(fingerprints={"vocal": "aa"}), "fingerprints"),
    (with_field(sample_rate=0), "sample_rate"),
    (with_field(sample_rate="16000"), "sample_rate"),
    (with_field(sample_rate=True), "sample_rate"),
    (with_field(frame_rate=0), "frame_rate"),
    (with_field(frame_rate="25"), "frame_rate"),
    (with_field(codebook_sizes="64,64"), "codebook_sizes"),
    (with_field(codebook_sizes=[64]), "codebook_sizes"),
    (with_field(codebook_sizes=[64, "64"]), "codebook_sizes"),
    (with_field(codebook_sizes=[64, 0]), "codebook_sizes"),
    (with_field(mode="guessed"), "mode"),
    (with_field(source=3), "source"),
    (with_field(extra=[]), "extra"),
    (with_field(version=True), "version"),
    ({k: v for k, v in make_tokens().header().items() if k != "num_samples"}, "missing num_samples"),
    ([1, 2, 3], "JSON object"),
    ("just a string", "JSON object"),
])
def test_malformed_headers_are_refused_naming_file_and_field(tmp_path, header, fragment):
    path = save_tokens(tmp_path / "bad.tok", make_tokens())
    write_header(path, header)
    with pytest.raises(TokenFileError, match=fragment) as exc:
        load_tokens(path)
    assert str(exc.value).startswith(f"{path}: ")


def test_non_integer_id_streams_are_refused(tmp_path):
    path = save_tokens(tmp_path / "f.tok", make_tokens())
    with np.load(path) as z:
        arrays = dict(z)
    arrays["vocal"] = arrays["vocal"].astype(np.float32) + 0.5
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(TokenFileError, match="f.tok: vocal stream must be a 1-D array of integer ids"):
        load_tokens(path)


def test_check_compatible_refuses_another_sample_rate():
    tokens = make_tokens()
    with pytest.raises(TokenFileError, match="16000 Hz audio, the model's is 44100 Hz"):
        tokens.check_compatible({"vocal": "aa", "accompaniment": "bb"}, (64, 64), 25.0, "x.tok", sample_rate=44100)
