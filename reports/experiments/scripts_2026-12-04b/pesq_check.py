import sys, hashlib, numpy as np, torch
from duotok.config import Params
from duotok.eval.roundtrip import codec_system, held_out_excerpts
from duotok.eval.reconstruction import pesq_wb, reconstruction_metrics
from duotok.tokenizer import DuoTok
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
p = Params.load("default").section("reconstruction")
codec = DuoTok.from_pretrained("models/codec").eval()
ex = [e for e in held_out_excerpts("data", p["split"], p["seconds"], p["n_songs"], codec.sample_rate) if e.song_id == "0037_bach-bwv353"][0]
sysf = codec_system(codec, "oracle")
for rep in range(2):
    out = sysf(ex)["accompaniment"]
    h = hashlib.sha1(out.astype(np.float32).tobytes()).hexdigest()[:12]
    ref = ex.track("accompaniment")
    print(rep, h, "pesq", [round(pesq_wb(ref, out, codec.sample_rate), 4) for _ in range(3)],
          {k: round(v, 5) for k, v in reconstruction_metrics(ref, out, codec.sample_rate, ("mel_l1", "stoi")).items()}, flush=True)
