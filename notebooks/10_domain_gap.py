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
# # 10 · Domain gap: real music against the generated corpus
#
# Every model of this pipeline was trained on **duosynth**: scores from music21 sung by espeak-ng + WORLD
# over a General-MIDI band. The paper's Duo-Tok is trained on real recordings. A **domain gap** is how much
# worse a model does on data unlike its training data than on data like it: a tokenizer that has learned
# *music* loses little on real songs, one that has learned *the synthesiser* falls apart. Real music is
# harder than a General-MIDI band, so a number measured on real songs alone says little; here every number
# is measured **twice, with the same code, models and excerpt rule**: on a folder of real music in the
# MUSDB18-HQ layout and on the corpus's test split (songs no model trained on), side by side, with the
# difference `Δ = folder − corpus`.
#
# Three views, because Duo-Tok can break on real music in three separate places:
#
# | view | measured with | why |
# |---|---|---|
# | **separation** | museval SDR / SIR / SAR per stem, and Mel L1 per stem (`duotok.separation.evaluate`) | `duotok encode` of a mixture starts with the stage-2 mask head: every token of a real song rests on it |
# | **tokens** | codebook usage and unigram entropy rate in bits/s of the tokens of the true vocal / accompaniment (`duotok.reporting.verdicts`) | out-of-domain audio tends to fall onto a few catch-all codes: fewer codes and fewer bits/s mean the tokens say less about the song |
# | **reconstruction** | the codec round trip of the true stems: the toolkit's Mel L1, PESQ, STOI, ViSQOL (`duotok.eval.roundtrip`) | whether the decoder can render what the tokens say about a real song |
#
# **How to read it.** Each cell is `folder / corpus (Δ)`, a mean over tracks; ↑ / ↓ says in which direction a
# metric improves. The **oracle** ratio mask is a bound (it reads the true stems): its gap is that of the
# *material* (denser real mixes are harder to mask), so a system's gap beyond the oracle's is the system's
# own. museval's SDR compares waveforms, and the token-LM separator's codec does not keep the phase: rank it by
# Mel L1, not SDR (the separation table, notebook 09, does the same). The entropy rate is a plug-in estimate
# over ~250 tokens per 10-s excerpt, biased low for a 1024-code book, but biased alike on both sides; the
# pooled line counts the codes a whole side uses.
#
# **Excerpts.** The centre `excerpt_seconds` of each track (the rule of the reconstruction and separation
# tables, so the corpus side here is their audio), at most `max_tracks` tracks a side — MUSDB's `test` split
# first. MUSDB's 44.1 kHz stereo is resampled to 16 kHz and downmixed (each conversion is a note on its
# track). A track that cannot be read (a missing stem, a broken file) is listed under failures and every
# other track is still scored.

# %% tags=["parameters"]
profile: str = "default"
folder: str = "musdb18hq"                 # MUSDB18-HQ layout: <folder>/{train,test}/<track>/{mixture,vocals,...}.wav
models_dir: str = "models"
reference_root: str = "data"
reference_split: str = "test"
out_dir: str = "reports/domain_gap"
systems: str = "mask-head,openunmix,token-lm,oracle"
views: str = "separation,tokens,reconstruction"
separation_metrics: str = "sdr,sir,sar,mel_l1"
reconstruction_metrics: str = "mel_l1,pesq,stoi,visqol"
max_tracks: int = 8
excerpt_seconds: float = 10.0
examples: int = 1                         # tracks per side whose audio is shown with players
threads: int = 0                          # torch CPU threads; 0: torch's default

# %%
import numpy as np
import pandas as pd
from IPython.display import Audio, Image, Markdown, display

from duotok.eval.domain_gap import CORPUS, FOLDER, compute_domain_gap, write_domain_gap
from duotok.paths import resolve
from duotok.reporting.domain_gap import comparison_frame, view_table

if threads:
    import torch

    torch.set_num_threads(threads)


def names(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


result = compute_domain_gap(
    resolve(folder), resolve(models_dir), resolve(reference_root), systems=names(systems), views=names(views),
    max_tracks=max_tracks, excerpt_seconds=excerpt_seconds, reference_split=reference_split,
    separation_metrics=names(separation_metrics), reconstruction_metrics=names(reconstruction_metrics),
    profile=profile, examples=examples)
written = write_domain_gap(result, resolve(out_dir))
frame = comparison_frame(result)
for side in (FOLDER, CORPUS):
    d, t = result.datasets[side], result.summaries[side]["tracks"]
    display(Markdown(f"**{side}** `{d['root']}` ({d['layout']}, split(s) {', '.join(d['splits'])}): "
                     f"{t['considered']} of {t['found']} track(s) considered — {t['ok']} ok, "
                     f"{t['partial']} partial, {t['failed']} failed"))

# %% [markdown]
# ## Which tracks, and what went wrong
# Every track considered has a row; `partial` means some view failed on it (the failures say which). A
# sub-folder that holds no MUSDB-named wav at all is not a track and is listed as skipped.

# %%
tracks = result.frame("tracks")
display(tracks[["dataset", "song", "split", "status", "offset_seconds", "seconds"]])
if result.failures:
    display(Markdown(f"**{len(result.failures)} problem(s)**, each naming the file:"),
            result.frame("failures")[["dataset", "song", "stage", "error"]])
else:
    display(Markdown("No failures: every track was scored in every view."))
if result.skipped:
    display(Markdown("**Skipped** (not track folders):"), result.frame("skipped"))

# %% [markdown]
# ## Separation
# Per stem and the mean over stems (the mean of the per-stem means), for each separator and the oracle bound.

# %%
table = view_table(frame, "separation")
display(table if not table.empty else Markdown("Separation was not computed."))

# %% [markdown]
# ## Tokens of the true stems
# Entropy rate (bits/s of audio), entropy per token (bits), codes used per excerpt, their share of the
# codebook, and the perplexity (the effective number of codes in use). Then the codes a whole side uses.

# %%
table = view_table(frame, "tokens", ["entropy_rate_bps", "entropy_bits", "used", "usage", "perplexity"])
display(table if not table.empty else Markdown("Tokens were not computed."))
pooled = {side: result.summaries[side].get("tokens_pooled", {}) for side in (FOLDER, CORPUS)}
display(pd.DataFrame({f"{side}: codes used (all tracks)": {s: f"{v['used']} / {v['codebook_size']}"
                                                            for s, v in pooled[side].items()}
                      for side in (FOLDER, CORPUS)}))

# %% [markdown]
# ## Reconstruction: the codec round trip of the true stems
# `mixture` is the sum of the two decoded tracks against the true mixture.

# %%
table = view_table(frame, "reconstruction")
display(table if not table.empty else Markdown("Reconstruction was not computed."))

# %% [markdown]
# ## The figure
# Solid bars: the folder; hatched: the corpus. Left: SDR per stem; middle: the tokens' entropy rate with the
# codebook's ceiling (`log2 V × 25 Hz`); right: the round trip's Mel L1.

# %%
display(Image(filename=str(written["figure"])))
display(Markdown("Written: " + ", ".join(f"`{p}`" for p in written.values())))

# %% [markdown]
# ## Listen: one excerpt of each side
# The mixture, then per stem the true stem and each separator's estimate; then the true vocal and
# accompaniment tracks next to their codec round trips.

# %%
def player(audio: np.ndarray, rate: int) -> Audio:
    """A player at the true level (clipped to [-1, 1]: a decoder may overshoot, and the player refuses that)."""
    return Audio(np.clip(audio, -1.0, 1.0), rate=rate, normalize=False)


for example in result.examples:
    rate = example["sample_rate"]
    display(Markdown(f"### {example['dataset']}: {example['song']} (from {example['offset_seconds']:.1f} s)"),
            Markdown("*mixture*"), player(example["mixture"], rate))
    for stem, reference in example["stems"].items():
        systems_shown = list(example["separated"])
        display(Markdown(f"*{stem}: true stem" + "".join(f", then {s}" for s in systems_shown) + "*"),
                player(reference, rate), *(player(example["separated"][s][stem], rate) for s in systems_shown))
    for track, audio in example.get("reconstructed", {}).items():
        if track in ("vocal", "accompaniment"):
            display(Markdown(f"*{track}: true, then the codec round trip*"), player(example["tracks"][track], rate),
                    player(audio, rate))

# %% [markdown]
# ## The gaps in one list
# The largest drops from the corpus to the folder per view (for Mel L1 a *rise* is the drop).

# %%
lower_is_better = {"mel_l1"}
rows = frame.dropna(subset=["gap"]).copy()
rows["worse_by"] = [g if m in lower_is_better else -g for g, m in zip(rows["gap"], rows["metric"], strict=True)]
headline = rows[rows["metric"].isin(["sdr", "mel_l1", "entropy_rate_bps", "visqol"])]
display(headline.sort_values("worse_by", ascending=False).groupby("view").head(3)
        [["view", "group", "item", "metric", "folder", "corpus", "gap"]].round(3))
