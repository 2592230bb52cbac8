"""Train one ablation variant end to end: stage 2 (if it has its own), stage 3, and its tokenizer.

    python -m duotok.ablations.train --variant noise_off [--profile P] [--out DIR] [--data-dir DIR]
    python -m duotok.ablations.train --variant noise_off --train-seed 1
    torchrun --nproc_per_node=2 -m duotok.ablations.train --variant reference --profile smoke

Writes ``<root>/<variant>/``: ``finetune/`` (only variants with their own stage 2), ``quantize/``,
``tokenizer/`` and ``result.json``, where ``<root>`` is ``ablation.out_dir`` for training seed 0 and
``<replicas.out_dir>/seed<S>/ablations`` for training seed ``S`` (:func:`variants_root`). Every variant
starts from ``ablation.pretrain`` with ``ablation.budget`` and its own overrides applied to the
finetune / quantize sections; variants with no stage-2 overrides (the routing family) reuse the
reference's stage 2 *of the same training seed*, so train the reference first (also for a variant
without a mask head: its tokenizer borrows the reference's separator).
Re-running with the same output folder resumes each stage from its checkpoint.

Why training seeds. The LM, probe and leakage seeds of :mod:`duotok.ablations.evaluate` measure the
noise of evaluating *one* trained variant; whether a variant beats the reference needs the variance of
training it (issue 18). Training seed ``S`` sets the seed of the two stages an ablation retrains
(``train.seed`` of :data:`~duotok.ablations.variants.SECTIONS`: initialisation of the new layers,
crop order, bottleneck noise); stage 1 stays the
shared starting point of every variant, as it is for seed 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from duotok.ablations.routing_variants import separated_stems_loss, tie_codebooks
from duotok.ablations.variants import SECTIONS, Variant, load_variants, overrides_for
from duotok.config import PROFILES, Params, as_params, deep_merge
from duotok.errors import CheckpointError, ConfigError
from duotok.io import write_json_atomic
from duotok.models.multitask import MultiTaskConfig, MultiTaskModel
from duotok.paths import resolve
from duotok.tokenizer.model import DuoTok
from duotok.train import finetune, quantize
from duotok.train.distributed import barrier, init_distributed
from duotok.train.loop import TrainResult

MODEL_DIR = "model"


def check_train_seed(seed: Any) -> int:
    """A training seed: an integer >= 0 (0 = the main ablation run, ``ablation.out_dir``)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"an ablation training seed is an integer >= 0, got {seed!r}")
    return seed


def variants_root(params: Params, train_seed: int = 0) -> Path:
    """Where the variants of one training seed live: ``ablation.out_dir`` for seed 0, else
    ``<replicas.out_dir>/seed<S>/ablations``, beside that seed's Table-2 replicas (the layout of
    :func:`duotok.train.replica.replica_dir`, not imported: its lazy imports would make every trainer a
    dependency of the ablation stages)."""
    if check_train_seed(train_seed) == 0:
        return resolve(params.section("ablation")["out_dir"])
    return resolve(params.section("replicas")["out_dir"]) / f"seed{train_seed}" / "ablations"


def seed_overrides(train_seed: int) -> dict[str, Any]:
    """``{section: {"train": {"seed": S}}}`` for the two stages an ablation retrains (:data:`SECTIONS`)."""
    seed = check_train_seed(train_seed)
    return {section: {"train": {"seed": seed}} for section in SECTIONS}


def _train_stage3(variant: Variant, params: Params, out: Path, data_dir: str | Path | None, stage2: Path,
                  separator: Path, resume: bool, device: str | None) -> TrainResult:
    """Stage 3 of ``variant`` (its overrides already in ``params``) from the stage-2 checkpoint ``stage2``,
    then its tokenizer in ``<out>/tokenizer``: the main runner with the routing's seam filled in."""
    common = {"init": stage2, "resume": resume, "device": device, "tokenizer_dir": out / "tokenizer",
              "separator": separator, "routing": variant.routing}
    if variant.routing == "dual":
        return quantize.run(params, out / "quantize", data_dir, **common)
    if variant.routing == "shared":
        return quantize.run(params, out / "quantize", data_dir, model_hook=tie_codebooks, **common)
    if variant.routing == "separated":
        loss = separated_stems_loss(MultiTaskModel.from_pretrained(stage2))
        return quantize.run(params, out / "quantize", data_dir, loss_fn=loss, stems_from=str(stage2), **common)
    raise ConfigError(f"variant {variant.name!r}: unknown routing {variant.routing!r}")


def _reference_stage2(root: Path, reference: str, variant: str, params: Params) -> Path:
    """The reference's stage-2 model, checked to exist and to be what this variant's config would train."""
    stage2 = root / reference / "finetune" / MODEL_DIR
    if not (stage2 / "config.json").is_file():
        raise CheckpointError(stage2, f"variant {variant!r} reuses the reference's stage 2, which is not "
                                      f"trained yet: train the reference first (`python -m "
                                      f"duotok.ablations.train --variant {reference}` or "
                                      f"`dvc repro ablation@{reference}`)")
    expected = finetune.build_config(params)[0]
    if MultiTaskModel.read_config(stage2) != expected:
        raise CheckpointError(stage2, f"the reference's stage 2 was trained with another model configuration "
                                      f"than variant {variant!r} expects (another profile or budget?); "
                                      "retrain the reference")
    return stage2


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def train_variant(name: str, profile: str | None = None, out_dir: str | Path | None = None,
                  data_dir: str | Path | None = None, device: str | None = None, resume: bool = True,
                  train_seed: int = 0) -> dict[str, Any]:
    """Train variant ``name`` under ``train_seed`` into ``<out_dir or variants_root>/<name>/`` and
    return its result.json. Seed 0 is trained exactly as before training seeds existed (its stage
    seeds are params.yaml's, 0)."""
    params = as_params(profile)
    variants = load_variants(params)
    if name not in variants:
        raise ConfigError(f"params.yaml: no ablation variant {name!r}; known: {', '.join(variants)}")
    variant = variants[name]
    cfg = params.section("ablation")
    reference = str(cfg["reference"])
    root = resolve(out_dir) if out_dir else variants_root(params, train_seed)
    out = root / name
    overrides = overrides_for(variant, params)
    if train_seed:
        overrides = deep_merge(overrides, seed_overrides(train_seed))
    variant_params = params.with_overrides(overrides)   # the budget and the variant's own changes
    if variant.retrains_stage2:
        stage2 = out / "finetune" / MODEL_DIR
        # Checked before any training: a missing separator should not cost a whole variant's run.
        separator = _separator(root, reference, name, stage2, finetune.build_config(variant_params)[0])
        pretrain = resolve(cfg["pretrain"])
        finetune.run(variant_params, out / "finetune", data_dir, init=pretrain, resume=resume, device=device)
    else:
        stage2 = _reference_stage2(root, reference, name, variant_params)
        separator = _separator(root, reference, name, stage2, MultiTaskModel.read_config(stage2))
    _train_stage3(variant, variant_params, out, data_dir, stage2, separator, resume, device)
    info = init_distributed(device)
    summary: dict[str, Any] = {"variant": variant.to_dict(), "profile": params.profile}
    if info.is_main:
        summary = _finish(variant, out, stage2, separator, overrides, params.profile, train_seed)
    barrier(info)
    return summary


def _separator(root: Path, reference: str, variant: str, stage2: Path,
               stage2_config: MultiTaskConfig) -> Path:
    """The stage-2 model the variant's tokenizer separates mixtures with: its own if it has a mask head,
    else the reference's. The tokenizer needs a separator only to encode mixtures; the ablation
    evaluation tokenizes the true stems, so borrowing one changes none of the variant's results."""
    if stage2_config.heads.mask:
        return stage2
    separator = root / reference / "finetune" / MODEL_DIR
    if not (separator / "config.json").is_file():
        raise CheckpointError(separator, f"variant {variant!r} has no mask head, so its tokenizer borrows "
                                         "the reference's stage-2 separator, which is not trained yet: train "
                                         "the reference first")
    return separator


def _finish(variant: Variant, out: Path, stage2: Path, separator: Path, overrides: dict[str, Any],
            profile: str, train_seed: int) -> dict[str, Any]:
    """result.json (main process), from the tokenizer stage 3 bundled into ``<out>/tokenizer``."""
    tokenizer = DuoTok.from_pretrained(out / "tokenizer")
    fingerprints = tokenizer.fingerprints()
    summary = {
        "variant": variant.to_dict(),
        "profile": profile,
        "train_seed": train_seed,
        "retrains_stage2": variant.retrains_stage2,
        "overrides": overrides,
        "stage2_dir": str(stage2),
        "separator_dir": str(separator),
        "stage2": _read_json(stage2.parent / "result.json"),
        "stage3": _read_json(out / "quantize" / "result.json"),
        "bits_per_second": tokenizer.quantizer.quantizer.bits_per_second(tokenizer.frame_rate),
        "fingerprints": fingerprints,
        "shared_codebook": len(set(fingerprints.values())) == 1,
    }
    write_json_atomic(out / "result.json", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m duotok.ablations.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", required=True, help="a name under params.yaml: ablation.variants")
    parser.add_argument("--profile", choices=PROFILES)
    parser.add_argument("--train-seed", type=int, default=0,
                        help="training seed of stages 2-3 (default 0: the main run in ablation.out_dir)")
    parser.add_argument("--out", help="folder holding one folder per variant (default: ablation.out_dir for "
                                      "seed 0, <replicas.out_dir>/seed<S>/ablations otherwise)")
    parser.add_argument("--data-dir", help="corpus folder (default: finetune.data.root / quantize.data.root)")
    parser.add_argument("--device", choices=("cpu", "cuda"))
    parser.add_argument("--no-resume", action="store_true",
                        help="start every stage over even if <out>/last exists")
    args = parser.parse_args(argv)
    summary = train_variant(args.variant, args.profile, args.out, args.data_dir, args.device,
                            resume=not args.no_resume, train_seed=args.train_seed)
    if "stage3" in summary:
        stage3 = summary["stage3"] or {}
        print(f"ablation {args.variant}: stage 2 from {summary['stage2_dir']}; stage 3 "
              f"{stage3.get('steps')} steps, valid {stage3.get('valid')}; "
              f"{summary['bits_per_second']:.0f} bit/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
