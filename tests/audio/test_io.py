"""load_audio / audio_info / save_audio: valid files load exactly, every bad file is refused with a
message naming the file and the problem, conversions warn, writes are atomic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from duotok.audio import io as audio_io
from duotok.audio.io import audio_info, load_audio, save_audio
from duotok.errors import AudioFileError

SR = 16000


def _dominant_freq(x: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sample_rate)[np.argmax(spectrum)])


# ---------------------------------------------------------------------------------- valid files


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_load_mono_pcm16_roundtrips_exactly(tmp_path, write_audio, make_sine, suffix):
    x = make_sine(440, 0.5)
    path = write_audio(tmp_path / f"tone{suffix}", x)
    y = load_audio(path, SR)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1.0 / 32768 + 1e-7)


def test_audio_info_reads_header(tmp_path, write_audio):
    path = write_audio(tmp_path / "st.wav", np.zeros((1234, 2), np.float32), 22050)
    assert audio_info(path) == (22050, 2, 1234)


# ----------------------------------------------------------------------------- refused files


def _assert_names(exc: pytest.ExceptionInfo, path, *fragments: str) -> None:
    message = str(exc.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioFileError) as exc:
        load_audio(path, SR)
    _assert_names(exc, path, "not found")
    with pytest.raises(AudioFileError, match="not found"):
        audio_info(path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "x.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(AudioFileError) as exc:
        load_audio(path, SR)
    _assert_names(exc, path, "unreadable or corrupt")
    with pytest.raises(AudioFileError) as exc:
        audio_info(path)
    _assert_names(exc, path, "unreadable or corrupt")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "zero.flac"
    path.touch()
    with pytest.raises(AudioFileError) as exc:
        load_audio(path, SR)
    _assert_names(exc, path, "empty")


def test_empty_wav_with_zero_frames(tmp_path, write_audio):
    path = write_audio(tmp_path / "empty.wav", np.zeros(0, np.float32))
    assert path.stat().st_size > 0  # a valid header, no samples
    with pytest.raises(AudioFileError) as exc:
        load_audio(path, SR)
    _assert_names(exc, path, "0 frames")
    with pytest.raises(AudioFileError, match="0 frames"):
        audio_info(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, write_audio, bad):
    x = np.zeros(100, np.float32)
    x[10] = bad
    path = write_audio(tmp_path / "bad.wav", x, subtype="FLOAT")
    with pytest.raises(AudioFileError) as exc:
        load_audio(path, SR)
    _assert_names(exc, path, "non-finite", "first at frame 10")


def test_wrong_rate_is_refused_by_default(tmp_path, write_audio, make_sine):
    path = write_audio(tmp_path / "r.wav", make_sine(440, 0.2, 22050), 22050)
    with pytest.raises(AudioFileError) as exc:
        load_audio(path, SR)
    _assert_names(exc, path, "22050 Hz", "expected 16000 Hz")


def test_wrong_rate_resamples_with_warning(tmp_path, write_audio, make_sine):
    x = make_sine(440, 0.5, 22050)
    path = write_audio(tmp_path / "r.wav", x, 22050)
    with pytest.warns(UserWarning, match=r"r\.wav: resampling from 22050 Hz to 16000 Hz"):
        y = load_audio(path, SR, on_rate_mismatch="resample")
    assert y.dtype == np.float32
    assert len(y) == math.ceil(len(x) * SR / 22050)
    assert abs(_dominant_freq(y, SR) - 440) < 5
    # The content survives, not just the length: compare with the ideal 440 Hz sine at 16 kHz.
    ideal = make_sine(440, len(y) / SR, SR)[: len(y)]
    middle = slice(200, len(y) - 200)  # away from the filter's edge transients
    np.testing.assert_allclose(y[middle], ideal[middle], atol=0.01)


def test_stereo_is_refused_by_default(tmp_path, write_audio):
    path = write_audio(tmp_path / "st.wav", np.zeros((100, 2), np.float32) + 0.1)
    with pytest.raises(AudioFileError) as exc:
        load_audio(path, SR)
    _assert_names(exc, path, "2 channels", "expected mono")


def test_stereo_downmixes_with_warning(tmp_path, write_audio):
    data = np.stack([np.full(100, 0.5), np.full(100, -0.1)], axis=1).astype(np.float32)
    path = write_audio(tmp_path / "st.wav", data, subtype="FLOAT")
    with pytest.warns(UserWarning, match=r"st\.wav: downmixing 2 channels"):
        y = load_audio(path, SR, on_multichannel="downmix")
    assert y.shape == (100,)
    np.testing.assert_allclose(y, 0.2, atol=1e-6)


def test_unknown_policy_is_a_caller_error(tmp_path, write_audio):
    path = write_audio(tmp_path / "st.wav", np.zeros((100, 2), np.float32))
    with pytest.raises(ValueError, match="on_multichannel"):
        load_audio(path, SR, on_multichannel="first")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ save_audio


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_save_roundtrip_leaves_no_temp_file(tmp_path, make_sine, suffix):
    x = make_sine(220, 0.25)
    dest = tmp_path / "sub" / f"out{suffix}"
    save_audio(dest, x, SR)
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]
    assert sf.info(str(dest)).format == {".wav": "WAV", ".flac": "FLAC"}[suffix]
    np.testing.assert_allclose(load_audio(dest, SR), x, atol=1.0 / 32768 + 1e-7)


def test_save_refuses_nan_and_writes_nothing(tmp_path):
    dest = tmp_path / "nan.wav"
    x = np.zeros(100, np.float32)
    x[3] = np.nan
    with pytest.raises(AudioFileError) as exc:
        save_audio(dest, x, SR)
    _assert_names(exc, dest, "non-finite")
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_refused_write_keeps_previous_file(tmp_path, make_sine):
    dest = tmp_path / "keep.wav"
    save_audio(dest, make_sine(440, 0.1), SR)
    before = dest.read_bytes()
    with pytest.raises(AudioFileError):
        save_audio(dest, np.full(100, np.inf, np.float32), SR)
    assert dest.read_bytes() == before


def test_failed_write_mid_way_leaves_nothing(tmp_path, monkeypatch, make_sine):
    """A crash while encoding must not leave a truncated destination or a stray temp file."""

    def broken_write(file, *args, **kwargs):
        with open(file, "wb") as fh:
            fh.write(b"RIFF partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(audio_io.sf, "write", broken_write)
    dest = tmp_path / "crash.wav"
    with pytest.raises(AudioFileError, match="disk full"):
        save_audio(dest, make_sine(440, 0.1), SR)
    assert list(tmp_path.iterdir()) == []


def test_save_clips_with_warning(tmp_path):
    dest = tmp_path / "loud.wav"
    x = np.array([0.0, 1.5, -2.0, 0.5], np.float32)
    with pytest.warns(UserWarning, match=r"loud\.wav: clipping .*peak 2\.000"):
        save_audio(dest, x, SR)
    y = load_audio(dest, SR)
    assert y.max() <= 1.0 and y.min() >= -1.0
    np.testing.assert_allclose(y, [0.0, 1.0, -1.0, 0.5], atol=1.0 / 32768 + 1e-7)


def test_save_refuses_unknown_suffix(tmp_path):
    with pytest.raises(AudioFileError, match=r"unsupported suffix '\.mp3'"):
        save_audio(tmp_path / "x.mp3", np.zeros(10, np.float32), SR)
