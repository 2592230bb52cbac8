"""Tagging probe evaluation: window cutting, split checks, the metrics, and that the probe learns a
tag planted in synthetic embeddings (and learns it identically twice for one seed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from duotok.eval.probe import (
    ProbeItem,
    ProbeTrainConfig,
    check_disjoint,
    cut_windows,
    evaluate_probe,
    multilabel_scores,
    run_probe,
    train_probe,
)
from duotok.eval.probe_net import ProbeConfig, TaggingProbe

RATE = 10.0  # Hz; 1 s windows of 10 frames keep everything tiny
DIM, TAGS = 8, 3


def synthetic_songs(n: int, seed: int, prefix: str, seconds: float = 3.0, offset: float = 1.0) -> list[ProbeItem]:
    """Songs of noise embeddings; tag k adds ``offset`` to dims 2k and 2k+1 of every frame."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        tags = (torch.rand(TAGS, generator=g) < 0.4).float()
        emb = torch.randn(int(seconds * RATE), DIM, generator=g)
        for k in range(TAGS):
            emb[:, 2 * k : 2 * k + 2] += offset * tags[k]
        items.append(ProbeItem(f"{prefix}-{i}", emb, tags))
    return items


PROBE = ProbeConfig(in_dim=DIM, n_tags=TAGS, channels=16, n_blocks=1, dropout=0.0)
TRAIN = ProbeTrainConfig(steps=120, batch_size=16, lr=3e-3, weight_decay=0.01, window_seconds=1.0, seeds=(0,),
                         eval_every=40)


# ------------------------------------------------------------------------------------------ windows


def test_cut_windows_counts_and_content():
    emb = torch.arange(23 * 2, dtype=torch.float32).reshape(23, 2)
    windows, masks = cut_windows(emb, frame_rate=2.0, seconds=5.0)  # W = 10, tail of 3 dropped
    assert windows.shape == (2, 10, 2) and masks.shape == (2, 10) and masks.all()
    torch.testing.assert_close(windows[1], emb[10:20])
    windows, masks = cut_windows(emb, frame_rate=2.0, seconds=5.0, hop_seconds=2.5)  # hop = 5
    assert windows.shape == (3, 10, 2)
    torch.testing.assert_close(windows[2], emb[10:20])
    assert cut_windows(emb[:10], 2.0, 5.0)[0].shape == (1, 10, 2)


def test_cut_windows_pads_short_song():
    emb = torch.randn(4, 3)
    windows, masks = cut_windows(emb, frame_rate=2.0, seconds=5.0)
    assert windows.shape == (1, 10, 3)
    torch.testing.assert_close(windows[0, :4], emb)
    assert (windows[0, 4:] == 0).all()
    assert masks.tolist() == [[True] * 4 + [False] * 6]
    with pytest.raises(ValueError):
        cut_windows(torch.randn(0, 3), 2.0)


# ------------------------------------------------------------------------------------------- splits


def test_check_disjoint_names_overlap():
    a = [ProbeItem(s, torch.zeros(1, 1), torch.zeros(1)) for s in ("song-a", "song-b")]
    check_disjoint(a, ["song-c"])
    with pytest.raises(ValueError, match="song-b"):
        check_disjoint(a, ["song-c", "song-b"])


def test_run_probe_refuses_overlap():
    train = synthetic_songs(4, 0, "s")
    test = synthetic_songs(2, 1, "t") + [train[1]]
    with pytest.raises(ValueError, match="s-1"):
        run_probe(train, [], test, RATE, PROBE, TRAIN)


# ------------------------------------------------------------------------------------------ metrics


def random_labels(n: int, tags: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, tags)) < 0.4).astype(int)
    y[0], y[1] = 1, 0  # every tag has both positives and negatives
    return y


def test_perfect_and_reversed_scorers():
    y = random_labels(30, 4, 0)
    perfect = multilabel_scores(y, y + 0.1 * np.random.default_rng(1).random(y.shape))
    assert perfect["ap"] == 1.0 and perfect["auc"] == 1.0 and perfect["n_tags_scored"] == 4
    assert multilabel_scores(y, -y.astype(float))["auc"] == 0.0


def test_tags_without_positives_are_excluded():
    y = random_labels(20, 4, 2)
    y[:, 1] = 0  # no positives
    y[:, 3] = 1  # no negatives
    scores = np.random.default_rng(3).random(y.shape)
    result = multilabel_scores(y, scores)
    assert result["n_tags_scored"] == 2 and set(result["per_tag_ap"]) == {0, 2}
    assert result["ap"] == pytest.approx(average_precision_score(y[:, [0, 2]], scores[:, [0, 2]], average="macro"))
    empty = multilabel_scores(np.zeros((5, 2)), np.zeros((5, 2)))
    assert empty["n_tags_scored"] == 0 and np.isnan(empty["ap"])


def test_agrees_with_sklearn():
    y = random_labels(40, 5, 4)
    scores = np.random.default_rng(5).random(y.shape)
    result = multilabel_scores(y, scores)
    assert result["ap"] == pytest.approx(average_precision_score(y, scores, average="macro"))
    assert result["auc"] == pytest.approx(roc_auc_score(y, scores, average="macro"))


class TagReader(TaggingProbe):
    """A fixed 'probe' whose logit for tag k is the window mean of feature k: with songs whose every
    frame holds their tags, a perfect scorer."""

    def forward(self, x, mask=None):
        w = torch.ones(x.shape[:2]) if mask is None else mask.float()
        return 10 * ((x[..., :TAGS] - 0.5) * w[..., None]).sum(1) / w.sum(1, keepdim=True)


def test_evaluate_probe_levels():
    items = []
    for i, (tags, frames) in enumerate([([1, 0, 0], 25), ([0, 1, 1], 8), ([1, 1, 0], 12), ([0, 0, 0], 30)]):
        emb = torch.zeros(frames, DIM)
        emb[:, :TAGS] = torch.tensor(tags, dtype=torch.float32)
        items.append(ProbeItem(f"s{i}", emb, torch.tensor(tags, dtype=torch.float32)))
    result = evaluate_probe(TagReader(PROBE), items, RATE, window_seconds=1.0)
    assert result["n_windows"] == 2 + 1 + 1 + 3
    assert result["ap"] == result["auc"] == result["song_ap"] == result["song_auc"] == 1.0
    assert result["n_tags_scored"] == 3 and set(result["per_tag_ap"]) == {0, 1, 2}
    with pytest.raises(ValueError, match="s9"):
        evaluate_probe(TagReader(PROBE), [ProbeItem("s9", torch.zeros(5, DIM + 1), torch.zeros(TAGS))], RATE, 1.0)


def test_song_level_is_mean_of_window_probabilities():
    model = TaggingProbe(PROBE).eval()
    items = synthetic_songs(6, 7, "v", seconds=2.5)
    result = evaluate_probe(model, items, RATE, window_seconds=1.0)
    song_probs = []
    for item in items:
        windows, masks = cut_windows(item.embeddings, RATE, 1.0)
        with torch.no_grad():
            song_probs.append(torch.sigmoid(model(windows, masks)).mean(0))
    expected = multilabel_scores(torch.stack([i.tags for i in items]).numpy(), torch.stack(song_probs).numpy())
    assert result["song_ap"] == pytest.approx(expected["ap"])
    assert result["song_auc"] == pytest.approx(expected["auc"])


# ----------------------------------------------------------------------------------------- training


def shuffled(items: list[ProbeItem], seed: int) -> list[ProbeItem]:
    perm = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))
    return [ProbeItem(item.song_id, item.embeddings, items[int(j)].tags) for item, j in zip(items, perm, strict=True)]


def test_probe_learns_planted_tags_and_is_deterministic():
    train, valid, test = synthetic_songs(48, 0, "tr"), synthetic_songs(12, 1, "va"), synthetic_songs(24, 2, "te")
    result = run_probe(train, valid, test, RATE, PROBE, TRAIN)
    control = run_probe(shuffled(train, 0), shuffled(valid, 1), test, RATE, PROBE, TRAIN)
    assert result["per_seed"][0]["n_tags_scored"] == TAGS
    assert result["ap_mean"] > 0.9 and result["song_ap_mean"] > 0.9 and result["auc_mean"] > 0.9
    assert result["ap_mean"] > control["ap_mean"] + 0.25
    assert result["ap_std"] == 0.0 and result["config"]["train"]["seeds"] == (0,)

    a = train_probe(train[:16], [], RATE, PROBE, TRAIN, seed=3)
    b = train_probe(train[:16], [], RATE, PROBE, TRAIN, seed=3)
    c = train_probe(train[:16], [], RATE, PROBE, TRAIN, seed=4)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not all(torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())


def test_run_probe_spread_over_seeds():
    cfg = ProbeTrainConfig(steps=10, batch_size=8, lr=3e-3, window_seconds=1.0, seeds=(0, 1, 2), eval_every=5)
    result = run_probe(synthetic_songs(8, 0, "a"), synthetic_songs(4, 1, "b"), synthetic_songs(6, 2, "c"), RATE,
                       PROBE, cfg)
    assert [r["seed"] for r in result["per_seed"]] == [0, 1, 2]
    for key in ("ap", "auc", "song_ap", "song_auc"):
        values = [r[key] for r in result["per_seed"]]
        assert result[f"{key}_mean"] == pytest.approx(np.mean(values))
        assert result[f"{key}_std"] == pytest.approx(np.std(values, ddof=0))


def test_multilabel_scores_restricted_to_tags():
    """Issue 18: a tag left out (too few positive test songs) does not enter the means."""
    y_true = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 0], [0, 0, 1]])
    y_score = np.array([[0.9, 0.1, 0.2], [0.2, 0.3, 0.9], [0.8, 0.7, 0.4], [0.1, 0.2, 0.8]])
    full = multilabel_scores(y_true, y_score)
    only = multilabel_scores(y_true, y_score, tags=[0, 2])
    assert full["n_tags_scored"] == 3 and only["n_tags_scored"] == 2 and set(only["per_tag_ap"]) == {0, 2}
    assert only["ap"] == pytest.approx(np.mean([full["per_tag_ap"][0], full["per_tag_ap"][2]]))
    assert multilabel_scores(y_true, y_score, tags=list(range(3)))["ap"] == pytest.approx(full["ap"])
    assert np.isnan(multilabel_scores(y_true, y_score, tags=[])["ap"])
    with pytest.raises(ValueError, match="outside"):
        multilabel_scores(y_true, y_score, tags=[3])


def test_run_probe_test_tags_restrict_the_test_means_only():
    cfg = ProbeTrainConfig(steps=10, batch_size=8, lr=3e-3, window_seconds=1.0, seeds=(0,), eval_every=5)
    songs = synthetic_songs(8, 0, "a"), synthetic_songs(4, 1, "b"), synthetic_songs(6, 2, "c")
    full = run_probe(*songs, RATE, PROBE, cfg)
    some = run_probe(*songs, RATE, PROBE, cfg, test_tags=[1])
    assert set(some["per_seed"][0]["per_tag_ap"]) == {1} and some["per_seed"][0]["n_tags_scored"] == 1
    assert some["ap_mean"] == pytest.approx(full["per_seed"][0]["per_tag_ap"][1])  # same probe, one tag


def test_per_song_ap_ranks_each_songs_own_tags_over_the_chosen_columns():
    import math

    from duotok.eval.probe import per_song_ap

    y = np.array([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 0]])
    scores = np.array([[0.9, 0.8, 0.1, 0.2], [0.5, 0.5, 0.5, 0.5], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])
    ap = per_song_ap(y, scores)
    # song 0: positives ranked 1st and 3rd -> (1/1 + 2/3) / 2; song 3: its one positive ranked 2nd -> 1/2
    assert ap[0] == pytest.approx(5 / 6) and ap[3] == pytest.approx(0.5)
    assert math.isnan(ap[1]) and math.isnan(ap[2])        # no positive / no negative: undefined
    # restricted to columns 1-2, song 0 has no positive there; song 3's positive is ranked first
    sub = per_song_ap(y, scores, tags=[2, 1])
    assert math.isnan(sub[0]) and sub[3] == 1.0
