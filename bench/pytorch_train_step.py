"""PyTorch-eager baseline for `difffit bench train-step`: the same DiT, hybrid loss,
AdamW and EMA in Python (Debian's python3-torch), full fine-tuning vs bias-only
(BitFit-style) training. Prints one JSON object.

usage: pytorch_train_step.py DEPTH HIDDEN HEADS PATCH INPUT CHANNELS CLASSES BATCH STEPS PRECISION
"""
import os

# One BLAS thread, as `difffit bench --threads 1` sets: Debian's OpenBLAS ignores
# torch.set_num_threads and would otherwise use every core for the matmuls.
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import copy  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))
from reference_dit import DiT  # noqa: E402
from reference_diffusion import Diffusion  # noqa: E402

depth, hidden, heads, patch, size, chans, classes, batch, steps = (int(v) for v in sys.argv[1:10])
bf16 = sys.argv[10] == "bf16"
torch.set_num_threads(1)
torch.manual_seed(0)
diffusion = Diffusion(1000)


def bench(trainable):
    model = DiT(input_size=size, patch_size=patch, in_channels=chans, hidden_size=hidden, depth=depth,
                num_heads=heads, num_classes=classes)
    for name, p in model.named_parameters():
        p.requires_grad_(name != "pos_embed" and trainable(name))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0)
    ema = copy.deepcopy(params)
    x = torch.rand(batch, chans, size, size) * 2 - 1
    y = torch.randint(0, classes, (batch,))
    times = []
    for i in range(2 + steps):
        begin = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        t = torch.randint(0, 1000, (batch,))
        noise = torch.randn_like(x)
        xt = diffusion.q_sample(x, t, noise)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(xt, t, y)
        loss = diffusion.losses(out.float(), x, xt, t, noise)[2].mean()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.mul_(0.9999).add_(p, alpha=1 - 0.9999)
        if i >= 2:
            times.append((time.perf_counter() - begin) * 1000)
    return statistics.median(times)


full = bench(lambda n: True)
bias = bench(lambda n: n.endswith(".bias") or n == "y_embedder.embedding_table.weight")
print(json.dumps({"benchmark": "pytorch-eager-train-step", "torch": torch.__version__, "batch": batch,
                  "precision": sys.argv[10], "threads": 1,
                  "full_median_ms": full, "bias_only_median_ms": bias, "speedup_bias_only_vs_full": full / bias}))
