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
# # 04b · Stage 4, part 2: a diffusion decoder from tokens back to audio
#
# The tokens are semantic: 2 × 25 Hz × 10 bits is far too little to store a waveform, so the decoder
# has to *generate* the acoustic detail the tokens do not pin down. Duo-Tok does it with a
# **latent diffusion** model: a DiT generates the autoencoder's latent sequence (notebook 04a),
# conditioned on the tokens' quantized embeddings, and the autoencoder renders it.
#
#     ids ─ DuoTok.embed ─→ 25 Hz embeddings ─ ↑2 ─┐
#     noise (50 Hz latents) ─────────────────────── + ─→ DiT (adaLN-Zero on time + track) × Euler steps ─→ latents ─→ autoencoder ─→ audio
#
# * **Flow matching**: the model learns the velocity of the straight path from noise to data;
#   sampling integrates it with a few Euler steps (`decoder.sampling.steps`). The steps need not be
#   equal: SD3's *time shift* (`time_shift`, 1 = uniform) makes them finer near the noise, where
#   the learned paths bend most, and coarser near the data, where they are nearly straight.
# * **One model, both tracks**: a track embedding (vocal / accompaniment) joins the diffusion time
#   in every block's adaptive LayerNorm. Half the parameters and training time of one model per
#   track, and the two tracks share most of their acoustics.
# * **Classifier-free guidance**: the token condition is dropped for 10 % of the training items, so
#   at sampling `v = v_uncond + s · (v_cond − v_uncond)` can push harder toward the tokens (`cfg_scale`).
# * Training pairs are computed once: tokens of the **ground-truth stems** (exactly as
#   `DuoTok.encode_stems` makes them) and autoencoder latents of the same stems.
# * **Sampling settings are chosen here, on validation songs**: `decoder.sampling` is only the
#   starting point; the number of Euler steps, their time grid and the guidance scale the codec
#   decodes with by default are chosen from sweeps on the **validation** split and written into
#   `models/codec`.
#   The test split is what the codec is reported on (notebook 04c, Table 2), so nothing is chosen on it.

# %% tags=["parameters"]
profile: str = "default"
data_dir: str = "data"
tokenizer_dir: str = "models/duotok"
autoencoder_dir: str = "models/autoencoder/model"
out_dir: str = "models/decoder"
codec_dir: str = "models/codec"
metrics_path: str = "reports/metrics/decoder.json"
curves_dir: str = "reports/curves"
figures_dir: str = "reports/figures/decoder"

# %%
import pandas as pd
import torch
from IPython.display import Audio, Markdown, display

from duotok.config import Params
from duotok.eval.reconstruction import HIGHER_IS_BETTER, METRICS
from duotok.eval.records import training_record, write_record
from duotok.eval.roundtrip import TRACK_NAMES, codec_system, held_out_excerpts, score_system, sweep_means
from duotok.eval.sampling_choice import SELECTION_SPLIT, sweep_sampling, sweep_scores
from duotok.paths import resolve
from duotok.reporting.figures import save_figure
from duotok.reporting.reconstruction import plot_metric_sweep, plot_spectrograms
from duotok.reporting.training import export_curves, plot_curves
from duotok.tokenizer import DuoTok
from duotok.tokenizer.bench import bench_decode
from duotok.train import decoder
from duotok.train.decoder import write_codec_sampling

params = Params.load(profile)   # params.yaml read once; every call below gets this
p = params.section("decoder")
display(Markdown(f"Profile **{profile}**: DiT width {p['model']['dim']} × {p['model']['n_layers']} layers; "
                 f"{p['train']['steps']} steps of {p['train']['batch_size']} track crops; sampling "
                 f"{p['sampling']['steps']} Euler steps, guidance {p['sampling']['cfg_scale']} to start with "
                 f"(DiT precision {p['sampling'].get('precision', 'fp32')}) "
                 f"(chosen below on validation songs)."))

# %% [markdown]
# ## Training

# %%
result = decoder.run(params, out_dir=out_dir, data_dir=data_dir, tokenizer_dir=tokenizer_dir,
                     autoencoder_dir=autoencoder_dir, codec_dir=codec_dir)
print(f"{result.step} steps in {result.seconds:.0f} s")

# %%
curves = export_curves(resolve(out_dir), resolve(curves_dir), "decoder")
train_log = pd.read_csv(curves["train"])
valid_log = pd.read_csv(curves["valid"]) if "valid" in curves else None
fig = plot_curves(train_log, valid_log, [c for c in ("loss", "grad_norm") if c in train_log],
                  "stage 4b (flow-matching DiT)")
save_figure(fig, resolve(figures_dir) / "curves")

# %% [markdown]
# ## Choosing the sampling settings on validation songs
# Tokens of the true stems of a few **validation** excerpts, decoded with each setting (same seed):
# first every step count of `decoder.bench.steps_curve` on every time grid of
# `decoder.bench.time_shifts` at the starting guidance scale (`decoder.sampling.cfg_scale`), then
# every guidance scale of `decoder.bench.cfg_scales` at the chosen steps and grid. The rule
# (`duotok.eval.sampling_choice`), on the selection metric `decoder.bench.select_metric` averaged
# over excerpts and tracks:
#
# 1. **steps and grid**: the *fewest* steps whose score on their best grid is within
#    `decoder.bench.tolerance` (relative) of the sweep's best, and the best grid at those steps.
#    Decoding time grows linearly with the steps while quality flattens past a knee, so the
#    tolerance states how much quality is traded for speed; a grid costs nothing, so it can only
#    buy the same quality in fewer steps;
# 2. **guidance**: the best-scoring scale at those steps and grid (every scale costs the same,
#    except 1, which skips the unconditional branch and wins exact ties).
#
# The DiT's precision is not swept: `decoder.sampling.precision` (`auto`: bfloat16 only where the
# hardware computes it natively) is a speed setting. Below, the chosen settings are also decoded
# in float32, so the validation score says what, if anything, the faster precision costs.
#
# The choice is written into the codec (`models/codec/config.json`), so `DuoTok.decode`,
# `duotok decode` and the reconstruction evaluation (notebook 04c, on the **test** split) use it by
# default. Choosing on validation keeps the test numbers of 04c honest: they are not fitted to the
# songs they are reported on. The full evaluation, with the autoencoder ceiling and the
# separated-mixture path, is notebook 04c.

# %%
codec = DuoTok.from_pretrained(resolve(codec_dir)).eval()
sr = codec.sample_rate
bench = p["bench"]
start = p["sampling"]                                 # the starting point (and the codec's settings so far)
metric, tolerance = bench["select_metric"], float(bench["tolerance"])
excerpts = held_out_excerpts(resolve(data_dir), SELECTION_SPLIT, bench["seconds"], bench["n_songs"], sr)
start_cfg = float(start["cfg_scale"])
steps_scores, cfg_scores, choice = sweep_sampling(codec, resolve(data_dir), bench, start_cfg, METRICS)
chosen_steps = choice.steps
for shift, part in steps_scores.groupby("time_shift"):
    name = "quality_vs_steps" if shift == 1.0 else f"quality_vs_steps_shift{shift:g}"
    fig = plot_metric_sweep(part, "steps", METRICS, HIGHER_IS_BETTER,
                            f"validation: quality vs Euler steps (time shift {shift:g}, guidance {start_cfg:g})")
    save_figure(fig, resolve(figures_dir) / name)
display(steps_scores.groupby(["steps", "time_shift", "track"])[list(METRICS)].mean().round(3))
display(Markdown(f"**{metric} (mean of the tracks) by steps × time shift** (rows: steps)"))
display(pd.Series({k: v for k, v in choice.grid_scores.items()}).unstack().round(4))

# %%
fig = plot_metric_sweep(cfg_scores, "cfg_scale", METRICS, HIGHER_IS_BETTER,
                        f"validation: quality vs guidance scale ({chosen_steps} steps, shift {choice.time_shift:g})")
save_figure(fig, resolve(figures_dir) / "quality_vs_cfg")
display(cfg_scores.groupby(["cfg_scale", "track"])[list(METRICS)].mean().round(3))

# %%
write_codec_sampling(resolve(codec_dir), choice.steps, choice.cfg_scale, time_shift=choice.time_shift)
codec = DuoTok.from_pretrained(resolve(codec_dir)).eval()   # reloaded: its defaults are now the choice
d = codec.decoder.config
assert (d.steps, d.cfg_scale, d.time_shift) == (choice.steps, choice.cfg_scale, choice.time_shift)
display(Markdown(f"**Chosen on {len(excerpts)} validation excerpts: {choice.steps} Euler steps, time shift "
                 f"{choice.time_shift:g}, guidance {choice.cfg_scale:g}** ({metric}, tolerance {tolerance:g}; "
                 f"started from {start['steps']} steps, guidance {start_cfg:g}); the DiT samples in "
                 f"{codec.decoder.sampling_precision().describe()}. Written into `{codec_dir}`."))

# %% [markdown]
# What the sampling precision costs: the chosen settings once more, in the codec's precision and in
# float32, on the same validation excerpts and noise (identical when `auto` resolves to float32 here).

# %%
precision_scores = pd.concat([
    score_system(name, codec_system(codec, "oracle", precision=prec), excerpts, sr, (metric,)).assign(precision=name)
    for name, prec in (("codec", None), ("fp32", "fp32"))])
precision_check = {name: sweep_scores(part, "precision", metric)[name]
                   for name, part in precision_scores.groupby("precision")}
display(Markdown(f"Validation {metric} at the chosen settings: {codec.decoder.sampling_precision().used} "
                 f"{precision_check['codec']:.4f}, fp32 {precision_check['fp32']:.4f}"))

# %% [markdown]
# ## Decoding speed on this machine
# Real-time factor = decoding time / audio duration, both tracks of 30 s of tokens, the chosen settings.

# %%
speed = bench_decode(codec, n_tokens=int(30 * codec.frame_rate), repeats=2)
display(Markdown(f"**Decode RTF {speed['rtf_best']:.3f}** = {1 / speed['rtf_best']:.1f}× real time "
                 f"({speed['best_seconds']:.2f} s for {speed['audio_seconds']:.0f} s, {speed['steps']} steps, "
                 f"time shift {speed['time_shift']:g}, guidance {speed['cfg_scale']}, DiT in "
                 f"{speed['precision_used']}, {speed['threads']} threads, {torch.get_num_threads()} available)"))

# %% [markdown]
# ## Listen: one validation excerpt, from the tokens of its true stems (chosen settings)

# %%
example = excerpts[0]
decoded = codec_system(codec, "oracle")(example)
rows = {t: {"original": example.track(t), "decoded from tokens": decoded[t]} for t in TRACK_NAMES}
fig = plot_spectrograms(rows, sr, f"{example.song_id}: original vs decoded")
save_figure(fig, resolve(figures_dir) / "spectrograms")
for track in TRACK_NAMES:
    display(Markdown(f"*{track}: original, then decoded from tokens*"))
    display(Audio(example.track(track), rate=sr, normalize=False), Audio(decoded[track], rate=sr, normalize=False))

# %%
metrics = training_record(profile, result, parameters=sum(q.numel() for q in codec.decoder.dit.parameters()),
                          sampling_start=p["sampling"], chosen_sampling=choice.as_dict(), decode_speed=speed,
                          sampling_precision=codec.decoder.sampling_precision().as_dict(),
                          score_by_precision=precision_check,
                          bench_split=SELECTION_SPLIT, bench_items=len(excerpts),
                          quality_vs_steps=sweep_means(steps_scores[steps_scores["time_shift"] == choice.time_shift],
                                                       "steps"),   # on the chosen grid
                          quality_vs_steps_and_shift=sweep_means(
                              steps_scores.assign(grid=[f"{n} steps, shift {sh:g}" for n, sh in
                                                        zip(steps_scores["steps"], steps_scores["time_shift"], strict=True)]),
                              "grid"),
                          quality_vs_cfg=sweep_means(cfg_scores, "cfg_scale"))
write_record(resolve(metrics_path), metrics)
