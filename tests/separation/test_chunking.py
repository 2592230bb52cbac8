"""Long songs in overlapping, crossfaded chunks: exact where chunks agree, seamless where they don't,
and the separator never sees more than one chunk."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duotok.separation import STEMS
from duotok.separation.chunking import chunk_geometry, chunk_starts, fade_out, separate_long

SR = 16000


class Quarter:
    """Every stem is a quarter of the mixture (their sum is the mixture); records each call's length."""

    name = "quarter"
    sample_rate = SR

    def __init__(self):
        self.calls: list[int] = []

    def separate(self, mixture: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls.append(mixture.numel())
        return {s: mixture / 4 for s in STEMS}


class ChunkGain(Quarter):
    """Like :class:`Quarter` but each call has its own gain (1, 2, 1, 2, ...): the chunk-to-chunk
    disagreement that a hard cut turns into a click."""

    name = "chunk-gain"

    def separate(self, mixture: torch.Tensor) -> dict[str, torch.Tensor]:
        gain = 1.0 + len(self.calls) % 2
        return {s: gain * x for s, x in super().separate(mixture).items()}


def _noise(n: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(-0.5, 0.5, n).astype(np.float32))


@pytest.mark.parametrize("n, chunk, overlap", [
    (16000, 0.25, 0.05),        # many chunks, a last partial hop
    (16000, 0.25, 0.0),         # hard cuts
    (12000, 0.25, 0.125),       # half overlap; 12000 = 3 hops exactly
    (4001, 0.25, 0.0625),       # one sample past a chunk
    (4000, 0.25, 0.05),         # exactly one chunk
    (100, 0.25, 0.05),          # shorter than one chunk
    (16000, 0.5, 0.4999375),    # overlap one sample short of the chunk
])
@pytest.mark.parametrize("fade", ["hann", "linear"])
def test_an_identity_like_separator_reconstructs_its_input_exactly(n, chunk, overlap, fade):
    x = _noise(n)
    sep = Quarter()
    out = separate_long(sep, x, chunk, overlap, fade)
    assert tuple(out) == STEMS
    for y in out.values():
        assert y.dtype == torch.float32 and y.shape == (n,)
        assert torch.equal(y, x / 4)        # bit for bit: the join is new + w * (old - new)
    assert torch.allclose(sum(out.values()), x, atol=1e-6)
    assert max(sep.calls) <= round(chunk * SR)


def test_shorter_than_a_chunk_is_one_unpadded_call():
    sep = Quarter()
    separate_long(sep, _noise(1234), 1.0, 0.25)
    assert sep.calls == [1234]


def test_the_separator_only_ever_sees_chunk_length_inputs():
    """Memory: a long input is never handed over whole; every call is one full chunk (the last one
    is moved back to end at the song's end rather than cut short or zero-padded)."""
    sep = Quarter()
    n = 10 * SR + 123
    separate_long(sep, _noise(n), 1.0, 0.25)
    assert set(sep.calls) == {SR}
    starts = chunk_starts(n, SR, SR // 4)
    assert len(sep.calls) == len(starts) and starts[-1] == n - SR
    assert all(b - a <= SR - SR // 4 for a, b in zip(starts, starts[1:], strict=False))


@pytest.mark.parametrize("fade", ["hann", "linear"])
def test_a_chunk_dependent_gain_shows_no_step_at_the_seams(fade):
    x = torch.full((4 * SR,), 0.4)
    chunk, overlap = round(0.5 * SR), round(0.1 * SR)
    smooth = separate_long(ChunkGain(), x, 0.5, 0.1, fade)["vocals"]
    hard = separate_long(ChunkGain(), x, 0.5, 0.0, fade)["vocals"]
    step = 0.1                                      # gains 1 vs 2 on a constant 0.4 / 4
    assert float(hard.diff().abs().max()) == pytest.approx(step)         # the click a hard cut makes
    # crossfaded: the jump is spread over the overlap (Hann's steepest slope is pi/2 per overlap)
    assert float(smooth.diff().abs().max()) <= step * np.pi / 2 / overlap * 1.01
    assert float(smooth.diff().abs().max()) < step / 100
    # and between the overlaps each chunk's own estimate is kept untouched
    middle = smooth[overlap: chunk - overlap]
    assert torch.allclose(middle, torch.full_like(middle, 0.1))


def test_fades_are_complementary_and_monotone():
    for fade in ("hann", "linear"):
        w = fade_out(257, fade)
        assert torch.all(w.diff() < 0) and float(w.min()) > 0 and float(w.max()) < 1
        # point-symmetric: the fade-in 1 - w is the fade-out reversed, so neither chunk is favoured
        assert torch.allclose(w + w.flip(0), torch.ones(257), atol=1e-6)
    with pytest.raises(ValueError, match="fade"):
        fade_out(10, "cosine")


@pytest.mark.parametrize("chunk, overlap, message", [
    (1.0, 1.0, "shorter than chunk_seconds"),
    (1.0, 2.0, "shorter than chunk_seconds"),
    (1.0, -0.1, ">= 0"),
    (0.0, 0.0, "positive"),
    (float("nan"), 0.0, "finite"),
    (1.00001, 0.1, "whole number"),          # 16000.16 samples
    (1.0, 1 / 3, "whole number"),
])
def test_bad_chunking_is_refused(chunk, overlap, message):
    with pytest.raises(ValueError, match=message):
        separate_long(Quarter(), _noise(100), chunk, overlap)


def test_bad_mixtures_and_bad_fades_are_refused():
    with pytest.raises(ValueError, match="integer"):
        separate_long(Quarter(), torch.zeros(100, dtype=torch.int16), 1.0, 0.1)
    with pytest.raises(ValueError, match="mono"):
        separate_long(Quarter(), torch.zeros(2, 100), 1.0, 0.1)
    with pytest.raises(ValueError, match="empty"):
        separate_long(Quarter(), torch.zeros(0), 1.0, 0.1)
    with pytest.raises(ValueError, match="NaN"):
        separate_long(Quarter(), torch.tensor([0.0, float("nan")]), 1.0, 0.1)
    with pytest.raises(ValueError, match="fade"):
        separate_long(Quarter(), torch.zeros(100), 1.0, 0.1, fade="cosine")


def test_every_chunk_output_is_checked_and_named():
    class DropsBass(Quarter):
        name = "drops-bass"

        def separate(self, mixture):
            stems = super().separate(mixture)
            if len(self.calls) == 3:
                del stems["bass"]
            return stems

    with pytest.raises(ValueError, match=r"drops-bass \(chunk at 1\.00-1\.50 s\).*missing \['bass'\]"):
        separate_long(DropsBass(), _noise(2 * SR), 0.5, 0.0)


def test_chunk_geometry_accepts_float_rounding_of_whole_samples():
    assert chunk_geometry(SR, 0.1, 0.01) == (1600, 160)
    assert chunk_geometry(44100, 600.3, 0.0) == (26473230, 0)
