"""Autoencoder round trip: train the shapes AE for N steps (argv[1]), encode and decode the 64
held-out scenes, judge both with the adherence oracle; the grid goes to /tmp/ae_roundtrip.png.
Run: .venv/bin/python benchmarks/autoencoder_roundtrip.py 300"""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pathlib import Path

from PIL import Image

from app.bench.prompts import load_prompts
from app.quality.adherence import judge
from app.training import autoencoder, parts
from app.training.loop import train
from app.training.shapes import render, spec_from_json

torch.set_num_threads(2)
steps = int(sys.argv[1])
vae = parts.autoencoder(0)
t = time.perf_counter()
st = train(
    autoencoder.autoencoder_stage(vae, steps=steps, batch=12, size=128, seed=0),
    Path("/tmp/ae_roundtrip_work"),
    None,
)
print("ae", steps, time.perf_counter() - t, st.losses[0], sum(st.losses[-20:]) / 20, flush=True)
specs = [
    spec_from_json(r.spec)
    for r in load_prompts(Path(__file__).resolve().parents[1] / "prompts" / "shapes-64.tsv")
    if r.spec
]
imgs = [render(s, 128, seed=i) for i, s in enumerate(specs)]
with torch.no_grad():
    lat = autoencoder.raw_latents(vae, imgs)
    rec = autoencoder.to_images(vae.decode(lat).sample)
a = [judge(i, s).correct for i, s in zip(imgs, specs, strict=True)]
b = [judge(i, s).correct for i, s in zip(rec, specs, strict=True)]
print("rendered", sum(a) / len(a), "roundtrip", sum(b) / len(b))
grid = Image.new("RGB", (128 * 8, 256 * 2))
for k in range(16):
    grid.paste(imgs[k], ((k % 8) * 128, (k // 8) * 256))
    grid.paste(rec[k], ((k % 8) * 128, (k // 8) * 256 + 128))
grid.save("/tmp/ae_roundtrip.png")
