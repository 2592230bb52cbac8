"""Diagnostic (issue 18; run from the repository root: python scripts/diag/ae_griffin_lim_refine.py [MODEL_DIR]): the default autoencoder's magnitudes, phase refined by fast Griffin-Lim started
from the decoder's own phase. Scored on validation excerpts."""
import sys
import time

import numpy as np
import torch

from duotok.audio.features import istft, stft
from duotok.eval.roundtrip import TRACK_NAMES, held_out_excerpts
from duotok.models.autoencoder import WaveAutoencoder
from duotok.train.quick_ae import score

torch.set_num_threads(2)
model_dir = sys.argv[1] if len(sys.argv) > 1 else "models/autoencoder/model"
iters = [int(x) for x in (sys.argv[2].split(",") if len(sys.argv) > 2 else ["0", "8", "32"])]
model = WaveAutoencoder.from_pretrained(model_dir).eval()
c = model.config
win = torch.hann_window(c.n_fft, periodic=True)

def refine(spec, length, n_iter, momentum=0.99):
    mag = spec.abs()
    angles = spec / (mag + 1e-16)
    prev = torch.zeros_like(angles)
    for _ in range(n_iter):
        inv = istft(mag * angles, c.n_fft, c.hop_length, c.n_fft, length=length, window=win)
        rebuilt = stft(inv, c.n_fft, c.hop_length, c.n_fft, window=win)
        angles = rebuilt - (momentum / (1 + momentum)) * prev
        angles = angles / (angles.abs() + 1e-16)
        prev = rebuilt
    return istft(mag * angles, c.n_fft, c.hop_length, c.n_fft, length=length, window=win)

def system(n_iter):
    @torch.no_grad()
    def run(ex):
        audio = torch.from_numpy(np.stack([ex.track(t) for t in TRACK_NAMES])).float()
        lat = model.encode(audio)
        spec = model.decoder.spectrogram(lat)
        spec = torch.cat([spec, spec[..., -1:]], dim=-1)
        out = refine(spec, lat.shape[-1] * c.samples_per_latent, n_iter)[..., : audio.shape[-1]]
        return dict(zip(TRACK_NAMES, out.numpy(), strict=True))
    return run

corpus = "data"
ex = held_out_excerpts(corpus, "valid", 10.0, 8, 16000)
for n in iters:
    t = time.time()
    s = score({f"gl{n}": system(n)}, ex, 16000)
    print(n, f"{time.time()-t:.0f}s", {k: round(v, 3) for k, v in s.items() if v is not None}, flush=True)
