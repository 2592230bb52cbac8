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
# vectors do — but where the codebook *starts* still decides how much of it gets used (the collapse
# experiment below). Nearest-neighbour lookup, straight-through gradients and a commitment loss as in
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
import tempfile
from pathlib import Path

import pandas as pd
import torch
from IPython.display import Audio, Markdown, display

from duotok.config import Params
from duotok.data import StemCropDataset, discover_songs, load_song
from duotok.data.targets import MultiTaskCollate
from duotok.eval.codes import token_agreement
from duotok.eval.heads import dualtrack_metrics, first_sung_crop
from duotok.eval.records import training_record, write_record
from duotok.models.dualtrack import VOCAL, DualTrackModel
from duotok.paths import resolve
from duotok.quantization.dual import TRACKS
from duotok.reporting.figures import save_figure
from duotok.reporting.training import (
    export_curves,
    plot_code_usage,
    plot_curves,
    plot_token_raster,
    plot_usage_over_steps,
)
from duotok.text import CharVocab
from duotok.tokenizer import DuoTok
from duotok.train import quantize

params = Params.load(profile)   # params.yaml read once; every call below gets this
p = params.section("quantize")
display(Markdown(f"Profile **{profile}**: codebooks {p['model']['codebook_sizes']}; {p['train']['steps']} steps "
                 f"of {p['train']['batch_size']} songs × 2 tracks × {p['data']['segment_seconds']} s."))

# %% [markdown]
# ## Training
# Warm-up and gradient clipping come from the shared loop (SimVQ is known to produce NaNs without
# them); a non-finite step is skipped, five in a row stop the run with an error.

# %%
result = quantize.run(params, out_dir=out_dir, data_dir=data_dir, init=init_dir, tokenizer_dir=tokenizer_dir)
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
# ## Codebook collapse, and its cure
# SimVQ's own start is **random**: C₀'s rows are drawn from N(0, I/D) and W is a small random matrix
# (PyTorch's default initialisation of a linear layer), so the effective codebook W·C₀ is a small
# cloud around the **origin**, its entries at an RMS of order D^-1/2. The encoder's bottleneck
# features sit somewhere else — with their own offset (a direction shared by all frames) and their
# own scale. Seen from the data, the whole codebook is one distant blob: every frame is nearest to
# the same few codes on the blob's rim, the side that faces the data. Only those codes are selected,
# so only they pull on W, and the commitment loss pulls the *encoder* toward them instead of the
# codebook spreading over the data. A handful of codes ends up carrying every frame: the codebook
# has **collapsed** (a few % of its entries used).
#
# The cure has two parts (issue 17; the experiments are in `reports/experiments/quick_log.md`):
#
# * a **data-dependent start** (`quantize.model.codebook_init: data`): before the first step, each
#   track's codebook is fitted to that track's own bottleneck features on some training crops, so it
#   starts with their mean and covariance and every region of the data has codes nearby;
# * a **cosine lookup** (`quantize.model.codebook_lookup: cosine`): features and codes are centred on
#   the features' mean and compared by *direction*. This bottleneck is nearly low-rank (≈ 99 % of its
#   variance in 5 of 64 dimensions) and its frames differ a lot in norm; with plain L2 distances the
#   codes of small norm are nearest to most frames ("hubs"), so even a well-placed codebook is used
#   unevenly. The codebook is still SimVQ's W·C₀ with C₀ frozen — only the metric changed.
#
# (A per-frame normalised bottleneck, `finetune.model.bottleneck_norm: layer`, was tried as well: it
# makes stage 2's N(0, 1) replacement noise look like real frames, and the stage-2 chroma head learned
# far less at this budget.)
#
# To see the collapse, the cell below trains the first `quantize.report.collapse_demo_steps` steps
# again with **SimVQ as published** (random start, L2 lookup, VQ loss weight 1) in a temporary
# folder. Stage-2 checkpoint (and so its bottleneck), data and seed are this run's. Both runs'
# codebook usage on the training batch is plotted against step. Only the first steps are comparable;
# this run's full curve is drawn anyway, to show where its usage goes later.

# %%
demo_steps = int(p["report"]["collapse_demo_steps"])
published = {"codebook_init": "random", "codebook_lookup": "l2", "heads": {"vq_weight": 1.0}}  # SimVQ as published
random_start = params.with_overrides({"quantize": {"model": published}})
with tempfile.TemporaryDirectory() as tmp:
    demo = quantize.run(random_start, out_dir=tmp, data_dir=data_dir, init=init_dir, steps=demo_steps,
                        tokenizer_dir=Path(tmp) / "tokenizer")
    demo_curves = export_curves(tmp, resolve(curves_dir), "quantize_random_start")
demo_log = pd.read_csv(demo_curves["train"])
stage2 = params.section("finetune")["model"]
this_run = f"this run ({p['model']['codebook_init']} start, {p['model']['codebook_lookup']} lookup)"
demo_run = "random start, l2 lookup (SimVQ as published)"
fig = plot_usage_over_steps({this_run: train_log, demo_run: demo_log}, TRACKS)
save_figure(fig, resolve(figures_dir) / "collapse")
usage_columns = [f"{t}/usage" for t in TRACKS]
same_step = pd.concat({this_run: train_log[train_log["step"] <= demo.step].tail(1),
                       demo_run: demo_log.tail(1)}).droplevel(1)
display(Markdown(f"**Codebook usage on the training batch at the last logged step ≤ {demo.step}**"),
        same_step[["step", *usage_columns]].round(3))
random_start_demo = {"steps": demo.step, **{c: float(demo_log[c].iloc[-1]) for c in usage_columns}}

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
# ## The lyrics head reads the vocal tokens
# The lyrics head (CTC over characters, trained in stage 2 on the continuous bottleneck) now sees only
# the **quantized vocal tokens**: whatever it can still read, the 25 Hz vocal token stream carries.
# Below, the first held-out crop whose window has sung text: its ground-truth vocal stem is routed to
# the vocal codebook, and the head's greedy CTC reading is set beside what is sung. (The CER in the
# table above is the same comparison over all held-out crops; short runs read little or nothing.)

# %%
vocab = CharVocab()
sung = first_sung_crop(held_out, MultiTaskCollate(vocab, sr, model.config.mel.hop_length, per_track=True))
if sung is None or "lyrics" not in model.heads:
    display(Markdown("*No held-out crop has sung text, or this model has no lyrics head.*"))
else:
    index, batch = sung
    with torch.no_grad():
        run = model.infer(batch["stems"][:, 0], torch.tensor([VOCAL]), batch["length"])
    heard = vocab.greedy_ctc_decode(run["outputs"]["lyrics"], run["token_mask"].sum(dim=1))[0]
    display(Markdown(f"Held-out crop {index}: {batch['song_id'][0]} from {float(batch['offset'][0]):.1f} s "
                     f"(vocal stem)  \n**sung:** {vocab.normalize(batch['lyrics_text'][0])}  \n"
                     f"**read from the vocal tokens:** {heard or '(nothing)'}"),
            Audio(batch["stems"][0, 0].numpy(), rate=sr, normalize=False))

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
                          fingerprints=tokenizer.fingerprints(), skipped_steps=result.skipped_steps,
                          random_start_demo=random_start_demo)
write_record(resolve(metrics_path), metrics)
table
