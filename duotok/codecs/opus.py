"""Opus through ffmpeg/libopus: a real, deployed codec as a reconstruction reference point.

It has no tokens (so no LM or probe numbers): it implements only
:class:`duotok.codecs.base.Reconstructor`. Constant bitrate (``-vbr off``) so the row's kbps is the
rate actually spent. Opus runs at 48 kHz internally; ffmpeg resamples both ways and removes the
encoder's pre-skip, and the output is trimmed or zero-padded to the input length.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch


class OpusUnavailable(RuntimeError):
    pass


def ffmpeg_has_libopus(ffmpeg: str = "ffmpeg") -> bool:
    exe = shutil.which(ffmpeg)
    if exe is None:
        return False
    out = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, check=False).stdout
    return "libopus" in out


class OpusCodec:
    """Mixture → Opus at ``kbps`` → mixture."""

    def __init__(self, kbps: float = 6.0, sample_rate: int = 16000, ffmpeg: str = "ffmpeg"):
        if not ffmpeg_has_libopus(ffmpeg):
            raise OpusUnavailable("ffmpeg with libopus is needed for the Opus reference: install it "
                                  "(Debian: apt-get install ffmpeg) — `make setup` does on Debian")
        self.kbps = float(kbps)
        self.sample_rate = int(sample_rate)
        self.ffmpeg = shutil.which(ffmpeg)
        self.name = f"Opus {self.kbps:g} kbps"

    @property
    def bitrate(self) -> float:
        return self.kbps * 1000.0

    def reconstruct(self, mixture: torch.Tensor) -> dict[str, torch.Tensor]:
        x = torch.as_tensor(mixture, dtype=torch.float32).reshape(-1).numpy()
        if x.size == 0 or not np.isfinite(x).all():
            raise ValueError("Opus: empty audio or NaN/infinite samples")
        with tempfile.TemporaryDirectory(prefix="duotok-opus-") as tmp:
            src, coded = Path(tmp) / "in.wav", Path(tmp) / "coded.opus"
            sf.write(src, x, self.sample_rate, subtype="FLOAT")
            self._run(["-i", str(src), "-c:a", "libopus", "-b:a", f"{self.kbps:g}k", "-vbr", "off",
                       "-application", "audio", str(coded)])
            raw = self._run(["-i", str(coded), "-ar", str(self.sample_rate), "-ac", "1", "-f", "f32le", "-"])
        y = np.frombuffer(raw, dtype=np.float32)
        out = np.zeros_like(x)
        out[: min(x.size, y.size)] = y[: x.size]
        return {"mixture": torch.from_numpy(out)}

    def _run(self, args: list[str]) -> bytes:
        proc = subprocess.run([self.ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *args], capture_output=True,
                              check=False)
        if proc.returncode:
            raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-500:]}")
        return proc.stdout
