#!/usr/bin/env python3
"""Fixtures and cross-checks for tests/test_tensor_files.cpp.

  make_torch_fixtures.py make OUTDIR
      Writes torch.save() checkpoints, re-zipped variants (deflate, forced ZIP64,
      prepended junk), a hand-written safetensors file, pickles of plain values at
      several protocols, and for each tensor set a manifest of expected values
      (<case>.manifest: name, dtype, shape, raw little-endian bytes in <case>_<i>.bin).

  make_torch_fixtures.py check-pt FILE MANIFEST
      torch.load()s FILE (also with weights_only=True where supported) and checks it
      is an OrderedDict equal to MANIFEST. Exits 1 on any mismatch.

  make_torch_fixtures.py check-safetensors FILE MANIFEST [KEY=VALUE ...]
      Parses FILE with struct + json and checks tensors and __metadata__.

Values come from exact formulas so every dtype holds them without rounding.
"""
import argparse
import collections
import copy
import json
import os
import pickle
import struct
import sys
import zipfile
import zlib

import torch

DTYPE_NAMES = {
    torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
    torch.bfloat16: "bfloat16", torch.int64: "int64", torch.int32: "int32",
    torch.int16: "int16", torch.int8: "int8", torch.uint8: "uint8", torch.bool: "bool",
}
SAFETENSORS_CODES = {
    torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def ramp(n, dtype=torch.float32):
    """((i*7) % 13 - 6) / 4: quarter steps in [-1.5, 1.5], exact in f16/bf16."""
    return torch.tensor([((i * 7) % 13 - 6) / 4 for i in range(n)], dtype=dtype)


def plain_state():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = {
        "f32": ramp(12).reshape(3, 4),
        "f64": torch.tensor([1 / 3, -2 / 7, 1e-300, 12345.678], dtype=torch.float64),
        "f16": ramp(6, torch.float16),
        "bf16": ramp(5, torch.bfloat16),
        "i64": torch.tensor([0, -1, 2**40 + 3, -(2**62), 2**63 - 1], dtype=torch.int64),
        "i32": torch.tensor([-(2**31), 7, 2**31 - 1], dtype=torch.int32),
        "i16": torch.tensor([-32768, 5, 32767], dtype=torch.int16),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 200, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "base": base,
        "strided": base[:, ::2],                  # non-contiguous view of base's storage
        "transposed": base.t(),
        "offset_slice": base.view(-1)[5:11],      # storage_offset 5
        "scalar": torch.tensor(3.5),              # 0-d
        "param": torch.nn.Parameter(torch.tensor([0.25, -0.5, 4.0])),
        "empty": torch.zeros(0, 3),
        "not_a_tensor": 7,                        # skipped by the C++ loader
    }
    assert sd["strided"].storage_offset() == 0 and not sd["strided"].is_contiguous()
    assert sd["offset_slice"].storage_offset() == 5
    return sd


def make_model(shift):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(ramp(p.numel()).reshape(p.shape) + shift + i)
    return model


def raw_bytes(t):
    t = t.detach().contiguous().reshape(-1)
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def write_manifest(outdir, case, sd):
    lines = []
    for i, (k, v) in enumerate(sorted(sd.items())):
        if not isinstance(v, torch.Tensor):
            continue
        fn = "%s_%d.bin" % (case, i)
        with open(os.path.join(outdir, fn), "wb") as f:
            f.write(raw_bytes(v))
        lines.append("\t".join([k, DTYPE_NAMES[v.dtype], ",".join(str(d) for d in v.shape), fn]))
    with open(os.path.join(outdir, case + ".manifest"), "w") as f:
        f.write("\n".join(lines) + "\n")


def read_manifest(path):
    out = collections.OrderedDict()
    d = os.path.dirname(path)
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            name, dtype, shape, fn = line.rstrip("\n").split("\t")
            with open(os.path.join(d, fn), "rb") as g:
                out[name] = (dtype, tuple(int(x) for x in shape.split(",") if x), g.read())
    return out


def rezip_deflated(src, dst):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))


def rezip_forced_zip64(src, dst):
    """Stored entries with every size/offset in ZIP64 extra fields and a saturated EOCD."""
    with zipfile.ZipFile(src) as zin:
        entries = [(i.filename.encode(), zin.read(i)) for i in zin.infolist()]
    out, cd = bytearray(), bytearray()
    for name, data in entries:
        off, crc = len(out), zlib.crc32(data)
        extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out += struct.pack("<I5H3I2H", 0x04034B50, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                           len(name), len(extra)) + name + extra + data
        cextra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), off)
        cd += struct.pack("<I6H3I5H2I", 0x02014B50, 45, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                          len(name), len(cextra), 0, 0, 0, 0, 0xFFFFFFFF) + name + cextra
    n, cd_off = len(entries), len(out)
    out += cd
    z64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(cd), cd_off)
    out += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(dst, "wb") as f:
        f.write(out)


def rewrite(src, dst, edit):
    """Copies a zip, passing each entry through edit(name, data); None drops the entry."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)


def write_safetensors(path, sd, metadata):
    tensors = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for k in sorted(tensors, reverse=True):  # data deliberately not in key order
        b = raw_bytes(tensors[k])
        header[k] = {"dtype": SAFETENSORS_CODES[tensors[k].dtype], "shape": list(tensors[k].shape),
                     "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    text = json.dumps(header, sort_keys=True).encode()  # ensure_ascii: exercises \u escapes
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def pickle_values():
    shared = [1, 2]
    return {
        "small": 5, "neg": -7, "u16": 40000, "i32": -100000, "i64": 2**40,
        "big": 2**70, "negbig": -(2**70), "float": 1.5, "str": "h\u00e9llo \u2603\\\n",
        "bytes": b"\x00\xff", "bytearray": bytearray(b"ab"), "none": None, "true": True, "false": False,
        "list": [1, [2, 3]], "tuple": (1, "a", None), "empty_tuple": (), "set": {3},
        "shared": (shared, shared), 42: "int key", ("t", 1): "tuple key", "long_str": "x" * 300,
        "od": collections.OrderedDict([("a", 1)]), "global": collections.OrderedDict,
        "ns": argparse.Namespace(lr=0.5),
    }


def make(outdir):
    os.makedirs(outdir, exist_ok=True)
    p = lambda name: os.path.join(outdir, name)

    sd = plain_state()
    torch.save(sd, p("plain.pt"))
    write_manifest(outdir, "plain", sd)
    rezip_deflated(p("plain.pt"), p("plain_deflated.pt"))
    rezip_forced_zip64(p("plain.pt"), p("plain_zip64.pt"))
    with open(p("plain.pt"), "rb") as f, open(p("plain_prefixed.zip"), "wb") as g:
        g.write(b"#!/bin/sh\necho not a zip\n" * 3 + f.read())
    for variant in ("plain_deflated.pt", "plain_zip64.pt"):  # the re-zipped files must stay valid for torch
        back = torch.load(p(variant))
        assert all(torch.equal(back[k], v) for k, v in sd.items() if isinstance(v, torch.Tensor)), variant
        assert zipfile.ZipFile(p(variant)).testzip() is None

    model, ema = make_model(0.0), make_model(10.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    model_sd = make_model(0.0).state_dict()  # values before the step, for exact expectations
    train = {"model": model_sd, "ema": ema.state_dict(), "opt": opt.state_dict(),
             "args": argparse.Namespace(lr=0.01, name="run-\u00e4", sizes=[1, 2]),
             "epoch": 3, "seed": 2**70}
    torch.save(train, p("train.pt"))
    write_manifest(outdir, "train_model", model_sd)
    write_manifest(outdir, "train_ema", train["ema"])
    torch.save({"state_dict": copy.deepcopy(model_sd), "ema": None, "epoch": 1}, p("train_sd.pt"))
    torch.save([torch.ones(2)], p("list.pt"))

    # Broken variants (zipfile recomputes the CRCs, so only the named defect remains).
    small = {"w": ramp(4, torch.float16), "v": ramp(2)}
    torch.save(small, p("small.pt"))
    rewrite(p("small.pt"), p("bad_storage.pt"), lambda n, d: d.replace(b"torch\nHalfStorage\n", b"torch\nQUInt4x2Storage\n"))
    rewrite(p("small.pt"), p("missing_storage.pt"), lambda n, d: None if n == "small/data/0" else d)
    rewrite(p("small.pt"), p("no_data_pkl.pt"), lambda n, d: None if n.endswith("data.pkl") else d)
    torch.save({"q": torch.quantize_per_tensor(ramp(4), 0.25, 0, torch.qint8)}, p("quantized.pt"))

    write_safetensors(p("hand.safetensors"), sd, {"format": "pt", "note": "h\u00e9llo \"q\"\n\u2603 \U0001F600"})

    for proto in (0, 2, 3, 4, 5):
        with open(p("values_p%d.pkl" % proto), "wb") as f:
            pickle.dump(pickle_values(), f, protocol=proto)


def fail(msg):
    print("MISMATCH: " + msg, file=sys.stderr)
    sys.exit(1)


def compare(label, got, expected):
    if set(got) != set(expected):
        fail("%s: keys %s != expected %s" % (label, sorted(got), sorted(expected)))
    for k, (dtype, shape, data) in expected.items():
        t = got[k]
        if not isinstance(t, torch.Tensor):
            fail("%s: %s is %r, not a tensor" % (label, k, type(t)))
        if DTYPE_NAMES.get(t.dtype) != dtype or tuple(t.shape) != shape:
            fail("%s: %s is %s%s, expected %s%s" % (label, k, t.dtype, tuple(t.shape), dtype, shape))
        if raw_bytes(t) != data:
            fail("%s: %s values differ" % (label, k))


def check_pt(path, manifest):
    expected = read_manifest(manifest)
    for kwargs in ({}, {"weights_only": True}):
        try:
            obj = torch.load(path, map_location="cpu", **kwargs)
        except TypeError:  # torch without weights_only
            continue
        if not isinstance(obj, collections.OrderedDict):
            fail("%s loaded as %r, expected an OrderedDict" % (path, type(obj)))
        compare("%s %s" % (path, kwargs), obj, expected)
    if zipfile.ZipFile(path).testzip() is not None:
        fail("zip CRC check failed")


def check_safetensors(path, manifest, meta_pairs):
    expected = read_manifest(manifest)
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    if (8 + n) % 8 != 0:
        fail("data section not 8-byte aligned")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    want_meta = dict(kv.split("=", 1) for kv in meta_pairs)
    if meta != want_meta:
        fail("metadata %r != %r" % (meta, want_meta))
    data = blob[8 + n:]
    got = {}
    names = {v: k for k, v in SAFETENSORS_CODES.items()}
    for k, info in header.items():
        b, e = info["data_offsets"]
        dtype = names[info["dtype"]]
        raw = data[b:e]
        if dtype == torch.bfloat16:
            t = torch.frombuffer(bytearray(raw), dtype=torch.int16).view(torch.bfloat16) if raw else torch.empty(0, dtype=dtype)
        else:
            t = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        got[k] = t.reshape(info["shape"])
    compare(path, got, expected)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("make").add_argument("outdir")
    c = sub.add_parser("check-pt")
    c.add_argument("file")
    c.add_argument("manifest")
    s = sub.add_parser("check-safetensors")
    s.add_argument("file")
    s.add_argument("manifest")
    s.add_argument("meta", nargs="*")
    a = ap.parse_args()
    if a.cmd == "make":
        make(a.outdir)
    elif a.cmd == "check-pt":
        check_pt(a.file, a.manifest)
    else:
        check_safetensors(a.file, a.manifest, a.meta)
    print("ok")


if __name__ == "__main__":
    main()
