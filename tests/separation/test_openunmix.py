"""The Open-Unmix-style separator: masks, loss, normalisation, training, checkpoints."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from duotok.data import StemCropDataset, collate_stems
from duotok.separation import STEMS, Separator
from duotok.separation.openunmix import (
    OpenUnmix,
    OpenUnmixConfig,
    OpenUnmixSeparator,
    build_config,
    make_loss,
    n_parameters,
    train_openunmix,
)
from duotok.train.loop import TrainConfig

SR = 16000
TINY = OpenUnmixConfig(hidden_size=16, n_layers=1)


def tiny(**changes) -> OpenUnmix:
    torch.manual_seed(0)
    return OpenUnmix(OpenUnmixConfig(**{**vars(TINY), **changes}))


def crop_batch(seconds: float = 0.5, lengths=(8000, 4000)) -> dict:
    rng = np.random.default_rng(0)
    n = int(seconds * SR)
    stems = torch.from_numpy(0.1 * rng.standard_normal((len(lengths), 4, n)).astype(np.float32))
    for i, length in enumerate(lengths):
        stems[i, :, length:] = 0.0      # zero padding, as StemCropDataset pads a short song
    return {"mixture": stems.sum(dim=1), "stems": stems, "length": torch.tensor(lengths)}


@pytest.mark.parametrize("mask", ["sigmoid", "relu", "softmax"])
def test_masks_cover_every_bin_and_frame_and_start_near_a_quarter(mask):
    model = tiny(mask=mask)
    x = torch.randn(2, 4001) * 0.1
    with torch.no_grad():
        masks = model(x)
    assert masks.shape == (2, 4, 513, 4001 // 256 + 1)
    assert masks.dtype == torch.float32 and bool((masks >= 0).all())
    if mask == "sigmoid":
        assert bool((masks <= 1).all())
    if mask == "softmax":
        assert torch.allclose(masks.sum(dim=1), torch.ones(2, 513, masks.shape[-1]), atol=1e-5)
    # The output bias centres every mask on 1/4, so an untrained model splits the mixture evenly.
    assert abs(float(masks.median()) - 0.25) < 0.05


def test_the_separator_returns_four_stems_of_the_input_length():
    sep = OpenUnmixSeparator(tiny())
    assert isinstance(sep, Separator) and sep.sample_rate == SR and sep.name == "Open-Unmix-style"
    mixture = torch.randn(12345) * 0.1
    out = sep.separate(mixture, sample_rate=SR)
    assert tuple(out) == STEMS
    assert all(x.shape == (12345,) and torch.isfinite(x).all() for x in out.values())
    chunked = OpenUnmixSeparator(tiny(), max_seconds=0.3).separate(mixture)
    assert all(x.shape == (12345,) for x in chunked.values())
    with pytest.raises(ValueError, match="8000 Hz"):
        sep.separate(mixture, sample_rate=8000)
    with pytest.raises(ValueError, match="NaN"):
        sep.separate(torch.full((4000,), float("nan")))
    with pytest.raises(ValueError, match="at least 513"):
        sep.separate(torch.zeros(100))


def test_an_all_pass_mask_gives_back_the_mixture():
    """The masking + iSTFT path itself is lossless: a model whose masks are all one returns the mixture."""
    model = tiny(mask="relu")
    with torch.no_grad():
        model.fc3.weight.zero_()
        model.fc3.bias.fill_(1.0)
    mixture = torch.randn(1, 9000) * 0.1
    stems = model.separate_batch(mixture)
    assert stems.shape == (1, 4, 9000)
    for s in range(4):
        assert torch.allclose(stems[0, s], mixture[0], atol=1e-5)


def test_the_loss_ignores_padded_frames():
    model = tiny()
    loss_fn = make_loss("mse")
    batch = crop_batch()
    with torch.no_grad():
        _check_padding_is_ignored(model, loss_fn, batch)
    with pytest.raises(ValueError, match="loss"):
        make_loss("huber")


def _check_padding_is_ignored(model, loss_fn, batch) -> None:
    loss, metrics = loss_fn(model, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(metrics) == {f"{s}_loss" for s in STEMS}
    # Garbage in the padded target region (past a frame's centre + n_fft) must not change the loss.
    garbage = {**batch, "stems": batch["stems"].clone()}
    garbage["stems"][1, :, 4000 + 1024:] = 100.0
    assert torch.allclose(loss_fn(model, garbage)[0], loss)
    # ... while the same garbage inside the valid span does.
    inside = {**batch, "stems": batch["stems"].clone()}
    inside["stems"][0, :, 1024:2048] = 100.0
    assert float(loss_fn(model, inside)[0]) > 10 * float(loss)


def test_normalisation_is_fitted_on_valid_frames_only():
    model = tiny()
    batch = crop_batch(lengths=(8000, 4000))
    used = model.fit_normalization([batch])
    assert used == (8000 // 256 + 1) + (4000 // 256 + 1)
    mag = model.spectrogram(batch["mixture"][:1]).abs()
    features = model.features(mag)[0]                    # item 0 is all valid
    assert features.shape == (8000 // 256 + 1, 513)
    padded = batch["mixture"].clone()
    padded[1, 4000 + 1024:] = 50.0                       # loud padding would dominate the mean
    again = tiny()
    again.fit_normalization([{**batch, "mixture": padded}])
    assert torch.allclose(again.input_mean, model.input_mean, atol=1e-4)
    assert float(model.input_std.min()) >= 1e-2


def test_save_and_load_round_trip_keeps_weights_and_statistics(tmp_path):
    model = tiny(max_bin=400)
    model.fit_normalization([crop_batch()])
    model.save_pretrained(tmp_path / "umx")
    loaded = OpenUnmix.from_pretrained(tmp_path / "umx")
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert float(loaded.input_std.sub(1).abs().max()) > 0      # the fitted buffers were saved, not reset
    x = torch.randn(6000) * 0.1
    a = OpenUnmixSeparator(model).separate(x)
    b = OpenUnmixSeparator.from_pretrained(tmp_path / "umx").separate(x)
    for s in STEMS:
        assert torch.equal(a[s], b[s])


def test_the_documented_parameter_counts_hold():
    """The module docstring states these; a change of architecture must update it."""
    counts = {h: n_parameters(OpenUnmix(OpenUnmixConfig(hidden_size=h))) for h in (128, 256)}
    assert counts == {128: 661_636, 256: 1_976_580}
    import duotok.separation.openunmix as umx
    assert "661,636" in umx.__doc__ and "1,976,580" in umx.__doc__


@pytest.mark.parametrize("change, message", [
    ({"hidden_size": 15}, "even"),
    ({"mask": "tanh"}, "mask"),
    ({"max_bin": 600}, "max_bin"),
    ({"hop_length": 2048}, "hop_length"),
])
def test_bad_configs_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        OpenUnmix(OpenUnmixConfig(**{**vars(TINY), **change}))


def test_build_config_reads_a_params_block():
    model, train, data = build_config({"model": {"hidden_size": 64}, "train": {"steps": 7},
                                       "data": {"segment_seconds": 2.0, "crops_per_song": 3}}, SR)
    assert model.hidden_size == 64 and model.sample_rate == SR and train.steps == 7
    assert data == {"segment_seconds": 2.0, "crops_per_song": 3, "loss": "mse"}
    with pytest.raises(ValueError, match="unknown"):
        build_config({"modle": {}}, SR)
    with pytest.raises(ValueError, match="hiden"):
        build_config({"model": {"hiden_size": 3}}, SR)


def _logged_losses(path) -> list[float]:
    with open(path, newline="") as fh:
        return [float(row["loss"]) for row in csv.DictReader(fh)]


def test_a_few_training_steps_lower_the_loss_and_resume(tmp_path, duosynth_root):
    cfg = OpenUnmixConfig(hidden_size=32, n_layers=1)
    train_cfg = TrainConfig(steps=40, batch_size=4, lr=1e-2, warmup_steps=0, log_every=1, eval_every=20,
                            save_every=20, precision="fp32", max_eval_batches=1)
    out = tmp_path / "umx"
    model, result = train_openunmix(cfg, train_cfg, duosynth_root, out, segment_seconds=0.5, crops_per_song=4)
    assert result.step == 40 and isinstance(model, OpenUnmix)
    losses = _logged_losses(out / "train_log.csv")
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])      # measured: 2.00 → 0.31
    assert (out / "model" / "model.safetensors").is_file() and (out / "result.json").is_file()
    # The normalisation was fitted on the corpus before training (not left at 0 / 1).
    assert float(model.input_mean.abs().max()) > 0.1
    # Training longer in the same folder resumes from the last checkpoint.
    train_cfg.steps = 44
    _, resumed = train_openunmix(cfg, train_cfg, duosynth_root, out, segment_seconds=0.5, crops_per_song=4)
    assert resumed.resumed_from == 40 and resumed.step == 44


def test_training_data_is_the_stem_crop_dataset(duosynth_root):
    """The loss consumes exactly what StemCropDataset + collate_stems yield."""
    data = StemCropDataset(duosynth_root, "train", 0.5, SR, crops_per_song=2, random=False)
    batch = collate_stems([data[i] for i in range(len(data))])
    loss, _ = make_loss("l1")(tiny(), batch)
    assert torch.isfinite(loss)
