"""The tagging probe on every codec of the comparison: corpus tokens → the codec's quantized
embeddings → :func:`duotok.eval.probe.run_probe`, with the same probe, steps and seeds for all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from duotok.codecs.base import Codec
from duotok.data.synth.tags import TAG_VOCABULARY
from duotok.eval.probe import ProbeItem, ProbeTrainConfig, run_probe
from duotok.eval.probe_net import ProbeConfig
from duotok.reporting.verdicts import tags_with_enough_positives


def multi_hot(tags: Sequence[str], vocabulary: Sequence[str] = TAG_VOCABULARY) -> torch.Tensor:
    unknown = [t for t in tags if t not in vocabulary]
    if unknown:
        raise ValueError(f"tags outside the vocabulary: {unknown}")
    out = torch.zeros(len(vocabulary))
    for t in tags:
        out[vocabulary.index(t)] = 1.0
    return out


def probe_items(codec: Codec, tokens: dict[str, Any], split: str,
                vocabulary: Sequence[str] = TAG_VOCABULARY) -> list[ProbeItem]:
    """One :class:`ProbeItem` per song of ``split``: ``codec.embed(ids)`` and the song's tags."""
    items = []
    for song in tokens["songs"]:
        if song["split"] == split:
            items.append(ProbeItem(song["id"], codec.embed(song["ids"]).float(), multi_hot(song["tags"], vocabulary)))
    if not items:
        raise ValueError(f"{tokens['codec']}: no songs in split {split!r}")
    if not any(bool(i.tags.any()) for i in items):
        raise ValueError(f"{tokens['codec']}: the {split} songs carry no tags (the probe needs a tagged corpus)")
    return items


def scored_tags(items: Sequence[ProbeItem], vocabulary: Sequence[str],
                min_positive: int | None) -> tuple[list[str], dict[str, str]]:
    """Which tags enter the test means: those with ``>= min_positive`` positive and >= 1 negative test
    songs (:func:`~duotok.reporting.verdicts.tags_with_enough_positives`), and ``{dropped tag: reason}``.
    ``min_positive=None`` keeps every tag (the means then skip only tags without both classes)."""
    if min_positive is None:
        return list(vocabulary), {}
    labels = {tag: [int(item.tags[k] > 0.5) for item in items] for k, tag in enumerate(vocabulary)}
    kept, dropped = tags_with_enough_positives(labels, int(min_positive))
    return [str(t) for t in kept], {str(t): reason for t, reason in dropped.items()}


def probe_codec(codec: Codec, tokens: dict[str, Any], model: dict[str, Any], train: dict[str, Any],
                vocabulary: Sequence[str] = TAG_VOCABULARY,
                min_positive_test_songs: int | None = None) -> dict[str, Any]:
    """Probe results (per seed, mean and spread) of one codec; params from ``params.yaml: probe``.

    With ``min_positive_test_songs`` the test means cover only the tags with that many positive test
    songs (:func:`scored_tags`); the result names them (``tags_kept``) and the dropped ones with the
    reason (``tags_dropped``), so no tag is lost silently."""
    splits = {s: probe_items(codec, tokens, s, vocabulary) for s in ("train", "valid", "test")}
    cfg = ProbeTrainConfig(**{**train, "seeds": tuple(train["seeds"])})
    probe_cfg = ProbeConfig(in_dim=int(splits["train"][0].embeddings.shape[-1]), n_tags=len(vocabulary), **model)
    kept, dropped = scored_tags(splits["test"], vocabulary, min_positive_test_songs)
    result = run_probe(splits["train"], splits["valid"], splits["test"], float(tokens["frame_rate"]), probe_cfg,
                       cfg, test_tags=[list(vocabulary).index(t) for t in kept])
    return {**result, "min_positive_test_songs": min_positive_test_songs, "tags_kept": kept,
            "tags_dropped": dropped}
