"""Token files (``.tok``): the two token streams of one song plus what is needed to use them safely.

A ``.tok`` file is an uncompressed NumPy ``.npz`` archive (no pickles) with three arrays:
``vocal`` and ``accompaniment`` (int32, one token per 40 ms frame) and ``header`` (UTF-8 JSON as
uint8) holding the format name and version, sample rate, frame rate, codebook sizes, the
fingerprints of the codebooks that made the tokens, the audio length and where the audio came from
(``mode``: ``separated`` by the mask head, or ``stems`` given by the user).

Why fingerprints: token ids are meaningless without the exact codebook, and a retrained model
silently "decodes" foreign tokens into garbage. :meth:`TokenFile.check_compatible` refuses that.
npz, not safetensors, because the zip container is byte-deterministic (fixed timestamps), so
re-encoding a song gives an identical file.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from duotok.errors import TokenFileError
from duotok.io.files import atomic_write

FORMAT = "duotok-tokens"
VERSION = 1
TRACK_KEYS = ("vocal", "accompaniment")
#: Where the audio of a token file came from: separated by the mask head, or given as stems.
MODES = ("separated", "stems")
#: Header fields every token file has (``mode``, ``source`` and ``extra`` have defaults).
REQUIRED_FIELDS = ("sample_rate", "frame_rate", "codebook_sizes", "fingerprints", "num_samples")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _field_problem(name: str, value: Any) -> str | None:
    """Why header field ``name`` cannot hold ``value`` (type and range), or None if it can."""
    if name == "sample_rate" and not (_is_int(value) and value > 0):
        return f"header field sample_rate must be a positive integer (Hz), got {_show(value)}"
    if name == "frame_rate" and not (isinstance(value, numbers.Real) and not isinstance(value, bool)
                                     and math.isfinite(value) and value > 0):
        return f"header field frame_rate must be a positive number (Hz), got {_show(value)}"
    if name == "num_samples" and not (_is_int(value) and value > 0):
        return f"header field num_samples must be a positive integer, got {_show(value)}"
    if name == "codebook_sizes" and not (isinstance(value, (list, tuple)) and len(value) == 2
                                         and all(_is_int(v) and v > 0 for v in value)):
        return f"header field codebook_sizes must be a list of 2 positive integers, got {_show(value)}"
    if name == "fingerprints" and not (isinstance(value, dict)
                                       and all(isinstance(value.get(k), str) and value.get(k) for k in TRACK_KEYS)):
        return (f"header field fingerprints must be an object with a non-empty string for each of {TRACK_KEYS}, "
                f"got {_show(value)}")
    if name == "mode" and value not in MODES:
        return f"header field mode must be one of {MODES}, got {_show(value)}"
    if name == "source" and not isinstance(value, str):
        return f"header field source must be a string, got {_show(value)}"
    if name == "extra" and not isinstance(value, dict):
        return f"header field extra must be an object, got {_show(value)}"
    return None


@dataclass
class TokenFile:
    vocal: np.ndarray
    accompaniment: np.ndarray
    sample_rate: int
    frame_rate: float
    codebook_sizes: tuple[int, int]
    fingerprints: dict[str, str]
    num_samples: int
    mode: str = "separated"
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vocal = np.asarray(self.vocal).astype(np.int32, copy=False).reshape(-1)
        self.accompaniment = np.asarray(self.accompaniment).astype(np.int32, copy=False).reshape(-1)
        self.codebook_sizes = tuple(int(v) for v in self.codebook_sizes)

    @property
    def n_frames(self) -> int:
        return int(self.vocal.shape[0])

    @property
    def seconds(self) -> float:
        return self.num_samples / self.sample_rate

    def header(self) -> dict[str, Any]:
        h = {k: v for k, v in asdict(self).items() if k not in TRACK_KEYS}
        h["codebook_sizes"] = list(self.codebook_sizes)
        return {"format": FORMAT, "version": VERSION, **h}

    def validate(self, where: str | os.PathLike[str] = "<tokens>") -> None:
        """Every field's type and range, and internal consistency: equal-length streams, as many
        frames as ``num_samples`` needs at ``frame_rate``, ids inside their codebooks."""
        for name in (*REQUIRED_FIELDS, "mode", "source", "extra"):
            problem = _field_problem(name, getattr(self, name))
            if problem:
                raise TokenFileError(where, problem)
        if self.vocal.shape != self.accompaniment.shape:
            raise TokenFileError(where, f"vocal ({self.vocal.shape[0]}) and accompaniment "
                                        f"({self.accompaniment.shape[0]}) streams differ in length")
        samples_per_frame = self.sample_rate / self.frame_rate
        expected = math.ceil(self.num_samples / samples_per_frame - 1e-6)
        if self.n_frames != expected:
            raise TokenFileError(where, f"num_samples {self.num_samples} at {self.sample_rate} Hz needs {expected} "
                                        f"frames at {self.frame_rate:g} Hz, the streams have {self.n_frames}")
        for key, size in zip(TRACK_KEYS, self.codebook_sizes, strict=True):
            ids = getattr(self, key)
            if ids.size and (ids.min() < 0 or ids.max() >= size):
                raise TokenFileError(where, f"{key} tokens outside [0, {size})")

    def check_compatible(self, fingerprints: dict[str, str], codebook_sizes: tuple[int, ...],
                         frame_rate: float, where: str | os.PathLike[str] = "<tokens>",
                         sample_rate: int | None = None) -> None:
        """Refuse tokens made by other codebooks (or at another frame or sample rate) than the given model's."""
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            raise TokenFileError(where, f"tokens are of {self.sample_rate} Hz audio, the model's is {sample_rate} Hz")
        if tuple(codebook_sizes) != self.codebook_sizes:
            raise TokenFileError(where, f"tokens are for codebooks of sizes {self.codebook_sizes}, the model has "
                                        f"{tuple(codebook_sizes)}")
        if abs(float(frame_rate) - self.frame_rate) > 1e-6:
            raise TokenFileError(where, f"tokens are at {self.frame_rate} Hz, the model at {frame_rate} Hz")
        for key in TRACK_KEYS:
            if fingerprints.get(key) != self.fingerprints.get(key):
                raise TokenFileError(where, f"these tokens were made by another model: {key} codebook fingerprint "
                                            f"{self.fingerprints.get(key)} != this model's {fingerprints.get(key)}")


def save_tokens(path: str | os.PathLike[str], tokens: TokenFile) -> Path:
    """Write ``tokens`` to ``path`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    tokens.validate(path)
    header = np.frombuffer(json.dumps(tokens.header(), sort_keys=True).encode("utf-8"), dtype=np.uint8)
    with atomic_write(path, "wb") as fh:
        np.savez(fh, header=header, vocal=tokens.vocal, accompaniment=tokens.accompaniment)
    return path


def _track_array(path: Path, arrays: dict[str, np.ndarray], key: str) -> np.ndarray:
    ids = arrays[key]
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise TokenFileError(path, f"{key} stream must be a 1-D array of integer ids, got {ids.dtype} of shape "
                                   f"{ids.shape}")
    return ids


def load_tokens(path: str | os.PathLike[str]) -> TokenFile:
    """Read and validate a token file: every header field's type and range, the id streams and their
    consistency. Every problem is a :class:`TokenFileError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise TokenFileError(path, "token file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise TokenFileError(path, f"not a readable token file ({exc})") from exc
    missing = {"header", *TRACK_KEYS} - set(arrays)
    if missing:
        raise TokenFileError(path, f"missing entries {sorted(missing)}")
    raw = arrays["header"]
    if raw.ndim != 1 or raw.dtype != np.uint8:
        raise TokenFileError(path, f"header must be UTF-8 JSON bytes (uint8), got {raw.dtype} of shape {raw.shape}")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenFileError(path, f"unreadable header ({exc})") from exc
    if not isinstance(header, dict):
        raise TokenFileError(path, f"header must be a JSON object, got a JSON {type(header).__name__}")
    if header.get("format") != FORMAT:
        raise TokenFileError(path, f"format {header.get('format')!r} is not {FORMAT!r}")
    version = header.get("version")
    if not _is_int(version) or version != VERSION:
        raise TokenFileError(path, f"token format version {version!r} is not supported "
                                   f"(this duotok reads version {VERSION})")
    absent = [k for k in REQUIRED_FIELDS if k not in header]
    if absent:
        raise TokenFileError(path, f"incomplete header: missing {', '.join(absent)}")
    fields = {k: header[k] for k in (*REQUIRED_FIELDS, "mode", "source", "extra") if k in header}
    for name, value in fields.items():
        problem = _field_problem(name, value)
        if problem:
            raise TokenFileError(path, problem)
    tokens = TokenFile(vocal=_track_array(path, arrays, "vocal"),
                       accompaniment=_track_array(path, arrays, "accompaniment"), **fields)
    tokens.validate(path)
    return tokens
