"""Quick diagnostic (issue 18): one ablation variant trained at a fraction of the ablation budget, outside DVC.

Trains the variant's stages 2-3 with ``ablation.budget``'s step counts (and their warm-up, evaluation,
saving and hold steps) scaled by ``--scale``, into ``--out`` (never ``models/``), evaluates it as the
ablation stage does and prints the health and headline numbers — so a shorter budget can be judged on
whether the codebooks and the heads still learn, not only on its time.

    python scripts/diag/ablation_budget.py                          # the reference at half the budget
    python scripts/diag/ablation_budget.py --variant heads_none --scale 0.5 --out /tmp/budget
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from duotok.ablations.evaluate import evaluate_variant, json_safe
from duotok.ablations.train import train_variant
from duotok.config import Params
from duotok.reporting.ablations import code_entropy_bits

#: ``train`` fields of the ablation budget that count steps (scaled together with ``steps``).
STEP_KEYS = ("steps", "warmup_steps", "eval_every", "save_every")


def scaled_budget(budget: dict[str, Any], scale: float) -> dict[str, Any]:
    """``ablation.budget`` with every step count of its ``finetune`` / ``quantize`` ``train`` blocks scaled."""
    out: dict[str, Any] = {}
    for section, block in budget.items():
        train = dict(block.get("train") or {})
        for key in STEP_KEYS:
            if key in train:
                train[key] = max(1, round(int(train[key]) * scale))
        if "holds" in train:
            train["holds"] = {k: max(1, round(int(v) * scale)) for k, v in train["holds"].items()}
        out[section] = {**block, "train": train}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="reference")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--scale", type=float, default=0.5, help="fraction of the ablation budget's steps")
    parser.add_argument("--out", type=Path, default=Path("/tmp/ablation_budget"))
    args = parser.parse_args(argv)
    base = Params.load(args.profile)
    budget = scaled_budget(base.section("ablation")["budget"], args.scale)
    params = base.with_overrides({"ablation": {"out_dir": str(args.out), "budget": budget}})
    print(f"{args.variant} at {args.scale:g} × the ablation budget: {json.dumps(budget)}", flush=True)
    start = time.perf_counter()
    train_variant(args.variant, params)
    trained = time.perf_counter() - start
    start = time.perf_counter()
    metrics = evaluate_variant(args.variant, params)
    evaluated = time.perf_counter() - start
    (args.out / f"{args.variant}_metrics.json").write_text(json.dumps(json_safe(metrics), indent=1))
    heads, leak = metrics["heads"], metrics["leakage"]["summary"]
    bits = code_entropy_bits(heads)
    print(f"train {trained:.0f} s, evaluation {evaluated:.0f} s; PPL@1024 {metrics['lm']['ppl_1024']['mean']:.1f} "
          f"± {metrics['lm']['ppl_1024']['std']:.1f}, AP {metrics['probe']['ap_mean']:.3f} ± "
          f"{metrics['probe']['ap_std']:.3f}, code entropy {bits:.2f} bit/frame, usage "
          f"{heads['vocal/usage']:.2f} / {heads['accompaniment/usage']:.2f}, leakage v→a / a→v "
          f"{leak['vocal_in_accompaniment']['mean']:.2f} / {leak['accompaniment_in_vocal']['mean']:.2f}, "
          f"vocal chroma {heads.get('vocal/chroma_accuracy')}, CER {heads.get('vocal/cer')}", flush=True)


if __name__ == "__main__":
    main()
