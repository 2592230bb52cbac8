"""Fixture builders for the dataset-loader tests: tones written with soundfile, encoded with ffmpeg.

Every dataset fixture is generated in ``tmp_path`` in the dataset's published layout; nothing is
downloaded. Signals are short pure tones so a test can check *which* signal it decoded (its peak
frequency) and not only that something decoded.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

FFMPEG = shutil.which("ffmpeg")


def tone(freq: float, seconds: float, rate: int, channels: int = 1, amplitude: float = 0.2) -> np.ndarray:
    """A float32 sine, ``(frames,)`` for mono, ``(frames, channels)`` otherwise (soundfile's layout)."""
    t = np.arange(int(round(seconds * rate))) / rate
    x = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return x if channels == 1 else np.repeat(x[:, None], channels, axis=1)


def peak_hz(audio: np.ndarray, rate: int) -> float:
    """The strongest frequency of a mono signal (resolution ``rate / len``)."""
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.argmax(spectrum) * rate / len(audio))


def run_ffmpeg(inputs: Sequence[Path], output: Path, args: Sequence[str]) -> Path:
    """``ffmpeg -i in1 -i in2 ... <args> output``; fails the test with ffmpeg's message on error."""
    cmd = [FFMPEG or "ffmpeg", "-nostdin", "-v", "error", "-y"]
    for path in inputs:
        cmd += ["-i", str(path)]
    output.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([*cmd, *args, str(output)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"ffmpeg could not write {output}: {proc.stderr}")
    return output


@pytest.fixture(scope="session")
def encode_tone(tmp_path_factory) -> Callable[..., Path]:
    """``encode_tone(path, freq, seconds, rate=44100, channels=2)``: a tone in ``path``'s format
    (wav/flac/au via soundfile; mp3/m4a via ffmpeg)."""
    scratch = tmp_path_factory.mktemp("tones")

    def _encode(path: Path, freq: float, seconds: float, rate: int = 44100, channels: int = 2) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        audio = tone(freq, seconds, rate, channels)
        suffix = path.suffix.lower()
        if suffix in (".wav", ".flac", ".au"):
            sf.write(str(path), audio, rate, subtype="PCM_16")
            return path
        source = scratch / f"{freq}-{seconds}-{rate}-{channels}.wav"
        sf.write(str(source), audio, rate, subtype="PCM_16")
        codec = {".mp3": ["-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"], ".m4a": ["-c:a", "aac", "-b:a", "64k", "-f", "mp4"]}
        return run_ffmpeg([source], path, codec[suffix])

    return _encode


#: MUSDB stem frequencies: each stream is identifiable by its peak.
STEM_HZ = {"drums": 220.0, "bass": 110.0, "other": 660.0, "vocals": 880.0}


@pytest.fixture(scope="session")
def make_stem_mp4(tmp_path_factory) -> Callable[..., Path]:
    """``make_stem_mp4(path, seconds=1.0, n_streams=5)``: a MUSDB18-style file, 44.1 kHz stereo AAC
    streams in the sigsep order mixture, drums, bass, other, vocals (mixture = sum of the stems)."""
    scratch = tmp_path_factory.mktemp("stems")

    def _make(path: Path, seconds: float = 1.0, n_streams: int = 5) -> Path:
        stems = {name: tone(hz, seconds, 44100, 2, amplitude=0.15) for name, hz in STEM_HZ.items()}
        signals = [sum(stems.values()), stems["drums"], stems["bass"], stems["other"], stems["vocals"]]
        sources = []
        for index, signal in enumerate(signals[:n_streams]):
            source = scratch / f"{seconds}-{index}.wav"
            sf.write(str(source), signal, 44100, subtype="FLOAT")
            sources.append(source)
        maps = [arg for i in range(len(sources)) for arg in ("-map", f"{i}:a")]
        return run_ffmpeg(sources, Path(path), [*maps, "-c:a", "aac", "-b:a", "96k", "-f", "mp4"])

    return _make


@pytest.fixture(scope="session")
def peak() -> Callable[[np.ndarray, int], float]:
    """:func:`peak_hz` for the test modules (conftest helpers are not importable under importlib mode)."""
    return peak_hz


@pytest.fixture(scope="session")
def make_tone() -> Callable[..., np.ndarray]:
    """:func:`tone` for the test modules."""
    return tone
