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
        """Internal consistency: equal-length streams, ids inside their codebooks."""
        if self.vocal.shape != self.accompaniment.shape:
            raise TokenFileError(where, f"vocal ({self.vocal.shape[0]}) and accompaniment "
                                        f"({self.accompaniment.shape[0]}) streams differ in length")
        if len(self.codebook_sizes) != 2:
            raise TokenFileError(where, f"expected 2 codebook sizes, got {self.codebook_sizes}")
        for key, size in zip(TRACK_KEYS, self.codebook_sizes, strict=True):
            ids = getattr(self, key)
            if ids.size and (ids.min() < 0 or ids.max() >= size):
                raise TokenFileError(where, f"{key} tokens outside [0, {size})")

    def check_compatible(self, fingerprints: dict[str, str], codebook_sizes: tuple[int, ...],
                         frame_rate: float, where: str | os.PathLike[str] = "<tokens>") -> None:
        """Refuse tokens made by other codebooks (or another frame rate) than the given model's."""
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


def load_tokens(path: str | os.PathLike[str]) -> TokenFile:
    """Read and validate a token file; every problem is a :class:`TokenFileError` naming the file."""
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
    try:
        header = json.loads(arrays["header"].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenFileError(path, f"unreadable header ({exc})") from exc
    if header.get("format") != FORMAT:
        raise TokenFileError(path, f"format {header.get('format')!r} is not {FORMAT!r}")
    if header.get("version") != VERSION:
        raise TokenFileError(path, f"token format version {header.get('version')!r} is not supported "
                                   f"(this duotok reads version {VERSION})")
    fields = {k: header[k] for k in ("sample_rate", "frame_rate", "codebook_sizes", "fingerprints", "num_samples",
                                     "mode", "source", "extra") if k in header}
    try:
        tokens = TokenFile(vocal=arrays["vocal"], accompaniment=arrays["accompaniment"], **fields)
    except TypeError as exc:
        raise TokenFileError(path, f"incomplete header ({exc})") from exc
    tokens.validate(path)
    return tokens
