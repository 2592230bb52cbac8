"""Quick diagnostic (issue 18): where one ablation stage's evaluation spends its time.

Times each part of :func:`duotok.ablations.evaluate.evaluate_variant` — the corpus tokens, the leakage
probes, the dual-track LM, the tagging probe, the stage-3 heads — for one trained variant, on a *copy* of
its folder under ``--work`` (its cached tokens and LM checkpoints left out, so every part runs in full and
no DVC output is touched). ``--threads N`` sets torch's threads, to compare one thread against two.

    python scripts/diag/ablation_eval_profile.py                          # reference, seed 0, every part
    python scripts/diag/ablation_eval_profile.py --parts tokens probe --threads 1
    python scripts/diag/ablation_eval_profile.py --parts probe --probe-bf16    # the probe under bf16 autocast
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

from duotok.ablations import evaluate
from duotok.config import Params
from duotok.eval.leakage import leakage_probe
from duotok.eval.probe_codecs import probe_codec
from duotok.paths import resolve

PARTS = ("tokens", "leakage", "lm", "probe", "heads")
T = TypeVar("T")


def timed(label: str, fn: Callable[[], T]) -> T:
    """``fn()``, printing its wall time."""
    start = time.perf_counter()
    out = fn()
    print(f"{label:8s} {time.perf_counter() - start:7.1f} s", flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="reference")
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--probe-bf16", action="store_true",
                        help="run the tagging probe under CPU bf16 autocast (the stage runs it in float32)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ablation_eval_profile"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    params = Params.load(args.profile)
    source = evaluate.variant_dir(args.variant, params, args.train_seed)
    copy = args.work / args.variant
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("lm", "tokens.pt", "finetune", "quantize"))
    # every helper below finds the variant through variant_dir: point it at the copy
    evaluate.variant_dir = lambda name, params=None, train_seed=0: args.work / name  # type: ignore[assignment]
    root = resolve(params.section("tokens")["root"])
    print(f"{args.variant} (training seed {args.train_seed}), {torch.get_num_threads()} thread(s)", flush=True)

    codec = timed("load", lambda: evaluate.load_variant_codec(args.variant, params, args.train_seed))
    tokens = timed("tokens", lambda: evaluate.variant_tokens(codec, args.variant, root, params, args.train_seed))
    probe_model, probe_train = evaluate.probe_settings("probe", params)
    leak_model, leak_train = evaluate.probe_settings("leakage", params)
    min_positive = params.section("probe").get("min_positive_test_songs")
    if "leakage" in args.parts:
        timed("leakage", lambda: leakage_probe(codec, tokens, root, leak_model, leak_train))
    if "lm" in args.parts:
        timed("lm", lambda: evaluate.lm_runs(tokens, args.variant, params, args.train_seed))
    if "probe" in args.parts:
        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if args.probe_bf16 else contextlib.nullcontext())
        with autocast:
            result = timed("probe", lambda: probe_codec(codec, tokens, probe_model, probe_train,
                                                        min_positive_test_songs=min_positive))
        print(f"         AP {result['ap_mean']:.4f} ± {result['ap_std']:.4f}", flush=True)
    if "heads" in args.parts:
        timed("heads", lambda: evaluate.heads_metrics(codec, root, params))


if __name__ == "__main__":
    main()
