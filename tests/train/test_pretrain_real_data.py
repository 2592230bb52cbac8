"""Stage 1 on real, mixture-only music: ``pretrain.data.mixtures`` names a registry dataset and the
same runner trains on its mixtures (here an mp3 folder and a MUSDB18-HQ fixture) instead of the corpus."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch

from duotok.config import Params
from duotok.data.datasets.crops import ItemCropDataset, mixture_crop_datasets
from duotok.errors import ConfigError
from duotok.train.pretrain import run


def mp3_folder(root, n=4, seconds=3.0, rate=22050):
    """mp3 files (ffmpeg's encoder): a format soundfile-only loaders would refuse on older libsndfile."""
    root.mkdir(parents=True)
    for i in range(n):
        path = root / f"album{i % 2}" / f"song{i}.mp3"
        path.parent.mkdir(exist_ok=True)
        cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
               f"sine=frequency={220 * (i + 1)}:duration={seconds}:sample_rate={rate}", "-ac", "2", str(path)]
        subprocess.run(cmd, check=True)
    return root


def test_item_crops_are_what_the_collate_expects(tmp_path):
    source = {"dataset": "folder", "root": str(mp3_folder(tmp_path / "mp3")), "train_splits": ["all"],
              "valid_splits": ["all"]}
    train, valid = mixture_crop_datasets(source, 1.0, 16000, seed=0, crops_per_file=2)
    assert len(train) == 8 and len(valid) == 4
    item = train[0]
    assert item["mixture"].shape == (16000,) and item["mixture"].dtype == torch.float32
    assert item["length"] == 16000 and item["path"].endswith(".mp3")
    assert float(item["mixture"].abs().max()) > 0.05, "the mp3 decoded to silence"
    again = ItemCropDataset(train.items, 1.0, 16000, seed=0, crops_per_file=2)
    assert torch.equal(again[3]["mixture"], train[3]["mixture"]), "crops are reproducible"
    train.set_epoch(1)
    assert not np.array_equal(train[0]["mixture"].numpy(), item["mixture"].numpy()), "a new epoch crops elsewhere"


@pytest.mark.parametrize("bad, match", [({"dataset": "folder"}, "missing keys"),
                                        ({"dataset": "folder", "root": ".", "train_splits": ["all"],
                                          "valid_splits": ["all"], "stems": True}, "unknown keys")])
def test_a_malformed_source_is_refused(bad, match):
    with pytest.raises(ConfigError, match=match):
        mixture_crop_datasets(bad, 1.0, 16000, seed=0, crops_per_file=1)


def test_pretrain_trains_on_the_mixtures_of_a_musdb_folder(tmp_path, make_musdb):
    root = make_musdb(tmp_path / "musdb", (("train", "A", 2.0), ("train", "B", 2.0), ("test", "C", 1.5)))
    params = Params.load("smoke").with_overrides({"pretrain": {"data": {"mixtures": {
        "dataset": "musdb18hq", "root": str(root), "train_splits": ["train"], "valid_splits": ["test"]}}}})
    result = run(params, out_dir=tmp_path / "out", data_dir=tmp_path / "no-corpus-here", steps=2)
    assert result.step == 2 and np.isfinite(result.train["loss"]) and "accuracy" in result.valid
    assert json.loads((tmp_path / "out" / "result.json").read_text())["steps"] == 2


def test_submixes_need_stems(tmp_path):
    params = Params.load("smoke").with_overrides({"pretrain": {"data": {"submix_prob": 0.5, "mixtures": {
        "dataset": "folder", "root": str(tmp_path), "train_splits": ["all"], "valid_splits": ["all"]}}}})
    with pytest.raises(ConfigError, match="submix_prob"):
        run(params, out_dir=tmp_path / "out", steps=1)
