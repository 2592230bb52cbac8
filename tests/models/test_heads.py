"""Stage-2 heads: shapes, masked losses, mask normalisation and a trainable CTC head."""

from __future__ import annotations

import pytest
import torch

from duotok.models.heads import (
    ChromaHead,
    LyricsHead,
    MaskHead,
    MelHead,
    chroma_loss,
    chroma_metrics,
    ctc_loss,
    mask_loss,
    mel_l1_loss,
    separate,
)

DIM = 16


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("frames", [1, 6, 11])
def test_head_shapes(frames):
    x = torch.randn(2, frames, DIM)
    assert ChromaHead(DIM)(x).shape == (2, 12, 4 * frames)
    assert MelHead(DIM, n_mels=20)(x).shape == (2, 20, 4 * frames)
    assert MaskHead(DIM, n_sources=3, n_freq=9)(x).shape == (2, 3, 9, 4 * frames)
    assert LyricsHead(DIM, vocab_size=7)(x).shape == (2, frames, 7)


def test_masks_sum_to_one():
    masks = MaskHead(DIM, n_sources=4, n_freq=9)(torch.randn(2, 5, DIM))
    assert (masks >= 0).all()
    torch.testing.assert_close(masks.sum(dim=1), torch.ones(2, 9, 20))


def test_mask_loss_is_zero_for_oracle_masks_and_ignores_padding():
    stems = torch.rand(2, 4, 9, 10) + 0.1
    mixture = stems.sum(dim=1)
    oracle = stems / mixture[:, None]
    assert mask_loss(oracle, mixture, stems).item() == pytest.approx(0.0, abs=1e-6)
    frame_mask = torch.ones(2, 10, dtype=torch.bool)
    frame_mask[:, 7:] = False
    wrong = oracle.clone()
    wrong[..., 7:] = 0.25
    longer = torch.cat([wrong, torch.full((2, 4, 9, 3), 0.25)], dim=-1)  # 4 * T25 > T100: cropped
    assert mask_loss(longer, mixture, stems, frame_mask).item() == pytest.approx(0.0, abs=1e-6)
    assert mask_loss(longer, mixture, stems).item() > 0.01


def test_mask_loss_is_the_mean_abs_error_over_valid_frames():
    """Against the definition computed element by element: the frame weights are applied to each
    frame's sum over stems and bins, which must give the same mean."""
    masks, stems = torch.rand(3, 4, 9, 12), torch.rand(3, 4, 9, 10)
    mixture, frame_mask = torch.rand(3, 9, 10) + 0.5, torch.rand(3, 10) > 0.3
    error = (masks[..., :10] * mixture[:, None] - stems).abs()
    expected = error.permute(0, 3, 1, 2)[frame_mask].mean()
    assert mask_loss(masks, mixture, stems, frame_mask).item() == pytest.approx(expected.item(), rel=1e-5)
    assert mask_loss(masks, mixture, stems).item() == pytest.approx(error.mean().item(), rel=1e-5)


def test_separate_with_uniform_masks_splits_the_mixture():
    n_fft, hop = 64, 16
    wave = torch.randn(1, 400)
    masks = torch.full((1, 2, n_fft // 2 + 1, 20), 0.5)  # 20 < 400 // 16 + 1 frames: padded
    stems = separate(masks, wave, n_fft, hop, n_fft)
    assert stems.shape == (1, 2, 400)
    torch.testing.assert_close(stems.sum(dim=1), wave, atol=1e-4, rtol=0)


def test_chroma_loss_ignores_padded_frames_and_metrics():
    target = torch.zeros(1, 12, 8)
    target[0, 9, :] = 1.0  # A everywhere
    logits = torch.full((1, 12, 8), -6.0)
    logits[0, 9, :6] = 6.0
    logits[0, 0, 6:] = 6.0  # the padded frames are wrong
    frame_mask = torch.tensor([[True] * 6 + [False] * 2])
    assert chroma_loss(logits, target, frame_mask).item() < 0.01
    assert chroma_loss(logits, target).item() > 0.2  # 2 frames x 2 classes x 6 nats / 96
    metrics = chroma_metrics(logits, target, frame_mask)
    assert metrics["accuracy"] == 1.0 and metrics["cosine"] > 0.99
    assert chroma_metrics(logits, target)["accuracy"] == pytest.approx(0.75)


def test_mel_l1_loss_masks_and_crops():
    target = torch.zeros(2, 5, 6)
    pred = torch.zeros(2, 5, 8)
    pred[..., 4:] = 1.0
    mask = torch.tensor([[True] * 4 + [False] * 2] * 2)
    assert mel_l1_loss(pred, target, mask).item() == 0.0
    assert mel_l1_loss(pred, target).item() == pytest.approx(2 / 6)
    with pytest.raises(ValueError):
        mel_l1_loss(pred[..., :3], target)


def test_ctc_loss_is_finite_and_decreases():
    head = LyricsHead(DIM, vocab_size=5)
    x = torch.randn(2, 12, DIM)
    targets = torch.tensor([[1, 2, 3], [4, 4, 0]])
    target_lengths = torch.tensor([3, 2])
    frame_lengths = torch.tensor([12, 9])
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    losses = []
    for _ in range(15):
        loss = ctc_loss(head(x), frame_lengths, targets, target_lengths)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    # An infeasible alignment (more characters than frames) gives zero, not inf.
    impossible = ctc_loss(head(x[:, :2]), torch.tensor([2, 2]), targets, torch.tensor([3, 3]))
    assert torch.isfinite(impossible)


def test_an_empty_lyrics_window_is_normalised_per_frame_not_per_character():
    """Issue 17: torch's "mean" divides an empty target's all-blank loss by max(0, 1), so one window
    without lyrics weighed as much as 250 characters. Here it is a per-frame mean, like a sung
    window's per-character one — and still finite and pulling toward blank."""
    vocab = 5
    log_probs = torch.randn(2, 40, vocab).log_softmax(-1)
    frames = torch.tensor([40, 40])
    targets = torch.tensor([[1, 2, 3], [0, 0, 0]])
    lengths = torch.tensor([3, 0])
    both = ctc_loss(log_probs, frames, targets, lengths)
    sung = ctc_loss(log_probs[:1], frames[:1], targets[:1], lengths[:1])
    empty_sum = -log_probs[1, :, 0].sum()            # an all-blank path: the only alignment of ""
    assert both.item() == pytest.approx((sung.item() + empty_sum.item() / 40) / 2, rel=1e-5)
    assert ctc_loss(log_probs[1:], frames[1:], targets[1:], lengths[1:]).item() == pytest.approx(
        empty_sum.item() / 40, rel=1e-5)


def test_a_ctc_head_learns_to_emit_on_a_toy_alignment_task():
    """The lyrics head must leave the all-blank solution: frames carry one-hot "phones" held for
    several frames with silent gaps (like sung syllables); after training, greedy decoding of
    held-out sequences recovers most characters."""
    from duotok.text import CharVocab, character_error_rate

    g = torch.Generator().manual_seed(0)
    vocab = CharVocab()
    letters = "aeiou"

    def example():
        n = int(torch.randint(2, 5, (1,), generator=g))
        chars = [int(torch.randint(0, 5, (1,), generator=g)) for _ in range(n)]
        x = [torch.zeros(int(torch.randint(1, 4, (1,), generator=g)), DIM)]
        for c in chars:
            frame = torch.zeros(DIM)
            frame[c] = 1.0
            x += [frame.repeat(int(torch.randint(3, 7, (1,), generator=g)), 1),
                  torch.zeros(int(torch.randint(1, 4, (1,), generator=g)), DIM)]
        x = torch.cat(x)
        return x + 0.1 * torch.randn(x.shape, generator=g), "".join(letters[c] for c in chars)

    class Context(torch.nn.Module):  # a little temporal context, as the encoder gives the real head
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(DIM, 2 * DIM, kernel_size=5, padding=2)

        def forward(self, x):
            return torch.nn.functional.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)

    head = Context()
    lyrics = LyricsHead(2 * DIM, len(CharVocab()))
    params = list(head.parameters()) + list(lyrics.parameters())
    opt = torch.optim.Adam(params, lr=0.02)
    for _ in range(400):
        xs, texts = zip(*(example() for _ in range(8)), strict=True)
        frames = torch.tensor([len(x) for x in xs])
        x = torch.nn.utils.rnn.pad_sequence(list(xs), batch_first=True)
        targets, lengths = vocab.encode_batch(list(texts))
        loss = ctc_loss(lyrics(head(x)), frames, targets, lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()
    xs, texts = zip(*(example() for _ in range(16)), strict=True)
    with torch.no_grad():
        hyps = [vocab.greedy_ctc_decode(lyrics(head(x[None])))[0] for x in xs]
    assert sum(map(bool, hyps)) >= 14, f"the head still emits (mostly) blanks: {hyps}"
    assert character_error_rate(list(texts), hyps) < 0.2


def test_a_spectrum_mask_head_reads_the_mixture_and_still_sums_to_one():
    head = MaskHead(DIM, n_sources=3, n_freq=9, spectrum=True)
    x = torch.randn(2, 5, DIM)
    mag = torch.rand(2, 9, 18)                    # the STFT may have fewer frames than 4 x 5 = 20
    masks = head(x, mag)
    assert masks.shape == (2, 3, 9, 20)
    assert torch.allclose(masks.sum(dim=1), torch.ones(2, 9, 20), atol=1e-5)
    other = head(x, mag.flip(1))
    assert not torch.allclose(masks, other), "the masks depend on the mixture spectrum"
    assert torch.allclose(head(x, 3.0 * mag), masks, atol=1e-4), "and not on its overall level"
    with pytest.raises(ValueError, match="mixture magnitude"):
        head(x)


def test_a_lyrics_head_with_context_reads_a_sequence_that_a_linear_head_cannot():
    """``context`` > 0 puts a BiGRU before the projection. Toy task: the character to emit is the
    one-hot *two frames earlier* (the current frame holds only noise), so a per-frame linear head is
    at chance while the context head learns it; the output stays float32 log-probabilities."""
    from duotok.text import CharVocab

    g = torch.Generator().manual_seed(0)
    vocab = CharVocab()
    x = torch.randn(16, 12, DIM, generator=g) * 0.1
    labels = torch.randint(1, 6, (16, 12), generator=g)
    x[:, :-2][torch.nn.functional.one_hot(labels[:, 2:], DIM).bool()] += 1.0   # frame t-2 names label t
    heads = {c: LyricsHead(DIM, len(vocab), context=c) for c in (0, 16)}
    assert heads[0].context is None and isinstance(heads[16].context, torch.nn.GRU)
    accuracy = {}
    for c, head in heads.items():
        torch.manual_seed(0)
        opt = torch.optim.Adam(head.parameters(), lr=0.02)
        for _ in range(150):
            loss = torch.nn.functional.nll_loss(head(x)[:, 2:].reshape(-1, len(vocab)), labels[:, 2:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = head(x)
        assert out.dtype == torch.float32 and torch.allclose(out.exp().sum(-1), torch.ones(16, 12), atol=1e-4)
        accuracy[c] = (out[:, 2:].argmax(-1) == labels[:, 2:]).float().mean().item()
    assert accuracy[16] > 0.9 and accuracy[0] < 0.5, accuracy
    with pytest.raises(ValueError, match="context"):
        LyricsHead(DIM, len(vocab), context=-1)
