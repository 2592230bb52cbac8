"""Decode speed and validation quality: Euler grid (uniform / SD3 shift) x DiT precision (fp32 / bf16 autocast)."""
import json, sys, time
import numpy as np, torch
sys.path.insert(0, "reports/experiments/scripts_2026-12-04")
import sampler_probe as sp
import duotok.models.dit as dit
from duotok.config import Params
from duotok.eval.roundtrip import codec_system, held_out_excerpts, score_system
from duotok.eval.sampling_choice import SELECTION_SPLIT
from duotok.tokenizer import DuoTok
from duotok.tokenizer.bench import bench_decode
torch.set_num_threads(2)
codec = DuoTok.from_pretrained("models/codec").eval()
cfg = codec.decoder.config.cfg_scale
bench = Params.load("default").section("decoder")["bench"]
ex = held_out_excerpts("data", SELECTION_SPLIT, float(bench["seconds"]), int(bench["n_songs"]), codec.sample_rate)
og = codec.decoder.dit.sample
def set_prec(p):
    if p == "fp32": codec.decoder.dit.sample = og; return
    def s(*a, **k):
        with torch.autocast("cpu", dtype=torch.bfloat16): return og(*a, **k)
    codec.decoder.dit.sample = s
mode = sys.argv[1]
for grid, steps, prec in [("uniform", 16, "fp32"), ("shift3", 8, "fp32"), ("uniform", 16, "bf16"), ("shift3", 8, "bf16"), ("uniform", 1, "fp32")]:
    dit.euler_sample = sp.euler_grid(grid); set_prec(prec)
    row = {"grid": grid, "steps": steps, "prec": prec}
    if mode in ("speed", "both"):
        b = bench_decode(codec, n_tokens=int(30 * codec.frame_rate), steps=steps, repeats=3)
        row.update(rtf_best=round(b["rtf_best"], 4), rtf_mean=round(b["rtf_mean"], 4), x_realtime=round(1 / b["rtf_best"], 2))
    if mode in ("quality", "both") and steps > 1:
        t = time.time()
        sc = score_system("x", codec_system(codec, "oracle", steps=steps, cfg_scale=cfg), ex, codec.sample_rate, ("mel_l1",))
        per = sc.groupby("track")["mel_l1"].mean().to_dict()
        row.update(mel_l1=round(float(np.mean(list(per.values()))), 4), **{k: round(v, 4) for k, v in per.items()}, eval_s=round(time.time() - t, 1))
    print(json.dumps(row), flush=True)
