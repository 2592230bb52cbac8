"""Which ODE sampler gives the decoder's quality at fewer network evaluations? Validation only.

Patches duotok.models.dit.euler_sample (looked up at call time by LatentDiT.sample) with samplers that
spend `steps` network evaluations (NFE) differently; scores toolkit Mel L1 on the decoder bench's
validation excerpts at the codec's chosen guidance; times 30 s of both tracks like bench_decode."""
import json, sys, time
import numpy as np, torch
import duotok.models.dit as dit
from duotok.config import Params
from duotok.eval.roundtrip import codec_system, held_out_excerpts, score_system
from duotok.eval.sampling_choice import SELECTION_SPLIT, sweep_scores
from duotok.tokenizer import DuoTok
from duotok.tokenizer.bench import bench_decode

ORIG = dit.euler_sample

def grid(n, kind):
    s = torch.linspace(0, 1, n + 1)
    if kind == "uniform": return s
    if kind.startswith("pow"): return s ** float(kind[3:])
    if kind.startswith("shift"):          # SD3-style shift toward the noise end (t=0 is noise here)
        a = float(kind[5:]); u = 1 - s; u = a * u / (1 + (a - 1) * u); return 1 - u
    raise ValueError(kind)

def euler_grid(kind):
    def f(v, x0, steps):
        ts = grid(steps, kind); x = x0
        for i in range(steps):
            t = ts[i].to(torch.float32); x = x + (ts[i + 1] - ts[i]).item() * v(x, t)
        return x
    return f

def midpoint(kind):
    def f(v, x0, nfe):
        n = max(1, nfe // 2); ts = grid(n, kind); x = x0
        for i in range(n):
            t0, t1 = ts[i].item(), ts[i + 1].item(); dt = t1 - t0
            xm = x + 0.5 * dt * v(x, torch.tensor(t0))
            x = x + dt * v(xm, torch.tensor(t0 + 0.5 * dt))
        return x
    return f

def heun(kind):
    def f(v, x0, nfe):
        n = max(1, (nfe + 1) // 2); ts = grid(n, kind); x = x0
        for i in range(n):
            t0, t1 = ts[i].item(), ts[i + 1].item(); dt = t1 - t0
            d0 = v(x, torch.tensor(t0)); xe = x + dt * d0
            if i == n - 1: x = xe; break       # last step Euler: no evaluation at t = 1
            x = x + 0.5 * dt * (d0 + v(xe, torch.tensor(t1)))
        return x
    return f

VARIANTS = {"euler": euler_grid("uniform"), "euler_shift3": euler_grid("shift3"),
            "euler_pow2": euler_grid("pow2"), "euler_pow0.5": euler_grid("pow0.5"),
            "midpoint": midpoint("uniform"), "heun": heun("uniform")}

def main():
    codec_dir, nfes = sys.argv[1], [int(x) for x in sys.argv[2].split(",")]
    names = sys.argv[3].split(",") if len(sys.argv) > 3 else list(VARIANTS)
    torch.set_num_threads(2)
    bench = Params.load("default").section("decoder")["bench"]
    codec = DuoTok.from_pretrained(codec_dir).eval()
    cfg = codec.decoder.config.cfg_scale
    ex = held_out_excerpts("data", SELECTION_SPLIT, float(bench["seconds"]), int(bench["n_songs"]), codec.sample_rate)
    out = []
    for name in names:
        dit.euler_sample = VARIANTS[name]
        for nfe in nfes:
            t = time.time()
            sc = score_system(name, codec_system(codec, "oracle", steps=nfe, cfg_scale=cfg), ex, codec.sample_rate, ("mel_l1",))
            per = sc.groupby("track")["mel_l1"].mean().to_dict()
            sp = bench_decode(codec, n_tokens=int(30 * codec.frame_rate), steps=nfe, repeats=1)
            row = {"sampler": name, "nfe": nfe, "cfg": cfg, "mel_l1": float(np.mean(list(per.values()))), **{f"mel_l1_{k}": v for k, v in per.items()},
                   "rtf": sp["rtf_best"], "eval_s": time.time() - t}
            print(json.dumps(row), flush=True); out.append(row)
    dit.euler_sample = ORIG

if __name__ == "__main__":
    main()
