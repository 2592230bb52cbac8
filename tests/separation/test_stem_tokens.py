"""Stem tokens: the delay pattern's exact round trip, partial residual decoding, the token ceiling."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from gen_helpers import N_CODEBOOKS, V, tiny_codec  # noqa: E402

from duotok.separation.stem_tokens import (  # noqa: E402
    apply_delay,
    decode_stems,
    delay_pad_mask,
    embed_partial,
    encode_stems,
    stem_token_ceiling,
    undo_delay,
)

PAD = 99


@pytest.mark.parametrize("k, t", [(1, 1), (1, 5), (2, 1), (3, 7), (4, 2), (8, 10)])
def test_delay_round_trip_and_pad_cells(k, t):
    codes = torch.randint(0, 50, (2, 4, k, t))
    delayed = apply_delay(codes, PAD)
    assert delayed.shape == (2, 4, k, t + k - 1)
    pads = delay_pad_mask(k, t)
    assert bool((delayed[..., pads] == PAD).all())                    # every delay cell is the pad id ...
    assert bool((delayed[..., ~pads] != PAD).all())                   # ... and no other cell is
    assert torch.equal(undo_delay(delayed, pad_id=PAD), codes)
    assert torch.equal(apply_delay(undo_delay(delayed, PAD), PAD), delayed)
    for q in range(k):                                                 # codebook q shifted right by q
        assert torch.equal(delayed[..., q, q : q + t], codes[..., q, :])


def test_undo_delay_rejects_a_token_in_a_delay_cell():
    delayed = apply_delay(torch.randint(0, 50, (3, 4)), PAD)
    delayed[2, 0] = 7                                                  # codebook 2 is still in its delay at step 0
    with pytest.raises(ValueError, match="pad id"):
        undo_delay(delayed, pad_id=PAD)
    undo_delay(delayed)                                                # without pad_id: no check


def test_delay_keeps_pad_ids_of_padded_frames():
    """Frames already holding the pad id (a short row's padding) survive the round trip unchanged."""
    codes = torch.randint(0, 50, (2, 6))
    codes[:, 4:] = PAD
    assert torch.equal(undo_delay(apply_delay(codes, PAD), PAD), codes)


def test_encode_stems_shapes_and_first_codebooks():
    codec = tiny_codec()
    stems = 0.1 * torch.randn(4, 3300)
    codes = encode_stems(codec, stems, 2)
    assert codes.shape == (4, 2, math.ceil(3300 / 320)) and codes.dtype == torch.long
    for s in range(4):
        assert torch.equal(codes[s], codec.encode(stems[s])[:2])
    with pytest.raises(ValueError, match="K must be"):
        encode_stems(codec, stems, N_CODEBOOKS + 1)


def test_partial_embedding_is_the_sum_of_the_first_codebook_vectors():
    codec = tiny_codec()
    ids = codec.encode(0.1 * torch.randn(3200))
    torch.testing.assert_close(embed_partial(codec, ids), codec.embed(ids))          # K = n_codebooks
    books = [layer._codebook.embed[0] for layer in codec.rvq.layers]                  # (V, latent_dim) each
    manual = books[0][ids[0]] + books[1][ids[1]]
    torch.testing.assert_close(embed_partial(codec, ids[:2]), manual.float(), atol=1e-6, rtol=1e-6)


def test_decode_with_all_codebooks_equals_the_codecs_own_decode():
    codec = tiny_codec()
    stems = 0.1 * torch.randn(4, 3000)
    codes = encode_stems(codec, stems, N_CODEBOOKS)
    audio = decode_stems(codec, codes, 3000)
    assert audio.shape == (4, 3000) and audio.dtype == torch.float32
    for s in range(4):
        torch.testing.assert_close(audio[s], codec.decode(codes[s], num_samples=3000)["mixture"],
                                   atol=1e-5, rtol=1e-5)
    assert decode_stems(codec, codes[:, :1], 3000).shape == (4, 3000)
    assert decode_stems(codec, codes, 4000)[:, 3200:].abs().max() == 0        # padded past the tokens


def test_stem_token_ceiling_reports_every_song_k_and_stem():
    codec = tiny_codec()
    rng = np.random.default_rng(0)
    t = np.arange(24000) / 16000
    stems = np.stack([0.2 * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(t.size) for f in
                      (440, 90, 110, 660)]).astype(np.float32)
    out = stem_token_ceiling(codec, [{"id": "a", "stems": stems}], k_values=(1, N_CODEBOOKS))
    assert len(out["rows"]) == 2 * 4
    assert {r["K"] for r in out["rows"]} == {1, N_CODEBOOKS}
    assert set(out["summary"]) == {"1", str(N_CODEBOOKS)}
    for row in out["rows"]:
        assert np.isfinite(row["mel_l1"]) and np.isfinite(row["sdr"]) and row["song"] == "a"
    assert set(out["summary"]["1"]) == {"vocals", "drums", "bass", "other", "mean"}
    with pytest.raises(ValueError, match="stems"):
        stem_token_ceiling(codec, [{"mixture": stems[0]}], k_values=(1,))
    assert codec.config.rvq.codebook_size == V
