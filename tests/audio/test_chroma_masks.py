"""Chroma targets (from notes and from audio) and ratio masks (sum to one, oracle separation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duotok.audio.chroma import chroma_from_audio, chroma_from_notes
from duotok.audio.masks import apply_masks, ratio_masks

FR = 25  # token rate: frame i spans [i/25, (i+1)/25) = 40 ms
STFT = dict(n_fft=1024, hop_length=160, win_length=1024)

# ------------------------------------------------------------------------------ chroma from notes


def test_single_a4_note_is_active_in_exactly_its_frames():
    # 0.2 s .. 0.6 s = frames 5..14; 0.2 + 0.4 is 0.6000000000000001 in floating point, which
    # must not leak into frame 15.
    chroma = chroma_from_notes([{"pitch": 69, "onset": 0.2, "duration": 0.4}], n_frames=25, frame_rate=FR)
    assert chroma.shape == (12, 25) and chroma.dtype == np.float32
    np.testing.assert_array_equal(np.nonzero(chroma[9])[0], np.arange(5, 15))
    np.testing.assert_array_equal(chroma[9, 5:15], 1.0)
    assert not np.delete(chroma, 9, axis=0).any()


def test_partial_frame_overlap_counts_and_frames_are_max_normalised():
    notes = [
        {"pitch": 60, "onset": 0.0, "duration": 1.0},  # C held through frame 0
        {"pitch": 64.0, "onset": 0.0, "duration": 0.02},  # E for half of frame 0
        {"pitch": 81, "onset": 0.05, "duration": 0.01},  # A5 alone-ish inside frame 1
    ]
    chroma = chroma_from_notes(notes, n_frames=30, frame_rate=FR)
    assert chroma[0, 0] == 1.0 and chroma[4, 0] == pytest.approx(0.5)
    assert chroma[4, 1] == 0.0
    assert chroma[9, 1] == pytest.approx(0.25)  # 10 ms of a 40 ms frame, C held all of it
    np.testing.assert_allclose(chroma[:, :25].max(axis=0), 1.0)
    assert not chroma[:, 25:].any()  # silent frames are all zero


def test_notes_outside_the_frame_range_are_ignored():
    notes = [{"pitch": 62, "onset": -1.0, "duration": 0.5}, {"pitch": 62, "onset": 5.0, "duration": 1.0}]
    assert not chroma_from_notes(notes, n_frames=10, frame_rate=FR).any()


def test_malformed_note_names_its_index():
    with pytest.raises(ValueError, match="note 1"):
        chroma_from_notes([{"pitch": 60, "onset": 0, "duration": 1}, {"pitch": 60, "onset": 0}], 10, FR)


# ------------------------------------------------------------------------------ chroma from audio


def test_chroma_from_audio_of_a440_peaks_at_class_9(make_sine):
    audio = np.concatenate([make_sine(440, 0.5), np.zeros(8000, np.float32)])
    chroma = chroma_from_audio(audio, 16000, FR)
    assert chroma.shape == (12, 25) and chroma.dtype == np.float32
    assert (chroma[:, :12].argmax(axis=0) == 9).all()
    np.testing.assert_allclose(chroma[9, :12], 1.0)
    assert not chroma[:, 15:].any()  # silence after the tone (beyond the window's reach) is zero


def test_chroma_from_audio_frame_count_matches_notes_grid(make_sine):
    audio = make_sine(440, 1.0)
    assert chroma_from_audio(audio, 16000, FR, n_frames=30).shape == (12, 30)


# ------------------------------------------------------------------------------------------ masks


def _two_sines(make_sine) -> torch.Tensor:
    return torch.from_numpy(np.stack([make_sine(440, 1.0), make_sine(3000, 1.0, amplitude=0.3)]))


def _sdr(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    return float(10 * torch.log10(reference.pow(2).sum() / (reference - estimate).pow(2).sum()))


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_masks_sum_to_one_and_lie_in_unit_interval(power):
    stems = torch.randn(3, 8000, generator=torch.Generator().manual_seed(0))
    stems[1, 4000:] = 0  # partly silent stems must not break the sum
    masks = ratio_masks(stems, power=power, **STFT)
    assert masks.shape == (3, 513, 51)
    torch.testing.assert_close(masks.sum(dim=0), torch.ones(513, 51), atol=1e-5, rtol=0)
    assert masks.min() >= 0 and masks.max() <= 1


def test_silent_bins_get_uniform_masks():
    stems = torch.zeros(4, 4000)
    stems[0, :2000] = torch.randn(2000, generator=torch.Generator().manual_seed(1))
    masks = ratio_masks(stems, **STFT)
    silent_frames = masks[..., -5:]  # the last frames see only zeros
    torch.testing.assert_close(silent_frames, torch.full_like(silent_frames, 0.25), atol=0, rtol=0)


def test_batched_masks_equal_per_item(make_sine):
    stems = torch.stack([_two_sines(make_sine), _two_sines(make_sine).flip(0)])
    batched = ratio_masks(stems, **STFT)
    assert batched.shape == (2, 2, 513, 101)
    torch.testing.assert_close(batched[1], ratio_masks(stems[1], **STFT), atol=1e-6, rtol=0)


@pytest.mark.parametrize("batched", [False, True])
def test_oracle_masks_separate_two_sines(make_sine, batched):
    stems = _two_sines(make_sine)
    if batched:
        stems = stems.unsqueeze(0)
    mixture = stems.sum(dim=-2)
    estimates = apply_masks(mixture, ratio_masks(stems, **STFT), **STFT)
    assert estimates.shape == stems.shape
    for s in range(2):
        assert _sdr(stems[..., s, :], estimates[..., s, :]) > 10.0
    # And wrong (swapped) masks must fail, so the SDR check has teeth.
    swapped = apply_masks(mixture, ratio_masks(stems, **STFT).flip(-3), **STFT)
    assert _sdr(stems[..., 0, :], swapped[..., 0, :]) < 0.0


def test_apply_masks_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="do not match"):
        apply_masks(torch.zeros(8000), torch.ones(2, 2, 513, 51), **STFT)
