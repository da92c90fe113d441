"""Reference values from Pillow for tests/test_datasets.cpp (run with Debian's
python3: numpy, PIL, h5py, scipy).

  resample OUT.h5            random images and Pillow's resize / ADM center crop of them
  decode OUT.h5 FILE...      Pillow's decode of each file (convert("RGB")), as decoded_<i>
  folder ROOT SIZE OUT.h5    what DiT's ImageFolder + center_crop_arr make of ROOT
  hash FILE.h5               sha256 over images bytes then labels (int64 LE) bytes
  mat OUT_DIR                .mat files (scipy.io.savemat) for the MAT reader tests
  mat73 OUT_DIR              the same contents as MATLAB v7.3 (HDF5) files, written with h5py
                             the way MATLAB lays them out (numbers73.mat, cells73.mat, struct73.mat)
  pngs OUT_DIR               PNGs in Pillow's other modes (palette + transparency, LA,
                             RGBA, 1-bit) and their convert("RGB") in OUT_DIR/expected.h5
  enlarge IN.h5 N SIDE OUT.h5  the first N images of a prepared file resized to SIDE x SIDE
                             with Pillow's BICUBIC filter, as `images`
"""
import hashlib
import os
import sys

import h5py
import numpy as np
from PIL import Image


def adm_center_crop(image, size):
    # The ADM / DiT preprocessing, written from its description in spec/dit.md.
    while min(*image.size) >= 2 * size:
        image = image.resize(tuple(x // 2 for x in image.size), resample=Image.BOX)
    scale = size / min(*image.size)
    image = image.resize(tuple(round(x * scale) for x in image.size), resample=Image.BICUBIC)
    arr = np.array(image)
    top = (arr.shape[0] - size) // 2
    left = (arr.shape[1] - size) // 2
    return arr[top:top + size, left:left + size]


def hwc(arr):
    return arr[:, :, None] if arr.ndim == 2 else arr


def random_image(rng, w, h, c, smooth):
    if smooth:  # gradients plus mild noise: typical photo statistics
        y, x = np.mgrid[0:h, 0:w]
        base = (x * 255.0 / max(w - 1, 1) * 0.6 + y * 255.0 / max(h - 1, 1) * 0.4)
        chans = [np.clip(base + rng.normal(0, 12, size=(h, w)) + 30 * k, 0, 255) for k in range(c)]
        arr = np.stack(chans, axis=-1).astype(np.uint8)
    else:  # noise: every clipping path of the fixed-point arithmetic
        arr = rng.randint(0, 256, size=(h, w, c), dtype=np.uint8)
    return arr


def to_pil(arr):
    return Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)


CROP_CASES = [  # (w, h, c, size, smooth)
    (29, 37, 3, 32, 0), (100, 75, 1, 32, 0), (131, 67, 3, 32, 1), (300, 200, 3, 32, 0),
    (16, 20, 1, 32, 0), (45, 45, 3, 7, 0), (500, 375, 3, 256, 1), (513, 1025, 3, 256, 0),
    (28, 28, 1, 32, 1), (97, 61, 3, 33, 0), (1000, 999, 1, 64, 1), (33, 65, 3, 16, 0),
]
RESIZE_CASES = [  # (w, h, c, out_w, out_h, filter: 0 box, 1 bicubic)
    (37, 23, 3, 64, 11, 1), (64, 48, 3, 17, 13, 0), (10, 10, 1, 3, 31, 1), (255, 1, 1, 7, 3, 1),
    (9, 9, 3, 9, 4, 0), (50, 40, 3, 25, 20, 1), (7, 5, 1, 23, 17, 0),
]


def resample(out):
    rng = np.random.RandomState(1234)
    with h5py.File(out, "w") as f:
        f["crop_cases"] = np.array([c[:4] for c in CROP_CASES], dtype=np.int64)
        for k, (w, h, c, size, smooth) in enumerate(CROP_CASES):
            arr = random_image(rng, w, h, c, smooth)
            f[f"crop_in_{k}"] = arr
            f[f"crop_out_{k}"] = hwc(adm_center_crop(to_pil(arr), size))
        f["resize_cases"] = np.array(RESIZE_CASES, dtype=np.int64)
        for k, (w, h, c, ow, oh, flt) in enumerate(RESIZE_CASES):
            arr = random_image(rng, w, h, c, False)
            f[f"resize_in_{k}"] = arr
            res = to_pil(arr).resize((ow, oh), resample=Image.BOX if flt == 0 else Image.BICUBIC)
            f[f"resize_out_{k}"] = hwc(np.array(res))


def decode(out, files):
    with h5py.File(out, "w") as f:
        for i, path in enumerate(files):
            with Image.open(path) as im:
                f[f"decoded_{i}"] = hwc(np.array(im.convert("RGB")))


PNG_MODES = ["palette_trns", "la", "rgba", "bit1", "palette"]


def pngs(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.RandomState(7)
    rgb = rng.randint(0, 256, size=(13, 19, 3), dtype=np.uint8)
    images = {
        "palette_trns": Image.fromarray(rgb).quantize(colors=16),
        "la": Image.fromarray(np.dstack([rgb[:, :, 0], rgb[:, :, 1]]), mode="LA"),
        "rgba": Image.fromarray(np.dstack([rgb, rgb[:, :, :1]]), mode="RGBA"),
        "bit1": Image.fromarray(rgb[:, :, 0] > 127),
        "palette": Image.fromarray(rgb).quantize(colors=200),
    }
    with h5py.File(os.path.join(out_dir, "expected.h5"), "w") as f:
        for name in PNG_MODES:
            im = images[name]
            path = os.path.join(out_dir, name + ".png")
            if name == "palette_trns":
                im.save(path, transparency=3)
            else:
                im.save(path)
            with Image.open(path) as back:
                f["png_" + name] = np.array(back.convert("RGB"))


def folder(root, size, out):
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    images, labels, names = [], [], []
    for label, cls in enumerate(classes):
        files = []
        for dirpath, _, filenames in os.walk(os.path.join(root, cls)):
            files += [os.path.join(dirpath, n) for n in filenames if not n.startswith(".")]
        for path in sorted(files, key=lambda p: os.path.relpath(p, root)):
            try:
                with Image.open(path) as im:
                    arr = adm_center_crop(im.convert("RGB"), size)
            except Exception:  # corrupt, truncated or not an image: skipped
                continue
            images.append(arr)
            labels.append(label)
            names.append(os.path.relpath(path, root))
    with h5py.File(out, "w") as f:
        f["images"] = np.stack(images).astype(np.uint8)
        f["labels"] = np.array(labels, dtype=np.int64)
        f["count"] = np.array([len(images)], dtype=np.int64)


def content_hash(path):
    with h5py.File(path, "r") as f:
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(f["images"][...]).tobytes())
        h.update(f["labels"][...].astype("<i8").tobytes())
        print(h.hexdigest())


def mat(out_dir):
    import scipy.io
    os.makedirs(out_dir, exist_ok=True)
    # Flowers-102 style: a 1xN double row and setid vectors.
    scipy.io.savemat(os.path.join(out_dir, "numbers.mat"),
                     {"labels": np.array([[3, 1, 2, 2, 1]], dtype=np.float64),
                      "trnid": np.array([[1, 4]], dtype=np.uint16),
                      "valid": np.array([[2]], dtype=np.uint8),
                      "tstid": np.array([[3, 5]], dtype=np.int32)}, do_compression=True)
    # Stanford Cars style: a cell of names and a struct array of annotations.
    names = np.empty((1, 3), dtype=object)
    names[0, :] = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Zeta"]
    scipy.io.savemat(os.path.join(out_dir, "cells.mat"), {"class_names": names}, do_compression=False)
    annos = np.zeros((1, 3), dtype=[("bbox_x1", "O"), ("class", "O"), ("fname", "O")])
    for i, (cls, fname) in enumerate([(3, "00001.jpg"), (1, "00002.jpg"), (2, "00003.jpg")]):
        annos[0, i] = (np.array([[10 + i]], dtype=np.uint8), np.array([[cls]], dtype=np.uint8), fname)
    scipy.io.savemat(os.path.join(out_dir, "struct.mat"), {"annotations": annos}, do_compression=True)


def mat73(out_dir):
    # MATLAB v7.3: HDF5 after a 512-byte header; arrays stored transposed (column-major),
    # each with a null-terminated MATLAB_class string; strings as uint16 code units; cells and
    # struct-array fields as object references into /#refs#; structs list MATLAB_fields.
    os.makedirs(out_dir, exist_ok=True)

    def matlab_class(obj, name):
        t = h5py.h5t.C_S1.copy()
        t.set_size(len(name))
        t.set_strpad(h5py.h5t.STR_NULLTERM)
        attr = h5py.h5a.create(obj.id, b"MATLAB_class", t, h5py.h5s.create(h5py.h5s.SCALAR))
        attr.write(np.array(name.encode(), dtype="S%d" % len(name)), mtype=t)

    def array(group, name, values, cls):
        d = group.create_dataset(name, data=np.asarray(values).reshape(1, -1).T)
        matlab_class(d, cls)
        return d

    def text(group, name, s):
        return array(group, name, np.frombuffer(s.encode("utf-16-le"), dtype=np.uint16), "char")

    def create(name, fill):
        path = os.path.join(out_dir, name)
        with h5py.File(path, "w", userblock_size=512) as f:
            fill(f, f.create_group("#refs#"))
        header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Wed Dec  2 00:00:00 2026 HDF5 schema 1.00 ."
        header = header.ljust(116, b" ") + bytes(8) + b"\x00\x02IM"
        with open(path, "r+b") as f:
            f.write(header.ljust(512, b"\x00"))

    def numbers(f, refs):
        array(f, "labels", np.array([3, 1, 2, 2, 1], dtype=np.float64), "double")
        array(f, "trnid", np.array([1, 4], dtype=np.uint16), "uint16")
        array(f, "valid", np.array([2], dtype=np.uint8), "uint8")
        array(f, "tstid", np.array([3, 5], dtype=np.int32), "int32")

    def cells(f, refs):
        names = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Zeta"]
        r = [text(refs, "n%d" % i, n).ref for i, n in enumerate(names)]
        matlab_class(f.create_dataset("class_names", data=np.array([r], dtype=h5py.ref_dtype).T), "cell")

    def struct(f, refs):
        g = f.create_group("annotations")
        matlab_class(g, "struct")
        fields = ["bbox_x1", "class", "fname"]
        vl = h5py.vlen_dtype(np.dtype("S1"))
        listed = np.empty(len(fields), dtype=vl)
        for i, n in enumerate(fields):
            listed[i] = np.frombuffer(n.encode(), dtype="S1")
        g.attrs.create("MATLAB_fields", listed, dtype=vl)
        rows = [(10 + i, cls, "%05d.jpg" % (i + 1)) for i, cls in enumerate([3, 1, 2])]
        for k, field in enumerate(fields):
            r = []
            for i, row in enumerate(rows):
                name = "%s%d" % (field, i)
                d = text(refs, name, row[k]) if isinstance(row[k], str) else array(refs, name, np.array([row[k]], dtype=np.uint8), "uint8")
                r.append(d.ref)
            g.create_dataset(field, data=np.array([r], dtype=h5py.ref_dtype).T)

    create("numbers73.mat", numbers)
    create("cells73.mat", cells)
    create("struct73.mat", struct)


def enlarge(path, n, side, out):
    with h5py.File(path, "r") as f:
        images = f["images"][:n]
    big = [np.array(Image.fromarray(im[:, :, 0], mode="L").resize((side, side), resample=Image.BICUBIC)) for im in images]
    with h5py.File(out, "w") as f:
        f["images"] = np.stack(big)[:, :, :, None]


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "resample":
        resample(sys.argv[2])
    elif mode == "decode":
        decode(sys.argv[2], sys.argv[3:])
    elif mode == "folder":
        folder(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif mode == "hash":
        content_hash(sys.argv[2])
    elif mode == "mat":
        mat(sys.argv[2])
    elif mode == "mat73":
        mat73(sys.argv[2])
    elif mode == "pngs":
        pngs(sys.argv[2])
    elif mode == "enlarge":
        enlarge(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        sys.exit("unknown mode " + mode)
