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
# # 05 · A Table-2 baseline, trained here under Duo-Tok's budget
#
# The paper's claim is a comparison, so every row of our Table 2 is trained on the same corpus in the
# same pipeline. This notebook is run once per baseline (`dvc.yaml: baseline@<codec>`, parameter `codec`):
#
# | codec | what it is | what it takes away from Duo-Tok |
# |---|---|---|
# | `rvq` | the stage-4 autoencoder with an 8 × 1024 residual VQ at 50 Hz (4 kbps), warm-started from it | semantics: acoustic residual codes of the waveform (the EnCodec/DAC/X-Codec rows) |
# | `mixture_vq` | stage 1–2 encoder, **one** SimVQ codebook on the mixture's bottleneck | the dual-track routing (and stage 3's joint training) |
# | `mucodec` | stage-1 encoder *without* stage 2; one SimVQ codebook per stem (vocal: upper layer, accompaniment: lower) | stage 2 (noise + multi-task heads) — the closest published relative, MuCodec-LeVo |
# | `kmeans` | k-means (1024) of the stage-1 encoder's lower-layer features of the mixture | everything but self-supervision (the HuBERT recipe) |
# | `opus` | ffmpeg/libopus at a fixed low bitrate | — a deployed codec as a reconstruction reference; no tokens |
#
# Token baselines decode through **the same recipe and budget as Duo-Tok's decoder** (`params.yaml: decoder`):
# a flow-matching DiT on the same autoencoder's latents, conditioned on this codec's quantized embeddings.
# Its Euler steps and guidance scale are chosen the same way too: stage 4b's sweeps on **validation**
# songs (`decoder.bench`, `duotok.eval.sampling_choice.sweep_sampling`), never a hand-set value.
# The reconstruction is then scored exactly as Duo-Tok's in `04c_reconstruction`.

# %% tags=["parameters"]
profile: str = "default"
codec: str = "rvq"
data_dir: str = "data"
metrics_dir: str = "reports/metrics/baselines"
figures_dir: str = "reports/figures/baselines"

# %%
import json

import pandas as pd
from IPython.display import Audio, Markdown, display

from duotok.codecs.base import bitrate, codebook_label
from duotok.codecs.registry import codec_dir, load_codec
from duotok.config import Params
from duotok.eval.codec_roundtrip import score_codec, track_means
from duotok.eval.roundtrip import codec_system, held_out_excerpts
from duotok.io import write_json_atomic
from duotok.paths import resolve
from duotok.reporting.baselines import plot_training_logs
from duotok.reporting.figures import save_figure
from duotok.train.baselines import TOKEN_BASELINES
from duotok.train.baselines import run as train_baseline

params = Params.load(profile)   # params.yaml read once; every call below gets this
p = params.section("baselines")
figures = resolve(figures_dir) / codec
figures.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Training
# Re-running resumes (the RVQ codec's and the DiT's `last/` checkpoints). The frozen-feature
# tokenizers fit their codebooks in a minute or two: features of the train split's songs (oracle stems
# for the stem streams), standardised per dimension, then SimVQ (Adam on its projection) or k-means.

# %%
result = None
if codec in TOKEN_BASELINES:
    train_baseline(codec, params)
    result = json.loads((codec_dir(codec, params).parent / "result.json").read_text())
    display(Markdown(f"**{result['name']}** trained in {result['seconds'] / 60:.1f} min; codebook fingerprint "
                     f"`{result['fingerprint']}`."))
    if "valid_usage" in result:
        display(pd.DataFrame(result["valid_usage"]).T.rename_axis("stream (valid split)"))
    fig = plot_training_logs(codec_dir(codec, params).parent)
    if fig is not None:
        save_figure(fig, figures / "training")
else:
    display(Markdown(f"`{codec}` needs no training."))

# %% [markdown]
# ## Reconstruction on the held-out excerpts
# Same excerpts, metrics and definitions as `04c_reconstruction`. Dual-track codecs are scored per
# track from the true stems (`oracle`) and from the mixture through Duo-Tok's separator (`separated`);
# mixture codecs and Opus on the mixture.

# %%
model = load_codec(codec, params)
e = p["eval"]
metrics_list = tuple(e["metrics"])
excerpts = held_out_excerpts(resolve(data_dir), e["split"], e["seconds"], e["n_songs"], model.sample_rate)
dual = hasattr(model, "streams") and "mixture" not in model.streams
sources = tuple(e["sources"]) if dual else ("oracle",)
scores = pd.concat([score_codec(model.name, codec_system(model, s), excerpts, model.sample_rate, metrics_list, s)
                    for s in sources], ignore_index=True)
summary = scores.groupby(["source", "track"], sort=False)[list(metrics_list)].mean()
display(summary.round(3))

# %%
rate = getattr(model, "bitrate", None) if codec == "opus" else bitrate(model)
record = {
    "codec": codec, "name": model.name, "profile": profile, "kbps": rate / 1000.0,
    "token_rate": None if codec == "opus" else float(model.frame_rate),
    "codebooks": None if codec == "opus" else codebook_label(model),
    "streams": None if codec == "opus" else {k: list(v) for k, v in model.streams.items()},
    "n_excerpts": len(excerpts),
    "reconstruction": {s: track_means(scores[scores["source"] == s], metrics_list) for s in sources},
    "train_seconds": None if result is None else result["seconds"],
    "valid_usage": None if result is None else result.get("valid_usage"),
    # the precision each trained part ran in (train.precision: auto = bf16 only where native)
    "precision": None if result is None else {k: result[k] for k in ("precision", "decoder_precision") if k in result},
    # a token decoder's Euler steps and guidance, chosen on validation songs like Duo-Tok's (stage 4b)
    "sampling_choice": None if result is None else result.get("sampling_choice"),
}
write_json_atomic(resolve(metrics_dir) / f"{codec}.json", record)
choice = record["sampling_choice"]
display(Markdown(f"**{model.name}**: {record['kbps']:.2f} kbps"
                 + ("" if codec == "opus" else f", {record['codebooks']} at {record['token_rate']:g} Hz")
                 + ("" if not choice else f"; decoded with {choice['steps']} Euler steps, guidance "
                                          f"{choice['cfg_scale']:g} (chosen on {choice['split']} songs)")))

# %% [markdown]
# ## Listen: the first held-out excerpt

# %%
example = excerpts[0]
out = codec_system(model, sources[0])(example)
for track, audio in out.items():
    display(Markdown(f"*{track}: original, then {model.name}*"))
    display(Audio(example.track(track), rate=model.sample_rate, normalize=False),
            Audio(audio, rate=model.sample_rate, normalize=False))
