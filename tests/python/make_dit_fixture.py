"""Writes a DiT forward fixture: random weights saved with torch.save (the official
checkpoint format), inputs as HDF5 (x, t, y), and the reference outputs.

usage: make_dit_fixture.py OUTDIR depth hidden heads patch input_size in_channels num_classes learn_sigma cfg_scale
"""
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_dit import DiT, sincos_2d  # noqa: E402

out_dir = sys.argv[1]
depth, hidden, heads, patch, size, chans, classes = (int(v) for v in sys.argv[2:9])
learn_sigma = sys.argv[9] == "true"
cfg_scale = float(sys.argv[10])

torch.manual_seed(1234)
model = DiT(input_size=size, patch_size=patch, in_channels=chans, hidden_size=hidden, depth=depth,
            num_heads=heads, num_classes=classes, learn_sigma=learn_sigma)
# Random weights everywhere (the reference init zeroes adaLN and the output layer).
with torch.no_grad():
    for name, p in model.named_parameters():
        if name != "pos_embed":
            p.copy_(torch.randn_like(p) * 0.05)
model.eval()
torch.save(model.state_dict(), os.path.join(out_dir, "model.pt"))
torch.save({"model": model.state_dict(), "ema": model.state_dict(), "args": {"model": "custom"}},
           os.path.join(out_dir, "train.pt"))

n = 3
x = torch.randn(n, chans, size, size)
t = torch.tensor([0, 517, 999][:n], dtype=torch.int64)
y = torch.tensor([1 % classes, 0, classes - 1][:n], dtype=torch.int64)
with torch.no_grad():
    out = model(x, t, y)
    z = torch.cat([x, x])
    guided = model.forward_with_cfg(z, torch.cat([t, t]), torch.cat([y, torch.full_like(y, classes)]), cfg_scale)
with h5py.File(os.path.join(out_dir, "inputs.h5"), "w") as f:
    f["x"] = x.numpy()
    f["t"] = t.numpy()
    f["y"] = y.numpy()
with h5py.File(os.path.join(out_dir, "expected.h5"), "w") as f:
    f["out"] = out.numpy()
    f["out_cfg"] = guided[:n].numpy()
    f["pos_embed"] = model.pos_embed.detach().numpy()
    # The same model at twice the input size: the grid doubled, and aligned with the old one.
    grid = size // patch
    f["pos_embed_2x"] = sincos_2d(hidden, 2 * grid).astype(np.float32)
    f["pos_embed_2x_aligned"] = sincos_2d(hidden, 2 * grid, scale=0.5).astype(np.float32)
print("ok")
