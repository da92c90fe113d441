"""What a user would run instead of difffit: the official DiT architecture in PyTorch eager
(the hybrid loss, AdamW and an EMA as DiT's train.py; DiffFit's gamma on the two branches
of the first half of the blocks, as its public code; BitFit's biases), timed on one CPU
thread or on a CUDA device, eager or under torch.compile. Prints one JSON object, the same
measurements as `difffit bench train-step` and `difffit bench sample`.

  pytorch_baseline.py train  --depth 4 --hidden 96 --heads 4 --patch 4 --input 32 --channels 1 --classes 5
                             --batch 64 --steps 10 --precision fp32|bf16 [--attention sdpa|manual]
  pytorch_baseline.py sample ... --num 64 --sampler ddim --sample-steps 25 --cfg-scale 1
  either: [--device cuda [--tf32]] [--compile] [--methods full,bitfit,difffit]

`--attention sdpa` (default) is timm's fused path that the official DiT gets with PyTorch 2.x
(F.scaled_dot_product_attention); `manual` the explicit softmax(q k^T) v of timm's
unfused path (the only one PyTorch 1.x has). bench/torch2_compare.sh runs it with Debian 13's
python3-torch 2.6, bench/run_benchmarks.sh with Debian 12's 1.13.
"""
import argparse
import copy
import json
import os
import statistics
import sys
import time

# One BLAS thread, as `difffit bench --threads 1` sets.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))
import reference_dit  # noqa: E402
from reference_diffusion import Diffusion  # noqa: E402


def sdpa_forward(self, x):
    b, n, c = x.shape
    qkv = self.qkv(x).reshape(b, n, 3, self.h, c // self.h).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


def gamma_block_forward(self, x, c):
    s1, sc1, g1, s2, sc2, g2 = self.adaLN_modulation(c).chunk(6, dim=1)
    x = x + self.gamma1 * g1.unsqueeze(1) * self.attn(reference_dit.modulate(self.norm1(x), s1, sc1))
    return x + self.gamma2 * g2.unsqueeze(1) * self.mlp(reference_dit.modulate(self.norm2(x), s2, sc2))


def build(args, method):
    if args.attention == "sdpa":
        reference_dit.Attention.forward = sdpa_forward
    model = reference_dit.DiT(input_size=args.input, patch_size=args.patch, in_channels=args.channels,
                              hidden_size=args.hidden, depth=args.depth, num_heads=args.heads,
                              num_classes=args.classes)
    if method == "difffit":
        for block in list(model.blocks)[: args.depth // 2]:
            block.gamma1 = torch.nn.Parameter(torch.ones(args.hidden))
            block.gamma2 = torch.nn.Parameter(torch.ones(args.hidden))
            block.forward = gamma_block_forward.__get__(block)
    for name, p in model.named_parameters():
        if method == "bitfit":
            p.requires_grad_(name.endswith(".bias"))
        elif method == "full":
            p.requires_grad_(name != "pos_embed")
        else:
            p.requires_grad_(name.endswith(".bias") or "gamma" in name or name == "y_embedder.embedding_table.weight")
    return model


def make_model(args, method):
    """The model built on the device it runs on: DiT-XL/2's 675M parameters initialise in
    seconds on a GPU, not a minute on its host's CPU."""
    if args.device == "cuda":
        with torch.device("cuda"):
            return build(args, method)
    return build(args, method)


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def time_train(args, method):
    torch.manual_seed(0)
    diffusion = Diffusion(1000)
    model = make_model(args, method)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0)
    ema = copy.deepcopy(params)
    forward = torch.compile(model) if args.compile else model
    x = torch.rand(args.batch, args.channels, args.input, args.input, device=args.device) * 2 - 1
    y = torch.randint(0, args.classes, (args.batch,), device=args.device)
    times = []
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(args.warmup + args.steps):
        synchronize(args)
        begin = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        t = torch.randint(0, 1000, (args.batch,), device=args.device)
        noise = torch.randn_like(x)
        xt = diffusion.q_sample(x, t, noise)
        with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            out = forward(xt, t, y)
        loss = diffusion.losses(out.float(), x, xt, t, noise)[2].mean()
        loss.backward()
        opt.step()
        with torch.no_grad():  # DiT train.py's update_ema
            for e, p in zip(ema, params):
                e.mul_(0.9999).add_(p, alpha=1 - 0.9999)
        synchronize(args)
        if i >= args.warmup:
            times.append((time.perf_counter() - begin) * 1000)
    out = {"method": method, "median_ms": statistics.median(times), "min_ms": min(times),
           "trainable_params": sum(p.numel() for p in params)}
    if args.device == "cuda":
        out["peak_gpu_allocated_bytes"] = torch.cuda.max_memory_allocated()
    return out


def synchronize(args):
    if args.device == "cuda":
        torch.cuda.synchronize()


def time_sample(args):
    torch.manual_seed(0)
    model = make_model(args, "full").eval()
    if args.compile:
        model = torch.compile(model)
    spec = f"ddim{args.sample_steps}" if args.sampler == "ddim" else str(args.sample_steps)
    diffusion = Diffusion(1000, spec)
    cfg = args.cfg_scale > 1
    done, begin = 0, time.perf_counter()
    with torch.no_grad(), torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
        while done < args.num:
            b = min(args.batch, args.num - done)
            z = torch.randn(b, args.channels, args.input, args.input, device=args.device)
            y = torch.randint(0, args.classes, (b,), device=args.device)
            if cfg:
                y2 = torch.cat([y, torch.full_like(y, args.classes)])

                def net(x, t):
                    half = x[: len(x) // 2]
                    out = model(torch.cat([half, half]), t, y2).float()
                    eps, rest = out[:, :3], out[:, 3:]
                    cond, uncond = eps.chunk(2)
                    e = uncond + args.cfg_scale * (cond - uncond)
                    return torch.cat([torch.cat([e, e]), rest], dim=1)

                diffusion.sample(net, torch.cat([z, z]), ddim=args.sampler == "ddim")
            else:
                diffusion.sample(lambda x, t: model(x, t, y).float(), z, ddim=args.sampler == "ddim")
            done += b
    synchronize(args)
    seconds = time.perf_counter() - begin
    return {"images_per_second": args.num / seconds, "seconds": seconds}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["train", "sample"])
    for name, default in [("depth", 4), ("hidden", 96), ("heads", 4), ("patch", 4), ("input", 32),
                          ("channels", 1), ("classes", 5), ("batch", 64), ("steps", 10), ("warmup", 2),
                          ("num", 64), ("sample-steps", 25)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--attention", choices=["sdpa", "manual"], default="sdpa")
    p.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddim")
    p.add_argument("--cfg-scale", type=float, default=1.0)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--tf32", action="store_true", help="CUDA: TF32 tensor cores for float32")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (inductor)")
    p.add_argument("--methods", default="full,difffit", help="train: comma-separated, of full, bitfit, difffit")
    args = p.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    mode = "compile" if args.compile else "eager"
    out = {"benchmark": f"pytorch-{mode}-{args.what}", "torch": torch.__version__, "batch": args.batch,
           "device": args.device, "tf32": args.tf32, "precision": args.precision, "attention": args.attention,
           "threads": torch.get_num_threads(),
           "model": {"depth": args.depth, "hidden_size": args.hidden, "num_heads": args.heads,
                     "patch_size": args.patch, "input_size": args.input, "in_channels": args.channels,
                     "num_classes": args.classes}}
    if args.what == "train":
        out["methods"] = [time_train(args, m) for m in args.methods.split(",")]
    else:
        out.update({"num": args.num, "sampler": args.sampler, "steps": args.sample_steps,
                    "cfg_scale": args.cfg_scale}, **time_sample(args))
    out["peak_rss_bytes"] = peak_rss_bytes()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
