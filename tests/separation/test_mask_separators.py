"""The mask separators: the stage-2 mask head's four stems, and the oracle ratio mask (a bound)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duotok.eval.separation import bss_eval_track
from duotok.models.encoder import EncoderConfig
from duotok.models.heads import separate
from duotok.models.multitask import HeadsConfig, MultiTaskConfig, MultiTaskModel
from duotok.separation import STEMS, Separator
from duotok.separation.mask_separators import MaskHeadSeparator, OracleMaskSeparator, check_mixture

SR = 16000


def tonal_stems(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Four stems that occupy different bins most of the time (three tones, one noise burst track),
    each over a faint noise floor: without it BSS-eval's projection on the references (512-tap
    filters of pure tones) is ill-conditioned and SIR/SAR come out as nonsense (-80 dB)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    vocals = 0.2 * np.sin(2 * np.pi * 440 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    drums = 0.3 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 2 * t) > 0.9)
    bass = 0.3 * np.sin(2 * np.pi * 82.4 * t)
    other = 0.15 * np.sin(2 * np.pi * 1318.5 * t) + 0.1 * np.sin(2 * np.pi * 2093 * t)
    floor = 0.01 * rng.standard_normal((4, t.size))
    return (np.stack([vocals, drums, bass, other]) + floor).astype(np.float32)


def mean_bss(references: np.ndarray, estimates: dict[str, torch.Tensor]) -> dict[str, float]:
    est = np.stack([estimates[s].numpy() for s in STEMS])
    return {k: float(np.nanmean(v)) for k, v in bss_eval_track(references, est, SR).items()}


# ----------------------------------------------------------------------------------------- oracle


def test_the_oracle_mask_beats_a_trivial_split_by_far():
    stems = tonal_stems()
    mixture = torch.from_numpy(stems.sum(axis=0))
    oracle = OracleMaskSeparator(SR, n_fft=1024, hop=160).separate_with_references(mixture, stems)
    trivial = {s: mixture / 4 for s in STEMS}
    good, bad = mean_bss(stems, oracle), mean_bss(stems, trivial)
    assert good["SDR"] > 15.0                    # measured 19.2 dB; mixture / 4: 1.0 dB
    assert good["SDR"] > bad["SDR"] + 15.0
    assert good["SIR"] > bad["SIR"] + 20.0       # measured 24.7 vs -4.8 dB


def test_oracle_stems_add_back_up_to_the_mixture_and_accept_a_mapping():
    stems = tonal_stems(1.0)
    mixture = torch.from_numpy(stems.sum(axis=0))
    oracle = OracleMaskSeparator(SR)
    from_array = oracle.separate_with_references(mixture, stems, sample_rate=SR)
    from_dict = oracle.separate_with_references(mixture, {s: stems[i] for i, s in enumerate(STEMS)})
    assert tuple(from_array) == STEMS
    for s in STEMS:
        assert from_array[s].shape == mixture.shape
        assert torch.equal(from_array[s], from_dict[s])
    # IRM masks sum to one in every bin, so the stems sum to the mixture up to STFT round-off.
    assert torch.allclose(sum(from_array.values()), mixture, atol=1e-4)


def test_the_power_of_the_mask_matters():
    stems = tonal_stems(1.0)
    mixture = torch.from_numpy(stems.sum(axis=0))
    irm = OracleMaskSeparator(SR, power=1).separate_with_references(mixture, stems)
    wiener = OracleMaskSeparator(SR, power=2).separate_with_references(mixture, stems)
    assert not torch.allclose(irm["drums"], wiener["drums"])
    assert "p=2" in OracleMaskSeparator(SR, power=2).name


def test_the_oracle_is_not_a_system_and_refuses_bad_references():
    oracle = OracleMaskSeparator(SR)
    stems = tonal_stems(0.5)
    mixture = stems.sum(axis=0)
    with pytest.raises(TypeError, match="separate_with_references"):
        oracle.separate(mixture)
    with pytest.raises(ValueError, match=r"\(4, 8000\)"):
        oracle.separate_with_references(mixture, stems[:3])
    with pytest.raises(ValueError, match="missing"):
        oracle.separate_with_references(mixture, {"vocals": stems[0]})
    with pytest.raises(ValueError, match="44100 Hz"):
        oracle.separate_with_references(mixture, stems, sample_rate=44100)
    bad = stems.copy()
    bad[2, 10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        oracle.separate_with_references(mixture, bad)
    with pytest.raises(ValueError, match="power"):
        OracleMaskSeparator(SR, power=0)


@pytest.mark.parametrize("bad, message", [
    (np.zeros(1000, dtype=np.int16), "int16"),
    (np.zeros((2, 1000), dtype=np.float32), "mono"),
    (np.array([0.0, np.nan, 0.0] * 400, dtype=np.float32), "NaN"),
    (np.zeros(10, dtype=np.float32), "at least 513"),
])
def test_bad_mixtures_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        check_mixture(bad, model_rate=SR, min_samples=513)


# ----------------------------------------------------------------------------------------- mask head

ENC = EncoderConfig(dim=32, n_lower=1, n_upper=1, n_heads=2)


def tiny_stage2(**heads) -> MultiTaskModel:
    torch.manual_seed(0)
    return MultiTaskModel(MultiTaskConfig(encoder=ENC, bottleneck_dim=8, heads=HeadsConfig(**heads)))


def test_the_mask_head_returns_four_stems_of_the_input_length_in_chunks():
    model = tiny_stage2()
    sep = MaskHeadSeparator(model, chunk_seconds=0.5, chunk_batch=2)
    assert isinstance(sep, Separator) and sep.sample_rate == SR
    mixture = torch.from_numpy(tonal_stems(1.3).sum(axis=0))   # 2 full chunks + a padded tail
    out = sep.separate(mixture, sample_rate=SR)
    assert tuple(out) == STEMS
    assert all(x.shape == mixture.shape and x.dtype == torch.float32 for x in out.values())
    # The mask head's softmax masks sum to one: the chunks must be joined in the right order for the
    # stems to add back up to the mixture.
    assert torch.allclose(sum(out.values()), mixture, atol=1e-4)
    # Batching chunks together changes nothing.
    again = MaskHeadSeparator(model, chunk_seconds=0.5, chunk_batch=1).separate(mixture)
    for s in STEMS:
        assert torch.allclose(out[s], again[s], atol=1e-5)


def test_one_chunk_is_exactly_the_models_own_masking():
    model = tiny_stage2()
    model.train()
    mixture = torch.from_numpy(tonal_stems(0.8).sum(axis=0))
    out = MaskHeadSeparator(model, chunk_seconds=0.8).separate(mixture)
    assert model.training, "the separator must leave the model in the mode it found it"
    model.eval()
    with torch.no_grad():
        masks = model.infer(mixture[None], heads=("mask",))["outputs"]["mask"]
        m = model.config.mel
        expected = separate(masks, mixture[None], m.n_fft, m.hop_length, m.win_length, length=mixture.numel())[0]
    for i, s in enumerate(STEMS):
        assert torch.allclose(out[s], expected[i], atol=1e-5)


def test_the_mask_head_round_trips_through_a_checkpoint(tmp_path):
    model = tiny_stage2()
    model.save_pretrained(tmp_path / "stage2")
    mixture = torch.from_numpy(tonal_stems(0.6).sum(axis=0))
    a = MaskHeadSeparator(model, chunk_seconds=0.6).separate(mixture)
    b = MaskHeadSeparator.from_pretrained(tmp_path / "stage2", chunk_seconds=0.6).separate(mixture)
    for s in STEMS:
        assert torch.equal(a[s], b[s])


def test_a_model_without_a_mask_head_or_bad_input_is_refused():
    with pytest.raises(ValueError, match="no mask head"):
        MaskHeadSeparator(tiny_stage2(mask=False))
    sep = MaskHeadSeparator(tiny_stage2(), chunk_seconds=0.5)
    with pytest.raises(ValueError, match="22050 Hz"):
        sep.separate(torch.zeros(8000), sample_rate=22050)
    with pytest.raises(ValueError, match="NaN"):
        sep.separate(torch.full((8000,), float("nan")))
    with pytest.raises(ValueError, match="too short"):
        MaskHeadSeparator(tiny_stage2(), chunk_seconds=0.01)
