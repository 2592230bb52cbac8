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
# # 09 · One separator, trained
#
# Source separation splits a song into vocals, drums, bass and "other". This notebook trains one of the
# separators compared in `09_separation` (`dvc.yaml: separator@<system>`, `separator_variant@<variant>`;
# parameter `system`):
#
# | system | what it is |
# |---|---|
# | `openunmix` | a **discriminative** model: a BiLSTM over the mixture's spectrogram predicts four masks, and each stem is the mixture's STFT times its mask, inverted with the mixture's phase (Open-Unmix, one model for all four stems) |
# | `generative` | the second paper's **generative** separator: the mixture is embedded by a Conformer, and a decoder-only LM (LLaMA-style) *writes* the codec tokens of the four stems, one stem after another, each conditioned on the mixture and the stems already written; the RVQ codec of Table 2 turns tokens back into audio |
# | `variant:NAME` | an ablation of the generative model (`params.yaml: separation.variants`) at a smaller budget, once per training seed of `separation.ablation.seeds` |
#
# **Why generate at all?** A mask can only *remove* energy from the mixture, bin by bin, and must reuse
# its phase. A generator can write what the mixture hides (a masked partial, a drum hit under a chord)
# and is free of the mixture's phase — at the price of the codec's quality and of an LM that may write
# something plausible but wrong. Which price is higher is what the evaluation measures.

# %% tags=["parameters"]
profile: str = "default"
system: str = "generative"     # openunmix | generative | variant:NAME
metrics_dir: str = "reports/metrics/separators"
figures_dir: str = "reports/figures/separators"

# %%
import json

import pandas as pd
from IPython.display import Markdown, display

from duotok.config import Params
from duotok.io import write_json_atomic
from duotok.paths import resolve
from duotok.reporting.figures import save_figure
from duotok.reporting.training import plot_curves
from duotok.train.separation import ablation_seeds, parse_system, run, system_dir, validation_ceiling

params = Params.load(profile)
kind, variant = parse_system(system)
slug = system.replace(":", "_")
figures = resolve(figures_dir) / slug
figures.mkdir(parents=True, exist_ok=True)
seeds = ablation_seeds(params) if kind == "variant" else [None]

# %% [markdown]
# ## Training
# Re-running resumes from `last/`. The generative model first encodes every training song's four stems
# with the codec once (the token cache; the ablations borrow the main model's); Open-Unmix first fits
# its input normalisation on training crops.

# %%
results = {}
for seed in seeds:
    path = run(system, params, seed=seed)
    results[seed if seed is not None else 0] = json.loads((path.parent / "result.json").read_text())
summary = pd.DataFrame({seed: {"steps": r["steps"], "minutes": r["seconds"] / 60,
                               "s/step": r["seconds_per_step"], "parameters": r["parameters"]["trainable"],
                               "token cache (s)": r.get("cache_seconds")} for seed, r in results.items()}).T
display(summary.rename_axis("training seed"))

# %% [markdown]
# ## Learning curves
# The generative model's loss is a label-smoothed cross-entropy over the stem tokens; `ce` is the plain
# cross-entropy (nats per token; chance is ln V) and `acc` the top-1 token accuracy, both also per stem
# in the logs. Open-Unmix's loss is the mean squared error of the masked magnitudes.

# %%
columns = ["loss", "ce", "acc"] if kind != "openunmix" else ["loss", "vocals_loss", "drums_loss"]
for seed in results:
    run_dir = system_dir(system, params, seed=seed if kind == "variant" else None)
    train_log = pd.read_csv(run_dir / "train_log.csv")
    valid_log = run_dir / "valid_log.csv"
    valid = pd.read_csv(valid_log) if valid_log.is_file() and valid_log.stat().st_size else None
    fig = plot_curves(train_log, valid, [c for c in columns if c in train_log], title=f"{system} (seed {seed})")
    save_figure(fig, figures / f"training_seed{seed}")

# %% [markdown]
# ## The codec ceiling (the main generative model only)
# A generated separation can be no better than the codec lets it be: encode the **true** stems, keep
# the first K codebooks, decode. On validation songs, for each K of `generative.ceiling.k_values`. The
# generative model's gap to this ceiling is its LM's error; the ceiling's gap to the truth is the
# codec's. SDR stays near −2 dB for every K — the codec does not keep the waveform's phase — so Mel L1
# is the number to read here.

# %%
ceiling = None
if kind == "generative":
    ceiling = validation_ceiling(params)
    table = pd.DataFrame({k: {stem: v["mel_l1"] for stem, v in per_stem.items()}
                          for k, per_stem in ceiling["summary"].items()}).T
    display(Markdown(f"Mel L1 of the true stems through K codebooks ({ceiling['n_songs']} {ceiling['split']} "
                     "songs; lower is better):"))
    display(table.rename_axis("K").round(3))

# %%
record = {"system": system, "profile": profile, "training": results,
          "ceiling": None if ceiling is None else {k: ceiling[k] for k in ("summary", "split", "n_songs", "k_values")}}
write_json_atomic(resolve(metrics_dir) / f"{slug}.json", record)
display(Markdown(f"**{system}**: " + "; ".join(f"seed {s}: {r['steps']} steps in {r['seconds'] / 60:.1f} min "
                                               f"({r['seconds_per_step'] or float('nan'):.2f} s/step)" for s, r in results.items())))
