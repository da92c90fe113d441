"""Independent PyTorch reference of the Stable Diffusion autoencoder (diffusers'
AutoencoderKL), written from the architecture description, plain torch.nn only.

usage: reference_vae.py OUTDIR

Builds the tiny test config (block channels 16, 32, 32, 32; one resnet per encoder block;
8 groups; 4 latent channels) with random weights and writes:
  OUTDIR/vae/diffusion_pytorch_model.safetensors   diffusers key names
  OUTDIR/vae/config.json                            a diffusers-style config
  OUTDIR/legacy.bin                                 torch.save, old attention names
                                                    (query/key/value/proj_attn; the
                                                    decoder's as 1x1 convolutions)
  OUTDIR/vae.h5   x (2,3,32,32), x_rect (1,3,16,32) in [-1, 1]; mean, logvar, mean_rect,
                  logvar_rect; sample = (mean + exp(logvar/2) * randn(seed 7)) * scale;
                  decoded = decode(sample) (the decoder output, not clamped)
  OUTDIR/sd_keys.txt   "name shape..." of every parameter of the full SD config
                       (channels 128, 256, 512, 512; two resnets per block; 32 groups)
The reference computes in float64; the outputs are stored as float32.
"""
import json
import os
import sys

import h5py
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_torch_fixtures import write_safetensors  # noqa: E402

CHANNELS = (16, 32, 32, 32)
LAYERS = 1
GROUPS = 8
LATENT = 4
SCALE = 0.18215
EPS = 1e-6
SD = {"CHANNELS": (128, 256, 512, 512), "LAYERS": 2, "GROUPS": 32}


class Resnet(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1 = nn.GroupNorm(GROUPS, cin, eps=EPS)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(GROUPS, cout, eps=EPS)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        skip = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return skip + h


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.group_norm = nn.GroupNorm(GROUPS, c, eps=EPS)
        self.to_q = nn.Linear(c, c)
        self.to_k = nn.Linear(c, c)
        self.to_v = nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c), nn.Dropout(0.0)])

    def forward(self, x):
        n, c, h, w = x.shape
        t = self.group_norm(x).reshape(n, c, h * w).permute(0, 2, 1)
        q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)
        weights = torch.softmax(q @ k.transpose(1, 2) / c ** 0.5, dim=-1)
        out = self.to_out[0](weights @ v)
        return x + out.permute(0, 2, 1).reshape(n, c, h, w)


class Down(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Up(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Block(nn.Module):
    def __init__(self, cin, cout, layers, resample):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(cin if i == 0 else cout, cout) for i in range(layers)])
        self.resample = resample

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        if self.resample == "down":
            x = self.downsamplers[0](x)
        elif self.resample == "up":
            x = self.upsamplers[0](x)
        return x


def down_block(cin, cout, last):
    b = Block(cin, cout, LAYERS, None if last else "down")
    if not last:
        b.downsamplers = nn.ModuleList([Down(cout)])
    return b


def up_block(cin, cout, last):
    b = Block(cin, cout, LAYERS + 1, None if last else "up")
    if not last:
        b.upsamplers = nn.ModuleList([Up(cout)])
    return b


class Mid(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(c, c), Resnet(c, c)])
        self.attentions = nn.ModuleList([SelfAttention(c)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_in = nn.Conv2d(3, CHANNELS[0], 3, padding=1)
        blocks, prev = [], CHANNELS[0]
        for i, c in enumerate(CHANNELS):
            blocks.append(down_block(prev, c, i == len(CHANNELS) - 1))
            prev = c
        self.down_blocks = nn.ModuleList(blocks)
        self.mid_block = Mid(CHANNELS[-1])
        self.conv_norm_out = nn.GroupNorm(GROUPS, CHANNELS[-1], eps=EPS)
        self.conv_out = nn.Conv2d(CHANNELS[-1], 2 * LATENT, 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for b in self.down_blocks:
            x = b(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        rev = list(reversed(CHANNELS))
        self.conv_in = nn.Conv2d(LATENT, rev[0], 3, padding=1)
        self.mid_block = Mid(rev[0])
        blocks, prev = [], rev[0]
        for i, c in enumerate(rev):
            blocks.append(up_block(prev, c, i == len(rev) - 1))
            prev = c
        self.up_blocks = nn.ModuleList(blocks)
        self.conv_norm_out = nn.GroupNorm(GROUPS, CHANNELS[0], eps=EPS)
        self.conv_out = nn.Conv2d(CHANNELS[0], 3, 3, padding=1)

    def forward(self, z):
        z = self.mid_block(self.conv_in(z))
        for b in self.up_blocks:
            z = b(z)
        return self.conv_out(F.silu(self.conv_norm_out(z)))


class Vae(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.quant_conv = nn.Conv2d(2 * LATENT, 2 * LATENT, 1)
        self.post_quant_conv = nn.Conv2d(LATENT, LATENT, 1)

    def posterior(self, x):
        moments = self.quant_conv(self.encoder(x))
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, latents):
        return self.decoder(self.post_quant_conv(latents / SCALE))


def legacy_names(sd):
    """Old diffusers attention names; the decoder's projections as 1x1 convolutions."""
    old = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    out = {}
    for k, v in sd.items():
        for new, name in old.items():
            marker = ".attentions.0." + new + "."
            if marker in k:
                k = k.replace(marker, ".attentions.0." + name + ".")
                if k.startswith("decoder.") and k.endswith(".weight"):
                    v = v.reshape(v.shape[0], v.shape[1], 1, 1)
        out[k] = v.clone()
    return out


def write_sd_keys(path):
    """Builds the full SD config with the same classes and lists its parameter names and shapes."""
    global CHANNELS, LAYERS, GROUPS
    saved = CHANNELS, LAYERS, GROUPS
    CHANNELS, LAYERS, GROUPS = SD["CHANNELS"], SD["LAYERS"], SD["GROUPS"]
    try:
        model = Vae()
    finally:
        CHANNELS, LAYERS, GROUPS = saved
    with open(path, "w") as f:
        for name, p in model.named_parameters():
            f.write(name + " " + " ".join(str(d) for d in p.shape) + "\n")


def main():
    out_dir = sys.argv[1]
    write_sd_keys(os.path.join(out_dir, "sd_keys.txt"))
    os.makedirs(os.path.join(out_dir, "vae"), exist_ok=True)
    torch.manual_seed(2024)
    model = Vae()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith(".weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
    sd = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    write_safetensors(os.path.join(out_dir, "vae", "diffusion_pytorch_model.safetensors"), sd, {"format": "pt"})
    with open(os.path.join(out_dir, "vae", "config.json"), "w") as f:
        json.dump({"_class_name": "AutoencoderKL", "_diffusers_version": "0.20.0", "act_fn": "silu",
                   "block_out_channels": list(CHANNELS), "down_block_types": ["DownEncoderBlock2D"] * len(CHANNELS),
                   "in_channels": 3, "latent_channels": LATENT, "layers_per_block": LAYERS, "norm_num_groups": GROUPS,
                   "out_channels": 3, "sample_size": 32, "scaling_factor": SCALE,
                   "up_block_types": ["UpDecoderBlock2D"] * len(CHANNELS)}, f, indent=2)
    torch.save(legacy_names(sd), os.path.join(out_dir, "legacy.bin"))

    torch.manual_seed(5)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    x_rect = torch.rand(1, 3, 16, 32) * 2 - 1
    model = model.double().eval()
    with torch.no_grad():
        mean, logvar = model.posterior(x.double())
        mean_rect, logvar_rect = model.posterior(x_rect.double())
        mean32, logvar32 = mean.float(), logvar.float()
        noise = torch.randn(mean32.shape, generator=torch.Generator().manual_seed(7))
        sample = (mean32 + torch.exp(0.5 * logvar32) * noise) * SCALE
        decoded = model.decode(sample.double())
    with h5py.File(os.path.join(out_dir, "vae.h5"), "w") as f:
        f["x"] = x.numpy()
        f["x_rect"] = x_rect.numpy()
        f["mean"] = mean32.numpy()
        f["logvar"] = logvar32.numpy()
        f["mean_rect"] = mean_rect.float().numpy()
        f["logvar_rect"] = logvar_rect.float().numpy()
        f["sample"] = sample.numpy()
        f["decoded"] = decoded.float().numpy()
    print("ok")


if __name__ == "__main__":
    main()
