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
# # 04a · Stage 4, part 1: the audio autoencoder (the decoder's "ear")
#
# Duo-Tok does not generate waveforms directly. Its decoder generates the **latents of an audio
# autoencoder** (the paper's "ear-VAE": 64 channels at 50 Hz for 48 kHz audio), and the
# autoencoder's decoder turns them into sound. This notebook trains this repository's stand-in for
# that autoencoder, at the project's 16 kHz:
#
#     audio ─ STFT ─ log|·| ─ ConvNeXt ─ ↓2 ─→ latent (latent_dim × 50 Hz) ─ ConvNeXt ─ ↑2 ─ iSTFT head (Vocos) ─→ audio
#
# The encoder reads a magnitude spectrogram and the decoder predicts a complex spectrogram that an
# inverse STFT turns into samples. Nothing runs at the audio rate, which keeps it affordable on a CPU.
# The losses are a DAC-style multi-scale mel L1 (`duotok.losses`; close to, but not, the toolkit's
# Mel L1 it is scored on), a multi-resolution STFT loss and a small KL term that keeps the latent's scale bounded for the
# diffusion model of notebook 04b. There is **no adversarial loss**: it is left out to fit a CPU budget.
#
# Its own reconstruction is the **ceiling** of any token decoder built on it: the token decoder can
# at best reproduce these latents.

# %% tags=["parameters"]
profile: str = "default"
data_dir: str = "data"
out_dir: str = "models/autoencoder"
metrics_path: str = "reports/metrics/autoencoder.json"
curves_dir: str = "reports/curves"
figures_dir: str = "reports/figures/autoencoder"

# %%
import pandas as pd
from IPython.display import Audio, Markdown, display

from duotok.config import Params
from duotok.eval.reconstruction import METRICS
from duotok.eval.records import training_record, write_record
from duotok.eval.roundtrip import (
    TRACK_NAMES,
    autoencoder_system,
    held_out_excerpts,
    score_system,
    summary_dict,
    summary_table,
)
from duotok.models.autoencoder import WaveAutoencoder
from duotok.paths import resolve
from duotok.reporting.figures import save_figure
from duotok.reporting.reconstruction import plot_spectrograms
from duotok.reporting.training import export_curves, plot_curves
from duotok.train import autoencoder

params = Params.load(profile)   # params.yaml read once; every call below gets this
p = params.section("autoencoder")
display(Markdown(f"Profile **{profile}**: latent {p['model']['latent_dim']} × 50 Hz, width {p['model']['dim']}, "
                 f"{p['model']['n_blocks']} blocks; {p['train']['steps']} steps of {p['train']['batch_size']} "
                 f"crops × {len(p['data']['tracks'])} tracks × {p['data']['segment_seconds']} s."))

# %% [markdown]
# ## Training
# Every crop contributes its vocal stem, its accompaniment (drums + bass + other) and its mixture:
# the decoder will render vocal and accompaniment tracks, and mixtures are scored too.

# %%
result = autoencoder.run(params, out_dir=out_dir, data_dir=data_dir)
print(f"{result.step} steps in {result.seconds:.0f} s")

# %%
curves = export_curves(resolve(out_dir), resolve(curves_dir), "autoencoder")
train_log = pd.read_csv(curves["train"])
valid_log = pd.read_csv(curves["valid"]) if "valid" in curves else None
columns = [c for c in ("loss", "mel_l1", "stft", "kl", "latent_std") if c in train_log]
fig = plot_curves(train_log, valid_log, columns, "stage 4a (autoencoder)")
save_figure(fig, resolve(figures_dir) / "curves")

# %% [markdown]
# ## The ceiling, on held-out songs
# The centre excerpt of each held-out song, each track through the autoencoder on its own, scored
# with the toolkit's definitions (`duotok.eval.reconstruction`): multi-scale **Mel L1** (lower is
# better), wide-band **PESQ** (1.04–4.64), **STOI** (0–1) and **ViSQOL** audio mode (MOS 1–5, at
# 48 kHz). A silent reference (a song without vocals) has no PESQ/STOI/ViSQOL; it is left out of those means.

# %%
model = WaveAutoencoder.from_pretrained(resolve(out_dir) / "model").eval()
sr = model.config.sample_rate
ev = p["eval"]
excerpts = held_out_excerpts(resolve(data_dir), ev["split"], ev["seconds"], ev["n_songs"], sr)
scores = score_system("autoencoder", autoencoder_system(model), excerpts, sr, METRICS)
table = summary_table(scores)
display(table.round(3))

# %%
example = excerpts[0]
recon = autoencoder_system(model)(example)
rows = {t: {"original": example.track(t), "autoencoder": recon[t]} for t in TRACK_NAMES}
fig = plot_spectrograms(rows, sr, f"{example.song_id}: original vs autoencoder")
save_figure(fig, resolve(figures_dir) / "spectrograms")
for track in TRACK_NAMES:
    display(Markdown(f"*{track}: original, then reconstruction*"))
    display(Audio(example.track(track), rate=sr, normalize=False), Audio(recon[track], rate=sr, normalize=False))

# %%
metrics = training_record(profile, result, parameters=sum(q.numel() for q in model.parameters()),
                          latent_dim=model.config.latent_dim, latent_rate=model.latent_rate, eval_split=ev["split"],
                          eval_items=len(excerpts), eval_seconds=ev["seconds"], ceiling=summary_dict(scores))
write_record(resolve(metrics_path), metrics)
table
