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
# # 00 · The duosynth corpus
#
# Duo-Tok learns from songs split into a **vocal** track and an **accompaniment** track, and its
# stage-2 heads need lyrics, notes (for chroma) and four stems (for the separation mask head). No
# public stem dataset may be downloaded or committed here, so the project *generates* one:
# **duosynth** renders the scores-with-lyrics of the `music21` corpus (Bach chorales in German,
# trecento pieces in Italian and Latin, Monteverdi madrigals in Italian) into songs with four stems:
#
# | stem | how it is made |
# |---|---|
# | vocals | the lyric-carrying part, sung: espeak-ng pronounces each syllable, the WORLD vocoder puts it on the score's pitch and stretches it to the note (two voices: tenor, soprano) |
# | bass | the lowest other part, on a General-MIDI bass (acoustic, electric, synth) |
# | other | the inner parts, orchestrated with one or two instrument families |
# | drums | a generated pattern in one of six styles (including none) fitted to the meter |
#
# The mixture is the exact sum of the stems. Everything the generator decided is written to each
# song's `meta.json` — lyrics with syllable and word timings, the notes of every stem, key, tempo,
# meter, programs, voice, language, drum style, levels — and becomes free labels: the tags below
# are what the tagging probe of the evaluation predicts.
#
# This notebook is also the pipeline's **data check**: it verifies every song and writes
# `reports/metrics/corpus.json`.

# %% tags=["parameters"]
profile: str = "default"          # which params.yaml profile to read (smoke | default | paper)
data_dir: str = "data"            # corpus folder, relative to the project root
figures_dir: str = "reports/figures/corpus"
metrics_path: str = "reports/metrics/corpus.json"

# %%
from collections import Counter

import pandas as pd
from IPython.display import Audio, Markdown, display

from duotok.config import Params
from duotok.data import SOURCES, discover_songs, load_song
from duotok.data.checks import corpus_checks, track_pitch
from duotok.data.synth.tags import TAG_VOCABULARY
from duotok.io import write_json_atomic
from duotok.paths import resolve
from duotok.reporting.corpus import plot_pitch_and_lyrics, plot_stem_spectrograms, plot_tag_counts
from duotok.reporting.figures import save_figure

params = Params.load(profile)   # params.yaml read once; every call below gets this
cfg = params.section("corpus")
sr = params.section("audio")["sample_rate"]
root = resolve(data_dir)
records = discover_songs(root)
generated = records[0].layout == "duosynth"  # real data (MUSDB18-HQ layout) has no score metadata
hours = sum(r.duration for r in records) / 3600
print(f"{len(records)} songs, {hours:.2f} h, layout: {records[0].layout}")

# %% [markdown]
# ## The songs
# One row per song. Splits are **by work**: a piece is in exactly one of train / valid / test.

# %%
columns = ["language", "voice", "drum_style", "tempo_qpm", "time_signature", "vocal_to_accompaniment_db", "n_words"]
songs = pd.DataFrame([{"id": r.id, "split": r.split, "minutes": round(r.duration / 60, 2),
                       **{c: r.meta.get(c) for c in columns if generated}} for r in records])
display(songs.head(12))
split_table = songs.groupby("split").agg(songs=("id", "count"), minutes=("minutes", "sum")).round(1)
display(split_table)
work_of = {r.id: r.meta.get("work", r.id) for r in records}
works = {s: {work_of[r.id] for r in records if r.split == s} for s in ("train", "valid", "test")}
overlap = (works["train"] & works["test"]) | (works["train"] & works["valid"]) | (works["valid"] & works["test"])
print("works shared between splits:", len(overlap))

# %% [markdown]
# ## Tags
# The tag vocabulary is fixed (see `duotok/data/synth/tags.py`); every generated song has one tag
# from each group (voice, language, drum style, tempo class, mode, meter, bass family, vocal balance)
# and one or two accompaniment families.

# %%
tag_counts = Counter(t for r in records for t in r.meta.get("tags", []))
if generated:
    fig = plot_tag_counts([r.meta for r in records], list(TAG_VOCABULARY))
    save_figure(fig, resolve(figures_dir) / "tag_counts")
else:
    display(Markdown("*Real data carries no tags; the tag figure is not drawn.*"))

# %% [markdown]
# ## One song, stem by stem
# A held-out song: its spectrograms (log-mel) and the audio of each stem. Listen for the two
# things Duo-Tok must keep apart — the sung line, and everything else.

# %%
example = next((r for r in records if r.split == cfg["example_split"]), records[0])
song = load_song(example, sr)
meta = song["meta"]
if generated:
    display(Markdown(f"**{example.id}** — {meta['title']} ({meta['work']}); {meta['language']}, "
                     f"{meta['voice']} voice, drums: {meta['drum_style']}, {meta['tempo_qpm']} qpm, "
                     f"{meta['time_signature']}, {meta['key']['tonic']} {meta['key']['mode']}; tags: "
                     f"{', '.join(meta['tags'])}"))
signals = {"mixture": song["mixture"], **{name: song["stems"][i] for i, name in enumerate(SOURCES)}}
fig = plot_stem_spectrograms(signals, sr, seconds=min(20.0, example.duration))
save_figure(fig, resolve(figures_dir) / "example_stems")
for name, x in signals.items():
    display(Markdown(f"*{name}*"), Audio(x, rate=sr, normalize=False))

# %% [markdown]
# ## Lyrics on the sung pitch
# The vocal stem's pitch, tracked with pyin, over the score notes; each syllable is written at its
# onset from the metadata. The pitch sits on the notes and the syllables start where the notes do:
# that is what makes the lyrics (CTC) and chroma heads of stage 2 learnable.

# %%
window = min(15.0, example.duration)
f0, times = track_pitch(song["stems"][0][: int(window * sr)], sr)
fig = plot_pitch_and_lyrics(f0, times, meta.get("notes", {}).get("vocals", []),
                            meta.get("lyrics", {}).get("syllables", []), seconds=window)
save_figure(fig, resolve(figures_dir) / "example_pitch_lyrics")
print(" ".join(w["text"] for w in meta.get("lyrics", {}).get("words", []) if w["onset"] < window))

# %% [markdown]
# ## Data check
# For **every** song: the mixture equals the sum of the stems, lyric timings lie inside the audio
# and the vocal is audible during each syllable. For a few test songs: the sung pitch is within
# 50 cents of the score (pyin, notes of at least 150 ms).

# %%
rows, summary = corpus_checks(records, sr, cfg["n_pitch_check_songs"])
checks = pd.DataFrame(rows)
display(checks.describe().loc[["mean", "min", "max"]].round(4))
pc = summary["pitch_check"]
if pc["notes"]:
    print(f"pitch: {pc['fraction_within_50_cents']:.1%} of {pc['notes']} notes within 50 cents "
          f"(median |error| {pc['median_abs_error_cents']} cents)")

# %%
metrics = {
    "profile": profile,
    "layout": records[0].layout,
    "hours": round(hours, 4),
    "splits": {s: {"songs": int(row["songs"]), "minutes": float(row["minutes"])} for s, row in split_table.iterrows()},
    "works_shared_between_splits": len(overlap),
    **summary,
    "tag_counts": {t: tag_counts.get(t, 0) for t in TAG_VOCABULARY} if generated else {},
    "languages": dict(sorted(Counter(r.meta.get("language") for r in records if generated).items())),
    "voices": dict(sorted(Counter(r.meta.get("voice") for r in records if generated).items())),
}
write_json_atomic(resolve(metrics_path), metrics)
display(Markdown(f"Wrote `{metrics_path}`."))
metrics
