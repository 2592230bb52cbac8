import pytest
import torch

from duotok.eval.corpus_tokens import encode_corpus, load_corpus_tokens, save_corpus_tokens, split_ids
from duotok.eval.probe_codecs import multi_hot, probe_items


class _Codec:
    """Dual-track fake: ids = rounded stem energy per 640-sample frame (so oracle ≠ separated)."""

    name = "fake"
    sample_rate = 16000
    frame_rate = 25.0
    codebook_sizes = (16, 16)
    streams = {"vocal": (0,), "accompaniment": (1,)}

    def __init__(self, book: str = "a"):
        self.book = book

    def fingerprint(self) -> str:
        return self.book

    def _ids(self, x: torch.Tensor) -> torch.Tensor:
        n = -(-x.numel() // 640)
        frames = torch.nn.functional.pad(x, (0, n * 640 - x.numel())).view(n, 640)
        return (frames.abs().mean(dim=1) * 100).long().clamp(0, 15)

    def encode_stems(self, vocal, accompaniment):
        return torch.stack([self._ids(vocal), self._ids(accompaniment)])

    def encode(self, mixture):
        return torch.stack([self._ids(mixture), self._ids(mixture * 0)])

    def embed(self, ids):
        return torch.nn.functional.one_hot(ids.T, 16).flatten(1).float()


def test_encode_save_load_and_fingerprint(duosynth_root, tmp_path):
    codec = _Codec()
    tokens = encode_corpus(codec, duosynth_root, progress=False)
    assert {s["split"] for s in tokens["songs"]} == {"train", "valid", "test"}
    song = tokens["songs"][0]
    assert song["ids"].shape[0] == 2 and song["ids"].dtype == torch.long
    separated = encode_corpus(codec, duosynth_root, source="separated", progress=False)
    assert not torch.equal(separated["songs"][0]["ids"], song["ids"])
    path = save_corpus_tokens(tokens, tmp_path / "t" / "fake.pt")
    assert [p.name for p in path.parent.iterdir()] == ["fake.pt"]          # no temp file left behind
    loaded = load_corpus_tokens(path, codec)
    assert len(split_ids(loaded, "train")) == 2
    with pytest.raises(ValueError, match="re-tokenize"):
        load_corpus_tokens(path, _Codec("b"))
    with pytest.raises(ValueError, match="source"):
        encode_corpus(codec, duosynth_root, source="magic", progress=False)


def test_probe_items_need_tags(duosynth_root):
    codec = _Codec()
    tokens = encode_corpus(codec, duosynth_root, progress=False)
    with pytest.raises(ValueError, match="carry no tags"):
        probe_items(codec, tokens, "train")
    for s in tokens["songs"]:
        s["tags"] = ["voice_tenor", "drums_rock"]
    items = probe_items(codec, tokens, "test")
    assert items[0].embeddings.shape[-1] == 32 and items[0].tags.sum() == 2
    assert multi_hot(["voice_soprano"])[1] == 1.0
    with pytest.raises(ValueError, match="vocabulary"):
        multi_hot(["kazoo"])
