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
# # 03 · Stage 3: dual SimVQ codebooks with hard routing — and the tokenizer
#
# Now the bottleneck gets its codebooks. The **lower encoder is frozen** (stage 2's), so the codes
# quantize a fixed, already semantic representation. Each training item contributes two tracks,
# the ground-truth **vocal stem** and the **accompaniment** (drums + bass + other), encoded in one
# batch; the **router** sends every vocal frame to the vocal branch and every accompaniment frame to
# the instrument branch:
#
#     track → frozen lower blocks → proj_in → SimVQ (its own codebook) → proj_out → shared upper blocks → heads
#
# **SimVQ** keeps a frozen random base codebook C₀ and learns only a linear map W: the effective
# codebook is W(C₀). Because every code moves with W, codes do not die the way free codebook
# vectors do. Nearest-neighbour lookup, straight-through gradients and a commitment loss as in
# VQ-VAE. The upper blocks and the chroma / mel / lyrics heads start from stage 2 and keep the
# tokens meaningful; each track is supervised with its own targets (lyrics on the vocal track only).
#
# After training, the runner bundles stage 2 (the separator) and stage 3 (the quantizer) into one
# `DuoTok` checkpoint (`tokenizer_dir`); the notebook loads it and tokenizes a held-out song from its
# **mixture**.

# %% tags=["parameters"]
profile: str = "default"
data_dir: str = "data"
init_dir: str = "models/finetune/model"
out_dir: str = "models/quantize"
tokenizer_dir: str = "models/duotok"
metrics_path: str = "reports/metrics/quantize.json"
curves_dir: str = "reports/curves"
figures_dir: str = "reports/figures/quantize"
eval_split: str = "test"
eval_crops_per_song: int = 2

# %%
import pandas as pd
import torch
from IPython.display import Audio, Markdown, display

from duotok.config import stage_params
from duotok.data import StemCropDataset, discover_songs, load_song
from duotok.eval.codes import token_agreement
from duotok.eval.heads import dualtrack_metrics
from duotok.eval.records import training_record, write_record
from duotok.models.dualtrack import DualTrackModel
from duotok.paths import resolve
from duotok.quantization.dual import TRACKS
from duotok.reporting.figures import save_figure
from duotok.reporting.training import export_curves, plot_code_usage, plot_curves, plot_token_raster
from duotok.tokenizer import DuoTok
from duotok.train import quantize

p = stage_params("quantize", profile)
display(Markdown(f"Profile **{profile}**: codebooks {p['model']['codebook_sizes']}; {p['train']['steps']} steps "
                 f"of {p['train']['batch_size']} songs × 2 tracks × {p['data']['segment_seconds']} s."))

# %% [markdown]
# ## Training
# Warm-up and gradient clipping come from the shared loop (SimVQ is known to produce NaNs without
# them); a non-finite step is skipped, five in a row stop the run with an error.

# %%
result = quantize.run(profile, out_dir=out_dir, data_dir=data_dir, init=init_dir, tokenizer_dir=tokenizer_dir)
print(f"{result.step} steps in {result.seconds:.0f} s")

# %%
curves = export_curves(resolve(out_dir), resolve(curves_dir), "quantize")
train_log = pd.read_csv(curves["train"])
valid_log = pd.read_csv(curves["valid"]) if "valid" in curves else None
columns = [c for c in ("loss", "vq_loss", "mel_loss", "chroma_loss", "vocal/usage", "accompaniment/usage")
           if c in train_log]
fig = plot_curves(train_log, valid_log, columns, "stage 3 (dual SimVQ)")
save_figure(fig, resolve(figures_dir) / "curves")

# %% [markdown]
# ## Held-out evaluation (ground-truth stems)
# **Usage**: the fraction of each codebook's entries that occur at least once on the held-out crops;
# **perplexity**: 2^entropy of the code histogram (how many codes are used "effectively").
# Usage is bounded by the number of held-out frames when that is smaller than the codebook.
# The heads read the *quantized* tokens here, so their metrics say how much survives quantization
# (compare with stage 2's on mixtures, in `reports/metrics/finetune.json`).

# %%
model = DualTrackModel.from_pretrained(resolve(out_dir) / "model")
sr = model.config.mel.sample_rate
held_out = StemCropDataset(resolve(data_dir), eval_split, p["data"]["segment_seconds"], sr,
                           crops_per_song=eval_crops_per_song, seed=0, random=False)
scores, usage = dualtrack_metrics(model, held_out, batch_size=p["train"]["batch_size"])
table = pd.DataFrame({t: {k: scores.get(f"{t}/{k}") for k in ("usage", "perplexity", "dead", "frames",
                                                                 "chroma_accuracy", "mel_l1", "cer")}
                      for t in TRACKS}).T
display(table.round(3))
print(f"bitrate: {scores['bits_per_second']:.0f} bit/s")
fig = plot_code_usage({t: usage[t].counts for t in TRACKS})
save_figure(fig, resolve(figures_dir) / "code_usage")

# %% [markdown]
# ## The tokenizer
# `DuoTok` = stage-2 separator + stage-3 quantizer, saved as one `config.json` + `model.safetensors`.
# `encode(mixture)` separates with the mask head, then quantizes each estimated track;
# `encode_stems` takes the true stems (oracle). How often do the two agree on a held-out song?

# %%
tokenizer = DuoTok.from_pretrained(resolve(tokenizer_dir))  # bundled by quantize.run after training
record = next(r for r in discover_songs(resolve(data_dir)) if r.split == eval_split)
song = load_song(record, sr)
mixture = torch.from_numpy(song["mixture"])
vocal_ids, accompaniment_ids = tokenizer.encode(mixture)
oracle_vocal, oracle_accompaniment = tokenizer.encode_stems(torch.from_numpy(song["stems"][0]),
                                                            torch.from_numpy(song["stems"][1:].sum(axis=0)))
agreement = {"vocal": token_agreement(vocal_ids, oracle_vocal),
             "accompaniment": token_agreement(accompaniment_ids, oracle_accompaniment)}
print(f"{record.id}: {len(vocal_ids)} tokens per track ({record.duration:.1f} s); agreement separated vs oracle:",
      {k: round(v, 3) for k, v in agreement.items()})
fig = plot_token_raster({"vocal": vocal_ids.numpy(), "accompaniment": accompaniment_ids.numpy()},
                        tokenizer.codebook_sizes, tokenizer.frame_rate)
save_figure(fig, resolve(figures_dir) / "token_raster")
vocals_est, accompaniment_est = tokenizer.separate(mixture[: 10 * sr])
display(Markdown("*first 10 s: mixture, separated vocals, separated accompaniment*"))
for x in (mixture[: 10 * sr], vocals_est, accompaniment_est):
    display(Audio(x.numpy(), rate=sr, normalize=False))

# %%
metrics = training_record(profile, result, eval_split=eval_split, eval_items=len(held_out), **scores,
                          example_song=record.id, token_agreement_separated_vs_oracle=agreement,
                          fingerprints=tokenizer.fingerprints(), skipped_steps=result.skipped_steps)
write_record(resolve(metrics_path), metrics)
table
