"""Quick diagnostic (issue 18): would the ablation verdicts change with fewer probe / leakage seeds per training?

No training: the committed metrics files already hold every probe and leakage seed's result, so each
variant's numbers are recomputed from a subset of those seeds, pooled over the training seeds as the
``ablations`` stage pools them, and the claims decided again. Prints each subset's verdicts and the largest
move of a variant's pooled AP and leakage against all seeds.

    python scripts/diag/ablation_eval_seeds.py                    # subsets (0, 1) and (1, 2) against (0, 1, 2)
    python scripts/diag/ablation_eval_seeds.py --subsets 0,1 0,2
"""

from __future__ import annotations

import argparse
import copy
import json
from typing import Any

import numpy as np

from duotok.ablations.variants import metrics_file
from duotok.config import Params
from duotok.eval.leakage import seed_spread
from duotok.reporting.ablations import ablation_claims, ablation_frame, pool_training_seeds

LEAK_KEYS = {"vocal": "vocal_in_accompaniment", "accompaniment": "accompaniment_in_vocal"}


def restrict(metrics: dict[str, Any], keep: tuple[int, ...]) -> dict[str, Any]:
    """One training's metrics with the probe and leakage summaries recomputed from the seeds in ``keep``."""
    m = copy.deepcopy(metrics)
    probe = m["probe"]
    runs = [r for r in probe["per_seed"] if r["seed"] in keep]
    if len(runs) != len(keep):
        raise ValueError(f"probe seeds {[r['seed'] for r in probe['per_seed']]} do not hold all of {keep}")
    probe["per_seed"] = runs
    for key in ("ap", "auc"):
        spread = seed_spread([r[key] for r in runs])
        probe[f"{key}_mean"], probe[f"{key}_std"] = spread["mean"], spread["std"]
    songs = sorted(set.intersection(*(set(r["per_song_ap"]) for r in runs)))
    probe["per_song_ap"] = {s: float(np.mean([r["per_song_ap"][s] for r in runs])) for s in songs}
    leakage = m["leakage"]
    for attr, key in LEAK_KEYS.items():
        entry = leakage[f"{attr}_attributes"]["leakage"]
        entry["per_seed"] = [r for r in entry["per_seed"] if r["seed"] in keep]
        # as duotok.eval.leakage._seed_leakage summarises the seeds: those with a defined ratio
        spread = seed_spread([r["leakage"] for r in entry["per_seed"] if r["reason"] is None])
        leakage["summary"][key] = {"mean": spread["mean"], "std": spread["std"], "n_seeds_defined": spread["n"],
                                   "reason": None if spread["n"] else "no seed with a defined ratio"}
    return m


def pooled(metrics_dir: str, names: list[str], train_seeds: list[int], keep: tuple[int, ...] | None) -> dict[str, Any]:
    out = {}
    for name in names:
        runs = {s: json.loads(metrics_file(metrics_dir, name, s).read_text()) for s in train_seeds}
        out[name] = pool_training_seeds({s: restrict(m, keep) if keep else m for s, m in runs.items()})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--metrics-dir", default="reports/metrics/ablations")
    parser.add_argument("--subsets", nargs="+", default=["0,1", "1,2"], help="probe / leakage seeds, comma-separated")
    args = parser.parse_args(argv)
    params = Params.load(args.profile)
    names = list(params.section("ablation")["variants"])
    train_seeds = [0, *params.section("replicas")["seeds"]]
    full = pooled(args.metrics_dir, names, train_seeds, None)
    print("all seeds      ", " | ".join(f"{c['id']}: {c['verdict']}" for c in ablation_claims(ablation_frame(full))))
    for subset in args.subsets:
        keep = tuple(int(s) for s in subset.split(","))
        part = pooled(args.metrics_dir, names, train_seeds, keep)
        verdicts = " | ".join(f"{c['id']}: {c['verdict']}" for c in ablation_claims(ablation_frame(part)))
        d_ap = max(abs(part[n]["probe"]["ap_mean"] - full[n]["probe"]["ap_mean"]) for n in names)
        d_leak = max(abs(part[n]["leakage"]["summary"][k]["mean"] - full[n]["leakage"]["summary"][k]["mean"])
                     for n in names for k in LEAK_KEYS.values())
        print(f"seeds {subset:9s}", verdicts)
        print(f"{'':15s} largest move against all seeds: AP {d_ap:.4f}, leakage {d_leak:.3f}")


if __name__ == "__main__":
    main()
