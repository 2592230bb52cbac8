"""Diagnostic (issue 18; run from the repository root: python scripts/diag/ae_mag_phase_swap.py [MODEL_DIR]): which half of the autoencoder's spectrum limits PESQ/STOI? Swap in the true
magnitude or the true phase (validation excerpts)."""
import sys

import numpy as np
import torch

from duotok.audio.features import istft, stft
from duotok.eval.roundtrip import TRACK_NAMES, held_out_excerpts
from duotok.models.autoencoder import WaveAutoencoder
from duotok.train.quick_ae import score

torch.set_num_threads(2)
model = WaveAutoencoder.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else "models/autoencoder/model").eval()
c = model.config
win = torch.hann_window(c.n_fft, periodic=True)

def system(kind):
    @torch.no_grad()
    def run(ex):
        audio = torch.from_numpy(np.stack([ex.track(t) for t in TRACK_NAMES])).float()
        lat = model.encode(audio)
        spec = model.decoder.spectrogram(lat)
        spec = torch.cat([spec, spec[..., -1:]], dim=-1)
        n = lat.shape[-1] * c.samples_per_latent
        padded = torch.nn.functional.pad(audio, (0, n - audio.shape[-1]))
        true = stft(padded, c.n_fft, c.hop_length, c.n_fft, window=win)
        if kind == "ae_mag_true_phase":
            spec = spec.abs() * true / (true.abs() + 1e-12)
        elif kind == "true_mag_ae_phase":
            spec = true.abs() * spec / (spec.abs() + 1e-12)
        out = istft(spec, c.n_fft, c.hop_length, c.n_fft, length=n, window=win)[..., : audio.shape[-1]]
        return dict(zip(TRACK_NAMES, out.numpy(), strict=True))
    return run

ex = held_out_excerpts("data", "valid", 10.0, 8, 16000)
for kind in ["ae_mag_true_phase", "true_mag_ae_phase"]:
    s = score({kind: system(kind)}, ex, 16000)
    print({k: round(v, 3) for k, v in s.items() if v is not None}, flush=True)
