#!/usr/bin/env python3
"""Independent reference values for tests/test_eval.cpp (NumPy, SciPy, PyTorch eager).

  fid_reference.py frechet A.h5 B.h5
      pytorch-fid's formula (np.cov, scipy.linalg.sqrtm) on datasets `features`; prints the value.
  fid_reference.py kid-full A.h5 B.h5
      Unbiased MMD^2 with k(x,y) = (x.y/d + 1)^3 over the full sets; prints the value.
  fid_reference.py legacy-save OUTDIR
      torch.save(..., _use_new_zipfile_serialization=False) of tensors of several dtypes
      (two of them views into one storage) -> OUTDIR/legacy.pth, and the same values
      in the zip format -> OUTDIR/zip.pth.
  fid_reference.py inception OUTDIR
      torchvision's Inception3 (fc 1008, no aux logits) turned into pytorch-fid's FID
      network, random weights with calibrated BatchNorm statistics -> OUTDIR/inception.pth
      (legacy format), OUTDIR/keys.txt ("name d0,d1,..." per state-dict entry), images
      (rgb.h5, gray.h5) and their pool3 features (expected.h5: rgb_bilinear, rgb_clean,
      gray_bilinear), the ADM evaluator's sFID tensor of rgb (rgb_spatial: the ReLU output of
      Mixed_6d.branch1x1, its first 7 channels, flattened in (H, W, C) order) and IS logits
      (rgb_logits: pool3 times fc.weight transposed, no bias).
  fid_reference.py adm-metrics IN.h5
      The ADM evaluator's Inception Score (softmax of `logits`, splits of 5000, mean of
      exp(mean KL)) and improved precision/recall (k = 3; SciPy's squared Euclidean cdist,
      k-th smallest distance counting the point itself) of `samples` against `reference`;
      prints "is precision recall".
  fid_reference.py pil-resize IN.h5 OUT.h5 H W
      PIL mode-'F' Image.resize(BICUBIC) of each (N, C) plane of dataset `x` -> `y`.
  fid_reference.py check-npz FILE
      numpy.load()s FILE; prints "name dtype shape sum" per array.
  fid_reference.py check-png FILE
      Prints "mode width height sum" of the PNG as PIL reads it.
"""
import os
import sys

import h5py
import numpy as np


def read_features(path):
    with h5py.File(path, "r") as f:
        return np.asarray(f["features"], dtype=np.float64)


def frechet(mu1, s1, mu2, s2, eps=1e-6):
    # pytorch-fid's calculate_frechet_distance, written out here.
    import scipy.linalg
    diff = mu1 - mu2
    try:
        covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
    except TypeError:  # SciPy 1.16 dropped `disp`; the result is the same matrix
        covmean = scipy.linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + offset).dot(s2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def cmd_frechet(a, b):
    fa, fb = read_features(a), read_features(b)
    value = frechet(fa.mean(0), np.cov(fa, rowvar=False), fb.mean(0), np.cov(fb, rowvar=False))
    print(repr(float(value)))


def cmd_kid_full(a, b):
    x, y = read_features(a), read_features(b)
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    value = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
             - 2 * kxy.sum() / (m * n))
    print(repr(float(value)))


def cmd_adm_metrics(path):
    from scipy.spatial.distance import cdist
    with h5py.File(path, "r") as f:
        logits = np.asarray(f["logits"], dtype=np.float64)
        ref = np.asarray(f["reference"], dtype=np.float64)
        gen = np.asarray(f["samples"], dtype=np.float64)
    e = np.exp(logits - logits.max(1, keepdims=True))
    preds = e / e.sum(1, keepdims=True)
    scores = []
    for i in range(0, len(preds), 5000):
        part = preds[i:i + 5000]
        kl = part * (np.log(part) - np.log(np.mean(part, 0, keepdims=True)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    k = 3

    def radii(x):
        return np.sort(cdist(x, x, "sqeuclidean"), axis=1)[:, k]

    r_ref, r_gen = radii(ref), radii(gen)
    precision = np.mean(np.any(cdist(gen, ref, "sqeuclidean") <= r_ref[None, :], axis=1))
    recall = np.mean(np.any(cdist(ref, gen, "sqeuclidean") <= r_gen[None, :], axis=1))
    print(repr(float(np.mean(scores))), repr(float(precision)), repr(float(recall)))


def cmd_legacy_save(outdir):
    import collections
    import torch
    base = torch.arange(24, dtype=torch.float32) * 0.25 - 2.0
    sd = collections.OrderedDict()
    sd["conv.weight"] = torch.linspace(-1, 1, 2 * 3 * 3 * 3).reshape(2, 3, 3, 3)
    sd["bn.running_mean"] = torch.tensor([0.5, -1.5], dtype=torch.float32)
    sd["bn.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)
    sd["view.a"] = base[4:10]                  # shares `base`'s storage, offset 4
    sd["view.b"] = base.reshape(4, 6).t()      # same storage, transposed strides
    sd["double"] = torch.tensor([[1.0, 2.0], [3.0, 4.5]], dtype=torch.float64)
    sd["half"] = torch.tensor([1.5, -2.25], dtype=torch.float16)
    sd["bytes"] = torch.tensor([1, 2, 255], dtype=torch.uint8)
    torch.save(sd, os.path.join(outdir, "legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save(collections.OrderedDict((k, v.contiguous().clone()) for k, v in sd.items()),
               os.path.join(outdir, "zip.pth"))


def fid_inception(torch):
    """pytorch-fid's network, built the way pytorch-fid builds it: torchvision's Inception3
    with the Mixed blocks replaced by FID variants (own code, same structure)."""
    import torch.nn.functional as F
    from torchvision.models import inception as tv

    class FidA(tv.InceptionA):
        def forward(self, x):
            b1 = self.branch1x1(x)
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            bp = self.branch_pool(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
            return torch.cat([b1, b5, b3, bp], 1)

    class FidC(tv.InceptionC):
        def forward(self, x):
            b1 = self.branch1x1(x)
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            bd = x
            for m in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
                bd = m(bd)
            bp = self.branch_pool(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
            return torch.cat([b1, b7, bd, bp], 1)

    class FidE(tv.InceptionE):
        def __init__(self, c, use_max):
            super().__init__(c)
            self.use_max = use_max

        def forward(self, x):
            b1 = self.branch1x1(x)
            t = self.branch3x3_1(x)
            b3 = torch.cat([self.branch3x3_2a(t), self.branch3x3_2b(t)], 1)
            d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            bd = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
            pooled = F.max_pool2d(x, 3, 1, 1) if self.use_max else F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
            return torch.cat([b1, b3, bd, self.branch_pool(pooled)], 1)

    net = tv.inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    net.Mixed_5b = FidA(192, 32)
    net.Mixed_5c = FidA(256, 64)
    net.Mixed_5d = FidA(288, 64)
    net.Mixed_6b = FidC(768, 128)
    net.Mixed_6c = FidC(768, 160)
    net.Mixed_6d = FidC(768, 160)
    net.Mixed_6e = FidC(768, 192)
    net.Mixed_7b = FidE(1280, False)
    net.Mixed_7c = FidE(2048, True)
    return net


def pool3(torch, net, x):
    import torch.nn.functional as F
    for name in ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"]:
        x = getattr(net, name)(x)
    x = F.max_pool2d(x, 3, 2)
    x = net.Conv2d_4a_3x3(net.Conv2d_3b_1x1(x))
    x = F.max_pool2d(x, 3, 2)
    for name in ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                 "Mixed_7a", "Mixed_7b", "Mixed_7c"]:
        x = getattr(net, name)(x)
    return F.adaptive_avg_pool2d(x, 1).flatten(1)


def cmd_inception(outdir):
    import torch
    import torch.nn.functional as F
    from PIL import Image
    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = fid_inception(torch)
    # BatchNorm statistics from one pass over noise keep activations well scaled; then
    # random affine parameters so that every BN tensor matters.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    net.train()
    with torch.no_grad():
        pool3(torch, net, torch.rand(2, 3, 299, 299) * 2 - 1)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.8, 1.2)
                m.bias.normal_(0.0, 0.1)
    net.eval()
    sd = net.state_dict()
    torch.save(sd, os.path.join(outdir, "inception.pth"), _use_new_zipfile_serialization=False)
    with open(os.path.join(outdir, "keys.txt"), "w") as f:
        for k, v in sd.items():
            f.write("%s %s\n" % (k, ",".join(str(d) for d in v.shape)))

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(3, 40, 48, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, size=(2, 32, 32, 1), dtype=np.uint8)
    with h5py.File(os.path.join(outdir, "rgb.h5"), "w") as f:
        f["images"] = rgb
    with h5py.File(os.path.join(outdir, "gray.h5"), "w") as f:
        f["images"] = gray

    def bilinear(images):
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)  # ToTensor
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        with torch.no_grad():
            return pool3(torch, net, 2 * x - 1).numpy()

    def clean(images):
        planes = []
        for img in images:
            chans = [np.asarray(Image.fromarray(img[:, :, c].astype(np.float32), mode="F")
                                .resize((299, 299), resample=Image.BICUBIC)) for c in range(img.shape[2])]
            planes.append(np.stack(chans, 0).clip(0, 255))
        x = torch.from_numpy(np.stack(planes, 0).astype(np.float32)) / 255
        with torch.no_grad():
            return pool3(torch, net, 2 * x - 1).numpy()

    # The sFID tensor: a forward hook on Mixed_6d's 1x1 branch (BasicConv2d: conv, bn, relu).
    captured = {}
    hook = net.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, o: captured.__setitem__("x", o))
    pooled = bilinear(rgb)
    hook.remove()
    spatial = captured["x"][:, :7].permute(0, 2, 3, 1).reshape(len(rgb), -1).numpy()
    logits = pooled.astype(np.float64) @ net.fc.weight.detach().numpy().astype(np.float64).T

    with h5py.File(os.path.join(outdir, "expected.h5"), "w") as f:
        f["rgb_spatial"] = spatial
        f["rgb_logits"] = logits
        f["rgb_bilinear"] = bilinear(rgb)
        f["rgb_clean"] = clean(rgb)
        f["gray_bilinear"] = bilinear(gray)


def cmd_pil_resize(src, dst, h, w):
    from PIL import Image
    with h5py.File(src, "r") as f:
        x = np.asarray(f["x"], dtype=np.float32)
    out = np.zeros(x.shape[:2] + (h, w), dtype=np.float32)
    for i in range(x.shape[0]):
        for c in range(x.shape[1]):
            out[i, c] = np.asarray(Image.fromarray(x[i, c], mode="F").resize((w, h), resample=Image.BICUBIC))
    with h5py.File(dst, "w") as f:
        f["y"] = out


def cmd_check_npz(path):
    with np.load(path) as z:
        for name in sorted(z.files):
            a = z[name]
            print(name, a.dtype.str, ",".join(str(d) for d in a.shape), repr(float(a.astype(np.float64).sum())))


def cmd_check_png(path):
    from PIL import Image
    img = Image.open(path)
    print(img.mode, img.width, img.height, int(np.asarray(img, dtype=np.int64).sum()))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "frechet":
        cmd_frechet(*args)
    elif cmd == "kid-full":
        cmd_kid_full(*args)
    elif cmd == "adm-metrics":
        cmd_adm_metrics(*args)
    elif cmd == "legacy-save":
        cmd_legacy_save(*args)
    elif cmd == "inception":
        cmd_inception(*args)
    elif cmd == "pil-resize":
        cmd_pil_resize(args[0], args[1], int(args[2]), int(args[3]))
    elif cmd == "check-npz":
        cmd_check_npz(*args)
    elif cmd == "check-png":
        cmd_check_png(*args)
    else:
        sys.exit("unknown command " + cmd)
