"""Where does a default stage-2 step go? Data, forward per top-level module / head, backward (bf16 as trained)."""
import collections, sys, time
import torch
from torch.utils.data import DataLoader
from duotok.config import Params
from duotok.data.submix import SubmixCollate
from duotok.data.targets import MultiTaskCollate
from duotok.models.bestrq import BestRQModel
from duotok.models.multitask import MultiTaskModel
from duotok.text import CharVocab
from duotok.train.common import crop_datasets
from duotok.train.finetune import BATCH_KEYS, build_config

torch.set_num_threads(2)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
params = Params.load("default")
mc, tc, dc = build_config(params)
train, _ = crop_datasets("data", dc, mc.mel.sample_rate, 0)
model = MultiTaskModel.from_pretrain(BestRQModel.from_pretrained("models/pretrain/model"), mc)
collate = SubmixCollate(MultiTaskCollate(CharVocab(), mc.mel.sample_rate, mc.mel.hop_length), 0.0, 0)
loader = DataLoader(train, batch_size=tc.batch_size, shuffle=True, collate_fn=collate, num_workers=0)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
times = collections.defaultdict(float)
def hook(name):
    def pre(m, a): m._t0 = time.perf_counter()
    def post(m, a, o): times[name] += time.perf_counter() - m._t0
    return pre, post
mods = dict(model.named_children())
mods.update({f"heads.{k}": v for k, v in model.heads.items()} if hasattr(model.heads, "items") else {})
mods.update({f"encoder.{k}": v for k, v in model.encoder.named_children()})
for name, m in mods.items():
    pre, post = hook(name); m.register_forward_pre_hook(pre); m.register_forward_hook(post)
it = iter(loader); tot = collections.defaultdict(float)
for step in range(n + 1):
    t = time.perf_counter(); batch = next(it); td = time.perf_counter() - t
    if step == 1: times.clear()
    t = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = model(**{k: batch[k] for k in BATCH_KEYS})
    tf = time.perf_counter() - t; t = time.perf_counter()
    loss.backward(); opt.step(); opt.zero_grad(); tb = time.perf_counter() - t
    if step >= 1:
        tot["data"] += td; tot["forward"] += tf; tot["backward+opt"] += tb
print({k: round(v / n, 3) for k, v in tot.items()})
for k, v in sorted(times.items(), key=lambda kv: -kv[1]):
    print(f"  fwd {k:28s} {v / n:.3f} s/step")
