"""Audio file I/O that refuses bad data loudly and names the file.

Policy (why two modes exist):

- **Corpus loaders refuse.** The embedded ``duosynth`` corpus is generated at exactly the project
  sample rate, mono. A file that differs was not produced by the generator (stale data, a wrong
  ``out_dir``), so silently converting it would hide a bug. ``load_audio``'s defaults
  (``on_rate_mismatch="error"``, ``on_multichannel="error"``) raise :class:`AudioFileError`.
- **Real-data loaders convert.** MUSDB18-HQ and mixture-only folders hold 44.1 kHz stereo music;
  converting is the only sensible thing to do, so those loaders pass ``"resample"`` /
  ``"downmix"`` and every conversion emits a ``warnings.warn`` naming the file, so it is visible
  but not fatal.

Every problem raises :class:`duotok.errors.AudioFileError` whose message starts with the path.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf

from duotok.errors import AudioFileError
from duotok.io.files import atomic_path

RateMismatchPolicy = Literal["error", "resample"]
MultichannelPolicy = Literal["error", "downmix"]

#: Container formats :func:`save_audio` writes, chosen by the file suffix.
WRITE_FORMATS: dict[str, str] = {".wav": "WAV", ".flac": "FLAC"}

# soundfile raises LibsndfileError (a RuntimeError) for undecodable data; older versions raised a
# bare RuntimeError, and SoundFileError covers its other failure modes.
_DECODE_ERRORS = (sf.LibsndfileError, sf.SoundFileError, RuntimeError)


def _check_rate(sample_rate: int) -> int:
    """Validate a requested sample rate early: a float or a negative rate is a caller bug."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    return int(sample_rate)


def _existing_file(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a Path after checking it is an existing, non-empty regular file."""
    p = Path(path)
    if not p.exists():
        raise AudioFileError(p, "file not found")
    if not p.is_file():
        raise AudioFileError(p, "not a regular file")
    if p.stat().st_size == 0:
        raise AudioFileError(p, "file is empty (0 bytes)")
    return p


def audio_info(path: str | os.PathLike[str]) -> tuple[int, int, int]:
    """``(sample_rate, channels, frames)`` of an audio file, read from its header only.

    Raises :class:`AudioFileError` if the file is missing, unreadable/corrupt or has 0 frames —
    the same checks as :func:`load_audio` short of decoding the samples.
    """
    p = _existing_file(path)
    try:
        info = sf.info(str(p))
    except _DECODE_ERRORS as exc:
        raise AudioFileError(p, f"unreadable or corrupt audio file ({exc})") from exc
    if info.frames <= 0:
        raise AudioFileError(p, "audio file is empty (0 frames)")
    return int(info.samplerate), int(info.channels), int(info.frames)


def _read(p: Path) -> tuple[np.ndarray, int]:
    """Decode a file to float32 ``(frames, channels)``; decoding failures become AudioFileError."""
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except _DECODE_ERRORS as exc:
        raise AudioFileError(p, f"unreadable or corrupt audio file ({exc})") from exc
    return data, int(rate)


def read_range(path: str | os.PathLike[str], start: int, frames: int) -> np.ndarray:
    """Float32 samples ``[start, start + frames)`` of an audio file as ``(frames, channels)`` (fewer at its
    end), decoded from that range only: a seek and a read, so a 10-s crop of a minute-long FLAC costs a
    tenth of decoding the file, with the same samples (FLAC and WAV decode a range sample-exactly). The rate
    and channel count are the caller's to check, once per file, from :func:`audio_info`; the range's
    samples are checked to be finite here. A missing or corrupt file is an :class:`AudioFileError` naming it."""
    p = _existing_file(path)
    try:
        with sf.SoundFile(str(p)) as fh:
            fh.seek(start)
            data = fh.read(frames, dtype="float32", always_2d=True)
    except _DECODE_ERRORS as exc:                 # a header that reads, frames that do not
        raise AudioFileError(p, f"unreadable or corrupt audio file ({exc})") from exc
    check_finite(p, data, start)
    return data


def check_finite(p: Path, data: np.ndarray, start: int = 0) -> None:
    """NaN/inf samples poison every loss downstream; refuse them at the door. ``data`` is ``(frames, ...)``
    starting at frame ``start`` of the file (a block read by :mod:`duotok.audio.stream`; the count is
    then the block's)."""
    bad = ~np.isfinite(data)
    if bad.any():
        first = int(np.argwhere(bad)[0][0]) + start
        raise AudioFileError(
            p, f"contains {int(bad.sum())} non-finite (NaN/inf) samples, first at frame {first}"
        )


def check_conversion(p: Path, found_rate: int, channels: int, expected_rate: int,
                     on_rate_mismatch: RateMismatchPolicy, on_multichannel: MultichannelPolicy) -> None:
    """The channel and rate policies of :func:`load_audio` (and of the block reader): a multichannel
    file or another rate is refused in ``"error"`` mode and converted, with a warning naming the file,
    otherwise. Called by the loader itself, so the warnings point at its caller."""
    if channels > 1:
        if on_multichannel == "error":
            raise AudioFileError(
                p, f"has {channels} channels; expected mono (use on_multichannel='downmix' to average them)"
            )
        if on_multichannel != "downmix":
            raise ValueError(f"on_multichannel must be 'error' or 'downmix', got {on_multichannel!r}")
        warnings.warn(f"{p}: downmixing {channels} channels to mono by averaging", stacklevel=3)
    if found_rate != expected_rate:
        if on_rate_mismatch == "error":
            raise AudioFileError(
                p,
                f"sample rate is {found_rate} Hz; expected {expected_rate} Hz (use on_rate_mismatch='resample' "
                "to convert)",
            )
        if on_rate_mismatch != "resample":
            raise ValueError(f"on_rate_mismatch must be 'error' or 'resample', got {on_rate_mismatch!r}")
        warnings.warn(f"{p}: resampling from {found_rate} Hz to {expected_rate} Hz", stacklevel=3)


def downmix(data: np.ndarray) -> np.ndarray:
    """``(frames, channels)`` → mono float32 ``(frames,)`` by averaging the channels."""
    return data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)


def resample(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling by the exact rational ratio ``target/orig`` (reduced by their gcd).

    Output length is ``ceil(len * target / orig)``; equal-length inputs give equal-length outputs,
    so aligned stems stay aligned.
    """
    orig_rate, target_rate = _check_rate(orig_rate), _check_rate(target_rate)
    if orig_rate == target_rate:
        return np.asarray(audio, dtype=np.float32)
    # Imported here, not with the module: ≈ 1.7 s that the stages, which never resample, skip.
    from scipy.signal import resample_poly

    g = math.gcd(orig_rate, target_rate)
    out = resample_poly(np.asarray(audio, dtype=np.float64), target_rate // g, orig_rate // g, axis=-1)
    return out.astype(np.float32)


def load_audio(
    path: str | os.PathLike[str],
    sample_rate: int,
    *,
    on_rate_mismatch: RateMismatchPolicy = "error",
    on_multichannel: MultichannelPolicy = "error",
) -> np.ndarray:
    """Load an audio file as mono float32 samples in ``[-1, 1]`` (PCM) at ``sample_rate``.

    Corpus loaders keep the defaults and so *refuse* a file at another rate or with more than one
    channel; real-data loaders (MUSDB18-HQ, mixture folders) pass ``on_rate_mismatch="resample"``
    and ``on_multichannel="downmix"`` to *convert*, with a warning naming the file.

    Raises :class:`AudioFileError` (message = path + problem) when the file is missing,
    unreadable/corrupt, empty (0 frames), has NaN/inf samples, has the wrong sample rate
    (``"error"`` mode; the message gives the found and expected rates) or is multichannel
    (``"error"`` mode).
    """
    sample_rate = _check_rate(sample_rate)
    p = _existing_file(path)
    data, found_rate = _read(p)
    if data.shape[0] == 0:
        raise AudioFileError(p, "audio file is empty (0 frames)")
    check_finite(p, data)
    check_conversion(p, found_rate, data.shape[1], sample_rate, on_rate_mismatch, on_multichannel)
    # Downmix before resampling: resampling one channel is cheaper than resampling several.
    out = resample(downmix(data), found_rate, sample_rate)
    return np.ascontiguousarray(out, dtype=np.float32)


def save_audio(
    path: str | os.PathLike[str],
    audio: np.ndarray,
    sample_rate: int,
    subtype: str = "PCM_16",
) -> None:
    """Write ``audio`` (``(frames,)`` or ``(frames, channels)``) atomically to a .wav/.flac file.

    The samples are written to a temporary file in the destination directory
    (:func:`duotok.io.files.atomic_path`: ``.<name>.<random>.tmp``, the format given explicitly) and
    moved into place with :func:`os.replace`, with the permissions a plain ``open`` would give, so a
    crash or a refused write never leaves a truncated file that a later run would trust. NaN/inf samples and empty audio are
    refused (:class:`AudioFileError`, nothing written); samples outside ``[-1, 1]`` are clipped with
    a warning, since integer PCM would otherwise wrap around.
    """
    sample_rate = _check_rate(sample_rate)
    p = Path(path)
    fmt = WRITE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise AudioFileError(p, f"unsupported suffix {p.suffix!r}; expected one of {sorted(WRITE_FORMATS)}")
    data = np.asarray(audio, dtype=np.float32)
    if data.ndim not in (1, 2) or data.shape[0] == 0:
        raise AudioFileError(
            p,
            f"refusing to write audio of shape {data.shape}; expected (frames,) or (frames, channels) with frames > 0",
        )
    if not np.isfinite(data).all():
        raise AudioFileError(
            p, f"refusing to write {int((~np.isfinite(data)).sum())} non-finite (NaN/inf) samples"
        )
    peak = float(np.abs(data).max())
    if peak > 1.0:
        warnings.warn(f"{p}: clipping samples to [-1, 1] (peak {peak:.3f})", stacklevel=2)
        data = np.clip(data, -1.0, 1.0)

    try:
        with atomic_path(p) as tmp:
            sf.write(str(tmp), data, sample_rate, subtype=subtype, format=fmt)
    except (*_DECODE_ERRORS, ValueError, TypeError) as exc:
        raise AudioFileError(p, f"could not write audio ({exc})") from exc
