"""The quick experiment path: stages 1-3 on a subset of the corpus in minutes, then the health numbers
that say whether the tokenizer does its job — so a recipe idea is judged in minutes, not hours.

    python -m duotok.train.quick --name data_init -S quantize.model.codebook_init=data
    python -m duotok.train.quick --name ctc_w1 --reuse-stage1 runs/quick/base/pretrain/model \\
        -S finetune.model.heads.lyrics_weight=1.0 --steps 0 200 150

Each run trains from the resolved ``default`` profile (or ``--profile``) with its ``-S`` overrides and
shorter step counts, on ``--train-songs`` / ``--eval-songs`` songs of the corpus, into
``<out>/<name>/``; it prints and appends one row to ``<out>/log.csv``: the overrides, the wall time
and, on one crop per held-out song of ``--eval-split`` (``valid`` by default: choices are made there),

* stage 1: masked-prediction accuracy, and the features' effective rank and log-mel read-out R² for the
  lower and upper stacks (:mod:`duotok.eval.feature_health`);
* stage 2: lyrics CER (greedy CTC) and, when stage 2 trained in the run, ``s2/valid_lyrics_ctc``: the
  lyrics head's CTC per character at stage 2's last evaluation (its ``valid_log.csv``: the valid split,
  noise off; on the unigram plateau the CER is 1.00 whatever happens beneath it, this still moves, and it
  is what the lyrics reader reports as held-out CTC), chroma accuracy, mask-head SDR (vocals median) next
  to the oracle ratio mask's;
* stage 3: codebook usage and code perplexity per track, token chroma accuracy, vocal CER.

``--reuse-stage1`` / ``--reuse-stage2`` skip a stage (step 0 of ``--steps`` does too when a reuse is
given), so a stage-3 idea costs only stage 3. Nothing here is a pipeline stage: it never touches
``models/`` or ``reports/``.

Judge a stage-2 or stage-3 idea on a stage 1 trained as the pipeline trains it (``--reuse-stage1
models/pretrain/model``): a stage 1 of a few steps is an untrained encoder, and a stage-2 recipe tuned on
one did not carry over to the ``default`` stage 1, whose features have collapsed
(``reports/experiments/quick_log.md``, 2026-12-04).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from duotok.config import PROFILES, Params, deep_merge
from duotok.data import StemCropDataset
from duotok.io import write_json_atomic

HEALTH_KEYS = (
    "s1/masked_accuracy", "s2/cer", "s2/valid_lyrics_ctc", "s2/valid_lyrics_ctc_noised", "s2/chroma_accuracy",
    "s2/vocals_sdr",
    "s2/oracle_vocals_sdr",
    "s3/vocal/usage", "s3/vocal/perplexity", "s3/accompaniment/usage", "s3/accompaniment/perplexity",
    "s3/vocal/chroma_accuracy", "s3/accompaniment/chroma_accuracy", "s3/vocal/cer",
)


#: ``3e-3``, ``1E5``: numbers that YAML 1.1 (PyYAML) reads as strings, because its float pattern wants a dot
#: and a signed exponent (``3.0e-3``). A learning rate typed on the command line is far more often meant
#: as a number, and the typed config would reject the string anyway.
_BARE_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_override(text: str) -> dict[str, Any]:
    """``section.key.sub=value`` → ``{section: {key: {sub: value}}}``; the value is parsed as YAML, except
    that ``3e-3``-style numbers are floats (:data:`_BARE_EXPONENT`)."""
    path, sep, raw = text.partition("=")
    keys = [k for k in path.strip().split(".") if k]
    if not sep or len(keys) < 2:
        raise ValueError(f"override {text!r}: expected section.key=value")
    value: Any = yaml.safe_load(raw)
    if isinstance(value, str) and _BARE_EXPONENT.fullmatch(value.strip()):
        value = float(value)
    for key in reversed(keys):
        value = {key: value}
    return value


def subset_corpus(root: Path, out: Path, train_songs: int, eval_songs: int) -> Path:
    """A corpus folder at ``out`` holding the first ``train_songs`` train songs and ``eval_songs`` valid
    and test songs of ``root`` (by id), linked, not copied."""
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    wanted = {"train": train_songs, "valid": eval_songs, "test": eval_songs}
    chosen = []
    for split, n in wanted.items():
        songs = sorted((s for s in manifest["songs"] if s["split"] == split), key=lambda s: s["id"])
        if len(songs) < n:
            raise ValueError(f"{root}: {len(songs)} {split} songs, fewer than the {n} asked for")
        chosen += songs[:n]
    (out / "songs").mkdir(parents=True, exist_ok=True)
    for song in chosen:
        link = out / "songs" / song["id"]
        if not link.exists():
            link.symlink_to((root / "songs" / song["id"]).resolve(), target_is_directory=True)
    write_json_atomic(out / "manifest.json", {**manifest, "songs": chosen})
    return out


def prepare_run(name: str, overrides: list[str], out_dir: Path, data_dir: Path, profile: str, train_songs: int,
                eval_songs: int) -> tuple[Params, Path, Path]:
    """What every quick experiment starts with: the profile's params with the ``-S`` overrides, the run's
    folder ``<out_dir>/<name>`` and its linked subset corpus. Paths are made absolute because the stage
    runners resolve relative ones against the repository root."""
    layers: dict[str, Any] = {}
    for text in overrides:
        layers = deep_merge(layers, parse_override(text))
    params = Params.load(profile).with_overrides(layers) if layers else Params.load(profile)
    out_dir, data_dir = Path(out_dir).resolve(), Path(data_dir).resolve()
    run_dir = out_dir / name
    return params, run_dir, subset_corpus(data_dir, run_dir / "subset", train_songs, eval_songs)


EVAL_SPLITS = ("valid", "test")


def _held_out(root: Path, params: Params, section: str, split: str) -> StemCropDataset:
    sr = params.section("audio")["sample_rate"]
    seconds = float(params.section(section)["data"]["segment_seconds"])
    return StemCropDataset(root, split, seconds, sr, crops_per_song=1, seed=0, random=False)


def health(stage_dirs: dict[str, Path], corpus: Path, params: Params, split: str = "valid") -> dict[str, float]:
    """The health numbers of whatever stages ``stage_dirs`` holds (``{"pretrain"|"finetune"|"quantize": dir}``),
    on one crop per song of ``split``: ``valid`` by default, because recipe choices are made on these
    numbers and no choice may be made on the test split."""
    if split not in EVAL_SPLITS:
        raise ValueError(f"split must be one of {EVAL_SPLITS}, got {split!r}")
    from duotok.eval.heads import dualtrack_metrics, multitask_metrics
    from duotok.eval.ssl import masked_prediction
    from duotok.models.bestrq import BestRQModel
    from duotok.models.dualtrack import DualTrackModel
    from duotok.models.multitask import MultiTaskModel

    out: dict[str, float] = {}
    torch.manual_seed(0)
    with torch.no_grad():
        if "pretrain" in stage_dirs:
            model = BestRQModel.from_pretrained(stage_dirs["pretrain"])
            held_out = _held_out(corpus, params, "pretrain", split)
            out["s1/masked_accuracy"] = masked_prediction(model, held_out)["accuracy"]
            out.update(stage1_feature_health(model, _held_out(corpus, params, "pretrain", "train"), held_out))
        if "finetune" in stage_dirs:
            model = MultiTaskModel.from_pretrained(stage_dirs["finetune"])
            crops = _held_out(corpus, params, "finetune", split)
            m = multitask_metrics(model, crops, sdr_items=4)
            ctc = lyrics_ctc_clean_and_noised(model, crops)
            out["s2/valid_lyrics_ctc_noised"] = ctc["noised"]
            out.update({"s2/cer": m.get("cer"), "s2/chroma_accuracy": m.get("chroma_accuracy"),
                        "s2/vocals_sdr": m.get("mask/vocals/SDR_median"),
                        "s2/oracle_vocals_sdr": m.get("oracle/vocals/SDR_median")})
        if "quantize" in stage_dirs:
            model = DualTrackModel.from_pretrained(stage_dirs["quantize"])
            m, _ = dualtrack_metrics(model, _held_out(corpus, params, "quantize", split))
            for key in ("vocal/usage", "vocal/perplexity", "accompaniment/usage", "accompaniment/perplexity",
                        "vocal/chroma_accuracy", "accompaniment/chroma_accuracy", "vocal/cer"):
                out[f"s3/{key}"] = m.get(key)
    return {k: (None if v is None else float(v)) for k, v in out.items()}


def stage1_feature_health(model: torch.nn.Module, fit: StemCropDataset, held_out: StemCropDataset,
                          max_fit_clips: int = 16) -> dict[str, float]:
    """``s1/{lower,upper}_{effective_rank,mel_readout_r2}`` of a stage-1 model
    (:func:`duotok.eval.feature_health.encoder_feature_health`): the read-out is fitted on the first
    ``max_fit_clips`` crops of ``fit`` (training songs) and scored on ``held_out``. Why here: masked-prediction
    accuracy stays near 3 % at the ``default`` budget and does not show that the 1200-step encoder's
    features had collapsed to an effective rank of ≈ 7 (an untrained one: ≈ 50) and kept less of the
    log-mel than an untrained one (``reports/experiments/quick_log.md``, 2026-12-04)."""
    from duotok.eval.feature_health import encoder_feature_health

    def clips(data: StemCropDataset, limit: int) -> list[torch.Tensor]:
        return [data[i]["mixture"] for i in range(min(limit, len(data)))]

    health_by_stack = encoder_feature_health(model, clips(fit, max_fit_clips), clips(held_out, len(held_out)))
    return {f"s1/{stack}_{key}": value for stack, values in health_by_stack.items()
            for key, value in values.items() if key != "top1_share"}


def run(name: str, overrides: list[str], out_dir: Path, data_dir: Path, profile: str = "default",
        steps: tuple[int, int, int] = (150, 120, 120), train_songs: int = 32, eval_songs: int = 8,
        reuse_stage1: Path | None = None, reuse_stage2: Path | None = None,
        eval_split: str = "valid") -> dict[str, Any]:
    """Train stages 1-3 (or the ones not reused) of one experiment and return its log row."""
    from duotok.train import finetune, pretrain, quantize

    params, run_dir, corpus = prepare_run(name, overrides, out_dir, data_dir, profile, train_songs, eval_songs)
    out_dir, data_dir = run_dir.parent, Path(data_dir).resolve()
    t0 = time.time()
    dirs: dict[str, Path] = {}
    stage1 = reuse_stage1
    if stage1 is None:
        pretrain.run(params, run_dir / "pretrain", corpus, steps=steps[0])
        stage1 = run_dir / "pretrain" / "model"
    dirs["pretrain"] = stage1
    stage2 = reuse_stage2
    if stage2 is None:
        finetune.run(params, run_dir / "finetune", corpus, init=stage1, steps=steps[1])
        stage2 = run_dir / "finetune" / "model"
    dirs["finetune"] = stage2
    quantize.run(params, run_dir / "quantize", corpus, init=stage2, steps=steps[2],
                 tokenizer_dir=run_dir / "tokenizer")
    dirs["quantize"] = run_dir / "quantize" / "model"
    seconds = time.time() - t0
    trained_stage2 = {} if reuse_stage2 is not None else {
        "s2/valid_lyrics_ctc": last_logged(run_dir / "finetune" / "valid_log.csv", "lyrics_loss")}
    row = {"name": name, "profile": profile, "overrides": " ".join(overrides), "steps": " ".join(map(str, steps)),
           "train_songs": train_songs, "eval_songs": eval_songs, "reuse_stage1": str(reuse_stage1 or ""),
           "reuse_stage2": str(reuse_stage2 or ""), "train_seconds": round(seconds, 1), "eval_split": eval_split,
           **health(dirs, corpus, params, eval_split), **trained_stage2}
    write_json_atomic(run_dir / "health.json", row)
    append_log(out_dir / "log.csv", row)
    return row


def lyrics_ctc_clean_and_noised(model: torch.nn.Module, data: StemCropDataset, batch_size: int = 8,
                                seed: int = 0) -> dict[str, float | None]:
    """A stage-2 model's lyrics CTC per character on ``data``, ``{"clean": ..., "noised": ...}``: with the
    bottleneck noise off, as the ``Trainer`` evaluates and the tokenizer runs, and on, as it trained (its own
    mode and probability; a warm-up counted as finished; the rest of the model in eval mode, noise drawn
    from ``seed``). Why both: a model trained with replacement noise can be off its training distribution
    on clean input — on the quick path a ``replace``-trained stage 2 read 3.10 nats per character clean
    and 2.78 with half its frames replaced (``reports/experiments/quick_log.md``, 2026-12-03) — so the clean
    number alone can show a plateau that is a mismatch. ``None`` where no crop has lyrics."""
    from torch.utils.data import DataLoader

    from duotok.data.targets import MultiTaskCollate
    from duotok.text import CharVocab
    from duotok.train.finetune import finetune_loss

    collate = MultiTaskCollate(CharVocab(), model.config.mel.sample_rate, model.config.mel.hop_length)
    was_training, step = model.training, model.noise.step
    out: dict[str, float | None] = {}
    try:
        for label in ("clean", "noised"):
            model.eval()
            if label == "noised":
                model.noise.train()
                model.noise.finish_warmup()
            torch.manual_seed(seed)
            values = []
            with torch.no_grad():
                for batch in DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate):
                    _, metrics = finetune_loss(model, batch)
                    if "lyrics_loss" in metrics:
                        values.append(float(metrics["lyrics_loss"]))
            out[label] = sum(values) / len(values) if values else None
    finally:
        model.train(was_training)
        model.noise.step = step
    return out


def last_logged(path: Path, column: str = "loss") -> float | None:
    """The last value of ``column`` in a ``Trainer`` log (``train_log.csv`` / ``valid_log.csv``): from the
    file, so a rerun that only resumes a finished run reports it too. Rows without it are passed over (the
    log's columns grow as metrics appear: a batch without lyrics leaves ``lyrics_loss`` empty); ``None``
    when the file or every value is missing."""
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as fh:
        values = [r[column] for r in csv.DictReader(fh) if r.get(column) not in (None, "")]
    return float(values[-1]) if values else None


def append_log(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` to the experiment log (columns grow as needed; earlier rows are kept)."""
    rows: list[dict[str, Any]] = []
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    rows.append({k: ("" if v is None else (f"{v:.4g}" if isinstance(v, float) else v)) for k, v in row.items()})
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def format_row(row: dict[str, Any]) -> str:
    shown = [f"{k}={row[k]:.3g}" for k in HEALTH_KEYS if row.get(k) is not None]
    return f"[{row['name']}] {row['train_seconds']:.0f} s; " + " ".join(shown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m duotok.train.quick", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the experiment's folder and log name")
    parser.add_argument("-S", "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a params override on top of the profile (repeatable; value parsed as YAML)")
    parser.add_argument("--profile", default="default", choices=PROFILES)
    parser.add_argument("--steps", nargs=3, type=int, default=(150, 120, 120), metavar=("S1", "S2", "S3"))
    parser.add_argument("--train-songs", type=int, default=32)
    parser.add_argument("--eval-songs", type=int, default=8)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--out", default="runs/quick", help="where runs and log.csv go (git-ignored)")
    parser.add_argument("--reuse-stage1", type=Path, help="a stage-1 model folder to start stage 2 from")
    parser.add_argument("--reuse-stage2", type=Path, help="a stage-2 model folder to start stage 3 from")
    parser.add_argument("--eval-split", choices=EVAL_SPLITS, default="valid",
                        help="where the health numbers are measured (choices are made on valid)")
    args = parser.parse_args(argv)
    row = run(args.name, args.set, Path(args.out), Path(args.data_dir), args.profile, tuple(args.steps),
              args.train_songs, args.eval_songs, args.reuse_stage1, args.reuse_stage2, args.eval_split)
    print(format_row(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
