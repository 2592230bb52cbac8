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
# # 05 · Ablations: what do the noise, the routing and the heads each do?
#
# The paper ablates the three components of stages 2–3 but publishes no numbers for them, so this
# notebook only has our own measurements to show. Each variant (`params.yaml: ablation.variants`) was
# trained by `05_ablation_variant` from the same stage-1 checkpoint with the same budget as the
# `reference` (Duo-Tok as published, retrained at that budget):
#
# * **Noise** (stage 2, Fig. 3). Replacing a random half of the bottleneck frames with N(0, 1) noise is
#   meant to make the heads tolerate the quantization error that stage 3 will introduce, and to push the
#   bottleneck toward robust, predictable features. Variants: no noise; replacement probability × std on
#   a 2 × 2 grid (0.25 / 0.5 × 0.5 / 1, the reference is 0.5 × 1); additive instead of replacement noise.
# * **Routing** (stage 3, Fig. 4). Hard routing gives each track its own codebook. Variants: one codebook
#   shared by both tracks (same 2 × 10 bits per frame), and stage 3 trained on the stage-2 separator's
#   stems instead of the true stems (what a model sees at inference on mixtures).
# * **Heads** (stages 2–3). Lyrics (CTC), mel, chroma and mask heads are the "semantic guardrails".
#   Variants: none (noise only; stage 2 keeps the mask head because the tokenizer separates mixtures with
#   it), and each head removed in turn.
#
# What is measured (with the Table-2 instruments, `duotok/ablations/evaluate.py`): PPL@1024 and bits/s
# of the dual-track LM (lower = easier to model), tagging AP (higher = more musical information),
# stage-3 heads and codebook health, and **leakage** — a probe on one stream predicting the other
# track's attributes, scaled so 0 = chance and 1 = as good as the owning stream (lower = better
# disentangled; musically correlated parts, e.g. bass and melody sharing a harmony, leak by nature).

# %% tags=["parameters"]
profile: str = "default"
metrics_dir: str = "reports/metrics/ablations"
tables_dir: str = "reports/tables"
figures_dir: str = "reports/figures/ablations"
claims_record_path: str = "reports/metrics/ablation_claims.json"

# %%
from IPython.display import Markdown, display

from duotok.ablations import load_variants
from duotok.config import Params
from duotok.io.files import atomic_write, write_json_atomic
from duotok.paths import resolve
from duotok.reporting.ablations import (
    ablation_claims,
    ablation_claims_record,
    ablation_frame,
    claims_markdown,
    family_table,
    load_ablation_metrics,
    plot_family,
    write_ablation_figures,
    write_family_tables,
)

params = Params.load(profile)   # params.yaml read once; every call below gets this
variants = load_variants(params)
# Training seed 0 (the main run) and every extra training seed (params.yaml replicas.seeds): with two or
# more, each number is the mean over trainings and its ± the spread over trainings.
train_seeds = [0, *params.section("replicas")["seeds"]]
metrics = load_ablation_metrics(resolve(metrics_dir), variants, train_seeds)
frame = ablation_frame(metrics)
display(Markdown(f"Training seeds per variant: {', '.join(map(str, train_seeds))}."))

# %% [markdown]
# ## One table per family (mean ± std over seeds; Δ = variant − reference, `*` = beyond the seed spread)

# %%
for family in ("noise", "routing", "heads"):
    display(Markdown(f"### {family}"))
    display(family_table(frame, family))
    display(plot_family(frame, family))
write_family_tables(frame, resolve(tables_dir))
write_ablation_figures(frame, resolve(figures_dir))

# %% [markdown]
# ## The paper's qualitative claims, checked on these numbers
# Three rules, in order. (1) **Training seeds.** With one training per variant, the ± of the tables is
# over the *evaluation* seeds (LM, probe, leakage) of one trained model: the variance of training itself
# is not in it, so two single training runs cannot be told apart by it. A claim is decided only when every
# variant it compares was trained with ≥ 2 seeds (the `ablation_replica*` stages); otherwise it reads
# "not testable here (one training seed)" and its evidence says which way the evaluation seeds point.
# With ≥ 2 trainings each number is the mean over trainings and its ± the spread over trainings.
# (2) **Seed spread.** A difference counts only when it exceeds the combined spread; a side with one
# seed carries no spread and is marked so. (3) **Songs.** For PPL@1024 and AP, a 95 % paired bootstrap
# over test songs (each song's ln PPL@1024 or own-tag AP, averaged over trainings) must exclude 0 too —
# Table 2's rule, so that a difference carried by a few songs does not count.

# %%
claims = ablation_claims(frame)
text = claims_markdown(claims)
with atomic_write(resolve(tables_dir) / "ablation_claims.md") as f:
    f.write("# Ablation claims (measured here)\n\n" + text + "\n")
# the verdicts with their rules and trainings per variant, for the front page reports/README.md (stage `results`)
write_json_atomic(resolve(claims_record_path),
                  ablation_claims_record(frame, claims, profile=profile, train_seeds=train_seeds))
display(Markdown(text))
