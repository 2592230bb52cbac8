"""Which tags enter the probe's mean AP (issue 18): tags with too few positive test songs are dropped,
named with the reason, and excluded from the mean."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duotok.eval.probe import ProbeItem, ProbeTrainConfig
from duotok.eval.probe_codecs import probe_codec, scored_tags

VOCAB = ("common", "rare", "everywhere")


def _item(i: int, tags: tuple[int, int, int], frames: int = 30) -> ProbeItem:
    g = torch.Generator().manual_seed(i)
    emb = torch.randn(frames, 4, generator=g) + torch.tensor([2.0 * tags[0], 2.0 * tags[1], 0.0, 0.0])
    return ProbeItem(f"song{i}", emb, torch.tensor(tags, dtype=torch.float32))


def test_scored_tags_names_the_dropped_ones():
    items = [_item(i, (int(i % 2 == 0), int(i == 0), 1)) for i in range(10)]  # 5, 1, 10 positives
    kept, dropped = scored_tags(items, VOCAB, min_positive=5)
    assert kept == ["common"]
    assert dropped == {"rare": "1 positive test song(s) < 5", "everywhere": "0 negative test song(s) < 1"}
    assert scored_tags(items, VOCAB, None) == (list(VOCAB), {})


class _Codec:
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return ids.T.float()


def test_probe_codec_excludes_dropped_tags_from_the_mean():
    rng = np.random.default_rng(0)
    songs = []
    labels = {"train": [(i % 2, int(i % 3 == 0), 1) for i in range(12)], "valid": [(i % 2, i % 2, 1) for i in range(4)],
              "test": [(int(i < 5), int(i == 0), int(i != 3)) for i in range(10)]}
    for split, tag_rows in labels.items():
        for i, tags in enumerate(tag_rows):
            ids = torch.from_numpy(rng.integers(0, 4, size=(4, 20))) + 3 * torch.tensor(tags + (0,))[:, None]
            songs.append({"id": f"{split}{i}", "split": split, "ids": ids,
                          "tags": [t for t, on in zip(VOCAB, tags, strict=True) if on]})
    tokens = {"codec": "toy", "frame_rate": 10.0, "songs": songs}
    train = {"steps": 6, "batch_size": 8, "lr": 3e-3, "window_seconds": 1.0, "seeds": [0, 1], "eval_every": 3}
    model = {"channels": 8, "n_blocks": 1, "dropout": 0.0}
    result = probe_codec(_Codec(), tokens, model, train, VOCAB, min_positive_test_songs=5)
    assert result["tags_kept"] == ["common", "everywhere"] and result["min_positive_test_songs"] == 5
    assert set(result["tags_dropped"]) == {"rare"} and "1 positive" in result["tags_dropped"]["rare"]
    for run in result["per_seed"]:
        assert set(run["per_tag_ap"]) == {0, 2} and run["n_tags_scored"] == 2
        assert run["ap"] == pytest.approx(np.mean([run["per_tag_ap"][0], run["per_tag_ap"][2]]))
    assert ProbeTrainConfig(**{**train, "seeds": (0, 1)}).steps == 6
