import time, torch, sys
from duotok.tokenizer import DuoTok
torch.set_num_threads(2)
m = DuoTok.from_pretrained("/work/main/models/codec").eval()
n = int(30 * m.frame_rate)
g = torch.Generator().manual_seed(0)
ids = [torch.randint(0, s, (n,), generator=g) for s in m.codebook_sizes]
dec = m.decoder
tm = {"dit": 0.0, "ae": 0.0, "embed": 0.0}
og_sample, og_ae, og_embed = dec.dit.sample, dec.autoencoder.decode, m.embed
def wrap(key, f):
    def w(*a, **k):
        t = time.perf_counter(); r = f(*a, **k); tm[key] += time.perf_counter() - t; return r
    return w
dec.dit.sample = wrap("dit", og_sample); dec.autoencoder.decode = wrap("ae", og_ae); m.embed = wrap("embed", og_embed)
m.decode(*(x[:250] for x in ids), steps=2)
for steps in [16, 8, 1]:
    for k in tm: tm[k] = 0.0
    t = time.perf_counter(); m.decode(*ids, steps=steps); tot = time.perf_counter() - t
    print(steps, "total %.2f" % tot, {k: round(v, 2) for k, v in tm.items()}, "rtf %.3f" % (tot / 30), flush=True)
