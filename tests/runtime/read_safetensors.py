#!/usr/bin/env python3
"""An independent reader of `compressm export` files: json + struct + numpy only,
written from the safetensors spec and docs/design.md section 1, sharing no code with the
C++ runtime. Checks the layout, then runs the model in float64 on one sequence.

    read_safetensors.py MODEL.safetensors INPUT.csv
prints one JSON line: {"names": [...], "metadata": {...}, "logits": [...]}
"""
import json
import math
import struct
import sys

import numpy as np


def read(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    assert 8 + n <= len(data), "header past the end"
    header = json.loads(data[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    assert all(isinstance(v, str) for v in metadata.values()), "metadata values must be strings"
    body = data[8 + n:]
    tensors, spans = {}, []
    for name, info in header.items():
        assert info["dtype"] == "F32", info["dtype"]
        begin, end = info["data_offsets"]
        count = int(np.prod(info["shape"], dtype=np.int64))
        assert end - begin == 4 * count, name
        spans.append((begin, end))
        tensors[name] = np.frombuffer(body[begin:end], dtype="<f4").astype(np.float64).reshape(info["shape"])
    spans.sort()
    position = 0
    for begin, end in spans:  # the tensors tile the data area
        assert begin == position, "gap or overlap"
        position = end
    assert position == len(body), "trailing bytes"
    return tensors, metadata


def gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def forward(t, meta, u):
    eps = float(meta["batchnorm_eps"])
    h = u @ t["encoder.weight"].T + t["encoder.bias"]  # {L, H}
    for b in range(len(json.loads(meta["state_dims"]))):
        p = "blocks.%d." % b
        z = (h - t[p + "norm.running_mean"]) / np.sqrt(t[p + "norm.running_var"] + eps)
        lam = np.exp(-np.exp(t[p + "lru.nu_log"]) + 1j * np.exp(t[p + "lru.theta_log"]))
        bt = np.exp(t[p + "lru.gamma_log"])[:, None] * (t[p + "lru.B_re"] + 1j * t[p + "lru.B_im"])
        c = t[p + "lru.C_re"] + 1j * t[p + "lru.C_im"]
        x = np.zeros(lam.shape, dtype=np.complex128)
        y = np.empty_like(h)
        for k in range(h.shape[0]):
            x = lam * x + bt @ z[k]
            y[k] = (c @ x).real + t[p + "lru.D"] * z[k]
        g = gelu(y)
        value = g @ t[p + "glu_value.weight"].T + t[p + "glu_value.bias"]
        gate = g @ t[p + "glu_gate.weight"].T + t[p + "glu_gate.bias"]
        h = h + value / (1.0 + np.exp(-gate))
    return t["head.weight"] @ h.mean(axis=0) + t["head.bias"]


def main():
    tensors, meta = read(sys.argv[1])
    u = np.loadtxt(sys.argv[2], delimiter=",", ndmin=2)
    logits = forward(tensors, meta, u)
    print(json.dumps({"names": sorted(tensors), "metadata": meta, "logits": logits.tolist()}))


if __name__ == "__main__":
    main()
