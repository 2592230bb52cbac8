"""The lyrics-learnability check of the quick path: can a small reader that is *not* Duo-Tok's encoder
learn this corpus's sung lyrics from the audio in a few hundred steps?

    python -m duotok.train.quick_lyrics --name vocals --source vocals --steps 600
    python -m duotok.train.quick_lyrics --name mixture --source mixture --steps 600

Why: at the ``default`` budget the stage-2 lyrics head emits only blanks (README, stage 2), from a
pretrained encoder and from an untrained one alike (``reports/experiments/quick_log.md``). This reader has
the same targets, the same characters, the same loss and the same token rate, but its own short path from
the audio, so it separates "the lyrics cannot be read from this audio in so few steps" from "Duo-Tok's
encoder path does not learn to read them in so few steps":

    log-mel (the ``audio`` section) → standardised per crop and mel channel → ``factor`` frames stacked
    (100 → 25 Hz) → linear → 2-layer bidirectional GRU → linear CTC layer over :class:`CharVocab`

``--source vocals`` reads the clean vocal stems, ``mixture`` the mixtures that the lyrics head reads.
Targets: :class:`duotok.data.targets.MultiTaskCollate` (stage 2's collate); loss:
:func:`duotok.models.heads.ctc_loss`; score: greedy CTC decoding and the corpus CER
(:func:`duotok.text.character_error_rate`) on one crop per held-out song of ``--eval-split`` (``valid``
by default: choices are made there). It is a diagnostic, not a pipeline stage: it writes only under
``--out`` (``<out>/<name>/{train_log.csv,health.json}`` and a row of ``<out>/log.csv``).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from duotok.audio.features import LogMel
from duotok.config import PROFILES
from duotok.data import StemCropDataset
from duotok.data.stems import SOURCES
from duotok.data.targets import MultiTaskCollate
from duotok.io import atomic_write, write_json_atomic
from duotok.models.heads import ctc_loss
from duotok.text import CharVocab, character_error_rate
from duotok.train.quick import EVAL_SPLITS, append_log, prepare_run

SOURCE_NAMES = ("mixture", "vocals")


class LyricsReader(nn.Module):
    """log-mel ``(B, n_mels, F)`` → CTC log-probabilities ``(B, F // factor, vocab_size)``."""

    def __init__(self, n_mels: int, vocab_size: int, factor: int = 4, hidden: int = 192, layers: int = 2):
        super().__init__()
        if factor < 1 or hidden < 1 or layers < 1:
            raise ValueError(f"factor, hidden and layers must be >= 1, got {factor}, {hidden}, {layers}")
        self.factor = factor
        self.inp = nn.Linear(n_mels * factor, hidden)
        self.gru = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, vocab_size)

    def frames(self, mel_frames: torch.Tensor) -> torch.Tensor:
        """Valid output frames for ``mel_frames`` valid log-mel frames (whole stacks only)."""
        return torch.div(mel_frames, self.factor, rounding_mode="floor")

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        b, m, f = logmel.shape
        t = f // self.factor
        # Standardised per crop and channel: no corpus statistics to fit, and loudness does not matter.
        x = (logmel - logmel.mean(dim=-1, keepdim=True)) / logmel.std(dim=-1, keepdim=True).clamp_min(1e-3)
        x = x[..., : t * self.factor].reshape(b, m, t, self.factor).permute(0, 2, 1, 3).reshape(b, t, m * self.factor)
        x, _ = self.gru(self.inp(x))
        return self.out(x).log_softmax(dim=-1)


def _audio(batch: dict[str, Any], source: str) -> torch.Tensor:
    if source == "mixture":
        return batch["mixture"]
    return batch["stems"][:, SOURCES.index("vocals")]


def _batch_inputs(batch: dict[str, Any], source: str, logmel: LogMel) -> tuple[torch.Tensor, torch.Tensor]:
    """The crop's log-mel and its valid mel frames (the padded tail of a short song excluded)."""
    mel = logmel(_audio(batch, source))
    valid = torch.as_tensor(batch["length"]).long() // logmel.hop_length + 1
    return mel, valid.clamp(max=mel.shape[-1])


@torch.no_grad()
def evaluate_cer(reader: LyricsReader, data: StemCropDataset, collate: MultiTaskCollate, source: str,
                 logmel: LogMel) -> dict[str, float]:
    """Greedy CTC on every held-out crop with sung text: corpus CER and the number of crops scored."""
    reader.eval()
    refs: list[str] = []
    hyps: list[str] = []
    for batch in DataLoader(data, batch_size=8, shuffle=False, collate_fn=collate):
        mel, valid = _batch_inputs(batch, source, logmel)
        log_probs = reader(mel)
        for i, text in enumerate(batch["lyrics_text"]):
            ref = collate.vocab.normalize(text)
            if bool(batch["has_lyrics"][i]) and ref:
                refs.append(ref)
                hyps += collate.vocab.greedy_ctc_decode(log_probs[i: i + 1], reader.frames(valid[i: i + 1]))
    reader.train()
    if not refs:
        raise ValueError("no held-out crop has sung text: nothing to score")
    return {"cer": character_error_rate(refs, hyps), "crops": float(len(refs))}


def run(name: str, out_dir: Path, data_dir: Path, *, source: str = "mixture", profile: str = "default",
        steps: int = 600, batch_size: int = 8, lr: float = 1e-3, hidden: int = 192, train_songs: int = 32,
        eval_songs: int = 8, segment_seconds: float = 10.0, eval_split: str = "valid", seed: int = 0,
        log_every: int = 25) -> dict[str, Any]:
    """Train the reader for ``steps`` steps and return its log row (also written to ``<out_dir>/log.csv``)."""
    if source not in SOURCE_NAMES:
        raise ValueError(f"source must be one of {SOURCE_NAMES}, got {source!r}")
    if eval_split not in EVAL_SPLITS:
        raise ValueError(f"eval_split must be one of {EVAL_SPLITS}, got {eval_split!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    params, run_dir, corpus = prepare_run(name, [], out_dir, data_dir, profile, train_songs, eval_songs)
    audio = params.section("audio")
    sr, factor = int(audio["sample_rate"]), int(params.section("pretrain")["model"]["downsample"])
    torch.manual_seed(seed)
    logmel = LogMel.from_params(audio)
    vocab = CharVocab()
    collate = MultiTaskCollate(vocab, sr, logmel.hop_length)
    reader = LyricsReader(logmel.n_mels, len(vocab), factor=factor, hidden=hidden)
    optimizer = torch.optim.Adam(reader.parameters(), lr=lr)
    train = StemCropDataset(corpus, "train", segment_seconds, sr, crops_per_song=4, seed=seed)
    held_out = StemCropDataset(corpus, eval_split, segment_seconds, sr, crops_per_song=1, seed=0, random=False)
    generator = torch.Generator().manual_seed(seed)
    curve: list[dict[str, float]] = []
    t0, step, epoch = time.time(), 0, 0
    while step < steps:
        train.set_epoch(epoch)
        steps_before = step
        for batch in DataLoader(train, batch_size=batch_size, shuffle=True, collate_fn=collate,
                                generator=generator, drop_last=True):
            keep = batch["has_lyrics"].to(torch.bool)
            if not bool(keep.any()):
                continue
            mel, valid = _batch_inputs(batch, source, logmel)
            log_probs = reader(mel)
            loss = ctc_loss(log_probs[keep], reader.frames(valid)[keep], batch["lyrics"][keep],
                            batch["lyrics_lengths"][keep])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(reader.parameters(), 5.0)
            optimizer.step()
            step += 1
            if step % log_every == 0 or step == steps:
                curve.append({"step": step, "loss": loss.item(), "seconds": round(time.time() - t0, 1)})
                print(f"[quick_lyrics] step {step}/{steps} ctc={curve[-1]['loss']:.3f}", flush=True)
            if step >= steps:
                break
        if step == steps_before:
            raise ValueError(f"{corpus}: no training crop has sung text (syllable timings): nothing to learn")
        epoch += 1
    seconds = time.time() - t0
    with atomic_write(run_dir / "train_log.csv") as fh:
        writer = csv.DictWriter(fh, fieldnames=["step", "loss", "seconds"])
        writer.writeheader()
        writer.writerows(curve)
    scores = evaluate_cer(reader, held_out, collate, source, logmel)
    row = {"name": name, "source": source, "steps": steps, "lr": lr, "hidden": hidden, "train_songs": train_songs,
           "eval_songs": eval_songs, "eval_split": eval_split, "train_seconds": round(seconds, 1),
           "final_ctc": curve[-1]["loss"] if curve else None, "cer": scores["cer"], "crops": scores["crops"]}
    write_json_atomic(run_dir / "health.json", row)
    append_log(Path(out_dir) / "log.csv", row)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m duotok.train.quick_lyrics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the experiment's folder and log name")
    parser.add_argument("--source", choices=SOURCE_NAMES, default="mixture")
    parser.add_argument("--profile", default="default", choices=PROFILES)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=192, help="GRU units per direction")
    parser.add_argument("--train-songs", type=int, default=32)
    parser.add_argument("--eval-songs", type=int, default=8)
    parser.add_argument("--segment-seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--out", default="runs/quick_lyrics", help="where runs and log.csv go (git-ignored)")
    parser.add_argument("--eval-split", choices=EVAL_SPLITS, default="valid")
    args = parser.parse_args(argv)
    row = run(args.name, Path(args.out), Path(args.data_dir), source=args.source, profile=args.profile,
              steps=args.steps, batch_size=args.batch_size, lr=args.lr, hidden=args.hidden,
              train_songs=args.train_songs, eval_songs=args.eval_songs, segment_seconds=args.segment_seconds,
              eval_split=args.eval_split, seed=args.seed)
    print(f"[{row['name']}] {row['source']}, {row['steps']} steps, {row['train_seconds']:.0f} s: "
          f"final CTC {row['final_ctc']:.3f}, CER {row['cer']:.3f} on {row['crops']:.0f} {row['eval_split']} crops")
    return 0


if __name__ == "__main__":
    sys.exit(main())
