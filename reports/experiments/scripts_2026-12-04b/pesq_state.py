import numpy as np, torch
from duotok.config import Params
from duotok.eval.roundtrip import codec_system, held_out_excerpts
from duotok.eval.reconstruction import pesq_wb
from duotok.tokenizer import DuoTok
torch.set_num_threads(2)
p = Params.load("default").section("reconstruction")
codec = DuoTok.from_pretrained("models/codec").eval()
exs = held_out_excerpts("data", p["split"], p["seconds"], p["n_songs"], codec.sample_rate)
target = [e for e in exs if e.song_id == "0037_bach-bwv353"][0]
out = codec_system(codec, "oracle")(target)["accompaniment"]
ref = target.track("accompaniment")
print("fresh", round(pesq_wb(ref, out, 16000), 4))
rng = np.random.default_rng(0)
for i, e in enumerate(exs):
    for tr in ("vocal", "accompaniment", "mixture"):
        x = e.track(tr)
        pesq_wb(x, x + 0.05 * rng.standard_normal(x.shape).astype(np.float32), 16000)
    print("after", e.song_id, round(pesq_wb(ref, out, 16000), 4), flush=True)
