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
# # 01 · Stage 1: BEST-RQ self-supervised pre-training
#
# Duo-Tok's encoder first learns to *listen* without labels. BEST-RQ (the recipe MusicFM uses) turns
# pre-training into classification:
#
# 1. the log-mel of a mixture is normalised (global per-band mean/std) and every 4 frames are stacked
#    into one 25 Hz vector;
# 2. a **frozen random projection** maps each stacked vector to 16 dimensions and a **frozen random
#    codebook** (4096 unit vectors) gives the index of the nearest entry (cosine): the *target*;
# 3. spans of 400 ms (10 tokens) are masked with probability 0.6 and the masked input frames are
#    replaced by Gaussian noise;
# 4. the encoder (conv downsampling to 25 Hz, then the Transformer: lower blocks, bottleneck, upper
#    blocks) predicts the target index at the masked positions; the loss is cross-entropy on masked
#    frames only.
#
# Nothing in the targets is learned, so the encoder cannot cheat by making them easy: to predict a
# hidden frame's quantized spectrum it must model the music around it. This notebook trains stage 1
# (`duotok.train.pretrain`), plots the curves, measures masked-prediction accuracy on **held-out**
# songs and looks at what the features encode.

# %% tags=["parameters"]
profile: str = "default"        # params.yaml profile (smoke | default | paper)
data_dir: str = "data"
out_dir: str = "models/pretrain"
metrics_path: str = "reports/metrics/pretrain.json"
curves_dir: str = "reports/curves"
figures_dir: str = "reports/figures/pretrain"
eval_split: str = "test"

# %%
import pandas as pd
from IPython.display import Markdown, display

from duotok.config import Params
from duotok.data import StemCropDataset
from duotok.eval.records import training_record, write_record
from duotok.eval.ssl import encoder_features, feature_pca, masked_prediction, target_entropy
from duotok.models.bestrq import BestRQModel
from duotok.paths import resolve
from duotok.reporting.figures import save_figure
from duotok.reporting.training import export_curves, plot_curves, plot_feature_pca
from duotok.train import pretrain

params = Params.load(profile)   # params.yaml read once; every call below gets this
p = params.section("pretrain")
display(Markdown(f"Profile **{profile}**: encoder d={p['model']['dim']}, {p['model']['n_lower']} + "
                 f"{p['model']['n_upper']} blocks; {p['train']['steps']} steps of {p['train']['batch_size']} × "
                 f"{p['data']['segment_seconds']} s crops."))

# %% [markdown]
# ## Training
# One call. It resumes from `<out_dir>/last` if a run was interrupted, logs every
# `train.log_every` steps and evaluates on the validation songs every `train.eval_every` steps.

# %%
result = pretrain.run(params, out_dir=out_dir, data_dir=data_dir)
print(f"{result.step} steps in {result.seconds:.0f} s")

# %% [markdown]
# ## Learning curves
# Chance level for the masked prediction is 1/4096 ≈ 0.02 %; the training loss starts near
# ln 4096 ≈ 8.3.

# %%
curves = export_curves(resolve(out_dir), resolve(curves_dir), "pretrain")
train_log = pd.read_csv(curves["train"])
valid_log = pd.read_csv(curves["valid"]) if "valid" in curves else None
fig = plot_curves(train_log, valid_log, ["loss", "accuracy", "grad_norm"], "stage 1 (BEST-RQ)")
save_figure(fig, resolve(figures_dir) / "curves")

# %% [markdown]
# ## Held-out evaluation
# Fixed crops (one per song) of the held-out split, span masks from a seeded generator. The
# **target entropy** checks the random quantizer itself: if most frames mapped to a few codes, high
# accuracy would be cheap. Its normalised entropy (1 = uniform over 4096 codes) says how much
# there is to predict.

# %%
model = BestRQModel.from_pretrained(resolve(out_dir) / "model")
sr = model.config.mel.sample_rate
held_out = StemCropDataset(resolve(data_dir), eval_split, p["data"]["segment_seconds"], sr, crops_per_song=1,
                           seed=0, random=False)
mp = masked_prediction(model, held_out, batch_size=p["train"]["batch_size"], seed=0)
te = target_entropy(model, held_out, batch_size=p["train"]["batch_size"])
chance = 1 / model.config.codebook_size
display(pd.DataFrame([{"masked accuracy": mp["accuracy"], "chance": chance, "masked loss": mp["loss"],
                       "target entropy (bits)": te["entropy_bits"], "max (bits)": te["max_entropy_bits"],
                       "targets used": te["used_fraction"]}]).round(4))

# %% [markdown]
# ## What the encoder hears
# The first principal components of the (unmasked) encoder output over one held-out song. Sections,
# the entry of the voice and the drum pattern tend to show up as changes in the leading components.

# %%
item = held_out[0]
audio = item["mixture"][: int(item["length"])]
features = encoder_features(model, audio)
projected, explained = feature_pca(features, n_components=3)
mel = model.encoder.normalize(model.logmel(audio[None]))[0].numpy()
fig = plot_feature_pca(mel, projected, explained, frame_rate=sr / model.config.mel.hop_length / 4,
                       mel_rate=sr / model.config.mel.hop_length)
save_figure(fig, resolve(figures_dir) / "feature_pca")
print(item["song_id"], "explained variance:", explained.round(3))

# %%
metrics = training_record(
    profile, result,
    eval_split=eval_split,
    eval_items=len(held_out),
    masked_accuracy=mp["accuracy"],
    masked_loss=mp["loss"],
    chance_accuracy=chance,
    target_entropy_bits=te["entropy_bits"],
    target_normalized_entropy=te["normalized_entropy"],
    target_used_fraction=te["used_fraction"],
)
write_record(resolve(metrics_path), metrics)
metrics
