"""Block-wise reading: the blocks concatenate to exactly what load_audio returns (resampled and
downmixed files included), and the same bad files are refused, naming the file."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile as sf

from duotok.audio.io import load_audio
from duotok.audio.stream import stream_audio
from duotok.errors import AudioFileError

CONVERT = {"on_rate_mismatch": "resample", "on_multichannel": "downmix"}


@pytest.mark.parametrize("rate, channels", [(16000, 1), (44100, 2), (48000, 1), (22050, 2)])
@pytest.mark.parametrize("block", [16000, 12345])
def test_blocks_concatenate_to_load_audio_exactly(tmp_path, rate, channels, block):
    rng = np.random.default_rng(rate + channels)
    x = (0.3 * rng.standard_normal((int(rate * 3.3), channels))).astype(np.float32)
    path = tmp_path / "song.wav"
    sf.write(path, x, rate, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = load_audio(path, 16000, **CONVERT)
        blocks = list(stream_audio(path, 16000, block, **CONVERT))
    assert all(b.size == block and b.dtype == np.float32 for b in blocks[:-1]) and 0 < blocks[-1].size <= block
    assert np.array_equal(np.concatenate(blocks), whole)


def test_bad_files_are_refused_like_load_audio(tmp_path):
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.zeros((1600, 2), np.float32), 16000)
    with pytest.raises(AudioFileError, match="stereo.wav.*2 channels"):
        list(stream_audio(stereo, 16000, 800))
    fast = tmp_path / "fast.wav"
    sf.write(fast, np.zeros(4410, np.float32), 44100)
    with pytest.raises(AudioFileError, match="fast.wav.*44100 Hz"):
        list(stream_audio(fast, 16000, 800))
    nan = tmp_path / "nan.wav"
    data = np.zeros(5000, np.float32)
    data[4321] = np.nan
    sf.write(nan, data, 16000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match="nan.wav.*first at frame 4321"):
        list(stream_audio(nan, 16000, 1000))
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really")
    with pytest.raises(AudioFileError, match="corrupt.wav"):
        list(stream_audio(corrupt, 16000, 1000))
