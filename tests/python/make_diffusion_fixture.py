"""Loss and sampler fixtures from the independent reference (reference_dit.py +
reference_diffusion.py): a random-weight DiT saved with torch.save, loss inputs and
expected terms, initial noise and expected DDPM / DDIM samples (with CFG), and samples
whose every random number comes from the sample's own stream (per-sample seeding).

usage: make_diffusion_fixture.py OUTDIR
"""
import os
import sys

import h5py
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_dit import DiT  # noqa: E402
from reference_diffusion import Diffusion  # noqa: E402

out_dir = sys.argv[1]
torch.manual_seed(4321)
model = DiT(input_size=8, patch_size=2, in_channels=1, hidden_size=32, depth=2, num_heads=2, num_classes=3)
with torch.no_grad():
    for name, p in model.named_parameters():
        if name != "pos_embed":
            p.copy_(torch.randn_like(p) * 0.1)
model.eval()
torch.save(model.state_dict(), os.path.join(out_dir, "model.pt"))

n = 4
x0 = torch.rand(n, 1, 8, 8) * 2 - 1
t = torch.tensor([0, 1, 420, 999])
noise = torch.randn(n, 1, 8, 8)
y = torch.tensor([0, 1, 2, 3])  # 3 = the null class
d = Diffusion(1000)
with torch.no_grad():
    xt = d.q_sample(x0, t, noise)
    mse, vb, loss = d.losses(model(xt, t, y), x0, xt, t, noise)
with h5py.File(os.path.join(out_dir, "loss_in.h5"), "w") as f:
    f["x_start"], f["t"], f["noise"], f["y"] = x0.numpy(), t.numpy(), noise.numpy(), y.numpy()

z = torch.randn(3, 1, 8, 8)
labels = torch.tensor([2, 0, 1])
with h5py.File(os.path.join(out_dir, "noise.h5"), "w") as f:
    f["z"], f["y"] = z.numpy(), labels.numpy()
expected = {}
with torch.no_grad():
    for kind, steps in (("ddpm", "10"), ("ddim", "10")):
        sd = Diffusion(1000, steps)
        torch.manual_seed(77)
        expected[kind] = sd.sample(lambda x, tt: model(x, tt, labels), z.clone(), ddim=kind == "ddim")
        # CFG 4.0 on the doubled batch, first half kept.
        torch.manual_seed(77)
        y2 = torch.cat([labels, torch.full_like(labels, 3)])
        cfg = sd.sample(lambda x, tt: model.forward_with_cfg(x, tt, y2, 4.0), torch.cat([z, z]), ddim=kind == "ddim")
        expected[kind + "_cfg"] = cfg[:3]
        # Pixel-space sampling with x0 clamped to [-1, 1] (ADM's clip_denoised).
        torch.manual_seed(77)
        expected[kind + "_clip"] = sd.sample(lambda x, tt: model(x, tt, labels), z.clone(), ddim=kind == "ddim",
                                             clip=True)


def per_sample_seed(seed, index):
    """SplitMix64(seed) + index, kept to the 32 bits a CPU generator uses of its seed."""
    mask = (1 << 64) - 1
    x = (seed + 0x9E3779B97F4A7C15) & mask
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
    return ((x ^ (x >> 31)) + index) & 0xFFFFFFFF


# Per-sample seeding: sample i draws z, then y, then one normal per step from its own
# stream; with CFG the uncond half (which the model ignores) repeats the cond half's noise.
streams = [torch.Generator().manual_seed(per_sample_seed(77, i)) for i in range(5)]
z5, y5 = [], []
for g in streams:
    z5.append(torch.randn(1, 1, 8, 8, generator=g))
    y5.append(torch.randint(0, 3, (1,), generator=g))
z5, y5 = torch.cat(z5), torch.cat(y5)


def per_sample_noise(x):
    rows = torch.cat([torch.randn(1, 1, 8, 8, generator=g) for g in streams])
    return torch.cat([rows] * (x.shape[0] // len(streams)))


with torch.no_grad():
    sd = Diffusion(1000, "10")
    y10 = torch.cat([y5, torch.full_like(y5, 3)])
    expected["per_sample_cfg"] = sd.sample(lambda x, tt: model.forward_with_cfg(x, tt, y10, 4.0), torch.cat([z5, z5]),
                                           noise_like=per_sample_noise)[:5]
    expected["per_sample_y"] = y5

with h5py.File(os.path.join(out_dir, "expected.h5"), "w") as f:
    f["mse"], f["vb"], f["loss"] = mse.numpy(), vb.numpy(), loss.numpy()
    for k, v in expected.items():
        f[k] = v.numpy()
print("ok")
