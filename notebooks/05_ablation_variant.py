# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: duotok (Python 3.11)
#     language: python
#     name: duotok
# ---

# %% [markdown]
# # 05 · One ablation variant: train stages 2–3 with one component changed, then measure it
#
# Run once per variant of `params.yaml: ablation.variants` (`dvc.yaml: ablation_reference`,
# `ablation@<variant>`, `ablation_from_reference@<variant>`). Every variant starts from the **same
# stage-1 checkpoint** and trains with the **same budget** (`ablation.budget`) as the `reference`
# variant, which is Duo-Tok as published retrained at that budget — so differences come from the
# component, not from extra steps. Variants that do not change stage 2 (the routing family) reuse the
# reference's stage 2; `dvc dag` shows those edges.
#
# Measured here, with the Table-2 instruments at the ablation budget (`duotok/ablations/evaluate.py`):
# the dual-track LM's PPL@1024 and bits/s, the tagging probe's AP / AUC (several seeds), the stage-3
# heads (CER, chroma accuracy, mel L1) and codebooks (usage, code perplexity), and **leakage**: a probe
# on one stream predicting the *other* track's attributes (`duotok/eval/leakage.py`). The family
# comparison is `05_ablations`.
#
# **Training seed.** `train_seed = 0` is the main run (`models/ablations/`); the `ablation_replica*`
# stages run this notebook again with `train_seed = S` for each seed of `replicas.seeds`: the same
# variant, stages 2–3 seeded `S`, in `models/replicas/seed<S>/ablations/`. Evaluation seeds measure the
# noise of evaluating one trained model; only a second training shows whether a variant's difference
# survives a retrain.

# %% tags=["parameters"]
profile: str = "default"
variant: str = "reference"
train_seed: int = 0   # 0: the main run; S >= 1: stages 2-3 trained again under seed S (ablation_replica*)
metrics_dir: str = "reports/metrics/ablations"

# %%
import pandas as pd
from IPython.display import Markdown, display

from duotok.ablations import load_variants
from duotok.ablations.evaluate import evaluate_variant, json_safe, variant_dir
from duotok.ablations.train import train_variant
from duotok.ablations.variants import metrics_file
from duotok.config import Params
from duotok.io import write_json_atomic
from duotok.paths import resolve
from duotok.reporting.training import plot_curves

params = Params.load(profile)   # params.yaml read once; every call below gets this
spec = load_variants(params)[variant]
display(Markdown(f"**{variant}** ({spec.family}), training seed {train_seed}: {spec.description}"))

# %% [markdown]
# ## Training
# `train_variant` trains stage 2 (unless the variant reuses the reference's), then stage 3, and bundles a
# tokenizer. Re-running resumes from the last checkpoints.

# %%
trained = train_variant(variant, params, train_seed=train_seed)
display(pd.Series({"stage 2 from": trained["stage2_dir"], "separator from": trained["separator_dir"],
                   "bits/s": trained["bits_per_second"], "shared codebook": trained["shared_codebook"]}))
for stage, columns in (("finetune", ["loss"]), ("quantize", ["loss", "vq"])):
    run = variant_dir(variant, params, train_seed) / stage
    if (run / "train_log.csv").is_file():  # no finetune/ folder when stage 2 is the reference's
        train = pd.read_csv(run / "train_log.csv")
        valid = pd.read_csv(run / "valid_log.csv") if (run / "valid_log.csv").is_file() else None
        display(plot_curves(train, valid, [c for c in columns if c in train], title=f"{variant}: {stage}"))

# %% [markdown]
# ## Measurements

# %%
metrics = evaluate_variant(variant, params, train_seed=train_seed)
write_json_atomic(metrics_file(resolve(metrics_dir), variant, train_seed), json_safe(metrics))
leak = metrics["leakage"]["summary"]
display(pd.Series({
    "PPL@1024": metrics["lm"]["ppl_1024"]["mean"],
    "LM bits/s": metrics["lm"]["bits_per_second"]["mean"],
    "tagging AP": metrics["probe"]["ap_mean"], "tagging AP std": metrics["probe"]["ap_std"],
    "leakage vocal→accomp.": leak["vocal_in_accompaniment"]["mean"],
    "leakage accomp.→vocal": leak["accompaniment_in_vocal"]["mean"],
    **metrics["heads"],
}).round(4))
