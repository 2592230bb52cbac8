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
# # 04c · Reconstruction: how much of a song survives the round trip?
#
# The paper reports reconstruction **per track** (vocal / accompaniment) with the evaluation
# toolkit's metrics. Here, on the centre excerpt of every held-out song, three systems are scored
# against the true tracks:
#
# | system | path |
# |---|---|
# | **autoencoder** | each track → autoencoder → track: the *ceiling* of any decoder that renders through it |
# | **tokens (oracle stems)** | true vocal / accompaniment stems → tokens → diffusion decoder: the codec as the paper scores it |
# | **tokens (separated)** | mixture → stage-2 separation → tokens → decoder: what `duotok encode` of a real song gives |
#
# The gap between the last two rows is the cost of our separation (the paper names separation
# quality as a limitation: its toolkit separates with HTDemucs; we use our own stage-2 mask head).
# For the token systems the *mixture* is the sum of the two decoded tracks.
#
# Metrics (`duotok.eval.reconstruction`, the toolkit's definitions):
#
# * **Mel L1** ↓ — exactly the toolkit's Mel distance (Codec-Evaluation `calculate_mel_distance`,
#   `duotok.eval.mel_distance`): 7 scales (window 32–2048 samples, 5–320 bands), HTK mel without area
#   normalisation, power spectrogram, ln of the mel power clamped at 1e-5, mean |difference|, mean over
#   scales. The paper's and the baselines' published Mel L1 use this definition too. (Not the DAC-style
#   Slaney mel loss the autoencoder trains on, which reads 1.4–4.4× smaller on the same signals.)
# * wide-band **PESQ** ↑ (1.04–4.64) and **STOI** ↑ (0–1).
# * **ViSQOL** audio mode ↑ (MOS 1–5, at 48 kHz). What it does and does not see on this corpus, measured
#   by an audit (issue 18): it **barely reacts to phase** — the exact STFT magnitudes with random phase
#   score 4.29–4.53, while a 4 kHz low-pass with perfect phase scores 3.54–4.43. It mostly measures the
#   spectral envelope and bandwidth; PESQ and STOI do react to phase (random phase drops PESQ to about
#   1.5). A decoder that predicts its own phase can therefore look fine on ViSQOL and sound rough: read
#   it next to PESQ / STOI, never alone.

# %% tags=["parameters"]
profile: str = "default"
data_dir: str = "data"
codec_dir: str = "models/codec"
metrics_path: str = "reports/metrics/reconstruction.json"
items_path: str = "reports/tables/reconstruction_items.csv"
figures_dir: str = "reports/figures/reconstruction"

# %%
import pandas as pd
from IPython.display import Audio, Markdown, display

from duotok.config import Params
from duotok.eval import published
from duotok.eval.records import RECONSTRUCTION_SYSTEMS, write_record
from duotok.eval.roundtrip import (
    TRACK_NAMES,
    autoencoder_system,
    codec_system,
    held_out_excerpts,
    score_system,
    summary_dict,
    summary_table,
)
from duotok.io.files import atomic_write
from duotok.paths import resolve
from duotok.reporting.figures import save_figure
from duotok.reporting.reconstruction import plot_spectrograms, plot_system_bars
from duotok.tokenizer import DuoTok

params = Params.load(profile)   # params.yaml read once; every call below gets this
p = params.section("reconstruction")
metrics_list = tuple(p["metrics"])
codec = DuoTok.from_pretrained(resolve(codec_dir)).eval()
sr = codec.sample_rate
excerpts = held_out_excerpts(resolve(data_dir), p["split"], p["seconds"], p["n_songs"], sr)
d = codec.decoder.config
display(Markdown(f"Profile **{profile}**: {len(excerpts)} held-out excerpts of ≤ {p['seconds']} s ({p['split']} split); "
                 f"decoder: {d.steps} Euler steps (time shift {d.time_shift:g}), guidance {d.cfg_scale}, seed {d.seed}, "
                 f"DiT in {codec.decoder.sampling_precision().used}."))

# %%
names = RECONSTRUCTION_SYSTEMS   # the names reconstruction.json stores, which the report reads
systems = {
    names["autoencoder"]: autoencoder_system(codec.decoder.autoencoder),
    names["oracle"]: codec_system(codec, "oracle"),
    names["separated"]: codec_system(codec, "separated"),
}
scores = pd.concat([score_system(name, system, excerpts, sr, metrics_list) for name, system in systems.items()],
                   ignore_index=True)
table = summary_table(scores, metrics_list)
display(table.round(3))

# %% [markdown]
# ## Measured here vs published
# The paper's Duo-Tok row (its Table 2) next to ours, per track. **These are not like for like**: the
# paper trains on real music at 48 kHz with a 24-layer encoder, 2 × 32768 codebooks and a large
# DiT; this is the `default` profile, a few minutes of CPU training on the synthetic corpus at 16 kHz.
# The *definitions* do match: PESQ, STOI and Mel L1 are computed as the toolkit computes them, so the
# paper's Mel L1 and ours are on one scale (until issue 18 ours was a DAC-style Slaney-mel distance that
# read 1.4–4.4× smaller). The paper does not publish ViSQOL, nor a mixture Mel L1.

# %%
rows = []
for track in ("vocal", "accompaniment"):
    paper = published.DUOTOK["reconstruction"][track]
    for system in systems:
        measured = table.loc[(system, track)]
        rows.append({"track": track, "source": f"measured: {system}",
                     **{m: round(float(measured[m]), 3) for m in metrics_list}})
    rows.append({"track": track, "source": "published: Duo-Tok (paper)", **{m: paper.get(m) for m in metrics_list}})
comparison = pd.DataFrame(rows).set_index(["track", "source"])
display(comparison)
fig = plot_system_bars(table, metrics_list, published.DUOTOK["reconstruction"])
save_figure(fig, resolve(figures_dir) / "systems")

# %% [markdown]
# ## Listen and look: a few held-out excerpts
# Rows: tracks; columns: the original and each system's reconstruction, on one dB scale per row.

# %%
for example in excerpts[: p["examples"]]:
    outputs = {name: system(example) for name, system in systems.items()}
    rows = {t: {"original": example.track(t), **{name: out[t] for name, out in outputs.items()}}
            for t in TRACK_NAMES}
    fig = plot_spectrograms(rows, sr, example.song_id)
    save_figure(fig, resolve(figures_dir) / f"spectrograms_{example.song_id}")
    display(Markdown(f"### {example.song_id} (from {example.offset_seconds:.1f} s)"))
    for track in TRACK_NAMES:
        display(Markdown(f"*{track}: original, " + ", ".join(systems) + "*"))
        display(Audio(example.track(track), rate=sr, normalize=False),
                *(Audio(out[track], rate=sr, normalize=False) for out in outputs.values()))

# %%
out = resolve(items_path)
out.parent.mkdir(parents=True, exist_ok=True)
with atomic_write(out, "w") as fh:
    scores.round(5).to_csv(fh, index=False)
metrics = {"profile": profile, "split": p["split"], "items": len(excerpts), "seconds": p["seconds"],
           "sample_rate": sr, "decoder": {"steps": d.steps, "time_shift": d.time_shift, "cfg_scale": d.cfg_scale, "seed": d.seed,
                       "precision": codec.decoder.sampling_precision().as_dict()},
           "measured": summary_dict(scores, metrics_list),
           "published_duotok": published.DUOTOK["reconstruction"]}
write_record(resolve(metrics_path), metrics)
comparison
