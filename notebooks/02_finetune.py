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
# # 02 · Stage 2: multi-task fine-tuning with Gaussian replacement noise
#
# Stage 1 gave an encoder that models music; stage 2 decides **what the bottleneck must keep**.
# The encoder (initialised from stage 1) is cut between its lower and upper blocks:
#
#     mel → lower blocks → proj_in (→ 64 dims) → noise → proj_out → upper blocks → four heads
#
# * **lyrics** — CTC over characters at 25 Hz (the corpus has the sung text);
# * **mel** — reconstruct the (normalised) log-mel at 100 Hz;
# * **chroma** — 12 pitch classes per frame, from the score notes;
# * **masks** — STFT ratio masks of the four stems (vocals, drums, bass, other), evaluated by
#   applying them to the mixture. With `finetune.model.mask_spectrum: true` the mask head also reads
#   the mixture's own magnitude spectrum at 100 Hz: the 25 Hz features say *which source* a partial
#   belongs to, the spectrum says *where* the partials lie in the 513 frequency bins — which 25 Hz
#   features alone can only guess (a deviation from the paper, whose mask head is not described).
#
# The CTC loss of a crop **without lyrics** (an empty target: blank in every frame) is divided by its
# frames, not by its zero characters: torch's `"mean"` divides it by max(0, 1) = 1, which let one
# instrumental window outweigh a batch of sung ones and taught the head that blank is always safe.
#
# The **Gaussian replacement noise** replaces a random fraction of bottleneck frames (training only)
# by N(0, σ²) vectors, so the upper blocks learn to cope with damaged bottleneck frames — the
# damage quantization will do in stage 3. Probability and σ are parameters (`finetune.model.noise`)
# because the paper does not publish them; the ablation notebooks vary them.

# %% tags=["parameters"]
profile: str = "default"
data_dir: str = "data"
init_dir: str = "models/pretrain/model"
out_dir: str = "models/finetune"
metrics_path: str = "reports/metrics/finetune.json"
curves_dir: str = "reports/curves"
figures_dir: str = "reports/figures/finetune"
eval_split: str = "test"
eval_crops_per_song: int = 2
sdr_items: int = 16

# %%
import pandas as pd
import torch
from IPython.display import Audio, Markdown, display

from duotok.config import Params
from duotok.data import SOURCES, StemCropDataset
from duotok.data.targets import MultiTaskCollate
from duotok.eval.heads import multitask_metrics
from duotok.eval.records import training_record, write_record
from duotok.models.heads import separate
from duotok.models.multitask import MultiTaskModel
from duotok.paths import resolve
from duotok.reporting.figures import save_figure
from duotok.reporting.training import export_curves, plot_curves, plot_masks, plot_target_vs_prediction
from duotok.text import CharVocab
from duotok.train import finetune

params = Params.load(profile)   # params.yaml read once; every call below gets this
p = params.section("finetune")
display(Markdown(f"Profile **{profile}**: bottleneck {p['model']['bottleneck_dim']} dims, noise "
                 f"{p['model']['noise']}; heads {p['model']['heads']}; {p['train']['steps']} steps of "
                 f"{p['train']['batch_size']} × {p['data']['segment_seconds']} s."))

# %% [markdown]
# ## Training

# %%
result = finetune.run(params, out_dir=out_dir, data_dir=data_dir, init=init_dir)
print(f"{result.step} steps in {result.seconds:.0f} s")

# %%
curves = export_curves(resolve(out_dir), resolve(curves_dir), "finetune")
train_log = pd.read_csv(curves["train"])
valid_log = pd.read_csv(curves["valid"]) if "valid" in curves else None
columns = [c for c in ("loss", "lyrics_loss", "mel_loss", "chroma_loss", "mask_loss", "chroma_accuracy")
           if c in train_log]
fig = plot_curves(train_log, valid_log, columns, "stage 2 (multi-task)")
save_figure(fig, resolve(figures_dir) / "curves")

# %% [markdown]
# ## Held-out evaluation
# Deterministic crops of held-out songs, noise off. CER: greedy CTC decoding against the window's
# sung text (syllables whose onset lies in the crop). Chroma accuracy: the most likely predicted
# pitch class equals the strongest target pitch class, on frames where some note sounds. Mel L1
# is in normalised log-mel units (as trained). Separation: museval BSS-eval on the first
# `sdr_items` crops, with the oracle ratio masks as the ceiling of this kind of separator.

# %%
model = MultiTaskModel.from_pretrained(resolve(out_dir) / "model")
m = model.config.mel
sr = m.sample_rate
held_out = StemCropDataset(resolve(data_dir), eval_split, p["data"]["segment_seconds"], sr,
                           crops_per_song=eval_crops_per_song, seed=0, random=False)
scores = multitask_metrics(model, held_out, batch_size=p["train"]["batch_size"], sdr_items=sdr_items)
summary = {k: scores.get(k) for k in ("cer", "chroma_accuracy", "chroma_cosine", "mel_l1", "mask/SDR_median",
                                      "oracle/SDR_median")}
display(pd.DataFrame([summary]).round(3))
sdr_table = pd.DataFrame({s: {"mask head": scores.get(f"mask/{s}/SDR_median"),
                              "oracle masks": scores.get(f"oracle/{s}/SDR_median")} for s in SOURCES}).round(2)
display(Markdown("**SDR (dB), median over crops**"), sdr_table)

# %% [markdown]
# ## One held-out crop, head by head

# %%
collate = MultiTaskCollate(CharVocab(), sr, m.hop_length)
batch = collate([held_out[0]])
with torch.no_grad():
    run = model.infer(batch["mixture"], batch["length"])
out = run["outputs"]
pairs = {}
if "mel" in out:
    pairs["mel"] = (model.encoder.normalize(run["mel"])[0].numpy(), out["mel"][0, :, : run["mel"].shape[-1]].numpy())
if "chroma" in out:
    pairs["chroma"] = (batch["chroma"][0].numpy(), out["chroma"][0, :, : batch["chroma"].shape[-1]].sigmoid().numpy())
fig = plot_target_vs_prediction(pairs, frame_rate=sr / m.hop_length)
save_figure(fig, resolve(figures_dir) / "heads_example")
if "lyrics" in out:
    vocab = CharVocab()
    hyp = vocab.greedy_ctc_decode(out["lyrics"], run["token_mask"].sum(dim=1))[0]
    display(Markdown(f"**sung:** {vocab.normalize(batch['lyrics_text'][0]) or '(no lyrics in this crop)'}  \n"
                     f"**heard:** {hyp or '(nothing)'}"))

# %% [markdown]
# The mask head's four masks, and what they separate (the mixture, then each estimated stem):

# %%
if "mask" in out:
    fig = plot_masks(out["mask"][0].numpy(), SOURCES, frame_rate=sr / m.hop_length)
    save_figure(fig, resolve(figures_dir) / "masks_example")
    stems = separate(out["mask"], batch["mixture"], m.n_fft, m.hop_length, m.win_length)[0]
    display(Markdown("*mixture*"), Audio(batch["mixture"][0].numpy(), rate=sr, normalize=False))
    for name, x in zip(SOURCES, stems, strict=True):
        display(Markdown(f"*{name} (estimated)*"), Audio(x.numpy(), rate=sr, normalize=False))

# %%
metrics = training_record(profile, result, eval_split=eval_split, eval_items=len(held_out), **scores)
write_record(resolve(metrics_path), metrics)
summary
