"""Decode any dataset item to mono float32 at the project rate.

Why two decoders: :func:`duotok.audio.io.load_audio` (libsndfile) already refuses bad data with the
project's error messages and conversion warnings, so every format libsndfile reads (wav, flac, ogg,
au, aiff and — libsndfile >= 1.1 — mp3) goes through it. AAC in MP4/M4A (MUSDB18 ``.stem.mp4``) and a
few others are not readable by libsndfile, and a *stream* of a multi-stream file never is; those are
decoded by an ``ffmpeg`` subprocess at the native rate and channel count, then downmixed and
resampled by the same :mod:`duotok.audio.io` functions, so both paths convert identically and warn
the same way (real data converts, see that module's policy).

libsndfile falls back to *header-less raw* (8 kHz u-law) for a ``.au`` file whose header it does not
recognise, so a truncated or overwritten GTZAN clip would decode as noise; :func:`check_header`
refuses that fallback (no accepted suffix is a raw format).

AAC decoders pad the last frame (a 1.0 s MUSDB-like stream decodes to 45 056 samples at 44.1 kHz);
priming is removed by ffmpeg, so trimming the tail to the container's stream duration restores the
true length — and keeps the stems of one track the same length. Only an excess of at most
:data:`MAX_TAIL_PADDING` frames is trimmed: some containers (raw ADTS ``.aac``, VBR streams) report a
duration *estimated* from the bitrate, and cutting real audio to an estimate would be worse than
keeping a few padded frames.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from duotok.audio.io import audio_info, check_conversion, check_finite, downmix, load_audio, resample
from duotok.data.datasets.items import AudioItem, AudioRef
from duotok.data.stems import SOURCES
from duotok.errors import AudioFileError, DatasetError

#: Suffixes libsndfile decodes here (mp3 only where the linked libsndfile has MPEG support).
SOUNDFILE_SUFFIXES = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".au", ".snd", ".aif", ".aiff"}
    | ({".mp3"} if "MP3" in sf.available_formats() else set())
)
#: Seconds an ffmpeg/ffprobe call may take before it is treated as hung.
FFMPEG_TIMEOUT = 600.0
_STDERR_TAIL = 400
#: Most frames of decoder padding trimmed from a stream's tail (AAC pads < 2 frames of 1024).
MAX_TAIL_PADDING = 4096


@dataclass(frozen=True)
class StreamInfo:
    """One audio stream as ffprobe reports it (``duration`` may be unknown for raw streams)."""

    sample_rate: int
    channels: int
    duration: float | None


def _tool(name: str, path: Path) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise AudioFileError(path, f"'{name}' not found on PATH; it is needed to read {path.suffix or 'this'} files")
    return exe


def _run(cmd: Sequence[str], path: Path, what: str) -> subprocess.CompletedProcess[bytes]:
    try:
        proc = subprocess.run(list(cmd), capture_output=True, timeout=FFMPEG_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AudioFileError(path, f"{what} timed out after {FFMPEG_TIMEOUT:.0f} s") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()[-_STDERR_TAIL:]
        raise AudioFileError(path, f"unreadable or corrupt audio file ({what} exit {proc.returncode}: {err})")
    return proc


def probe_streams(path: str | os.PathLike[str]) -> list[StreamInfo]:
    """The audio streams of a media file (ffprobe); :class:`AudioFileError` if it has none or is corrupt."""
    p = Path(path)
    _existing(p)
    cmd = [
        _tool("ffprobe", p), "-v", "error", "-show_entries",
        "stream=codec_type,sample_rate,channels,duration:format=duration", "-of", "json", str(p),
    ]
    proc = _run(cmd, p, "ffprobe")
    try:
        data = json.loads(proc.stdout.decode("utf-8", "replace"))
        fmt_duration = data.get("format", {}).get("duration")
        streams = []
        for s in data.get("streams", []):
            if s.get("codec_type") != "audio":
                continue
            duration = s.get("duration", fmt_duration)
            streams.append(
                StreamInfo(int(s["sample_rate"]), int(s["channels"]), float(duration) if duration else None)
            )
    except (ValueError, KeyError, TypeError) as exc:
        raise AudioFileError(p, f"ffprobe returned unexpected output ({exc})") from exc
    if not streams:
        raise AudioFileError(p, "no audio stream found")
    return streams


def _existing(p: Path) -> None:
    if not p.is_file():
        raise AudioFileError(p, "file not found" if not p.exists() else "not a regular file")
    if p.stat().st_size == 0:
        raise AudioFileError(p, "file is empty (0 bytes)")


def _stream_info(ref: AudioRef) -> StreamInfo:
    streams = probe_streams(ref.path)
    index = ref.stream or 0
    if index >= len(streams):
        raise AudioFileError(ref.path, f"has {len(streams)} audio stream(s); stream {index} was requested")
    return streams[index]


def decode_streams(
    path: str | os.PathLike[str], streams: Sequence[int], dtype: str = "float32"
) -> tuple[list[np.ndarray], int]:
    """Decode several audio streams of one file in a single ffmpeg pass, at their native rate.

    Returns one ``(frames, channels)`` array per requested stream (same length: ffmpeg's ``amerge``
    stops at the shortest) and the rate. One pass matters for MUSDB18: a stem file is demuxed once,
    not once per stem. ``dtype`` is ``"float32"`` or ``"int16"`` (bit-exact PCM for the MUSDB18-HQ
    conversion). Tail padding is trimmed to the shortest container stream duration (module docstring).
    """
    p = Path(path)
    infos = probe_streams(p)
    if not streams:
        raise ValueError("no stream requested")
    missing = [s for s in streams if not 0 <= s < len(infos)]
    if missing:
        raise AudioFileError(p, f"has {len(infos)} audio stream(s); stream(s) {missing} were requested")
    chosen = [infos[s] for s in streams]
    rates = sorted({info.sample_rate for info in chosen})
    if len(rates) > 1:
        raise AudioFileError(p, f"streams {list(streams)} have different sample rates {rates}")
    if len(streams) == 1:
        selection = ["-map", f"0:a:{streams[0]}"]
    else:
        labels = "".join(f"[0:a:{s}]" for s in streams)
        selection = ["-filter_complex", f"{labels}amerge=inputs={len(streams)}"]
    codec, fmt = {"float32": ("pcm_f32le", "f32le"), "int16": ("pcm_s16le", "s16le")}[dtype]
    cmd = [
        _tool("ffmpeg", p), "-nostdin", "-hide_banner", "-v", "error", "-i", str(p),
        *selection, "-f", fmt, "-acodec", codec, "-",
    ]
    raw = _run(cmd, p, "ffmpeg").stdout
    channels = [info.channels for info in chosen]
    frame_bytes = np.dtype(dtype).itemsize * sum(channels)
    if len(raw) == 0 or len(raw) % frame_bytes:
        raise AudioFileError(p, f"decoded {len(raw)} bytes, not a whole number of {sum(channels)}-channel frames")
    data = np.frombuffer(raw, dtype=dtype).reshape(-1, sum(channels))
    durations = [info.duration for info in chosen if info.duration is not None]
    if durations:
        expected = max(1, round(min(durations) * rates[0]))
        if 0 < data.shape[0] - expected <= MAX_TAIL_PADDING:
            data = data[:expected]
    return np.split(data, np.cumsum(channels)[:-1], axis=1), rates[0]


def decode_native(ref: AudioRef, dtype: str = "float32") -> tuple[np.ndarray, int]:
    """One stream of ``ref`` with ffmpeg at its native rate: ``((frames, channels) array, rate)``."""
    (data,), rate = decode_streams(ref.path, [ref.stream or 0], dtype)
    return data, rate


def uses_ffmpeg(ref: AudioRef) -> bool:
    """Whether ``ref`` needs ffmpeg: a selected stream, or a suffix libsndfile cannot read."""
    return ref.stream is not None or Path(ref.path).suffix.lower() not in SOUNDFILE_SUFFIXES


def check_header(path: str | os.PathLike[str]) -> None:
    """Check libsndfile recognises ``path``'s header: refuse unreadable files and the RAW fallback."""
    p = Path(path)
    _existing(p)
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, sf.SoundFileError, RuntimeError) as exc:
        raise AudioFileError(p, f"unreadable or corrupt audio file ({exc})") from exc
    if info.format == "RAW":
        raise AudioFileError(p, f"unreadable or corrupt audio file (no recognisable {p.suffix} header)")


def decode(ref: AudioRef, sample_rate: int) -> np.ndarray:
    """Mono float32 ``(frames,)`` at ``sample_rate``, converting with a warning naming the file.

    Raises :class:`AudioFileError` (message starts with the path) for a missing, empty, corrupt or
    non-finite file, or a missing stream.
    """
    if not uses_ffmpeg(ref):
        check_header(ref.path)
        return load_audio(ref.path, sample_rate, on_rate_mismatch="resample", on_multichannel="downmix")
    data, rate = decode_native(ref)
    return _convert(Path(ref.path), data, rate, sample_rate)


def _convert(p: Path, data: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    """ffmpeg output -> mono float32 at ``sample_rate``, with load_audio's checks and warnings."""
    check_finite(p, data)
    check_conversion(p, rate, data.shape[1], sample_rate, "resample", "downmix")
    return np.ascontiguousarray(resample(downmix(data), rate, sample_rate), dtype=np.float32)


def probe_duration(ref: AudioRef) -> float:
    """Seconds of audio from the header (libsndfile) or container (ffprobe); checks the file opens."""
    if not uses_ffmpeg(ref):
        check_header(ref.path)
        rate, _, frames = audio_info(ref.path)
        return frames / rate
    info = _stream_info(ref)
    if info.duration is None:
        raise AudioFileError(ref.path, "duration unknown (ffprobe reports none)")
    return info.duration


def load(item: AudioItem, sample_rate: int) -> np.ndarray:
    """The item's mixture: mono float32 ``(frames,)`` at ``sample_rate``.

    A MUSDB18-HQ folder without ``mixture.wav`` (``item.path`` is the folder) gives the stems' sum.
    """
    if item.stems is not None and Path(item.path).is_dir():
        return load_stems(item, sample_rate).sum(axis=0, dtype=np.float32)
    return decode(item.mixture, sample_rate)


def load_stem(item: AudioItem, stem: str, sample_rate: int) -> np.ndarray:
    """One stem of the item (``vocals``, ``drums``, ``bass`` or ``other``) as mono float32."""
    return decode(_stem_ref(item, stem), sample_rate)


def _stem_ref(item: AudioItem, stem: str) -> AudioRef:
    if not item.stems:
        raise DatasetError(item.path, f"item {item.id!r} has no stems (mixture-only data; see separators.py)")
    if stem not in item.stems:
        raise DatasetError(item.path, f"item {item.id!r} has no stem {stem!r} (has {sorted(item.stems)})")
    return item.stems[stem]


def load_stems(item: AudioItem, sample_rate: int, stems: Sequence[str] = SOURCES) -> np.ndarray:
    """``(len(stems), frames)`` float32 in ``stems`` order (default :data:`SOURCES`); the stems must
    have the same length, else :class:`DatasetError` names the item and the lengths."""
    refs = [_stem_ref(item, name) for name in stems]
    if all(ref.stream is not None and ref.path == refs[0].path for ref in refs):
        # Streams of one container (MUSDB18 .stem.mp4): one ffmpeg pass for all of them.
        datas, rate = decode_streams(refs[0].path, [ref.stream or 0 for ref in refs])
        converted = (_convert(Path(refs[0].path), d, rate, sample_rate) for d in datas)
        arrays = dict(zip(stems, converted, strict=True))
    else:
        arrays = {name: decode(ref, sample_rate) for name, ref in zip(stems, refs, strict=True)}
    lengths = {name: a.shape[-1] for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise DatasetError(item.path, f"stems of {item.id!r} have different lengths (samples): {lengths}")
    return np.stack(list(arrays.values()))
